//! The daemon: one pass, then live deliveries as they come, local edits
//! sent as they are made, and reconnection with backoff and jitter.

use super::{
    SyncReport, connect, fetch_all, rotate, send_and_confirm, send_checkpoint, send_outbox,
    sync_membership, sync_once, take_page,
};
use crate::device::{Alarm, CHECKPOINT_GAP_MS, Device, DeviceError, Received, Reminder};
use crate::transport::{Push, RelayConnection, TransportError};
use cove_shared::OsEntropy;
use cove_shared::random::Entropy;
use cove_shared::wire::Cursor;
use std::time::Duration;

/// What the daemon tells whoever runs it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Connected and synced, or caught up after a break in live delivery.
    Synced(SyncReport),
    /// Live envelopes were applied.
    Applied(Received),
    /// Check-ins and reviews that came due (each is given once).
    Reminders(Vec<Reminder>),
    /// Disconnected; retrying after `retry`.
    Disconnected {
        /// Why.
        error: String,
        /// When the next attempt is.
        retry: Duration,
    },
}

/// The first and the longest wait between reconnection attempts.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(60));

/// Exponential backoff with full jitter: a random wait up to
/// `first · 2^attempt`, capped.
pub fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF.0.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(BACKOFF.1);
    let fraction = f64::from(u32::from_be_bytes(OsEntropy.array())) / f64::from(u32::MAX);
    cap.mul_f64(fraction.max(0.1))
}

/// Stays connected: syncs, then applies live deliveries, sends local edits
/// (also those other processes put in the outbox) and reconnects when the
/// connection drops. Returns when the device is revoked or `stop` resolves.
pub async fn run_daemon(
    device: &mut Device,
    events: impl FnMut(&Event),
    stop: impl Future<Output = ()> + Unpin,
) -> Result<(), DeviceError> {
    run_daemon_nudged(device, events, stop, &tokio::sync::Notify::new()).await
}

/// [`run_daemon`], which also sends the outbox as soon as `send_now` is
/// notified (by another instance of the device, in the same process, that
/// has just written to it), rather than at the next check.
pub async fn run_daemon_nudged(
    device: &mut Device,
    mut events: impl FnMut(&Event),
    mut stop: impl Future<Output = ()> + Unpin,
    send_now: &tokio::sync::Notify,
) -> Result<(), DeviceError> {
    let mut attempt = 0u32;
    // The relay said this device was removed; the next sync checks that
    // against the signed log.
    let mut claimed_removed = false;
    loop {
        let session = async {
            let (conn, mut pushes) = connect(device).await?;
            let report = sync_once(device, &conn).await?;
            if std::mem::take(&mut claimed_removed) {
                device.raise_alarm(Alarm::FalseRemoval).await?;
            }
            // Subscribe only now, so that deliveries do not pile up while
            // the pass runs; then fetch what arrived in between.
            conn.subscribe(device.plan()).await?;
            let mut caught_up = SyncReport::default();
            fetch_all(device, &conn, &mut caught_up).await?;
            events(&Event::Synced(report));
            attempt = 0;
            remind(device, &mut events).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut next_look = tokio::time::Instant::now() + REMINDERS_EVERY;
            // Live deliveries are acknowledged on the next tick, not one by
            // one: an acknowledgement only lets the relay compact, and each
            // one is a durable write there.
            let mut unacked: Option<Cursor> = None;
            loop {
                tokio::select! {
                    push = pushes.recv() => {
                        let Some(push) = push else {
                            return Err(DeviceError::from(TransportError::Closed));
                        };
                        // Take whatever else already arrived: one batch.
                        let mut batch = vec![push];
                        while let Ok(more) = pushes.try_recv() {
                            batch.push(more);
                        }
                        if let Some(cursor) = handle_pushes(device, &conn, batch, &mut events).await? {
                            unacked = Some(cursor);
                        }
                    }
                    // Edits made here or by another process on this state
                    // directory: checked every second, and at once when
                    // another instance says it wrote. A checkpoint follows
                    // when what this device holds changed (at most every
                    // few seconds), and every quarter of an hour regardless.
                    _ = tick.tick() => {
                        if let Some(cursor) = unacked.take() {
                            conn.ack(device.plan(), cursor).await?;
                        }
                        send_pending(device, &conn).await?;
                        send_checkpoint(device, &conn, CHECKPOINT_GAP_MS).await?;
                        if tokio::time::Instant::now() >= next_look {
                            next_look += REMINDERS_EVERY;
                            remind(device, &mut events).await;
                        }
                    }
                    () = send_now.notified() => send_pending(device, &conn).await?,
                }
            }
        };
        let result: Result<(), DeviceError> = tokio::select! {
            result = session => result,
            () = &mut stop => return Ok(()),
        };
        match result {
            Err(DeviceError::Revoked) => return Err(DeviceError::Revoked),
            Err(error) => {
                claimed_removed |= matches!(error, DeviceError::Transport(TransportError::Revoked));
                let retry = backoff(attempt);
                attempt = attempt.saturating_add(1);
                events(&Event::Disconnected { error: error.to_string(), retry });
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = &mut stop => return Ok(()),
                }
            }
            Ok(()) => {}
        }
    }
}

/// How often a connected daemon looks for reminders that came due.
pub const REMINDERS_EVERY: Duration = Duration::from_secs(30);

/// Tells of reminders that came due, if any. A local failure here is
/// logged, never a reason to drop the relay's connection.
async fn remind(device: &mut Device, events: &mut impl FnMut(&Event)) {
    let due = match device.refresh().await {
        Ok(()) => device.due_reminders().await,
        Err(error) => Err(error),
    };
    match due {
        Ok(due) if !due.is_empty() => events(&Event::Reminders(due)),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot look for reminders"),
    }
}

/// Sends what the outbox holds, if anything, after taking up what other
/// instances wrote.
async fn send_pending(device: &mut Device, conn: &RelayConnection) -> Result<(), DeviceError> {
    if device.local().outbox_len().await? > 0 {
        device.refresh().await?;
        send_and_confirm(device, conn).await?;
    }
    Ok(())
}

/// Handles a batch of pushes. Live deliveries that continue exactly where
/// this device's cursor stands are applied as they are; anything else (a
/// hole, an out-of-order delivery, deliveries dropped for a full queue) is
/// a cue to fetch, so that the cursor only ever moves over what was read.
/// Returns the cursor to acknowledge, for deliveries applied live.
async fn handle_pushes(
    device: &mut Device,
    conn: &RelayConnection,
    batch: Vec<Push>,
    events: &mut impl FnMut(&Event),
) -> Result<Option<Cursor>, DeviceError> {
    let mut items = Vec::new();
    let mut fetch = false;
    for push in batch {
        match push {
            Push::Deliver { item, .. } => items.push(item),
            Push::Lagged => fetch = true,
            Push::MembershipChanged { .. } => {
                sync_membership(device, conn).await?;
                if !device.is_active() {
                    return Err(DeviceError::Revoked);
                }
                device.note_cited_log().await?;
                if device.membership().rotation_due() {
                    rotate(device, conn).await?;
                }
                device.seal_held_back().await?;
                if device.reseal_outbox(false).await? > 0 || device.local().outbox_len().await? > 0
                {
                    send_outbox(device, conn).await?;
                }
            }
            // The relay's word is a hint: reconnect, and let the signed log
            // (which a removed device may read up to its removal) settle it
            // and say who removed this device.
            Push::Revoked { .. } => return Err(TransportError::Revoked.into()),
            Push::Closed(error) => return Err(error.into()),
            _ => {}
        }
    }
    if items.is_empty() && !fetch {
        return Ok(None);
    }
    items.sort_by_key(|i| i.cursor);
    let start = device.cursor().0;
    let contiguous =
        items.iter().enumerate().all(|(n, item)| item.cursor.0 == start + 1 + n as u64);
    if contiguous && !fetch {
        let mut report = SyncReport::default();
        let received = take_page(device, conn, items, &mut report).await?;
        let cursor = received.cursor;
        events(&Event::Applied(received));
        Ok(Some(cursor))
    } else {
        let mut report = SyncReport::default();
        fetch_all(device, conn, &mut report).await?;
        events(&Event::Synced(report));
        Ok(None)
    }
}
