//! The membership log: who belongs to a plan, as a hash-chained list of
//! entries that member devices sign.
//!
//! Every device replays the whole chain and trusts nothing else for keys: the
//! relay keeps its own registry for routing, but a device decides who may
//! write, and which partner a device speaks for, from this log alone. A
//! device also pins its plan's genesis hash (learned when it was paired), so
//! a relay cannot substitute a different chain.
//!
//! # Wire format of an entry
//! ```text
//! offset  size  field
//!      0     4  magic "CVML"
//!      4     1  version, 0x01
//!      5     1  kind: 0 genesis, 1 add device, 2 revoke device, 3 rotate epoch
//!      6    16  plan id
//!     22     8  index in the log, u64 big-endian, genesis is 0
//!     30    32  hash of the previous entry (zeros for genesis)
//!     62    32  signing device id
//!     94     4  body length n, u32 big-endian
//!     98     n  body (below)
//!   98+n    64  Ed25519 signature by the signing device over bytes [0, 98+n)
//! ```
//! An entry's hash is SHA-256 of all its bytes, signature included.
//!
//! Bodies (wraps are 257-byte [`KeyWrap`]s, devices are 133-byte
//! [`DeviceBundle`]s, key ids are 32 bytes, counts are u16 big-endian):
//! - genesis: creator bundle ‖ key id of epoch 1 ‖ wrap of epoch 1's key for
//!   the creator
//! - add device: partner (u8: 0 A, 1 B) ‖ bundle ‖ count ‖ wraps of every
//!   epoch key so far, epochs 1..=current in order, for the new device
//! - revoke device: device id (32) ‖ cutoff count (u8) ‖ cutoffs, each doc
//!   (u8) ‖ seq (u64) ‖ envelope hash (32), in ascending doc order ‖ epoch
//!   (u32) ‖ key id ‖ count ‖ wraps. Revoking another device starts epoch
//!   current + 1, with the new key wrapped for every remaining active device
//!   in ascending device-id order. A device revoking itself names the current
//!   epoch, an all-zero key id and no wraps: it already holds the current
//!   key, so it cannot hand out a new one; another device must rotate.
//! - rotate epoch: new epoch (u32) ‖ key id ‖ count ‖ wraps as for revoke
//!
//! # Rules a verifier enforces
//! - Entry `i` has index `i` and names the hash of entry `i - 1`; genesis is
//!   entry 0 and only entry 0. Two different entries at one index are a fork.
//! - The signature verifies, and the signer is an active (not revoked)
//!   member; genesis is signed by the creator it introduces.
//! - A device is added once, ever. Partner B's first device may be added by
//!   partner A; every later device of a partner is added by that partner's
//!   own device, so no partner can ever enrol a device that speaks for the
//!   other.
//! - Revoking another device starts a new epoch, wrapped only for the
//!   devices that remain. The last active device cannot be revoked.
//! - Every wrap names this plan, the right epoch, the right recipient and the
//!   signer as wrapper, and carries the wrapper's valid signature.
//! - A revoked device is heard only for `changes` envelopes in a document's
//!   stream up to that document's cutoff, sealed with a membership view from
//!   before its revocation; and the stream must end exactly at the cutoff's
//!   hash (see [`crate::freshness::revoked_run`]).

use crate::codec::{DecodeError, Reader};
use crate::envelope::{EnvelopeHash, Header, Kind};
use crate::ids::{DeviceId, DocId, Epoch, Partner, PlanId, Seq};
use crate::kdf::{EpochKeys, KeyId};
use crate::keys::{DeviceBundle, DeviceSecret, SymmetricKey, verify_signature};
use crate::random::Entropy;
use crate::wrap::{KeyWrap, WrapError};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Magic of a membership entry.
pub const ENTRY_MAGIC: &[u8; 4] = b"CVML";
/// The largest entry any peer accepts.
pub const MAX_ENTRY_LEN: usize = 256 * 1024;
/// The most devices a plan can have at once.
pub const MAX_ACTIVE_DEVICES: usize = 16;
/// The most devices a plan can ever enrol, revoked ones included.
pub const MAX_DEVICES_EVER: usize = 256;
const FIXED_LEN: usize = 98;

/// Names one entry: SHA-256 of its full encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct EntryHash(pub [u8; 32]);

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({})", crate::codec::to_hex(&self.0[..8]))
    }
}

/// The membership log as one device knew it: how many entries, and the hash
/// of the last. Every envelope carries its sender's view, so that a
/// receiver can tell which epoch the sender had to use and notice a relay
/// that shows different logs to different devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MembershipView {
    /// Entries in the log.
    pub len: u32,
    /// Hash of the last entry.
    pub head: EntryHash,
}

/// The last envelope a revocation still accepts from the revoked device in
/// one document's `changes` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// The document.
    pub doc: DocId,
    /// The last accepted sequence number.
    pub seq: Seq,
    /// That envelope's hash: the accepted stream must end exactly here.
    pub hash: EnvelopeHash,
}

/// What an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// Creates the plan with its first device, for partner A, in epoch 1.
    Genesis {
        /// The creating device.
        creator: DeviceBundle,
        /// Key id of epoch 1's key.
        key_id: KeyId,
        /// Epoch 1's key, wrapped for the creator.
        wrap: Box<KeyWrap>,
    },
    /// Enrols a device for one partner.
    AddDevice {
        /// Whose device it is.
        partner: Partner,
        /// The new device.
        bundle: DeviceBundle,
        /// Every epoch key so far, wrapped for the new device.
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
        /// The new epoch's key for each remaining device.
        wraps: Vec<KeyWrap>,
    },
    /// Starts a new epoch.
    RotateEpoch {
        /// The new epoch.
        epoch: Epoch,
        /// Key id of the new epoch's key.
        key_id: KeyId,
        /// The new epoch's key for each active device.
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
            Self::Genesis { creator, key_id, wrap } => {
                out.extend_from_slice(&creator.encode());
                out.extend_from_slice(&key_id.0);
                out.extend_from_slice(wrap.encode());
            }
            Self::AddDevice { partner, bundle, wraps: w } => {
                out.push(partner.code());
                out.extend_from_slice(&bundle.encode());
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
        let body = match kind {
            0 => Self::Genesis {
                creator: DeviceBundle::read(&mut r)?,
                key_id: KeyId(r.array()?),
                wrap: Box::new(KeyWrap::read(&mut r)?),
            },
            1 => {
                let partner =
                    Partner::from_code(r.u8()?).ok_or(DecodeError::Invalid { field: "partner" })?;
                Self::AddDevice {
                    partner,
                    bundle: DeviceBundle::read(&mut r)?,
                    wraps: wraps(&mut r)?,
                }
            }
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
    plan: PlanId,
    index: u64,
    prev: EntryHash,
    signer: DeviceId,
    body: EntryBody,
    bytes: Vec<u8>,
    hash: EntryHash,
}

impl Entry {
    /// Encodes and signs a new entry. Fails only if the entry would be larger
    /// than [`MAX_ENTRY_LEN`], which no peer would accept.
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

    /// The device that signed it.
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
            EntryBody::Genesis { wrap, .. } => std::slice::from_ref(wrap.as_ref()),
            EntryBody::AddDevice { wraps, .. }
            | EntryBody::RevokeDevice { wraps, .. }
            | EntryBody::RotateEpoch { wraps, .. } => wraps,
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

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The entry did not decode or its signature did not verify.
    #[error("malformed membership entry: {0}")]
    Malformed(#[from] DecodeError),
    /// The entry names another plan.
    #[error("membership entry belongs to another plan")]
    WrongPlan,
    /// The chain does not start at the genesis this device was paired into.
    #[error("the membership log does not start at this plan's genesis")]
    WrongGenesis,
    /// The entry is not the next one in the chain.
    #[error("membership entry {got} does not follow entry {expected_prev} of the chain")]
    OutOfOrder {
        /// The entry's index.
        got: u64,
        /// The index the next entry must follow.
        expected_prev: u64,
    },
    /// A different entry already holds this index.
    #[error("membership log fork at entry {index}")]
    Fork {
        /// Where the chains diverge.
        index: u64,
    },
    /// The signer is not a member of the plan.
    #[error("membership entry signed by a device that is not a member")]
    NotMember,
    /// The signer has been revoked.
    #[error("membership entry signed by a revoked device")]
    SignerRevoked,
    /// The entry breaks one of the log's rules.
    #[error("membership entry not allowed: {0}")]
    NotAllowed(&'static str),
    /// The entry's key wraps are not exactly the ones it must carry.
    #[error("membership entry carries the wrong key wraps")]
    BadWraps,
    /// A key could not be wrapped for a device.
    #[error("cannot wrap a key: {0}")]
    Wrap(#[from] WrapError),
}

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
    plan: PlanId,
    /// Hash of every entry, in order.
    heads: Vec<EntryHash>,
    /// The epoch after each entry, in order.
    epochs: Vec<Epoch>,
    /// Key id of every epoch's key, as its entry announced it.
    key_ids: BTreeMap<Epoch, KeyId>,
    members: BTreeMap<DeviceId, Member>,
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

    /// Whether a device revoked itself and no rotation has followed: it still
    /// holds the current key, so an active device should rotate.
    pub fn rotation_due(&self) -> bool {
        let epoch = self.epoch();
        self.members.values().any(|m| m.revoked.as_ref().is_some_and(|r| r.epoch > epoch))
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

    fn genesis_state(entry: &Entry) -> Result<Self, MembershipError> {
        let EntryBody::Genesis { creator, key_id, wrap } = &entry.body else {
            return Err(MembershipError::NotAllowed("the first entry must be genesis"));
        };
        if entry.index != 0 || entry.prev != EntryHash::default() {
            return Err(MembershipError::OutOfOrder { got: entry.index, expected_prev: 0 });
        }
        if entry.signer != creator.device {
            return Err(MembershipError::NotAllowed("genesis must be signed by its creator"));
        }
        check_wraps(
            entry,
            std::slice::from_ref(wrap.as_ref()),
            std::iter::once((Epoch::FIRST, creator.device)),
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
        })
    }

    /// Applies the next entry, or refuses it and stays unchanged.
    fn apply(&mut self, entry: &Entry) -> Result<(), MembershipError> {
        if entry.plan != self.plan {
            return Err(MembershipError::WrongPlan);
        }
        if entry.index != self.len() || entry.prev != self.head() {
            return Err(MembershipError::OutOfOrder {
                got: entry.index,
                expected_prev: self.len().saturating_sub(1),
            });
        }
        let signer = self.members.get(&entry.signer).ok_or(MembershipError::NotMember)?;
        if !signer.is_active() {
            return Err(MembershipError::SignerRevoked);
        }
        let signer_partner = signer.partner;
        let epoch = self.epoch();
        let mut next = self.clone();
        let mut next_epoch = epoch;
        match &entry.body {
            EntryBody::Genesis { .. } => {
                return Err(MembershipError::NotAllowed("genesis must be the first entry"));
            }
            EntryBody::AddDevice { partner, bundle, wraps } => {
                if self.members.contains_key(&bundle.device) {
                    return Err(MembershipError::NotAllowed("a device can be added only once"));
                }
                // A partner with an active device speaks for themselves: only
                // their own devices may add more. Otherwise (at pairing, or
                // once all of their devices were revoked, which ends their
                // access) the other partner may enrol one.
                let partner_active =
                    self.members.values().any(|m| m.partner == *partner && m.is_active());
                if *partner != signer_partner && partner_active {
                    return Err(MembershipError::NotAllowed(
                        "only a partner's own device can add another device for that partner",
                    ));
                }
                if self.active().count() >= MAX_ACTIVE_DEVICES
                    || self.members.len() >= MAX_DEVICES_EVER
                {
                    return Err(MembershipError::NotAllowed("the plan has too many devices"));
                }
                check_wraps(entry, wraps, (1..=epoch.0).map(|e| (Epoch(e), bundle.device)))?;
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
                    let remaining = self.active().filter(|m| m.device != *device);
                    check_wraps(entry, wraps, remaining.map(|m| (*new_epoch, m.device)))?;
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
                check_wraps(entry, wraps, self.active().map(|m| (*new_epoch, m.device)))?;
                next.key_ids.insert(*new_epoch, *key_id);
                next_epoch = *new_epoch;
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
fn check_wraps(
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

    /// Makes the genesis entry of a new plan.
    pub fn genesis(
        plan: PlanId,
        creator: &DeviceSecret,
        first_key: &SymmetricKey,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let wrap = KeyWrap::wrap(
            plan,
            Epoch::FIRST,
            first_key,
            creator.id(),
            &creator.exchange_public(),
            creator,
            rng,
        )?;
        let key_id = EpochKeys::derive(plan, Epoch::FIRST, first_key).key_id();
        let body = EntryBody::Genesis { creator: creator.bundle(), key_id, wrap: Box::new(wrap) };
        let entry = Entry::sign(plan, 0, EntryHash::default(), body, creator)?;
        MembershipState::genesis_state(&entry)?;
        Ok(entry)
    }

    /// Makes (but does not append) an entry that adds `bundle` for
    /// `partner`, wrapping every epoch key for it. `keys` yields each epoch
    /// key, epochs 1..=current.
    pub fn add_device<'k>(
        &self,
        signer: &DeviceSecret,
        partner: Partner,
        bundle: &DeviceBundle,
        keys: impl Fn(Epoch) -> Option<&'k SymmetricKey>,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let plan = self.state.plan;
        let wraps = (1..=self.state.epoch().0)
            .map(|e| {
                let key = keys(Epoch(e)).ok_or(MembershipError::BadWraps)?;
                let wrap = KeyWrap::wrap(
                    plan,
                    Epoch(e),
                    key,
                    bundle.device,
                    &bundle.exchange,
                    signer,
                    rng,
                )?;
                Ok(wrap)
            })
            .collect::<Result<_, MembershipError>>()?;
        self.checked(EntryBody::AddDevice { partner, bundle: bundle.clone(), wraps }, signer)
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
        let remaining: Vec<&Member> = self.state.active().filter(|m| m.device != device).collect();
        let wraps = self.wrap_for(&remaining, epoch, new_key, signer, rng)?;
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
        let active: Vec<&Member> = self.state.active().collect();
        let wraps = self.wrap_for(&active, epoch, new_key, signer, rng)?;
        let key_id = EpochKeys::derive(self.state.plan, epoch, new_key).key_id();
        self.checked(EntryBody::RotateEpoch { epoch, key_id, wraps }, signer)
    }

    fn next_epoch(&self) -> Result<Epoch, MembershipError> {
        self.state.epoch().next().ok_or(MembershipError::NotAllowed("no epochs left"))
    }

    fn wrap_for(
        &self,
        members: &[&Member],
        epoch: Epoch,
        key: &SymmetricKey,
        signer: &DeviceSecret,
        rng: &mut impl Entropy,
    ) -> Result<Vec<KeyWrap>, MembershipError> {
        members
            .iter()
            .map(|m| {
                let wrap =
                    KeyWrap::wrap(self.state.plan, epoch, key, m.device, &m.exchange, signer, rng)?;
                Ok(wrap)
            })
            .collect()
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

fn sorted(mut cutoffs: Vec<Cutoff>) -> Vec<Cutoff> {
    cutoffs.sort_by_key(|c| c.doc);
    cutoffs.dedup_by_key(|c| c.doc);
    cutoffs
}
