//! `cove device list|name|revoke`, `cove partner remove`, `cove leave`,
//! `cove relay delete-plan` and
//! `cove wipe`: each says plainly what it can and cannot erase.

use crate::output::Printer;
use crate::syncing::device_label;
use crate::{prompt, unlock};
use anyhow::bail;
use cove_client::home::Home;
use cove_client::human::ago;
use cove_client::sync;
use cove_shared::{DeviceId, MembershipState};
use serde_json::json;

/// `cove device list`.
pub(crate) async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let rows = device.device_rows();
    out.emit(&rows, || {
        let now = device.now_s();
        rows.iter()
            .map(|d| {
                let mut who = d.name.clone().unwrap_or_else(|| format!("partner {}", d.partner));
                if let Some(named) = &d.device_name {
                    who.push_str(&format!(" \"{named}\""));
                }
                let state = if d.this_device {
                    "this device".to_owned()
                } else if !d.active {
                    "removed".to_owned()
                } else {
                    format!(
                        "last heard from {}",
                        d.last_heard.map_or_else(|| "never".into(), |t| ago(t / 1000, now))
                    )
                };
                format!("{}  {who}  {state}", d.fingerprint)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `cove device name`.
pub(crate) async fn name(home: &Home, out: &Printer, name: &str) -> anyhow::Result<()> {
    let name = device_name(Some(name.to_owned()))?;
    let mut device = unlock(home).await?;
    device.set_device_name(&name).await?;
    crate::plan::saved(
        out,
        &mut device,
        "",
        &format!("This device is now called {:?}.", name.trim()),
    )
    .await;
    Ok(())
}

/// Names a device that was just set up and sends the name at once, so that
/// the other devices' lists show it. A failure is kept as the first sync's,
/// never returned: the device is made, and its recovery phrase must show.
pub(crate) async fn name_new_device(
    device: &mut cove_client::device::Device,
    name: &str,
    sync_error: &mut Option<cove_client::device::DeviceError>,
) {
    match device.set_device_name(name).await {
        Ok(()) if sync_error.is_none() => {
            if let Err(error) = crate::syncing::sync_now(device).await {
                *sync_error = Some(error);
            }
        }
        Ok(()) => {}
        Err(error) => *sync_error = Some(error),
    }
}

/// A device name as given, checked before anything is made, so that a name
/// that cannot be kept never stops a set-up half way.
pub(crate) fn device_name(given: Option<String>) -> anyhow::Result<String> {
    let name = given.map_or_else(default_device_name, |n| n.trim().to_owned());
    let max = cove_client::plan::write::MAX_DEVICE_NAME;
    if name.is_empty() {
        bail!("a device name cannot be empty");
    }
    if name.chars().count() > max {
        bail!("a device name has at most {max} characters");
    }
    Ok(name)
}

/// The name a new device gets when none is given: the computer's host name.
pub(crate) fn default_device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim().chars().take(cove_client::plan::write::MAX_DEVICE_NAME).collect::<String>()
        })
        .filter(|h| !h.is_empty());
    host.unwrap_or_else(|| "this computer".to_owned())
}

/// Finds a device by fingerprint (with or without dashes, or a unique
/// prefix of at least four characters) or by its hex id.
pub(crate) fn find_device(state: &MembershipState, text: &str) -> anyhow::Result<DeviceId> {
    let wanted: String = text.trim().to_ascii_lowercase().chars().filter(|c| *c != '-').collect();
    if wanted.len() < 4 {
        bail!(
            "{text:?} is too short to name a device; use the fingerprint `cove device list` shows"
        );
    }
    let matches: Vec<DeviceId> = state
        .members()
        .filter(|m| {
            let fingerprint: String =
                m.device.fingerprint().chars().filter(|c| *c != '-').collect();
            fingerprint.starts_with(&wanted) || m.device.to_string() == wanted
        })
        .map(|m| m.device)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no device of this plan matches {text:?}; `cove device list` shows them"),
        _ => bail!("{text:?} matches more than one device; give more of the fingerprint"),
    }
}

/// `cove device revoke`.
pub(crate) async fn revoke(
    home: &Home,
    out: &Printer,
    text: &str,
    yes: bool,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let target = find_device(device.membership(), text)?;
    if target == device.id() {
        bail!(
            "this is the device you are using; to remove it, run `cove device revoke` from another device, or `cove leave`"
        );
    }
    if !device.membership().is_active(&target) {
        bail!("{} has already been removed", device_label(&device, &target));
    }
    let label = device_label(&device, &target);
    prompt::confirm(
        &format!(
            "This removes {label} from the plan. It will be refused by the relay and unable to read anything written afterwards."
        ),
        "revoke",
        yes,
    )?;
    let (conn, _pushes) = sync::connect(&device).await?;
    // Take in everything it sent before now, so that no honest edit is lost.
    sync::sync_once(&mut device, &conn).await?;
    sync::publish_entry(&mut device, &conn, |d| d.revocation(target)).await?;
    // A partner whose last device goes can still come back with their
    // recovery phrase (that is what a lost phone needs); ending their part
    // in the plan is a separate, deliberate step.
    let owner = device.membership().member(&target).map(|m| m.partner);
    let partner_has_none = owner.is_some_and(|p| {
        p != device.partner() && device.membership().active_of(p).next().is_none()
    });
    let name = owner.map(|p| device.current_plan().name(p)).unwrap_or_default();
    out.emit(&json!({ "revoked": target.to_string(), "fingerprint": target.fingerprint(), "epoch": device.membership().epoch().0, "partner_has_no_device": partner_has_none }), || {
        let mut text = format!(
            "Removed {label}. The relay now refuses it, and everything written from now on uses a new key it does not have.\n\
             What it had already received stays on it: Cove cannot erase another device."
        );
        if partner_has_none {
            text.push_str(&format!(
                "\n{name} has no device in the plan now. If it was lost, {name} comes back with their recovery phrase (`cove recover`). \
                 To end {name}'s part in the plan instead, run `cove partner remove`."
            ));
        }
        text
    });
    Ok(())
}

/// `cove partner remove`: uncoupling from this side. Every device of the
/// other partner is revoked, their identity is retired (so their recovery
/// phrase opens nothing written afterwards and adds no device), and every
/// remaining device moves to a new key.
pub(crate) async fn remove_partner(home: &Home, out: &Printer, yes: bool) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    if !device.is_active() {
        bail!("this device has already been removed from the plan");
    }
    let other = device.partner().other();
    let name = device.current_plan().name(other);
    if device.membership().has_left(other) {
        bail!("{name} is no longer in the plan");
    }
    if device.membership().identity(other).is_none() {
        bail!("{name} has not joined the plan");
    }
    prompt::confirm(
        &format!(
            "This removes {name} from the plan, with all of {name}'s devices. Nothing written afterwards can be read by them, \
             and their recovery phrase will no longer bring them back. Your copy of the plan stays."
        ),
        "remove",
        yes,
    )?;
    let (conn, _pushes) = sync::connect(&device).await?;
    // Take in everything they sent before now, so that no honest edit is lost.
    sync::sync_once(&mut device, &conn).await?;
    let theirs: Vec<DeviceId> = device.membership().active_of(other).map(|m| m.device).collect();
    for target in &theirs {
        sync::publish_entry(&mut device, &conn, |d| d.revocation(*target)).await?;
    }
    sync::publish_entry(&mut device, &conn, |d| d.retirement(other)).await?;
    // The retired identity still holds the current key: rotate now.
    sync::sync_once(&mut device, &conn).await?;
    out.emit(&json!({ "removed": other.to_string(), "devices_removed": theirs.len(), "epoch": device.membership().epoch().0 }), || {
        format!(
            "{name} is no longer in the plan: none of {name}'s devices, and not {name}'s recovery phrase, can read anything written from now on.\n\
             What {name} had already received stays with them: Cove cannot erase another person's copy."
        )
    });
    Ok(())
}

/// `cove leave`.
pub(crate) async fn leave(home: &Home, out: &Printer, yes: bool) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    if !device.is_active() {
        bail!("this device has already been removed from the plan; `cove wipe` removes its copy");
    }
    prompt::confirm(
        "This removes all of your devices from the plan. Your partner keeps their copy of the plan; yours stays on this device until you run `cove wipe`.",
        "leave",
        yes,
    )?;
    let (conn, _pushes) = sync::connect(&device).await?;
    sync::sync_once(&mut device, &conn).await?;
    // Leaving ends this partner's identity first, while this device can
    // still sign: no device can be added for them afterwards, and their
    // recovery phrase opens nothing written after the next key.
    let partner = device.partner();
    if device.membership().live_identity(partner).is_some() {
        sync::publish_entry(&mut device, &conn, |d| d.retirement(partner)).await?;
    }
    let me = device.id();
    let mine: Vec<DeviceId> = device
        .membership()
        .active_of(device.partner())
        .map(|m| m.device)
        .filter(|d| *d != me)
        .collect();
    for other in &mine {
        sync::publish_entry(&mut device, &conn, |d| d.revocation(*other)).await?;
    }
    sync::publish_entry(&mut device, &conn, |d| d.revocation(me)).await?;
    out.emit(&json!({ "left": true, "devices_removed": mine.len() + 1 }), || {
        "You have left the plan, with all of your devices; your recovery phrase no longer brings you back. \
         Your partner's devices move to a new key at their next sync, so nothing written afterwards can be read here.\n\
         This device still holds the plan as it was: `cove wipe` removes it. Your partner's copy is theirs; Cove cannot erase it."
            .to_owned()
    });
    Ok(())
}

/// `cove relay delete-plan`.
pub(crate) async fn delete_plan(home: &Home, out: &Printer, yes: bool) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    prompt::confirm(
        &format!(
            "This deletes the plan and everything stored for it from the relay at {}, for both partners. \
             Neither device can sync it afterwards.",
            device.relay()
        ),
        "delete",
        yes,
    )?;
    let (conn, _pushes) = sync::connect(&device).await?;
    conn.delete_plan(device.plan()).await?;
    out.emit(&json!({ "deleted": device.plan().to_string() }), || {
        "The relay no longer holds this plan. Each partner's device keeps its own copy: `cove wipe` removes the one on this device, \
         and only your partner can remove theirs. A backup of the relay's database made earlier still holds the encrypted data."
            .to_owned()
    });
    Ok(())
}

/// `cove wipe`.
pub(crate) fn wipe(home: &Home, out: &Printer, yes: bool) -> anyhow::Result<()> {
    let dir = home.root().display().to_string();
    prompt::confirm(
        &format!(
            "This removes this device's keys and its copy of the plan from {dir}. It does not touch the relay \
             (run `cove relay delete-plan` first for that) or your partner's devices."
        ),
        "wipe",
        yes,
    )?;
    let removed =
        home.wipe().map_err(|e| anyhow::anyhow!("cannot remove Cove's files from {dir}: {e}"))?;
    out.emit(&json!({ "removed": removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>() }), || {
        if removed.is_empty() {
            format!("There was nothing of Cove's in {dir}.")
        } else {
            format!(
                "Removed this device's keys and its copy of the plan from {dir}; the keys were overwritten first. \
                 Copies of these files in backups (or blocks a flash drive keeps) stay protected by the passphrase. \
                 The relay's copy and your partner's copy are unaffected."
            )
        }
    });
    Ok(())
}
