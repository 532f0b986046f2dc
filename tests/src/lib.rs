//! `cove-tests`: end-to-end scenarios, golden wire vectors, adversarial
//! relays and load generators for Cove.
//!
//! # Layout
//! - [`vectors`]: building and checking the golden vectors in `tests/vectors/`.
//! - [`harness`]: relays in-process and as processes, databases, a plan fixture.
//! - [`cli`]: the `cove` binary, run as a person at a terminal runs it.
//! - [`devices`]: real devices, paired and edited through the client library.
//! - [`proxy`]: a misbehaving relay between a device and a real one.
//! - [`web`]: an HTTP client for `cove ui`, and a minimal WebDriver client.

#![forbid(unsafe_code)]

pub mod cli;
pub mod devices;
pub mod harness;
pub mod proxy;
pub mod vectors;
pub mod web;
