//! The sync engine: one pass over a relay connection, and the daemon loop.
//!
//! A pass: make sure the relay has the plan and this device's membership
//! entries, and take the relay's; rotate the key if a device left; send the
//! outbox in order; start from snapshots if this device is new; fetch every
//! envelope after the stored cursor, page by page, verify and apply each
//! page in one batch, and acknowledge the cursor only after the local
//! commit; read again from where each other device was last heard, in case
//! the relay left something out; fetch again where a gap was seen; after a
//! rollback, send again what the relay lost; upload a snapshot where one is
//! due; and last, send this device's checkpoint. The daemon runs
//! a pass, then stays subscribed and applies live deliveries as they come,
//! checkpointing after each (and every quarter of an hour),
//! reconnecting with exponential backoff and jitter when the connection
//! drops.
//!
//! The relay decides what it serves, so every loop here is bounded by what
//! it said at the start: a relay cannot keep a device in a pass forever.
//!
//! # Layout
//! - this module: one pass, and reading the relay's log.
//! - [`own`]: sending the outbox, and confirming what the relay stored.
//! - [`daemon`]: staying connected.

mod daemon;
mod deliver;
mod own;

pub use daemon::{BACKOFF, Event, REMINDERS_EVERY, backoff, run_daemon, run_daemon_nudged};
pub use deliver::{DELIVER_WITHIN, Delivery, deliver};
pub use own::{send_and_confirm, send_checkpoint, send_outbox, settle_own};

use crate::device::{Alarm, AnswerRecord, Device, DeviceError, Received, ReceivedSignal};
use crate::transport::{Push, RelayConnection, TransportError};
use cove_shared::DocId;
use cove_shared::membership::Entry;
use cove_shared::wire::{Cursor, ErrorCode, MAX_PAGE_ITEMS, StoredEnvelope};
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
    /// Answers to signals received.
    pub answers: Vec<AnswerRecord>,
    /// Own envelopes sent again because the relay did not serve them where
    /// it said it had stored them.
    pub resent: usize,
    /// Own envelopes the relay said it stored that no page has shown yet.
    pub unconfirmed: u64,
    /// Whether this device's checkpoint was stored.
    pub checkpointed: bool,
}

impl SyncReport {
    fn add(&mut self, received: &Received) {
        for (total, n) in self.applied.iter_mut().zip(received.applied) {
            *total += n;
        }
        self.held = received.held;
        self.quarantined += received.quarantined;
        self.signals.extend(received.signals.iter().cloned());
        self.answers.extend(received.answers.iter().copied());
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
    let applied = device.apply_membership(&remote[local.len()..]).await;
    // Now that the new entries are verified (or refused), they count as seen.
    device.note_relay_membership(served).await?;
    applied
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

/// Gives this device's partner a new identity and recovery phrase, then
/// moves every device to a new epoch key, which the old phrase cannot open.
/// Returns the new phrase, to show once.
pub async fn new_phrase(device: &mut Device) -> Result<zeroize::Zeroizing<String>, DeviceError> {
    let seed = cove_shared::IdentitySeed::random(&mut cove_shared::OsEntropy);
    let new = cove_shared::PartnerSecret::from_seed(&seed)
        .ok_or_else(|| DeviceError::Invalid("the new identity was unusable; try again".into()))?;
    let (conn, _pushes) = connect(device).await?;
    publish_entry(device, &conn, |d| d.identity_rotation(&new)).await?;
    device.adopt_identity(&seed)?;
    sync_once(device, &conn).await?;
    Ok(cove_shared::phrase::encode(&seed))
}

/// One sync pass over `conn`.
pub async fn sync_once(
    device: &mut Device,
    conn: &RelayConnection,
) -> Result<SyncReport, DeviceError> {
    let mut report =
        SyncReport { membership: sync_membership(device, conn).await?, ..SyncReport::default() };
    device.note_cited_log().await?;
    if !device.is_active() {
        return Err(DeviceError::Revoked);
    }
    if device.membership().rotation_due() {
        rotate(device, conn).await?;
    }
    device.seal_held_back().await?;
    // Edits sealed before this device learned of a new key are sealed again.
    device.reseal_outbox(false).await?;
    report.sent = send_outbox(device, conn).await?;
    if device.cursor() == Cursor(0) {
        start_from_snapshots(device, conn).await?;
    }
    fetch_all(device, conn, &mut report).await?;
    recheck(device, conn, &mut report).await?;
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
    report.checkpointed = send_checkpoint(device, conn, 0).await?;
    Ok(report)
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

/// At most this many pages are read again per device per pass by
/// [`recheck`].
pub const RECHECK_PAGES: usize = 2;

/// Reads again what the relay served after the point where this device
/// last heard from each other device (at most [`RECHECK_PAGES`] pages from
/// each, and each stretch once). A relay that left envelopes out of the
/// pages it served, their sender's checkpoints included, cannot be caught by
/// the next envelope alone when that sender falls quiet: this way one
/// honest pass takes in what was left out. What was applied comes back as
/// duplicates.
async fn recheck(
    device: &mut Device,
    conn: &RelayConnection,
    report: &mut SyncReport,
) -> Result<(), DeviceError> {
    let until = device.cursor();
    let mut starts = device.last_heard_positions();
    starts.sort_unstable();
    let mut read_to = Cursor(0);
    for start in starts {
        let mut after = Cursor(start).max(read_to);
        for _ in 0..RECHECK_PAGES {
            if after >= until {
                break;
            }
            let (items, _, _) = conn.fetch(device.plan(), after, MAX_PAGE_ITEMS).await?;
            let items: Vec<StoredEnvelope> =
                items.into_iter().filter(|i| i.cursor > after && i.cursor <= until).collect();
            let Some(last) = items.last().map(|i| i.cursor) else {
                after = until;
                break;
            };
            after = last;
            apply_page(device, conn, items, report).await?;
        }
        read_to = after;
    }
    Ok(())
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
    for _ in 0..REFETCH_PAGES {
        if after >= until {
            return Ok(());
        }
        let (items, _, _) = conn.fetch(device.plan(), after, MAX_PAGE_ITEMS).await?;
        let items: Vec<StoredEnvelope> =
            items.into_iter().filter(|i| i.cursor > after && i.cursor <= until).collect();
        let Some(last) = items.last().map(|i| i.cursor) else { return Ok(()) };
        after = last;
        apply_page(device, conn, items, report).await?;
    }
    // The rest at the next pass, from here.
    device.refetch_from(after).await
}

/// At most this many pages are fetched again per pass after a gap; the
/// next pass goes on from where this one stopped.
pub const REFETCH_PAGES: usize = 16;

/// Applies one page and acknowledges it.
pub async fn apply_page(
    device: &mut Device,
    conn: &RelayConnection,
    items: Vec<StoredEnvelope>,
    report: &mut SyncReport,
) -> Result<Received, DeviceError> {
    let received = take_page(device, conn, items, report).await?;
    // Everything up to here is committed locally: the relay may compact it.
    conn.ack(device.plan(), received.cursor).await?;
    Ok(received)
}

/// Applies one page, or one batch of live deliveries, without
/// acknowledging it: see [`apply_page`].
pub(crate) async fn take_page(
    device: &mut Device,
    conn: &RelayConnection,
    items: Vec<StoredEnvelope>,
    report: &mut SyncReport,
) -> Result<Received, DeviceError> {
    let mut received = device.receive(items).await?;
    if received.needs_membership {
        report.membership += sync_membership(device, conn).await?;
        device.note_cited_log().await?;
        // Edits kept back while the list was withheld go out now, if it
        // has arrived.
        device.seal_held_back().await?;
        let retried = device.receive(Vec::new()).await?;
        received.held = retried.held;
        received.quarantined += retried.quarantined;
        received.signals.extend(retried.signals);
        received.answers.extend(retried.answers);
        for (total, n) in received.applied.iter_mut().zip(retried.applied) {
            *total += n;
        }
    }
    report.add(&received);
    Ok(received)
}
