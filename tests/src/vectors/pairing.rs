//! The pairing vector: one SPAKE2 exchange with fixed randomness, and
//! every value the two sides derive from it, computed by the code that
//! pairs (see protocol.md, section 11).

use cove_client::pairing::trace;
use cove_shared::codec::to_hex;
use cove_shared::membership::EntryHash;
use cove_shared::{DeviceSecret, Partner, PlanId};
use rand_core::{Infallible, TryCryptoRng, TryRng};
use serde::{Deserialize, Serialize};
use spake2::{Ed25519Group, Identity, Password, Spake2};

/// `pairing.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingVector {
    /// The 256 words of pairing codes, in index order.
    pub word_list: Vec<String>,
    /// The code one person reads to the other.
    pub code: String,
    /// Its nameplate: what the relay learns.
    pub nameplate: String,
    /// SPAKE2's M, N: compressed Edwards points.
    pub spake2_m: String,
    /// See `spake2_m`.
    pub spake2_n: String,
    /// The 64 random bytes the inviter's scalar `x` is made of (read as a
    /// little-endian integer, reduced mod ℓ).
    pub inviter_random: String,
    /// The same for the joiner's scalar `y`.
    pub joiner_random: String,
    /// `0x41 ‖ X`, as sent.
    pub msg_a: String,
    /// `0x42 ‖ Y`, as sent.
    pub msg_b: String,
    /// SPAKE2's output key `K`, the same on both sides.
    pub shared_key: String,
    /// `SHA-256(msg_a ‖ msg_b)`.
    pub transcript: String,
    /// `HKDF-Extract("cove/v1/pair" ‖ nameplate, shared_key)`.
    pub prk: String,
    /// The inviter's key confirmation.
    pub confirm_inviter: String,
    /// The joiner's key confirmation.
    pub confirm_joiner: String,
    /// The inviter's sealing key.
    pub seal_inviter: String,
    /// The joiner's sealing key.
    pub seal_joiner: String,
    /// The six digits both screens show.
    pub safety_code: String,
    /// The joiner's device (a name in `devices.json`), whose bundle it
    /// commits to.
    pub joiner: String,
    /// The joiner's commitment.
    pub commitment: String,
    /// The inviter's device (a name in `devices.json`).
    pub inviter: String,
    /// The invitation: its fields, its postcard plaintext, the nonce, and
    /// the sealed bytes as the mailbox carries them.
    pub invitation: InvitationVector,
    /// Mailbox messages as sent, in the order of the exchange.
    pub mailbox: Vec<MailboxVector>,
}

/// The sealed `Invitation` of the pairing vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationVector {
    /// The plan id.
    pub plan: String,
    /// The relay address.
    pub relay: String,
    /// The genesis entry's hash.
    pub genesis: String,
    /// Whose device the new one is.
    pub partner: String,
    /// Whether it is the inviter's own partner's.
    pub own: bool,
    /// The postcard plaintext (`Sealed::Invitation`).
    pub plaintext: String,
    /// The nonce.
    pub nonce: String,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub sealed: String,
}

/// One mailbox message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxVector {
    /// Who sends it.
    pub from: String,
    /// `Pake`, `Confirm`, `Sealed` or `Commit`.
    pub kind: String,
    /// The postcard encoding sent to the mailbox.
    pub encoded: String,
}

/// Hands out fixed bytes, for a reproducible SPAKE2 scalar.
struct Fixed(Vec<u8>);

impl TryRng for Fixed {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let n = dst.len().min(self.0.len());
        dst[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(())
    }
}

impl TryCryptoRng for Fixed {}

const M: [u8; 32] = [
    0x15, 0xcf, 0xd1, 0x8e, 0x38, 0x59, 0x52, 0x98, 0x2b, 0x6a, 0x8f, 0x8c, 0x78, 0x54, 0x96, 0x3b,
    0x58, 0xe3, 0x43, 0x88, 0xc8, 0xe6, 0xda, 0xe8, 0x91, 0xdb, 0x75, 0x64, 0x81, 0xa0, 0x23, 0x12,
];
const N: [u8; 32] = [
    0xf0, 0x4f, 0x2e, 0x7e, 0xb7, 0x34, 0xb2, 0xa8, 0xf8, 0xb4, 0x72, 0xea, 0xf9, 0xc3, 0xc6, 0x32,
    0x57, 0x6a, 0xc6, 0x4a, 0xea, 0x65, 0x0b, 0x49, 0x6a, 0x8a, 0x20, 0xff, 0x00, 0xe5, 0x83, 0xc3,
];

/// The pairing vector: `inviter` invites `joiner` (the other partner's
/// first device) into `plan`.
pub(super) fn pairing(
    inviter: (&DeviceSecret, &str),
    joiner: (&DeviceSecret, &str),
    plan: PlanId,
    genesis: EntryHash,
) -> PairingVector {
    let words = cove_client::words::WORDS;
    let nameplate = "482913";
    let code = format!("{nameplate}-{}-{}", words[117], words[201]);
    let password = Password::new(code.as_bytes());
    let (id_a, id_b) =
        (Identity::new(b"cove/v1/pair/inviter"), Identity::new(b"cove/v1/pair/joiner"));
    let inviter_random: Vec<u8> = (0u8..64).collect();
    let joiner_random: Vec<u8> = (0u8..64).map(|b| b.wrapping_mul(7).wrapping_add(3)).collect();
    let (a, msg_a) = Spake2::<Ed25519Group>::start_a_with_rng(
        &password,
        &id_a,
        &id_b,
        Fixed(inviter_random.clone()),
    );
    let (b, msg_b) = Spake2::<Ed25519Group>::start_b_with_rng(
        &password,
        &id_a,
        &id_b,
        Fixed(joiner_random.clone()),
    );
    let key_a = a.finish(&msg_b).unwrap_or_else(|e| panic!("spake2: {e:?}"));
    let key_b = b.finish(&msg_a).unwrap_or_else(|e| panic!("spake2: {e:?}"));
    assert_eq!(key_a, key_b, "both sides agree");
    let derived = trace::derive(nameplate, &key_a, &msg_a, &msg_b);
    let joiner_bundle = joiner.0.bundle().encode();
    let commitment = trace::commit(&msg_b, &joiner_bundle);
    let relay = "wss://relay.example:8443";
    let nonce = *b"pairing-vector-nonce-24b";
    let inviter_bundle = inviter.0.bundle().encode();
    let (plaintext, sealed) = trace::invitation(
        derived.seal_inviter,
        nonce,
        plan,
        relay,
        genesis,
        Partner::B,
        false,
        &inviter_bundle,
    );
    let message = |from: &str, kind: &str, code: u8, body: &[u8]| MailboxVector {
        from: from.into(),
        kind: kind.into(),
        encoded: to_hex(&trace::mailbox(code, body)),
    };
    let mailbox = vec![
        message("joiner", "Commit", 3, &commitment),
        message("inviter", "Pake", 0, &msg_a),
        message("joiner", "Pake", 0, &msg_b),
        message("joiner", "Confirm", 1, &derived.confirm_joiner),
        message("inviter", "Confirm", 1, &derived.confirm_inviter),
        message("inviter", "Sealed", 2, &sealed),
    ];
    PairingVector {
        word_list: words.iter().map(|w| (*w).to_owned()).collect(),
        code,
        nameplate: nameplate.into(),
        spake2_m: to_hex(&M),
        spake2_n: to_hex(&N),
        inviter_random: to_hex(&inviter_random),
        joiner_random: to_hex(&joiner_random),
        msg_a: to_hex(&msg_a),
        msg_b: to_hex(&msg_b),
        shared_key: to_hex(&key_a),
        transcript: to_hex(&derived.transcript),
        prk: to_hex(&derived.prk),
        confirm_inviter: to_hex(&derived.confirm_inviter),
        confirm_joiner: to_hex(&derived.confirm_joiner),
        seal_inviter: to_hex(&derived.seal_inviter),
        seal_joiner: to_hex(&derived.seal_joiner),
        safety_code: derived.safety_code,
        joiner: joiner.1.into(),
        commitment: to_hex(&commitment),
        inviter: inviter.1.into(),
        invitation: InvitationVector {
            plan: plan.to_string(),
            relay: relay.into(),
            genesis: to_hex(&genesis.0),
            partner: "B".into(),
            own: false,
            plaintext: to_hex(&plaintext),
            nonce: to_hex(&nonce),
            sealed: to_hex(&sealed),
        },
        mailbox,
    }
}
