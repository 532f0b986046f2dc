//! The pairing mailbox as a channel: the messages the two sides exchange,
//! the keys the SPAKE2 exchange yields, and each message sealed under them.

use super::{PAIRING_WAIT, PairError};
use crate::transport::{Push, RelayConnection, TransportError};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use cove_shared::membership::EntryHash;
use cove_shared::random::Entropy;
use cove_shared::wire::{Blob, PairOutcome};
use cove_shared::{DeviceId, OsEntropy, Partner, PlanId, SymmetricKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// A message in the mailbox.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum PairMsg {
    Pake(Blob),
    Confirm(Blob),
    Sealed(Blob),
    Commit(Blob),
}

/// The joiner's commitment to its SPAKE2 message and its bundle.
pub(super) fn commitment(message: &[u8], bundle: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"cove/v1/pair/commit")
        .chain_update((message.len() as u32).to_be_bytes())
        .chain_update(message)
        .chain_update(bundle)
        .finalize()
        .into()
}

/// What travels sealed, in this order.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Sealed {
    /// Inviter to joiner, once both confirmed the key: which plan.
    Invitation(Invitation),
    /// Joiner to inviter: the new device, and for another partner's first
    /// device, that partner's identity and its certificate for the device.
    Device(Joining),
    /// Inviter to joiner, after a person confirmed the safety code and the
    /// relay took the enrolment: for the inviter's own partner, the
    /// identity seed, so that every device of a partner can enrol more.
    Enrolled(Enrolled),
    /// Joiner to inviter: done.
    Joined,
}

/// What the inviter tells the new device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Invitation {
    pub(super) plan: PlanId,
    pub(super) relay: String,
    pub(super) genesis: EntryHash,
    pub(super) partner: Partner,
    /// Whether the new device is the inviter's own partner's, so that the
    /// inviter certifies it; otherwise the joiner brings its own identity.
    pub(super) own: bool,
    pub(super) inviter: Blob,
}

/// The joiner's device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Joining {
    pub(super) bundle: Blob,
    pub(super) identity: Option<Blob>,
    pub(super) certificate: Option<Blob>,
}

/// The end of the inviter's part.
#[derive(Serialize, Deserialize)]
pub(super) struct Enrolled {
    pub(super) seed: Option<Blob>,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolled(..)")
    }
}

/// A pairing both sides have confirmed the key of, and whose safety code
/// a person can now compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// The new device.
    pub device: DeviceId,
    /// Whose device it is.
    pub partner: Partner,
    /// The six digits both screens show.
    pub safety_code: String,
}

pub(super) const INVITER: &[u8] = b"cove/v1/pair/inviter";
pub(super) const JOINER: &[u8] = b"cove/v1/pair/joiner";

/// The keys both sides derive.
pub(super) struct Keys {
    /// HKDF's pseudorandom key, wiped when dropped.
    pub(super) prk: Zeroizing<[u8; 32]>,
    pub(super) transcript: [u8; 32],
}

impl Keys {
    pub(super) fn new(nameplate: &str, shared: &[u8], a: &[u8], b: &[u8]) -> Self {
        let mut salt = b"cove/v1/pair".to_vec();
        salt.extend_from_slice(nameplate.as_bytes());
        let transcript: [u8; 32] = Sha256::new().chain_update(a).chain_update(b).finalize().into();
        let (prk, _) = Hkdf::<Sha256>::extract(Some(&salt), shared);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&prk);
        Self { prk: bytes, transcript }
    }

    pub(super) fn expand(&self, label: &[u8], out: &mut [u8]) {
        let mut info = label.to_vec();
        info.extend_from_slice(&self.transcript);
        // A 32-byte PRK is valid, and every output here is at most 32 bytes.
        if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(self.prk.as_slice()) {
            let _ = hkdf.expand(&info, out);
        }
    }

    pub(super) fn confirm(&self, role: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.expand(format!("cove/v1/pair/confirm-{role}").as_bytes(), &mut out);
        out
    }

    pub(super) fn seal_key(&self, role: &str) -> SymmetricKey {
        let mut out = [0u8; 32];
        self.expand(format!("cove/v1/pair/seal-{role}").as_bytes(), &mut out);
        SymmetricKey::from_bytes(out)
    }

    pub(super) fn safety_code(&self) -> String {
        let mut out = [0u8; 4];
        self.expand(b"cove/v1/pair/safety", &mut out);
        format!("{:06}", u32::from_be_bytes(out) % 1_000_000)
    }
}

pub(super) fn seal(key: &SymmetricKey, role: &str, message: &Sealed) -> Result<Blob, PairError> {
    seal_with(key, role, message, OsEntropy.array())
}

/// [`seal`], with the nonce given (vectors need a fixed one).
pub(super) fn seal_with(
    key: &SymmetricKey,
    role: &str,
    message: &Sealed,
    nonce: [u8; 24],
) -> Result<Blob, PairError> {
    let plain = Zeroizing::new(
        postcard::to_allocvec(message).map_err(|_| PairError::Protocol("encoding"))?,
    );
    let mut out = nonce.to_vec();
    out.extend_from_slice(&plain);
    let ad = format!("cove/v1/pair/sealed-{role}");
    let tag = XChaCha20Poly1305::new(key.as_bytes().into())
        .encrypt_inout_detached(&XNonce::from(nonce), ad.as_bytes(), (&mut out[24..]).into())
        .map_err(|_| PairError::Protocol("sealing"))?;
    out.extend_from_slice(&tag);
    Ok(Blob(out))
}

pub(super) fn open(key: &SymmetricKey, role: &str, sealed: &[u8]) -> Result<Sealed, PairError> {
    let bad = || PairError::Protocol("a message that does not open");
    if sealed.len() < 40 {
        return Err(bad());
    }
    let (nonce, rest) = sealed.split_at(24);
    let (ciphertext, tag) = rest.split_at(rest.len() - 16);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad())?;
    let tag = Tag::try_from(tag).map_err(|_| bad())?;
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    let ad = format!("cove/v1/pair/sealed-{role}");
    XChaCha20Poly1305::new(key.as_bytes().into())
        .decrypt_inout_detached(
            &XNonce::from(nonce),
            ad.as_bytes(),
            plain.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| bad())?;
    postcard::from_bytes(&plain).map_err(|_| bad())
}

pub(super) async fn send(
    conn: &RelayConnection,
    nameplate: &str,
    message: &PairMsg,
) -> Result<(), PairError> {
    let body = postcard::to_allocvec(message).map_err(|_| PairError::Protocol("encoding"))?;
    conn.pair_send(nameplate, &body).await?;
    Ok(())
}

/// The next message in `nameplate`'s mailbox; a closed mailbox ends it.
pub(super) async fn receive(
    pushes: &mut mpsc::Receiver<Push>,
    nameplate: &str,
) -> Result<PairMsg, PairError> {
    tokio::time::timeout(PAIRING_WAIT, async {
        loop {
            match pushes.recv().await {
                Some(Push::PairMessage { nameplate: n, body }) if n == nameplate => {
                    return postcard::from_bytes(&body)
                        .map_err(|_| PairError::Protocol("an unreadable message"));
                }
                Some(Push::PairClosed { nameplate: n, outcome: PairOutcome::Failed })
                    if n == nameplate =>
                {
                    return Err(PairError::WrongCode);
                }
                Some(Push::PairClosed { nameplate: n, .. }) if n == nameplate => {
                    return Err(PairError::Protocol("the mailbox closed early"));
                }
                Some(Push::Closed(error)) => return Err(error.into()),
                None => return Err(TransportError::Closed.into()),
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| PairError::TimedOut)?
}
