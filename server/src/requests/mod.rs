//! What the relay does with each request of an authenticated connection.
//!
//! The relay never decrypts. It checks what it can without a key: that the
//! device may act on the plan, that an envelope is well formed and signed by
//! the authenticated device, and that the plan's membership log admits it
//! (the sender owns the document it writes, and its membership view is a
//! prefix of the log). Then it stores, and pushes live.
//!
//! [`before_membership`] holds the requests a device may make before it is a
//! member: pairing mailboxes and recovery.

mod before_membership;

use crate::error::ApiError;
use crate::events::Event;
use crate::hub::ConnId;
use crate::metrics::StoreOp;
use crate::relay::RelayState;
use crate::store::{
    Access, Appended, NewEnvelope, NewSnapshot, RegistryChange, SnapshotStored, Store,
};
use bytes::Bytes;
use cove_shared::envelope::{self, Header};
use cove_shared::membership::{Appended as EntryAppended, IdentityChange, MembershipError};
use cove_shared::wire::{
    self, Blob, ClientToRelay, Cursor, ErrorCode, MAX_MEMBERSHIP_PAGE, MAX_PAGE_ITEMS,
    RelayToClient, RequestId, StoredEnvelope,
};
use cove_shared::{DeviceId, Entry, EntryBody, EnvelopeHash, Epoch, Kind, MembershipLog, PlanId};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

/// Consecutive rate-limited requests after which the connection is closed.
const MAX_LIMITED_IN_A_ROW: u32 = 200;

/// How long the relay keeps a device's checkpoint (30 days): long enough
/// for a partner's device that was away a month to read it, short enough
/// that a device checkpointing on every sync does not fill the plan's quota.
const CHECKPOINT_TTL_SECS: i64 = 30 * 24 * 3600;

/// One authenticated connection's state.
pub struct Session<'a, S: Store> {
    /// The relay.
    pub relay: &'a RelayState<S>,
    device: DeviceId,
    conn: ConnId,
    peer: IpAddr,
    /// Plans this connection has been found to be an active member of.
    active: HashSet<PlanId>,
    /// A plan whose partner identity this device proved it acts for (a
    /// recovery), and that identity: it may read the plan's membership and
    /// append the entry by which the identity enrols this device.
    recovering: Option<(PlanId, DeviceId)>,
    /// Pairing messages already passed on, by id, so none arrives twice.
    delivered: HashSet<i64>,
    limited_in_a_row: u32,
}

impl<'a, S: Store> Session<'a, S> {
    /// A session for an authenticated device.
    pub fn new(relay: &'a RelayState<S>, device: DeviceId, conn: ConnId, peer: IpAddr) -> Self {
        Self {
            relay,
            device,
            conn,
            peer,
            active: HashSet::new(),
            recovering: None,
            delivered: HashSet::new(),
            limited_in_a_row: 0,
        }
    }

    /// Handles one request; a non-fatal error is reported and the
    /// connection carries on.
    pub async fn handle(&mut self, request: ClientToRelay) -> Result<Vec<RelayToClient>, ApiError> {
        if self.relay.device_limits.allow(self.device, Instant::now()) {
            self.limited_in_a_row = 0;
        } else {
            self.limited_in_a_row += 1;
            let error = ApiError::new(ErrorCode::RateLimited);
            return Err(if self.limited_in_a_row >= MAX_LIMITED_IN_A_ROW {
                error.fatal()
            } else {
                error
            });
        }
        use ClientToRelay as C;
        // Checked here, so that the store never meets a value it cannot hold
        // (one such value would fail a whole group commit).
        if let C::Fetch { after: cursor, .. }
        | C::Ack { cursor, .. }
        | C::PutSnapshot { covers: cursor, .. } = &request
            && *cursor > Cursor::MAX
        {
            return Err(ApiError::with(ErrorCode::BadFrame, "a cursor is out of range"));
        }
        match request {
            C::Authenticate { .. } => {
                Err(ApiError::with(ErrorCode::BadFrame, "this connection is already authenticated")
                    .fatal())
            }
            C::CreatePlan { request, genesis } => self.create_plan(request, &genesis.0).await,
            C::AppendMembership { request, plan, entry } => {
                self.append_membership(request, plan, &entry.0).await
            }
            C::FetchMembership { request, plan, from } => {
                let until = self.membership_reach(plan).await?;
                let mut entries = self
                    .relay
                    .read(StoreOp::Membership, self.relay.store.membership(plan, 0))
                    .await?;
                if let Some(until) = until {
                    entries.truncate(until);
                }
                let len = entries.len() as u64;
                let from = usize::try_from(from).unwrap_or(usize::MAX);
                let page =
                    entries.into_iter().skip(from).take(MAX_MEMBERSHIP_PAGE).map(Blob).collect();
                Ok(vec![RelayToClient::Membership { request, plan, entries: page, len }])
            }
            C::Push { request, plan, envelope } => self.push(request, plan, envelope.0).await,
            C::Fetch { request, plan, after, limit } => {
                self.require_active(plan).await?;
                let limit = limit.clamp(1, MAX_PAGE_ITEMS);
                let max_bytes = self.relay.settings.limits.max_frame_bytes.saturating_sub(4096);
                let page = self
                    .relay
                    .read(
                        StoreOp::Fetch,
                        self.relay.store.fetch(plan, after, limit, max_bytes, self.relay.now_s()),
                    )
                    .await?;
                Ok(vec![RelayToClient::Page {
                    request,
                    plan,
                    items: page.items,
                    head: page.head,
                    compacted: page.compacted,
                }])
            }
            C::Subscribe { request, plan } => {
                self.require_active(plan).await?;
                self.relay.hub.subscribe(self.conn, plan);
                Ok(vec![RelayToClient::Done { request }])
            }
            C::Ack { request, plan, cursor } => {
                self.require_active(plan).await?;
                let compacted = self
                    .relay
                    .write(StoreOp::Ack, self.relay.store.ack(plan, self.device, cursor))
                    .await?;
                self.relay.metrics.compacted(compacted);
                Ok(vec![RelayToClient::Done { request }])
            }
            C::PutSnapshot { request, plan, covers, envelope } => {
                self.put_snapshot(request, plan, covers, envelope.0).await
            }
            C::GetSnapshot { request, plan, doc } => {
                self.require_active(plan).await?;
                let snapshot = self
                    .relay
                    .read(StoreOp::Snapshot, self.relay.store.snapshot(plan, doc))
                    .await?;
                Ok(vec![RelayToClient::Snapshot { request, plan, snapshot }])
            }
            C::DeletePlan { request, plan } => {
                self.require_active(plan).await?;
                self.relay.write(StoreOp::Other, self.relay.store.delete_plan(plan)).await?;
                tracing::info!("plan deleted by a member device");
                self.relay.forget(plan);
                self.active.remove(&plan);
                self.relay.hub.plan_deleted(plan);
                self.relay.store.publish(&Event::PlanDeleted { plan }).await;
                Ok(vec![RelayToClient::Done { request }])
            }
            C::PairOpen { request } => self.pair_open(request).await,
            C::PairJoin { request, nameplate } => self.pair_join(request, nameplate).await,
            C::PairSend { request, nameplate, body } => {
                self.pair_send(request, nameplate, body).await
            }
            C::PairClose { request, nameplate, outcome } => {
                self.pair_close(request, nameplate, outcome).await
            }
            C::Ping { request } => Ok(vec![RelayToClient::Pong { request }]),
            C::Recover { request, identity, proof } => {
                self.recover(request, identity, &proof).await
            }
            _ => Err(ApiError::new(ErrorCode::Unsupported)),
        }
    }

    /// How much of `plan`'s membership log this connection may read: all of
    /// it for a member or a device recovering into it (`None`); for a
    /// revoked device, the entries up to the one that revoked it, so that
    /// it can verify its removal from signed entries rather than take the
    /// relay's word, and learns nothing of the plan after it.
    async fn membership_reach(&mut self, plan: PlanId) -> Result<Option<usize>, ApiError> {
        if self.active.contains(&plan) || self.recovering.is_some_and(|(p, _)| p == plan) {
            return Ok(None);
        }
        let access =
            self.relay.read(StoreOp::Other, self.relay.store.access(plan, self.device)).await?;
        match access {
            Access::Active => {
                self.active.insert(plan);
                Ok(None)
            }
            Access::Unknown => Err(ApiError::new(ErrorCode::NotFound)),
            Access::Revoked => {
                let state = self.relay.membership(plan, false).await?;
                let at = state.member(&self.device).and_then(|m| m.revoked.as_ref()).map(|r| r.at);
                match at.and_then(|at| usize::try_from(at).ok()) {
                    Some(at) => Ok(Some(at + 1)),
                    None => Err(ApiError::new(ErrorCode::Revoked).fatal()),
                }
            }
        }
    }

    /// Fails unless the device is an active member of `plan`. An unknown
    /// plan and a plan the device does not belong to get the same answer.
    async fn require_active(&mut self, plan: PlanId) -> Result<(), ApiError> {
        if self.active.contains(&plan) {
            return Ok(());
        }
        match self.relay.read(StoreOp::Other, self.relay.store.access(plan, self.device)).await? {
            Access::Active => {
                self.active.insert(plan);
                Ok(())
            }
            Access::Revoked => Err(ApiError::new(ErrorCode::Revoked).fatal()),
            Access::Unknown => Err(ApiError::new(ErrorCode::NotFound)),
        }
    }

    async fn create_plan(
        &mut self,
        request: RequestId,
        genesis: &[u8],
    ) -> Result<Vec<RelayToClient>, ApiError> {
        let invalid =
            |e: MembershipError| ApiError::with(ErrorCode::InvalidMembership, e.to_string());
        let entry = Entry::decode(genesis).map_err(|e| invalid(e.into()))?;
        let log = MembershipLog::from_genesis(entry).map_err(invalid)?;
        if log.entries()[0].signer() != self.device {
            return Err(ApiError::with(
                ErrorCode::InvalidMembership,
                "the genesis must be signed by this device",
            ));
        }
        let plan = log.state().plan();
        let identity =
            log.state().live_identity(cove_shared::Partner::A).map(|i| i.key).ok_or_else(|| {
                ApiError::with(ErrorCode::InvalidMembership, "no partner identity")
            })?;
        self.relay
            .write(
                StoreOp::Membership,
                self.relay.store.create_plan(
                    plan,
                    genesis,
                    self.device,
                    identity,
                    self.relay.now_s(),
                ),
            )
            .await?;
        tracing::info!("plan created");
        self.relay.cache(plan, std::sync::Arc::new(log.state().clone()));
        self.active.insert(plan);
        Ok(vec![RelayToClient::Stored { request, cursor: Cursor(0), duplicate: false }])
    }

    async fn append_membership(
        &mut self,
        request: RequestId,
        plan: PlanId,
        bytes: &[u8],
    ) -> Result<Vec<RelayToClient>, ApiError> {
        let invalid =
            |e: MembershipError| ApiError::with(ErrorCode::InvalidMembership, e.to_string());
        let entry = Entry::decode(bytes).map_err(|e| invalid(e.into()))?;
        if !self.recovers_itself(plan, &entry) {
            self.require_active(plan).await?;
        }
        let index = entry.index();
        let mut log = self.relay.load_log(plan).await?;
        let change = match &entry.body() {
            EntryBody::AddDevice { bundle, identity, .. } => RegistryChange {
                added: vec![bundle.device],
                identities: vec![identity.key],
                ..RegistryChange::default()
            },
            EntryBody::RevokeDevice { device, .. } => {
                RegistryChange { revoked: vec![*device], ..RegistryChange::default() }
            }
            EntryBody::PartnerKey { change: IdentityChange::Rotate { identity, .. }, .. } => {
                RegistryChange { identities: vec![identity.key], ..RegistryChange::default() }
            }
            _ => RegistryChange::default(),
        };
        match log.append(entry) {
            Ok(EntryAppended::Duplicate) => {
                return Ok(vec![RelayToClient::Stored {
                    request,
                    cursor: Cursor(index),
                    duplicate: true,
                }]);
            }
            Ok(EntryAppended::New) => {}
            Err(MembershipError::Fork { .. } | MembershipError::OutOfOrder { .. }) => {
                return Err(ApiError::new(ErrorCode::MembershipConflict));
            }
            Err(error) => return Err(invalid(error)),
        }
        self.relay
            .write(
                StoreOp::Membership,
                self.relay.store.append_membership(plan, index, bytes, &change),
            )
            .await?;
        tracing::info!(index, "membership entry appended");
        self.relay.cache(plan, std::sync::Arc::new(log.state().clone()));
        let len = log.state().len();
        if let Ok(frame) = wire::encode(&RelayToClient::MembershipChanged { plan, len }) {
            self.relay.hub.deliver(plan, Some(self.device), &Bytes::from(frame));
        }
        if !change.revoked.is_empty() {
            self.relay.hub.revoke(plan, &change.revoked);
        }
        let revoked = change.revoked;
        self.relay.store.publish(&Event::Membership { plan, len, revoked }).await;
        Ok(vec![RelayToClient::Stored { request, cursor: Cursor(index), duplicate: false }])
    }

    /// The checks an envelope must pass before it is stored: the cheap ones
    /// on its cleartext header first, then membership (the sender owns the
    /// document, and its view is a prefix of the log) and the signature,
    /// with the member's key as the membership state caches it.
    async fn admit(
        &mut self,
        plan: PlanId,
        bytes: &[u8],
        kinds: &[Kind],
    ) -> Result<(Header, EnvelopeHash, Epoch), ApiError> {
        self.require_active(plan).await?;
        let max = self.relay.settings.limits.max_envelope_bytes;
        if bytes.len() > max {
            return Err(ApiError::with(
                ErrorCode::FrameTooLarge,
                format!("envelopes are limited to {max} bytes"),
            ));
        }
        let invalid = |why: &'static str| ApiError::with(ErrorCode::InvalidEnvelope, why);
        let header =
            envelope::header_of(bytes).map_err(|_| invalid("the envelope is malformed"))?;
        if header.plan != plan || header.sender != self.device || !kinds.contains(&header.kind) {
            return Err(invalid("the envelope's plan, sender or kind does not match this request"));
        }
        // A view longer than the cached log means the log grew, perhaps in
        // another relay process: load it again. Nothing else forces a reload,
        // so a flood of bad envelopes cannot.
        let mut state = self.relay.membership(plan, false).await?;
        if u64::from(header.view.len) > state.len() {
            state = self.relay.membership(plan, true).await?;
        }
        let (header, hash) = envelope::inspect_with(bytes, |h| state.admit(h)).map_err(|_| {
            invalid(
                "the membership log does not admit this envelope, or its signature does not verify",
            )
        })?;
        Ok((header, hash, state.epoch()))
    }

    /// An envelope sealed in an epoch the log has moved past (a revocation
    /// or rotation since) is stored only if it is already stored: a resend
    /// of what the relay took before the change is a duplicate, anything
    /// else must be sealed again under the current key, so that no device
    /// that was removed can read it.
    async fn refuse_stale(
        &self,
        plan: PlanId,
        header: &Header,
        hash: EnvelopeHash,
        current: Epoch,
    ) -> Result<Option<Cursor>, ApiError> {
        if header.epoch >= current {
            return Ok(None);
        }
        let stream = (header.kind, header.doc, header.seq);
        let stored = self
            .relay
            .read(StoreOp::Other, self.relay.store.stored_at(plan, self.device, stream))
            .await?;
        match stored {
            Some((cursor, stored)) if stored == hash => Ok(Some(cursor)),
            _ => Err(ApiError::new(ErrorCode::StaleEpoch)),
        }
    }

    async fn push(
        &mut self,
        request: RequestId,
        plan: PlanId,
        bytes: Vec<u8>,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        let (header, hash, current) =
            self.admit(plan, &bytes, &[Kind::Changes, Kind::Signal, Kind::Checkpoint]).await?;
        if let Some(cursor) = self.refuse_stale(plan, &header, hash, current).await? {
            return Ok(vec![RelayToClient::Stored { request, cursor, duplicate: true }]);
        }
        // A signal lives as long as it matters; a checkpoint is superseded
        // by its sender's next one, and devices keep the newest they saw.
        let ttl = match header.kind {
            Kind::Signal => Some(self.relay.settings.limits.signal_ttl.as_secs() as i64),
            Kind::Checkpoint => Some(CHECKPOINT_TTL_SECS),
            _ => None,
        };
        let body = Bytes::from(bytes);
        let size = body.len();
        let new = NewEnvelope {
            plan,
            sender: self.device,
            kind: header.kind,
            seq: header.seq,
            doc: header.doc,
            hash,
            expires_at: ttl.map(|ttl| self.relay.now_s() + ttl),
            body: body.clone(),
        };
        match self.relay.batcher.append(new).await? {
            Appended::Duplicate(cursor) => {
                Ok(vec![RelayToClient::Stored { request, cursor, duplicate: true }])
            }
            Appended::New(cursor) => {
                self.relay.metrics.stored(size);
                if header.kind == Kind::Checkpoint {
                    let now = self.relay.now_s();
                    let superseded =
                        self.relay.store.supersede_checkpoints(plan, self.device, header.seq, now);
                    // The new one is stored; an old one left over only
                    // waits for its own time to live. (`write` notes a
                    // failing store.)
                    let _ = self.relay.write(StoreOp::Other, superseded).await;
                }
                let item = StoredEnvelope { cursor, envelope: Blob(body.to_vec()) };
                if let Ok(frame) = wire::encode(&RelayToClient::Deliver { plan, item }) {
                    let n = self.relay.hub.deliver(plan, Some(self.device), &Bytes::from(frame));
                    self.relay.metrics.forwarded(n);
                }
                self.relay
                    .store
                    .publish(&Event::Stored { plan, cursor, sender: self.device })
                    .await;
                Ok(vec![RelayToClient::Stored { request, cursor, duplicate: false }])
            }
        }
    }

    async fn put_snapshot(
        &mut self,
        request: RequestId,
        plan: PlanId,
        covers: Cursor,
        bytes: Vec<u8>,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        let (header, hash, current) = self.admit(plan, &bytes, &[Kind::Snapshot]).await?;
        if header.epoch < current {
            return Err(ApiError::new(ErrorCode::StaleEpoch));
        }
        let snapshot = NewSnapshot {
            plan,
            doc: header.doc,
            covers,
            sender: self.device,
            seq: header.seq,
            hash,
            body: bytes,
        };
        match self.relay.write(StoreOp::Snapshot, self.relay.store.put_snapshot(&snapshot)).await? {
            SnapshotStored::New { compacted } => {
                self.relay.metrics.compacted(compacted);
                Ok(vec![RelayToClient::Stored { request, cursor: covers, duplicate: false }])
            }
            SnapshotStored::Duplicate => {
                Ok(vec![RelayToClient::Stored { request, cursor: covers, duplicate: true }])
            }
            SnapshotStored::Stale => Err(ApiError::with(
                ErrorCode::InvalidSnapshot,
                "a snapshot covering more is already stored",
            )),
            SnapshotStored::BeyondHead => Err(ApiError::with(
                ErrorCode::InvalidSnapshot,
                "the snapshot claims to cover envelopes the relay has not stored",
            )),
        }
    }

    /// Whether a pairing message is new to this connection (and marks it seen).
    pub fn first_delivery(&mut self, id: i64) -> bool {
        self.delivered.insert(id)
    }
}
