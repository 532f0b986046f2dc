//! Checkpoints: each device's signed account of what it holds, and what
//! this device learns by comparing the others' accounts with its own.
//!
//! A relay cannot forge an envelope, but it can choose what each device
//! sees. A checkpoint closes that gap: on every sync (and every
//! [`CHECKPOINT_EVERY_MS`] while connected) a device seals, as an envelope
//! of its own kind, the tip (seq, hash) of every `changes` and `signal`
//! stream it holds, with the relay cursor it has read through. Every other
//! device keeps the newest checkpoint of each device, and compares:
//!
//! - *receipts*: which of this device's changes and signals a device holds;
//! - *withholding*: a device that checkpoints regularly but lacks one of
//!   this device's changes that the relay showed before those checkpoints;
//! - *forks*: a checkpoint that names another hash for a position this
//!   device holds, or a list of devices this one cannot continue into;
//! - *catch-up*: a checkpoint naming envelopes this device never got makes
//!   it fetch them again, and so does each sync, from where each device was
//!   last heard (see `sync::recheck`).
//!
//! A relay that hides everything from one side can only keep that side's
//! checkpoints away too: the other side then sees the device fall silent,
//! with the time it was last heard. This is fork consistency in the sense
//! of SUNDR; `docs/security.md` states it and its limits.
//!
//! # Layout
//! - this module: the book of checkpoints, and making this device's own.
//! - [`compare`]: what a received checkpoint says about this device's
//!   history.
//! - [`receipts`]: the same, as faces show it.
//! - [`own_log`]: this device's newest envelopes, a row each.

mod compare;
mod own_log;
mod receipts;

pub(super) use own_log::OwnLog;
pub use receipts::{Receipt, SentSignal};

use super::{Alarm, Device, DeviceError};
use crate::payload::{CheckpointPayload, Payload, TipClaim};
use cove_shared::freshness::StreamTip;
use cove_shared::wire::Cursor;
use cove_shared::{DeviceId, DocId, Kind, Seq};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// While connected, a device checkpoints at least this often (15 minutes),
/// even when it holds nothing new: that is how others know it is there.
pub const CHECKPOINT_EVERY_MS: i64 = 15 * 60 * 1000;

/// While connected, a device checkpoints at most this often (2 seconds)
/// after taking in live deliveries, so that a busy partner does not make it
/// checkpoint after every one.
pub const CHECKPOINT_GAP_MS: i64 = 2000;

/// A device whose this many newest checkpoints all came after one of this
/// device's changes, and lack it, has been kept from it.
pub const WITHHELD_AFTER: usize = 3;

/// How many of its own envelopes a device remembers (when made, and where
/// a page showed them), for receipts.
pub(super) const OWN_KEPT: usize = 512;

/// How many of its own signals a device lists with their receipts.
pub(super) const SENT_SIGNALS_KEPT: usize = 50;

/// What a device keeps about checkpoints, persisted apart from the sync
/// state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Book {
    /// The newest checkpoint of each other device.
    pub(super) theirs: Vec<Theirs>,
    /// Only in a database written before this device's own envelopes had
    /// rows of their own ([`OwnLog`]): read once, moved there, and written
    /// empty since.
    pub(super) own: Vec<OwnEnvelope>,
    /// This device's newest signals.
    pub(super) signals: Vec<SentSignal>,
    /// What this device last said: a digest of its tips, and when.
    pub(super) said: Option<([u8; 32], i64)>,
    /// Per member device: the longest list of devices (entries) it has
    /// signed an envelope against, as far as this device has seen.
    pub(super) cited: Vec<(DeviceId, u64)>,
    /// Streams (sender, doc code) with a position used up by an envelope
    /// whose changes were refused: a snapshot's claim for such a stream
    /// exceeds the changes it holds, so none is made while the sender is
    /// active.
    pub(super) hollow: Vec<(DeviceId, u8)>,
}

/// The newest checkpoint of another device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Theirs {
    pub(super) device: DeviceId,
    /// Its sequence number in the sender's checkpoint stream.
    pub(super) seq: u64,
    /// When the sender made it (its clock), in Unix milliseconds.
    pub(super) made_at: i64,
    /// When this device received it.
    pub(super) received_at: i64,
    /// The cursor the sender had read through.
    pub(super) read_through: u64,
    /// Where its newest few checkpoints appeared in this device's reading
    /// of the log, oldest first.
    pub(super) positions: Vec<u64>,
    /// What it holds.
    pub(super) tips: Vec<TipClaim>,
}

impl Theirs {
    /// What it holds of one stream (seq 0: nothing).
    pub(super) fn holds(&self, device: DeviceId, kind: Kind, doc: DocId) -> Seq {
        self.tips
            .iter()
            .find(|t| t.device == device && t.kind == kind.code() && t.doc == doc.code())
            .map_or(Seq(0), |t| t.tip.seq)
    }

    /// When the device was last heard, by the sender's clock but never
    /// later than this device received it.
    pub(super) fn last_seen(&self) -> i64 {
        self.made_at.min(self.received_at)
    }
}

/// One of this device's envelopes (not checkpoints or snapshots).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OwnEnvelope {
    pub(super) kind: u8,
    pub(super) doc: u8,
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
    /// When it was sealed, in Unix milliseconds.
    pub(super) made_at: i64,
    /// Where a fetched page showed it (0 until one did).
    pub(super) cursor: u64,
}

impl Book {
    /// `sender` signed an envelope against a list of `len` entries.
    pub(super) fn cites(&mut self, sender: DeviceId, len: u64) {
        match self.cited.iter_mut().find(|(d, _)| *d == sender) {
            Some((_, n)) => *n = (*n).max(len),
            None => self.cited.push((sender, len)),
        }
    }

    /// A position of `sender`'s stream for `doc` was used up without changes.
    pub(super) fn hollowed(&mut self, sender: DeviceId, doc: DocId) {
        if !self.hollow.contains(&(sender, doc.code())) {
            self.hollow.push((sender, doc.code()));
        }
    }

    pub(super) fn theirs(&self, device: &DeviceId) -> Option<&Theirs> {
        self.theirs.iter().find(|t| t.device == *device)
    }

    /// A device of the other partner answered this device's signal sent at
    /// `sent_at`: it holds it.
    pub(super) fn answered(&mut self, sent_at: i64) {
        for signal in self.signals.iter_mut().filter(|s| s.sent_at == sent_at) {
            signal.seen = true;
        }
    }

    /// This device sent a signal.
    pub(super) fn sent_signal(&mut self, signal: SentSignal) {
        super::push_bounded(&mut self.signals, signal, SENT_SIGNALS_KEPT);
    }
}

impl Device {
    /// Whether a checkpoint is due (see [`Self::checkpoint_if_due`]), and
    /// the last one was said at least `min_gap_ms` ago: judged from memory,
    /// without touching the disk, so that a connected device may ask often.
    pub fn checkpoint_due(&self, min_gap_ms: i64) -> bool {
        if self.sync.sealing_stopped || !self.is_active() || self.must_hold_back() {
            return false;
        }
        let Some((said, at)) = self.book.said else { return true };
        let since = self.now_ms().saturating_sub(at);
        since >= min_gap_ms
            && (since >= CHECKPOINT_EVERY_MS || said != self.digest(&self.tips_to_claim()))
    }

    /// This device's checkpoint, sealed, if one is due at `now`: what it
    /// holds changed since it last said, or it last said longer than
    /// [`CHECKPOINT_EVERY_MS`] ago. `None` too while the outbox holds
    /// anything: a checkpoint claims only what the relay has acknowledged,
    /// and is sent after it.
    pub async fn checkpoint_if_due(&mut self) -> Result<Option<(Vec<u8>, [u8; 32])>, DeviceError> {
        self.write(async |device, tx| {
            if !device.checkpoint_due(0) || tx.outbox_len() > 0 {
                return Ok(None);
            }
            let now = device.now_ms();
            let tips = device.tips_to_claim();
            let digest = device.digest(&tips);
            let payload = Payload::Checkpoint(CheckpointPayload {
                made_at: now,
                read_through: Cursor(device.sync.cursor),
                tips,
            });
            let sealed = device.seal_next(Kind::Checkpoint, DocId::Shared, &payload.encode())?;
            // A lost checkpoint costs nothing: the next one supersedes it.
            device.must_sync = false;
            Ok(Some((sealed.bytes, digest)))
        })
        .await
    }

    /// This device offered the relay its checkpoint with tips `digest`.
    pub async fn checkpoint_said(&mut self, digest: [u8; 32]) -> Result<(), DeviceError> {
        self.write(async |device, _| {
            device.book.said = Some((digest, device.now_ms()));
            Ok(())
        })
        .await
    }

    /// Every stream tip this device holds, in the order a checkpoint lists
    /// them: others' from the freshness marks, its own from its stream tips.
    fn tips_to_claim(&self) -> Vec<TipClaim> {
        let claim = |device, kind: Kind, doc: DocId, tip| TipClaim {
            device,
            kind: kind.code(),
            doc: doc.code(),
            tip,
        };
        let mut tips: Vec<TipClaim> = self
            .freshness
            .tips()
            .filter(|(s, _)| matches!(s.kind, Kind::Changes | Kind::Signal))
            .map(|(s, t)| claim(s.sender, s.kind, s.doc, t))
            .collect();
        let me = self.id();
        for kind in [Kind::Changes, Kind::Signal] {
            for doc in DocId::ALL {
                let (seq, hash) = self.sync.tip(kind, doc);
                if seq.0 > 0 {
                    tips.push(claim(me, kind, doc, StreamTip { seq, hash }));
                }
            }
        }
        tips.sort_by_key(|t| (t.device, t.kind, t.doc));
        tips.dedup_by_key(|t| (t.device, t.kind, t.doc));
        tips
    }

    /// What a checkpoint would say, as a digest: its tips and this device's
    /// list of devices.
    fn digest(&self, tips: &[TipClaim]) -> [u8; 32] {
        let mut hash = Sha256::new();
        let view = self.log.state().view();
        hash.update(view.len.to_be_bytes());
        hash.update(view.head.0);
        for t in tips {
            hash.update(t.device.as_bytes());
            hash.update([t.kind, t.doc]);
            hash.update(t.tip.seq.0.to_be_bytes());
            hash.update(t.tip.hash.0);
        }
        hash.finalize().into()
    }

    /// Whether this device must keep its edits here, unsealed: a rotation
    /// is due (a device left and still holds the current key), or the log
    /// is withheld (see [`Self::log_withheld`]).
    pub(crate) fn must_hold_back(&self) -> bool {
        self.log.state().rotation_due() || self.log_withheld()
    }

    /// Whether a member device has signed an envelope against a longer list
    /// of devices than the relay gives this one. That list may hold a
    /// removal: sealing or sending under the key this device holds could
    /// reach a removed device, so it does neither until it has the list.
    pub fn log_withheld(&self) -> bool {
        self.cited_len() > self.log.state().len()
    }

    /// The longest list of devices an active member signed against.
    fn cited_len(&self) -> u64 {
        let state = self.log.state();
        self.book
            .cited
            .iter()
            .filter(|(d, _)| state.is_active(d))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    /// Whether a snapshot of `doc` could claim more of an active device's
    /// changes than it holds (see [`Book::hollow`]).
    pub(crate) fn has_hollow_stream(&self, doc: DocId) -> bool {
        let state = self.log.state();
        self.book.hollow.iter().any(|(d, code)| *code == doc.code() && state.is_active(d))
    }

    /// A verified envelope's position in a stream was used up, but its
    /// changes were refused.
    pub(crate) fn note_hollow(&mut self, sender: DeviceId, doc: DocId) {
        self.book.hollowed(sender, doc);
    }

    /// After taking the relay's list of devices: raises, or ends, the alarm
    /// that it withholds part of the list others signed against.
    pub async fn note_cited_log(&mut self) -> Result<(), DeviceError> {
        if !self.is_active() {
            // A removed device is shown the log up to its removal only.
            return Ok(());
        }
        let (cited, have) = (self.cited_len(), self.log.state().len());
        let state = self.log.state();
        // Withholding from a device that has since left ends with it.
        let ended = |a: &Alarm| match a {
            Alarm::LogWithheld { .. } => cited <= have,
            Alarm::Withheld { device, .. } => !state.is_active(device),
            _ => false,
        };
        if cited <= have && !self.sync.alarms().into_iter().any(ended) {
            return Ok(());
        }
        let now = self.now_ms();
        let removed: Vec<DeviceId> =
            state.members().filter(|m| !m.is_active()).map(|m| m.device).collect();
        self.update(|sync| {
            if cited > have {
                sync.raise(Alarm::LogWithheld { cited, have }, now);
            }
            sync.alarm_log.resolve(now, |a| match a {
                Alarm::LogWithheld { .. } => cited <= have,
                Alarm::Withheld { device, .. } => removed.contains(device),
                _ => false,
            });
        })
        .await
    }

    /// Where this device last heard from each other active device (the
    /// newest cursor of any of its streams), for devices it has heard from
    /// at all: a relay that hid something from this device hid it after
    /// one of these.
    pub(crate) fn last_heard_positions(&self) -> Vec<u64> {
        let me = self.id();
        self.log
            .state()
            .active()
            .filter(|m| m.device != me)
            .filter_map(|m| {
                self.sync
                    .stream_cursors
                    .iter()
                    .filter(|(d, ..)| *d == m.device)
                    .map(|(.., c)| *c)
                    .max()
            })
            .collect()
    }
}
