//! The sealed envelope: the only thing a device ever sends through the relay
//! with plan content in it.
//!
//! # Wire format
//! ```text
//! offset  size  field
//!      0     4  magic "COVE" (43 4f 56 45)
//!      4     1  version, 0x01
//!      5     1  kind: 1 changes, 2 snapshot, 3 signal, 4 checkpoint
//!      6    16  plan id
//!     22     1  doc id: 0 shared, 1 partner-a, 2 partner-b (signals, checkpoints: 0)
//!     23     4  epoch, u32 big-endian
//!     27    32  key id of the epoch key (see `kdf`)
//!     59    32  sender device id (Ed25519 public key)
//!     91     8  sender sequence number in this stream, u64 big-endian, from 1
//!     99    32  hash of the sender's previous envelope in this stream (zeros for seq 1)
//!    131     4  the sender's membership view: entries in its log, u32 big-endian
//!    135    32  the sender's membership view: hash of its last entry
//!    167    24  nonce, random
//!    191     n  XChaCha20-Poly1305 ciphertext of the padded plaintext, tag last
//!  191+n    64  Ed25519 signature over bytes [0, 191+n)
//! ```
//! The AEAD key is the epoch's subkey for the kind, the associated data is
//! the 167-byte header, and `n` is a padding bucket plus 16. A stream is one
//! (sender, kind, doc): each has its own sequence numbers and hash chain.
//!
//! # Invariants
//! - The nonce is 24 random bytes from the OS, never derived from the
//!   sequence number or any other counter.
//! - [`open`] checks, in this order: length and header layout, plan,
//!   membership (the sender's view, ownership, epoch), signature, key id,
//!   then decrypts, then checks the padding. Nothing is decrypted before the
//!   signature verifies, and every failure is the same opaque
//!   [`IntegrityError`].
//! - There is one cipher suite. The version byte is not a negotiation: an
//!   envelope with any other version is rejected.

use crate::codec::{DecodeError, Reader};
use crate::ids::{DeviceId, DocId, Epoch, PlanId, Seq};
use crate::kdf::{EpochKeys, KeyId, Purpose};
use crate::keys::{DeviceSecret, verify_with};
use crate::membership::{EntryHash, MembershipView};
use crate::padding;
use crate::random::Entropy;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The envelope magic.
pub const MAGIC: &[u8; 4] = b"COVE";
/// Length of the fixed header.
pub const HEADER_LEN: usize = 167;
/// Length of the nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of the signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes an envelope adds to its padded plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN + SIGNATURE_LEN;
/// The smallest well-formed envelope.
pub const MIN_ENVELOPE_LEN: usize = OVERHEAD + padding::MIN_PADDED_LEN;
/// The largest envelope any Cove peer accepts (1 MiB).
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;
/// Domain label of [`EnvelopeHash`].
pub const LABEL_ENVELOPE_HASH: &[u8] = b"cove/v1/envelope-hash";

const _: () = assert!(OVERHEAD + padding::MAX_PADDED_LEN <= MAX_ENVELOPE_LEN);

/// What an envelope carries. Each kind is its own stream per sender, with its
/// own sequence numbers and hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Automerge changes for one document.
    Changes,
    /// A saved Automerge document that replaces the changes it covers.
    Snapshot,
    /// A live, short-lived signal between partners.
    Signal,
    /// A device's signed account of what it holds: the tip of every stream
    /// it has applied. Others compare it with their own history.
    Checkpoint,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 4] = [Self::Changes, Self::Snapshot, Self::Signal, Self::Checkpoint];

    /// The header byte.
    pub const fn code(self) -> u8 {
        match self {
            Self::Changes => 1,
            Self::Snapshot => 2,
            Self::Signal => 3,
            Self::Checkpoint => 4,
        }
    }

    /// Parses the header byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Changes),
            2 => Some(Self::Snapshot),
            3 => Some(Self::Signal),
            4 => Some(Self::Checkpoint),
            _ => None,
        }
    }

    /// The subkey that seals this kind.
    pub const fn purpose(self) -> Purpose {
        match self {
            Self::Changes => Purpose::Changes,
            Self::Snapshot => Purpose::Snapshot,
            Self::Signal => Purpose::Signal,
            Self::Checkpoint => Purpose::Checkpoint,
        }
    }
}

/// One stream of envelopes: a sender's envelopes of one kind for one
/// document. Each has its own sequence numbers and hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stream {
    /// The sender.
    pub sender: DeviceId,
    /// The kind.
    pub kind: Kind,
    /// The document.
    pub doc: DocId,
}

/// Names one envelope: `SHA-256("cove/v1/envelope-hash" ‖ header ‖ nonce ‖ signature)`.
///
/// Hashing the signature rather than the ciphertext is deliberate: a
/// signature that passes `verify_strict` binds exactly one message under one
/// key (Ed25519 with these checks is strongly binding; Brendel et al., IEEE
/// S&P 2021), so the hash commits to the whole envelope while its cost stays
/// independent of the envelope's size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct EnvelopeHash(pub [u8; 32]);

impl EnvelopeHash {
    /// The `prev` of a stream's first envelope.
    pub const GENESIS: EnvelopeHash = EnvelopeHash([0; 32]);
}

impl fmt::Debug for EnvelopeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeHash({})", crate::codec::to_hex(&self.0[..8]))
    }
}

/// The cleartext header. The relay reads it to route and deduplicate; every
/// byte of it is authenticated as AEAD associated data and signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the envelope carries.
    pub kind: Kind,
    /// The plan it belongs to.
    pub plan: PlanId,
    /// The document it belongs to (`shared` for signals).
    pub doc: DocId,
    /// The key epoch it was sealed in.
    pub epoch: Epoch,
    /// Which epoch key sealed it.
    pub key_id: KeyId,
    /// The device that sealed and signed it.
    pub sender: DeviceId,
    /// The sender's sequence number in the stream of this kind.
    pub seq: Seq,
    /// Hash of the sender's previous envelope in this stream.
    pub prev: EnvelopeHash,
    /// The membership log as the sender knew it when sealing.
    pub view: MembershipView,
}

impl Header {
    /// The stream this envelope belongs to.
    pub fn stream(&self) -> Stream {
        Stream { sender: self.sender, kind: self.kind, doc: self.doc }
    }

    /// The 167-byte encoding.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4] = crate::VERSION;
        out[5] = self.kind.code();
        out[6..22].copy_from_slice(self.plan.as_bytes());
        out[22] = self.doc.code();
        out[23..27].copy_from_slice(&self.epoch.0.to_be_bytes());
        out[27..59].copy_from_slice(&self.key_id.0);
        out[59..91].copy_from_slice(self.sender.as_bytes());
        out[91..99].copy_from_slice(&self.seq.0.to_be_bytes());
        out[99..131].copy_from_slice(&self.prev.0);
        out[131..135].copy_from_slice(&self.view.len.to_be_bytes());
        out[135..167].copy_from_slice(&self.view.head.0);
        out
    }

    /// Decodes the first 167 bytes of an envelope.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?);
        r.expect(MAGIC, "magic")?;
        r.expect(&[crate::VERSION], "version")?;
        let kind = Kind::from_code(r.u8()?).ok_or(DecodeError::Invalid { field: "kind" })?;
        let plan = PlanId::from_bytes(r.array()?);
        let doc = DocId::from_code(r.u8()?).ok_or(DecodeError::Invalid { field: "doc id" })?;
        let epoch = Epoch(r.u32()?);
        let key_id = KeyId(r.array()?);
        let sender = DeviceId::from_bytes(r.array()?)
            .map_err(|_| DecodeError::Invalid { field: "sender" })?;
        let seq = Seq(r.u64()?);
        let prev = EnvelopeHash(r.array()?);
        let view = MembershipView { len: r.u32()?, head: EntryHash(r.array()?) };
        r.finish()?;
        // Sequence numbers stop at 2^63 − 1 (`Seq::MAX`): stores hold them
        // as signed integers, and `seq + 1` never overflows.
        if !seq.is_valid() || epoch.0 == 0 || view.len == 0 {
            return Err(DecodeError::Invalid { field: "sequence, epoch or view" });
        }
        if kind == Kind::Signal && doc != DocId::Shared {
            return Err(DecodeError::Invalid { field: "signal doc id" });
        }
        Ok(Self { kind, plan, doc, epoch, key_id, sender, seq, prev, view })
    }
}

/// An envelope failed a check. Deliberately carries no detail: which check
/// failed must not become an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the envelope failed its integrity checks and was not applied")]
pub struct IntegrityError;

/// Sealing refused the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The payload does not fit in the largest padding bucket.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload an envelope carries.
        max: usize,
    },
    /// The keys are for another plan than the header names.
    #[error("the epoch keys belong to another plan")]
    WrongPlan,
    /// A signal must name the shared document.
    #[error("signals belong to the shared document")]
    SignalDoc,
    /// The sequence number is 0 or the reserved last value.
    #[error("sequence number out of range")]
    BadSeq,
}

/// What the sender chooses when sealing; the rest of the header comes from
/// the keys and the sender's identity.
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    /// What the envelope carries.
    pub kind: Kind,
    /// Which document it belongs to.
    pub doc: DocId,
    /// The sender's next sequence number in this stream.
    pub seq: Seq,
    /// Hash of the sender's previous envelope in this stream.
    pub prev: EnvelopeHash,
    /// The sender's membership view; the keys must be for its epoch.
    pub view: MembershipView,
    /// The plaintext.
    pub payload: &'a [u8],
}

/// A sealed envelope and its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The envelope's bytes, as sent.
    pub bytes: Vec<u8>,
    /// Its hash, the `prev` of the sender's next envelope in this stream.
    pub hash: EnvelopeHash,
    /// Its header.
    pub header: Header,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("header", &self.header)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Seals `request.payload` for every current member of the plan.
pub fn seal(
    keys: &EpochKeys,
    sender: &DeviceSecret,
    request: Seal<'_>,
    rng: &mut impl Entropy,
) -> Result<Sealed, SealError> {
    seal_padded(keys, sender, request, rng, |_| {})
}

/// Test support: [`seal`], with the padding's last byte made non-zero: a
/// validly signed envelope that every opener must refuse at the padding
/// check.
#[cfg(any(test, feature = "test-support"))]
pub fn seal_with_bad_padding(
    keys: &EpochKeys,
    sender: &DeviceSecret,
    request: Seal<'_>,
    rng: &mut impl Entropy,
) -> Result<Sealed, SealError> {
    seal_padded(keys, sender, request, rng, |plain| {
        if let Some(last) = plain.last_mut() {
            *last = 1;
        }
    })
}

/// [`seal`], letting `alter` change the padded plaintext before it is
/// encrypted.
fn seal_padded(
    keys: &EpochKeys,
    sender: &DeviceSecret,
    request: Seal<'_>,
    rng: &mut impl Entropy,
    alter: impl FnOnce(&mut [u8]),
) -> Result<Sealed, SealError> {
    if request.kind == Kind::Signal && request.doc != DocId::Shared {
        return Err(SealError::SignalDoc);
    }
    if !request.seq.is_valid() {
        return Err(SealError::BadSeq);
    }
    let header = Header {
        kind: request.kind,
        plan: keys.plan(),
        doc: request.doc,
        epoch: keys.epoch(),
        key_id: keys.key_id(),
        sender: sender.id(),
        seq: request.seq,
        prev: request.prev,
        view: request.view,
    };
    let too_large =
        SealError::TooLarge { len: request.payload.len(), max: padding::MAX_PAYLOAD_LEN };
    let bucket = padding::bucket_for(request.payload.len()).ok_or(too_large)?;

    let mut bytes = Vec::with_capacity(OVERHEAD + bucket);
    bytes.extend_from_slice(&header.encode());
    let nonce: [u8; NONCE_LEN] = rng.array();
    bytes.extend_from_slice(&nonce);
    padding::pad_into(&mut bytes, request.payload).ok_or(too_large)?;
    alter(&mut bytes[HEADER_LEN + NONCE_LEN..]);

    let cipher = XChaCha20Poly1305::new(keys.subkey(request.kind.purpose()).as_bytes().into());
    let (aad, body) = bytes.split_at_mut(HEADER_LEN + NONCE_LEN);
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), &aad[..HEADER_LEN], body.into())
        // XChaCha20-Poly1305 fails only beyond 256 GiB of plaintext.
        .map_err(|_| too_large)?;
    bytes.extend_from_slice(&tag);
    let signature = sender.sign(&bytes);
    bytes.extend_from_slice(&signature);
    let hash = hash_parts(&bytes[..HEADER_LEN + NONCE_LEN], &signature);
    Ok(Sealed { bytes, hash, header })
}

/// What a receiving device knows when it opens an envelope.
pub trait OpenPolicy {
    /// The plan this device belongs to.
    fn plan(&self) -> PlanId;

    /// If the membership log allows this sender to send this envelope (a
    /// member, not revoked, or revoked but within its cutoff, and the owner of
    /// the document it writes), the sender's key to verify the signature with.
    fn admit(&self, header: &Header) -> Option<VerifyingKey>;

    /// The derived keys of an epoch, if this device holds them.
    fn keys(&self, epoch: Epoch) -> Option<&EpochKeys>;
}

/// An envelope that passed every check.
pub struct Opened {
    /// Its header.
    pub header: Header,
    /// Its hash.
    pub hash: EnvelopeHash,
    /// The plaintext, wiped from memory when dropped.
    pub payload: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("header", &self.header)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// The checks that need no key: length, header layout and signature. The
/// relay runs these on every envelope it accepts; [`open`] runs them too.
/// The hash is returned only after the signature verified, since the hash's
/// binding to the whole envelope rests on that signature.
pub fn inspect(bytes: &[u8]) -> Result<(Header, EnvelopeHash), IntegrityError> {
    inspect_with(bytes, |header| header.sender.verifying_key())
}

/// As [`inspect`], with the sender's key supplied by `admit` (for instance
/// from a membership state that caches each member's decompressed key), or
/// refused when it returns `None`.
pub fn inspect_with(
    bytes: &[u8],
    admit: impl FnOnce(&Header) -> Option<VerifyingKey>,
) -> Result<(Header, EnvelopeHash), IntegrityError> {
    let header = parse(bytes)?;
    let key = admit(&header).ok_or(IntegrityError)?;
    verify(bytes, &key)?;
    let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    Ok((header, hash_parts(&signed[..HEADER_LEN + NONCE_LEN], signature)))
}

/// The header of a well-formed envelope (length and layout checked; nothing
/// verified). For routing decisions made before verification, never for
/// trusting anything the header says.
pub fn header_of(bytes: &[u8]) -> Result<Header, IntegrityError> {
    parse(bytes)
}

/// Verifies, then decrypts, then unpads. See the module's invariants for
/// the order of checks.
pub fn open(bytes: &[u8], policy: &impl OpenPolicy) -> Result<Opened, IntegrityError> {
    let header = parse(bytes)?;
    if header.plan != policy.plan() {
        return Err(IntegrityError);
    }
    let sender_key = policy.admit(&header).ok_or(IntegrityError)?;
    verify(bytes, &sender_key)?;
    let keys = policy.keys(header.epoch).ok_or(IntegrityError)?;
    if keys.plan() != header.plan || keys.epoch() != header.epoch || keys.key_id() != header.key_id
    {
        return Err(IntegrityError);
    }

    let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let nonce: [u8; NONCE_LEN] =
        signed[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().map_err(|_| IntegrityError)?;
    let sealed = &signed[HEADER_LEN + NONCE_LEN..];
    let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let tag = Tag::try_from(tag).map_err(|_| IntegrityError)?;

    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    let cipher = XChaCha20Poly1305::new(keys.subkey(header.kind.purpose()).as_bytes().into());
    cipher
        .decrypt_inout_detached(
            &XNonce::from(nonce),
            &signed[..HEADER_LEN],
            plaintext.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| IntegrityError)?;
    padding::unpad(&mut plaintext).ok_or(IntegrityError)?;
    Ok(Opened {
        header,
        hash: hash_parts(&signed[..HEADER_LEN + NONCE_LEN], signature),
        payload: plaintext,
    })
}

/// Length bounds and header layout.
fn parse(bytes: &[u8]) -> Result<Header, IntegrityError> {
    if !(MIN_ENVELOPE_LEN..=MAX_ENVELOPE_LEN).contains(&bytes.len())
        || !padding::is_bucket(bytes.len() - OVERHEAD)
    {
        return Err(IntegrityError);
    }
    Header::decode(bytes).map_err(|_| IntegrityError)
}

fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<(), IntegrityError> {
    let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let signature: &[u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| IntegrityError)?;
    if verify_with(key, signed, signature) { Ok(()) } else { Err(IntegrityError) }
}

fn hash_parts(header_and_nonce: &[u8], signature: &[u8]) -> EnvelopeHash {
    EnvelopeHash(
        Sha256::new()
            .chain_update(LABEL_ENVELOPE_HASH)
            .chain_update(header_and_nonce)
            .chain_update(signature)
            .finalize()
            .into(),
    )
}
