//! `recover`: a partner who lost every device, or forgot the passphrase,
//! makes a new device from their recovery phrase alone.
//!
//! The phrase gives back the partner's identity. The new device proves to
//! the relay that it acts for that identity, reads the plan's membership
//! log, and finds there every epoch key wrapped for the identity. The
//! identity then signs the entry that enrols the new device, with every
//! epoch key wrapped for it, and the device syncs the whole plan. The other
//! partner's help is not needed, and their consent is not asked: a
//! partner's own devices are theirs to add.
//!
//! With no earlier state, the device cannot pin the plan's genesis; what it
//! relies on instead is that the log pins this identity, which only the
//! identity's own certificate (naming that genesis) can do. See
//! `docs/security.md` for what a relay can still do to a recovering device.

use crate::device::{Device, DeviceError};
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore};
use crate::transport::{RelayConnection, TransportError};
use cove_shared::phrase::{self, PhraseError};
use cove_shared::wire::ErrorCode;
use cove_shared::{Keyring, MembershipLog, OsEntropy, Partner, PartnerSecret};

/// Recovery did not complete. Nothing is left behind on this device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// The phrase is not a valid recovery phrase.
    #[error("{0}; nothing was created")]
    Phrase(#[from] PhraseError),
    /// No plan on this relay knows the phrase's identity.
    #[error(
        "no plan on the relay at {0} belongs to this recovery phrase, so nothing was created; check the relay address and the words (a phrase replaced by a newer one, or whose partner left the plan, recovers nothing)"
    )]
    NoPlan(String),
    /// A device-level failure.
    #[error(transparent)]
    Device(Box<DeviceError>),
}

impl From<DeviceError> for RecoverError {
    fn from(error: DeviceError) -> Self {
        Self::Device(Box::new(error))
    }
}

impl From<TransportError> for RecoverError {
    fn from(error: TransportError) -> Self {
        Self::Device(Box::new(DeviceError::Transport(error)))
    }
}

/// Makes a device in `home` for the partner whose recovery `phrase` this
/// is, enrols it in their plan on `relay`, and brings the plan over.
pub async fn recover(
    home: &Home,
    passphrase: &str,
    relay: &str,
    phrase: &str,
    name: &str,
    params: KdfParams,
) -> Result<Recovered, RecoverError> {
    // Everything that can be checked without the relay, first.
    let seed = phrase::decode(phrase)?;
    crate::transport::endpoint(relay).map_err(DeviceError::from)?;
    if home.exists() {
        return Err(DeviceError::AlreadyExists(home.root().display().to_string()).into());
    }
    let identity = PartnerSecret::from_seed(&seed)
        .ok_or(DeviceError::Invalid("this recovery phrase gives unusable keys".into()))?;
    let keystore = Keystore::create(passphrase, params).map_err(DeviceError::from)?;
    let result = Box::pin(recover_in(home, keystore, relay, &identity, &seed, name)).await;
    if result.is_err() {
        let _ = home.wipe();
    }
    result
}

async fn recover_in(
    home: &Home,
    keystore: Keystore,
    relay: &str,
    identity: &PartnerSecret,
    seed: &cove_shared::IdentitySeed,
    name: &str,
) -> Result<Recovered, RecoverError> {
    let me = keystore.device().id();
    let (conn, _pushes) = RelayConnection::connect(relay, keystore.device()).await?;
    let plan = match conn.recover(identity.key(), identity.recovery_proof(&me)).await {
        Ok(plan) => plan,
        Err(error) if error.code() == Some(ErrorCode::NotFound) => {
            return Err(RecoverError::NoPlan(relay.to_owned()));
        }
        Err(error) => return Err(error.into()),
    };
    let entries = conn.fetch_membership(plan, 0).await?;
    let mut log = MembershipLog::decode(entries.iter().map(Vec::as_slice), None)
        .map_err(DeviceError::from)?;
    let partner = [Partner::A, Partner::B]
        .into_iter()
        .find(|p| log.state().live_identity(*p).is_some_and(|i| i.key == identity.key()))
        .ok_or_else(|| RecoverError::NoPlan(relay.to_owned()))?;
    let ring = Keyring::from_log(&log, identity.as_signer());
    let entry = log
        .recover(identity, partner, &keystore.device().bundle(), |e| ring.key(e), &mut OsEntropy)
        .map_err(DeviceError::from)?;
    conn.append_membership(plan, entry.encode()).await?;
    log.append(entry).map_err(DeviceError::from)?;
    let mut device = Device::join(home, keystore, relay, log, partner, name, seed).await?;
    device.mark_ready().await?;
    let sync_error = Box::pin(crate::sync::sync_once(&mut device, &conn)).await.err();
    Ok(Recovered { device, partner, sync_error })
}

/// A recovered device, and whether its first sync worked.
#[derive(Debug)]
pub struct Recovered {
    /// The new device.
    pub device: Device,
    /// The partner it speaks for.
    pub partner: Partner,
    /// The first sync's failure, if it failed: `cove sync` finishes it.
    pub sync_error: Option<DeviceError>,
}
