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

use crate::codec::{byte_vec, fixed_bytes};
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::ids::{DeviceId, DocId, PlanId};
use crate::keys::{DeviceSecret, verify_signature};
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

/// Messages from a device to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientToRelay {
    /// 0. Answers the relay's challenge.
    Authenticate {
        /// The device authenticating.
        device: DeviceId,
        /// Signature over [`auth_message`].
        signature: Signature64,
    },
    /// 1. Registers a new plan from its signed genesis entry.
    CreatePlan {
        /// Echoed in the response.
        request: RequestId,
        /// The genesis membership entry.
        genesis: Blob,
    },
    /// 2. Appends a signed membership entry (add, revoke or rotate).
    AppendMembership {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The entry.
        entry: Blob,
    },
    /// 3. Asks for membership entries from index `from` on.
    FetchMembership {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The first index wanted.
        from: u64,
    },
    /// 4. Stores one sealed envelope (`changes` or `signal`).
    Push {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The envelope; its sender must be the authenticated device.
        envelope: Blob,
    },
    /// 5. Asks for stored envelopes after a cursor, one page at a time.
    Fetch {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// Only envelopes with a greater cursor are returned.
        after: Cursor,
        /// At most this many (capped at [`MAX_PAGE_ITEMS`]).
        limit: u32,
    },
    /// 6. Asks for live delivery of the plan's new envelopes on this connection.
    Subscribe {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
    },
    /// 7. Records that this device has durably applied everything up to `cursor`.
    Ack {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The highest cursor applied.
        cursor: Cursor,
    },
    /// 8. Stores a sealed snapshot of one document.
    PutSnapshot {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The snapshot covers that document's envelopes up to this cursor.
        covers: Cursor,
        /// The sealed `snapshot` envelope.
        envelope: Blob,
    },
    /// 9. Asks for the newest snapshot of one document.
    GetSnapshot {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The document.
        doc: DocId,
    },
    /// 10. Deletes the plan and everything stored for it.
    DeletePlan {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
    },
    /// 11. Opens a pairing mailbox; the relay answers with its nameplate.
    PairOpen {
        /// Echoed in the response.
        request: RequestId,
    },
    /// 12. Joins the pairing mailbox with this nameplate.
    PairJoin {
        /// Echoed in the response.
        request: RequestId,
        /// The nameplate the other device shows.
        nameplate: String,
    },
    /// 13. Sends a message to the other side of a pairing mailbox.
    PairSend {
        /// Echoed in the response.
        request: RequestId,
        /// The mailbox.
        nameplate: String,
        /// The message, opaque to the relay.
        body: Blob,
    },
    /// 14. Closes a pairing mailbox with an outcome.
    PairClose {
        /// Echoed in the response.
        request: RequestId,
        /// The mailbox.
        nameplate: String,
        /// How it ended.
        outcome: PairOutcome,
    },
    /// 15. Keeps an idle connection open.
    Ping {
        /// Echoed in the response.
        request: RequestId,
    },
}

/// Messages from the relay to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RelayToClient {
    /// 0. Opens every connection: sign this to authenticate.
    Challenge {
        /// [`PROTOCOL_VERSION`].
        version: u16,
        /// The relay's origin, as configured by its operator.
        origin: String,
        /// A fresh random nonce.
        nonce: Nonce32,
    },
    /// 1. The device is authenticated.
    Authenticated {
        /// The device, as the relay understood it.
        device: DeviceId,
    },
    /// 2. A request succeeded and has nothing else to say.
    Done {
        /// The request.
        request: RequestId,
    },
    /// 3. An envelope, snapshot or membership entry is committed.
    Stored {
        /// The request.
        request: RequestId,
        /// Its cursor (for membership entries: its index).
        cursor: Cursor,
        /// True if the relay already held this exact item.
        duplicate: bool,
    },
    /// 4. A page of stored envelopes, oldest first.
    Page {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The envelopes.
        items: Vec<StoredEnvelope>,
        /// The plan's newest cursor when the page was read.
        head: Cursor,
        /// `changes` envelopes at or below this cursor may have been replaced
        /// by snapshots: a device behind it starts from the snapshots.
        compacted: Cursor,
    },
    /// 5. A new envelope, pushed live.
    Deliver {
        /// The plan.
        plan: PlanId,
        /// The envelope.
        item: StoredEnvelope,
    },
    /// 6. Membership entries, oldest first.
    Membership {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The encoded entries, starting at the requested index.
        entries: Vec<Blob>,
        /// How many entries the log holds in all.
        len: u64,
    },
    /// 7. The plan's membership log grew; fetch it.
    MembershipChanged {
        /// The plan.
        plan: PlanId,
        /// Its new length.
        len: u64,
    },
    /// 8. The newest snapshot of a document, if there is one.
    Snapshot {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The snapshot.
        snapshot: Option<StoredSnapshot>,
    },
    /// 9. A pairing mailbox is open under this nameplate.
    PairOpened {
        /// The request.
        request: RequestId,
        /// The short nameplate to read to the other person.
        nameplate: String,
    },
    /// 10. The other side sent a pairing message.
    PairMessage {
        /// The mailbox.
        nameplate: String,
        /// The message.
        body: Blob,
    },
    /// 11. The other side closed the mailbox.
    PairClosed {
        /// The mailbox.
        nameplate: String,
        /// How it ended.
        outcome: PairOutcome,
    },
    /// 12. Answers a ping.
    Pong {
        /// The request.
        request: RequestId,
    },
    /// 13. A request, or the connection, failed.
    Error {
        /// The failed request, if the error concerns one.
        request: Option<RequestId>,
        /// What went wrong, stable across versions.
        code: ErrorCode,
        /// One sentence for people.
        message: String,
    },
    /// 14. This device was revoked from the plan; the relay will refuse it from now on.
    Revoked {
        /// The plan.
        plan: PlanId,
    },
}

impl ClientToRelay {
    /// The request id this message carries, if it is a request.
    pub fn request(&self) -> Option<RequestId> {
        use ClientToRelay as C;
        match self {
            C::CreatePlan { request, .. }
            | C::AppendMembership { request, .. }
            | C::FetchMembership { request, .. }
            | C::Push { request, .. }
            | C::Fetch { request, .. }
            | C::Subscribe { request, .. }
            | C::Ack { request, .. }
            | C::PutSnapshot { request, .. }
            | C::GetSnapshot { request, .. }
            | C::DeletePlan { request, .. }
            | C::PairOpen { request }
            | C::PairJoin { request, .. }
            | C::PairSend { request, .. }
            | C::PairClose { request, .. }
            | C::Ping { request } => Some(*request),
            C::Authenticate { .. } => None,
        }
    }
}

impl RelayToClient {
    /// The request this message answers, if it is an answer.
    pub fn request(&self) -> Option<RequestId> {
        use RelayToClient as R;
        match self {
            R::Done { request }
            | R::Stored { request, .. }
            | R::Page { request, .. }
            | R::Membership { request, .. }
            | R::Snapshot { request, .. }
            | R::PairOpened { request, .. }
            | R::Pong { request } => Some(*request),
            R::Error { request, .. } => *request,
            R::Challenge { .. }
            | R::Authenticated { .. }
            | R::Deliver { .. }
            | R::MembershipChanged { .. }
            | R::PairMessage { .. }
            | R::PairClosed { .. }
            | R::Revoked { .. } => None,
        }
    }
}

/// A 32-byte nonce.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce32(pub [u8; AUTH_NONCE_LEN]);

impl fmt::Debug for Nonce32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce32({})", crate::codec::to_hex(&self.0[..4]))
    }
}

impl Serialize for Nonce32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Nonce32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fixed_bytes::deserialize(d).map(Self)
    }
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        /// Why the relay refused a request or closed a connection. The
        /// numbers are stable: they never change meaning and are never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this version does not know.
            Unrecognized(u16),
        }

        impl ErrorCode {
            /// Every known code.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$name),*];

            /// The stable number.
            pub const fn code(self) -> u16 {
                match self {
                    $( Self::$name => $code, )*
                    Self::Unrecognized(c) => c,
                }
            }

            /// The code with this number.
            pub const fn from_code(code: u16) -> Self {
                match code {
                    $( $code => Self::$name, )*
                    c => Self::Unrecognized(c),
                }
            }

            /// The default sentence for people.
            pub const fn describe(self) -> &'static str {
                match self {
                    $( Self::$name => $text, )*
                    Self::Unrecognized(_) => "the relay reported an error this version does not know",
                }
            }

            /// The short name used in metrics and logs, such as `rate_limited`.
            pub fn name(self) -> String {
                match self {
                    $( Self::$name => to_snake(stringify!($name)), )*
                    Self::Unrecognized(c) => format!("unrecognized_{c}"),
                }
            }
        }
    };
}

error_codes! {
    /// The frame is not a valid message.
    BadFrame = 1, "the message could not be decoded";
    /// The frame exceeds the size limit.
    FrameTooLarge = 2, "the message is larger than the relay accepts";
    /// The message kind or protocol version is not supported.
    Unsupported = 3, "the relay does not support this message or protocol version";
    /// The request needs an authenticated connection.
    AuthRequired = 10, "authenticate before sending requests";
    /// The authentication response did not verify.
    AuthFailed = 11, "authentication failed";
    /// The authentication response came too late.
    AuthTimeout = 12, "authentication took too long";
    /// The plan does not exist, or this device is not one of its members.
    /// The two cases are deliberately indistinguishable.
    NotFound = 20, "no such plan for this device";
    /// This device was revoked from the plan.
    Revoked = 21, "this device has been removed from the plan";
    /// A plan with this id already exists.
    PlanExists = 22, "a plan with this id already exists";
    /// The envelope is malformed, its signature fails, or its sender is not this device.
    InvalidEnvelope = 30, "the envelope is not valid";
    /// A different envelope with this sender and sequence number is already stored.
    Equivocation = 31, "a different envelope with this sequence number is already stored";
    /// The membership entry breaks a rule of the log.
    InvalidMembership = 32, "the membership entry is not valid";
    /// The membership entry does not extend the current log (another entry won).
    MembershipConflict = 33, "the membership log has changed; fetch it and retry";
    /// The snapshot is invalid or older than the one stored.
    InvalidSnapshot = 34, "the snapshot is not valid";
    /// Too many requests from this device; slow down.
    RateLimited = 40, "too many requests; slow down";
    /// The plan has reached its storage quota.
    QuotaExceeded = 41, "the plan has reached its storage quota on this relay";
    /// The relay is at its connection limit.
    TooManyConnections = 42, "the relay has too many connections; try again later";
    /// The connection was idle too long.
    IdleTimeout = 43, "the connection was idle for too long";
    /// The device could not keep up with live delivery; it reconnects and fetches.
    Overloaded = 44, "the connection fell behind; reconnect to catch up";
    /// No open pairing mailbox has this nameplate (never opened, or expired).
    PairingUnknown = 50, "no pairing is waiting under this code; it may have expired";
    /// The pairing mailbox was burned by a failed attempt or already used.
    PairingBurned = 51, "this pairing code has been used or burned; start a new one";
    /// Too many pairing attempts from this address.
    PairingRateLimited = 53, "too many pairing attempts; wait a few minutes";
    /// The relay's storage is unavailable.
    Unavailable = 60, "the relay cannot reach its storage right now; try again later";
    /// The relay failed unexpectedly.
    Internal = 61, "the relay failed unexpectedly";
    /// The relay is shutting down.
    ShuttingDown = 62, "the relay is restarting; reconnect shortly";
}

fn to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_code)
    }
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
    const VARIANTS: u32 = 16;
}

impl Message for RelayToClient {
    const VARIANTS: u32 = 15;
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

/// The bytes a device signs to authenticate:
/// `"CVAU" ‖ version (u8) ‖ origin length (u16 BE) ‖ origin (UTF-8) ‖ nonce (32) ‖ device id (32)`.
pub fn auth_message(origin: &str, nonce: &Nonce32, device: &DeviceId) -> Option<Vec<u8>> {
    if origin.len() > MAX_ORIGIN_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(4 + 1 + 2 + origin.len() + 64);
    out.extend_from_slice(AUTH_MAGIC);
    out.push(crate::VERSION);
    out.extend_from_slice(&(origin.len() as u16).to_be_bytes());
    out.extend_from_slice(origin.as_bytes());
    out.extend_from_slice(&nonce.0);
    out.extend_from_slice(device.as_bytes());
    Some(out)
}

/// Answers a challenge for the relay at `origin`.
pub fn answer_challenge(
    device: &DeviceSecret,
    origin: &str,
    nonce: &Nonce32,
) -> Option<ClientToRelay> {
    let message = auth_message(origin, nonce, &device.id())?;
    Some(ClientToRelay::Authenticate {
        device: device.id(),
        signature: Signature64(device.sign(&message)),
    })
}

/// Checks an answer to the challenge this relay (at `origin`) sent.
pub fn verify_challenge(
    origin: &str,
    nonce: &Nonce32,
    device: &DeviceId,
    signature: &Signature64,
) -> bool {
    auth_message(origin, nonce, device)
        .is_some_and(|message| verify_signature(device, &message, &signature.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_counts_match_the_enums() {
        // The last variant of each direction encodes as VARIANTS - 1.
        let last = encode(&ClientToRelay::Ping { request: 0 }).unwrap();
        assert_eq!(u32::from(last[0]), ClientToRelay::VARIANTS - 1);
        let plan = PlanId::from_bytes([0; 16]);
        let last = encode(&RelayToClient::Revoked { plan }).unwrap();
        assert_eq!(u32::from(last[0]), RelayToClient::VARIANTS - 1);
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
