//! This device's own envelopes: sending the outbox, and confirming that
//! the relay holds what it said it stored, by reading it back.

use crate::device::{Alarm, Device, DeviceError};
use crate::transport::{RelayConnection, TransportError};
use cove_shared::wire::{Cursor, ErrorCode};
use cove_shared::{Kind, envelope};

/// Sends the outbox, then looks at each position the relay named for this
/// device's envelopes: only an envelope seen there is known to be stored.
/// Nothing else is fetched or applied. Returns whether everything this
/// device has sent is confirmed.
pub async fn send_and_confirm(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<bool, DeviceError> {
    send_outbox(device, conn).await?;
    // Every position is looked up; one not holding what the relay said
    // is sent again, and the new position looked up once more.
    for _ in 0..2 {
        let answered = device.local().sent_watermark().await?;
        if settle_own(device, conn, answered, Cursor::MAX).await? == 0 {
            break;
        }
    }
    Ok(device.local().outbox_len().await? == 0 && device.unconfirmed_count().await? == 0)
}

/// Sends the outbox, oldest first; returns how many the relay stored.
pub async fn send_outbox(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<usize, DeviceError> {
    let mut sent = 0;
    if device.log_withheld() {
        // What was sealed before may reach a device the hidden part removed.
        return Ok(sent);
    }
    // Once more after the relay says the plan moved to a new key.
    for _ in 0..2 {
        match send_each(device, conn, &mut sent).await? {
            Sending::Done => return Ok(sent),
            Sending::StaleEpoch => {
                super::sync_membership(device, conn).await?;
                device.reseal_outbox(true).await?;
            }
        }
    }
    Ok(sent)
}

/// How a pass over the outbox ended.
enum Sending {
    Done,
    /// The relay holds none of the rest under the key it was sealed with.
    StaleEpoch,
}

async fn send_each(
    device: &mut Device,
    conn: &RelayConnection,
    sent: &mut usize,
) -> Result<Sending, DeviceError> {
    let plan = device.plan();
    let outbox = device.outbox().await?;
    if let Some((last, _)) = outbox.last() {
        device.offering_upto(*last).await?;
    }
    for (id, envelope) in outbox {
        match conn.push(plan, &envelope).await {
            Ok((cursor, _duplicate)) => {
                device.sent(id, &envelope, cursor).await?;
                *sent += 1;
            }
            Err(TransportError::Refused { code: ErrorCode::StaleEpoch, .. }) => {
                return Ok(Sending::StaleEpoch);
            }
            Err(TransportError::Refused { code, message })
                if matches!(code, ErrorCode::InvalidEnvelope | ErrorCode::Equivocation) =>
            {
                if envelope::header_of(&envelope).is_err() {
                    // It does not even parse: a local fault, never sendable.
                    device.discard(id).await?;
                    continue;
                }
                // The relay's word alone never costs an edit: keep it, say
                // so, and stop here (what follows depends on it).
                tracing::warn!(%code, message, "the relay refused an outbox envelope");
                device.raise_alarm(Alarm::Fork { device: device.id() }).await?;
                break;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Sending::Done)
}

/// Sends this device's checkpoint, if one is due and the last was said at
/// least `min_gap_ms` ago (see `Device::checkpoint_due`). A relay that
/// refuses it costs nothing: the next one says the same and more. Returns
/// whether one was stored.
pub async fn send_checkpoint(
    device: &mut Device,
    conn: &RelayConnection,
    min_gap_ms: i64,
) -> Result<bool, DeviceError> {
    if !device.checkpoint_due(min_gap_ms) {
        return Ok(false);
    }
    let (envelope, digest) = match device.checkpoint_if_due().await {
        Ok(Some(sealed)) => sealed,
        Ok(None) => return Ok(false),
        // A checkpoint is advisory: a device that cannot seal one (it holds
        // no key for the epoch, say) still syncs, and its alarms say why.
        Err(error) => {
            tracing::warn!(%error, "this device could not make its checkpoint");
            return Ok(false);
        }
    };
    match conn.push(device.plan(), &envelope).await {
        Ok(_) => {
            device.checkpoint_said(digest).await?;
            Ok(true)
        }
        Err(TransportError::Refused { code, message }) => {
            // Not tried again before what it holds changes, or the quarter
            // of an hour is up: a relay that refuses it costs one attempt.
            tracing::warn!(%code, message, "the relay refused this device's checkpoint");
            device.checkpoint_said(digest).await?;
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// This device's own envelopes that the relay said it stored before this
/// pass began (kept rows up to `answered`): a fetch pass that has just read
/// the relay's log to its head should have shown each of them, so any still
/// unconfirmed is not where the relay said.
///
/// Everything after `read_from` was read in this pass, up to a head the
/// relay stated after it had answered for all of these: a position in that
/// stretch that did not show the envelope, or one beyond the relay's own
/// head, means it is missing. A position at or before `read_from` (the
/// device had read past it before the relay answered, or the relay named an
/// old position) is looked up once. What is missing is sent again, byte for
/// byte: devices that already have it ignore it as a duplicate. Returns how
/// many were sent again.
pub async fn settle_own(
    device: &mut Device,
    conn: &RelayConnection,
    answered: i64,
    read_from: Cursor,
) -> Result<usize, DeviceError> {
    let plan = device.plan();
    let now = device.now_ms();
    let mut resent = 0;
    let mut first_missing = None;
    for (id, record) in device.unconfirmed().await? {
        if id > answered {
            continue;
        }
        let Ok(header) = envelope::header_of(&record.envelope.0) else {
            device.forget_own(id).await?;
            continue;
        };
        if header.kind == Kind::Signal && device.own_signal_expired(&record.envelope.0, now) {
            device.forget_own(id).await?;
            continue;
        }
        if record.cursor <= read_from.0 && record.cursor > 0 {
            let at = Cursor(record.cursor);
            let (items, _, _) = conn.fetch(plan, Cursor(at.0 - 1), 1).await?;
            if items.first().is_some_and(|i| i.cursor == at && i.envelope == record.envelope) {
                device.confirm_own(id, record, at).await?;
                continue;
            }
        }
        first_missing.get_or_insert(record.cursor);
        match conn.push(plan, &record.envelope.0).await {
            Ok((cursor, _)) => {
                device.sent_again(id, record, cursor).await?;
                resent += 1;
            }
            Err(TransportError::Refused { code, message })
                if matches!(code, ErrorCode::InvalidEnvelope | ErrorCode::Equivocation) =>
            {
                // Kept, and said: the relay's refusal alone never costs an edit.
                tracing::warn!(%code, message, "the relay refused an envelope sent again");
                device.raise_alarm(Alarm::Fork { device: device.id() }).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(cursor) = first_missing {
        device.raise_alarm(Alarm::Unconfirmed { cursor }).await?;
    }
    Ok(resent)
}
