//! `cove-tests`: end-to-end scenarios, golden wire vectors, adversarial
//! relays and load generators for Cove.
//!
//! # Layout
//! - [`vectors`]: building and checking the golden vectors in `tests/vectors/`.
//! - [`harness`]: relays in-process and as processes, databases, a plan fixture.

#![forbid(unsafe_code)]

pub mod harness;
pub mod vectors;
