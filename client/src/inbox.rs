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

use crate::device::{
    Alarm, CursorMark, Device, DeviceError, ReceivedSignal, SIGNALS_KEPT, unix_millis, unix_now,
};
use crate::docs::decode_changes;
use crate::localdb::ListTable;
use crate::payload::{Payload, SnapshotPayload};
use automerge::Change;
use cove_shared::envelope::{self, Header};
use cove_shared::freshness::{Verdict, revoked_run};
use cove_shared::wire::{Blob, Cursor, StoredEnvelope, StoredSnapshot};
use cove_shared::{DocId, EnvelopeHash, Kind, Recipient, Seq, Stream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An envelope kept aside, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quarantined {
    /// Why it was refused.
    pub reason: String,
    /// Its relay cursor.
    pub cursor: u64,
    /// When (Unix seconds).
    pub at: i64,
    /// The envelope, as received.
    pub envelope: Blob,
}

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
    Applied,
    Duplicate,
    Held,
    Quarantined(&'static str),
    NeedsMembership,
}

impl Device {
    /// Handles a batch of envelopes from the relay, and retries those held
    /// back earlier. See the module documentation for the order of checks.
    pub async fn receive(&mut self, items: Vec<StoredEnvelope>) -> Result<Received, DeviceError> {
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let mut report = Received { cursor: Cursor(self.sync.cursor), ..Received::default() };
        let held: Vec<(i64, StoredEnvelope)> = self.db.list(ListTable::Pending).await?;
        for (id, _) in &held {
            tx.remove(ListTable::Pending, *id).await?;
        }
        let mut queue: Vec<StoredEnvelope> = held.into_iter().map(|(_, e)| e).collect();
        queue.extend(items.iter().cloned());
        queue.sort_by_key(|e| e.cursor);
        queue.dedup_by_key(|e| e.cursor);
        if let Some(last) = items.iter().max_by_key(|i| i.cursor) {
            if last.cursor.0 >= self.sync.cursor {
                self.sync.cursor_mark = Some(CursorMark::of(last));
            }
            report.cursor = report.cursor.max(last.cursor);
        }

        let mut batch: [Vec<Change>; 3] = Default::default();
        // Keep passing over what is held until nothing more fits: an
        // envelope that closes a gap lets the ones after it through.
        loop {
            let mut still_held = Vec::new();
            let mut progress = false;
            let revoked_runs = self.revoked_runs(&queue);
            for item in std::mem::take(&mut queue) {
                let outcome = self.receive_one(&item, &mut batch, &mut report, &revoked_runs);
                match outcome {
                    Outcome::Applied => {
                        progress = true;
                    }
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::Held => still_held.push(item),
                    Outcome::NeedsMembership => {
                        report.needs_membership = true;
                        still_held.push(item);
                    }
                    Outcome::Quarantined(reason) => {
                        report.quarantined += 1;
                        let record = Quarantined {
                            reason: reason.to_owned(),
                            cursor: item.cursor.0,
                            at: unix_now(),
                            envelope: item.envelope.clone(),
                        };
                        tx.push(ListTable::Quarantine, &record).await?;
                    }
                }
            }
            queue = still_held;
            if !progress || queue.is_empty() {
                break;
            }
        }
        report.held = queue.len();
        for item in &queue {
            tx.push(ListTable::Pending, item).await?;
        }
        // Gaps that closed are no longer alarms.
        let freshness = &self.freshness;
        self.sync.alarms.retain(|a| match a {
            Alarm::Gap { device, doc, missing_from } => freshness
                .tip(Stream { sender: *device, kind: Kind::Changes, doc: *doc })
                .is_none_or(|t| t.seq.0 < *missing_from),
            _ => true,
        });

        for doc in DocId::ALL {
            let changes = std::mem::take(&mut batch[usize::from(doc.code())]);
            if changes.is_empty() {
                continue;
            }
            report.applied[usize::from(doc.code())] = changes.len();
            self.sync.since_snapshot[usize::from(doc.code())] += changes.len() as u64;
            self.docs.apply(doc, changes)?;
            tx.put_doc(doc, &self.docs.save(doc)).await?;
        }
        self.sync.cursor = self.sync.cursor.max(report.cursor.0);
        if self.sync.snapshot_covers.iter().all(|c| *c <= self.sync.cursor) {
            self.sync.snapshot_covers = [0; 3];
        }
        for signal in &report.signals {
            self.sync.signals.push(signal.clone());
        }
        let excess = self.sync.signals.len().saturating_sub(SIGNALS_KEPT);
        self.sync.signals.drain(..excess);
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// For revoked senders: the positions of their held envelopes that now
    /// form a complete run up to the revocation's pinned cutoff.
    fn revoked_runs(&self, queue: &[StoredEnvelope]) -> BTreeMap<Stream, Vec<Seq>> {
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

    fn receive_one(
        &mut self,
        item: &StoredEnvelope,
        batch: &mut [Vec<Change>; 3],
        report: &mut Received,
        revoked_runs: &BTreeMap<Stream, Vec<Seq>>,
    ) -> Outcome {
        let bytes = &item.envelope.0;
        let Ok(header) = envelope::header_of(bytes) else {
            return Outcome::Quarantined("malformed");
        };
        if header.sender == self.id() {
            // This device's own envelope, on its way back from the relay.
            // After a rollback, note what the relay still has of ours; only
            // an envelope this device signed counts.
            if self.sync.resend_pending
                && header.kind == Kind::Changes
                && envelope::inspect(bytes).is_ok()
            {
                self.sync.note_relay_own(header.doc, header.seq.0);
            }
            return Outcome::Duplicate;
        }
        if u64::from(header.view.len) > self.log.state().len() {
            return Outcome::NeedsMembership;
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
        if header.kind == Kind::Changes {
            let covered = self.sync.snapshot_covers[usize::from(header.doc.code())];
            if item.cursor.0 <= covered {
                // Inside a snapshot this device started from.
                return Outcome::Duplicate;
            }
            if covered > 0 && self.freshness.check_tail(&header).is_err() {
                self.sync.raise(Alarm::BadSnapshot { doc: header.doc });
                return Outcome::Quarantined("inside the coverage a snapshot claimed");
            }
            let revoked = self.log.state().member(&header.sender).is_some_and(|m| !m.is_active());
            if revoked
                && !revoked_runs.get(&header.stream()).is_some_and(|run| run.contains(&header.seq))
            {
                return match self.freshness.classify(&header, opened.hash) {
                    Verdict::Duplicate => Outcome::Duplicate,
                    _ => Outcome::Held,
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
                let from = self.sync.stream_cursor(header.stream()).unwrap_or(0);
                self.sync.refetch_after =
                    Some(self.sync.refetch_after.map_or(from, |r| r.min(from)));
                return Outcome::Held;
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
        self.sync.set_stream_cursor(header.stream(), item.cursor.0);
        self.sync.seen(header.sender, unix_now());
        match (header.kind, Payload::decode(&opened.payload)) {
            (Kind::Changes, Some(Payload::Changes(raw))) => {
                let raw: Vec<Vec<u8>> = raw.into_iter().map(|b| b.0).collect();
                match decode_changes(&raw, &header.sender) {
                    Ok(changes) => {
                        batch[usize::from(header.doc.code())].extend(changes);
                        Outcome::Applied
                    }
                    Err(_) => {
                        Outcome::Quarantined("a change not made by its sender, or not a change")
                    }
                }
            }
            (Kind::Signal, Some(Payload::Signal(signal))) => {
                report.signals.push(ReceivedSignal {
                    from: header.sender,
                    signal,
                    received_at: unix_millis(),
                });
                Outcome::Applied
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
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let policy = Recipient { membership: self.log.state(), keyring: &self.keyring };
        let Ok(opened) = envelope::open(&stored.envelope.0, &policy) else {
            self.sync.raise(Alarm::BadSnapshot { doc });
            self.persist(&mut tx).await?;
            tx.commit().await?;
            return Ok(None);
        };
        let header: Header = opened.header;
        let payload = match Payload::decode(&opened.payload) {
            Some(Payload::Snapshot(p))
                if header.kind == Kind::Snapshot
                    && header.doc == doc
                    && p.covers == stored.covers =>
            {
                p
            }
            _ => {
                self.sync.raise(Alarm::BadSnapshot { doc });
                self.persist(&mut tx).await?;
                tx.commit().await?;
                return Ok(None);
            }
        };
        let SnapshotPayload { covers, coverage, document } = payload;
        if self.docs.merge(doc, &document.0).is_err() {
            self.sync.raise(Alarm::BadSnapshot { doc });
            self.persist(&mut tx).await?;
            tx.commit().await?;
            return Ok(None);
        }
        for (sender, tip) in coverage {
            if sender == self.id() {
                continue;
            }
            self.freshness.seed(Stream { sender, kind: Kind::Changes, doc }, tip);
        }
        self.freshness.record(&header, opened.hash);
        self.sync.snapshot_covers[usize::from(doc.code())] = covers.0;
        tx.put_doc(doc, &self.docs.save(doc)).await?;
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(covers))
    }
}
