//! `cove-client`: what each partner runs. It keeps the plan on the device,
//! encrypted at rest, and syncs it through the couple's relay.
//!
//! # Layout
//! - [`home`]: the state directory.
//! - [`human`]: words for times, as either face shows them.
//! - [`keystore`]: secret keys, sealed with the passphrase (Argon2id).
//! - [`localdb`]: the local database, every value sealed.
//! - [`documents`]: the plan's Automerge documents and verified changes.
//! - [`payload`]: what envelopes carry once opened.
//! - [`device`]: an unlocked device: edits, the outbox, receiving,
//!   membership.
//! - [`sync`]: the sync engine and the daemon loop.
//! - [`pairing`]: SPAKE2 pairing with a short code; [`words`]: its word list.
//! - [`recovery`]: a new device from a partner's recovery phrase.
//! - [`transport`]: an authenticated WebSocket connection to a relay.
//! - [`plan`]: the aftercare plan: schema, typed reads and writes, merge rules.
//! - [`journal`]: private notes that never leave the device.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod device;
pub mod documents;
pub mod errors;
pub mod home;
pub mod human;
pub mod journal;
pub mod keystore;
pub mod localdb;
pub mod pairing;
pub mod payload;
pub mod plan;
pub mod recovery;
pub mod sync;
pub mod transport;
pub mod words;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;
