//! The relay protocol: the messages a device and the relay exchange over the
//! WebSocket at `/v1/ws`, one message per binary frame.
//!
//! # Encoding
//! Each frame is one [`ClientToRelay`] or [`RelayToClient`] value in
//! postcard 1.x, with no trailing bytes. Postcard is compact and
//! deterministic, has a short written specification, and needs no schema
//! compiler; a frame's size is dominated by the envelope it carries, which
//! postcard frames with a single varint. Enum variants are numbered by
//! position, so variants are only ever appended, and a peer that receives a
//! variant it does not know answers [`ErrorCode::Unsupported`].
//!
//! The layout of every message and the meaning of every error code are in
//! `docs/protocol.md`.
//!
//! # Authentication
//! The relay opens every connection with a [`RelayToClient::Challenge`]. The
//! device answers with [`ClientToRelay::Authenticate`], an Ed25519 signature
//! over [`auth_message`]: the relay's origin and the fresh nonce, so that a
//! response is good for one connection to one relay only.

//!
//! # Layout
//! - this module: the values messages carry, and framing.
//! - [`messages`]: [`ClientToRelay`] and [`RelayToClient`].
//! - [`errors`]: [`ErrorCode`], stable numbers with their sentences.
//! - [`auth`]: the challenge a device signs to authenticate.

mod auth;
mod errors;
mod messages;

pub use auth::{Nonce32, answer_challenge, auth_message, verify_challenge};
pub use errors::ErrorCode;
pub use messages::{ClientToRelay, RelayToClient};

use crate::codec::{byte_vec, fixed_bytes};
use crate::envelope::MAX_ENVELOPE_LEN;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The protocol version a relay announces in its challenge.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest frame either side sends or accepts: one maximal envelope plus framing.
pub const MAX_FRAME_LEN: usize = MAX_ENVELOPE_LEN + 64 * 1024;
/// The most envelopes in one [`RelayToClient::Page`].
pub const MAX_PAGE_ITEMS: u32 = 512;
/// The most membership entries in one [`RelayToClient::Membership`].
pub const MAX_MEMBERSHIP_PAGE: usize = 64;
/// Length of the relay's challenge nonce.
pub const AUTH_NONCE_LEN: usize = 32;
/// The longest relay origin, such as `wss://relay.example:8443`.
pub const MAX_ORIGIN_LEN: usize = 255;
/// The longest pairing nameplate.
pub const MAX_NAMEPLATE_LEN: usize = 16;
/// The largest pairing message.
pub const MAX_PAIR_MESSAGE_LEN: usize = 8 * 1024;
/// Most messages one side may post to a pairing mailbox (the protocol needs
/// five from the joiner and three from the inviter).
pub const MAX_PAIR_MESSAGES: usize = 8;
/// The longest human-readable error text.
pub const MAX_ERROR_TEXT_LEN: usize = 512;
/// Magic that starts the signed authentication message.
pub const AUTH_MAGIC: &[u8; 4] = b"CVAU";

/// A per-plan position in the relay's log. The first stored envelope has
/// cursor 1; cursor 0 means "before everything".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Cursor(pub u64);

impl Cursor {
    /// The largest cursor a device may name, 2^63 − 1: stores hold cursors
    /// as signed 64-bit integers. A request naming a larger one is refused
    /// as `bad_frame`.
    pub const MAX: Cursor = Cursor(i64::MAX as u64);
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Matches a response to its request. Chosen by the device; the relay echoes it.
pub type RequestId = u64;

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature64(pub [u8; 64]);

impl fmt::Debug for Signature64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature64(..)")
    }
}

impl Serialize for Signature64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fixed_bytes::deserialize(d).map(Self)
    }
}

/// A byte string that is never printed, only measured: envelopes, entries
/// and pairing messages in the protocol.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Blob(#[serde(with = "byte_vec")] pub Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

/// An envelope as the relay stores it: with its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelope {
    /// Its position in the plan's log.
    pub cursor: Cursor,
    /// The sealed envelope.
    pub envelope: Blob,
}

/// A snapshot as the relay stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The snapshot covers every envelope of its document up to this cursor.
    pub covers: Cursor,
    /// The sealed `snapshot` envelope.
    pub envelope: Blob,
}

/// How a pairing ended, as one side reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairOutcome {
    /// Both sides confirmed the key; the mailbox is spent.
    Completed,
    /// Key confirmation failed (a wrong code): the nameplate is burned.
    Failed,
}

/// A frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame is over [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not a valid message.
    #[error("malformed frame")]
    Malformed,
    /// The frame names a message this version does not know.
    #[error("unknown message")]
    Unsupported,
}

/// Encodes a message into one frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(message).map_err(|_| WireError::Malformed)?;
    if bytes.len() > MAX_FRAME_LEN {
        return Err(WireError::FrameTooLarge { len: bytes.len(), max: MAX_FRAME_LEN });
    }
    Ok(bytes)
}

/// A top-level protocol message: one direction's enum.
pub trait Message: Serialize + for<'de> Deserialize<'de> {
    /// How many variants this version knows. A frame whose leading variant
    /// index is at or above it comes from a newer peer.
    const VARIANTS: u32;
}

impl Message for ClientToRelay {
    const VARIANTS: u32 = 17;
}

impl Message for RelayToClient {
    const VARIANTS: u32 = 16;
}

/// Decodes one frame; trailing bytes are an error, and a message this
/// version does not know is [`WireError::Unsupported`].
pub fn decode<T: Message>(frame: &[u8]) -> Result<T, WireError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(WireError::FrameTooLarge { len: frame.len(), max: MAX_FRAME_LEN });
    }
    match postcard::take_from_bytes::<u32>(frame) {
        Ok((variant, _)) if variant >= T::VARIANTS => return Err(WireError::Unsupported),
        Ok(_) => {}
        Err(_) => return Err(WireError::Malformed),
    }
    match postcard::take_from_bytes(frame) {
        Ok((message, [])) => Ok(message),
        _ => Err(WireError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PlanId;

    #[test]
    fn variant_counts_match_the_enums() {
        // The last variant of each direction encodes as VARIANTS - 1.
        let plan = PlanId::from_bytes([0; 16]);
        let identity =
            crate::DeviceSecret::generate(&mut crate::random::SeededEntropy::new(b"v")).id();
        let proof = Signature64([0; 64]);
        let last = encode(&ClientToRelay::Recover { request: 0, identity, proof }).unwrap();
        assert_eq!(u32::from(last[0]), ClientToRelay::VARIANTS - 1);
        let last = encode(&RelayToClient::Recovering { request: 0, plan }).unwrap();
        assert_eq!(u32::from(last[0]), RelayToClient::VARIANTS - 1);
    }

    /// The decoding rules protocol.md section 9 states for postcard, pinned
    /// so that a change of postcard version cannot change them unnoticed.
    #[test]
    fn postcard_reads_as_the_protocol_says() {
        // A varint with a redundant continuation byte is read, not refused.
        assert_eq!(postcard::from_bytes::<u64>(&[0x81, 0x00]), Ok(1));
        // Longer than its type allows, or beyond its type: an error.
        assert!(postcard::from_bytes::<u64>(&[0xff; 11]).is_err());
        assert!(postcard::from_bytes::<u16>(&[0xff, 0xff, 0x7f]).is_err());
        assert!(postcard::from_bytes::<u32>(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        // bool and Option bytes other than 00 and 01: errors.
        assert!(postcard::from_bytes::<bool>(&[2]).is_err());
        assert!(postcard::from_bytes::<Option<u8>>(&[2, 1]).is_err());
        // An error code this version does not know still decodes.
        let frame = encode(&RelayToClient::Error {
            request: None,
            code: ErrorCode::from_code(999),
            message: String::new(),
        })
        .unwrap();
        match decode::<RelayToClient>(&frame).unwrap() {
            RelayToClient::Error { code, .. } => assert_eq!(code.code(), 999),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "{code:?} reuses a number");
            assert_eq!(ErrorCode::from_code(code.code()), *code);
        }
        assert_eq!(ErrorCode::from_code(999), ErrorCode::Unrecognized(999));
        assert_eq!(ErrorCode::RateLimited.name(), "rate_limited");
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_oversized_frames() {
        let mut frame = encode(&ClientToRelay::Ping { request: 7 }).unwrap();
        assert_eq!(decode::<ClientToRelay>(&frame), Ok(ClientToRelay::Ping { request: 7 }));
        frame.push(0);
        assert_eq!(decode::<ClientToRelay>(&frame), Err(WireError::Malformed));
        assert_eq!(decode::<ClientToRelay>(&[0x63]), Err(WireError::Unsupported));
        assert_eq!(decode::<ClientToRelay>(&[]), Err(WireError::Malformed));
        let big = vec![0u8; MAX_FRAME_LEN + 1];

        assert!(matches!(decode::<ClientToRelay>(&big), Err(WireError::FrameTooLarge { .. })));
    }
}
