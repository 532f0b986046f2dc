//! Receiving: what a device does with envelopes from the relay.
//!
//! For each envelope, in cursor order: check its header is well formed; open
//! it (membership, signature, key, decryption, in that order, inside
//! [`cove_shared::envelope::open`]); only then parse its payload; then ask
//! the freshness tracker whether it is new, a duplicate, after a gap, or a
//! fork. New changes are checked for their author and collected; everything
//! collected is applied in one batch per document; and the documents, the
//! freshness marks, held-back and quarantined envelopes and the cursor are
//! committed in one local transaction. Only then may the relay be told.
//!
//! What a relay can make a device keep is bounded: envelopes held back for
//! a gap are verified first, de-duplicated, and capped in number, bytes and
//! distance from the stream's tip; the quarantine keeps the newest entries,
//! truncated. Whatever is let go can be fetched again from an honest relay.

use crate::device::{
    Alarm, CursorMark, Device, DeviceError, ReceivedSignal, SENT_KEPT, SIGNALS_KEPT, SentEnvelope,
    unix_millis, unix_now,
};
use crate::docs::decode_changes;
use crate::localdb::{ListTable, LocalTx};
use crate::payload::{Payload, SnapshotPayload};
use automerge::Change;
use cove_shared::envelope::{self, Header};
use cove_shared::freshness::{Verdict, revoked_run};
use cove_shared::wire::{Blob, Cursor, StoredEnvelope, StoredSnapshot};
use cove_shared::{DeviceId, DocId, EnvelopeHash, Kind, Recipient, Seq, Stream};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many envelopes are held back at once.
pub const MAX_HELD: usize = 2048;
/// At most this many bytes of envelopes are held back at once.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;
/// Envelopes further than this past their stream's tip are not held.
pub const HOLD_WINDOW: u64 = 4096;
/// Held envelopes whose sender is not in this device's log (yet).
pub const MAX_HELD_UNVERIFIED: usize = 64;
/// The quarantine keeps this many of the newest entries.
pub const QUARANTINE_KEPT: u64 = 256;
/// And this many bytes of each envelope.
pub const QUARANTINE_BYTES: usize = 64 * 1024;

/// An envelope kept aside, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quarantined {
    /// Why it was refused.
    pub reason: String,
    /// Its relay cursor.
    pub cursor: u64,
    /// When (Unix milliseconds).
    pub at: i64,
    /// Its length.
    pub len: u64,
    /// The envelope as received, up to [`QUARANTINE_BYTES`].
    pub envelope: Blob,
}

/// An envelope held back until what comes before it arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    /// (sender, kind, doc, seq, hash), once its signature verified.
    key: Option<HoldKey>,
    item: StoredEnvelope,
}

type HoldKey = (DeviceId, u8, u8, u64, [u8; 32]);

/// What a batch of envelopes did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Changes applied, per document.
    pub applied: [usize; 3],
    /// Envelopes already applied before.
    pub duplicates: usize,
    /// Envelopes held back (a gap before them, or a revoked sender's run not
    /// yet complete).
    pub held: usize,
    /// Envelopes that failed a check.
    pub quarantined: usize,
    /// Signals that arrived.
    pub signals: Vec<ReceivedSignal>,
    /// The membership log must be fetched before some envelopes can be read.
    pub needs_membership: bool,
    /// The highest cursor handled (applied, skipped, held or quarantined).
    pub cursor: Cursor,
}

/// What one envelope came to.
enum Outcome {
    /// Verified, fresh and taken: changes go into the batch.
    Applied(Option<(DocId, Vec<Change>)>),
    Duplicate,
    Held(Option<HoldKey>),
    Quarantined(&'static str),
}

fn hold_key(header: &Header, hash: EnvelopeHash) -> HoldKey {
    (header.sender, header.kind.code(), header.doc.code(), header.seq.0, hash.0)
}

impl Device {
    /// Handles a batch of envelopes from the relay, and retries those held
    /// back earlier. See the module documentation for the order of checks.
    pub async fn receive(&mut self, items: Vec<StoredEnvelope>) -> Result<Received, DeviceError> {
        match self.write(async |device, tx| device.receive_in(tx, &items, false).await).await {
            // One change that Automerge refuses must not hold up the rest:
            // apply envelope by envelope, and quarantine what fails.
            Err(DeviceError::Doc(_)) => {
                self.write(async |device, tx| device.receive_in(tx, &items, true).await).await
            }
            other => other,
        }
    }

    async fn receive_in(
        &mut self,
        tx: &mut LocalTx,
        items: &[StoredEnvelope],
        careful: bool,
    ) -> Result<Received, DeviceError> {
        let mut report = Received { cursor: Cursor(self.sync.cursor), ..Received::default() };
        if let Some(last) = items.iter().max_by_key(|i| i.cursor) {
            if last.cursor.0 >= self.sync.cursor {
                self.sync.cursor_mark = Some(CursorMark::of(last));
            }
            report.cursor = report.cursor.max(last.cursor);
        }

        self.confirm_own_in(tx, items).await?;

        // Held envelopes first (with their rows), then the new ones.
        let held: Vec<(i64, Held)> =
            if tx.pending() > 0 { self.db.list(ListTable::Pending).await? } else { Vec::new() };
        let mut held_keys: BTreeSet<HoldKey> = held.iter().filter_map(|(_, h)| h.key).collect();
        let mut held_bytes: usize = held.iter().map(|(_, h)| h.item.envelope.0.len()).sum();
        let mut held_count = held.len();
        let mut unverified = held.iter().filter(|(_, h)| h.key.is_none()).count();
        let mut queue: Vec<(Option<i64>, StoredEnvelope)> =
            held.into_iter().map(|(id, h)| (Some(id), h.item)).collect();
        let seen: BTreeSet<Cursor> = queue.iter().map(|(_, i)| i.cursor).collect();
        queue.extend(items.iter().filter(|i| !seen.contains(&i.cursor)).map(|i| (None, i.clone())));
        queue.sort_by_key(|(_, i)| i.cursor);
        queue.dedup_by_key(|(_, i)| i.cursor);

        let mut batch: [Vec<(StoredEnvelope, Vec<Change>)>; 3] = Default::default();
        // Keep passing over what is held until nothing more fits: an
        // envelope that closes a gap lets the ones after it through.
        loop {
            let mut still_held = Vec::new();
            let mut progress = false;
            let revoked_runs = self.revoked_runs(queue.iter().map(|(_, i)| i));
            for (row, item) in std::mem::take(&mut queue) {
                let outcome = self.receive_one(&item, &mut report, &revoked_runs);
                if let Outcome::Held(key) = outcome {
                    still_held.push((row, item, key));
                    continue;
                }
                if let Some(id) = row {
                    tx.remove(ListTable::Pending, id);
                    held_count -= 1;
                    held_bytes = held_bytes.saturating_sub(item.envelope.0.len());
                }
                match outcome {
                    Outcome::Applied(changes) => {
                        progress = true;
                        if let Some((doc, changes)) = changes {
                            batch[usize::from(doc.code())].push((item, changes));
                        }
                    }
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::Quarantined(reason) => {
                        self.quarantine(tx, &item, reason, &mut report).await?
                    }
                    Outcome::Held(_) => {}
                }
            }
            if !progress || still_held.is_empty() {
                // Keep what is still held, within bounds.
                for (row, item, key) in still_held {
                    report.held += 1;
                    if row.is_some() {
                        continue;
                    }
                    let duplicate = key.is_some_and(|k| !held_keys.insert(k));
                    let fits = held_count < MAX_HELD
                        && held_bytes + item.envelope.0.len() <= MAX_HELD_BYTES
                        && (key.is_some() || unverified < MAX_HELD_UNVERIFIED);
                    if duplicate || !fits {
                        // Let it go: an honest relay serves it again.
                        continue;
                    }
                    held_count += 1;
                    held_bytes += item.envelope.0.len();
                    unverified += usize::from(key.is_none());
                    tx.push(ListTable::Pending, &Held { key, item })?;
                }
                break;
            }
            queue = still_held.into_iter().map(|(row, item, _)| (row, item)).collect();
        }
        // Gaps that closed end by themselves.
        let freshness = &self.freshness;
        self.sync.alarm_log.resolve(unix_millis(), |a| match a {
            Alarm::Gap { device, doc, missing_from } => freshness
                .tip(Stream { sender: *device, kind: Kind::Changes, doc: *doc })
                .is_some_and(|t| t.seq.0 >= *missing_from),
            _ => false,
        });

        for doc in DocId::ALL {
            let envelopes = std::mem::take(&mut batch[usize::from(doc.code())]);
            if envelopes.is_empty() {
                continue;
            }
            let mut applied = 0;
            if careful {
                for (item, changes) in envelopes {
                    let n = changes.len();
                    match self.docs.try_apply(doc, changes) {
                        Ok(()) => applied += n,
                        Err(_) => {
                            self.quarantine(tx, &item, "changes that do not apply", &mut report)
                                .await?;
                        }
                    }
                }
            } else {
                let changes: Vec<Change> = envelopes.into_iter().flat_map(|(_, c)| c).collect();
                applied = changes.len();
                self.docs.apply(doc, changes)?;
            }
            report.applied[usize::from(doc.code())] = applied;
            self.sync.since_snapshot[usize::from(doc.code())] += applied as u64;
            self.store_doc(tx, doc).await?;
        }
        self.sync.cursor = self.sync.cursor.max(report.cursor.0);
        if self.sync.snapshot_covers.iter().all(|c| *c <= self.sync.cursor) {
            self.sync.snapshot_covers = [0; 3];
        }
        // Only live signals are kept (and dropped when they expire).
        let now = unix_millis();
        self.sync.signals.extend(report.signals.iter().filter(|s| !s.expired(now)).cloned());
        let excess = self.sync.signals.len().saturating_sub(SIGNALS_KEPT);
        self.sync.signals.drain(..excess);
        Ok(report)
    }

    async fn quarantine(
        &mut self,
        tx: &mut LocalTx,
        item: &StoredEnvelope,
        reason: &str,
        report: &mut Received,
    ) -> Result<(), DeviceError> {
        report.quarantined += 1;
        self.sync.quarantined_total += 1;
        let bytes = &item.envelope.0;
        let record = Quarantined {
            reason: reason.to_owned(),
            cursor: item.cursor.0,
            at: unix_millis(),
            len: bytes.len() as u64,
            envelope: Blob(bytes[..bytes.len().min(QUARANTINE_BYTES)].to_vec()),
        };
        tx.push(ListTable::Quarantine, &record)?;
        tx.prune(ListTable::Quarantine, QUARANTINE_KEPT);
        Ok(())
    }

    /// For revoked senders: the positions of their held envelopes that now
    /// form a complete run up to the revocation's pinned cutoff.
    fn revoked_runs<'a>(
        &self,
        queue: impl Iterator<Item = &'a StoredEnvelope>,
    ) -> BTreeMap<Stream, Vec<Seq>> {
        let state = self.log.state();
        let mut candidates: BTreeMap<Stream, BTreeMap<Seq, (EnvelopeHash, EnvelopeHash)>> =
            BTreeMap::new();
        for item in queue {
            let Ok(header) = envelope::header_of(&item.envelope.0) else { continue };
            let revoked = state.member(&header.sender).is_some_and(|m| !m.is_active());
            if !revoked || header.kind != Kind::Changes {
                continue;
            }
            // The hash is trusted here only as a candidate: the run is
            // applied envelope by envelope through `open` afterwards.
            let Ok(hash) = envelope::inspect(&item.envelope.0).map(|(_, h)| h) else { continue };
            candidates.entry(header.stream()).or_default().insert(header.seq, (header.prev, hash));
        }
        let mut runs = BTreeMap::new();
        for (stream, held) in candidates {
            let Some(revocation) = state.member(&stream.sender).and_then(|m| m.revoked.as_ref())
            else {
                continue;
            };
            let cutoff = revocation.cutoff(stream.doc);
            if let Some(run) = revoked_run(self.freshness.tip(stream), cutoff, &held) {
                runs.insert(stream, run);
            }
        }
        runs
    }

    /// This device's own envelopes on a page confirm, byte for byte, what
    /// the relay said it stored: the relay's "stored" alone is only a hint.
    async fn confirm_own_in(
        &mut self,
        tx: &mut LocalTx,
        items: &[StoredEnvelope],
    ) -> Result<(), DeviceError> {
        if tx.unconfirmed() == 0 {
            return Ok(());
        }
        let me = self.id();
        let own: Vec<&StoredEnvelope> = items
            .iter()
            .filter(|i| envelope::header_of(&i.envelope.0).is_ok_and(|h| h.sender == me))
            .collect();
        if own.is_empty() {
            return Ok(());
        }
        let mut kept: Vec<(i64, SentEnvelope)> = self.db.unconfirmed().await?;
        for item in own {
            if let Some(at) = kept.iter().position(|(_, r)| r.envelope.0 == item.envelope.0) {
                let (id, mut record) = kept.swap_remove(at);
                record.cursor = item.cursor.0;
                tx.set_sent(id, &record, true)?;
            }
        }
        tx.prune_confirmed(SENT_KEPT);
        Ok(())
    }

    /// This device's own envelope, back from the relay. If the relay holds
    /// a newer envelope from this device than the device itself remembers,
    /// its state was restored from an older copy: stop sealing, or sequence
    /// numbers would be reused. Only an envelope this device signed counts.
    fn receive_own(&mut self, header: &Header, bytes: &[u8]) -> Outcome {
        let (tip, _) = self.sync.tip(header.kind, header.doc);
        let ahead = header.seq > tip;
        if ahead && header.kind != Kind::Snapshot && envelope::inspect(bytes).is_ok() {
            self.sync.sealing_stopped = true;
            self.sync.raise(Alarm::StateBehind);
        }
        Outcome::Duplicate
    }

    fn receive_one(
        &mut self,
        item: &StoredEnvelope,
        report: &mut Received,
        revoked_runs: &BTreeMap<Stream, Vec<Seq>>,
    ) -> Outcome {
        let bytes = &item.envelope.0;
        let Ok(header) = envelope::header_of(bytes) else {
            return Outcome::Quarantined("malformed");
        };
        if header.sender == self.id() {
            return self.receive_own(&header, bytes);
        }
        if header.kind == Kind::Changes
            && item.cursor.0 <= self.sync.snapshot_covers[usize::from(header.doc.code())]
        {
            // Inside a verified snapshot this device started from: it would
            // never be applied, so verifying it would change nothing.
            return Outcome::Duplicate;
        }
        if u64::from(header.view.len) > self.log.state().len() {
            // Sealed against a longer membership log than this device has:
            // hold it, but only once its signature checks out against a key
            // this device knows (a sender it does not know yet is held
            // within a small allowance).
            report.needs_membership = true;
            return match self.log.state().member(&header.sender) {
                Some(member) => {
                    match envelope::inspect_with(bytes, |_| member.device.verifying_key()) {
                        Ok((_, hash)) => Outcome::Held(Some(hold_key(&header, hash))),
                        Err(_) => Outcome::Quarantined("failed verification"),
                    }
                }
                None => Outcome::Held(None),
            };
        }
        let policy = Recipient { membership: self.log.state(), keyring: &self.keyring };
        let Ok(opened) = envelope::open(bytes, &policy) else {
            return Outcome::Quarantined("failed verification");
        };
        let header = opened.header;
        if header.kind == Kind::Snapshot {
            // Snapshots are fetched on purpose, never applied from the log.
            return Outcome::Duplicate;
        }
        let key = hold_key(&header, opened.hash);
        let stream = header.stream();
        if header.kind == Kind::Changes {
            let covered = self.sync.snapshot_covers[usize::from(header.doc.code())];
            if covered > 0 && self.freshness.check_tail(&header).is_err() {
                self.sync.raise(Alarm::BadSnapshot { doc: header.doc });
                return Outcome::Quarantined("inside the coverage a snapshot claimed");
            }
            let revoked = self.log.state().member(&header.sender).is_some_and(|m| !m.is_active());
            if revoked && !revoked_runs.get(&stream).is_some_and(|run| run.contains(&header.seq)) {
                return match self.freshness.classify(&header, opened.hash) {
                    Verdict::Duplicate => Outcome::Duplicate,
                    Verdict::Fork => {
                        Outcome::Quarantined("contradicts the sender's earlier envelopes")
                    }
                    _ => Outcome::Held(Some(key)),
                };
            }
        }
        let verdict = self.freshness.classify(&header, opened.hash);
        match verdict {
            Verdict::Duplicate => return Outcome::Duplicate,
            Verdict::Gap { missing_from } => {
                self.sync.raise(Alarm::Gap {
                    device: header.sender,
                    doc: header.doc,
                    missing_from: missing_from.0,
                });
                // What is missing lies after the stream's last applied envelope.
                let from = self.sync.stream_cursor(stream).unwrap_or(0);
                self.sync.refetch_after =
                    Some(self.sync.refetch_after.map_or(from, |r| r.min(from)));
                let tip = self.freshness.tip(stream).map_or(0, |t| t.seq.0);
                if header.seq.0 > tip.saturating_add(HOLD_WINDOW) {
                    // Too far ahead to hold; it comes again with the rest.
                    return Outcome::Duplicate;
                }
                return Outcome::Held(Some(key));
            }
            Verdict::Fork => {
                self.sync.raise(Alarm::Fork { device: header.sender });
                return Outcome::Quarantined("contradicts the sender's earlier envelopes");
            }
            Verdict::Rollback { .. } => {
                return Outcome::Quarantined("older than what was already seen");
            }
            Verdict::New | Verdict::NewAfterGap { .. } => {}
        }
        // Verified and fresh: now the payload may be parsed. Whatever it
        // holds, this position of the sender's stream is used up.
        self.freshness.record(&header, opened.hash);
        self.sync.set_stream_cursor(stream, item.cursor.0);
        self.sync.seen(header.sender, unix_now());
        match (header.kind, Payload::decode(&opened.payload)) {
            (Kind::Changes, Some(Payload::Changes(raw))) => {
                let raw: Vec<Vec<u8>> = raw.into_iter().map(|b| b.0).collect();
                match decode_changes(&raw, &header.sender) {
                    Ok(changes) => Outcome::Applied(Some((header.doc, changes))),
                    Err(_) => {
                        Outcome::Quarantined("a change not made by its sender, or not a change")
                    }
                }
            }
            (Kind::Signal, Some(Payload::Signal(signal))) => {
                let after_gap = matches!(verdict, Verdict::NewAfterGap { .. });
                report.signals.push(ReceivedSignal {
                    from: header.sender,
                    signal,
                    received_at: unix_millis(),
                    after_gap,
                });
                Outcome::Applied(None)
            }
            _ => Outcome::Quarantined("unreadable content"),
        }
    }

    /// Starts a document from a snapshot the relay served: checks it, loads
    /// it, and starts each of the document's streams where it says. Returns
    /// the cursor it covers, or `None` if it does not check out (the device
    /// then replays the document's history instead).
    pub async fn start_from_snapshot(
        &mut self,
        doc: DocId,
        stored: &StoredSnapshot,
    ) -> Result<Option<Cursor>, DeviceError> {
        self.write(async |device, tx| {
            let used = device.use_snapshot(doc, stored);
            if used.is_none() {
                device.sync.raise(Alarm::BadSnapshot { doc });
                return Ok(None);
            }
            tx.put_doc(doc, &device.docs.save(doc))?;
            device.docs.mark_saved(doc);
            Ok(used)
        })
        .await
    }

    /// The checks, and loading: `None` if the snapshot is not usable.
    fn use_snapshot(&mut self, doc: DocId, stored: &StoredSnapshot) -> Option<Cursor> {
        let policy = Recipient { membership: self.log.state(), keyring: &self.keyring };
        let opened = envelope::open(&stored.envelope.0, &policy).ok()?;
        let header: Header = opened.header;
        let SnapshotPayload { covers, coverage, document } = match Payload::decode(&opened.payload)
        {
            Some(Payload::Snapshot(p))
                if header.kind == Kind::Snapshot
                    && header.doc == doc
                    && p.covers == stored.covers =>
            {
                p
            }
            _ => return None,
        };
        // Not older than a snapshot of this sender already used, and not
        // claiming less of any stream than this device has already seen.
        match self.freshness.classify(&header, opened.hash) {
            Verdict::New | Verdict::NewAfterGap { .. } | Verdict::Gap { .. } => {}
            Verdict::Duplicate => return Some(covers),
            Verdict::Rollback { .. } | Verdict::Fork => return None,
        }
        if self.freshness.check_not_behind(doc, &coverage).is_err() {
            return None;
        }
        // Every change in it must be by a device allowed to write `doc`.
        let state = self.log.state();
        let allowed = |author: &DeviceId| {
            state.member(author).is_some_and(|m| doc.owner().is_none_or(|owner| m.partner == owner))
        };
        if self.docs.merge_checked(doc, &document.0, allowed).is_err() {
            return None;
        }
        for (sender, tip) in coverage {
            if sender == self.id() || state.member(&sender).is_none() {
                continue;
            }
            self.freshness.seed(Stream { sender, kind: Kind::Changes, doc }, tip);
        }
        self.freshness.record(&header, opened.hash);
        self.sync.snapshot_covers[usize::from(doc.code())] = covers.0;
        Some(covers)
    }
}
