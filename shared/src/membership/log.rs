//! The verified chain of entries, and the entries a device makes: each
//! checked against the rules before it is handed out.

use super::{
    Cutoff, Entry, EntryBody, EntryHash, IdentityChange, MembershipError, MembershipState,
};
use crate::codec::DecodeError;
use crate::identity::{Certificate, PartnerIdentity, PartnerSecret};
use crate::ids::{DeviceId, Epoch, Partner, PlanId};
use crate::kdf::{EpochKeys, KeyId};
use crate::keys::{DeviceBundle, DeviceSecret, SymmetricKey};
use crate::random::Entropy;
use crate::wrap::KeyWrap;

/// Whether an appended entry was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The entry extended the chain.
    New,
    /// The log already held this exact entry.
    Duplicate,
}

/// A verified membership chain.
#[derive(Debug, Clone)]
pub struct MembershipLog {
    entries: Vec<Entry>,
    state: MembershipState,
}

impl MembershipLog {
    /// Starts a log from its genesis entry. Devices use
    /// [`Self::from_pinned_genesis`]; only the relay, which learns a plan
    /// from its first genesis, trusts an unpinned one.
    pub fn from_genesis(genesis: Entry) -> Result<Self, MembershipError> {
        let state = MembershipState::genesis_state(&genesis)?;
        Ok(Self { entries: vec![genesis], state })
    }

    /// Starts a log from a genesis entry that must have hash `pinned`.
    pub fn from_pinned_genesis(genesis: Entry, pinned: EntryHash) -> Result<Self, MembershipError> {
        if genesis.hash != pinned {
            return Err(MembershipError::WrongGenesis);
        }
        Self::from_genesis(genesis)
    }

    /// Verifies a whole chain, genesis first. With `pinned`, the genesis
    /// must have that hash.
    pub fn verify(
        entries: impl IntoIterator<Item = Entry>,
        pinned: Option<EntryHash>,
    ) -> Result<Self, MembershipError> {
        let mut entries = entries.into_iter();
        let genesis = entries.next().ok_or(MembershipError::NotAllowed("the log is empty"))?;
        let mut log = match pinned {
            Some(hash) => Self::from_pinned_genesis(genesis, hash)?,
            None => Self::from_genesis(genesis)?,
        };
        for entry in entries {
            if log.append(entry)? == Appended::Duplicate {
                return Err(MembershipError::NotAllowed("the chain repeats an entry"));
            }
        }
        Ok(log)
    }

    /// Decodes and verifies a chain from its encoded entries.
    pub fn decode<'a>(
        entries: impl IntoIterator<Item = &'a [u8]>,
        pinned: Option<EntryHash>,
    ) -> Result<Self, MembershipError> {
        let entries: Result<Vec<Entry>, DecodeError> =
            entries.into_iter().map(Entry::decode).collect();
        Self::verify(entries?, pinned)
    }

    /// Appends the next entry after checking every rule. An entry the log
    /// already holds is a harmless duplicate; a different entry at an index
    /// the log already holds is a fork.
    pub fn append(&mut self, entry: Entry) -> Result<Appended, MembershipError> {
        if let Some(existing) = usize::try_from(entry.index).ok().and_then(|i| self.entries.get(i))
        {
            return if existing.hash == entry.hash {
                Ok(Appended::Duplicate)
            } else {
                Err(MembershipError::Fork { index: entry.index })
            };
        }
        self.state.apply(&entry)?;
        self.entries.push(entry);
        Ok(Appended::New)
    }

    /// The current membership.
    pub fn state(&self) -> &MembershipState {
        &self.state
    }

    /// The membership after the first `len` entries (`len` ≥ 1).
    pub fn state_at(&self, len: usize) -> Option<MembershipState> {
        let (genesis, rest) = self.entries.get(..len)?.split_first()?;
        let mut state = MembershipState::genesis_state(genesis).ok()?;
        for entry in rest {
            state.apply(entry).ok()?;
        }
        Some(state)
    }

    /// Every entry, genesis first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Makes the genesis entry of a new plan, pinning the creator's
    /// identity as partner A's.
    pub fn genesis(
        plan: PlanId,
        creator: &DeviceSecret,
        identity: &PartnerSecret,
        first_key: &SymmetricKey,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let recipients = [
            (creator.id(), creator.exchange_public()),
            (identity.key(), identity.exchange_public()),
        ];
        let wraps = wrap_each(plan, &recipients, Epoch::FIRST, first_key, creator, rng)?;
        let key_id = EpochKeys::derive(plan, Epoch::FIRST, first_key).key_id();
        let certificate = identity.certify(plan, EntryHash::default(), Partner::A, creator.id());
        let body = EntryBody::Genesis {
            creator: creator.bundle(),
            identity: identity.public(),
            certificate: Box::new(certificate),
            key_id,
            wraps,
        };
        let entry = Entry::sign(plan, 0, EntryHash::default(), body, creator)?;
        MembershipState::genesis_state(&entry)?;
        Ok(entry)
    }

    /// Makes (but does not append) an entry that adds `bundle` for
    /// `partner`, as `certificate` (by the partner's `identity`) allows,
    /// wrapping every epoch key for it; and for the identity too, if this
    /// entry pins it. `keys` yields each epoch key, epochs 1..=current.
    #[allow(clippy::too_many_arguments)]
    pub fn add_device<'k>(
        &self,
        signer: &DeviceSecret,
        partner: Partner,
        bundle: &DeviceBundle,
        identity: &PartnerIdentity,
        certificate: &Certificate,
        keys: impl Fn(Epoch) -> Option<&'k SymmetricKey>,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let mut recipients = vec![(bundle.device, bundle.exchange)];
        if self.state.identity(partner).is_none() {
            recipients.push((identity.key, identity.exchange));
        }
        let mut wraps = Vec::new();
        for (key, exchange) in recipients {
            wraps.extend(self.wrap_history(signer, key, exchange, &keys, rng)?);
        }
        let body = EntryBody::AddDevice {
            partner,
            bundle: bundle.clone(),
            identity: identity.clone(),
            certificate: Box::new(certificate.clone()),
            wraps,
        };
        self.checked(body, signer)
    }

    /// Makes an entry by which a partner's identity enrols a new device of
    /// theirs, with no other device's help: a recovery.
    pub fn recover<'k>(
        &self,
        identity: &PartnerSecret,
        partner: Partner,
        bundle: &DeviceBundle,
        keys: impl Fn(Epoch) -> Option<&'k SymmetricKey>,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let certificate =
            identity.certify(self.state.plan, self.state.genesis(), partner, bundle.device);
        let signer = identity.as_signer();
        self.add_device(signer, partner, bundle, &identity.public(), &certificate, keys, rng)
    }

    /// Makes an entry that gives `signer`'s partner the identity `new`,
    /// wrapping every epoch key for it.
    pub fn rotate_identity<'k>(
        &self,
        signer: &DeviceSecret,
        partner: Partner,
        new: &PartnerSecret,
        keys: impl Fn(Epoch) -> Option<&'k SymmetricKey>,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let wraps = self.wrap_history(signer, new.key(), new.exchange_public(), &keys, rng)?;
        let certificate = new.certify(self.state.plan, self.state.genesis(), partner, signer.id());
        let change = IdentityChange::Rotate {
            identity: new.public(),
            certificate: Box::new(certificate),
            wraps,
        };
        self.checked(EntryBody::PartnerKey { partner, change }, signer)
    }

    /// Makes an entry that retires `partner`'s identity: they leave the plan.
    pub fn retire(
        &self,
        signer: &DeviceSecret,
        partner: Partner,
    ) -> Result<Entry, MembershipError> {
        self.checked(EntryBody::PartnerKey { partner, change: IdentityChange::Retire }, signer)
    }

    /// Every epoch key so far, wrapped for one recipient.
    fn wrap_history<'k>(
        &self,
        signer: &DeviceSecret,
        recipient: DeviceId,
        exchange: [u8; 32],
        keys: &impl Fn(Epoch) -> Option<&'k SymmetricKey>,
        rng: &mut impl Entropy,
    ) -> Result<Vec<KeyWrap>, MembershipError> {
        (1..=self.state.epoch().0)
            .map(|e| {
                let key = keys(Epoch(e)).ok_or(MembershipError::BadWraps)?;
                let wrap = KeyWrap::wrap(
                    self.state.plan,
                    Epoch(e),
                    key,
                    recipient,
                    &exchange,
                    signer,
                    rng,
                )?;
                Ok(wrap)
            })
            .collect()
    }

    /// Makes an entry that revokes another device, accepting its `changes`
    /// up to `cutoffs`, and moves the remaining devices to `new_key`.
    pub fn revoke(
        &self,
        signer: &DeviceSecret,
        device: DeviceId,
        cutoffs: Vec<Cutoff>,
        new_key: &SymmetricKey,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let epoch = self.next_epoch()?;
        let mut remaining = self.state.recipients();
        remaining.retain(|(key, _)| *key != device);
        let wraps = wrap_each(self.state.plan, &remaining, epoch, new_key, signer, rng)?;
        let key_id = EpochKeys::derive(self.state.plan, epoch, new_key).key_id();
        let body =
            EntryBody::RevokeDevice { device, cutoffs: sorted(cutoffs), epoch, key_id, wraps };
        self.checked(body, signer)
    }

    /// Makes an entry in which `signer` revokes itself, with its own stream
    /// tips as cutoffs. Another device must then rotate.
    pub fn leave(
        &self,
        signer: &DeviceSecret,
        cutoffs: Vec<Cutoff>,
    ) -> Result<Entry, MembershipError> {
        let body = EntryBody::RevokeDevice {
            device: signer.id(),
            cutoffs: sorted(cutoffs),
            epoch: self.state.epoch(),
            key_id: KeyId::default(),
            wraps: Vec::new(),
        };
        self.checked(body, signer)
    }

    /// Makes an entry that moves every active device to `new_key`.
    pub fn rotate(
        &self,
        signer: &DeviceSecret,
        new_key: &SymmetricKey,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let epoch = self.next_epoch()?;
        let recipients = self.state.recipients();
        let wraps = wrap_each(self.state.plan, &recipients, epoch, new_key, signer, rng)?;
        let key_id = EpochKeys::derive(self.state.plan, epoch, new_key).key_id();
        self.checked(EntryBody::RotateEpoch { epoch, key_id, wraps }, signer)
    }

    fn next_epoch(&self) -> Result<Epoch, MembershipError> {
        self.state.epoch().next().ok_or(MembershipError::NotAllowed("no epochs left"))
    }

    /// Signs the next entry and checks it against the rules before handing
    /// it out, so that a device never publishes an entry others would refuse.
    fn checked(&self, body: EntryBody, signer: &DeviceSecret) -> Result<Entry, MembershipError> {
        let entry =
            Entry::sign(self.state.plan, self.state.len(), self.state.head(), body, signer)?;
        self.state.clone().apply(&entry)?;
        Ok(entry)
    }
}

/// One epoch's key, wrapped for each recipient in order.
fn wrap_each(
    plan: PlanId,
    recipients: &[(DeviceId, [u8; 32])],
    epoch: Epoch,
    key: &SymmetricKey,
    signer: &DeviceSecret,
    rng: &mut impl Entropy,
) -> Result<Vec<KeyWrap>, MembershipError> {
    recipients
        .iter()
        .map(|(recipient, exchange)| {
            Ok(KeyWrap::wrap(plan, epoch, key, *recipient, exchange, signer, rng)?)
        })
        .collect()
}

fn sorted(mut cutoffs: Vec<Cutoff>) -> Vec<Cutoff> {
    cutoffs.sort_by_key(|c| c.doc);
    cutoffs.dedup_by_key(|c| c.doc);
    cutoffs
}
