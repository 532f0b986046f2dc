//! What a device keeps about the sync.

use cove_shared::envelope;
use cove_shared::wire::{Blob, Cursor, StoredEnvelope};
use cove_shared::{DeviceId, DocId, EnvelopeHash, Kind, Seq, Stream};
use serde::{Deserialize, Serialize};

use super::alarms::{Alarm, AlarmLog};
use crate::payload::SignalPayload;

/// After this many changes to a document since its last snapshot, the
/// device uploads a new one.
pub const SNAPSHOT_EVERY: u64 = 200;

/// This device's sequence positions and sync progress, persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// Whether the relay has the plan's genesis.
    pub(super) registered: bool,
    /// Every envelope up to this relay cursor has been handled.
    pub(super) cursor: u64,
    /// The highest cursor the relay has reported.
    pub(super) relay_head: u64,
    /// The longest membership log the relay has served.
    pub(super) relay_membership: u64,
    /// The cursor of this device's newest stored envelope.
    pub(super) own_cursor: u64,
    /// This device's own streams: (kind, doc) → (seq, hash).
    pub(super) tips: Vec<OwnTip>,
    /// Changes applied to each document since its last snapshot.
    pub(super) since_snapshot: [u64; 3],
    /// While starting from snapshots: the cursor each document's snapshot covers.
    pub(super) snapshot_covers: [u64; 3],
    /// When each device was last heard from (Unix seconds).
    pub(super) last_seen: Vec<(DeviceId, i64)>,
    /// When this device last finished a sync (Unix seconds).
    pub(super) last_sync: Option<i64>,
    /// Alarms, open and past.
    pub(super) alarm_log: AlarmLog,
    /// The newest quarantine row a person has acknowledged.
    pub(super) quarantine_seen: i64,
    /// Signals received, newest last (bounded).
    pub(super) signals: Vec<ReceivedSignal>,
    /// For each stream of another device: (sender, kind, doc) and the relay
    /// cursor of its newest applied envelope.
    pub(super) stream_cursors: Vec<(DeviceId, u8, u8, u64)>,
    /// A gap was seen: fetch again from this cursor, in case the relay now
    /// serves what it left out.
    pub(super) refetch_after: Option<u64>,
    /// The relay's compaction point, as its last page said.
    pub(super) relay_compacted: u64,
    /// The envelope at `cursor`, as this device read it.
    pub(super) cursor_mark: Option<CursorMark>,
    /// Envelopes that failed verification, ever (the quarantine keeps only
    /// the newest).
    pub(super) quarantined_total: u64,
    /// Sealing is stopped: see [`Alarm::StateBehind`].
    pub(super) sealing_stopped: bool,
    /// Changes made while a key rotation was due, not yet sealed: per
    /// document, the heads before the first of them.
    pub(super) unsealed: Vec<(u8, Vec<[u8; 32]>)>,
    /// A newly paired partner's name, until their own document exists.
    pub(super) pending_name: Option<String>,
    /// This device's name, until its partner's own document exists here to
    /// hold it.
    pub(super) pending_device_name: Option<String>,
    /// Every outbox entry up to this id has been offered to the relay (the
    /// outbox is sent in order), so its bytes may be stored there.
    pub(super) offered_upto: i64,
}

/// What a device read at one relay cursor, to check later that the relay
/// still holds the same thing there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorMark {
    /// The cursor.
    pub cursor: u64,
    /// SHA-256 of the envelope's bytes.
    pub digest: [u8; 32],
    /// The envelope's kind code (0 if its header did not parse).
    pub kind: u8,
}

impl CursorMark {
    /// The mark of a stored envelope.
    pub fn of(item: &StoredEnvelope) -> Self {
        use sha2::Digest;
        Self {
            cursor: item.cursor.0,
            digest: sha2::Sha256::digest(&item.envelope.0).into(),
            kind: envelope::header_of(&item.envelope.0).map_or(0, |h| h.kind.code()),
        }
    }

    /// Whether `item` is the envelope this mark was taken of.
    pub fn matches(&self, item: &StoredEnvelope) -> bool {
        *self == Self::of(item)
    }

    /// Whether the relay may have removed this envelope on purpose: a signal
    /// or checkpoint past its time to live, or changes a snapshot replaced.
    pub fn may_vanish(&self, compacted: Cursor) -> bool {
        self.kind == Kind::Signal.code()
            || self.kind == Kind::Checkpoint.code()
            || self.cursor <= compacted.0
    }
}

/// One of this device's own streams, (kind, doc), and its tip, (seq, hash).
pub type OwnTip = ((u8, u8), (u64, [u8; 32]));

/// A signal that arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedSignal {
    /// Who sent it.
    pub from: DeviceId,
    /// What it was.
    pub signal: SignalPayload,
    /// When it arrived (Unix milliseconds).
    pub received_at: i64,
    /// Earlier signals from the same device never arrived (they expired,
    /// or the relay withheld them).
    pub after_gap: bool,
}

impl ReceivedSignal {
    /// Whether it is past its time to live at `now` (Unix milliseconds):
    /// it arrived late, and is history rather than a live request.
    pub fn expired(&self, now: i64) -> bool {
        now > self.signal.expires_at
    }
}

/// How many of its own confirmed envelopes a device keeps, to send again
/// after a relay restore. Unconfirmed ones are all kept.
pub const SENT_KEPT: u64 = 4096;

/// One of this device's envelopes that the relay said it stored: kept as
/// unconfirmed until a fetched page shows it, then kept a while longer in
/// case the relay is restored from an older backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentEnvelope {
    /// Its document's code.
    pub doc: u8,
    /// Its sequence number in its stream.
    pub seq: u64,
    /// The cursor the relay said it stored it under, or (once confirmed)
    /// the cursor a page showed it at.
    pub cursor: u64,
    /// The envelope.
    pub envelope: Blob,
}

/// How many received signals are kept.
pub const SIGNALS_KEPT: usize = 50;

impl SyncState {
    /// The tip of this device's own (`kind`, `doc`) stream.
    pub fn tip(&self, kind: Kind, doc: DocId) -> (Seq, EnvelopeHash) {
        self.tips
            .iter()
            .find(|(k, _)| *k == (kind.code(), doc.code()))
            .map_or((Seq(0), EnvelopeHash::GENESIS), |(_, (s, h))| (Seq(*s), EnvelopeHash(*h)))
    }

    pub(super) fn set_tip(&mut self, kind: Kind, doc: DocId, seq: Seq, hash: EnvelopeHash) {
        let key = (kind.code(), doc.code());
        self.tips.retain(|(k, _)| *k != key);
        self.tips.push((key, (seq.0, hash.0)));
    }

    /// Raises an alarm at `now` (Unix milliseconds); see [`AlarmLog::raise`].
    pub(super) fn raise(&mut self, alarm: Alarm, now: i64) {
        self.alarm_log.raise(alarm, now);
    }

    /// The alarms no person has acknowledged yet, oldest first.
    pub fn alarms(&self) -> Vec<&Alarm> {
        self.alarm_log.open().map(|r| &r.alarm).collect()
    }

    /// Records that `device` was heard from.
    pub(super) fn seen(&mut self, device: DeviceId, at: i64) {
        self.last_seen.retain(|(d, _)| *d != device);
        self.last_seen.push((device, at));
    }

    /// Records the cursor of a stream's newest applied envelope.
    pub(super) fn set_stream_cursor(&mut self, stream: Stream, cursor: u64) {
        let key = (stream.sender, stream.kind.code(), stream.doc.code());
        self.stream_cursors.retain(|(d, k, o, _)| (*d, *k, *o) != key);
        self.stream_cursors.push((key.0, key.1, key.2, cursor));
    }

    /// The cursor of a stream's newest applied envelope, if known.
    pub fn stream_cursor(&self, stream: Stream) -> Option<u64> {
        let key = (stream.sender, stream.kind.code(), stream.doc.code());
        self.stream_cursors.iter().find(|(d, k, o, _)| (*d, *k, *o) == key).map(|e| e.3)
    }

    /// When `device` was last heard from (Unix seconds).
    pub fn last_seen(&self, device: &DeviceId) -> Option<i64> {
        self.last_seen.iter().find(|(d, _)| d == device).map(|(_, t)| *t)
    }

    /// When this device last finished a sync (Unix milliseconds, as every
    /// time the engine gives; it is kept to the second).
    pub fn last_sync(&self) -> Option<i64> {
        self.last_sync.map(|s| s * 1000)
    }

    /// Signals received and still current as of the last write, newest
    /// last; see [`ReceivedSignal::expired`] for reading them later.
    pub fn signals(&self) -> &[ReceivedSignal] {
        &self.signals
    }

    /// Alarms, open and past.
    pub fn alarm_log(&self) -> &AlarmLog {
        &self.alarm_log
    }

    /// The newest quarantine row a person has acknowledged.
    pub fn quarantine_seen(&self) -> i64 {
        self.quarantine_seen
    }
}
