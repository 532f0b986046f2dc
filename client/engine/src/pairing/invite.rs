//! The inviting side: open a mailbox, agree a key with the joiner, let a
//! person compare the safety code, and only then enrol the new device.

use super::channel::{
    Enrolled, INVITER, Invitation, JOINER, Joining, Keys, PairMsg, Sealed, commitment, open,
    receive, seal, send,
};
use super::{PairError, Paired, new_code, valid_nameplate};
use crate::device::{Device, DeviceError};
use crate::transport::{Push, RelayConnection};
use cove_shared::wire::{Blob, PairOutcome};
use cove_shared::{Certificate, DeviceBundle, Partner, PartnerIdentity};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

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
    own: bool,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite").field("nameplate", &self.nameplate).finish_non_exhaustive()
    }
}

/// A joiner whose key is confirmed, waiting for a person to compare the
/// safety code. Nothing has been wrapped for it yet.
pub struct Meeting {
    invite: Invite,
    keys: Keys,
    bundle: DeviceBundle,
    identity: PartnerIdentity,
    certificate: Certificate,
    paired: Paired,
}

impl std::fmt::Debug for Meeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meeting").field("paired", &self.paired).finish_non_exhaustive()
    }
}

impl Invite {
    /// Opens a mailbox on the device's relay and makes the code. With
    /// `own_device`, the new device will be this partner's, certified by
    /// the identity this device holds; otherwise it is the other partner's
    /// first, and brings that partner's new identity.
    pub async fn open(device: &Device, own_device: bool) -> Result<Self, PairError> {
        if !device.is_active() {
            return Err(DeviceError::Revoked.into());
        }
        let partner = if own_device { device.partner() } else { device.partner().other() };
        if own_device && device.identity().is_none() {
            return Err(PairError::NoIdentity);
        }
        if !own_device {
            let state = device.membership();
            if state.has_left(partner) {
                return Err(PairError::PartnerLeft);
            }
            if state.identity(partner).is_some() {
                return Err(PairError::PartnerHasIdentity);
            }
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
        Ok(Self {
            conn,
            pushes,
            nameplate,
            code,
            spake: Some(spake),
            message,
            partner,
            own: own_device,
        })
    }

    /// The code to read to the other person.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Waits for the other device and agrees a key with it: after this,
    /// both screens can show the safety code. Nothing is shared with the
    /// joiner but the plan's id and this device's public keys.
    pub async fn meet(mut self, device: &Device) -> Result<Meeting, PairError> {
        let result = self.exchange(device).await;
        if let Err(PairError::WrongCode) = result {
            // Burn the code, and tell the other side.
            let _ = self.conn.pair_close(&self.nameplate, PairOutcome::Failed).await;
        }
        let (keys, bundle, identity, certificate) = result?;
        let paired = Paired {
            device: bundle.device,
            partner: self.partner,
            safety_code: keys.safety_code(),
        };
        Ok(Meeting { invite: self, keys, bundle, identity, certificate, paired })
    }

    /// Meets the joiner and admits it without asking a person: for scripts
    /// (`--yes`) and tests.
    pub async fn complete(self, device: &mut Device) -> Result<Paired, PairError> {
        let meeting = Box::pin(self.meet(device)).await?;
        Box::pin(meeting.admit(device)).await
    }

    async fn exchange(
        &mut self,
        device: &Device,
    ) -> Result<(Keys, DeviceBundle, PartnerIdentity, Certificate), PairError> {
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
        let invitation = Invitation {
            plan: device.plan(),
            relay: crate::transport::tls::shareable(device.relay()),
            genesis: device.membership().genesis(),
            partner: self.partner,
            own: self.own,
            inviter: Blob(device.secret().bundle().encode()),
        };
        let sealed = seal(&keys.seal_key("inviter"), "inviter", &Sealed::Invitation(invitation))?;
        send(&self.conn, &self.nameplate, &PairMsg::Sealed(sealed)).await?;

        let PairMsg::Sealed(sealed) = receive(&mut self.pushes, &self.nameplate).await? else {
            return Err(PairError::Protocol("expected the device's keys"));
        };
        let Sealed::Device(joining) = open(&keys.seal_key("joiner"), "joiner", &sealed.0)? else {
            return Err(PairError::Protocol("expected the device's keys"));
        };
        let Joining { bundle, identity, certificate } = joining;
        if commitment(&theirs.0, &bundle.0)[..] != commit.0[..] {
            return Err(PairError::Protocol("keys that differ from what the device committed to"));
        }
        let bundle = DeviceBundle::decode(&bundle.0)
            .map_err(|_| PairError::Protocol("an invalid device key"))?;
        let (identity, certificate) = if self.own {
            let mine = device.identity().ok_or(PairError::NoIdentity)?;
            let genesis = device.membership().genesis();
            (mine.public(), mine.certify(device.plan(), genesis, self.partner, bundle.device))
        } else {
            let identity = identity
                .and_then(|b| PartnerIdentity::decode(&b.0).ok())
                .ok_or(PairError::Protocol("no valid identity for the new partner"))?;
            let certificate = certificate
                .and_then(|b| Certificate::decode(&b.0).ok())
                .ok_or(PairError::Protocol("no valid certificate for the new device"))?;
            (identity, certificate)
        };
        // Check now that the log would take it, so that a person is never
        // asked to confirm a pairing that cannot complete.
        device
            .enrolment(self.partner, &bundle, &identity, &certificate)
            .map_err(|_| PairError::Protocol("a device the plan's rules would refuse"))?;
        Ok((keys, bundle, identity, certificate))
    }
}

impl Meeting {
    /// What a person compares: the new device and the safety code.
    pub fn paired(&self) -> &Paired {
        &self.paired
    }

    /// The person confirmed that both screens show the same code: enrol the
    /// device (wrapping every epoch key for it), then tell it so.
    pub async fn admit(self, device: &mut Device) -> Result<Paired, PairError> {
        let Self { mut invite, keys, bundle, identity, certificate, paired } = self;
        let partner = invite.partner;
        // The relay must accept the entry before this device keeps it.
        crate::sync::publish_entry(device, &invite.conn, |d| {
            d.enrolment(partner, &bundle, &identity, &certificate)
        })
        .await?;
        // So that the new device's first sync brings the whole plan over.
        crate::sync::send_outbox(device, &invite.conn).await?;
        let seed = match (invite.own, device.identity_seed()) {
            (true, Some(seed)) => Some(Blob(seed.to_vec())),
            _ => None,
        };
        let mut enrolled = Sealed::Enrolled(Enrolled { seed });
        let sealed = seal(&keys.seal_key("inviter"), "inviter", &enrolled);
        if let Sealed::Enrolled(Enrolled { seed: Some(seed) }) = &mut enrolled {
            zeroize::Zeroize::zeroize(&mut seed.0);
        }
        send(&invite.conn, &invite.nameplate, &PairMsg::Sealed(sealed?)).await?;
        let PairMsg::Sealed(done) = receive(&mut invite.pushes, &invite.nameplate).await? else {
            return Err(PairError::Protocol("expected the device to confirm"));
        };
        let Sealed::Joined = open(&keys.seal_key("joiner"), "joiner", &done.0)? else {
            return Err(PairError::Protocol("expected the device to confirm"));
        };
        // Paired: the new device confirmed under the shared key. The joiner
        // may already have closed the mailbox (or left, which the relay
        // counts as giving up), so closing it here is a courtesy.
        if let Err(error) = invite.conn.pair_close(&invite.nameplate, PairOutcome::Completed).await
        {
            tracing::debug!(%error, "the pairing mailbox was already closed");
        }
        Ok(paired)
    }

    /// The person saw different codes: close the mailbox as failed. No key
    /// was wrapped for the joiner and no device was added.
    pub async fn refuse(self) -> Result<(), PairError> {
        self.invite.conn.pair_close(&self.invite.nameplate, PairOutcome::Failed).await?;
        Ok(())
    }
}
