//! The messages: what a device asks of the relay, and what the relay
//! answers or pushes. Variants are numbered by position and only ever
//! appended.

use super::{
    Blob, Cursor, ErrorCode, Nonce32, PairOutcome, RequestId, Signature64, StoredEnvelope,
    StoredSnapshot,
};
use crate::ids::{DeviceId, DocId, PlanId};
use serde::{Deserialize, Serialize};

/// Messages from a device to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientToRelay {
    /// 0. Answers the relay's challenge.
    Authenticate {
        /// The device authenticating.
        device: DeviceId,
        /// Signature over [`auth_message`].
        signature: Signature64,
    },
    /// 1. Registers a new plan from its signed genesis entry.
    CreatePlan {
        /// Echoed in the response.
        request: RequestId,
        /// The genesis membership entry.
        genesis: Blob,
    },
    /// 2. Appends a signed membership entry (add, revoke or rotate).
    AppendMembership {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The entry.
        entry: Blob,
    },
    /// 3. Asks for membership entries from index `from` on.
    FetchMembership {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The first index wanted.
        from: u64,
    },
    /// 4. Stores one sealed envelope (`changes` or `signal`).
    Push {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The envelope; its sender must be the authenticated device.
        envelope: Blob,
    },
    /// 5. Asks for stored envelopes after a cursor, one page at a time.
    Fetch {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// Only envelopes with a greater cursor are returned.
        after: Cursor,
        /// At most this many (capped at [`MAX_PAGE_ITEMS`]).
        limit: u32,
    },
    /// 6. Asks for live delivery of the plan's new envelopes on this connection.
    Subscribe {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
    },
    /// 7. Records that this device has durably applied everything up to `cursor`.
    Ack {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The highest cursor applied.
        cursor: Cursor,
    },
    /// 8. Stores a sealed snapshot of one document.
    PutSnapshot {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The snapshot covers that document's envelopes up to this cursor.
        covers: Cursor,
        /// The sealed `snapshot` envelope.
        envelope: Blob,
    },
    /// 9. Asks for the newest snapshot of one document.
    GetSnapshot {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The document.
        doc: DocId,
    },
    /// 10. Deletes the plan and everything stored for it.
    DeletePlan {
        /// Echoed in the response.
        request: RequestId,
        /// The plan.
        plan: PlanId,
    },
    /// 11. Opens a pairing mailbox; the relay answers with its nameplate.
    PairOpen {
        /// Echoed in the response.
        request: RequestId,
    },
    /// 12. Joins the pairing mailbox with this nameplate.
    PairJoin {
        /// Echoed in the response.
        request: RequestId,
        /// The nameplate the other device shows.
        nameplate: String,
    },
    /// 13. Sends a message to the other side of a pairing mailbox.
    PairSend {
        /// Echoed in the response.
        request: RequestId,
        /// The mailbox.
        nameplate: String,
        /// The message, opaque to the relay.
        body: Blob,
    },
    /// 14. Closes a pairing mailbox with an outcome.
    PairClose {
        /// Echoed in the response.
        request: RequestId,
        /// The mailbox.
        nameplate: String,
        /// How it ended.
        outcome: PairOutcome,
    },
    /// 15. Keeps an idle connection open.
    Ping {
        /// Echoed in the response.
        request: RequestId,
    },
    /// 16. Proves that this (not yet enrolled) device acts for a partner identity.
    ///
    /// It may then read that plan's membership and enrol itself: a recovery
    /// with the partner's recovery phrase.
    Recover {
        /// Echoed in the response.
        request: RequestId,
        /// The partner identity's public key.
        identity: DeviceId,
        /// The identity's signature over `"CVRA" ‖ version ‖ this device's id`.
        proof: Signature64,
    },
}

/// Messages from the relay to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RelayToClient {
    /// 0. Opens every connection: sign this to authenticate.
    Challenge {
        /// [`PROTOCOL_VERSION`].
        version: u16,
        /// The relay's origin, as configured by its operator.
        origin: String,
        /// A fresh random nonce.
        nonce: Nonce32,
    },
    /// 1. The device is authenticated.
    Authenticated {
        /// The device, as the relay understood it.
        device: DeviceId,
    },
    /// 2. A request succeeded and has nothing else to say.
    Done {
        /// The request.
        request: RequestId,
    },
    /// 3. An envelope, snapshot or membership entry is committed.
    Stored {
        /// The request.
        request: RequestId,
        /// Its cursor (for membership entries: its index).
        cursor: Cursor,
        /// True if the relay already held this exact item.
        duplicate: bool,
    },
    /// 4. A page of stored envelopes, oldest first.
    Page {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The envelopes.
        items: Vec<StoredEnvelope>,
        /// The plan's newest cursor when the page was read.
        head: Cursor,
        /// `changes` envelopes at or below this cursor may have been replaced
        /// by snapshots: a device behind it starts from the snapshots.
        compacted: Cursor,
    },
    /// 5. A new envelope, pushed live.
    Deliver {
        /// The plan.
        plan: PlanId,
        /// The envelope.
        item: StoredEnvelope,
    },
    /// 6. Membership entries, oldest first.
    Membership {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The encoded entries, starting at the requested index.
        entries: Vec<Blob>,
        /// How many entries the log holds in all.
        len: u64,
    },
    /// 7. The plan's membership log grew; fetch it.
    MembershipChanged {
        /// The plan.
        plan: PlanId,
        /// Its new length.
        len: u64,
    },
    /// 8. The newest snapshot of a document, if there is one.
    Snapshot {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
        /// The snapshot.
        snapshot: Option<StoredSnapshot>,
    },
    /// 9. A pairing mailbox is open under this nameplate.
    PairOpened {
        /// The request.
        request: RequestId,
        /// The short nameplate to read to the other person.
        nameplate: String,
    },
    /// 10. The other side sent a pairing message.
    PairMessage {
        /// The mailbox.
        nameplate: String,
        /// The message.
        body: Blob,
    },
    /// 11. The other side closed the mailbox.
    PairClosed {
        /// The mailbox.
        nameplate: String,
        /// How it ended.
        outcome: PairOutcome,
    },
    /// 12. Answers a ping.
    Pong {
        /// The request.
        request: RequestId,
    },
    /// 13. A request, or the connection, failed.
    Error {
        /// The failed request, if the error concerns one.
        request: Option<RequestId>,
        /// What went wrong, stable across versions.
        code: ErrorCode,
        /// One sentence for people.
        message: String,
    },
    /// 14. This device was revoked from the plan; the relay will refuse it from now on.
    Revoked {
        /// The plan.
        plan: PlanId,
    },
    /// 15. Answers `Recover`: the plan whose log pins the identity.
    Recovering {
        /// The request.
        request: RequestId,
        /// The plan.
        plan: PlanId,
    },
}

impl ClientToRelay {
    /// The request id this message carries, if it is a request.
    pub fn request(&self) -> Option<RequestId> {
        use ClientToRelay as C;
        match self {
            C::CreatePlan { request, .. }
            | C::AppendMembership { request, .. }
            | C::FetchMembership { request, .. }
            | C::Push { request, .. }
            | C::Fetch { request, .. }
            | C::Subscribe { request, .. }
            | C::Ack { request, .. }
            | C::PutSnapshot { request, .. }
            | C::GetSnapshot { request, .. }
            | C::DeletePlan { request, .. }
            | C::PairOpen { request }
            | C::PairJoin { request, .. }
            | C::PairSend { request, .. }
            | C::PairClose { request, .. }
            | C::Ping { request }
            | C::Recover { request, .. } => Some(*request),
            C::Authenticate { .. } => None,
        }
    }
}

impl RelayToClient {
    /// The request this message answers, if it is an answer.
    pub fn request(&self) -> Option<RequestId> {
        use RelayToClient as R;
        match self {
            R::Done { request }
            | R::Stored { request, .. }
            | R::Page { request, .. }
            | R::Membership { request, .. }
            | R::Snapshot { request, .. }
            | R::PairOpened { request, .. }
            | R::Recovering { request, .. }
            | R::Pong { request } => Some(*request),
            R::Error { request, .. } => *request,
            R::Challenge { .. }
            | R::Authenticated { .. }
            | R::Deliver { .. }
            | R::MembershipChanged { .. }
            | R::PairMessage { .. }
            | R::PairClosed { .. }
            | R::Revoked { .. } => None,
        }
    }
}
