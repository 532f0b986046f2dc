//! Key wraps: an epoch key sealed for one device, the way age does it.
//!
//! # Wire format (257 bytes)
//! ```text
//! offset  size  field
//!      0     4  magic "CVKW"
//!      4     1  version, 0x01
//!      5    16  plan id
//!     21     4  epoch, u32 big-endian
//!     25    32  recipient device id
//!     57    32  wrapping device id
//!     89    32  ephemeral X25519 public key
//!    121    24  nonce, random
//!    145    48  XChaCha20-Poly1305 ciphertext of the 32-byte epoch key, tag last
//!    193    64  Ed25519 signature by the wrapping device over bytes [0, 193)
//! ```
//! `shared = X25519(ephemeral secret, recipient X25519 key)`, refused if it is
//! all zeros (a small-order key). `KEK = HKDF-SHA256(salt = ephemeral public ‖
//! recipient X25519 public, IKM = shared, info = "cove/v1/wrap" ‖ bytes [0, 89))`.
//! The AEAD's associated data is bytes `[0, 121)`. Plan, epoch, recipient and
//! wrapper are therefore bound three ways: in the KEK, in the associated data
//! and under the signature.

use crate::codec::{DecodeError, Reader};
use crate::envelope::IntegrityError;
use crate::ids::{DeviceId, Epoch, PlanId};
use crate::kdf::{LABEL_WRAP, expand_into};
use crate::keys::{DeviceSecret, SymmetricKey, exchange_key_is_valid, verify_signature};
use crate::random::Entropy;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

/// Magic of a key wrap.
pub const WRAP_MAGIC: &[u8; 4] = b"CVKW";
/// Encoded length of a key wrap.
pub const WRAP_LEN: usize = 257;
const BOUND_LEN: usize = 89;
const AAD_LEN: usize = 121;
const SIGNED_LEN: usize = 193;

/// One epoch key, wrapped for one device and signed by the device that made it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyWrap {
    bytes: [u8; WRAP_LEN],
    plan: PlanId,
    epoch: Epoch,
    recipient: DeviceId,
    wrapper: DeviceId,
}

/// Wrapping refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    /// The recipient's X25519 key has small order, so the wrap would be readable by anyone.
    #[error("the recipient's exchange key is not usable")]
    WeakRecipientKey,
}

impl KeyWrap {
    /// Wraps `key`, the key of `epoch`, for the device `recipient` whose
    /// X25519 public key is `recipient_exchange`.
    pub fn wrap(
        plan: PlanId,
        epoch: Epoch,
        key: &SymmetricKey,
        recipient: DeviceId,
        recipient_exchange: &[u8; 32],
        wrapper: &DeviceSecret,
        rng: &mut impl Entropy,
    ) -> Result<Self, WrapError> {
        if !exchange_key_is_valid(recipient_exchange) {
            return Err(WrapError::WeakRecipientKey);
        }
        let ephemeral = StaticSecret::from(rng.array::<32>());
        let ephemeral_public = XPublic::from(&ephemeral).to_bytes();
        let shared = ephemeral.diffie_hellman(&XPublic::from(*recipient_exchange));
        if !shared.was_contributory() {
            return Err(WrapError::WeakRecipientKey);
        }

        let mut bytes = [0u8; WRAP_LEN];
        bytes[0..4].copy_from_slice(WRAP_MAGIC);
        bytes[4] = crate::VERSION;
        bytes[5..21].copy_from_slice(plan.as_bytes());
        bytes[21..25].copy_from_slice(&epoch.0.to_be_bytes());
        bytes[25..57].copy_from_slice(recipient.as_bytes());
        bytes[57..89].copy_from_slice(wrapper.id().as_bytes());
        bytes[89..121].copy_from_slice(&ephemeral_public);
        let nonce: [u8; 24] = rng.array();
        bytes[121..145].copy_from_slice(&nonce);

        let kek = kek(&bytes, shared.as_bytes(), recipient_exchange);
        bytes[145..177].copy_from_slice(key.as_bytes());
        let (head, body) = bytes.split_at_mut(145);
        let cipher = XChaCha20Poly1305::new(kek.as_bytes().into());
        let tag = cipher
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &head[..AAD_LEN],
                (&mut body[..32]).into(),
            )
            .map_err(|_| WrapError::WeakRecipientKey)?;
        bytes[177..193].copy_from_slice(&tag);
        let signature = wrapper.sign(&bytes[..SIGNED_LEN]);
        bytes[SIGNED_LEN..].copy_from_slice(&signature);
        Ok(Self { bytes, plan, epoch, recipient, wrapper: wrapper.id() })
    }

    /// Decodes a wrap and verifies its signature. Whether the wrapper was
    /// allowed to make it is the membership log's question, not this one's.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let wrap = Self::read(&mut r)?;
        r.finish()?;
        Ok(wrap)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes: [u8; WRAP_LEN] = r.array()?;
        let mut f = Reader::new(&bytes);
        f.expect(WRAP_MAGIC, "wrap magic")?;
        f.expect(&[crate::VERSION], "wrap version")?;
        let plan = PlanId::from_bytes(f.array()?);
        let epoch = Epoch(f.u32()?);
        let invalid = |field| move |_| DecodeError::Invalid { field };
        let recipient = DeviceId::from_bytes(f.array()?).map_err(invalid("wrap recipient"))?;
        let wrapper = DeviceId::from_bytes(f.array()?).map_err(invalid("wrap wrapper"))?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[SIGNED_LEN..]);
        if epoch.0 == 0 || !verify_signature(&wrapper, &bytes[..SIGNED_LEN], &signature) {
            return Err(DecodeError::Invalid { field: "wrap signature" });
        }
        Ok(Self { bytes, plan, epoch, recipient, wrapper })
    }

    /// The 257-byte encoding.
    pub fn encode(&self) -> &[u8; WRAP_LEN] {
        &self.bytes
    }

    /// The plan the key belongs to.
    pub fn plan(&self) -> PlanId {
        self.plan
    }

    /// The epoch of the wrapped key.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The device that can unwrap it.
    pub fn recipient(&self) -> DeviceId {
        self.recipient
    }

    /// The device that made and signed it.
    pub fn wrapper(&self) -> DeviceId {
        self.wrapper
    }

    /// Recovers the epoch key. Fails, opaquely, unless `recipient` is the
    /// device this wrap was made for and the wrap is intact.
    pub fn unwrap(&self, recipient: &DeviceSecret) -> Result<SymmetricKey, IntegrityError> {
        if recipient.id() != self.recipient {
            return Err(IntegrityError);
        }
        let ephemeral: [u8; 32] = self.bytes[89..121].try_into().map_err(|_| IntegrityError)?;
        let shared = recipient.exchange(&ephemeral).ok_or(IntegrityError)?;
        let kek = kek(&self.bytes, &shared, &recipient.exchange_public());
        let nonce: [u8; 24] = self.bytes[121..145].try_into().map_err(|_| IntegrityError)?;
        let tag = Tag::try_from(&self.bytes[177..193]).map_err(|_| IntegrityError)?;
        // Decrypt in place inside the key's own (zeroize-on-drop) storage, so
        // no stray copy of the plaintext key is left behind.
        let mut key = SymmetricKey::from_bytes([0u8; 32]);
        key.as_mut_bytes().copy_from_slice(&self.bytes[145..177]);
        XChaCha20Poly1305::new(kek.as_bytes().into())
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &self.bytes[..AAD_LEN],
                key.as_mut_bytes().as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| IntegrityError)?;
        Ok(key)
    }
}

impl fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWrap")
            .field("plan", &self.plan)
            .field("epoch", &self.epoch)
            .field("recipient", &self.recipient)
            .field("wrapper", &self.wrapper)
            .finish_non_exhaustive()
    }
}

fn kek(bytes: &[u8; WRAP_LEN], shared: &[u8; 32], recipient_exchange: &[u8; 32]) -> SymmetricKey {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&bytes[89..121]);
    salt[32..].copy_from_slice(recipient_exchange);
    let prk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut info = Vec::with_capacity(LABEL_WRAP.len() + BOUND_LEN);
    info.extend_from_slice(LABEL_WRAP);
    info.extend_from_slice(&bytes[..BOUND_LEN]);
    let mut out = [0u8; 32];
    expand_into(&prk, &info, &mut out);
    SymmetricKey::from_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededEntropy;

    fn setup() -> (SeededEntropy, DeviceSecret, DeviceSecret, PlanId, SymmetricKey) {
        let mut rng = SeededEntropy::new(b"wrap");
        let wrapper = DeviceSecret::generate(&mut rng);
        let recipient = DeviceSecret::generate(&mut rng);
        let plan = PlanId::random(&mut rng);
        let key = SymmetricKey::random(&mut rng);
        (rng, wrapper, recipient, plan, key)
    }

    #[test]
    fn wrap_round_trips_only_for_its_recipient() {
        let (mut rng, wrapper, recipient, plan, key) = setup();
        let wrap = KeyWrap::wrap(
            plan,
            Epoch(3),
            &key,
            recipient.id(),
            &recipient.exchange_public(),
            &wrapper,
            &mut rng,
        )
        .unwrap();
        let decoded = KeyWrap::decode(wrap.encode()).unwrap();
        assert_eq!(decoded.unwrap(&recipient).unwrap(), key);
        assert_eq!(decoded.unwrap(&wrapper), Err(IntegrityError));
        assert_eq!((decoded.plan(), decoded.epoch()), (plan, Epoch(3)));
        assert_eq!((decoded.recipient(), decoded.wrapper()), (recipient.id(), wrapper.id()));
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let (mut rng, wrapper, recipient, plan, key) = setup();
        let wrap = KeyWrap::wrap(
            plan,
            Epoch(1),
            &key,
            recipient.id(),
            &recipient.exchange_public(),
            &wrapper,
            &mut rng,
        )
        .unwrap();
        for bit in 0..WRAP_LEN * 8 {
            let mut bytes = *wrap.encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let opened = KeyWrap::decode(&bytes).map(|w| w.unwrap(&recipient));
            assert!(!matches!(opened, Ok(Ok(_))), "bit {bit} went unnoticed");
        }
    }

    /// A wrap whose ephemeral key has small order, correctly signed by a
    /// malicious member: the recipient must refuse it.
    #[test]
    fn small_order_ephemeral_key_is_refused_by_the_recipient() {
        let (mut rng, wrapper, recipient, plan, key) = setup();
        let wrap = KeyWrap::wrap(
            plan,
            Epoch(1),
            &key,
            recipient.id(),
            &recipient.exchange_public(),
            &wrapper,
            &mut rng,
        )
        .unwrap();
        for point in crate::keys::tests_support::small_order_points() {
            let mut bytes = *wrap.encode();
            bytes[89..121].copy_from_slice(&point);
            let signature = wrapper.sign(&bytes[..SIGNED_LEN]);
            bytes[SIGNED_LEN..].copy_from_slice(&signature);
            let forged = KeyWrap::decode(&bytes).unwrap();
            assert_eq!(forged.unwrap(&recipient), Err(IntegrityError));
        }
    }
}
