//! A device's epoch keys, recovered from the membership log, and the policy
//! that opens envelopes with them.

use crate::envelope::{Header, OpenPolicy};
use crate::ids::{Epoch, PlanId};
use crate::kdf::EpochKeys;
use crate::keys::{DeviceSecret, SymmetricKey};
use crate::membership::{MembershipLog, MembershipState};
use ed25519_dalek::VerifyingKey;
use std::collections::BTreeMap;

/// Every epoch key this device holds for one plan, with derived subkeys.
/// Its `Debug` names the epochs, never a key.
#[derive(Clone)]
pub struct Keyring {
    plan: PlanId,
    epochs: BTreeMap<Epoch, (SymmetricKey, EpochKeys)>,
    /// Epochs whose wrap for this device did not open, or opened to a key
    /// other than the one the log announced: a corrupt or malicious wrap.
    unusable: Vec<Epoch>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("plan", &self.plan)
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .field("unusable", &self.unusable)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// An empty keyring for a plan.
    pub fn new(plan: PlanId) -> Self {
        Self { plan, epochs: BTreeMap::new(), unusable: Vec::new() }
    }

    /// Unwraps every key the log wrapped for `device`, and keeps each only if
    /// its key id is the one the log announced for its epoch, so that every
    /// member provably holds the same key. A wrap that fails is recorded in
    /// [`Self::unusable`] rather than failing the whole ring: the log is
    /// immutable, and one bad wrap from a malicious member must not lock a
    /// device out of every other epoch.
    pub fn from_log(log: &MembershipLog, device: &DeviceSecret) -> Self {
        let state = log.state();
        let mut ring = Self::new(state.plan());
        for entry in log.entries() {
            for wrap in entry.wraps().iter().filter(|w| w.recipient() == device.id()) {
                let epoch = wrap.epoch();
                let key = wrap.unwrap(device).ok().filter(|key| {
                    let id = EpochKeys::derive(state.plan(), epoch, key).key_id();
                    state.key_id(epoch) == Some(id)
                });
                match key {
                    Some(key) => ring.insert(epoch, key),
                    None => ring.unusable.push(epoch),
                }
            }
        }
        ring
    }

    /// Epochs whose wrap for this device was corrupt or did not match the
    /// announced key.
    pub fn unusable(&self) -> &[Epoch] {
        &self.unusable
    }

    /// Adds an epoch key.
    pub fn insert(&mut self, epoch: Epoch, key: SymmetricKey) {
        let derived = EpochKeys::derive(self.plan, epoch, &key);
        self.epochs.insert(epoch, (key, derived));
    }

    /// The raw key of an epoch (to wrap it for a new device).
    pub fn key(&self, epoch: Epoch) -> Option<&SymmetricKey> {
        self.epochs.get(&epoch).map(|(k, _)| k)
    }

    /// The derived keys of an epoch.
    pub fn keys(&self, epoch: Epoch) -> Option<&EpochKeys> {
        self.epochs.get(&epoch).map(|(_, d)| d)
    }

    /// The newest epoch held.
    pub fn latest(&self) -> Option<Epoch> {
        self.epochs.keys().next_back().copied()
    }

    /// Every epoch held, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = Epoch> + '_ {
        self.epochs.keys().copied()
    }

    /// The plan.
    pub fn plan(&self) -> PlanId {
        self.plan
    }
}

/// Opens envelopes as a member: the log decides who may send what, the
/// keyring supplies the keys.
#[derive(Clone, Copy)]
pub struct Recipient<'a> {
    /// The verified membership.
    pub membership: &'a MembershipState,
    /// This device's keys.
    pub keyring: &'a Keyring,
}

impl std::fmt::Debug for Recipient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("plan", &self.membership.plan())
            .field("log_len", &self.membership.len())
            .field("keyring", self.keyring)
            .finish()
    }
}

impl OpenPolicy for Recipient<'_> {
    fn plan(&self) -> PlanId {
        self.membership.plan()
    }

    fn admit(&self, header: &Header) -> Option<VerifyingKey> {
        self.membership.admit(header)
    }

    fn keys(&self, epoch: Epoch) -> Option<&EpochKeys> {
        self.keyring.keys(epoch)
    }
}
