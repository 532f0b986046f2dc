//! `cove-notify`: desktop notifications for `cove daemon` and `cove ui`,
//! through the freedesktop notification service on the D-Bus session bus
//! (`org.freedesktop.Notifications`).
//!
//! What a notification says is the face's choice: discreet by default
//! ("Cove: a signal from your partner"), so that a screen others can see
//! shows nothing of the plan. Where there is no session bus, or no
//! notification service on it (a server, a container), the notifier says
//! so once in the log and stays quiet; a notification never holds up the
//! caller for long and never fails it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use zbus::zvariant::Value;

/// The service, its object and its interface.
const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// How long one notification may take before it is given up.
const WITHIN: Duration = Duration::from_secs(3);

/// Raises desktop notifications on the session bus.
#[derive(Debug, Default)]
pub struct Notifier {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
enum State {
    /// Not connected yet.
    #[default]
    Unknown,
    Connected(zbus::Connection),
    /// No session bus: stay quiet.
    Off,
}

impl Notifier {
    /// A notifier that connects to the session bus on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `summary` (one line) with `body` (may be empty); returns
    /// whether the notification service took it.
    pub async fn show(&self, summary: &str, body: &str) -> bool {
        let mut state = self.state.lock().await;
        if matches!(*state, State::Unknown) {
            *state = match tokio::time::timeout(WITHIN, zbus::Connection::session()).await {
                Ok(Ok(connection)) => State::Connected(connection),
                Ok(Err(error)) => {
                    tracing::info!(%error, "no desktop session bus: no desktop notifications");
                    State::Off
                }
                Err(_) => {
                    tracing::info!(
                        "the desktop session bus did not answer: no desktop notifications"
                    );
                    State::Off
                }
            };
        }
        let State::Connected(connection) = &*state else { return false };
        let hints: HashMap<&str, Value<'_>> = HashMap::new();
        let actions: Vec<&str> = Vec::new();
        // app name, id to replace, icon, summary, body, actions, hints,
        // timeout (-1: the server's own).
        let arguments = ("Cove", 0u32, "", summary, body, actions, hints, -1i32);
        let call = connection.call_method(Some(SERVICE), PATH, Some(SERVICE), "Notify", &arguments);
        let outcome = tokio::time::timeout(WITHIN, call).await;
        match outcome {
            Ok(Ok(_)) => true,
            // Said once: without a service that answers, stay quiet.
            Ok(Err(error)) => {
                tracing::info!(%error, "no desktop notification service: no desktop notifications");
                *state = State::Off;
                false
            }
            Err(_) => {
                tracing::info!(
                    "the desktop notification service did not answer: no desktop notifications"
                );
                *state = State::Off;
                false
            }
        }
    }
}
