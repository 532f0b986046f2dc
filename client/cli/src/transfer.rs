//! `cove export` and `cove import`.

use crate::args::{ExportArgs, ExportFormat, ImportArgs};
use crate::output::Printer;
use crate::plan::saved;
use crate::{prompt, unlock};
use anyhow::Context;
use cove_client::device::{Device, DeviceError};
use cove_client::home::Home;
use cove_client::keystore::KdfParams;
use cove_client::plan::export::{self, ImportItem, MAX_IMPORT_BYTES};
use cove_client::plan::model::Plan;
use cove_client::plan::write;
use cove_shared::{DocId, Partner};
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// `cove export`.
pub(crate) async fn export(home: &Home, out: &Printer, args: ExportArgs) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = device.current_plan();
    let now = device.now_ms();
    match args.format {
        ExportFormat::Md | ExportFormat::Json => {
            let text = if args.format == ExportFormat::Md {
                // Printable: no control characters from anyone's text.
                super::output::terminal_safe(&export::to_markdown(&plan, now))
            } else {
                export::to_json(&plan, now)
            };
            match &args.output {
                None => {
                    super::output::write_out(&text);
                    eprintln!("cove: this export is not encrypted; keep it somewhere private.");
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
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
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

/// Reads a JSON export, or (given a directory) the three documents `cove
/// export --format automerge` wrote there.
fn read_export(path: &Path) -> anyhow::Result<Plan> {
    if path.is_dir() {
        let mut saved = Vec::new();
        for doc in DocId::ALL {
            let file = path.join(format!("{}.automerge", doc.name()));
            saved.push(read_bounded(&file)?);
        }
        let [shared, a, b] = [&saved[0], &saved[1], &saved[2]].map(Vec::as_slice);
        return Ok(export::from_automerge([shared, a, b])?);
    }
    let bytes = read_bounded(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("cannot read {} as text", path.display()))?;
    Ok(export::from_json(&text)?.plan)
}

/// A file's bytes, refused past [`MAX_IMPORT_BYTES`].
fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > MAX_IMPORT_BYTES {
        anyhow::bail!(
            "{} is larger than an export can be ({} MiB)",
            path.display(),
            MAX_IMPORT_BYTES >> 20
        );
    }
    // Read at most one byte past the limit: the size checked above may not
    // be the size read (a growing file, a pipe).
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(f, MAX_IMPORT_BYTES + 1),
                &mut bytes,
            )
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        anyhow::bail!(
            "{} is larger than an export can be ({} MiB)",
            path.display(),
            MAX_IMPORT_BYTES >> 20
        );
    }
    Ok(bytes)
}

/// `cove import`.
pub(crate) async fn import(home: &Home, out: &Printer, args: ImportArgs) -> anyhow::Result<()> {
    let plan = read_export(&args.file)?;
    let new_plan = !home.exists();
    if new_plan && (args.relay.is_none() || args.name.is_none()) {
        anyhow::bail!(
            "there is no device here yet: give --relay and --name to start a new plan from the export"
        );
    }
    if !new_plan && (args.relay.is_some() || args.name.is_some()) {
        anyhow::bail!(
            "this device already has a plan; without --relay and --name, `cove import` brings in only your own part of the export"
        );
    }
    // Whoever starts a plan is its partner A, so a new plan takes part a;
    // on a device with a plan, only this partner's own part may come in.
    let part = args.part.map(super::args::Letter::partner);
    if new_plan && part == Some(Partner::B) {
        anyhow::bail!(
            "the device that starts a plan is partner A, so it takes part a of the export; let the partner whose part is a start the new plan, then bring in part b on the other device with `cove import FILE --as b`"
        );
    }
    // Everything is checked before anything is made or changed.
    export::check(&plan, new_plan, part.unwrap_or(Partner::A))?;

    let mut device = match (&args.relay, &args.name) {
        (Some(relay), Some(name)) if new_plan => {
            let passphrase = prompt::passphrase(true)?;
            Device::init(home, &passphrase, relay, name, KdfParams::default()).await?
        }
        _ => unlock(home).await?,
    };
    let part = part.unwrap_or(device.partner());
    if part != device.partner() {
        anyhow::bail!(
            "this device is partner {}'s, so only part {} of the export can come in here",
            device.partner(),
            device.partner().to_string().to_lowercase()
        );
    }
    let result = bring_in(&mut device, &plan, part, new_plan).await;
    let items = match result {
        Ok(items) => items,
        Err(error) if new_plan => {
            // Leave no half-made plan behind.
            drop(device);
            let _ = home.wipe();
            return Err(error.context("the import stopped, and the new plan was removed"));
        }
        Err(error) => return Err(error),
    };
    let what = if new_plan {
        format!(
            "Started a new plan from {} ({items} items), with {}'s part as yours. Next: `cove pair`; your partner can then bring in their part with `cove import FILE --as b`.",
            args.file.display(),
            plan.name(part),
        )
    } else {
        format!("Brought in {}'s part of {} ({items} items).", plan.name(part), args.file.display())
    };
    if new_plan {
        // A new plan must be registered with the relay: a whole sync pass.
        let synced = super::syncing::sync_now(&mut device).await;
        out.emit(&json!({ "registered": synced.is_ok(), "items": items }), || match &synced {
            Ok(_) => format!("{what}\nThe relay at {} now holds the plan, encrypted.", device.relay()),
            Err(error) => format!("{what}\nThe plan is not on the relay yet: {error}. It is registered at the next `cove sync`."),
        });
    } else {
        saved(out, &mut device, "", &what).await;
    }
    Ok(())
}

/// Writes the export into the device's documents; returns the items written.
async fn bring_in(
    device: &mut Device,
    plan: &Plan,
    part: Partner,
    new_plan: bool,
) -> anyhow::Result<usize> {
    let mut items = 0;
    if new_plan {
        // One change per item: a large plan never needs one huge envelope.
        for ImportItem { section, meta, fields } in export::shared_items(plan) {
            device
                .edit(DocId::Shared, |tx| {
                    write::put_item(tx, section, &meta, fields).map_err(DeviceError::from)
                })
                .await?;
            items += 1;
        }
        device
            .edit(DocId::Shared, |tx| export::shared_settings(tx, plan).map_err(DeviceError::from))
            .await?;
    }
    let mine = device.partner().doc();
    let Some(own) = plan.partner(part) else { return Ok(items) };
    let existing = device.current_plan();
    let existing = existing.partner(device.partner()).cloned();
    let have: Vec<&str> = existing
        .iter()
        .flat_map(|p| {
            p.needs
                .iter()
                .map(|n| n.meta.id.as_str())
                .chain(p.boundaries.iter().map(|b| b.meta.id.as_str()))
        })
        .collect();
    for ImportItem { section, meta, fields } in export::partner_items(own) {
        if have.contains(&meta.id.as_str()) {
            continue;
        }
        device
            .edit(mine, |tx| write::put_item(tx, section, &meta, fields).map_err(DeviceError::from))
            .await?;
        items += 1;
    }
    let menu = device.current_plan().menu;
    device
        .edit(mine, |tx| {
            export::partner_values(tx, own, &menu, existing.as_ref()).map_err(DeviceError::from)
        })
        .await?;
    Ok(items)
}
