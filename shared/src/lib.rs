//! `cove-shared`: everything a Cove device and a Cove relay must agree on,
//! and nothing that needs an async runtime, a database or a web framework.
//!
//! Cove keeps one shared aftercare plan for two partners, on each partner's
//! own devices, synced through a relay that only ever sees ciphertext. This
//! crate defines what crosses the wire and how it is protected: identifiers,
//! device and epoch keys, the sealed envelope, key wraps, the membership log
//! that says who may write, per-sender freshness, and the relay protocol.
//!
//! The byte-level formats are specified in `docs/protocol.md`, and golden
//! vectors under `tests/vectors/` pin them.
//!
//! # Layout
//! - [`ids`]: plan, device and document ids, epochs, sequence numbers.
//! - [`identity`]: a partner's identity key, device certificates, recovery
//!   proofs.
//! - [`phrase`]: an identity seed as a 24-word recovery phrase.
//! - [`keyring`]: a device's epoch keys and the policy that opens envelopes.
//! - [`keys`]: device identity keys, symmetric keys, the signed device bundle.
//! - [`kdf`]: HKDF labels and the per-epoch subkeys.
//! - [`padding`]: the size buckets plaintexts are padded to.
//! - [`envelope`]: sealing and opening envelopes.
//! - [`wrap`]: epoch keys wrapped for one device.
//! - [`membership`]: the signed, hash-chained membership log and its verifier.
//! - [`freshness`]: replay, gap, fork and rollback detection per sender.
//! - [`wire`]: `ClientToRelay` / `RelayToClient` messages and error codes.
//! - [`codec`]: byte readers and hex.
//! - [`random`]: where randomness comes from.
//! - [`clock`]: where the time comes from.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod clock;
pub mod codec;
pub mod envelope;
pub mod freshness;
pub mod identity;
pub mod ids;
pub mod kdf;
pub mod keyring;
pub mod keys;
pub mod membership;
pub mod padding;
pub mod phrase;
pub mod random;
pub mod tls_pin;
pub mod wire;
pub mod wrap;

/// The version byte of every binary structure in this crate. There is one
/// cipher suite and one version; anything else is rejected, never negotiated.
pub const VERSION: u8 = 1;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use envelope::{
    EnvelopeHash, Header, IntegrityError, Kind, OpenPolicy, Opened, Seal, Sealed, Stream,
};
pub use identity::{Certificate, IdentitySeed, PartnerIdentity, PartnerSecret};
pub use ids::{DeviceId, DocId, Epoch, Partner, PlanId, Seq};
pub use kdf::{EpochKeys, KeyId};
pub use keyring::{Keyring, Recipient};
pub use keys::{DeviceBundle, DeviceSecret, SymmetricKey};
pub use membership::{
    Cutoff, Entry, EntryBody, EntryHash, MembershipError, MembershipLog, MembershipState,
    MembershipView,
};
pub use random::{Entropy, OsEntropy};
pub use wrap::KeyWrap;
