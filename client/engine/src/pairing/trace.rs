//! Test hook: every value one pairing derives, computed by the code that
//! pairs, for the golden vectors (`tests/vectors/pairing.json`).

use super::channel::{Invitation, Keys, PairMsg, Sealed, commitment, seal_with};
use cove_shared::membership::EntryHash;
use cove_shared::wire::Blob;
use cove_shared::{Partner, PlanId};

/// What both sides derive from one SPAKE2 exchange.
#[derive(Debug, Clone)]
pub struct Derived {
    /// `SHA-256(msgA ‖ msgB)`.
    pub transcript: [u8; 32],
    /// `HKDF-Extract("cove/v1/pair" ‖ nameplate, K)`.
    pub prk: [u8; 32],
    /// The inviter's key confirmation.
    pub confirm_inviter: [u8; 32],
    /// The joiner's key confirmation.
    pub confirm_joiner: [u8; 32],
    /// The inviter's sealing key.
    pub seal_inviter: [u8; 32],
    /// The joiner's sealing key.
    pub seal_joiner: [u8; 32],
    /// The six digits both screens show.
    pub safety_code: String,
}

/// The keys of a pairing whose SPAKE2 output is `shared`, with messages
/// `msg_a` and `msg_b` (each as sent, side byte first).
pub fn derive(nameplate: &str, shared: &[u8], msg_a: &[u8], msg_b: &[u8]) -> Derived {
    let keys = Keys::new(nameplate, shared, msg_a, msg_b);
    Derived {
        transcript: keys.transcript,
        prk: *keys.prk,
        confirm_inviter: keys.confirm("inviter"),
        confirm_joiner: keys.confirm("joiner"),
        seal_inviter: *keys.seal_key("inviter").as_bytes(),
        seal_joiner: *keys.seal_key("joiner").as_bytes(),
        safety_code: keys.safety_code(),
    }
}

/// The joiner's commitment to `msg_b` and its bundle.
pub fn commit(msg_b: &[u8], bundle: &[u8]) -> [u8; 32] {
    commitment(msg_b, bundle)
}

/// An `Invitation`, as its postcard plaintext and sealed by the inviter
/// under `key` with `nonce`.
#[allow(clippy::too_many_arguments)]
pub fn invitation(
    key: [u8; 32],
    nonce: [u8; 24],
    plan: PlanId,
    relay: &str,
    genesis: EntryHash,
    partner: Partner,
    own: bool,
    inviter: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let message = Sealed::Invitation(Invitation {
        plan,
        relay: relay.to_owned(),
        genesis,
        partner,
        own,
        inviter: Blob(inviter.to_vec()),
    });
    let plain = postcard::to_allocvec(&message).unwrap_or_default();
    let key = cove_shared::SymmetricKey::from_bytes(key);
    let sealed = seal_with(&key, "inviter", &message, nonce).map(|b| b.0).unwrap_or_default();
    (plain, sealed)
}

/// A mailbox message as sent: `kind` 0 `Pake`, 1 `Confirm`, 2 `Sealed`,
/// 3 `Commit`, carrying `body`.
pub fn mailbox(kind: u8, body: &[u8]) -> Vec<u8> {
    let body = Blob(body.to_vec());
    let message = match kind {
        0 => PairMsg::Pake(body),
        1 => PairMsg::Confirm(body),
        2 => PairMsg::Sealed(body),
        _ => PairMsg::Commit(body),
    };
    postcard::to_allocvec(&message).unwrap_or_default()
}
