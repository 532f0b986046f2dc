//! The membership log: who belongs to a plan, as a hash-chained list of
//! entries that member devices sign.
//!
//! Every device replays the whole chain and trusts nothing else for keys: the
//! relay keeps its own registry for routing, but a device decides who may
//! write, and which partner a device speaks for, from this log alone. A
//! device also pins its plan's genesis hash (learned when it was paired), so
//! a relay cannot substitute a different chain. The log also pins each
//! partner's identity ([`crate::identity`]): a device is admitted for a
//! partner only with that identity's certificate.
//!
//! # Wire format of an entry
//! ```text
//! offset  size  field
//!      0     4  magic "CVML"
//!      4     1  version, 0x01
//!      5     1  kind: 0 genesis, 1 add device, 2 revoke device, 3 rotate
//!               epoch, 4 partner key
//!      6    16  plan id
//!     22     8  index in the log, u64 big-endian, genesis is 0
//!     30    32  hash of the previous entry (zeros for genesis)
//!     62    32  signer: a member device, or (a recovery) a partner identity
//!     94     4  body length n, u32 big-endian
//!     98     n  body (below)
//!   98+n    64  Ed25519 signature by the signing device over bytes [0, 98+n)
//! ```
//! An entry's hash is SHA-256 of all its bytes, signature included.
//!
//! Bodies (wraps are 257-byte [`KeyWrap`]s, devices are 133-byte
//! [`DeviceBundle`]s, identities 133-byte [`crate::PartnerIdentity`]s,
//! certificates 182-byte [`crate::Certificate`]s, key ids 32 bytes, counts
//! u16 big-endian):
//! - genesis: creator bundle ‖ identity ‖ certificate ‖ key id of epoch 1 ‖
//!   count ‖ wraps of epoch 1's key for the creator, then for the identity
//! - add device: partner (u8: 0 A, 1 B) ‖ bundle ‖ identity ‖ certificate ‖
//!   count ‖ wraps of every epoch key so far, epochs 1..=current in order,
//!   for the new device; then the same for the identity if this entry pins it
//! - revoke device: device id (32) ‖ cutoff count (u8) ‖ cutoffs, each doc
//!   (u8) ‖ seq (u64) ‖ envelope hash (32), in ascending doc order ‖ epoch
//!   (u32) ‖ key id ‖ count ‖ wraps. Revoking another device starts epoch
//!   current + 1, with the new key wrapped for every remaining recipient
//!   (active devices in ascending id, then the live partner identities, A
//!   first). A device revoking itself names the current epoch, an all-zero
//!   key id and no wraps: it already holds the current key, so it cannot
//!   hand out a new one; another device must rotate.
//! - rotate epoch: new epoch (u32) ‖ key id ‖ count ‖ wraps as for revoke
//! - partner key: partner (u8) ‖ 0 (retire) | 1 (rotate) ‖ identity ‖
//!   certificate (by the new identity, for the signer) ‖ count ‖ wraps of
//!   every epoch key so far for the new identity
//!
//! # Rules a verifier enforces
//! - Entry `i` has index `i` and names the hash of entry `i - 1`; genesis is
//!   entry 0 and only entry 0. Two different entries at one index are a fork.
//! - The signature verifies, and the signer is an active member device; the
//!   one exception is an add-device entry signed by the live identity of the
//!   partner it adds a device for (a recovery). Genesis is signed by the
//!   creator it introduces, and pins partner A's identity.
//! - A device is added once, ever, and only with a certificate by its
//!   partner's identity: the pinned one, or (partner B's first device) the
//!   one the entry pins. Either partner's device may carry an enrolment;
//!   only the partner's own identity can make one.
//! - Revoking another device starts a new epoch, wrapped only for the
//!   recipients that remain. The last active device cannot be revoked.
//! - A partner's own device may give them a new identity; a partner leaves
//!   (retires their identity) from their own device, or is removed by the
//!   other partner once none of their devices remains. A retired partner
//!   never has a device or an identity in the plan again.
//! - Every wrap names this plan, the right epoch, the right recipient and the
//!   signer as wrapper, and carries the wrapper's valid signature.
//! - A revoked device is heard only for `changes` envelopes in a document's
//!   stream up to that document's cutoff, sealed with a membership view from
//!   before its revocation; and the stream must end exactly at the cutoff's
//!   hash (see [`crate::freshness::revoked_run`]).
//!
//! # Layout
//! - [`entry`]: one signed entry, its body and its encoding.
//! - [`state`]: the membership at one point in the chain, and the rules
//!   that move it on by one entry.
//! - [`identities`]: the partner identities in it, and the rules for them.
//! - [`log`]: the verified chain, and making the entries a device signs.

mod entry;
mod identities;
mod log;
mod state;

pub use entry::{Entry, EntryBody, IdentityChange};
pub use identities::{Identity, IdentityEnd};
pub use log::{Appended, MembershipLog};
pub use state::{Member, MembershipState, Revocation};

use crate::codec::DecodeError;
use crate::envelope::EnvelopeHash;
use crate::ids::{DocId, Seq};
use crate::wrap::WrapError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Magic of a membership entry.
pub const ENTRY_MAGIC: &[u8; 4] = b"CVML";
/// The largest entry any peer accepts.
pub const MAX_ENTRY_LEN: usize = 256 * 1024;
/// The most devices a plan can have at once.
pub const MAX_ACTIVE_DEVICES: usize = 16;
/// The most devices a plan can ever enrol, revoked ones included.
pub const MAX_DEVICES_EVER: usize = 256;
const FIXED_LEN: usize = 98;

/// Names one entry: SHA-256 of its full encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct EntryHash(pub [u8; 32]);

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({})", crate::codec::to_hex(&self.0[..8]))
    }
}

/// The membership log as one device knew it: how many entries, and the hash
/// of the last. Every envelope carries its sender's view, so that a
/// receiver can tell which epoch the sender had to use and notice a relay
/// that shows different logs to different devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MembershipView {
    /// Entries in the log.
    pub len: u32,
    /// Hash of the last entry.
    pub head: EntryHash,
}

/// The last envelope a revocation still accepts from the revoked device in
/// one document's `changes` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// The document.
    pub doc: DocId,
    /// The last accepted sequence number.
    pub seq: Seq,
    /// That envelope's hash: the accepted stream must end exactly here.
    pub hash: EnvelopeHash,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The entry did not decode or its signature did not verify.
    #[error("malformed membership entry: {0}")]
    Malformed(#[from] DecodeError),
    /// The entry names another plan.
    #[error("membership entry belongs to another plan")]
    WrongPlan,
    /// The chain does not start at the genesis this device was paired into.
    #[error("the membership log does not start at this plan's genesis")]
    WrongGenesis,
    /// The entry is not the next one in the chain.
    #[error("membership entry {got} does not follow entry {expected_prev} of the chain")]
    OutOfOrder {
        /// The entry's index.
        got: u64,
        /// The index the next entry must follow.
        expected_prev: u64,
    },
    /// A different entry already holds this index.
    #[error("membership log fork at entry {index}")]
    Fork {
        /// Where the chains diverge.
        index: u64,
    },
    /// The signer is not a member of the plan.
    #[error("membership entry signed by a device that is not a member")]
    NotMember,
    /// The signer has been revoked.
    #[error("membership entry signed by a revoked device")]
    SignerRevoked,
    /// The entry breaks one of the log's rules.
    #[error("membership entry not allowed: {0}")]
    NotAllowed(&'static str),
    /// The entry's key wraps are not exactly the ones it must carry.
    #[error("membership entry carries the wrong key wraps")]
    BadWraps,
    /// A key could not be wrapped for a device.
    #[error("cannot wrap a key: {0}")]
    Wrap(#[from] WrapError),
}
