//! `cove-client`: what each partner runs. The device issue builds it out;
//! so far it holds the connection to a relay.
//!
//! # Layout
//! - [`transport`]: an authenticated WebSocket connection to a relay.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod transport;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;
