//! Authentication: the bytes a device signs to answer the relay's
//! challenge, bound to the relay's origin and a fresh nonce.

use super::{AUTH_MAGIC, AUTH_NONCE_LEN, ClientToRelay, MAX_ORIGIN_LEN, Signature64};
use crate::codec::fixed_bytes;
use crate::ids::DeviceId;
use crate::keys::{DeviceSecret, verify_signature};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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
