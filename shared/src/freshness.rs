//! Freshness: what a device has already seen from each stream, so that the
//! relay cannot replay, drop, reorder or roll back envelopes unnoticed.
//!
//! A stream is one sender's envelopes of one kind for one document. For each
//! the tracker keeps a high-water mark (the highest sequence number applied)
//! and the hash of that envelope. Each envelope names the hash of the one
//! before it, so the streams are hash chains, and the three kinds follow
//! different policies:
//!
//! | kind | `seq` < mark | `seq` = mark | `seq` = mark + 1 | `seq` > mark + 1 |
//! |---|---|---|---|---|
//! | changes | duplicate | duplicate if same hash, else fork | new if `prev` matches, else fork | gap |
//! | signal | duplicate | as changes | as changes | new after a gap (expired or withheld signals) |
//! | checkpoint | duplicate | as changes | as changes | new after a gap (only the newest matters) |
//! | snapshot | rollback | as changes | new | new (a device sees only the newest snapshot) |
//!
//! A gap is held back, not applied; the device asks for the missing range
//! and reports "missing changes from <device> since <n>" until it arrives.
//! A revoked sender's changes are applied only as one complete run that ends
//! at the cutoff its revocation pinned ([`revoked_run`]).
//!
//! An equivocation at a sequence number below the mark is not detected
//! here: the tracker keeps only each stream's tip. The relay refuses a second
//! envelope for a (sender, kind, doc, seq) it already holds.

use crate::envelope::{EnvelopeHash, Header, Kind, Stream};
use crate::ids::{DeviceId, DocId, Seq};
use crate::membership::Cutoff;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an incoming envelope relates to what the device has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next envelope of its stream: apply it, then [`Freshness::record`] it.
    New,
    /// A signal that is new, but signals from `missing_from` up to it never
    /// arrived: they expired, or the relay withheld them. Apply it, record
    /// it, and say so.
    NewAfterGap {
        /// The first signal that never arrived.
        missing_from: Seq,
    },
    /// Already applied (a replay or a resend): ignore it.
    Duplicate,
    /// Envelopes are missing before this one, from `missing_from` on.
    Gap {
        /// The first missing sequence number.
        missing_from: Seq,
    },
    /// Its chain contradicts what was seen: the sender signed two different
    /// envelopes for one position, or the relay spliced streams.
    Fork,
    /// The relay served something older than what was already seen.
    Rollback {
        /// The newest sequence number already seen.
        seen: Seq,
    },
}

/// The tip of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTip {
    /// The highest sequence number applied.
    pub seq: Seq,
    /// The hash of that envelope.
    pub hash: EnvelopeHash,
}

/// Per-stream high-water marks and chain heads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    streams: BTreeMap<Stream, StreamTip>,
}

/// The persisted form could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored freshness state is corrupt")]
pub struct CorruptFreshness;

const FORMAT_VERSION: u8 = 1;
const RECORD_LEN: usize = 32 + 1 + 1 + 8 + 32;

impl Freshness {
    /// An empty tracker: nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies an envelope that has already passed [`crate::envelope::open`].
    pub fn classify(&self, header: &Header, hash: EnvelopeHash) -> Verdict {
        let tip = self.tip(header.stream());
        let (mark, head) = tip.map_or((0, EnvelopeHash::GENESIS), |t| (t.seq.0, t.hash));
        let seq = header.seq.0;
        // `Header::decode` refuses anything above `Seq::MAX`, and marks only
        // ever hold decoded sequence numbers, so `mark + 1` cannot overflow.
        let next = mark.saturating_add(1);
        if seq == mark {
            return if hash == head { Verdict::Duplicate } else { Verdict::Fork };
        }
        if seq == next {
            return match header.kind {
                Kind::Snapshot => Verdict::New,
                Kind::Changes | Kind::Signal | Kind::Checkpoint if header.prev == head => {
                    Verdict::New
                }
                Kind::Changes | Kind::Signal | Kind::Checkpoint => Verdict::Fork,
            };
        }
        if seq < mark {
            return match header.kind {
                Kind::Snapshot => Verdict::Rollback { seen: Seq(mark) },
                Kind::Changes | Kind::Signal | Kind::Checkpoint => Verdict::Duplicate,
            };
        }
        match header.kind {
            Kind::Changes => Verdict::Gap { missing_from: Seq(next) },
            Kind::Signal | Kind::Checkpoint => Verdict::NewAfterGap { missing_from: Seq(next) },
            Kind::Snapshot => Verdict::New,
        }
    }

    /// Records an applied envelope. Call it only for [`Verdict::New`] and
    /// [`Verdict::NewAfterGap`], in the same local transaction that applies
    /// the envelope. The mark never moves backwards.
    pub fn record(&mut self, header: &Header, hash: EnvelopeHash) {
        self.advance(header.stream(), StreamTip { seq: header.seq, hash });
    }

    /// Classifies and, if new, records in one step.
    pub fn observe(&mut self, header: &Header, hash: EnvelopeHash) -> Verdict {
        let verdict = self.classify(header, hash);
        if matches!(verdict, Verdict::New | Verdict::NewAfterGap { .. }) {
            self.record(header, hash);
        }
        verdict
    }

    /// The tip of one stream, if anything was seen on it.
    pub fn tip(&self, stream: Stream) -> Option<StreamTip> {
        self.streams.get(&stream).copied()
    }

    /// Every stream's tip.
    pub fn tips(&self) -> impl Iterator<Item = (Stream, StreamTip)> + '_ {
        self.streams.iter().map(|(s, t)| (*s, *t))
    }

    /// Starts a stream at a tip taken from a snapshot's coverage, so that a
    /// device that begins from the snapshot knows where each chain resumes.
    /// Ignored where the device has already seen more. Only streams of the
    /// snapshot's own document may be seeded from it; the caller must also
    /// check the tail it fetches against the coverage ([`Self::check_tail`]).
    pub fn seed(&mut self, stream: Stream, tip: StreamTip) {
        self.advance(stream, tip);
    }

    /// Checks a claimed state (such as a snapshot's coverage of `doc`)
    /// against what this device has seen of that document's `changes`: any
    /// stream where the claim is behind is a rollback.
    pub fn check_not_behind(
        &self,
        doc: DocId,
        claim: &BTreeMap<DeviceId, StreamTip>,
    ) -> Result<(), (DeviceId, Verdict)> {
        for (stream, seen) in &self.streams {
            if stream.kind != Kind::Changes || stream.doc != doc {
                continue;
            }
            let claimed = claim.get(&stream.sender).map_or(0, |t| t.seq.0);
            if claimed < seen.seq.0 {
                return Err((stream.sender, Verdict::Rollback { seen: seen.seq }));
            }
        }
        Ok(())
    }

    /// After seeding from a snapshot that covers cursors up to C, every
    /// `changes` envelope of that document stored after C must continue its
    /// stream past the coverage. One at or below it means the coverage claims
    /// more than the snapshot holds: a malicious or broken snapshot that
    /// would otherwise silently hide real changes as "duplicates".
    pub fn check_tail(&self, header: &Header) -> Result<(), Verdict> {
        match self.tip(header.stream()) {
            Some(tip) if header.kind == Kind::Changes && header.seq <= tip.seq => {
                Err(Verdict::Fork)
            }
            _ => Ok(()),
        }
    }

    fn advance(&mut self, stream: Stream, tip: StreamTip) {
        self.streams
            .entry(stream)
            .and_modify(|t| {
                if tip.seq > t.seq {
                    *t = tip;
                }
            })
            .or_insert(tip);
    }

    /// The persisted form: a version byte, a count (u32 BE), then per stream
    /// sender (32) ‖ kind (1) ‖ doc (1) ‖ seq (u64 BE) ‖ hash (32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.streams.len() * RECORD_LEN);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(self.streams.len() as u32).to_be_bytes());
        for (s, t) in &self.streams {
            out.extend_from_slice(s.sender.as_bytes());
            out.push(s.kind.code());
            out.push(s.doc.code());
            out.extend_from_slice(&t.seq.0.to_be_bytes());
            out.extend_from_slice(&t.hash.0);
        }
        out
    }

    /// Reads the persisted form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CorruptFreshness> {
        let mut r = crate::codec::Reader::new(bytes);
        let corrupt = |_| CorruptFreshness;
        if r.u8().map_err(corrupt)? != FORMAT_VERSION {
            return Err(CorruptFreshness);
        }
        let count = r.u32().map_err(corrupt)? as usize;
        if count.checked_mul(RECORD_LEN) != Some(r.remaining()) {
            return Err(CorruptFreshness);
        }
        let mut out = Self::new();
        for _ in 0..count {
            let sender =
                DeviceId::from_bytes(r.array().map_err(corrupt)?).map_err(|_| CorruptFreshness)?;
            let kind = Kind::from_code(r.u8().map_err(corrupt)?).ok_or(CorruptFreshness)?;
            let doc = DocId::from_code(r.u8().map_err(corrupt)?).ok_or(CorruptFreshness)?;
            let tip = StreamTip {
                seq: Seq(r.u64().map_err(corrupt)?),
                hash: EnvelopeHash(r.array().map_err(corrupt)?),
            };
            if out.streams.insert(Stream { sender, kind, doc }, tip).is_some() {
                return Err(CorruptFreshness);
            }
        }
        r.finish().map_err(corrupt)?;
        Ok(out)
    }
}

/// The envelopes to apply, in order, from a revoked device's `changes`
/// stream: the run from this device's tip up to the revocation's cutoff, but
/// only once it is complete and ends exactly at the cutoff's hash. Until
/// then, `None`: hold them. `candidates` maps each held sequence number to
/// that envelope's (`prev`, hash).
///
/// Without this, a revoked device (which keeps its signing key and its old
/// epoch keys) could sign a different envelope for any position up to its
/// cutoff and have devices that had not yet seen the real one accept it.
pub fn revoked_run(
    tip: Option<StreamTip>,
    cutoff: Cutoff,
    candidates: &BTreeMap<Seq, (EnvelopeHash, EnvelopeHash)>,
) -> Option<Vec<Seq>> {
    let (mut seq, mut head) = tip.map_or((0, EnvelopeHash::GENESIS), |t| (t.seq.0, t.hash));
    let mut run = Vec::new();
    while seq < cutoff.seq.0 {
        let next = Seq(seq + 1);
        let (prev, hash) = candidates.get(&next)?;
        if *prev != head {
            return None;
        }
        run.push(next);
        seq = next.0;
        head = *hash;
    }
    (seq == cutoff.seq.0 && head == cutoff.hash).then_some(run)
}
