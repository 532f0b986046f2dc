//! `cove export` and `cove import`.

use super::args::{ExportArgs, ExportFormat, ImportArgs};
use super::output::Printer;
use super::plan::saved;
use super::{prompt, unlock};
use crate::device::{Device, DeviceError, unix_millis};
use crate::home::Home;
use crate::keystore::KdfParams;
use crate::plan::export::{self, Export, ImportItem, MAX_IMPORT_BYTES};
use crate::plan::{self, write};
use anyhow::Context;
use cove_shared::{DocId, Partner};
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// `cove export`.
pub async fn export(home: &Home, out: &Printer, args: ExportArgs) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = plan::current(device.docs());
    let now = unix_millis();
    match args.format {
        ExportFormat::Md | ExportFormat::Json => {
            let text = if args.format == ExportFormat::Md {
                export::to_markdown(&plan, now)
            } else {
                export::to_json(&plan, now)
            };
            match &args.output {
                None => {
                    print!("{text}");
                    std::io::stdout().flush()?;
                }
                Some(path) => {
                    write_private(path, text.as_bytes())?;
                    out.emit(&json!({ "written": [path] }), || {
                        format!(
                            "Wrote {}. It is not encrypted: keep it somewhere private.",
                            path.display()
                        )
                    });
                }
            }
        }
        ExportFormat::Automerge => {
            let dir = args.output.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--format automerge writes three files: give a directory with --output"
                )
            })?;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut written = Vec::new();
            for doc in DocId::ALL {
                let path = dir.join(format!("{}.automerge", doc.name()));
                write_private(&path, &device.docs().get(doc).clone().save())?;
                written.push(path);
            }
            out.emit(&json!({ "written": written }), || {
                format!(
                    "Wrote the three documents to {}. They are not encrypted: keep them somewhere private.",
                    dir.display()
                )
            });
        }
    }
    Ok(())
}

/// Writes a file only its owner can read, refusing to overwrite one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!("cannot write {} (an existing file is never overwritten)", path.display())
    })?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_export(path: &Path) -> anyhow::Result<Export> {
    let size =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > MAX_IMPORT_BYTES {
        anyhow::bail!(
            "{} is larger than an export can be ({} MiB)",
            path.display(),
            MAX_IMPORT_BYTES >> 20
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(export::from_json(&text)?)
}

/// `cove import`.
pub async fn import(home: &Home, out: &Printer, args: ImportArgs) -> anyhow::Result<()> {
    let export = read_export(&args.file)?;
    let plan = export.plan;
    let new_plan = !home.exists();
    let mut device = if new_plan {
        let (Some(relay), Some(name)) = (&args.relay, &args.name) else {
            anyhow::bail!(
                "there is no device here yet: give --relay and --name to start a new plan from the export"
            );
        };
        let passphrase = prompt::passphrase(true)?;
        Device::init(home, &passphrase, relay, name, KdfParams::default()).await?
    } else {
        if args.relay.is_some() || args.name.is_some() {
            anyhow::bail!(
                "this device already has a plan; without --relay and --name, `cove import` brings in only your own part of the export"
            );
        }
        unlock(home).await?
    };
    let part =
        args.part.map_or(if new_plan { Partner::A } else { device.partner() }, |l| l.partner());
    let mut items = 0;
    if new_plan {
        // One change per item: a large plan never needs one huge envelope.
        for ImportItem { section, meta, fields } in export::shared_items(&plan) {
            device
                .edit(DocId::Shared, |tx| {
                    write::put_item(tx, section, &meta, fields).map_err(DeviceError::from)
                })
                .await?;
            items += 1;
        }
        device
            .edit(DocId::Shared, |tx| export::shared_settings(tx, &plan).map_err(DeviceError::from))
            .await?;
    }
    let mine = device.partner().doc();
    if let Some(own) = plan.partner(part) {
        let existing = plan::current(device.docs());
        let have: Vec<String> = existing
            .partner(device.partner())
            .map(|p| {
                p.needs
                    .iter()
                    .map(|n| n.meta.id.clone())
                    .chain(p.boundaries.iter().map(|b| b.meta.id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for ImportItem { section, meta, fields } in export::partner_items(own) {
            if have.contains(&meta.id) {
                continue;
            }
            device
                .edit(mine, |tx| {
                    write::put_item(tx, section, &meta, fields).map_err(DeviceError::from)
                })
                .await?;
            items += 1;
        }
        device.edit(mine, |tx| export::partner_values(tx, own).map_err(DeviceError::from)).await?;
    }
    let what = if new_plan {
        format!(
            "Started a new plan from {} ({items} items), with {}'s part as yours. Next: `cove pair`; your partner can then bring in their part with `cove import FILE --as {}`.",
            args.file.display(),
            plan.name(part),
            if part == Partner::A { "b" } else { "a" }
        )
    } else {
        format!("Brought in {}'s part of {} ({items} items).", plan.name(part), args.file.display())
    };
    if new_plan {
        // A new plan must be registered with the relay: a whole sync pass.
        let synced = super::syncing::sync_now(&mut device).await;
        out.emit(&json!({ "registered": synced.is_ok(), "items": items }), || match &synced {
            Ok(_) => format!("{what}\nThe relay at {} now holds the plan, encrypted.", device.relay()),
            Err(error) => format!("{what}\nThe relay could not be reached yet ({error}); the plan is registered at the next `cove sync`."),
        });
    } else {
        saved(out, &mut device, "", &what).await;
    }
    Ok(())
}
