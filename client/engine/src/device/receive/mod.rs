//! Receiving: what a device does with envelopes from the relay.
//!
//! For each envelope, in cursor order, [`classify`] says what it is,
//! without changing anything (see that module for the order of checks);
//! then [`Device::receive`] acts on the answer: it records what is fresh,
//! raises what a person should know, holds back what comes too early (see
//! [`held`]) and quarantines what fails. Changes are collected and applied
//! in one batch per document; and the documents, the freshness marks,
//! held-back and quarantined envelopes and the cursor are committed in one
//! local transaction. Only then may the relay be told.
//!
//! # Layout
//! - [`classify`]: what one envelope is, as a pure function.
//! - [`held`]: holding back, within bounds; a revoked sender's last run.
//! - [`snapshot`]: starting a document from a snapshot.

pub(crate) mod classify;
pub(crate) mod held;
mod snapshot;

#[cfg(test)]
mod tests;

use super::{
    Alarm, AnswerRecord, CursorMark, Device, DeviceError, ReceivedSignal, SENT_KEPT, SIGNALS_KEPT,
    SentEnvelope,
};
use crate::localdb::{ListTable, LocalTx};
use automerge::Change;
use classify::{Class, Content, Context, Refusal};
use cove_shared::envelope;
use cove_shared::wire::{Blob, Cursor, StoredEnvelope};
use cove_shared::{DocId, Kind, Seq, Stream};
use held::{Held, HeldBounds, HoldKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use classify::{HOLD_WINDOW, MAX_CHECKPOINT_TIPS};
pub use held::{MAX_HELD, MAX_HELD_BYTES, MAX_HELD_UNVERIFIED};

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
    /// Answers to signals that arrived.
    pub answers: Vec<AnswerRecord>,
    /// The membership log must be fetched before some envelopes can be read.
    pub needs_membership: bool,
    /// The highest cursor handled (applied, skipped, held or quarantined).
    pub cursor: Cursor,
}

/// What acting on one envelope came to.
enum Outcome {
    /// Taken: changes (if any) go into the batch.
    Applied(Option<(DocId, Vec<Change>)>),
    Duplicate,
    Held(Option<HoldKey>),
    Quarantined(Refusal),
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
        let mut bounds = HeldBounds::of(&held);
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
            let runs =
                held::revoked_runs(self.log.state(), &self.freshness, queue.iter().map(|(_, i)| i));
            for (row, item) in std::mem::take(&mut queue) {
                let outcome = self.take(&item, &mut report, &runs);
                if let Outcome::Held(key) = outcome {
                    still_held.push((row, item, key));
                    continue;
                }
                if let Some(id) = row {
                    tx.remove(ListTable::Pending, id);
                    bounds.released(&item);
                }
                match outcome {
                    Outcome::Applied(changes) => {
                        progress = true;
                        if let Some((doc, changes)) = changes {
                            batch[usize::from(doc.code())].push((item, changes));
                        }
                    }
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::Quarantined(refusal) => {
                        self.quarantine(tx, &item, refusal, &mut report).await?
                    }
                    Outcome::Held(_) => {}
                }
            }
            if !progress || still_held.is_empty() {
                // Keep what is still held, within bounds; what does not fit
                // is let go, and an honest relay serves it again.
                for (row, item, key) in still_held {
                    report.held += 1;
                    if row.is_none() && bounds.admit(key, &item) {
                        tx.push(ListTable::Pending, &Held { key, item })?;
                    }
                }
                break;
            }
            queue = still_held.into_iter().map(|(row, item, _)| (row, item)).collect();
        }
        // Gaps that closed end by themselves.
        let freshness = &self.freshness;
        self.sync.alarm_log.resolve(self.clock.now_ms(), |a| match a {
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
                            if let Ok(header) = envelope::header_of(&item.envelope.0) {
                                self.note_hollow(header.sender, header.doc);
                            }
                            let refusal = Refusal::DoesNotApply;
                            self.quarantine(tx, &item, refusal, &mut report).await?;
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
        // Live signals are kept (and dropped when they expire), and a stop
        // that stands, whatever its age. The plan says which signals are
        // stops: read once per batch.
        let now = self.now_ms();
        let plan = (!report.signals.is_empty()).then(|| self.current_plan());
        for signal in &report.signals {
            let stop = plan
                .as_ref()
                .is_some_and(|p| crate::plan::signals::is_stop(p, &signal.signal.signal));
            self.take_signal(signal, stop);
            if !signal.expired(now) || self.desk.stands(signal.from, signal.signal.sent_at) {
                self.sync.signals.push(signal.clone());
            }
        }
        // Over the bound, the oldest go first, a standing stop last.
        while self.sync.signals.len() > SIGNALS_KEPT {
            let desk = &self.desk;
            let oldest =
                self.sync.signals.iter().position(|s| !desk.stands(s.from, s.signal.sent_at));
            self.sync.signals.remove(oldest.unwrap_or(0));
        }
        Ok(report)
    }

    /// Classifies one envelope, and acts on what it is.
    fn take(
        &mut self,
        item: &StoredEnvelope,
        report: &mut Received,
        revoked_runs: &BTreeMap<Stream, Vec<Seq>>,
    ) -> Outcome {
        let sync = &self.sync;
        let own_tip = |kind, doc| sync.tip(kind, doc).0;
        let cx = Context {
            me: self.id(),
            membership: self.log.state(),
            keyring: &self.keyring,
            freshness: &self.freshness,
            own_tip: &own_tip,
            snapshot_covers: sync.snapshot_covers,
            revoked_runs,
        };
        let class = classify::classify(&cx, item);
        let now = self.now_ms();
        match class {
            Class::Duplicate | Class::NotFromLog | Class::Own { ahead: false } => {
                Outcome::Duplicate
            }
            Class::Own { ahead: true } => {
                // Restored from an older copy: stop sealing, or sequence
                // numbers would be reused.
                self.sync.sealing_stopped = true;
                self.sync.raise(Alarm::StateBehind, now);
                Outcome::Duplicate
            }
            Class::NeedsMembership { hold, cites } => {
                report.needs_membership = true;
                // Only a member's verified signature proves that a longer
                // log exists.
                if let Some(key) = hold {
                    self.book.cites(key.0, cites);
                }
                Outcome::Held(hold)
            }
            Class::AwaitsRun(key) => Outcome::Held(Some(key)),
            Class::Gap { stream, missing_from, hold } => {
                let gap = Alarm::Gap {
                    device: stream.sender,
                    doc: stream.doc,
                    missing_from: missing_from.0,
                };
                self.sync.raise(gap, now);
                // What is missing lies after the stream's last applied envelope.
                let from = self.sync.stream_cursor(stream).unwrap_or(0);
                self.sync.refetch_after =
                    Some(self.sync.refetch_after.map_or(from, |r| r.min(from)));
                // Too far ahead to hold: it comes again with the rest.
                hold.map_or(Outcome::Duplicate, |key| Outcome::Held(Some(key)))
            }
            Class::Refused(refusal) => {
                match refusal {
                    Refusal::OutsideSnapshot(doc) => {
                        self.sync.raise(Alarm::BadSnapshot { doc }, now);
                    }
                    Refusal::Fork { sender, alarm: true } => {
                        self.sync.raise(Alarm::Fork { device: sender }, now);
                    }
                    Refusal::Diverged(sender) => {
                        self.sync.raise(Alarm::Diverged { device: sender }, now);
                    }
                    _ => {}
                }
                Outcome::Quarantined(refusal)
            }
            Class::Fresh { header, hash, after_gap, content } => {
                // Whatever it holds, this position of the sender's stream
                // is used up.
                self.freshness.record(&header, hash);
                self.sync.set_stream_cursor(header.stream(), item.cursor.0);
                self.sync.seen(header.sender, self.clock.now_s());
                match content {
                    Content::Changes(doc, changes) => Outcome::Applied(Some((doc, changes))),
                    Content::Signal(signal) => {
                        report.signals.push(ReceivedSignal {
                            from: header.sender,
                            signal,
                            received_at: now,
                            after_gap,
                        });
                        Outcome::Applied(None)
                    }
                    Content::Answer(answer) => {
                        report.answers.extend(self.take_answer(header.sender, answer));
                        Outcome::Applied(None)
                    }
                    Content::Checkpoint(checkpoint) => {
                        self.take_checkpoint(header.sender, header.seq, item.cursor.0, checkpoint);
                        Outcome::Applied(None)
                    }
                    Content::Refused(refusal) => {
                        if header.kind == Kind::Changes {
                            self.note_hollow(header.sender, header.doc);
                        }
                        Outcome::Quarantined(refusal)
                    }
                }
            }
        }
    }

    async fn quarantine(
        &mut self,
        tx: &mut LocalTx,
        item: &StoredEnvelope,
        refusal: Refusal,
        report: &mut Received,
    ) -> Result<(), DeviceError> {
        let bytes = &item.envelope.0;
        let kept = &bytes[..bytes.len().min(QUARANTINE_BYTES)];
        // The same envelope served again at the same position (a gap's
        // stretch fetched again, say) is already set aside: a relay that
        // keeps serving it cannot grow the list or the count.
        let quarantined: Vec<(i64, Quarantined)> = self.db.list(ListTable::Quarantine).await?;
        if quarantined.iter().any(|(_, q)| q.cursor == item.cursor.0 && q.envelope.0 == kept) {
            return Ok(());
        }
        report.quarantined += 1;
        self.sync.quarantined_total += 1;
        let record = Quarantined {
            reason: refusal.reason().to_owned(),
            cursor: item.cursor.0,
            at: self.now_ms(),
            len: bytes.len() as u64,
            envelope: Blob(kept.to_vec()),
        };
        tx.push(ListTable::Quarantine, &record)?;
        tx.prune(ListTable::Quarantine, QUARANTINE_KEPT);
        Ok(())
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
                self.note_shown(&record);
                tx.set_sent(id, &record, true)?;
            }
        }
        tx.prune_confirmed(SENT_KEPT);
        Ok(())
    }
}
