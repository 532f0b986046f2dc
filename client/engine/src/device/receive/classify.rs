//! What one envelope from the relay is, decided without changing anything:
//! a pure function of the envelope and what the device holds (its
//! membership log, keyring, freshness marks and own stream tips). The
//! caller acts on the answer, one envelope at a time, so that the next
//! envelope is judged against what this one changed.
//!
//! The order of checks is the security order: the header's form; this
//! device's own envelopes; the membership the envelope was sealed against;
//! then [`envelope::open`] (membership, signature, key, decryption); only
//! then freshness; and only for what is verified and fresh is the payload
//! parsed.

use super::held::HoldKey;
use crate::documents::decode_changes;
use crate::payload::{AnswerPayload, CheckpointPayload, Payload, SignalPayload};
use automerge::Change;
use cove_shared::envelope::{self, Header};
use cove_shared::freshness::{Freshness, Verdict};
use cove_shared::wire::StoredEnvelope;
use cove_shared::{
    DeviceId, DocId, EnvelopeHash, Keyring, Kind, MembershipState, Recipient, Seq, Stream,
};
use std::collections::BTreeMap;

/// Changes further than this past their stream's tip are not held: they
/// come again, with what is missing before them.
pub const HOLD_WINDOW: u64 = 4096;

/// A checkpoint names at most this many streams (four per device: its
/// `changes` in three documents and its signals); one naming more is
/// refused as unreadable.
pub const MAX_CHECKPOINT_TIPS: usize = 1024;

/// What the device holds that decides what an envelope is.
pub(crate) struct Context<'a> {
    /// This device.
    pub(crate) me: DeviceId,
    /// The verified membership.
    pub(crate) membership: &'a MembershipState,
    /// The epoch keys.
    pub(crate) keyring: &'a Keyring,
    /// Per stream of other devices: how far it was applied.
    pub(crate) freshness: &'a Freshness,
    /// Per stream of this device: how far it has sealed.
    pub(crate) own_tip: &'a dyn Fn(Kind, DocId) -> Seq,
    /// Per document: the cursor the snapshot this device started from
    /// covers (0 when it started from none, or has read past it).
    pub(crate) snapshot_covers: [u64; 3],
    /// For revoked senders: the positions of their envelopes that form a
    /// complete run up to their cutoff (see [`super::held::revoked_runs`]).
    pub(crate) revoked_runs: &'a BTreeMap<Stream, Vec<Seq>>,
}

/// Why an envelope is refused and kept aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its header does not parse.
    Malformed,
    /// Its sender may not write it, its signature or key does not check
    /// out, or it does not decrypt.
    FailedVerification,
    /// It contradicts the snapshot this device started `doc` from.
    OutsideSnapshot(DocId),
    /// It contradicts the sender's earlier envelopes. `alarm`: raise the
    /// fork alarm (not for a revoked device's leftovers).
    Fork { sender: DeviceId, alarm: bool },
    /// Older than what was already seen of its stream.
    Older,
    /// A change not made by its sender, or not a change.
    NotItsChange,
    /// Its content is not what its kind says.
    Unreadable,
    /// Its changes do not apply to the document.
    DoesNotApply,
    /// Its sender signed it against a list of devices that contradicts
    /// this device's: the relay is showing the two different histories.
    Diverged(DeviceId),
}

impl Refusal {
    /// The reason kept with the quarantined envelope.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::FailedVerification => "failed verification",
            Self::OutsideSnapshot(_) => "inside the coverage a snapshot claimed",
            Self::Fork { .. } => "contradicts the sender's earlier envelopes",
            Self::Older => "older than what was already seen",
            Self::NotItsChange => "a change not made by its sender, or not a change",
            Self::Unreadable => "unreadable content",
            Self::DoesNotApply => "changes that do not apply",
            Self::Diverged(_) => "signed against a list of devices that contradicts this one's",
        }
    }
}

/// What a verified, fresh envelope carries.
pub(crate) enum Content {
    /// Changes to a document, each made by the sender.
    Changes(DocId, Vec<Change>),
    /// A signal.
    Signal(SignalPayload),
    /// An answer to a signal.
    Answer(AnswerPayload),
    /// Another device's account of what it holds.
    Checkpoint(CheckpointPayload),
    /// Nothing usable: its position in the stream is used up all the same.
    Refused(Refusal),
}

/// What one envelope is.
pub(crate) enum Class {
    /// Already applied (a replay, a resend, or older than what was seen).
    Duplicate,
    /// Never applied from the log: a snapshot (those are fetched on
    /// purpose), or changes inside the snapshot this device started from.
    NotFromLog,
    /// This device's own. `ahead`: newer than this device remembers
    /// sealing, so its state was restored from an older copy.
    Own { ahead: bool },
    /// Sealed against a longer membership log than this device has: hold
    /// it (with its verified key, if the sender is known) and fetch the log.
    NeedsMembership {
        /// The verified key to hold it under; `None` for an unknown sender.
        hold: Option<HoldKey>,
        /// The length of the log it cites.
        cites: u64,
    },
    /// From a revoked device, and not (yet) in a complete run up to the
    /// revocation's cutoff: hold it.
    AwaitsRun(HoldKey),
    /// Earlier envelopes of its stream are missing: hold it (`None`: too
    /// far ahead to hold) and fetch the stretch again.
    Gap { stream: Stream, missing_from: Seq, hold: Option<HoldKey> },
    /// Refused: quarantine it.
    Refused(Refusal),
    /// Verified and fresh: record it, and take its content.
    Fresh { header: Header, hash: EnvelopeHash, after_gap: bool, content: Content },
}

impl Class {
    /// A short name, for the table of cases.
    #[cfg(test)]
    pub(crate) fn name(&self) -> String {
        let name = match self {
            Self::Duplicate => "duplicate",
            Self::NotFromLog => "not from the log",
            Self::Own { ahead: false } => "own",
            Self::Own { ahead: true } => "own, ahead of this device",
            Self::NeedsMembership { hold: Some(_), .. } => "needs membership",
            Self::NeedsMembership { hold: None, .. } => "needs membership, sender unknown",
            Self::AwaitsRun(_) => "awaits a revoked sender's run",
            Self::Gap { hold: Some(_), .. } => "gap",
            Self::Gap { hold: None, .. } => "gap, too far ahead",
            Self::Refused(r) => r.reason(),
            Self::Fresh { content: Content::Changes(..), .. } => "fresh changes",
            Self::Fresh { content: Content::Signal(_), after_gap: false, .. } => "fresh signal",
            Self::Fresh { content: Content::Signal(_), after_gap: true, .. } => {
                "fresh signal, after a gap"
            }
            Self::Fresh { content: Content::Answer(_), .. } => "fresh answer to a signal",
            Self::Fresh { content: Content::Checkpoint(_), .. } => "fresh checkpoint",
            Self::Fresh { content: Content::Refused(r), .. } => {
                return format!("fresh, but {}", r.reason());
            }
        };
        name.to_owned()
    }
}

fn hold_key(header: &Header, hash: EnvelopeHash) -> HoldKey {
    (header.sender, header.kind.code(), header.doc.code(), header.seq.0, hash.0)
}

/// What `item` is; see the module documentation for the order of checks.
pub(crate) fn classify(cx: &Context<'_>, item: &StoredEnvelope) -> Class {
    let bytes = &item.envelope.0;
    let Ok(header) = envelope::header_of(bytes) else {
        return Class::Refused(Refusal::Malformed);
    };
    if header.sender == cx.me {
        // Only an envelope this device signed counts as ahead.
        let ahead = header.seq > (cx.own_tip)(header.kind, header.doc)
            && header.kind != Kind::Snapshot
            && envelope::inspect(bytes).is_ok();
        return Class::Own { ahead };
    }
    let covered = cx.snapshot_covers[usize::from(header.doc.code())];
    if header.kind == Kind::Changes && item.cursor.0 <= covered {
        // Inside a verified snapshot this device started from: it would
        // never be applied, so verifying it would change nothing.
        return Class::NotFromLog;
    }
    if u64::from(header.view.len) > cx.membership.len() {
        if header.plan != cx.membership.plan() {
            return Class::Refused(Refusal::FailedVerification);
        }
        // Held only once its signature checks out against a key this device
        // knows (a sender it does not know yet is held within a small
        // allowance).
        return match cx.membership.member(&header.sender) {
            Some(member) => {
                match envelope::inspect_with(bytes, |_| member.device.verifying_key()) {
                    Ok((_, hash)) => Class::NeedsMembership {
                        hold: Some(hold_key(&header, hash)),
                        cites: u64::from(header.view.len),
                    },
                    Err(_) => Class::Refused(Refusal::FailedVerification),
                }
            }
            None => Class::NeedsMembership { hold: None, cites: u64::from(header.view.len) },
        };
    }
    let policy = Recipient { membership: cx.membership, keyring: cx.keyring };
    let Ok(opened) = envelope::open(bytes, &policy) else {
        return Class::Refused(refusal_of_unopened(cx, &header, bytes));
    };
    let header = opened.header;
    if header.kind == Kind::Snapshot {
        return Class::NotFromLog;
    }
    let key = hold_key(&header, opened.hash);
    let stream = header.stream();
    if header.kind == Kind::Changes {
        if covered > 0 && cx.freshness.check_tail(&header).is_err() {
            return Class::Refused(Refusal::OutsideSnapshot(header.doc));
        }
        let revoked = cx.membership.member(&header.sender).is_some_and(|m| !m.is_active());
        if revoked && !cx.revoked_runs.get(&stream).is_some_and(|run| run.contains(&header.seq)) {
            return match cx.freshness.classify(&header, opened.hash) {
                Verdict::Duplicate => Class::Duplicate,
                Verdict::Fork => {
                    Class::Refused(Refusal::Fork { sender: header.sender, alarm: false })
                }
                _ => Class::AwaitsRun(key),
            };
        }
    }
    let verdict = cx.freshness.classify(&header, opened.hash);
    let after_gap = match verdict {
        Verdict::Duplicate => return Class::Duplicate,
        Verdict::Rollback { .. } => return Class::Refused(Refusal::Older),
        Verdict::Fork => {
            return Class::Refused(Refusal::Fork { sender: header.sender, alarm: true });
        }
        Verdict::Gap { missing_from } => {
            let tip = cx.freshness.tip(stream).map_or(0, |t| t.seq.0);
            let near = header.seq.0 <= tip.saturating_add(HOLD_WINDOW);
            return Class::Gap { stream, missing_from, hold: near.then_some(key) };
        }
        Verdict::New => false,
        Verdict::NewAfterGap { .. } => true,
    };
    // Verified and fresh: now the payload may be parsed.
    let content = match (header.kind, Payload::decode(&opened.payload)) {
        (Kind::Changes, Some(Payload::Changes(raw))) => {
            let raw: Vec<Vec<u8>> = raw.into_iter().map(|b| b.0).collect();
            match decode_changes(&raw, &header.sender) {
                Ok(changes) => Content::Changes(header.doc, changes),
                Err(_) => Content::Refused(Refusal::NotItsChange),
            }
        }
        (Kind::Signal, Some(Payload::Signal(signal))) => Content::Signal(signal),
        (Kind::Signal, Some(Payload::Answer(answer))) => Content::Answer(answer),
        (Kind::Checkpoint, Some(Payload::Checkpoint(checkpoint)))
            if header.doc == DocId::Shared && checkpoint.tips.len() <= MAX_CHECKPOINT_TIPS =>
        {
            Content::Checkpoint(checkpoint)
        }
        _ => Content::Refused(Refusal::Unreadable),
    };
    Class::Fresh { header, hash: opened.hash, after_gap, content }
}

/// Why an envelope that [`envelope::open`] refused is refused: a member's
/// genuine signature over a list of devices that contradicts this device's
/// is a fork (the sender was shown another history), anything else a
/// failed check.
fn refusal_of_unopened(cx: &Context<'_>, header: &Header, bytes: &[u8]) -> Refusal {
    let Some(member) = cx.membership.member(&header.sender) else {
        return Refusal::FailedVerification;
    };
    let signed = envelope::inspect_with(bytes, |_| member.device.verifying_key()).is_ok();
    if signed && cx.membership.contradicts(header.view) {
        Refusal::Diverged(header.sender)
    } else {
        Refusal::FailedVerification
    }
}
