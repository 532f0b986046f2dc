//! The membership at one point in the chain: who is a member, for which
//! partner, in which epoch; and the rules that take it one entry further.

use super::identities::{Identity, check_certificate, pinned};
use super::{
    Cutoff, Entry, EntryBody, EntryHash, MAX_ACTIVE_DEVICES, MAX_DEVICES_EVER, MembershipError,
    MembershipView,
};
use crate::envelope::{EnvelopeHash, Header, Kind};
use crate::ids::{DeviceId, DocId, Epoch, Partner, PlanId, Seq};
use crate::kdf::KeyId;
use crate::keys::DeviceBundle;
use crate::wrap::KeyWrap;
use ed25519_dalek::VerifyingKey;
use std::collections::BTreeMap;

/// When and how a device was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Index of the revoking entry.
    pub at: u64,
    /// The device that revoked it.
    pub by: DeviceId,
    /// Per document, the last `changes` envelope still accepted from it.
    pub cutoffs: Vec<Cutoff>,
    /// The first epoch it holds no key for. For a device that revoked
    /// itself, this epoch does not exist yet: a rotation is due.
    pub epoch: Epoch,
}

impl Revocation {
    /// The cutoff of one document (sequence 0 if the device wrote nothing
    /// there that the revoker accepted).
    pub fn cutoff(&self, doc: DocId) -> Cutoff {
        self.cutoffs.iter().copied().find(|c| c.doc == doc).unwrap_or(Cutoff {
            doc,
            seq: Seq(0),
            hash: EnvelopeHash::GENESIS,
        })
    }
}

/// One device the log has enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The device.
    pub device: DeviceId,
    /// Whose device it is.
    pub partner: Partner,
    /// Its X25519 key, for key wraps.
    pub exchange: [u8; 32],
    /// Index of the entry that added it.
    pub added_at: u64,
    /// Set once it has been revoked.
    pub revoked: Option<Revocation>,
    /// The decompressed public key, cached so that opening an envelope does
    /// not decompress the sender's point again.
    key: VerifyingKey,
}

impl Member {
    /// Whether the device is still a member.
    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }
}

/// The membership at one point in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipState {
    pub(super) plan: PlanId,
    /// Hash of every entry, in order.
    heads: Vec<EntryHash>,
    /// The epoch after each entry, in order.
    epochs: Vec<Epoch>,
    /// Key id of every epoch's key, as its entry announced it.
    key_ids: BTreeMap<Epoch, KeyId>,
    pub(super) members: BTreeMap<DeviceId, Member>,
    /// Every identity ever pinned, in order; the last one of a partner is
    /// theirs now (if it is live).
    pub(super) identities: Vec<Identity>,
}

impl MembershipState {
    /// The plan.
    pub fn plan(&self) -> PlanId {
        self.plan
    }

    /// How many entries have been applied.
    pub fn len(&self) -> u64 {
        self.heads.len() as u64
    }

    /// Always false: a state exists only after genesis.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Hash of the last applied entry.
    pub fn head(&self) -> EntryHash {
        self.heads.last().copied().unwrap_or_default()
    }

    /// Hash of the genesis entry.
    pub fn genesis(&self) -> EntryHash {
        self.heads.first().copied().unwrap_or_default()
    }

    /// This device's view, to put in the envelopes it seals.
    pub fn view(&self) -> MembershipView {
        MembershipView {
            len: u32::try_from(self.heads.len()).unwrap_or(u32::MAX),
            head: self.head(),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epochs.last().copied().unwrap_or_default()
    }

    /// The epoch a sender with this view had to seal in, if the view is a
    /// prefix of this log. `None` for a view this log does not contain: a
    /// longer log (fetch membership first) or a different one (a fork).
    pub fn epoch_at(&self, view: MembershipView) -> Option<Epoch> {
        let i = usize::try_from(view.len).ok()?.checked_sub(1)?;
        (self.heads.get(i)? == &view.head).then(|| self.epochs.get(i).copied())?
    }

    /// Whether `view` names a log this one cannot be continued into: an
    /// entry at a position this log holds, with another hash. (A longer
    /// view may still be this log's future.)
    pub fn contradicts(&self, view: MembershipView) -> bool {
        usize::try_from(view.len)
            .ok()
            .and_then(|len| len.checked_sub(1))
            .and_then(|i| self.heads.get(i))
            .is_some_and(|head| *head != view.head)
    }

    /// The key id an epoch's key must have.
    pub fn key_id(&self, epoch: Epoch) -> Option<KeyId> {
        self.key_ids.get(&epoch).copied()
    }

    /// A device's record, active or revoked.
    pub fn member(&self, device: &DeviceId) -> Option<&Member> {
        self.members.get(device)
    }

    /// Every device ever enrolled, in id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The devices that are members now, in id order.
    pub fn active(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.is_active())
    }

    /// A partner's active devices.
    pub fn active_of(&self, partner: Partner) -> impl Iterator<Item = &Member> {
        self.active().filter(move |m| m.partner == partner)
    }

    /// Whether `device` is an active member.
    pub fn is_active(&self, device: &DeviceId) -> bool {
        self.members.get(device).is_some_and(Member::is_active)
    }

    /// Whether something that still holds the current epoch key has left
    /// (a device that revoked itself, an identity replaced or retired) and
    /// no rotation has followed, so an active device should rotate.
    pub fn rotation_due(&self) -> bool {
        let epoch = self.epoch();
        self.members.values().any(|m| m.revoked.as_ref().is_some_and(|r| r.epoch > epoch))
            || self.identities.iter().any(|i| i.ended.as_ref().is_some_and(|e| e.epoch > epoch))
    }

    /// Whether the log lets this header's sender send this envelope:
    /// - the sender's membership view is a prefix of this log, from after the
    ///   sender joined, and the envelope is sealed in that view's epoch;
    /// - a partner document is written only by that partner's devices;
    /// - a revoked device is heard only for `changes` up to the document's
    ///   cutoff, with a view from before its revocation.
    pub fn admits(&self, header: &Header) -> bool {
        self.admit(header).is_some()
    }

    /// As [`Self::admits`], returning the sender's key to verify with.
    pub fn admit(&self, header: &Header) -> Option<VerifyingKey> {
        let member = self.members.get(&header.sender)?;
        if header.doc.owner().is_some_and(|owner| owner != member.partner) {
            return None;
        }
        if self.epoch_at(header.view)? != header.epoch
            || u64::from(header.view.len) <= member.added_at
        {
            return None;
        }
        let admitted = match &member.revoked {
            None => true,
            Some(r) => {
                header.kind == Kind::Changes
                    && u64::from(header.view.len) <= r.at
                    && header.seq <= r.cutoff(header.doc).seq
            }
        };
        admitted.then_some(member.key)
    }

    pub(super) fn genesis_state(entry: &Entry) -> Result<Self, MembershipError> {
        let EntryBody::Genesis { creator, identity, certificate, key_id, wraps } = &entry.body
        else {
            return Err(MembershipError::NotAllowed("the first entry must be genesis"));
        };
        if entry.index != 0 || entry.prev != EntryHash::default() {
            return Err(MembershipError::OutOfOrder { got: entry.index, expected_prev: 0 });
        }
        if entry.signer != creator.device {
            return Err(MembershipError::NotAllowed("genesis must be signed by its creator"));
        }
        if identity.key == creator.device {
            return Err(MembershipError::NotAllowed("an identity key cannot be a device key"));
        }
        check_certificate(
            certificate,
            entry.plan,
            EntryHash::default(),
            Partner::A,
            creator.device,
            identity,
        )?;
        check_wraps(
            entry,
            wraps,
            [(Epoch::FIRST, creator.device), (Epoch::FIRST, identity.key)].into_iter(),
        )?;
        let member = Member {
            device: creator.device,
            partner: Partner::A,
            exchange: creator.exchange,
            added_at: 0,
            revoked: None,
            key: bundle_key(creator)?,
        };
        Ok(Self {
            plan: entry.plan,
            heads: vec![entry.hash],
            epochs: vec![Epoch::FIRST],
            key_ids: BTreeMap::from([(Epoch::FIRST, *key_id)]),
            members: BTreeMap::from([(creator.device, member)]),
            identities: vec![pinned(Partner::A, identity, 0)],
        })
    }

    /// Applies the next entry, or refuses it and stays unchanged.
    pub(super) fn apply(&mut self, entry: &Entry) -> Result<(), MembershipError> {
        if entry.plan != self.plan {
            return Err(MembershipError::WrongPlan);
        }
        if entry.index != self.len() || entry.prev != self.head() {
            return Err(MembershipError::OutOfOrder {
                got: entry.index,
                expected_prev: self.len().saturating_sub(1),
            });
        }
        let signer = self.signer(entry)?;
        let epoch = self.epoch();
        let mut next = self.clone();
        let mut next_epoch = epoch;
        match &entry.body {
            EntryBody::Genesis { .. } => {
                return Err(MembershipError::NotAllowed("genesis must be the first entry"));
            }
            EntryBody::AddDevice { partner, bundle, identity, certificate, wraps } => {
                if self.key_known(&bundle.device) || bundle.device == identity.key {
                    return Err(MembershipError::NotAllowed("a device can be added only once"));
                }
                // Only the partner's own identity admits a device for them.
                // The other partner may carry the entry (at pairing), but
                // cannot make the certificate.
                let pinning = match self.identity(*partner) {
                    Some(current) if !current.is_live() => {
                        return Err(MembershipError::NotAllowed(
                            "that partner has left the plan; no device can be added for them",
                        ));
                    }
                    Some(current) if current.key != identity.key => {
                        return Err(MembershipError::NotAllowed(
                            "the device is not certified by its partner's identity",
                        ));
                    }
                    Some(_) => false,
                    None if self.key_known(&identity.key) => {
                        return Err(MembershipError::NotAllowed(
                            "an identity key cannot be reused",
                        ));
                    }
                    None => true,
                };
                check_certificate(
                    certificate,
                    entry.plan,
                    self.genesis(),
                    *partner,
                    bundle.device,
                    identity,
                )?;
                if self.active().count() >= MAX_ACTIVE_DEVICES
                    || self.members.len() >= MAX_DEVICES_EVER
                {
                    return Err(MembershipError::NotAllowed("the plan has too many devices"));
                }
                let for_device = (1..=epoch.0).map(|e| (Epoch(e), bundle.device));
                let for_identity =
                    (1..=epoch.0).filter(|_| pinning).map(|e| (Epoch(e), identity.key));
                check_wraps(entry, wraps, for_device.chain(for_identity))?;
                next.members.insert(
                    bundle.device,
                    Member {
                        device: bundle.device,
                        partner: *partner,
                        exchange: bundle.exchange,
                        added_at: entry.index,
                        revoked: None,
                        key: bundle_key(bundle)?,
                    },
                );
                if pinning {
                    next.identities.push(pinned(*partner, identity, entry.index));
                }
            }
            EntryBody::RevokeDevice { device, cutoffs, epoch: new_epoch, key_id, wraps } => {
                if !self.is_active(device) {
                    return Err(MembershipError::NotAllowed(
                        "only an active device can be revoked",
                    ));
                }
                if self.active().count() <= 1 {
                    return Err(MembershipError::NotAllowed(
                        "the last device cannot be revoked; delete the plan instead",
                    ));
                }
                let partner = self.member(device).map(|m| m.partner);
                if cutoffs
                    .iter()
                    .any(|c| c.seq.0 == 0 || c.doc.owner().is_some_and(|o| Some(o) != partner))
                {
                    return Err(MembershipError::NotAllowed(
                        "a cutoff names no envelope, or a document the device could not write",
                    ));
                }
                let revoked_epoch = if *device == entry.signer {
                    // Leaving: no new key, since the leaver would know it.
                    if *new_epoch != epoch || *key_id != KeyId::default() || !wraps.is_empty() {
                        return Err(MembershipError::NotAllowed(
                            "a device revoking itself cannot start an epoch; another device rotates",
                        ));
                    }
                    epoch.next().ok_or(MembershipError::NotAllowed("no epochs left"))?
                } else {
                    self.check_next_epoch(*new_epoch)?;
                    let remaining = self.recipients().into_iter().filter(|(key, _)| key != device);
                    check_wraps(entry, wraps, remaining.map(|(key, _)| (*new_epoch, key)))?;
                    next.key_ids.insert(*new_epoch, *key_id);
                    next_epoch = *new_epoch;
                    *new_epoch
                };
                if let Some(m) = next.members.get_mut(device) {
                    m.revoked = Some(Revocation {
                        at: entry.index,
                        by: entry.signer,
                        cutoffs: cutoffs.clone(),
                        epoch: revoked_epoch,
                    });
                }
            }
            EntryBody::RotateEpoch { epoch: new_epoch, key_id, wraps } => {
                self.check_next_epoch(*new_epoch)?;
                let recipients = self.recipients();
                check_wraps(entry, wraps, recipients.iter().map(|(key, _)| (*new_epoch, *key)))?;
                next.key_ids.insert(*new_epoch, *key_id);
                next_epoch = *new_epoch;
            }
            EntryBody::PartnerKey { partner, change } => {
                self.apply_partner_key(&mut next, entry, signer, *partner, change)?;
            }
        }
        next.heads.push(entry.hash);
        next.epochs.push(next_epoch);
        *self = next;
        Ok(())
    }

    fn check_next_epoch(&self, epoch: Epoch) -> Result<(), MembershipError> {
        if Some(epoch) == self.epoch().next() {
            Ok(())
        } else {
            Err(MembershipError::NotAllowed("a new epoch must follow the current one"))
        }
    }
}

/// A bundle's key. Decoding a bundle verified its self-signature, so the key
/// is a point of large order; this only re-derives it.
fn bundle_key(bundle: &DeviceBundle) -> Result<VerifyingKey, MembershipError> {
    bundle.device.verifying_key().ok_or(MembershipError::NotAllowed("unusable device key"))
}

/// The wraps must be exactly one per expected (epoch, recipient), in the
/// expected order, made by the entry's signer for this plan.
pub(super) fn check_wraps(
    entry: &Entry,
    wraps: &[KeyWrap],
    expected: impl Iterator<Item = (Epoch, DeviceId)>,
) -> Result<(), MembershipError> {
    let mut count = 0;
    for (i, (epoch, recipient)) in expected.enumerate() {
        let w = wraps.get(i).ok_or(MembershipError::BadWraps)?;
        if w.plan() != entry.plan
            || w.epoch() != epoch
            || w.recipient() != recipient
            || w.wrapper() != entry.signer
        {
            return Err(MembershipError::BadWraps);
        }
        count += 1;
    }
    if count == wraps.len() { Ok(()) } else { Err(MembershipError::BadWraps) }
}
