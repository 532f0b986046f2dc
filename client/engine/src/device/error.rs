//! What can go wrong on a device, in sentences a person can act on.

use crate::documents::DocError;
use crate::keystore::KeystoreError;
use crate::localdb::LocalError;
use cove_shared::Partner;
use cove_shared::envelope::SealError;
use cove_shared::membership::MembershipError;

/// Something a person asked for could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The keystore could not be opened or saved.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The local database failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// A device already lives in this state directory.
    #[error("a Cove device already lives in {0}")]
    AlreadyExists(String),
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}: {error}")]
    Home {
        /// The directory.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// Setting this device up (a new plan, or joining one) stopped half way.
    #[error("this device was not set up completely")]
    Incomplete,
    /// The local database was written by a version of Cove that keeps its
    /// state in another layout.
    #[error(
        "this device's data was saved by another version of Cove (local format {found}; this version reads format {expected}), so this version cannot use it and changed nothing; the version that saved it can export the plan and the journal",
        expected = super::LOCAL_FORMAT
    )]
    OtherFormat {
        /// The layout the database is in.
        found: u32,
    },
    /// This device has been removed from the plan.
    #[error(
        "this device has been removed from the plan; it can still show what it had, but can no longer sync or change anything"
    )]
    Revoked,
    /// The edit would change the other partner's document.
    #[error(
        "this is {name}'s: only {name}'s own devices can change their needs, boundaries, preferences and answers"
    )]
    NotYours {
        /// Whose it is.
        partner: Partner,
        /// Their name, as the plan has it.
        name: String,
    },
    /// A document operation failed.
    #[error(transparent)]
    Doc(Box<DocError>),
    /// The membership log refused an entry.
    #[error("the membership change was refused: {0}")]
    Membership(#[from] MembershipError),
    /// No key for the current epoch.
    #[error(
        "this device does not hold the plan's current key; sync, and if that does not help, pair this device again"
    )]
    NoKey,
    /// The change is too large for one envelope.
    #[error("the change is too large to send ({0})")]
    TooLarge(#[from] SealError),
    /// The relay address is not usable.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// The relay does not hold the plan any more.
    #[error(
        "the relay no longer holds this plan (it was deleted there, or this is a different relay); this device keeps its copy"
    )]
    PlanGone,
    /// This device's state is older than what it already sent.
    #[error(
        "this device's state is older than what it has already sent (it was restored from an older copy), so it will not send anything more; it must be removed from the plan and paired again"
    )]
    StateBehind,
    /// The input is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A change to the plan could not be made.
    #[error(transparent)]
    Plan(#[from] crate::plan::write::PlanError),
}

impl DeviceError {
    /// Whether the relay (or the log) said this device is no longer in the
    /// plan. The relay's word is a hint: the signed log, which a removed
    /// device may still read up to its removal, is what settles it.
    pub fn is_removal(&self) -> bool {
        use crate::transport::TransportError as T;
        matches!(
            self,
            Self::Revoked
                | Self::Transport(T::Revoked)
                | Self::Transport(T::Refused { code: cove_shared::wire::ErrorCode::Revoked, .. })
        )
    }
}

impl From<DocError> for DeviceError {
    fn from(error: DocError) -> Self {
        Self::Doc(Box::new(error))
    }
}

impl From<automerge::AutomergeError> for DeviceError {
    fn from(error: automerge::AutomergeError) -> Self {
        Self::Doc(Box::new(DocError::Automerge(error)))
    }
}
