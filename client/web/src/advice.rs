//! What the page says when the engine reports an error: the engine's words
//! for what happened, then what to do next in the page's words (never a
//! command to type, which is the command line's), as one sentence.

use cove_client::device::DeviceError;
use cove_client::keystore::KeystoreError;
use cove_client::localdb::LocalError;
use cove_client::plan::text::capitalised;
use cove_client::plan::write::PlanError;
use cove_client::transport::TransportError as T;

/// `error` as the page shows it.
pub(crate) fn say(error: &DeviceError) -> String {
    let said = error.to_string();
    let mut out = capitalised(said.trim_end_matches('.'));
    if let Some(next) = next_step(error) {
        out.push_str("; ");
        out.push_str(next);
    }
    out.push('.');
    out
}

fn next_step(error: &DeviceError) -> Option<&'static str> {
    Some(match error {
        DeviceError::Keystore(e) => match e {
            KeystoreError::Missing => {
                "set this device up in a terminal first, then open the page again"
            }
            KeystoreError::WrongPassphrase => "type it again",
            KeystoreError::Tampered | KeystoreError::Downgraded { .. } => {
                "restore it from a backup, or wipe this device and pair it again"
            }
            KeystoreError::OtherFormat => "open it with the version of Cove that made it",
            KeystoreError::Io { .. } => "check that the state directory exists and can be written",
            _ => return None,
        },
        DeviceError::Local(LocalError::Corrupt) => {
            "restore the state directory from a backup, or wipe this device and pair it again"
        }
        DeviceError::Local(
            LocalError::Database(_) | LocalError::Migrate(_) | LocalError::Io(_),
        ) => "nothing was changed; try again, and if it goes on, check the disk",
        DeviceError::AlreadyExists(_) => "the page uses the device that is there",
        DeviceError::Home { .. } => "check that the state directory can be written",
        DeviceError::Incomplete => "set this device up again in a terminal",
        DeviceError::Revoked | DeviceError::Transport(T::Revoked) => {
            "the page still shows what this device held"
        }
        DeviceError::Doc(_) => "nothing was changed; the Status page shows any alarm",
        DeviceError::Membership(_) => "nothing was changed; try again in a moment",
        DeviceError::NoKey => "the page syncs by itself, and if this stays, pair this device again",
        DeviceError::TooLarge(_) => "make it shorter, or split it in two",
        DeviceError::Transport(T::Refused { .. }) => {
            "the change is kept here and sent when the relay takes it; if the refusal goes on, ask the relay's operator"
        }
        DeviceError::Transport(T::Closed | T::Timeout | T::Protocol(_)) => {
            "the change is kept here and sent when the relay answers"
        }
        DeviceError::Transport(T::Certificate(_)) => {
            "the Status page shows the relay; if its certificate was renewed on purpose, pin the new one"
        }
        DeviceError::PlanGone => "the page still shows this device's copy",
        DeviceError::StateBehind => "remove it from the plan on another device, then pair it again",
        DeviceError::Plan(PlanError::Doc(_)) => "nothing was saved; try again",
        DeviceError::Plan(PlanError::NotFound { .. }) => {
            "it may have been archived on another device; reload the page"
        }
        DeviceError::Plan(PlanError::Required { .. }) => "fill it in",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_client::errors::{AnyError, SAYS_WHAT_TO_DO, examples, kind};

    /// Every error a device can return reads, on the page, as one
    /// sentence: what happened, then what to do (unless the engine's words
    /// already say), in the page's words, with no command to type.
    /// (Pairing, recovery and import happen on the command line only.)
    #[test]
    fn every_device_error_has_the_pages_wording() {
        let mut wrong = Vec::new();
        for example in examples() {
            let AnyError::Device(error) = &example else { continue };
            let kind = kind(&example);
            let said = say(error);
            if next_step(error).is_none() && !SAYS_WHAT_TO_DO.contains(&kind) {
                wrong.push(format!("{kind}: no next step: {said}"));
            }
            // The page's own words continue the engine's clause.
            if let Some(next) = next_step(error) {
                let first = next.chars().next().unwrap_or('A');
                if first.is_uppercase() || next.ends_with('.') || next.contains(". ") {
                    wrong.push(format!("{kind}: the next step is not a clause: {next}"));
                }
            }
            if said.ends_with("..") || said.contains(". ") {
                wrong.push(format!("{kind}: not one sentence: {said}"));
            }
            if said.contains('`') || said.contains("cove ") || said.contains(" --") {
                wrong.push(format!("{kind}: a command to type: {said}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
