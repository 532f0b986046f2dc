//! `cove-client`: what each partner runs. The device issue builds it out.
//!
//! # Layout
//! Only the crate root exists so far.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;
