//! `cove-server`: the relay. It stores and forwards sealed envelopes for
//! many plans and never holds a key.
//!
//! # Layout
//! - [`settings`]: layered configuration.
//! - [`store`]: the `Store` trait and its SQLite and PostgreSQL backends.
//! - [`events`]: what relay processes sharing a database tell each other.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod events;
pub mod settings;
pub mod store;

/// The protocol version this relay speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;
