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
    /// A device's account of what it holds.
    Checkpoint(CheckpointPayload),
    /// A partner's answer to a signal: in a `signal` envelope.
    Answer(AnswerPayload),
}

/// A partner's answer to one signal of the other partner's, so that the
/// sender sees it was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPayload {
    /// The device that sent the signal.
    pub to: DeviceId,
    /// The signal's `sent_at`, which names it among that device's signals.
    pub sent_at: i64,
    /// The answer.
    pub answer: Answer,
    /// When it was given, in Unix milliseconds (the answering clock).
    pub at: i64,
}

/// How a partner answered a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Taken in, and acted on ("I have stopped", "I'm here").
    Acknowledged,
    /// Put away without acting on it.
    Dismissed,
}

/// A checkpoint's content: what its sender held when it made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPayload {
    /// When it was made, in Unix milliseconds (the sender's clock).
    pub made_at: i64,
    /// The relay cursor up to which the sender had read the plan's log.
    pub read_through: Cursor,
    /// The tip of every `changes` and `signal` stream the sender holds, its
    /// own included (its own only as far as the relay has acknowledged
    /// them), in ascending (device, kind, doc) order.
    pub tips: Vec<TipClaim>,
}

/// One stream's tip, as a checkpoint states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipClaim {
    /// The stream's sender.
    pub device: DeviceId,
    /// The stream's kind code (1 changes, 3 signal).
    pub kind: u8,
    /// The stream's document code.
    pub doc: u8,
    /// Its tip: the highest sequence number held, and that envelope's hash.
    pub tip: StreamTip,
}

impl TipClaim {
    /// The stream it is about, if its codes name one.
    pub fn stream(&self) -> Option<cove_shared::Stream> {
        Some(cove_shared::Stream {
            sender: self.device,
            kind: cove_shared::Kind::from_code(self.kind)?,
            doc: cove_shared::DocId::from_code(self.doc)?,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The example docs/protocol.md §10 gives for an answer.
    #[test]
    fn an_answer_encodes_as_the_protocol_says() {
        let answer = Payload::Answer(AnswerPayload {
            to: DeviceId::from_bytes([0x11; 32]).unwrap(),
            sent_at: 1000,
            answer: Answer::Acknowledged,
            at: 2000,
        });
        let mut expected = vec![0x04, 0x20];
        expected.extend([0x11; 32]);
        expected.extend([0xd0, 0x0f, 0x00, 0xa0, 0x1f]);
        assert_eq!(answer.encode(), expected);
        assert_eq!(Payload::decode(&expected), Some(answer));
    }
}
