//! Each request the relay answers, by name, with its answer checked.

use super::{MAX_MEMBERSHIP_ENTRIES, RelayConnection, TransportError};
use cove_shared::wire::{
    Blob, ClientToRelay, Cursor, PairOutcome, RelayToClient, RequestId, Signature64,
    StoredEnvelope, StoredSnapshot,
};
use cove_shared::{DeviceId, DocId, PlanId};

impl RelayConnection {
    /// Registers a plan from its genesis entry.
    pub async fn create_plan(&self, genesis: &[u8]) -> Result<(), TransportError> {
        let genesis = Blob(genesis.to_vec());
        match self
            .request(|request| ClientToRelay::CreatePlan { request, genesis: genesis.clone() })
            .await?
        {
            RelayToClient::Stored { .. } => Ok(()),
            _ => Err(TransportError::Protocol("expected stored")),
        }
    }

    /// Proves that this device acts for a partner identity (a recovery) and
    /// learns the plan whose log pins it.
    pub async fn recover(
        &self,
        identity: DeviceId,
        proof: [u8; 64],
    ) -> Result<PlanId, TransportError> {
        let proof = Signature64(proof);
        match self.request(|request| ClientToRelay::Recover { request, identity, proof }).await? {
            RelayToClient::Recovering { plan, .. } => Ok(plan),
            _ => Err(TransportError::Protocol("expected the plan to recover")),
        }
    }

    /// Appends a membership entry; returns whether the relay already had it.
    pub async fn append_membership(
        &self,
        plan: PlanId,
        entry: &[u8],
    ) -> Result<bool, TransportError> {
        let entry = Blob(entry.to_vec());
        match self
            .request(|request| ClientToRelay::AppendMembership {
                request,
                plan,
                entry: entry.clone(),
            })
            .await?
        {
            RelayToClient::Stored { duplicate, .. } => Ok(duplicate),
            _ => Err(TransportError::Protocol("expected stored")),
        }
    }

    /// Every membership entry from `from` on (fetching page by page).
    pub async fn fetch_membership(
        &self,
        plan: PlanId,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, TransportError> {
        let mut out = Vec::new();
        loop {
            let at = from + out.len() as u64;
            match self
                .request(|request| ClientToRelay::FetchMembership { request, plan, from: at })
                .await?
            {
                RelayToClient::Membership { plan: got, entries, len, .. } if got == plan => {
                    let got = entries.len();
                    out.extend(entries.into_iter().map(|b| b.0));
                    if out.len() > MAX_MEMBERSHIP_ENTRIES {
                        return Err(TransportError::Protocol(
                            "a membership log beyond any real one",
                        ));
                    }
                    if got == 0 || from + out.len() as u64 >= len {
                        return Ok(out);
                    }
                }
                _ => return Err(TransportError::Protocol("expected membership")),
            }
        }
    }

    /// Stores an envelope; returns its cursor and whether it was a resend.
    pub async fn push(
        &self,
        plan: PlanId,
        envelope: &[u8],
    ) -> Result<(Cursor, bool), TransportError> {
        let envelope = Blob(envelope.to_vec());
        match self
            .request(|request| ClientToRelay::Push { request, plan, envelope: envelope.clone() })
            .await?
        {
            RelayToClient::Stored { cursor, duplicate, .. } => Ok((cursor, duplicate)),
            _ => Err(TransportError::Protocol("expected stored")),
        }
    }

    /// One page of envelopes after `after`, with the plan's head and
    /// compaction point.
    pub async fn fetch(
        &self,
        plan: PlanId,
        after: Cursor,
        limit: u32,
    ) -> Result<(Vec<StoredEnvelope>, Cursor, Cursor), TransportError> {
        match self.request(|request| ClientToRelay::Fetch { request, plan, after, limit }).await? {
            RelayToClient::Page { plan: got, items, head, compacted, .. } if got == plan => {
                Ok((items, head, compacted))
            }
            _ => Err(TransportError::Protocol("expected a page")),
        }
    }

    /// Asks for live delivery of the plan's envelopes.
    pub async fn subscribe(&self, plan: PlanId) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::Subscribe { request, plan }).await
    }

    /// Acknowledges everything up to `cursor` as durably applied.
    pub async fn ack(&self, plan: PlanId, cursor: Cursor) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::Ack { request, plan, cursor }).await
    }

    /// Stores a snapshot covering cursors up to `covers`.
    pub async fn put_snapshot(
        &self,
        plan: PlanId,
        covers: Cursor,
        envelope: &[u8],
    ) -> Result<bool, TransportError> {
        let envelope = Blob(envelope.to_vec());
        match self
            .request(|request| ClientToRelay::PutSnapshot {
                request,
                plan,
                covers,
                envelope: envelope.clone(),
            })
            .await?
        {
            RelayToClient::Stored { duplicate, .. } => Ok(duplicate),
            _ => Err(TransportError::Protocol("expected stored")),
        }
    }

    /// The newest snapshot of a document.
    pub async fn get_snapshot(
        &self,
        plan: PlanId,
        doc: DocId,
    ) -> Result<Option<StoredSnapshot>, TransportError> {
        match self.request(|request| ClientToRelay::GetSnapshot { request, plan, doc }).await? {
            RelayToClient::Snapshot { plan: got, snapshot, .. } if got == plan => Ok(snapshot),
            _ => Err(TransportError::Protocol("expected a snapshot")),
        }
    }

    /// Deletes the plan from the relay.
    pub async fn delete_plan(&self, plan: PlanId) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::DeletePlan { request, plan }).await
    }

    /// Opens a pairing mailbox; returns its nameplate.
    pub async fn pair_open(&self) -> Result<String, TransportError> {
        match self.request(|request| ClientToRelay::PairOpen { request }).await? {
            RelayToClient::PairOpened { nameplate, .. } => Ok(nameplate),
            _ => Err(TransportError::Protocol("expected a nameplate")),
        }
    }

    /// Joins a pairing mailbox. Messages waiting in it arrive as pushes.
    pub async fn pair_join(&self, nameplate: &str) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::PairJoin {
            request,
            nameplate: nameplate.to_owned(),
        })
        .await
    }

    /// Sends a message to the other side of a mailbox.
    pub async fn pair_send(&self, nameplate: &str, body: &[u8]) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::PairSend {
            request,
            nameplate: nameplate.to_owned(),
            body: Blob(body.to_vec()),
        })
        .await
    }

    /// Closes a mailbox.
    pub async fn pair_close(
        &self,
        nameplate: &str,
        outcome: PairOutcome,
    ) -> Result<(), TransportError> {
        self.expect_done(|request| ClientToRelay::PairClose {
            request,
            nameplate: nameplate.to_owned(),
            outcome,
        })
        .await
    }

    /// A round trip.
    pub async fn ping(&self) -> Result<(), TransportError> {
        match self.request(|request| ClientToRelay::Ping { request }).await? {
            RelayToClient::Pong { .. } => Ok(()),
            _ => Err(TransportError::Protocol("expected pong")),
        }
    }

    async fn expect_done(
        &self,
        build: impl Fn(RequestId) -> ClientToRelay,
    ) -> Result<(), TransportError> {
        match self.request(build).await? {
            RelayToClient::Done { .. } => Ok(()),
            _ => Err(TransportError::Protocol("expected done")),
        }
    }
}
