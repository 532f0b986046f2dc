//! Sending what was just saved, at once, and saying truthfully how far it
//! got: both faces use it after an edit or a signal, so that "sent" is
//! said only once a fetched page has shown the relay holds it.

use super::{connect, send_and_confirm, sync_once};
use crate::device::Device;
use std::time::Duration;

/// How long a face waits for the relay before saying something was not
/// sent (it stays in the outbox, and goes at the next sync).
pub const DELIVER_WITHIN: Duration = Duration::from_secs(3);

/// How far sending got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The relay holds everything this device has saved: a fetched page
    /// showed it.
    Sent,
    /// Saved on this device, not (yet) shown to be stored by the relay;
    /// the reason, as a clause ("the relay did not answer in time").
    NotSent(String),
    /// This device was removed from the plan: what it saved will never be
    /// sent. The sentence says who removed it, and when.
    Removed(String),
}

/// Sends the outbox now, within `within`, and confirms it.
pub async fn deliver(device: &mut Device, within: Duration) -> Delivery {
    let sent = async {
        let (conn, _pushes) = connect(device).await?;
        send_and_confirm(device, &conn).await
    };
    let outcome = match tokio::time::timeout(within, sent).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("the relay has not yet shown that it stored it".to_owned()),
        Ok(Err(error)) => {
            if error.is_removal() {
                // Learn it from the signed log, which says who and when.
                let learn = async {
                    let (conn, _pushes) = connect(device).await?;
                    sync_once(device, &conn).await
                };
                let _ = tokio::time::timeout(within, learn).await;
            }
            Err(error.to_string())
        }
        Err(_) => Err("the relay did not answer in time".to_owned()),
    };
    // A device that learned just now that it was removed must not promise
    // to send what it saved.
    match (outcome, device.removal()) {
        (Ok(()), _) => Delivery::Sent,
        (Err(_), Some(removal)) => Delivery::Removed(removal),
        (Err(reason), None) => Delivery::NotSent(reason),
    }
}
