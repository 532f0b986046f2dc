//! The sync engine: one pass over a relay connection, and the daemon loop.
//!
//! A pass: make sure the relay has the plan and this device's membership
//! entries, and take the relay's; rotate the key if a device left; send the
//! outbox in order; start from snapshots if this device is new; fetch every
//! envelope after the stored cursor, page by page, verify and apply each
//! page in one batch, and acknowledge the cursor only after the local
//! commit; fetch again where a gap was seen; after a rollback, send again
//! what the relay lost; upload a snapshot where one is due. The daemon runs
//! a pass, then stays subscribed and applies live deliveries as they come,
//! reconnecting with exponential backoff and jitter when the connection
//! drops.
//!
//! The relay decides what it serves, so every loop here is bounded by what
//! it said at the start: a relay cannot keep a device in a pass forever.

use crate::device::{Alarm, Device, DeviceError, Received, ReceivedSignal};
use crate::transport::{Push, RelayConnection, TransportError};
use cove_shared::membership::Entry;
use cove_shared::random::Entropy;
use cove_shared::wire::{Cursor, ErrorCode, MAX_PAGE_ITEMS, StoredEnvelope};
use cove_shared::{DocId, Kind, OsEntropy, envelope};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Outbox envelopes the relay stored.
    pub sent: usize,
    /// Membership entries learned.
    pub membership: usize,
    /// Changes applied, per document.
    pub applied: [usize; 3],
    /// Envelopes held back, as of the end.
    pub held: usize,
    /// Envelopes quarantined.
    pub quarantined: usize,
    /// Snapshots uploaded.
    pub snapshots: usize,
    /// Signals received.
    pub signals: Vec<ReceivedSignal>,
    /// Own envelopes sent again because the relay did not serve them where
    /// it said it had stored them.
    pub resent: usize,
    /// Own envelopes the relay said it stored that no page has shown yet.
    pub unconfirmed: u64,
}

impl SyncReport {
    fn add(&mut self, received: &Received) {
        for (total, n) in self.applied.iter_mut().zip(received.applied) {
            *total += n;
        }
        self.held = received.held;
        self.quarantined += received.quarantined;
        self.signals.extend(received.signals.iter().cloned());
    }
}

/// Connects to the device's relay and authenticates.
pub async fn connect(
    device: &Device,
) -> Result<(RelayConnection, mpsc::Receiver<Push>), DeviceError> {
    Ok(RelayConnection::connect(device.relay(), device.secret()).await?)
}

/// Whether the device's relay answers and signs this device in, now.
pub async fn check_relay(device: &Device) -> Result<(), DeviceError> {
    connect(device).await.map(|_| ())
}

/// Makes the relay's membership log and this device's agree: registers the
/// plan if the relay has never seen it, takes entries the relay has that
/// this device lacks, and uploads entries this device made offline.
pub async fn sync_membership(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<usize, DeviceError> {
    let plan = device.plan();
    let remote = match conn.fetch_membership(plan, 0).await {
        Ok(remote) => remote,
        Err(TransportError::Refused { code: ErrorCode::NotFound, .. })
            if !device.is_registered() =>
        {
            let entries: Vec<Vec<u8>> =
                device.log().entries().iter().map(|e| e.encode().to_vec()).collect();
            conn.create_plan(&entries[0]).await?;
            for entry in &entries[1..] {
                conn.append_membership(plan, entry).await?;
            }
            device.mark_registered().await?;
            return Ok(0);
        }
        Err(TransportError::Refused { code: ErrorCode::NotFound, .. }) => {
            return Err(DeviceError::PlanGone);
        }
        Err(error) => return Err(error.into()),
    };
    let local: Vec<Vec<u8>> = device.log().entries().iter().map(|e| e.encode().to_vec()).collect();
    let common = local.len().min(remote.len());
    if local[..common] != remote[..common] {
        device.raise_alarm(Alarm::MembershipFork).await?;
        return Err(DeviceError::Invalid(
            "the relay's list of devices differs from this device's; the relay may be misbehaving"
                .into(),
        ));
    }
    let served = remote.len() as u64;
    device.note_relay_membership(served).await?;
    if remote.len() < local.len() {
        for entry in &local[remote.len()..] {
            conn.append_membership(plan, entry).await?;
        }
        return Ok(0);
    }
    device.apply_membership(&remote[local.len()..]).await
}

/// Publishes a membership entry this device makes: the relay must accept it
/// before this device keeps it. `make` builds the entry from the current
/// log; if another device appended first, the log is refreshed and the
/// entry made again.
pub async fn publish_entry(
    device: &mut Device,
    conn: &RelayConnection,
    make: impl Fn(&Device) -> Result<Entry, DeviceError>,
) -> Result<(), DeviceError> {
    for _ in 0..3 {
        sync_membership(device, conn).await?;
        let entry = make(device)?;
        match conn.append_membership(device.plan(), entry.encode()).await {
            Ok(_) => return device.append_own_entry(entry).await,
            Err(TransportError::Refused { code: ErrorCode::MembershipConflict, .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(DeviceError::Invalid(
        "the list of devices kept changing while this change was being made; try again".into(),
    ))
}

/// One sync pass over `conn`.
pub async fn sync_once(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<SyncReport, DeviceError> {
    let mut report =
        SyncReport { membership: sync_membership(device, conn).await?, ..SyncReport::default() };
    if !device.is_active() {
        return Err(DeviceError::Revoked);
    }
    if device.membership().rotation_due() {
        rotate(device, conn).await?;
    }
    device.seal_held_back().await?;
    report.sent = send_outbox(device, conn).await?;
    if device.cursor() == Cursor(0) {
        start_from_snapshots(device, conn).await?;
    }
    fetch_all(device, conn, &mut report).await?;
    refetch_gaps(device, conn, &mut report).await?;
    if device.owes_own_document() {
        device.ensure_own_document().await?;
        report.sent += send_outbox(device, conn).await?;
    }
    for doc in DocId::ALL {
        if let Some((covers, envelope)) = device.snapshot_if_due(doc).await? {
            match conn.put_snapshot(device.plan(), covers, &envelope).await {
                Ok(_) => report.snapshots += 1,
                // Another device's newer snapshot won; nothing is lost.
                Err(TransportError::Refused { code: ErrorCode::InvalidSnapshot, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    device.finish_sync().await?;
    report.unconfirmed = device.unconfirmed_count().await?;
    Ok(report)
}

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

/// Moves every active device to a new key (after a device left).
pub async fn rotate(device: &mut Device, conn: &RelayConnection) -> Result<(), DeviceError> {
    let entry = device.rotation()?;
    match conn.append_membership(device.plan(), entry.encode()).await {
        Ok(_) => device.append_own_entry(entry).await,
        // Another device rotated first: take its entry instead.
        Err(TransportError::Refused { code: ErrorCode::MembershipConflict, .. }) => {
            sync_membership(device, conn).await.map(|_| ())
        }
        Err(error) => Err(error.into()),
    }
}

/// Sends the outbox, oldest first; returns how many the relay stored.
pub async fn send_outbox(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<usize, DeviceError> {
    let plan = device.plan();
    let mut sent = 0;
    for (id, envelope) in device.outbox().await? {
        match conn.push(plan, &envelope).await {
            Ok((cursor, _duplicate)) => {
                device.sent(id, &envelope, cursor).await?;
                sent += 1;
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
    Ok(sent)
}

/// A new device loads each document from its newest snapshot, if any.
async fn start_from_snapshots(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<(), DeviceError> {
    for doc in DocId::ALL {
        if let Some(stored) = conn.get_snapshot(device.plan(), doc).await? {
            device.start_from_snapshot(doc, &stored).await?;
        }
    }
    Ok(())
}

/// Fetches and applies everything after the stored cursor, up to the head
/// the relay reported at the start; then settles this device's own
/// envelopes that the pages should have shown (see [`settle_own`]).
pub async fn fetch_all(
    device: &mut Device,
    conn: &RelayConnection,
    report: &mut SyncReport,
) -> Result<(), DeviceError> {
    let plan = device.plan();
    // The first page starts one before the cursor, to check that the relay
    // still holds what this device read there.
    let mut probe = device.cursor_probe();
    let mut limit: Option<Cursor> = None;
    let mut restarted = false;
    // Everything after this is read in this pass.
    let mut read_from = device.cursor();
    // Own envelopes the relay had answered for before this pass began;
    // another process may add more meanwhile.
    let answered = device.local().sent_watermark().await?;
    loop {
        let after = device.cursor();
        let from = if probe.is_some() { Cursor(after.0 - 1) } else { after };
        let (items, head, compacted) = conn.fetch(plan, from, MAX_PAGE_ITEMS).await?;
        let seen = device.relay_head().max(device.cursor()).0;
        let rewritten =
            probe.take().is_some_and(|mark| match items.iter().find(|i| i.cursor == after) {
                Some(item) => !mark.matches(item),
                // Expired signals and compacted changes leave on purpose.
                None => !mark.may_vanish(compacted) && head >= after,
            });
        if head.0 < seen || rewritten {
            if restarted {
                // Once per pass; the alarm is raised.
                return Ok(());
            }
            restarted = true;
            // Nothing applied here is undone. Read everything the relay
            // holds again (what was applied comes back as duplicates): what
            // it stores next may carry cursors this device has read past.
            // Whatever of this device's own the relay may have lost is
            // checked again on the way, and sent again if it is missing.
            let alarm = if rewritten {
                Alarm::Rewritten { cursor: after.0 }
            } else {
                Alarm::Rollback { seen, served: head.0 }
            };
            device.reopen_own(compacted.0).await?;
            device.read_again(alarm, head).await?;
            limit = None;
            read_from = Cursor(0);
            continue;
        }
        let limit = *limit.get_or_insert(head);
        device.note_relay_page(head, compacted).await?;
        if compacted.0 > after.0 && device.cursor() > Cursor(0) {
            // Changes this device never saw were folded into snapshots
            // while it was away: merge the snapshots first.
            start_from_snapshots(device, conn).await?;
        }
        // Only what lies after the cursor counts: a relay that serves the
        // same page again and again must not keep the device here. Nothing
        // can lie beyond the head the same page states.
        if let Some(beyond) = items.iter().map(|i| i.cursor).filter(|c| *c > head).max() {
            device.raise_alarm(Alarm::Inconsistent { cursor: beyond.0 }).await?;
        }
        let items: Vec<StoredEnvelope> =
            items.into_iter().filter(|i| i.cursor > after && i.cursor <= head).collect();
        let done = items.is_empty() || {
            apply_page(device, conn, items, report).await?;
            device.cursor() >= limit
        };
        if done {
            report.resent += settle_own(device, conn, answered, read_from).await?;
            return Ok(());
        }
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

/// After a gap: fetches the stretch where the missing envelopes must lie
/// again, once per pass, in case the relay now serves them. What was
/// already applied comes back as duplicates and is ignored.
async fn refetch_gaps(
    device: &mut Device,
    conn: &RelayConnection,
    report: &mut SyncReport,
) -> Result<(), DeviceError> {
    let Some(from) = device.take_refetch().await? else { return Ok(()) };
    let until = device.cursor();
    let mut after = from;
    while after < until {
        let (items, _, _) = conn.fetch(device.plan(), after, MAX_PAGE_ITEMS).await?;
        let items: Vec<StoredEnvelope> =
            items.into_iter().filter(|i| i.cursor > after && i.cursor <= until).collect();
        let Some(last) = items.last().map(|i| i.cursor) else { break };
        after = last;
        apply_page(device, conn, items, report).await?;
    }
    Ok(())
}

/// Applies one page (or one live delivery batch) and acknowledges it.
pub async fn apply_page(
    device: &mut Device,
    conn: &RelayConnection,
    items: Vec<StoredEnvelope>,
    report: &mut SyncReport,
) -> Result<Received, DeviceError> {
    let mut received = device.receive(items).await?;
    if received.needs_membership {
        report.membership += sync_membership(device, conn).await?;
        let retried = device.receive(Vec::new()).await?;
        received.held = retried.held;
        received.quarantined += retried.quarantined;
        received.signals.extend(retried.signals);
        for (total, n) in received.applied.iter_mut().zip(retried.applied) {
            *total += n;
        }
    }
    report.add(&received);
    // Everything up to here is committed locally: the relay may compact it.
    conn.ack(device.plan(), received.cursor).await?;
    Ok(received)
}

/// What the daemon tells whoever runs it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Connected and synced, or caught up after a break in live delivery.
    Synced(SyncReport),
    /// Live envelopes were applied.
    Applied(Received),
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
    loop {
        let session = async {
            let (conn, mut pushes) = connect(device).await?;
            let report = sync_once(device, &conn).await?;
            // Subscribe only now, so that deliveries do not pile up while
            // the pass runs; then fetch what arrived in between.
            conn.subscribe(device.plan()).await?;
            let mut caught_up = SyncReport::default();
            fetch_all(device, &conn, &mut caught_up).await?;
            events(&Event::Synced(report));
            attempt = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
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
                        handle_pushes(device, &conn, batch, &mut events).await?;
                    }
                    // Edits made here or by another process on this state
                    // directory: checked every second, and at once when
                    // another instance says it wrote.
                    _ = tick.tick() => send_pending(device, &conn).await?,
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
async fn handle_pushes(
    device: &mut Device,
    conn: &RelayConnection,
    batch: Vec<Push>,
    events: &mut impl FnMut(&Event),
) -> Result<(), DeviceError> {
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
                if device.membership().rotation_due() {
                    rotate(device, conn).await?;
                    device.seal_held_back().await?;
                    send_outbox(device, conn).await?;
                }
            }
            Push::Revoked { .. } => {
                device.raise_alarm(Alarm::Revoked).await?;
                return Err(DeviceError::Revoked);
            }
            Push::Closed(error) => return Err(error.into()),
            _ => {}
        }
    }
    if items.is_empty() && !fetch {
        return Ok(());
    }
    items.sort_by_key(|i| i.cursor);
    let start = device.cursor().0;
    let contiguous =
        items.iter().enumerate().all(|(n, item)| item.cursor.0 == start + 1 + n as u64);
    if contiguous && !fetch {
        let mut report = SyncReport::default();
        let received = apply_page(device, conn, items, &mut report).await?;
        events(&Event::Applied(received));
    } else {
        let mut report = SyncReport::default();
        fetch_all(device, conn, &mut report).await?;
        events(&Event::Synced(report));
    }
    Ok(())
}
