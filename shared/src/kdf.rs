//! HKDF labels and the subkeys derived from an epoch key.
//!
//! Every purpose has its own label, and no key is ever used for two purposes.
//! The labels are part of the wire format: changing one breaks compatibility,
//! and the golden vectors will say so.

use crate::ids::{Epoch, PlanId};
use crate::keys::SymmetricKey;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

/// Salt prefix for the per-epoch extract step.
pub const LABEL_EPOCH: &[u8] = b"cove/v1/epoch";
/// Subkey that seals `changes` envelopes.
pub const LABEL_CHANGES: &[u8] = b"cove/v1/changes";
/// Subkey that seals `snapshot` envelopes.
pub const LABEL_SNAPSHOT: &[u8] = b"cove/v1/snapshot";
/// Subkey that seals `signal` envelopes.
pub const LABEL_SIGNAL: &[u8] = b"cove/v1/signal";
/// Subkey that seals `checkpoint` envelopes.
pub const LABEL_CHECKPOINT: &[u8] = b"cove/v1/checkpoint";
/// The public key id that commits an envelope to its epoch key.
pub const LABEL_KEY_ID: &[u8] = b"cove/v1/key-id";
/// Key-encryption key of a key wrap.
pub const LABEL_WRAP: &[u8] = b"cove/v1/wrap";
/// Device fingerprints shown to people.
pub const LABEL_FINGERPRINT: &[u8] = b"cove/v1/fingerprint";

/// A 32-byte public value that names one epoch key of one plan.
///
/// It is a PRF output of the key itself, so an envelope that carries it is
/// committed to that key: finding a second key with the same id is a 256-bit
/// collision search, and a receiver never tries a second key on the same
/// ciphertext. Membership entries that start an epoch carry its key id too,
/// so every recipient of a wrapped key can check that it got the same key
/// as everyone else.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", crate::codec::to_hex(&self.0))
    }
}

/// Which envelope kind a subkey seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `changes` envelopes.
    Changes,
    /// `snapshot` envelopes.
    Snapshot,
    /// `signal` envelopes.
    Signal,
    /// `checkpoint` envelopes.
    Checkpoint,
}

impl Purpose {
    /// The HKDF info label of this purpose.
    pub const fn label(self) -> &'static [u8] {
        match self {
            Self::Changes => LABEL_CHANGES,
            Self::Snapshot => LABEL_SNAPSHOT,
            Self::Signal => LABEL_SIGNAL,
            Self::Checkpoint => LABEL_CHECKPOINT,
        }
    }
}

/// The subkeys of one epoch of one plan, derived once and cached.
///
/// `PRK = HKDF-Extract(salt = "cove/v1/epoch" ‖ plan id ‖ epoch (u32 BE), IKM = epoch key)`,
/// then each subkey is `HKDF-Expand(PRK, label, 32)` and the key id is
/// `HKDF-Expand(PRK, "cove/v1/key-id", 32)`.
#[derive(Clone)]
pub struct EpochKeys {
    plan: PlanId,
    epoch: Epoch,
    key_id: KeyId,
    changes: SymmetricKey,
    snapshot: SymmetricKey,
    signal: SymmetricKey,
    checkpoint: SymmetricKey,
}

impl EpochKeys {
    /// Derives every subkey of `epoch` from its epoch key.
    pub fn derive(plan: PlanId, epoch: Epoch, epoch_key: &SymmetricKey) -> Self {
        let mut salt = Vec::with_capacity(LABEL_EPOCH.len() + 20);
        salt.extend_from_slice(LABEL_EPOCH);
        salt.extend_from_slice(plan.as_bytes());
        salt.extend_from_slice(&epoch.0.to_be_bytes());
        let prk = Hkdf::<Sha256>::new(Some(&salt), epoch_key.as_bytes());
        let expand = |label: &[u8]| {
            let mut out = [0u8; 32];
            expand_into(&prk, label, &mut out);
            SymmetricKey::from_bytes(out)
        };
        let mut key_id = [0u8; 32];
        expand_into(&prk, LABEL_KEY_ID, &mut key_id);
        Self {
            plan,
            epoch,
            key_id: KeyId(key_id),
            changes: expand(LABEL_CHANGES),
            snapshot: expand(LABEL_SNAPSHOT),
            signal: expand(LABEL_SIGNAL),
            checkpoint: expand(LABEL_CHECKPOINT),
        }
    }

    /// The plan these keys belong to.
    pub fn plan(&self) -> PlanId {
        self.plan
    }

    /// The epoch these keys belong to.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The public id of the epoch key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The subkey for one purpose.
    pub fn subkey(&self, purpose: Purpose) -> &SymmetricKey {
        match purpose {
            Purpose::Changes => &self.changes,
            Purpose::Snapshot => &self.snapshot,
            Purpose::Signal => &self.signal,
            Purpose::Checkpoint => &self.checkpoint,
        }
    }
}

impl fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKeys")
            .field("plan", &self.plan)
            .field("epoch", &self.epoch)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// HKDF-Expand into a buffer no longer than 255 hash lengths.
pub(crate) fn expand_into(prk: &Hkdf<Sha256>, info: &[u8], out: &mut [u8]) {
    // Every caller asks for at most 32 bytes; HKDF allows 8160.
    #[allow(clippy::expect_used)]
    prk.expand(info, out).expect("HKDF output length within limit");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_plan_and_epoch() {
        let key = SymmetricKey::from_bytes([9; 32]);
        let plan = PlanId::from_bytes([1; 16]);
        let a = EpochKeys::derive(plan, Epoch(1), &key);
        let b = EpochKeys::derive(plan, Epoch(2), &key);
        let c = EpochKeys::derive(PlanId::from_bytes([2; 16]), Epoch(1), &key);
        let subkeys = [
            a.subkey(Purpose::Changes),
            a.subkey(Purpose::Snapshot),
            a.subkey(Purpose::Signal),
            b.subkey(Purpose::Changes),
            c.subkey(Purpose::Changes),
        ];
        for (i, x) in subkeys.iter().enumerate() {
            for y in &subkeys[i + 1..] {
                assert_ne!(x.as_bytes(), y.as_bytes());
            }
        }
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.key_id(), c.key_id());
    }
}
