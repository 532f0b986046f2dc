//! Partner identities in the membership: which identity speaks for each
//! partner, who receives a new epoch's key, who may sign an entry, and the
//! entry that gives a partner a new identity or retires theirs.

use super::state::check_wraps;
use super::{Entry, EntryBody, EntryHash, IdentityChange, MembershipError, MembershipState};
use crate::identity::{Certificate, PartnerIdentity};
use crate::ids::{DeviceId, Epoch, Partner, PlanId};

/// A partner identity the log has pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Whose identity.
    pub partner: Partner,
    /// Its Ed25519 key, which certifies the partner's devices.
    pub key: DeviceId,
    /// Its X25519 key, which receives recovery wraps.
    pub exchange: [u8; 32],
    /// Index of the entry that pinned it.
    pub pinned_at: u64,
    /// Set once it no longer speaks for the partner: replaced by a new
    /// identity, or retired because the partner left.
    pub ended: Option<IdentityEnd>,
}

impl Identity {
    /// Whether it still speaks for its partner.
    pub fn is_live(&self) -> bool {
        self.ended.is_none()
    }
}

/// When and how an identity stopped speaking for its partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityEnd {
    /// Index of the entry that ended it.
    pub at: u64,
    /// The device that signed that entry.
    pub by: DeviceId,
    /// The first epoch it holds no key for (until a rotation, it holds the
    /// current one, so one is due).
    pub epoch: Epoch,
    /// Whether the partner left (retired), rather than took a new identity.
    pub retired: bool,
}

/// Who signed an entry, as the log knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signer {
    /// An active device of this partner.
    Device(Partner),
    /// This partner's live identity (only to enrol a device: a recovery).
    Identity(Partner),
}

impl MembershipState {
    /// A partner's current identity: the last one pinned, live or retired.
    /// `None` before partner B first enrols.
    pub fn identity(&self, partner: Partner) -> Option<&Identity> {
        self.identities.iter().rev().find(|i| i.partner == partner)
    }

    /// A partner's identity if it still speaks for them.
    pub fn live_identity(&self, partner: Partner) -> Option<&Identity> {
        self.identity(partner).filter(|i| i.is_live())
    }

    /// Every identity ever pinned, in order.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// Whether a partner has left the plan (their identity was retired).
    pub fn has_left(&self, partner: Partner) -> bool {
        self.identity(partner).is_some_and(|i| i.ended.as_ref().is_some_and(|e| e.retired))
    }

    /// Who receives a new epoch's key: the active devices in id order, then
    /// the live partner identities, A first.
    pub fn recipients(&self) -> Vec<(DeviceId, [u8; 32])> {
        self.active()
            .map(|m| (m.device, m.exchange))
            .chain(
                [Partner::A, Partner::B]
                    .into_iter()
                    .filter_map(|p| self.live_identity(p))
                    .map(|i| (i.key, i.exchange)),
            )
            .collect()
    }

    /// Who signed an entry: an active device, or (only to enrol a device
    /// for its own partner) a live partner identity.
    pub(super) fn signer(&self, entry: &Entry) -> Result<Signer, MembershipError> {
        if let Some(member) = self.members.get(&entry.signer) {
            return if member.is_active() {
                Ok(Signer::Device(member.partner))
            } else {
                Err(MembershipError::SignerRevoked)
            };
        }
        let identity = [Partner::A, Partner::B]
            .into_iter()
            .find(|p| self.live_identity(*p).is_some_and(|i| i.key == entry.signer));
        match (identity, &entry.body) {
            (Some(p), EntryBody::AddDevice { partner, .. }) if *partner == p => {
                Ok(Signer::Identity(p))
            }
            (Some(_), _) => Err(MembershipError::NotAllowed(
                "a partner identity signs only the enrolment of that partner's own device",
            )),
            (None, _) => Err(MembershipError::NotMember),
        }
    }

    /// Whether a key is in use anywhere in the log, as a device or as an
    /// identity: each key has one role, once.
    pub(super) fn key_known(&self, key: &DeviceId) -> bool {
        self.members.contains_key(key) || self.identities.iter().any(|i| i.key == *key)
    }

    /// Checks a partner-key entry and applies it to `next`.
    pub(super) fn apply_partner_key(
        &self,
        next: &mut Self,
        entry: &Entry,
        signer: Signer,
        partner: Partner,
        change: &IdentityChange,
    ) -> Result<(), MembershipError> {
        let epoch = self.epoch();
        if self.live_identity(partner).is_none() {
            return Err(MembershipError::NotAllowed(
                "that partner has no identity in the plan to change",
            ));
        }
        let own = signer == Signer::Device(partner);
        let end = |retired| IdentityEnd {
            at: entry.index,
            by: entry.signer,
            epoch: epoch.next().unwrap_or(epoch),
            retired,
        };
        match change {
            IdentityChange::Retire => {
                // A partner leaves from their own device; the other
                // partner can remove them once none of their devices
                // remains (revoking those first is how uncoupling
                // starts).
                let has_devices = self.active_of(partner).next().is_some();
                if !own && has_devices {
                    return Err(MembershipError::NotAllowed(
                        "revoke the partner's devices before removing them from the plan",
                    ));
                }
                if let Some(i) = next.identities.iter_mut().rev().find(|i| i.partner == partner) {
                    i.ended = Some(end(true));
                }
            }
            IdentityChange::Rotate { identity, certificate, wraps } => {
                if !own {
                    return Err(MembershipError::NotAllowed(
                        "only a partner's own device can give them a new identity",
                    ));
                }
                if self.key_known(&identity.key) {
                    return Err(MembershipError::NotAllowed("an identity key cannot be reused"));
                }
                let device = self.members.get(&entry.signer).ok_or(MembershipError::NotMember)?;
                check_certificate(
                    certificate,
                    entry.plan,
                    self.genesis(),
                    partner,
                    device.device,
                    identity,
                )?;
                check_wraps(entry, wraps, (1..=epoch.0).map(|e| (Epoch(e), identity.key)))?;
                if let Some(i) = next.identities.iter_mut().rev().find(|i| i.partner == partner) {
                    i.ended = Some(end(false));
                }
                next.identities.push(pinned(partner, identity, entry.index));
            }
        }
        Ok(())
    }
}

pub(super) fn pinned(partner: Partner, identity: &PartnerIdentity, at: u64) -> Identity {
    Identity { partner, key: identity.key, exchange: identity.exchange, pinned_at: at, ended: None }
}

/// The certificate must be the identity's, for this device, partner, plan
/// and genesis. (Decoding it verified its signature.)
pub(super) fn check_certificate(
    certificate: &Certificate,
    plan: PlanId,
    genesis: EntryHash,
    partner: Partner,
    device: DeviceId,
    identity: &PartnerIdentity,
) -> Result<(), MembershipError> {
    let expected = certificate.plan == plan
        && certificate.genesis == genesis
        && certificate.partner == partner
        && certificate.device == device
        && certificate.identity == identity.key;
    if expected {
        Ok(())
    } else {
        Err(MembershipError::NotAllowed("the device's certificate does not match the entry"))
    }
}
