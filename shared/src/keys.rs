//! Device identity keys, symmetric keys and the signed device bundle.
//!
//! A device has two keys, one purpose each: an Ed25519 key that signs (its
//! public half is the [`DeviceId`]) and an X25519 key that receives key
//! wraps. The Ed25519 key signs the X25519 public key in a [`DeviceBundle`],
//! so nobody can attach their own exchange key to someone else's device id.
//!
//! # Invariants
//! - Secret types zeroize on drop and print as `Name(..)` in `Debug`.
//! - No X25519 public key of small order is ever accepted into a bundle.

use crate::codec::{DecodeError, Reader};
use crate::ids::DeviceId;
use crate::random::Entropy;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A 32-byte symmetric key: an epoch key or a subkey derived from one.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    /// A fresh random key.
    pub fn random(rng: &mut impl Entropy) -> Self {
        let mut key = Self([0; 32]);
        rng.fill(&mut key.0);
        key
    }

    /// Wraps existing key material.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key material. Callers must not copy it anywhere that outlives them.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Mutable key material, to decrypt a key in place.
    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

/// Length of a device's secret material: Ed25519 seed ‖ X25519 secret.
pub const DEVICE_SECRET_LEN: usize = 64;

/// A device's secret keys.
#[derive(ZeroizeOnDrop)]
pub struct DeviceSecret {
    signing: SigningKey,
    exchange: StaticSecret,
    #[zeroize(skip)]
    id: DeviceId,
    #[zeroize(skip)]
    exchange_public: [u8; 32],
}

impl DeviceSecret {
    /// Makes a new device identity.
    pub fn generate(rng: &mut impl Entropy) -> Self {
        let mut material = Zeroizing::new([0u8; DEVICE_SECRET_LEN]);
        loop {
            rng.fill(material.as_mut());
            if let Some(secret) = Self::from_secret_bytes(&material) {
                return secret;
            }
        }
    }

    /// Restores a device from its 64 secret bytes (as kept in the keystore).
    /// Returns `None` only for the negligible set of seeds whose public key
    /// would be unusable.
    pub fn from_secret_bytes(bytes: &[u8; DEVICE_SECRET_LEN]) -> Option<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let signing = SigningKey::from_bytes(&seed);
        let mut x = Zeroizing::new([0u8; 32]);
        x.copy_from_slice(&bytes[32..]);
        let exchange = StaticSecret::from(*x);
        let id = DeviceId::from_bytes(signing.verifying_key().to_bytes()).ok()?;
        let exchange_public = XPublic::from(&exchange).to_bytes();
        if !exchange_key_is_valid(&exchange_public) {
            return None;
        }
        Some(Self { signing, exchange, id, exchange_public })
    }

    /// The 64 secret bytes, for the sealed keystore only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; DEVICE_SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; DEVICE_SECRET_LEN]);
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..].copy_from_slice(self.exchange.as_bytes());
        out
    }

    /// This device's id (its Ed25519 public key).
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// This device's X25519 public key.
    pub fn exchange_public(&self) -> [u8; 32] {
        self.exchange_public
    }

    /// Signs `message` with the device's Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// X25519 with the device's exchange key. `None` if the result is the
    /// all-zero point, which means `their_public` had small order.
    pub(crate) fn exchange(&self, their_public: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.exchange.diffie_hellman(&XPublic::from(*their_public));
        shared.was_contributory().then(|| Zeroizing::new(shared.to_bytes()))
    }

    /// The signed bundle that introduces this device to others.
    pub fn bundle(&self) -> DeviceBundle {
        let signature = self.sign(&key_pair_prefix(BUNDLE_MAGIC, &self.id, &self.exchange_public));
        DeviceBundle { device: self.id, exchange: self.exchange_public, signature }
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceSecret({:?}, ..)", self.id)
    }
}

/// Verifies an Ed25519 signature strictly: canonical encodings only, and no
/// small-order components (`verify_strict`). A `signer` that is not a point
/// of large order never verifies.
pub fn verify_signature(signer: &DeviceId, message: &[u8], signature: &[u8; 64]) -> bool {
    signer.verifying_key().is_some_and(|key| verify_with(&key, message, signature))
}

/// As [`verify_signature`], with a key that is already decompressed.
pub fn verify_with(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
}

/// Whether an X25519 public key is usable: its Diffie-Hellman output with a
/// fixed clamped scalar is not the all-zero point. Every small-order point,
/// in every encoding X25519 accepts, fails this test, because clamping makes
/// each scalar a multiple of the cofactor.
pub fn exchange_key_is_valid(public: &[u8; 32]) -> bool {
    let probe = StaticSecret::from([0x42; 32]);
    probe.diffie_hellman(&XPublic::from(*public)).was_contributory()
}

/// Magic of a device bundle.
pub const BUNDLE_MAGIC: &[u8; 4] = b"CVDB";
/// Encoded length of a device bundle.
pub const BUNDLE_LEN: usize = 4 + 1 + 32 + 32 + 64;

/// A device's public keys, the exchange key signed by the device key.
///
/// # Wire format (133 bytes)
/// `"CVDB"` ‖ version (1) ‖ Ed25519 public key (32) ‖ X25519 public key (32)
/// ‖ Ed25519 signature (64) over the preceding 69 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceBundle {
    /// The device (its Ed25519 public key).
    pub device: DeviceId,
    /// The X25519 key that receives this device's key wraps.
    pub exchange: [u8; 32],
    signature: [u8; 64],
}

impl DeviceBundle {
    /// The 133-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = key_pair_prefix(BUNDLE_MAGIC, &self.device, &self.exchange);
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Decodes and verifies a bundle: layout, self-signature, and a usable
    /// exchange key.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let bundle = Self::read(&mut r)?;
        r.finish()?;
        Ok(bundle)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (device, exchange, signature) = read_key_pair(r, BUNDLE_MAGIC)?;
        Ok(Self { device, exchange, signature })
    }
}

/// The signed part of a self-signed key pair (a device bundle or a partner
/// identity): `magic ‖ version ‖ Ed25519 key ‖ X25519 key`.
pub(crate) fn key_pair_prefix(magic: &[u8; 4], key: &DeviceId, exchange: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(BUNDLE_LEN);
    bytes.extend_from_slice(magic);
    bytes.push(crate::VERSION);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(exchange);
    bytes
}

/// Reads a self-signed key pair and checks it: the magic, the signature by
/// the Ed25519 key over the prefix, and a usable exchange key.
pub(crate) fn read_key_pair(
    r: &mut Reader<'_>,
    magic: &'static [u8; 4],
) -> Result<(DeviceId, [u8; 32], [u8; 64]), DecodeError> {
    r.expect(magic, "key pair magic")?;
    r.expect(&[crate::VERSION], "key pair version")?;
    let key = DeviceId::from_bytes(r.array()?)
        .map_err(|_| DecodeError::Invalid { field: "signing key" })?;
    let exchange: [u8; 32] = r.array()?;
    let signature: [u8; 64] = r.array()?;
    if !verify_signature(&key, &key_pair_prefix(magic, &key, &exchange), &signature) {
        return Err(DecodeError::Invalid { field: "key pair signature" });
    }
    if !exchange_key_is_valid(&exchange) {
        return Err(DecodeError::Invalid { field: "exchange key" });
    }
    Ok((key, exchange, signature))
}

impl fmt::Debug for DeviceBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceBundle").field("device", &self.device).finish_non_exhaustive()
    }
}

/// Fixtures for tests of small-order key handling.
#[cfg(any(test, feature = "test-support"))]
pub mod tests_support {
    /// Every 32-byte string that X25519 decodes to a point of order 1, 2, 4
    /// or 8: the five canonical u-coordinates (0, 1, p-1 and the two points of
    /// order 8), the non-canonical p and p+1, and each of those seven with
    /// bit 255 set, which X25519 ignores.
    pub fn small_order_points() -> Vec<[u8; 32]> {
        let order_8_a = [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ];
        let order_8_b = [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ];
        // p = 2^255 - 19 in little-endian is ed ff .. ff 7f.
        let p_plus = |k: u8| {
            let mut v = [0xff; 32];
            v[0] = 0xed + k;
            v[31] = 0x7f;
            v
        };
        let small = |k: u8| {
            let mut v = [0u8; 32];
            v[0] = k;
            v
        };
        let mut p_minus_1 = p_plus(0);
        p_minus_1[0] = 0xec;
        let canonical = [small(0), small(1), order_8_a, order_8_b, p_minus_1, p_plus(0), p_plus(1)];
        let mut all = canonical.to_vec();
        for mut v in canonical {
            v[31] |= 0x80;
            all.push(v);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededEntropy;

    #[test]
    fn secret_bytes_round_trip_and_debug_is_redacted() {
        let secret = DeviceSecret::generate(&mut SeededEntropy::new(b"keys"));
        let restored = DeviceSecret::from_secret_bytes(&secret.to_secret_bytes()).unwrap();
        assert_eq!(secret.id(), restored.id());
        assert_eq!(secret.exchange_public(), restored.exchange_public());
        let debug = format!("{secret:?}");
        assert!(debug.starts_with("DeviceSecret(DeviceId("));
        assert!(!debug.contains(&crate::codec::to_hex(&secret.to_secret_bytes()[..32])));
        assert_eq!(format!("{:?}", SymmetricKey::from_bytes([7; 32])), "SymmetricKey(..)");
    }

    #[test]
    fn all_small_order_exchange_keys_are_refused() {
        let points = tests_support::small_order_points();
        assert_eq!(points.len(), 14);
        for point in points {
            assert!(!exchange_key_is_valid(&point), "{point:02x?} accepted");
        }
        let device = DeviceSecret::generate(&mut SeededEntropy::new(b"ok"));
        assert!(exchange_key_is_valid(&device.exchange_public()));
    }

    #[test]
    fn bundle_round_trips_and_rejects_a_swapped_exchange_key() {
        let mut rng = SeededEntropy::new(b"bundle");
        let a = DeviceSecret::generate(&mut rng);
        let b = DeviceSecret::generate(&mut rng);
        let bundle = a.bundle();
        assert_eq!(DeviceBundle::decode(&bundle.encode()), Ok(bundle.clone()));
        let mut forged = bundle.encode();
        forged[37..69].copy_from_slice(&b.exchange_public());
        assert!(DeviceBundle::decode(&forged).is_err());
    }
}
