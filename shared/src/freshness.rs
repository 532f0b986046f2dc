//! Freshness: what a device has already seen from each sender, so that the
//! relay cannot replay, drop, reorder or roll back envelopes unnoticed.
//!
//! For every (sender, kind) stream the tracker keeps a high-water mark (the
//! highest sequence number applied) and the hash of that envelope. Each
//! envelope names the hash of the one before it, so the streams are hash
//! chains, and the three kinds follow different policies:
//!
//! | kind | `seq` ≤ mark − 1 | `seq` = mark | `seq` = mark + 1 | `seq` > mark + 1 |
//! |---|---|---|---|---|
//! | changes | duplicate | duplicate if same hash, else fork | new if `prev` matches, else fork | gap |
//! | signal | duplicate | as changes | as changes | new (signals expire, so a gap is expected) |
//! | snapshot | rollback | as changes | new | new (a device sees only the newest snapshot) |
//!
//! A gap is held back, not applied; the device asks for the missing range
//! and reports "missing changes from <device> since <n>" until it arrives.

use crate::envelope::{EnvelopeHash, Header, Kind};
use crate::ids::{DeviceId, Seq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an incoming envelope relates to what the device has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next envelope of its stream: apply it, then [`Freshness::record`] it.
    New,
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

/// Per-sender, per-kind high-water marks and chain heads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    streams: BTreeMap<(DeviceId, Kind), StreamTip>,
}

/// The persisted form could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored freshness state is corrupt")]
pub struct CorruptFreshness;

const FORMAT_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Persisted {
    streams: Vec<(DeviceId, Kind, StreamTip)>,
}

impl Freshness {
    /// An empty tracker: nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies an envelope that has already passed [`crate::envelope::open`].
    pub fn classify(&self, header: &Header, hash: EnvelopeHash) -> Verdict {
        let tip = self.tip(header.sender, header.kind);
        let (mark, head) = tip.map_or((0, EnvelopeHash::GENESIS), |t| (t.seq.0, t.hash));
        let seq = header.seq.0;
        if seq == mark {
            // `seq` ≥ 1, so a tip exists here.
            return if hash == head {
                Verdict::Duplicate
            } else {
                Verdict::Fork
            };
        }
        if seq == mark + 1 {
            return match header.kind {
                Kind::Snapshot => Verdict::New,
                Kind::Changes | Kind::Signal if header.prev == head => Verdict::New,
                Kind::Changes | Kind::Signal => Verdict::Fork,
            };
        }
        if seq < mark {
            return match header.kind {
                Kind::Snapshot => Verdict::Rollback { seen: Seq(mark) },
                Kind::Changes | Kind::Signal => Verdict::Duplicate,
            };
        }
        match header.kind {
            Kind::Changes => Verdict::Gap {
                missing_from: Seq(mark + 1),
            },
            Kind::Signal | Kind::Snapshot => Verdict::New,
        }
    }

    /// Records an applied envelope. Call it only for [`Verdict::New`], in the
    /// same local transaction that applies the envelope. The mark never moves
    /// backwards.
    pub fn record(&mut self, header: &Header, hash: EnvelopeHash) {
        let tip = StreamTip {
            seq: header.seq,
            hash,
        };
        self.streams
            .entry((header.sender, header.kind))
            .and_modify(|t| {
                if tip.seq > t.seq {
                    *t = tip;
                }
            })
            .or_insert(tip);
    }

    /// Classifies and, if new, records in one step.
    pub fn observe(&mut self, header: &Header, hash: EnvelopeHash) -> Verdict {
        let verdict = self.classify(header, hash);
        if verdict == Verdict::New {
            self.record(header, hash);
        }
        verdict
    }

    /// The tip of one stream, if anything was seen on it.
    pub fn tip(&self, sender: DeviceId, kind: Kind) -> Option<StreamTip> {
        self.streams.get(&(sender, kind)).copied()
    }

    /// Every stream's tip.
    pub fn tips(&self) -> impl Iterator<Item = (DeviceId, Kind, StreamTip)> + '_ {
        self.streams.iter().map(|((d, k), t)| (*d, *k, *t))
    }

    /// Starts a stream at a tip taken from a snapshot's coverage, so that
    /// a device that begins from the snapshot knows where each chain resumes.
    /// Ignored where the device has already seen more.
    pub fn seed(&mut self, sender: DeviceId, kind: Kind, tip: StreamTip) {
        self.streams
            .entry((sender, kind))
            .and_modify(|t| {
                if tip.seq > t.seq {
                    *t = tip;
                }
            })
            .or_insert(tip);
    }

    /// Checks a claimed state (such as a snapshot's coverage) against what
    /// this device has seen: any stream where the claim is behind is a rollback.
    pub fn check_not_behind<'a>(
        &self,
        claim: impl IntoIterator<Item = (&'a DeviceId, &'a StreamTip)>,
        kind: Kind,
    ) -> Result<(), (DeviceId, Verdict)> {
        let claim: BTreeMap<_, _> = claim.into_iter().collect();
        for ((device, k), seen) in &self.streams {
            if *k != kind {
                continue;
            }
            let claimed = claim.get(device).map_or(0, |t| t.seq.0);
            if claimed < seen.seq.0 {
                return Err((*device, Verdict::Rollback { seen: seen.seq }));
            }
        }
        Ok(())
    }

    /// The persisted form: a version byte, then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let persisted = Persisted {
            streams: self.tips().collect(),
        };
        let mut out = vec![FORMAT_VERSION];
        // Serializing owned, fixed-shape data into a Vec cannot fail.
        out.extend(postcard::to_allocvec(&persisted).unwrap_or_default());
        out
    }

    /// Reads the persisted form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CorruptFreshness> {
        let (version, rest) = bytes.split_first().ok_or(CorruptFreshness)?;
        if *version != FORMAT_VERSION {
            return Err(CorruptFreshness);
        }
        let persisted: Persisted = postcard::from_bytes(rest).map_err(|_| CorruptFreshness)?;
        let mut out = Self::new();
        for (device, kind, tip) in persisted.streams {
            if out.streams.insert((device, kind), tip).is_some() {
                return Err(CorruptFreshness);
            }
        }
        Ok(out)
    }
}
