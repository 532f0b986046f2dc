//! Pairing a new device: a short code read from one person to the other,
//! SPAKE2 over a one-time mailbox on the relay, a commitment, explicit key
//! confirmation, and signed device bundles exchanged under the agreed key.
//!
//! # Protocol
//! The code is `<nameplate>-<word>-<word>`, as in `7-lantern-river`: the
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
//!    joiner is told. Otherwise it sends `Confirm(inviter)`.
//! 6. Joiner: checks `Confirm(inviter)`, sends its device bundle sealed under
//!    the joiner's key.
//! 7. Inviter: checks the bundle against the commitment, enrols it in the
//!    membership log (wrapping every epoch key for it), then sends the
//!    invitation sealed under the inviter's key: plan id, relay, genesis
//!    hash, the new device's partner, and the inviter's bundle.
//! 8. Joiner: fetches the membership log from the relay, checks it starts at
//!    that genesis, lists its device as enrolled by the inviter's device,
//!    and that device as active; sends `Sealed(Joined)`; the inviter closes
//!    the mailbox as completed.
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
//! - this module: the invitation, the join, and the enrolment they lead to.
//! - [`channel`]: the messages in the mailbox, sealed under the key the
//!   exchange agreed.

mod channel;

use crate::device::{Device, DeviceError};
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore};
use crate::transport::{Push, RelayConnection, TransportError};
use crate::words::{WORDS, index_of};
pub use channel::Paired;
use channel::{
    INVITER, Invitation, JOINER, Keys, PairMsg, Sealed, commitment, open, receive, seal, send,
};
use cove_shared::membership::EntryBody;
use cove_shared::random::Entropy;
use cove_shared::wire::{Blob, ErrorCode, PairOutcome};
use cove_shared::{DeviceBundle, DeviceId, MembershipLog, OsEntropy, Partner};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::time::Duration;
use tokio::sync::mpsc;
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
    /// The code is not of the form `7-lantern-river`.
    #[error("{0:?} is not a pairing code; it looks like 7-lantern-river")]
    BadCode(String),
    /// The other side did not answer in time.
    #[error("the other device did not answer within 10 minutes")]
    TimedOut,
    /// The partner already has an active device.
    #[error(
        "your partner already has a device in this plan; only one of their own devices can add another"
    )]
    PartnerHasDevice,
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

/// Splits `7-lantern-river` into its nameplate and checks the words.
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

/// The inviting side, once its mailbox is open and the code is known.
pub struct Invite {
    conn: RelayConnection,
    pushes: mpsc::Receiver<Push>,
    nameplate: String,
    code: String,
    /// Taken when the other side's message arrives: SPAKE2 is used once.
    spake: Option<Spake2<Ed25519Group>>,
    message: Vec<u8>,
    partner: Partner,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite").field("nameplate", &self.nameplate).finish_non_exhaustive()
    }
}

impl Invite {
    /// Opens a mailbox on the device's relay and makes the code. With
    /// `own_device`, the new device will be this partner's; otherwise the
    /// other partner's first.
    pub async fn open(device: &Device, own_device: bool) -> Result<Self, PairError> {
        if !device.is_active() {
            return Err(DeviceError::Revoked.into());
        }
        let partner = if own_device { device.partner() } else { device.partner().other() };
        if !own_device && device.membership().active_of(partner).next().is_some() {
            return Err(PairError::PartnerHasDevice);
        }
        let (conn, pushes) = crate::sync::connect(device).await?;
        let nameplate = conn.pair_open().await?;
        // The relay names the mailbox; it is printed and read aloud.
        if !valid_nameplate(&nameplate) {
            return Err(PairError::Protocol("a mailbox name that is not a number"));
        }
        let code = new_code(&nameplate);
        let (spake, message) = Spake2::<Ed25519Group>::start_a(
            &Password::new(code.as_bytes()),
            &Identity::new(INVITER),
            &Identity::new(JOINER),
        );
        Ok(Self { conn, pushes, nameplate, code, spake: Some(spake), message, partner })
    }

    /// The code to read to the other person.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Waits for the other device and enrols it.
    pub async fn complete(mut self, device: &mut Device) -> Result<Paired, PairError> {
        let result = self.run(device).await;
        if let Err(PairError::WrongCode) = result {
            // Burn the code, and tell the other side.
            let _ = self.conn.pair_close(&self.nameplate, PairOutcome::Failed).await;
        }
        result
    }

    async fn run(&mut self, device: &mut Device) -> Result<Paired, PairError> {
        let PairMsg::Commit(commit) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected a commitment"));
        };
        send(&self.conn, &self.nameplate, &PairMsg::Pake(Blob(self.message.clone()))).await?;
        let PairMsg::Pake(theirs) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected a key exchange message"));
        };
        let spake =
            self.spake.take().ok_or(PairError::Protocol("a second key exchange message"))?;
        let shared = Zeroizing::new(spake.finish(&theirs.0).map_err(|_| PairError::WrongCode)?);
        let keys = Keys::new(&self.nameplate, &shared, &self.message, &theirs.0);
        let PairMsg::Confirm(confirm) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected a confirmation"));
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&confirm.0[..], &keys.confirm("joiner")[..])) {
            return Err(PairError::WrongCode);
        }
        send(
            &self.conn,
            &self.nameplate,
            &PairMsg::Confirm(Blob(keys.confirm("inviter").to_vec())),
        )
        .await?;
        let PairMsg::Sealed(sealed) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected the device's keys"));
        };
        let Sealed::Bundle(bundle_bytes) = open(&keys.seal_key("joiner"), "joiner", &sealed.0)?
        else {
            return Err(PairError::Protocol("expected the device's keys"));
        };
        if commitment(&theirs.0, &bundle_bytes.0)[..] != commit.0[..] {
            return Err(PairError::Protocol("keys that differ from what the device committed to"));
        }
        let bundle = DeviceBundle::decode(&bundle_bytes.0)
            .map_err(|_| PairError::Protocol("an invalid device key"))?;

        // Enrol it: the relay must accept the entry before this device keeps it.
        let partner = self.partner;
        crate::sync::publish_entry(device, &self.conn, |d| d.enrolment(partner, &bundle)).await?;
        // So that the new device's first sync brings the whole plan over.
        crate::sync::send_outbox(device, &self.conn).await?;

        let invitation = Invitation {
            plan: device.plan(),
            relay: device.relay().to_owned(),
            genesis: device.membership().genesis(),
            partner: self.partner,
            inviter: Blob(device.secret().bundle().encode()),
        };
        let sealed =
            seal(&keys.seal_key("inviter"), "inviter", &Sealed::Invitation(invitation.clone()))?;
        send(&self.conn, &self.nameplate, &PairMsg::Sealed(sealed)).await?;
        let PairMsg::Sealed(done) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected the device to confirm"));
        };
        let Sealed::Joined = open(&keys.seal_key("joiner"), "joiner", &done.0)? else {
            return Err(PairError::Protocol("expected the device to confirm"));
        };
        // Paired: the new device confirmed under the shared key. The joiner
        // may already have closed the mailbox (or left, which the relay
        // counts as giving up), so closing it here is a courtesy.
        if let Err(error) = self.conn.pair_close(&self.nameplate, PairOutcome::Completed).await {
            tracing::debug!(%error, "the pairing mailbox was already closed");
        }
        Ok(Paired { device: bundle.device, partner: self.partner, safety_code: keys.safety_code() })
    }
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
) -> Result<Joined, PairError> {
    let (mut device, paired, conn) = enrol(home, passphrase, relay, code, name, params).await?;
    // Bring the plan over.
    let sync_error = crate::sync::sync_once(&mut device, &conn).await.err();
    Ok(Joined { device, paired, sync_error })
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
) -> Result<(Device, Paired, RelayConnection), PairError> {
    let (nameplate, code) = parse_code(code)?;
    crate::transport::endpoint(relay).map_err(DeviceError::from)?;
    if home.exists() {
        return Err(DeviceError::AlreadyExists(home.root().display().to_string()).into());
    }
    let keystore = Keystore::create(passphrase, params).map_err(DeviceError::from)?;
    let result = enrol_in(home, keystore, relay, &nameplate, &code, name).await;
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
}

async fn enrol_in(
    home: &Home,
    keystore: Keystore,
    relay: &str,
    nameplate: &str,
    code: &str,
    name: &str,
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
    send(
        &conn,
        &nameplate,
        &PairMsg::Sealed(seal(
            &keys.seal_key("joiner"),
            "joiner",
            &Sealed::Bundle(bundle.clone()),
        )?),
    )
    .await?;
    let PairMsg::Sealed(sealed) = receive(&mut pushes, &nameplate).await? else {
        return Err(PairError::Protocol("expected an invitation"));
    };
    let Sealed::Invitation(invitation) = open(&keys.seal_key("inviter"), "inviter", &sealed.0)?
    else {
        return Err(PairError::Protocol("expected an invitation"));
    };
    // The membership log, pinned to the genesis the inviter vouched for.
    let entries = conn.fetch_membership(invitation.plan, 0).await.map_err(DeviceError::from)?;
    let log = MembershipLog::decode(entries.iter().map(Vec::as_slice), Some(invitation.genesis))
        .map_err(DeviceError::from)?;
    let me = keystore.device().id();
    if !confirms(&log, &invitation, me) {
        return Err(PairError::Protocol("an invitation the plan's membership does not confirm"));
    }
    let mut device = Device::join(home, keystore, relay, log, invitation.partner, name).await?;
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
