//! What an envelope carries once opened. Parsed only after the envelope's
//! signature, membership and encryption have all checked out.
//!
//! Each payload is a postcard value of [`Payload`]; the variant must match
//! the envelope's kind.

use cove_shared::DeviceId;
use cove_shared::freshness::StreamTip;
use cove_shared::wire::{Blob, Cursor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An opened envelope's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Automerge changes for the envelope's document, each as raw bytes.
    Changes(Vec<Blob>),
    /// A saved document, and what it covers.
    Snapshot(SnapshotPayload),
    /// A live signal.
    Signal(SignalPayload),
}

/// A snapshot's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPayload {
    /// The relay cursor up to which it covers the document's envelopes.
    pub covers: Cursor,
    /// For each device, the tip of its `changes` stream for this document
    /// that the snapshot includes: where a device starting from it resumes.
    pub coverage: BTreeMap<DeviceId, StreamTip>,
    /// The saved Automerge document.
    pub document: Blob,
}

/// A signal between partners ("pause", "need space", "check on me").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalPayload {
    /// Which signal: a built-in name or the id of one the couple defined.
    pub signal: String,
    /// When it was sent, in Unix milliseconds (the sender's clock).
    pub sent_at: i64,
    /// After this, it is stale and is not shown as live.
    pub expires_at: i64,
}

impl Payload {
    /// The encoded form.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding owned, bounded values into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a payload; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match postcard::take_from_bytes(bytes) {
            Ok((payload, [])) => Some(payload),
            _ => None,
        }
    }
}
