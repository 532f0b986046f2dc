//! A partner's identity: the one key that speaks for a partner across all of
//! their devices, restored from their recovery phrase.
//!
//! Devices come and go; a partner's authority over their own part of the plan
//! must not move with them. So each partner has an identity key pair, made
//! from a 32-byte seed on their first device: an Ed25519 key that certifies
//! which devices are theirs, and an X25519 key that receives a copy of every
//! epoch key (a *recovery wrap*). The membership log pins each partner's
//! identity, and admits a device for a partner only with a [`Certificate`]
//! that identity signed. The other partner can relay such an enrolment, but
//! never make one.
//!
//! # Wire formats
//! ```text
//! identity (133 bytes):
//!   "CVID" ‖ version ‖ Ed25519 key (32) ‖ X25519 key (32) ‖ signature (64)
//!   by the Ed25519 key over the preceding 69 bytes
//! certificate (182 bytes):
//!   "CVDC" ‖ version ‖ plan id (16) ‖ genesis hash (32, zeros inside the
//!   genesis entry itself) ‖ partner (1) ‖ device id (32) ‖ identity key
//!   (32) ‖ signature (64) by the identity key over the preceding 118 bytes
//! recovery proof: the identity's signature over
//!   "CVRA" ‖ version ‖ device id (32)
//! ```
//! The keys come from the seed by HKDF-SHA256 with salt `cove/v1/identity`
//! and infos `cove/v1/identity/sign` (the Ed25519 seed) and
//! `cove/v1/identity/exchange` (the X25519 secret).

use crate::codec::{DecodeError, Reader};
use crate::ids::{DeviceId, Partner, PlanId};
use crate::keys::{
    BUNDLE_LEN, DEVICE_SECRET_LEN, DeviceSecret, key_pair_prefix, read_key_pair, verify_signature,
};
use crate::membership::EntryHash;
use crate::random::Entropy;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Magic of a partner identity.
pub const IDENTITY_MAGIC: &[u8; 4] = b"CVID";
/// Magic of a device certificate.
pub const CERTIFICATE_MAGIC: &[u8; 4] = b"CVDC";
/// Magic of a recovery proof.
pub const RECOVERY_MAGIC: &[u8; 4] = b"CVRA";
/// Encoded length of a partner identity.
pub const IDENTITY_LEN: usize = BUNDLE_LEN;
/// Encoded length of a certificate.
pub const CERTIFICATE_LEN: usize = 4 + 1 + 16 + 32 + 1 + 32 + 32 + 64;
/// Salt of the derivation from a seed.
pub const LABEL_IDENTITY: &[u8] = b"cove/v1/identity";
const LABEL_SIGN: &[u8] = b"cove/v1/identity/sign";
const LABEL_EXCHANGE: &[u8] = b"cove/v1/identity/exchange";

/// The 32 bytes a recovery phrase encodes.
pub struct IdentitySeed(Zeroizing<[u8; 32]>);

impl IdentitySeed {
    /// A fresh seed.
    pub fn random(rng: &mut impl Entropy) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill(seed.as_mut());
        Self(seed)
    }

    /// A seed from its bytes (as a recovery phrase decodes to).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The seed's bytes, to encode as a phrase or seal in a keystore.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for IdentitySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentitySeed(..)")
    }
}

/// A partner's identity secret: the keys derived from their seed.
pub struct PartnerSecret {
    keys: DeviceSecret,
}

impl PartnerSecret {
    /// Derives the identity keys from a seed. `None` only for the negligible
    /// set of seeds whose keys would be unusable.
    pub fn from_seed(seed: &IdentitySeed) -> Option<Self> {
        let hk = Hkdf::<Sha256>::new(Some(LABEL_IDENTITY), seed.as_bytes());
        let mut material = Zeroizing::new([0u8; DEVICE_SECRET_LEN]);
        let (sign, exchange) = material.split_at_mut(32);
        hk.expand(LABEL_SIGN, sign).ok()?;
        hk.expand(LABEL_EXCHANGE, exchange).ok()?;
        Some(Self { keys: DeviceSecret::from_secret_bytes(&material)? })
    }

    /// The identity's public Ed25519 key.
    pub fn key(&self) -> DeviceId {
        self.keys.id()
    }

    /// The identity's public X25519 key, which receives recovery wraps.
    pub fn exchange_public(&self) -> [u8; 32] {
        self.keys.exchange_public()
    }

    /// The signed public identity, as the membership log pins it.
    pub fn public(&self) -> PartnerIdentity {
        let signature = self.keys.sign(&key_pair_prefix(
            IDENTITY_MAGIC,
            &self.keys.id(),
            &self.keys.exchange_public(),
        ));
        PartnerIdentity { key: self.keys.id(), exchange: self.keys.exchange_public(), signature }
    }

    /// Certifies that `device` speaks for `partner` in this plan.
    pub fn certify(
        &self,
        plan: PlanId,
        genesis: EntryHash,
        partner: Partner,
        device: DeviceId,
    ) -> Certificate {
        let mut cert = Certificate {
            plan,
            genesis,
            partner,
            device,
            identity: self.key(),
            signature: [0; 64],
        };
        cert.signature = self.keys.sign(&cert.signed_bytes());
        cert
    }

    /// Proves to a relay that `device` acts for this identity, so that it may
    /// read the plan's membership and enrol itself (see `docs/protocol.md`).
    pub fn recovery_proof(&self, device: &DeviceId) -> [u8; 64] {
        self.keys.sign(&recovery_message(device))
    }

    /// The keys as a signer of membership entries and key wraps, which take
    /// any Ed25519 signer with an exchange key.
    pub fn as_signer(&self) -> &DeviceSecret {
        &self.keys
    }
}

impl fmt::Debug for PartnerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerSecret({:?}, ..)", self.key())
    }
}

/// The bytes a recovery proof signs.
pub fn recovery_message(device: &DeviceId) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 1 + 32);
    out.extend_from_slice(RECOVERY_MAGIC);
    out.push(crate::VERSION);
    out.extend_from_slice(device.as_bytes());
    out
}

/// Whether `signature` proves that `identity` sent `device` to recover.
pub fn verify_recovery_proof(identity: &DeviceId, device: &DeviceId, signature: &[u8; 64]) -> bool {
    verify_signature(identity, &recovery_message(device), signature)
}

/// A partner's public identity, self-signed.
#[derive(Clone, PartialEq, Eq)]
pub struct PartnerIdentity {
    /// The Ed25519 key that certifies the partner's devices.
    pub key: DeviceId,
    /// The X25519 key that receives recovery wraps.
    pub exchange: [u8; 32],
    signature: [u8; 64],
}

impl PartnerIdentity {
    /// The 133-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = key_pair_prefix(IDENTITY_MAGIC, &self.key, &self.exchange);
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Decodes and verifies an identity.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let identity = Self::read(&mut r)?;
        r.finish()?;
        Ok(identity)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (key, exchange, signature) = read_key_pair(r, IDENTITY_MAGIC)?;
        Ok(Self { key, exchange, signature })
    }
}

impl fmt::Debug for PartnerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerIdentity").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A partner identity's statement that a device speaks for that partner in
/// one plan. It names the plan's genesis, so that it cannot be replayed
/// into a different log with the same plan id.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The plan.
    pub plan: PlanId,
    /// The plan's genesis entry (zeros for the certificate inside genesis).
    pub genesis: EntryHash,
    /// The partner the device speaks for.
    pub partner: Partner,
    /// The device.
    pub device: DeviceId,
    /// The identity that signed it.
    pub identity: DeviceId,
    signature: [u8; 64],
}

impl Certificate {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(CERTIFICATE_LEN);
        bytes.extend_from_slice(CERTIFICATE_MAGIC);
        bytes.push(crate::VERSION);
        bytes.extend_from_slice(self.plan.as_bytes());
        bytes.extend_from_slice(&self.genesis.0);
        bytes.push(self.partner.code());
        bytes.extend_from_slice(self.device.as_bytes());
        bytes.extend_from_slice(self.identity.as_bytes());
        bytes
    }

    /// The 182-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.signed_bytes();
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Decodes a certificate and verifies its signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let cert = Self::read(&mut r)?;
        r.finish()?;
        Ok(cert)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.expect(CERTIFICATE_MAGIC, "certificate magic")?;
        r.expect(&[crate::VERSION], "certificate version")?;
        let plan = PlanId::from_bytes(r.array()?);
        let genesis = EntryHash(r.array()?);
        let partner = Partner::from_code(r.u8()?)
            .ok_or(DecodeError::Invalid { field: "certificate partner" })?;
        let device = DeviceId::from_bytes(r.array()?)
            .map_err(|_| DecodeError::Invalid { field: "certificate device" })?;
        let identity = DeviceId::from_bytes(r.array()?)
            .map_err(|_| DecodeError::Invalid { field: "certificate identity" })?;
        let signature: [u8; 64] = r.array()?;
        let cert = Self { plan, genesis, partner, device, identity, signature };
        if !verify_signature(&identity, &cert.signed_bytes(), &signature) {
            return Err(DecodeError::Invalid { field: "certificate signature" });
        }
        Ok(cert)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("partner", &self.partner)
            .field("device", &self.device)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededEntropy;

    fn secret(label: &[u8]) -> PartnerSecret {
        PartnerSecret::from_seed(&IdentitySeed::random(&mut SeededEntropy::new(label))).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_identity() {
        let seed = IdentitySeed::from_bytes(&[9; 32]);
        let a = PartnerSecret::from_seed(&seed).unwrap();
        let b = PartnerSecret::from_seed(&IdentitySeed::from_bytes(&[9; 32])).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.exchange_public(), b.exchange_public());
        assert_ne!(a.key(), secret(b"other").key());
        assert_eq!(format!("{seed:?}"), "IdentitySeed(..)");
    }

    #[test]
    fn identities_and_certificates_round_trip() {
        let id = secret(b"id");
        let public = id.public();
        assert_eq!(public.encode().len(), IDENTITY_LEN);
        assert_eq!(PartnerIdentity::decode(&public.encode()), Ok(public));
        let device = DeviceSecret::generate(&mut SeededEntropy::new(b"dev")).id();
        let plan = PlanId::from_bytes([3; 16]);
        let cert = id.certify(plan, EntryHash([5; 32]), Partner::B, device);
        assert_eq!(cert.encode().len(), CERTIFICATE_LEN);
        assert_eq!(Certificate::decode(&cert.encode()), Ok(cert));
        assert!(verify_recovery_proof(&id.key(), &device, &id.recovery_proof(&device)));
        assert!(!verify_recovery_proof(&device, &device, &id.recovery_proof(&device)));
    }

    #[test]
    fn a_device_bundle_is_not_an_identity() {
        let device = DeviceSecret::generate(&mut SeededEntropy::new(b"dev"));
        assert!(PartnerIdentity::decode(&device.bundle().encode()).is_err());
        assert!(crate::keys::DeviceBundle::decode(&secret(b"id").public().encode()).is_err());
    }
}
