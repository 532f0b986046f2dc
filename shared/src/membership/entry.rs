//! One membership entry: what it does, its encoding, and its signature.

use super::{Cutoff, ENTRY_MAGIC, EntryHash, FIXED_LEN, MAX_ENTRY_LEN, MembershipError};
use crate::codec::{DecodeError, Reader};
use crate::envelope::EnvelopeHash;
use crate::identity::{Certificate, PartnerIdentity};
use crate::ids::{DeviceId, DocId, Epoch, Partner, PlanId, Seq};
use crate::kdf::KeyId;
use crate::keys::{DeviceBundle, DeviceSecret, verify_signature};
use crate::wrap::KeyWrap;
use sha2::{Digest, Sha256};
use std::fmt;

/// What an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// Creates the plan with its first device, for partner A, in epoch 1.
    Genesis {
        /// The creating device.
        creator: DeviceBundle,
        /// Partner A's identity, pinned here.
        identity: PartnerIdentity,
        /// The identity's certificate for the creating device.
        certificate: Box<Certificate>,
        /// Key id of epoch 1's key.
        key_id: KeyId,
        /// Epoch 1's key, wrapped for the creator and then for A's identity.
        wraps: Vec<KeyWrap>,
    },
    /// Enrols a device for one partner.
    AddDevice {
        /// Whose device it is.
        partner: Partner,
        /// The new device.
        bundle: DeviceBundle,
        /// The partner's identity: the pinned one, or the one this entry pins.
        identity: PartnerIdentity,
        /// The identity's certificate for the device.
        certificate: Box<Certificate>,
        /// Every epoch key so far, wrapped for the new device; and, when this
        /// entry pins the identity, wrapped for the identity too.
        wraps: Vec<KeyWrap>,
    },
    /// Removes a device.
    RevokeDevice {
        /// The device removed.
        device: DeviceId,
        /// Per document, the last `changes` envelope still accepted from it.
        cutoffs: Vec<Cutoff>,
        /// The new epoch, or the current one when a device revokes itself.
        epoch: Epoch,
        /// Key id of the new epoch's key (zeros when a device revokes itself).
        key_id: KeyId,
        /// The new epoch's key for each remaining device, then for each
        /// partner identity still in the plan.
        wraps: Vec<KeyWrap>,
    },
    /// Starts a new epoch.
    RotateEpoch {
        /// The new epoch.
        epoch: Epoch,
        /// Key id of the new epoch's key.
        key_id: KeyId,
        /// The new epoch's key for each active device, then for each partner
        /// identity still in the plan.
        wraps: Vec<KeyWrap>,
    },
    /// Replaces or retires a partner's identity.
    PartnerKey {
        /// Whose identity.
        partner: Partner,
        /// What happens to it.
        change: IdentityChange,
    },
}

/// What a [`EntryBody::PartnerKey`] entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChange {
    /// The partner leaves the plan, or is removed from it: no device can be
    /// enrolled for them again, and no later epoch key is wrapped for them.
    Retire,
    /// The partner has a new identity (a new recovery phrase).
    Rotate {
        /// The new identity.
        identity: PartnerIdentity,
        /// The new identity's certificate for the signing device.
        certificate: Box<Certificate>,
        /// Every epoch key so far, wrapped for the new identity.
        wraps: Vec<KeyWrap>,
    },
}

impl EntryBody {
    fn code(&self) -> u8 {
        match self {
            Self::Genesis { .. } => 0,
            Self::AddDevice { .. } => 1,
            Self::RevokeDevice { .. } => 2,
            Self::RotateEpoch { .. } => 3,
            Self::PartnerKey { .. } => 4,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), MembershipError> {
        let wraps = |out: &mut Vec<u8>, wraps: &[KeyWrap]| -> Result<(), MembershipError> {
            let count = u16::try_from(wraps.len())
                .map_err(|_| MembershipError::NotAllowed("too many key wraps in one entry"))?;
            out.extend_from_slice(&count.to_be_bytes());
            for w in wraps {
                out.extend_from_slice(w.encode());
            }
            Ok(())
        };
        match self {
            Self::Genesis { creator, identity, certificate, key_id, wraps: w } => {
                out.extend_from_slice(&creator.encode());
                out.extend_from_slice(&identity.encode());
                out.extend_from_slice(&certificate.encode());
                out.extend_from_slice(&key_id.0);
                wraps(out, w)?;
            }
            Self::AddDevice { partner, bundle, identity, certificate, wraps: w } => {
                out.push(partner.code());
                out.extend_from_slice(&bundle.encode());
                out.extend_from_slice(&identity.encode());
                out.extend_from_slice(&certificate.encode());
                wraps(out, w)?;
            }
            Self::RevokeDevice { device, cutoffs, epoch, key_id, wraps: w } => {
                out.extend_from_slice(device.as_bytes());
                let count = u8::try_from(cutoffs.len())
                    .map_err(|_| MembershipError::NotAllowed("too many cutoffs"))?;
                out.push(count);
                for c in cutoffs {
                    out.push(c.doc.code());
                    out.extend_from_slice(&c.seq.0.to_be_bytes());
                    out.extend_from_slice(&c.hash.0);
                }
                out.extend_from_slice(&epoch.0.to_be_bytes());
                out.extend_from_slice(&key_id.0);
                wraps(out, w)?;
            }
            Self::RotateEpoch { epoch, key_id, wraps: w } => {
                out.extend_from_slice(&epoch.0.to_be_bytes());
                out.extend_from_slice(&key_id.0);
                wraps(out, w)?;
            }
            Self::PartnerKey { partner, change } => {
                out.push(partner.code());
                match change {
                    IdentityChange::Retire => out.push(0),
                    IdentityChange::Rotate { identity, certificate, wraps: w } => {
                        out.push(1);
                        out.extend_from_slice(&identity.encode());
                        out.extend_from_slice(&certificate.encode());
                        wraps(out, w)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn decode(kind: u8, body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let wraps = |r: &mut Reader<'_>| -> Result<Vec<KeyWrap>, DecodeError> {
            let count = usize::from(r.u16()?);
            if count > r.remaining() / crate::wrap::WRAP_LEN {
                return Err(DecodeError::Truncated);
            }
            (0..count).map(|_| KeyWrap::read(r)).collect()
        };
        let partner = |r: &mut Reader<'_>| {
            Partner::from_code(r.u8()?).ok_or(DecodeError::Invalid { field: "partner" })
        };
        let body = match kind {
            0 => Self::Genesis {
                creator: DeviceBundle::read(&mut r)?,
                identity: PartnerIdentity::read(&mut r)?,
                certificate: Box::new(Certificate::read(&mut r)?),
                key_id: KeyId(r.array()?),
                wraps: wraps(&mut r)?,
            },
            1 => Self::AddDevice {
                partner: partner(&mut r)?,
                bundle: DeviceBundle::read(&mut r)?,
                identity: PartnerIdentity::read(&mut r)?,
                certificate: Box::new(Certificate::read(&mut r)?),
                wraps: wraps(&mut r)?,
            },
            2 => {
                let device = DeviceId::from_bytes(r.array()?)
                    .map_err(|_| DecodeError::Invalid { field: "revoked device" })?;
                let count = r.u8()?;
                let mut cutoffs: Vec<Cutoff> = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let doc = DocId::from_code(r.u8()?)
                        .ok_or(DecodeError::Invalid { field: "cutoff doc" })?;
                    if cutoffs.last().is_some_and(|c| c.doc >= doc) {
                        return Err(DecodeError::Invalid { field: "cutoff order" });
                    }
                    cutoffs.push(Cutoff {
                        doc,
                        seq: Seq(r.u64()?),
                        hash: EnvelopeHash(r.array()?),
                    });
                }
                Self::RevokeDevice {
                    device,
                    cutoffs,
                    epoch: Epoch(r.u32()?),
                    key_id: KeyId(r.array()?),
                    wraps: wraps(&mut r)?,
                }
            }
            3 => Self::RotateEpoch {
                epoch: Epoch(r.u32()?),
                key_id: KeyId(r.array()?),
                wraps: wraps(&mut r)?,
            },
            4 => {
                let partner = partner(&mut r)?;
                let change = match r.u8()? {
                    0 => IdentityChange::Retire,
                    1 => IdentityChange::Rotate {
                        identity: PartnerIdentity::read(&mut r)?,
                        certificate: Box::new(Certificate::read(&mut r)?),
                        wraps: wraps(&mut r)?,
                    },
                    _ => return Err(DecodeError::Invalid { field: "identity change" }),
                };
                Self::PartnerKey { partner, change }
            }
            _ => {
                return Err(DecodeError::Invalid { field: "entry kind" });
            }
        };
        r.finish()?;
        Ok(body)
    }
}

/// One signed, chained membership entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub(super) plan: PlanId,
    pub(super) index: u64,
    pub(super) prev: EntryHash,
    pub(super) signer: DeviceId,
    pub(super) body: EntryBody,
    bytes: Vec<u8>,
    pub(super) hash: EntryHash,
}

impl Entry {
    /// Encodes and signs a new entry. Fails only if the entry would be larger
    /// than [`MAX_ENTRY_LEN`], which no peer would accept.
    /// `signer` is a device, or a partner identity's keys
    /// ([`crate::PartnerSecret::as_signer`]).
    pub fn sign(
        plan: PlanId,
        index: u64,
        prev: EntryHash,
        body: EntryBody,
        signer: &DeviceSecret,
    ) -> Result<Self, MembershipError> {
        let mut bytes = Vec::with_capacity(FIXED_LEN + 512);
        bytes.extend_from_slice(ENTRY_MAGIC);
        bytes.push(crate::VERSION);
        bytes.push(body.code());
        bytes.extend_from_slice(plan.as_bytes());
        bytes.extend_from_slice(&index.to_be_bytes());
        bytes.extend_from_slice(&prev.0);
        bytes.extend_from_slice(signer.id().as_bytes());
        bytes.extend_from_slice(&[0; 4]);
        body.encode(&mut bytes)?;
        if bytes.len() + 64 > MAX_ENTRY_LEN {
            return Err(MembershipError::NotAllowed("the entry would exceed the size limit"));
        }
        let body_len = u32::try_from(bytes.len() - FIXED_LEN)
            .map_err(|_| MembershipError::NotAllowed("the entry would exceed the size limit"))?;
        bytes[94..98].copy_from_slice(&body_len.to_be_bytes());
        let signature = signer.sign(&bytes);
        bytes.extend_from_slice(&signature);
        let hash = EntryHash(Sha256::digest(&bytes).into());
        Ok(Self { plan, index, prev, signer: signer.id(), body, bytes, hash })
    }

    /// Decodes an entry and verifies its signature. Whether the signer may
    /// make it is decided by [`MembershipLog::append`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(DecodeError::Invalid { field: "entry length" });
        }
        let mut r = Reader::new(bytes);
        r.expect(ENTRY_MAGIC, "entry magic")?;
        r.expect(&[crate::VERSION], "entry version")?;
        let kind = r.u8()?;
        let plan = PlanId::from_bytes(r.array()?);
        let index = r.u64()?;
        let prev = EntryHash(r.array()?);
        let signer = DeviceId::from_bytes(r.array()?)
            .map_err(|_| DecodeError::Invalid { field: "entry signer" })?;
        let body_len = usize::try_from(r.u32()?).map_err(|_| DecodeError::Truncated)?;
        let body = r.take(body_len)?;
        let signature: [u8; 64] = r.array()?;
        r.finish()?;
        if !verify_signature(&signer, &bytes[..FIXED_LEN + body_len], &signature) {
            return Err(DecodeError::Invalid { field: "entry signature" });
        }
        let body = EntryBody::decode(kind, body)?;
        let hash = EntryHash(Sha256::digest(bytes).into());
        Ok(Self { plan, index, prev, signer, body, bytes: bytes.to_vec(), hash })
    }

    /// The signed encoding.
    pub fn encode(&self) -> &[u8] {
        &self.bytes
    }

    /// The entry's hash.
    pub fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The plan it belongs to.
    pub fn plan(&self) -> PlanId {
        self.plan
    }

    /// Its position in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Hash of the entry before it.
    pub fn prev(&self) -> EntryHash {
        self.prev
    }

    /// The key that signed it: a member device, or (for a recovery) a
    /// partner identity.
    pub fn signer(&self) -> DeviceId {
        self.signer
    }

    /// What it does.
    pub fn body(&self) -> &EntryBody {
        &self.body
    }

    /// The key wraps it carries.
    pub fn wraps(&self) -> &[KeyWrap] {
        match &self.body {
            EntryBody::Genesis { wraps, .. }
            | EntryBody::AddDevice { wraps, .. }
            | EntryBody::RevokeDevice { wraps, .. }
            | EntryBody::RotateEpoch { wraps, .. }
            | EntryBody::PartnerKey { change: IdentityChange::Rotate { wraps, .. }, .. } => wraps,
            EntryBody::PartnerKey { change: IdentityChange::Retire, .. } => &[],
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("index", &self.index)
            .field("kind", &self.body.code())
            .field("signer", &self.signer)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}
