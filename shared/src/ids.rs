//! Identifiers: plans, devices, documents, epochs and sequence numbers.

use crate::codec::{DecodeError, fixed_bytes, from_hex, to_hex};
use crate::random::Entropy;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// One plan: 128 random bits, chosen by the device that creates it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanId([u8; 16]);

impl PlanId {
    /// A fresh random plan id.
    pub fn random(rng: &mut impl Entropy) -> Self {
        Self(rng.array())
    }

    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, as they appear in headers.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanId({self})")
    }
}

impl FromStr for PlanId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        from_hex(s).map(Self)
    }
}

impl Serialize for PlanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for PlanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fixed_bytes::deserialize(d).map(Self)
    }
}

/// A device: its Ed25519 public key.
///
/// Construction checks only that the bytes are a canonical encoding (the
/// y-coordinate is below p), so that each device has exactly one id. Whether
/// the bytes are a usable curve point is settled by signature verification,
/// which every trust decision goes through: a key that does not decompress,
/// or has small order, never verifies a signature (see
/// [`crate::keys::verify_signature`]). Keeping construction cheap lets the
/// receiving path skip point decompression for senders it already knows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId([u8; 32]);

/// The bytes are not a canonical Ed25519 public key encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid device public key")]
pub struct InvalidDeviceId;

impl DeviceId {
    /// Checks the encoding and wraps a public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, InvalidDeviceId> {
        // The low 255 bits are y; reject y >= p = 2^255 - 19, the only
        // non-canonical encodings of points with x != 0. (The two points with
        // x = 0 have small order and fail every verification anyway.)
        let y_at_least_p =
            bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed;
        if y_at_least_p {
            return Err(InvalidDeviceId);
        }
        Ok(Self(bytes))
    }

    /// The raw public key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The decompressed key, or `None` if the bytes are not a point of
    /// large order.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok().filter(|k| !k.is_weak())
    }

    /// A short fingerprint for people to compare, such as `k7q2-m9xd-4hta-8mzn`:
    /// the first 80 bits of SHA-256("cove/v1/fingerprint" ‖ key), in
    /// Crockford base32, in groups of four.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(crate::kdf::LABEL_FINGERPRINT)
            .chain_update(self.0)
            .finalize();
        let mut bits: u128 = 0;
        for b in &digest[..10] {
            bits = (bits << 8) | u128::from(*b);
        }
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut out = String::with_capacity(19);
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            let shift = 75 - 5 * i;
            out.push(ALPHABET[((bits >> shift) & 0x1f) as usize] as char);
        }
        out
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.fingerprint())
    }
}

impl FromStr for DeviceId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = from_hex(s)?;
        Self::from_bytes(bytes).map_err(|_| DecodeError::Invalid { field: "device id" })
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = fixed_bytes::deserialize(d)?;
        Self::from_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

/// Which of the two partners a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Partner {
    /// The partner who created the plan.
    A,
    /// The partner who joined it.
    B,
}

impl Partner {
    /// The byte used in membership entries: 0 for A, 1 for B.
    pub const fn code(self) -> u8 {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }

    /// Parses the membership byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::A),
            1 => Some(Self::B),
            _ => None,
        }
    }

    /// This partner's own document.
    pub const fn doc(self) -> DocId {
        match self {
            Self::A => DocId::PartnerA,
            Self::B => DocId::PartnerB,
        }
    }

    /// The other partner.
    pub const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

impl fmt::Display for Partner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
        })
    }
}

/// One of the plan's synced Automerge documents. The device-local journal is
/// not a `DocId`: it never leaves the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DocId {
    /// Written by both partners.
    Shared,
    /// Written only by partner A's devices.
    PartnerA,
    /// Written only by partner B's devices.
    PartnerB,
}

impl DocId {
    /// Every synced document, in header-code order.
    pub const ALL: [DocId; 3] = [Self::Shared, Self::PartnerA, Self::PartnerB];

    /// The header byte: 0 shared, 1 partner-a, 2 partner-b.
    pub const fn code(self) -> u8 {
        match self {
            Self::Shared => 0,
            Self::PartnerA => 1,
            Self::PartnerB => 2,
        }
    }

    /// Parses the header byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Shared),
            1 => Some(Self::PartnerA),
            2 => Some(Self::PartnerB),
            _ => None,
        }
    }

    /// The partner who alone may write this document, if any.
    pub const fn owner(self) -> Option<Partner> {
        match self {
            Self::Shared => None,
            Self::PartnerA => Some(Partner::A),
            Self::PartnerB => Some(Partner::B),
        }
    }

    /// The name used in files and messages: `shared`, `partner-a`, `partner-b`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::PartnerA => "partner-a",
            Self::PartnerB => "partner-b",
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DocId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or(DecodeError::Invalid { field: "document name" })
    }
}

/// A key epoch. Epoch 1 starts at genesis; each rotation adds one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch every plan starts in.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch after this one, if it fits.
    pub fn next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sender's sequence number within one stream. The first envelope of each
/// stream has sequence 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number of a stream's first envelope.
    pub const FIRST: Seq = Seq(1);

    /// The largest valid sequence number, 2^63 − 1: every store holds it in
    /// a signed 64-bit integer, and `seq + 1` never overflows.
    pub const MAX: Seq = Seq(i64::MAX as u64);

    /// Whether this is a valid sequence number (1 to [`Seq::MAX`]).
    pub fn is_valid(self) -> bool {
        (Self::FIRST.0..=Self::MAX.0).contains(&self.0)
    }

    /// The next sequence number, if it is valid.
    pub fn next(self) -> Option<Seq> {
        self.0.checked_add(1).map(Seq).filter(|s| s.is_valid())
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_refuses_non_canonical_encodings_and_small_order_keys_never_verify() {
        // y >= p is non-canonical, with either sign bit.
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(DeviceId::from_bytes(p).is_err());
        assert!(DeviceId::from_bytes([0xff; 32]).is_err());
        let mut below_p = p;
        below_p[0] = 0xec;
        assert!(DeviceId::from_bytes(below_p).is_ok());
        // The identity point encodes canonically but has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let id = DeviceId::from_bytes(identity).unwrap();
        assert!(id.verifying_key().is_none());
        assert!(!crate::keys::verify_signature(&id, b"m", &[0; 64]));
    }

    #[test]
    fn fingerprint_is_grouped_base32() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes()).unwrap();
        let fp = id.fingerprint();
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.matches('-').count(), 3);
        assert!(fp.chars().all(|c| c == '-' || "0123456789abcdefghjkmnpqrstvwxyz".contains(c)));
    }

    #[test]
    fn doc_names_round_trip() {
        for doc in DocId::ALL {
            assert_eq!(doc.name().parse::<DocId>(), Ok(doc));
            assert_eq!(DocId::from_code(doc.code()), Some(doc));
        }
    }
}
