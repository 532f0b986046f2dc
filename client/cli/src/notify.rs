//! What `cove daemon` tells beyond its own output: with `--exec CMD`, it
//! runs a command for each event (a signal, an answer to one, a reminder),
//! so that any platform's notifier can hook in.
//!
//! The command runs with `sh -c`, with the event in its environment:
//! `COVE_EVENT` (`stop`, `signal`, `answer`, `checkin`, `review-due`,
//! `review-confirmed`) and `COVE_TEXT`, which is discreet ("Cove: a signal
//! from your partner") unless `--notify-content` asks for the plan's own
//! words. The daemon does not wait for it; a command that fails is logged,
//! never fatal.

use std::process::{Command, Stdio};

/// The `--exec` hook.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hook {
    command: Option<String>,
    content: bool,
}

impl Hook {
    /// A hook running `command` (none: nothing runs); `content`: the plan's
    /// own words go into `COVE_TEXT`.
    pub(crate) fn new(command: Option<String>, content: bool) -> Self {
        Self { command, content }
    }

    /// Runs the command for one event.
    pub(crate) fn fire(&self, event: &str, discreet: &str, detailed: &str) {
        let Some(command) = &self.command else { return };
        let text = if self.content { detailed } else { discreet };
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
