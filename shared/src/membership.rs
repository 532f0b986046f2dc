//! The membership log: who belongs to a plan, as a hash-chained list of
//! entries that member devices sign.
//!
//! Every device replays the whole chain and trusts nothing else for keys: the
//! relay keeps its own registry for routing, but a device decides who may
//! write, and which partner a device speaks for, from this log alone.
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
//! [`DeviceBundle`]s):
//! - genesis: creator bundle ‖ wrap of epoch 1's key for the creator
//! - add device: partner (u8: 0 A, 1 B) ‖ bundle ‖ count (u16) ‖ wraps of
//!   every epoch key so far, epochs 1..=current in order, for the new device
//! - revoke device: device id (32) ‖ cutoff (u64) ‖ new epoch (u32) ‖ count
//!   (u16) ‖ wraps of the new epoch's key for every remaining active device,
//!   in ascending device-id order
//! - rotate epoch: new epoch (u32) ‖ count (u16) ‖ wraps as for revoke
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
//! - A revocation always starts a new epoch, wrapped only for the devices
//!   that remain, and the last active device cannot be revoked.
//! - Every wrap names this plan, the right epoch, the right recipient and the
//!   signer as wrapper, and carries the wrapper's valid signature.

use crate::codec::{DecodeError, Reader};
use crate::envelope::{Header, Kind};
use crate::ids::{DeviceId, Epoch, Partner, PlanId, Seq};
use crate::keys::{DeviceBundle, DeviceSecret, SymmetricKey, verify_signature};
use crate::random::Entropy;
use crate::wrap::{KeyWrap, WrapError};
use ed25519_dalek::VerifyingKey;
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
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct EntryHash(pub [u8; 32]);

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({})", crate::codec::to_hex(&self.0[..8]))
    }
}

/// What an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// Creates the plan with its first device, for partner A, in epoch 1.
    Genesis {
        /// The creating device.
        creator: DeviceBundle,
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
    /// Removes a device and starts a new epoch without it.
    RevokeDevice {
        /// The device removed.
        device: DeviceId,
        /// The highest sequence number of the device's `changes` stream that
        /// is still accepted from it.
        cutoff: Seq,
        /// The new epoch.
        epoch: Epoch,
        /// The new epoch's key for each remaining device.
        wraps: Vec<KeyWrap>,
    },
    /// Starts a new epoch by choice.
    RotateEpoch {
        /// The new epoch.
        epoch: Epoch,
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

    fn encode(&self, out: &mut Vec<u8>) {
        let wraps = |out: &mut Vec<u8>, wraps: &[KeyWrap]| {
            // Bounded by MAX_ENTRY_LEN long before u16::MAX.
            out.extend_from_slice(&(wraps.len() as u16).to_be_bytes());
            for w in wraps {
                out.extend_from_slice(w.encode());
            }
        };
        match self {
            Self::Genesis { creator, wrap } => {
                out.extend_from_slice(&creator.encode());
                out.extend_from_slice(wrap.encode());
            }
            Self::AddDevice {
                partner,
                bundle,
                wraps: w,
            } => {
                out.push(partner.code());
                out.extend_from_slice(&bundle.encode());
                wraps(out, w);
            }
            Self::RevokeDevice {
                device,
                cutoff,
                epoch,
                wraps: w,
            } => {
                out.extend_from_slice(device.as_bytes());
                out.extend_from_slice(&cutoff.0.to_be_bytes());
                out.extend_from_slice(&epoch.0.to_be_bytes());
                wraps(out, w);
            }
            Self::RotateEpoch { epoch, wraps: w } => {
                out.extend_from_slice(&epoch.0.to_be_bytes());
                wraps(out, w);
            }
        }
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
            2 => Self::RevokeDevice {
                device: DeviceId::from_bytes(r.array()?).map_err(|_| DecodeError::Invalid {
                    field: "revoked device",
                })?,
                cutoff: Seq(r.u64()?),
                epoch: Epoch(r.u32()?),
                wraps: wraps(&mut r)?,
            },
            3 => Self::RotateEpoch {
                epoch: Epoch(r.u32()?),
                wraps: wraps(&mut r)?,
            },
            _ => {
                return Err(DecodeError::Invalid {
                    field: "entry kind",
                });
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
    /// Encodes and signs a new entry.
    pub fn sign(
        plan: PlanId,
        index: u64,
        prev: EntryHash,
        body: EntryBody,
        signer: &DeviceSecret,
    ) -> Self {
        let mut bytes = Vec::with_capacity(FIXED_LEN + 512);
        bytes.extend_from_slice(ENTRY_MAGIC);
        bytes.push(crate::VERSION);
        bytes.push(body.code());
        bytes.extend_from_slice(plan.as_bytes());
        bytes.extend_from_slice(&index.to_be_bytes());
        bytes.extend_from_slice(&prev.0);
        bytes.extend_from_slice(signer.id().as_bytes());
        bytes.extend_from_slice(&[0; 4]);
        body.encode(&mut bytes);
        let body_len = (bytes.len() - FIXED_LEN) as u32;
        bytes[94..98].copy_from_slice(&body_len.to_be_bytes());
        let signature = signer.sign(&bytes);
        bytes.extend_from_slice(&signature);
        let hash = EntryHash(Sha256::digest(&bytes).into());
        Self {
            plan,
            index,
            prev,
            signer: signer.id(),
            body,
            bytes,
            hash,
        }
    }

    /// Decodes an entry and verifies its signature. Whether the signer may
    /// make it is decided by [`MembershipLog::append`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(DecodeError::Invalid {
                field: "entry length",
            });
        }
        let mut r = Reader::new(bytes);
        r.expect(ENTRY_MAGIC, "entry magic")?;
        r.expect(&[crate::VERSION], "entry version")?;
        let kind = r.u8()?;
        let plan = PlanId::from_bytes(r.array()?);
        let index = r.u64()?;
        let prev = EntryHash(r.array()?);
        let signer = DeviceId::from_bytes(r.array()?).map_err(|_| DecodeError::Invalid {
            field: "entry signer",
        })?;
        let body_len = usize::try_from(r.u32()?).map_err(|_| DecodeError::Truncated)?;
        let body = r.take(body_len)?;
        let signature: [u8; 64] = r.array()?;
        r.finish()?;
        if !verify_signature(&signer, &bytes[..FIXED_LEN + body_len], &signature) {
            return Err(DecodeError::Invalid {
                field: "entry signature",
            });
        }
        let body = EntryBody::decode(kind, body)?;
        let hash = EntryHash(Sha256::digest(bytes).into());
        Ok(Self {
            plan,
            index,
            prev,
            signer,
            body,
            bytes: bytes.to_vec(),
            hash,
        })
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Index of the revoking entry.
    pub at: u64,
    /// The device that revoked it.
    pub by: DeviceId,
    /// The last `changes` sequence number still accepted from it.
    pub cutoff: Seq,
    /// The first epoch it has no key for.
    pub epoch: Epoch,
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
    /// The epoch that was current when it joined.
    pub added_in: Epoch,
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
    len: u64,
    head: EntryHash,
    epoch: Epoch,
    members: BTreeMap<DeviceId, Member>,
}

impl MembershipState {
    /// The plan.
    pub fn plan(&self) -> PlanId {
        self.plan
    }

    /// How many entries have been applied.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a state exists only after genesis.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash of the last applied entry.
    pub fn head(&self) -> EntryHash {
        self.head
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
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

    /// Whether the log lets this header's sender send this envelope: the
    /// sender is enrolled; a partner document is written only by that
    /// partner's devices; the epoch is one the sender holds and no later than
    /// the current one; and a revoked device is heard only for `changes` up
    /// to its cutoff, sealed before it was revoked.
    pub fn admits(&self, header: &Header) -> bool {
        self.admit(header).is_some()
    }

    /// As [`Self::admits`], returning the sender's key to verify with.
    pub fn admit(&self, header: &Header) -> Option<VerifyingKey> {
        let member = self.members.get(&header.sender)?;
        if header
            .doc
            .owner()
            .is_some_and(|owner| owner != member.partner)
        {
            return None;
        }
        if header.epoch > self.epoch || header.epoch < member.added_in {
            return None;
        }
        let admitted = match member.revoked {
            None => true,
            Some(r) => {
                header.kind == Kind::Changes && header.seq <= r.cutoff && header.epoch < r.epoch
            }
        };
        admitted.then_some(member.key)
    }

    fn genesis(entry: &Entry) -> Result<Self, MembershipError> {
        let EntryBody::Genesis { creator, wrap } = &entry.body else {
            return Err(MembershipError::NotAllowed(
                "the first entry must be genesis",
            ));
        };
        if entry.index != 0 || entry.prev != EntryHash::default() {
            return Err(MembershipError::OutOfOrder {
                got: entry.index,
                expected_prev: 0,
            });
        }
        if entry.signer != creator.device {
            return Err(MembershipError::NotAllowed(
                "genesis must be signed by its creator",
            ));
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
            added_in: Epoch::FIRST,
            revoked: None,
            key: bundle_key(creator)?,
        };
        Ok(Self {
            plan: entry.plan,
            len: 1,
            head: entry.hash,
            epoch: Epoch::FIRST,
            members: BTreeMap::from([(creator.device, member)]),
        })
    }

    /// Applies the next entry, or refuses it and stays unchanged.
    fn apply(&mut self, entry: &Entry) -> Result<(), MembershipError> {
        if entry.plan != self.plan {
            return Err(MembershipError::WrongPlan);
        }
        if entry.index != self.len || entry.prev != self.head {
            return Err(MembershipError::OutOfOrder {
                got: entry.index,
                expected_prev: self.len.saturating_sub(1),
            });
        }
        let signer = self
            .members
            .get(&entry.signer)
            .ok_or(MembershipError::NotMember)?;
        if !signer.is_active() {
            return Err(MembershipError::SignerRevoked);
        }
        let signer_partner = signer.partner;
        let mut next = self.clone();
        match &entry.body {
            EntryBody::Genesis { .. } => {
                return Err(MembershipError::NotAllowed(
                    "genesis must be the first entry",
                ));
            }
            EntryBody::AddDevice {
                partner,
                bundle,
                wraps,
            } => {
                if self.members.contains_key(&bundle.device) {
                    return Err(MembershipError::NotAllowed(
                        "a device can be added only once",
                    ));
                }
                let partner_ever = self.members.values().any(|m| m.partner == *partner);
                if *partner != signer_partner && partner_ever {
                    return Err(MembershipError::NotAllowed(
                        "only a partner's own device can add another device for that partner",
                    ));
                }
                if self.active().count() >= MAX_ACTIVE_DEVICES
                    || self.members.len() >= MAX_DEVICES_EVER
                {
                    return Err(MembershipError::NotAllowed("the plan has too many devices"));
                }
                let epochs = (1..=self.epoch.0).map(|e| (Epoch(e), bundle.device));
                check_wraps(entry, wraps, epochs)?;
                next.members.insert(
                    bundle.device,
                    Member {
                        device: bundle.device,
                        partner: *partner,
                        exchange: bundle.exchange,
                        added_at: entry.index,
                        added_in: self.epoch,
                        revoked: None,
                        key: bundle_key(bundle)?,
                    },
                );
            }
            EntryBody::RevokeDevice {
                device,
                cutoff,
                epoch,
                wraps,
            } => {
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
                self.check_next_epoch(*epoch)?;
                let remaining = self.active().filter(|m| m.device != *device);
                check_wraps(entry, wraps, remaining.map(|m| (*epoch, m.device)))?;
                if let Some(m) = next.members.get_mut(device) {
                    m.revoked = Some(Revocation {
                        at: entry.index,
                        by: entry.signer,
                        cutoff: *cutoff,
                        epoch: *epoch,
                    });
                }
                next.epoch = *epoch;
            }
            EntryBody::RotateEpoch { epoch, wraps } => {
                self.check_next_epoch(*epoch)?;
                check_wraps(entry, wraps, self.active().map(|m| (*epoch, m.device)))?;
                next.epoch = *epoch;
            }
        }
        next.len += 1;
        next.head = entry.hash;
        *self = next;
        Ok(())
    }

    fn check_next_epoch(&self, epoch: Epoch) -> Result<(), MembershipError> {
        if Some(epoch) == self.epoch.next() {
            Ok(())
        } else {
            Err(MembershipError::NotAllowed(
                "a new epoch must follow the current one",
            ))
        }
    }
}

/// A bundle's key. Decoding a bundle verified its self-signature, so the key
/// is a point of large order; this only re-derives it.
fn bundle_key(bundle: &DeviceBundle) -> Result<VerifyingKey, MembershipError> {
    bundle
        .device
        .verifying_key()
        .ok_or(MembershipError::NotAllowed("unusable device key"))
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
    if count == wraps.len() {
        Ok(())
    } else {
        Err(MembershipError::BadWraps)
    }
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
    /// Starts a log from its genesis entry.
    pub fn from_genesis(genesis: Entry) -> Result<Self, MembershipError> {
        let state = MembershipState::genesis(&genesis)?;
        Ok(Self {
            entries: vec![genesis],
            state,
        })
    }

    /// Verifies a whole chain, genesis first.
    pub fn verify(entries: impl IntoIterator<Item = Entry>) -> Result<Self, MembershipError> {
        let mut entries = entries.into_iter();
        let genesis = entries
            .next()
            .ok_or(MembershipError::NotAllowed("the log is empty"))?;
        let mut log = Self::from_genesis(genesis)?;
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
    ) -> Result<Self, MembershipError> {
        let entries: Result<Vec<Entry>, DecodeError> =
            entries.into_iter().map(Entry::decode).collect();
        Self::verify(entries?)
    }

    /// Appends the next entry after checking every rule. An entry the log
    /// already holds is a harmless duplicate; a different entry at an index
    /// the log already holds is a fork.
    pub fn append(&mut self, entry: Entry) -> Result<Appended, MembershipError> {
        if let Some(existing) = usize::try_from(entry.index)
            .ok()
            .and_then(|i| self.entries.get(i))
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
        let mut state = MembershipState::genesis(genesis).ok()?;
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
        let body = EntryBody::Genesis {
            creator: creator.bundle(),
            wrap: Box::new(wrap),
        };
        Ok(Entry::sign(plan, 0, EntryHash::default(), body, creator))
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
        let wraps = (1..=self.state.epoch.0)
            .map(|e| {
                let key = keys(Epoch(e)).ok_or(MembershipError::BadWraps)?;
                let wrap = KeyWrap::wrap(
                    self.state.plan,
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
        self.checked(
            EntryBody::AddDevice {
                partner,
                bundle: bundle.clone(),
                wraps,
            },
            signer,
        )
    }

    /// Makes an entry that revokes `device`, accepting its `changes` up to
    /// `cutoff`, and moves the remaining devices to `new_key`.
    pub fn revoke(
        &self,
        signer: &DeviceSecret,
        device: DeviceId,
        cutoff: Seq,
        new_key: &SymmetricKey,
        rng: &mut impl Entropy,
    ) -> Result<Entry, MembershipError> {
        let epoch = self.next_epoch()?;
        let remaining: Vec<&Member> = self.state.active().filter(|m| m.device != device).collect();
        let wraps = self.wrap_for(&remaining, epoch, new_key, signer, rng)?;
        self.checked(
            EntryBody::RevokeDevice {
                device,
                cutoff,
                epoch,
                wraps,
            },
            signer,
        )
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
        self.checked(EntryBody::RotateEpoch { epoch, wraps }, signer)
    }

    fn next_epoch(&self) -> Result<Epoch, MembershipError> {
        self.state
            .epoch
            .next()
            .ok_or(MembershipError::NotAllowed("no epochs left"))
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
                let wrap = KeyWrap::wrap(
                    self.state.plan,
                    epoch,
                    key,
                    m.device,
                    &m.exchange,
                    signer,
                    rng,
                )?;
                Ok(wrap)
            })
            .collect()
    }

    /// Signs the next entry and checks it against the rules before handing
    /// it out, so that a device never publishes an entry others would refuse.
    fn checked(&self, body: EntryBody, signer: &DeviceSecret) -> Result<Entry, MembershipError> {
        let entry = Entry::sign(
            self.state.plan,
            self.state.len,
            self.state.head,
            body,
            signer,
        );
        self.state.clone().apply(&entry)?;
        Ok(entry)
    }
}
