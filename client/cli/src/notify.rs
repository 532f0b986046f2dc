//! What `cove daemon` tells beyond its own output, for each event (a
//! signal, an answer to one, a reminder): a desktop notification, where
//! there is a desktop session bus (see `cove_notify`); and with `--exec
//! CMD`, a command, so that any platform's notifier can hook in.
//!
//! The command runs with `sh -c`, with the event in its environment:
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
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("COVE_EVENT", event)
            .env("COVE_TEXT", text)
            .stdin(Stdio::null())
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
