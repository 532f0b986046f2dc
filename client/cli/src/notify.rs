//! What `cove daemon` tells beyond its own output, for each event (a
//! signal, an answer to one, a reminder): a desktop notification, where
//! there is a desktop session bus (see `cove_notify`); and with `--exec
//! CMD`, a command, so that any platform's notifier can hook in.
//!
//! The command runs with `sh -c`, without the daemon's passphrase (or a
//! recovery phrase) in its environment, with the event in it instead:
//! `COVE_EVENT` (`stop`, `signal`, `answer`, `checkin`, `review-due`,
//! `review-confirmed`) and `COVE_TEXT`, which is discreet ("Cove: a signal
//! from your partner") unless `--notify-content` asks for the plan's own
//! words. The daemon does not wait for it; a command that fails is logged,
//! never fatal.

use std::process::{Command, Stdio};
use std::sync::Arc;

/// The hook: desktop notifications and the `--exec` command.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hook {
    command: Option<String>,
    content: bool,
    desktop: Option<Arc<cove_notify::Notifier>>,
}

impl Hook {
    /// A hook running `command` (none: nothing runs) and raising desktop
    /// notifications if `desktop`; `content`: the plan's own words go into
    /// them, not only what kind of event it is.
    pub(crate) fn new(command: Option<String>, content: bool, desktop: bool) -> Self {
        let desktop = desktop.then(|| Arc::new(cove_notify::Notifier::new()));
        Self { command, content, desktop }
    }

    /// Tells of one event.
    pub(crate) fn fire(&self, event: &str, discreet: &str, detailed: &str) {
        let text = if self.content { detailed } else { discreet };
        if let Some(desktop) = &self.desktop {
            let (desktop, text) = (Arc::clone(desktop), text.to_owned());
            tokio::spawn(async move { desktop.show(&text, "").await });
        }
        let Some(command) = &self.command else { return };
        // Never the secrets a service keeps in the daemon's environment;
        // its output goes to the daemon's log side, not the lines a script
        // reads; and no control characters from the other partner's text.
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env_remove("COVE_PASSPHRASE")
            .env_remove("COVE_RECOVERY_PHRASE")
            .env("COVE_EVENT", event)
            .env("COVE_TEXT", crate::output::terminal_safe(text))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        match spawned {
            // Reaped on a thread of its own, so that no exit is left behind.
            Ok(mut child) => {
                std::thread::spawn(move || {
                    if let Ok(status) = child.wait()
                        && !status.success()
                    {
                        tracing::warn!(%status, "the --exec command failed");
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "cannot run the --exec command"),
        }
    }
}
