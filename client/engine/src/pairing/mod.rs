//! Pairing a new device: a short code read from one person to the other,
//! SPAKE2 over a one-time mailbox on the relay, a commitment, explicit key
//! confirmation, and signed device bundles exchanged under the agreed key.
//!
//! # Protocol
//! The code is `<nameplate>-<word>-<word>`, as in `482913-lantern-river`: the
//! relay sees the nameplate (it names the mailbox), never the words. The
//! password is the whole code.
//!
//! 1. Inviter: opens a mailbox and waits.
//! 2. Joiner: joins; makes its SPAKE2 message `B` and sends `Commit(H(B ‖
//!    bundle))`, binding itself to `B` and its device bundle before it sees
//!    anything of the inviter's.
//! 3. Inviter: sends `Pake(A)`.
//! 4. Joiner: sends `Pake(B)` and `Confirm(joiner)`.
//! 5. Inviter: derives the key, checks `Confirm(joiner)`. A wrong code fails
//!    here: the inviter closes the mailbox as failed, which burns it, and the
//!    joiner is told. Otherwise it sends `Confirm(inviter)` and the
//!    invitation sealed under the inviter's key: plan id, relay, genesis
//!    hash, the new device's partner, whether that is the inviter's own
//!    partner, and the inviter's bundle.
//! 6. Joiner: checks `Confirm(inviter)`; sends its device sealed under the
//!    joiner's key: its bundle and, for the other partner's first device, a
//!    new partner identity and that identity's certificate for the device.
//!    Both screens now show the safety code.
//! 7. Inviter: checks the bundle against the commitment; a person compares
//!    the safety codes. Nothing has been wrapped for the joiner until they
//!    confirm. Then it enrols the device in the membership log (wrapping
//!    every epoch key for it; for its own partner, certifying it with the
//!    identity it holds) and sends `Enrolled`, with that identity's seed for
//!    its own partner's device. A refusal closes the mailbox as failed.
//! 8. Joiner: fetches the membership log from the relay, checks it starts at
//!    that genesis, lists its device as enrolled by the inviter's device,
//!    that device as active, and this device's identity as its partner's;
//!    sends `Sealed(Joined)`; the inviter closes the mailbox as completed.
//!
//! `K` is SPAKE2's output and `T = SHA-256(A ‖ B)`. With `PRK =
//! HKDF-Extract("cove/v1/pair" ‖ nameplate, K)`, each confirmation is
//! `HKDF-Expand(PRK, "cove/v1/pair/confirm-<role>" ‖ T, 32)`, each sealing key
//! `HKDF-Expand(PRK, "cove/v1/pair/seal-<role>" ‖ T, 32)`, and the safety code
//! shown on both screens is the first four bytes of `HKDF-Expand(PRK,
//! "cove/v1/pair/safety" ‖ T, 4)` as a number modulo 1,000,000, six digits.
//!
//! The safety code depends only on what both sides fixed before seeing the
//! other's contribution (the joiner commits first; the inviter's `A` comes
//! before `B` is revealed). Someone who learned the code and sat in the
//! middle would run two exchanges with different keys, and could not steer
//! the two codes to match beyond a one-in-a-million chance.
//!
//! # Layout
//! - this module: codes, errors, and the joining side.
//! - [`invite`]: the inviting side, and the safety-code confirmation.
//! - [`channel`]: the messages in the mailbox, sealed under the key the
//!   exchange agreed.

mod channel;
mod invite;
#[cfg(feature = "test-hooks")]
pub mod trace;

use crate::device::{Device, DeviceError};
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore};
use crate::transport::{RelayConnection, TransportError};
use crate::words::{WORDS, index_of};
pub use channel::Paired;
use channel::{
    Enrolled, INVITER, Invitation, JOINER, Joining, Keys, PairMsg, Sealed, commitment, open,
    receive, seal, send,
};
use cove_shared::membership::EntryBody;
use cove_shared::random::Entropy;
use cove_shared::wire::{Blob, ErrorCode, PairOutcome};
use cove_shared::{DeviceBundle, DeviceId, IdentitySeed, MembershipLog, OsEntropy, PartnerSecret};
pub use invite::{Invite, Meeting};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long either side waits for the other.
pub const PAIRING_WAIT: Duration = Duration::from_secs(600);

/// Pairing did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// The two codes differ (or someone guessed): the code is spent.
    #[error(
        "the code did not match, so the pairing was stopped and this code can no longer be used"
    )]
    WrongCode,
    /// No mailbox under this nameplate.
    #[error(
        "no pairing is waiting under this code; it may have expired (codes last 10 minutes) or been mistyped"
    )]
    Unknown,
    /// The mailbox was used or burned.
    #[error("this code has already been used or was burned by a wrong attempt")]
    Burned,
    /// The code is not of the form `482913-lantern-river`.
    #[error("{0:?} is not a pairing code; it looks like 482913-lantern-river")]
    BadCode(String),
    /// The other side did not answer in time.
    #[error("the other device did not answer within 10 minutes")]
    TimedOut,
    /// The other partner's identity is already in the plan.
    #[error(
        "your partner is already in this plan; only one of their own devices can add another, or they can recover with their recovery phrase"
    )]
    PartnerHasIdentity,
    /// The other partner left the plan.
    #[error("your partner has left this plan, so no device can be added for them")]
    PartnerLeft,
    /// This device does not hold its partner's identity.
    #[error(
        "this device does not hold your identity, so it cannot add a device for you; pair from another of your devices, or recover with your recovery phrase"
    )]
    NoIdentity,
    /// The inviting person did not confirm the safety code.
    #[error(
        "the other device did not confirm the safety code, so this device was not added and nothing of the plan was shared"
    )]
    Declined,
    /// The plan already has an identity for the partner this device would
    /// speak for, and it is not one this device holds.
    #[error(
        "someone has already joined this plan as the other partner with a different identity, so this device was not added; if that was not you, tell your partner that their plan has a device that is not yours"
    )]
    IdentityTaken,
    /// Too many attempts from this network.
    #[error("too many pairing attempts from this network; wait ten minutes and try again")]
    RateLimited,
    /// The other side broke the protocol.
    #[error("the other device sent something unexpected ({0})")]
    Protocol(&'static str),
    /// A device-level failure.
    #[error(transparent)]
    Device(Box<DeviceError>),
}

impl From<DeviceError> for PairError {
    fn from(error: DeviceError) -> Self {
        Self::Device(Box::new(error))
    }
}

impl From<TransportError> for PairError {
    fn from(error: TransportError) -> Self {
        match error.code() {
            Some(ErrorCode::PairingUnknown) => Self::Unknown,
            Some(ErrorCode::PairingBurned) => Self::Burned,
            Some(ErrorCode::PairingRateLimited) => Self::RateLimited,
            _ => Self::Device(Box::new(DeviceError::Transport(error))),
        }
    }
}

/// A pairing code: (nameplate, code text).
pub fn new_code(nameplate: &str) -> String {
    let [a, b]: [u8; 2] = OsEntropy.array();
    format!("{nameplate}-{}-{}", WORDS[usize::from(a)], WORDS[usize::from(b)])
}

/// Splits `482913-lantern-river` into its nameplate and checks the words.
pub fn parse_code(code: &str) -> Result<(String, String), PairError> {
    let code = code.trim().to_ascii_lowercase();
    let parts: Vec<&str> = code.split('-').collect();
    let valid = parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].len() <= cove_shared::wire::MAX_NAMEPLATE_LEN
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && index_of(parts[1]).is_some()
        && index_of(parts[2]).is_some();
    if valid { Ok((parts[0].to_owned(), code.clone())) } else { Err(PairError::BadCode(code)) }
}

/// A nameplate as the relay makes them: a short decimal number.
fn valid_nameplate(nameplate: &str) -> bool {
    !nameplate.is_empty()
        && nameplate.len() <= cove_shared::wire::MAX_NAMEPLATE_LEN
        && nameplate.bytes().all(|b| b.is_ascii_digit())
}

/// Joins a plan with a code: makes this device, pairs it, and syncs it.
/// `name` is the partner's display name when this is the other partner's
/// first device.
pub async fn join(
    home: &Home,
    passphrase: &str,
    relay: &str,
    code: &str,
    name: &str,
    params: KdfParams,
    show_code: impl FnOnce(&str),
) -> Result<Joined, PairError> {
    // Boxed: the pairing and the first sync are large futures, and a caller
    // may hold several such on one stack.
    let (mut device, paired, conn) =
        Box::pin(enrol(home, passphrase, relay, code, name, params, show_code)).await?;
    // Bring the plan over.
    let sync_error = Box::pin(crate::sync::sync_once(&mut device, &conn)).await.err();
    // This device's own enrolment pinned its partner's identity: it is the
    // partner's first, and the phrase is new.
    let state = device.membership();
    let added_at = state.member(&device.id()).map(|m| m.added_at);
    let new_phrase = state.live_identity(paired.partner).map(|i| i.pinned_at) == added_at;
    Ok(Joined { device, paired, sync_error, new_phrase })
}

/// As [`join`], without the first sync: the device is set up and listed,
/// and holds none of the plan yet. Returns the open connection too.
pub async fn enrol(
    home: &Home,
    passphrase: &str,
    relay: &str,
    code: &str,
    name: &str,
    params: KdfParams,
    show_code: impl FnOnce(&str),
) -> Result<(Device, Paired, RelayConnection), PairError> {
    let (nameplate, code) = parse_code(code)?;
    crate::transport::endpoint(relay).map_err(DeviceError::from)?;
    if home.exists() {
        return Err(DeviceError::AlreadyExists(home.root().display().to_string()).into());
    }
    let keystore = Keystore::create(passphrase, params).map_err(DeviceError::from)?;
    let result = enrol_in(home, keystore, relay, &nameplate, &code, name, show_code).await;
    if result.is_err() {
        // Leave nothing half made behind; the inviter's side can revoke a
        // device that was enrolled but never finished.
        let _ = home.wipe();
    }
    result
}

/// A joined device, and whether its first sync worked.
#[derive(Debug)]
pub struct Joined {
    /// The new device.
    pub device: Device,
    /// What pairing agreed.
    pub paired: Paired,
    /// The first sync's failure, if it failed: the device is set up, and
    /// `cove sync` finishes bringing the plan over.
    pub sync_error: Option<DeviceError>,
    /// Whether this device made its partner's identity (their first
    /// device), so that the recovery phrase is new and must be shown.
    pub new_phrase: bool,
}

async fn enrol_in(
    home: &Home,
    keystore: Keystore,
    relay: &str,
    nameplate: &str,
    code: &str,
    name: &str,
    show_code: impl FnOnce(&str),
) -> Result<(Device, Paired, RelayConnection), PairError> {
    let nameplate = nameplate.to_owned();
    let (conn, mut pushes) =
        RelayConnection::connect(relay, keystore.device()).await.map_err(DeviceError::from)?;
    conn.pair_join(&nameplate).await?;
    let (spake, mine) = Spake2::<Ed25519Group>::start_b(
        &Password::new(code.as_bytes()),
        &Identity::new(INVITER),
        &Identity::new(JOINER),
    );
    let bundle = Blob(keystore.device().bundle().encode());
    send(&conn, &nameplate, &PairMsg::Commit(Blob(commitment(&mine, &bundle.0).to_vec()))).await?;
    let PairMsg::Pake(theirs) = receive(&mut pushes, &nameplate).await? else {
        return Err(PairError::Protocol("expected a key exchange message"));
    };
    let shared = Zeroizing::new(spake.finish(&theirs.0).map_err(|_| PairError::WrongCode)?);
    let keys = Keys::new(&nameplate, &shared, &theirs.0, &mine);
    send(&conn, &nameplate, &PairMsg::Pake(Blob(mine))).await?;
    send(&conn, &nameplate, &PairMsg::Confirm(Blob(keys.confirm("joiner").to_vec()))).await?;
    let PairMsg::Confirm(confirm) = receive(&mut pushes, &nameplate).await? else {
        return Err(PairError::Protocol("expected a confirmation"));
    };
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&confirm.0[..], &keys.confirm("inviter")[..])) {
        let _ = conn.pair_close(&nameplate, PairOutcome::Failed).await;
        return Err(PairError::WrongCode);
    }
    let PairMsg::Sealed(sealed) = receive(&mut pushes, &nameplate).await? else {
        return Err(PairError::Protocol("expected an invitation"));
    };
    let Sealed::Invitation(invitation) = open(&keys.seal_key("inviter"), "inviter", &sealed.0)?
    else {
        return Err(PairError::Protocol("expected an invitation"));
    };
    // Another partner's first device brings that partner's new identity,
    // and certifies itself with it.
    let new_identity = (!invitation.own).then(|| IdentitySeed::random(&mut OsEntropy));
    let joining = match &new_identity {
        Some(seed) => {
            let identity = PartnerSecret::from_seed(seed)
                .ok_or(PairError::Protocol("an unusable identity"))?;
            let me = keystore.device().id();
            let cert =
                identity.certify(invitation.plan, invitation.genesis, invitation.partner, me);
            Joining {
                bundle,
                identity: Some(Blob(identity.public().encode())),
                certificate: Some(Blob(cert.encode())),
            }
        }
        None => Joining { bundle, identity: None, certificate: None },
    };
    let sealed = seal(&keys.seal_key("joiner"), "joiner", &Sealed::Device(joining))?;
    send(&conn, &nameplate, &PairMsg::Sealed(sealed)).await?;
    show_code(&keys.safety_code());

    // The inviting person now compares the safety code; a refusal closes
    // the mailbox as failed, and nothing was wrapped for this device.
    let PairMsg::Sealed(sealed) = receive(&mut pushes, &nameplate).await.map_err(|e| match e {
        PairError::WrongCode => PairError::Declined,
        other => other,
    })?
    else {
        return Err(PairError::Protocol("expected the enrolment"));
    };
    let Sealed::Enrolled(Enrolled { seed }) =
        open(&keys.seal_key("inviter"), "inviter", &sealed.0)?
    else {
        return Err(PairError::Protocol("expected the enrolment"));
    };
    let seed = match (new_identity, seed) {
        (Some(seed), None) => seed,
        (None, Some(mut blob)) => {
            let bytes: Result<[u8; 32], _> = blob.0.as_slice().try_into();
            zeroize::Zeroize::zeroize(&mut blob.0);
            IdentitySeed::from_bytes(&bytes.map_err(|_| PairError::Protocol("an identity seed"))?)
        }
        _ => return Err(PairError::Protocol("an enrolment that does not match the invitation")),
    };
    let identity =
        PartnerSecret::from_seed(&seed).ok_or(PairError::Protocol("an unusable identity"))?;

    // The membership log, pinned to the genesis the inviter vouched for.
    let entries = conn.fetch_membership(invitation.plan, 0).await.map_err(DeviceError::from)?;
    let log = MembershipLog::decode(entries.iter().map(Vec::as_slice), Some(invitation.genesis))
        .map_err(DeviceError::from)?;
    let me = keystore.device().id();
    if log.state().live_identity(invitation.partner).is_some_and(|i| i.key != identity.key()) {
        return Err(PairError::IdentityTaken);
    }
    if !confirms(&log, &invitation, me) {
        return Err(PairError::Protocol("an invitation the plan's membership does not confirm"));
    }
    let mut device =
        Device::join(home, keystore, relay, log, invitation.partner, name, &seed).await?;
    send(
        &conn,
        &nameplate,
        &PairMsg::Sealed(seal(&keys.seal_key("joiner"), "joiner", &Sealed::Joined)?),
    )
    .await?;
    // Close the mailbox as done before this connection goes: the relay
    // burns a mailbox whose device leaves while it is open, and the
    // inviter, further away, may not have closed it yet.
    if let Err(error) = conn.pair_close(&nameplate, PairOutcome::Completed).await {
        tracing::debug!(%error, "the pairing mailbox was already closed");
    }
    let paired =
        Paired { device: me, partner: invitation.partner, safety_code: keys.safety_code() };
    device.mark_ready().await?;
    Ok((device, paired, conn))
}

/// Whether the plan's log confirms the invitation: it lists `me` as an
/// active device of the invited partner, added by the inviting device,
/// which is itself an active member.
fn confirms(log: &MembershipLog, invitation: &Invitation, me: DeviceId) -> bool {
    let Ok(inviter) = DeviceBundle::decode(&invitation.inviter.0) else { return false };
    let state = log.state();
    let inviter_active = state.member(&inviter.device).is_some_and(|m| m.is_active());
    let me_listed =
        state.member(&me).is_some_and(|m| m.is_active() && m.partner == invitation.partner);
    let added_by_inviter = log.entries().iter().any(|entry| {
        entry.signer() == inviter.device
            && matches!(entry.body(), EntryBody::AddDevice { bundle, .. } if bundle.device == me)
    });
    inviter_active && me_listed && added_by_inviter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_and_malformed_ones_are_refused() {
        let code = new_code("7");
        let (nameplate, text) = parse_code(&code).unwrap();
        assert_eq!(nameplate, "7");
        assert_eq!(text, code);
        assert_eq!(parse_code(" 12-Lantern-RIVER ").unwrap().1, "12-lantern-river");
        for bad in ["7-lantern", "x-lantern-river", "7-lantern-nonsense", "7--river", ""] {
            assert!(matches!(parse_code(bad), Err(PairError::BadCode(_))), "{bad}");
        }
    }

    #[test]
    fn both_sides_derive_the_same_keys_and_safety_code() {
        let (a_state, a) = Spake2::<Ed25519Group>::start_a(
            &Password::new(b"7-lantern-river"),
            &Identity::new(INVITER),
            &Identity::new(JOINER),
        );
        let (b_state, b) = Spake2::<Ed25519Group>::start_b(
            &Password::new(b"7-lantern-river"),
            &Identity::new(INVITER),
            &Identity::new(JOINER),
        );
        let ka = Keys::new("7", &a_state.finish(&b).unwrap(), &a, &b);
        let kb = Keys::new("7", &b_state.finish(&a).unwrap(), &a, &b);
        assert_eq!(ka.confirm("joiner"), kb.confirm("joiner"));
        assert_ne!(ka.confirm("joiner"), ka.confirm("inviter"));
        assert_eq!(ka.safety_code(), kb.safety_code());
        assert_eq!(ka.safety_code().len(), 6);
        assert_ne!(commitment(&a, b"bundle"), commitment(&a, b"another bundle"));
        assert_ne!(commitment(&a, b"x"), commitment(&b, b"x"));

        // A wrong word: different keys, so the confirmation fails.
        let (c_state, c) = Spake2::<Ed25519Group>::start_b(
            &Password::new(b"7-lantern-ridge"),
            &Identity::new(INVITER),
            &Identity::new(JOINER),
        );
        let (a2_state, a2) = Spake2::<Ed25519Group>::start_a(
            &Password::new(b"7-lantern-river"),
            &Identity::new(INVITER),
            &Identity::new(JOINER),
        );
        let ka2 = Keys::new("7", &a2_state.finish(&c).unwrap(), &a2, &c);
        let kc = Keys::new("7", &c_state.finish(&a2).unwrap(), &a2, &c);
        assert_ne!(ka2.confirm("joiner"), kc.confirm("joiner"));
    }
}
