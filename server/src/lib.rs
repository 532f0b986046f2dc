//! `cove-server`: the relay. It stores and forwards sealed envelopes for
//! many plans and never holds a key; the relay issue builds it out.
//!
//! # Layout
//! Only the crate root exists so far.

#![forbid(unsafe_code)]

/// The protocol version this relay speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;
