//! Envelopes held back until what comes before them arrives, within
//! bounds: verified first where the sender is known, de-duplicated, and
//! capped in number, bytes and distance from the stream's tip. Whatever is
//! let go can be fetched again from an honest relay.

use cove_shared::envelope;
use cove_shared::freshness::{Freshness, revoked_run};
use cove_shared::wire::StoredEnvelope;
use cove_shared::{DeviceId, EnvelopeHash, Kind, MembershipState, Seq, Stream};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many envelopes are held back at once.
pub const MAX_HELD: usize = 2048;
/// At most this many bytes of envelopes are held back at once.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;
/// Held envelopes whose sender is not in this device's log (yet).
pub const MAX_HELD_UNVERIFIED: usize = 64;

/// (sender, kind, doc, seq, hash) of a held envelope, once its signature
/// verified.
pub(crate) type HoldKey = (DeviceId, u8, u8, u64, [u8; 32]);

/// An envelope held back, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Held {
    pub(super) key: Option<HoldKey>,
    pub(super) item: StoredEnvelope,
}

/// What is held now, to decide whether one more fits.
pub(super) struct HeldBounds {
    keys: BTreeSet<HoldKey>,
    bytes: usize,
    count: usize,
    unverified: usize,
}

impl HeldBounds {
    pub(super) fn of(held: &[(i64, Held)]) -> Self {
        Self {
            keys: held.iter().filter_map(|(_, h)| h.key).collect(),
            bytes: held.iter().map(|(_, h)| h.item.envelope.0.len()).sum(),
            count: held.len(),
            unverified: held.iter().filter(|(_, h)| h.key.is_none()).count(),
        }
    }

    /// A held envelope left the store.
    pub(super) fn released(&mut self, item: &StoredEnvelope) {
        self.count -= 1;
        self.bytes = self.bytes.saturating_sub(item.envelope.0.len());
    }

    /// Takes a new envelope in, if it is not held already and fits.
    pub(super) fn admit(&mut self, key: Option<HoldKey>, item: &StoredEnvelope) -> bool {
        let len = item.envelope.0.len();
        let duplicate = key.is_some_and(|k| self.keys.contains(&k));
        let fits = self.count < MAX_HELD
            && self.bytes + len <= MAX_HELD_BYTES
            && (key.is_some() || self.unverified < MAX_HELD_UNVERIFIED);
        if duplicate || !fits {
            return false;
        }
        if let Some(key) = key {
            self.keys.insert(key);
        }
        self.count += 1;
        self.bytes += len;
        self.unverified += usize::from(key.is_none());
        true
    }
}

/// For revoked senders: the positions of their queued envelopes that now
/// form a complete run up to the revocation's pinned cutoff.
pub(crate) fn revoked_runs<'a>(
    membership: &MembershipState,
    freshness: &Freshness,
    queue: impl Iterator<Item = &'a StoredEnvelope>,
) -> BTreeMap<Stream, Vec<Seq>> {
    let mut candidates: BTreeMap<Stream, BTreeMap<Seq, (EnvelopeHash, EnvelopeHash)>> =
        BTreeMap::new();
    for item in queue {
        let Ok(header) = envelope::header_of(&item.envelope.0) else { continue };
        let revoked = membership.member(&header.sender).is_some_and(|m| !m.is_active());
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
        let Some(revocation) = membership.member(&stream.sender).and_then(|m| m.revoked.as_ref())
        else {
            continue;
        };
        let cutoff = revocation.cutoff(stream.doc);
        if let Some(run) = revoked_run(freshness.tip(stream), cutoff, &held) {
            runs.insert(stream, run);
        }
    }
    runs
}
