//! The next step, in `cove` commands, after an error the engine reported:
//! the engine says what happened, and only this face knows which command
//! helps. Printed after the error, in the same sentence.

use cove_client::device::DeviceError;
use cove_client::keystore::KeystoreError;
use cove_client::pairing::PairError;
use cove_client::plan::write::PlanError;

/// What to add after `error` (lowercase, no full stop), if a command helps.
pub(crate) fn next_step(error: &anyhow::Error) -> Option<String> {
    if let Some(e) = error.downcast_ref::<DeviceError>() {
        return device(e);
    }
    if let Some(e) = error.downcast_ref::<KeystoreError>() {
        return keystore(e);
    }
    if let Some(e) = error.downcast_ref::<PairError>() {
        return pairing(e);
    }
    if let Some(e) = error.downcast_ref::<PlanError>() {
        return plan(e);
    }
    None
}

fn device(error: &DeviceError) -> Option<String> {
    Some(
        match error {
            DeviceError::Keystore(e) => return keystore(e),
            DeviceError::Plan(e) => return plan(e),
            DeviceError::AlreadyExists(_) => {
                "use it (`cove status`), or run `cove wipe` first to start over"
            }
            DeviceError::Incomplete => "run `cove wipe`, then `cove init` or `cove join` again",
            DeviceError::PlanGone => "`cove wipe` removes it from this device too",
            DeviceError::StateBehind => {
                "remove it with `cove device revoke` on another device, then pair it again"
            }
            DeviceError::NoKey => {
                "run `cove sync`, and if that does not help, pair this device again"
            }
            _ => return None,
        }
        .to_owned(),
    )
}

fn keystore(error: &KeystoreError) -> Option<String> {
    Some(
        match error {
            KeystoreError::Missing => "run `cove init` to start a plan, or `cove join` to join one",
            KeystoreError::WrongPassphrase => {
                "try again (if it is lost, `cove wipe` starts over, and your partner's copy of the plan is unaffected)"
            }
            KeystoreError::Tampered => {
                "restore it from a backup, or run `cove wipe` and pair this device again"
            }
            _ => return None,
        }
        .to_owned(),
    )
}

fn pairing(error: &PairError) -> Option<String> {
    Some(
        match error {
            PairError::Device(e) => return device(e),
            PairError::WrongCode => "start again with `cove pair`, and read the new code carefully",
            PairError::Burned | PairError::TimedOut | PairError::Protocol(_) => {
                "start again with `cove pair`"
            }
            PairError::Declined => "start again with `cove pair` on the other device",
            _ => return None,
        }
        .to_owned(),
    )
}

fn plan(error: &PlanError) -> Option<String> {
    if let PlanError::Required { section, key, .. } = error {
        return Some(match (*section, *key) {
            ("step", "title") => {
                "give it with --title, or --option to use a menu option's title".into()
            }
            _ => format!("give it with --{key}"),
        });
    }
    let PlanError::NotFound { section, .. } = error else { return None };
    let list = match *section {
        "need" => "cove plan need list",
        "boundary" => "cove plan boundary list",
        "menu option" => "cove plan menu list",
        "step" => "cove plan step list",
        "signal" => "cove plan signal list",
        "term" => "cove plan term list",
        "question" => "cove plan checkin question list",
        "later check-in" => "cove plan checkin later list",
        "technique" => "cove plan deescalation technique list",
        "space" => "cove plan deescalation space list",
        "session" => "cove session list",
        "review" => "cove review list",
        _ => return None,
    };
    Some(format!("`{list}` shows the ids"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listed_section_names_a_real_command() {
        use clap::CommandFactory;
        let cli = crate::args::Cli::command();
        for section in [
            "need",
            "boundary",
            "menu option",
            "step",
            "signal",
            "term",
            "question",
            "later check-in",
            "technique",
            "space",
            "session",
            "review",
        ] {
            let error = PlanError::NotFound { section, id: "X".into() };
            let advice = plan(&error).unwrap();
            let command = advice.trim_start_matches('`').split('`').next().unwrap();
            let words: Vec<&str> = command.split(' ').skip(1).collect();
            let mut at = &cli;
            for word in &words {
                at = at
                    .find_subcommand(word)
                    .unwrap_or_else(|| panic!("`{command}` is not a command ({word})"));
            }
        }
    }
}
