//! The next step, in `cove` commands, after an error the engine reported:
//! the engine says what happened, and only this face knows which command
//! helps. Printed after the error, in the same sentence.

use cove_client::device::DeviceError;
use cove_client::keystore::KeystoreError;
use cove_client::localdb::LocalError;
use cove_client::pairing::PairError;
use cove_client::plan::export::ImportError;
use cove_client::plan::write::PlanError;
use cove_client::recovery::RecoverError;

/// The whole message for `error`, as `cove` prints it on stderr.
pub(crate) fn message(error: &anyhow::Error) -> String {
    let said = error.to_string();
    let said = said.trim_end_matches('.');
    match next_step(error) {
        Some(next) => format!("cove: {said}; {next}."),
        None => format!("cove: {said}."),
    }
}

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
    if let Some(e) = error.downcast_ref::<RecoverError>() {
        return match e {
            RecoverError::Phrase(_) => Some(
                "check the words against where you keep them, and run `cove recover` again".into(),
            ),
            RecoverError::Device(e) => device(e),
            _ => None,
        };
    }
    if error.downcast_ref::<ImportError>().is_some() {
        return Some(
            "give a file that `cove export --format json` wrote, or a directory of `cove export --format automerge`".into(),
        );
    }
    None
}

fn device(error: &DeviceError) -> Option<String> {
    use cove_client::transport::TransportError as T;
    Some(
        match error {
            DeviceError::Keystore(e) => return keystore(e),
            DeviceError::Plan(e) => return plan(e),
            DeviceError::AlreadyExists(_) => {
                "use it (`cove status`), or run `cove wipe` first to start over"
            }
            DeviceError::Home { .. } => "set COVE_HOME to a directory you can write, or fix its permissions",
            DeviceError::Incomplete => "run `cove wipe`, then `cove init` or `cove join` again",
            DeviceError::PlanGone => "`cove export` keeps a copy, and `cove wipe` removes it from this device",
            DeviceError::StateBehind => {
                "remove it with `cove device revoke` on another device, then pair it again"
            }
            DeviceError::NoKey => {
                "run `cove sync`, and if that does not help, pair this device again"
            }
            DeviceError::Revoked | DeviceError::Transport(T::Revoked) => {
                "`cove export` keeps a copy of what it holds, and `cove wipe` erases it"
            }
            DeviceError::Local(LocalError::Corrupt) => {
                "restore the state directory from a backup, or run `cove wipe` and pair this device again"
            }
            DeviceError::Local(
                LocalError::Database(_) | LocalError::Migrate(_) | LocalError::Io(_),
            ) => "nothing was changed; try again, and if it goes on, check the disk",
            DeviceError::Doc(_) => "nothing was changed; run `cove sync` again, and `cove status` shows any alarm",
            DeviceError::Membership(_) => "nothing was changed; run `cove sync`, then try again",
            DeviceError::TooLarge(_) => "make it shorter, or split it in two",
            DeviceError::Transport(T::Refused { .. }) => {
                "the change is kept here; `cove sync` tries again, and if the refusal goes on, ask the relay's operator"
            }
            DeviceError::Transport(T::Closed | T::Timeout | T::Protocol(_)) => {
                "the change is kept here; `cove sync` tries again"
            }
            DeviceError::Transport(T::Certificate(_)) => {
                "if the relay's certificate was renewed on purpose, `cove relay set --relay-cert-sha256 FINGERPRINT` pins the new one"
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
                "try again (if it is lost, `cove recover` with your recovery phrase makes a new device, and your partner's copy of the plan is unaffected)"
            }
            KeystoreError::Tampered | KeystoreError::Downgraded { .. } => {
                "restore it from a backup, or run `cove wipe` and pair this device again"
            }
            KeystoreError::OtherFormat => "use the version of Cove that made it",
            KeystoreError::Io { .. } => "check that the directory exists and that you can write to it",
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
            PairError::Unknown => "check the code, or start again with `cove pair`",
            PairError::Burned | PairError::TimedOut | PairError::Protocol(_) => {
                "start again with `cove pair`"
            }
            PairError::Declined => "start again with `cove pair` on the other device",
            PairError::PartnerHasIdentity => {
                "on one of their devices, `cove pair --own-device` adds another, or they run `cove recover`"
            }
            PairError::NoIdentity => {
                "run `cove pair --own-device` on another of your devices, or `cove recover` here"
            }
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
    if let PlanError::Doc(_) = error {
        return Some(
            "nothing was saved; try again, and `cove export` keeps a copy of the plan".into(),
        );
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

    fn anyhow_of(error: cove_client::errors::AnyError) -> anyhow::Error {
        use cove_client::errors::AnyError as E;
        match error {
            E::Device(e) => e.into(),
            E::Pair(e) => e.into(),
            E::Recover(e) => e.into(),
            E::Import(e) => e.into(),
        }
    }

    /// Whether `command` ("cove plan need list", "cove pair --own-device")
    /// names a real subcommand, and every flag it gives is one that
    /// subcommand takes.
    fn is_command(cli: &clap::Command, command: &str) -> bool {
        let mut at = cli;
        let mut path = true;
        for word in command.split(' ').skip(1) {
            if let Some(flag) = word.strip_prefix("--") {
                path = false;
                let flag = flag.split('=').next().unwrap_or(flag);
                if !at.get_arguments().any(|a| a.get_long() == Some(flag)) {
                    return false;
                }
            } else if path && !word.chars().all(|c| c.is_ascii_uppercase()) {
                match at.find_subcommand(word) {
                    Some(sub) => at = sub,
                    None => return false,
                }
            } else {
                path = false;
            }
        }
        true
    }

    /// Every error the engine can return reads, on the command line, as
    /// one sentence: what happened, then which command helps (unless the
    /// engine's words already say what to do), in the command line's
    /// words, naming only commands that exist.
    #[test]
    fn every_engine_error_has_command_line_wording() {
        use clap::CommandFactory;
        use cove_client::errors::{SAYS_WHAT_TO_DO, examples, kind};
        let mut cli = crate::args::Cli::command();
        // Global flags (--home, --json) reach every subcommand once built.
        cli.build();
        let mut wrong = Vec::new();
        for example in examples() {
            let kind = kind(&example);
            let error = anyhow_of(example);
            let said = message(&error);
            if next_step(&error).is_none() && !SAYS_WHAT_TO_DO.contains(&kind) {
                wrong.push(format!("{kind}: no next step: {said}"));
            }
            if said.ends_with("..") || said.contains('\n') {
                wrong.push(format!("{kind}: not one sentence: {said}"));
            }
            for word in ["page", "reload", "button", "click"] {
                if said.contains(word) {
                    wrong.push(format!("{kind}: the page's words: {said}"));
                }
            }
            for command in said.split('`').skip(1).step_by(2) {
                if !command.starts_with("cove ") || !is_command(&cli, command) {
                    wrong.push(format!("{kind}: `{command}` is not a command"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
