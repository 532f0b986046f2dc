//! `cove-tests`: end-to-end scenarios, golden wire vectors, adversarial
//! relays and load generators for Cove.
//!
//! # Layout
//! - [`vectors`]: building and checking the golden vectors in `tests/vectors/`.

#![forbid(unsafe_code)]

pub mod vectors;
