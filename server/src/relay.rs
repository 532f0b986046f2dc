//! The relay's shared state, and the background tasks that serve it:
//! events from other relay processes, and expiry.

use crate::batch::Batcher;
use crate::error::ApiError;
use crate::events::{Event, Heard};
use crate::health::StoreHealth;
use crate::hub::{Hub, Outbound};
use crate::limits::{AddressWindows, DeviceLimiter};
use crate::metrics::{Metrics, StoreOp};
use crate::settings::Settings;
use crate::store::{Quota, Store, StoreError};
use bytes::Bytes;
use cove_shared::clock::SharedClock;
use cove_shared::wire::{self, Blob, ErrorCode, RelayToClient, StoredEnvelope};
use cove_shared::{MembershipLog, MembershipState, PlanId};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Plans whose verified membership is kept in memory before the cache is
/// cleared and rebuilt on demand.
const MEMBERSHIP_CACHE: usize = 10_000;

/// How often failing store reads or writes are tried again.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How often expired signals and mailboxes are dropped.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// Everything every connection shares.
pub struct RelayState<S: Store> {
    /// The settings the relay started with.
    pub settings: Settings,
    /// Origins a device may sign.
    pub origins: Vec<String>,
    /// Storage.
    pub store: S,
    /// In-process routing.
    pub hub: Hub,
    /// Group commit.
    pub batcher: Batcher,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Whether the store takes reads and writes.
    pub health: Arc<StoreHealth>,
    /// Requests per device.
    pub device_limits: DeviceLimiter,
    /// Pairing attempts per address.
    pub pairing_limits: AddressWindows,
    /// Becomes true when the relay shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Where the time comes from.
    pub clock: SharedClock,
    memberships: Mutex<HashMap<PlanId, Arc<MembershipState>>>,
    /// Origins devices signed in for that this relay does not accept,
    /// already logged.
    unaccepted: Mutex<HashSet<String>>,
}

/// Different unaccepted origins logged, at most: a stranger could try many.
const UNACCEPTED_LOGGED: usize = 16;

impl<S: Store> RelayState<S> {
    /// Builds the state and starts the group-commit task.
    pub fn new(
        settings: Settings,
        store: S,
        clock: SharedClock,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let limits = &settings.limits;
        let quota =
            Quota { max_envelopes: limits.plan_max_envelopes, max_bytes: limits.plan_max_bytes };
        let hub = Hub::new(limits.send_queue_bytes);
        let health = Arc::new(StoreHealth::default());
        let batcher = Batcher::start(store.clone(), quota, metrics.clone(), health.clone());
        Arc::new(Self {
            origins: settings.accepted_origins(),
            device_limits: DeviceLimiter::new(limits.device_rate_per_sec, limits.device_rate_burst),
            pairing_limits: AddressWindows::new(
                limits.pairing_attempts_per_address,
                limits.pairing_ttl,
            ),
            settings,
            store,
            hub,
            batcher,
            metrics,
            health,
            shutdown,
            clock,
            memberships: Mutex::new(HashMap::new()),
            unaccepted: Mutex::new(HashSet::new()),
        })
    }

    /// Now, in Unix seconds, by the relay's clock.
    pub fn now_s(&self) -> i64 {
        self.clock.now_s()
    }

    /// Times a store call for the latency histogram.
    pub async fn timed<T>(&self, op: StoreOp, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.metrics.store_latency(op, started.elapsed());
        out
    }

    /// A store call that only reads: timed, and its failure noted.
    pub async fn read<T>(
        &self,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        let out = self.timed(op, call).await;
        self.note(&self.health.reads, out)
    }

    /// A store call that writes: timed, and its outcome noted, so that
    /// `/healthz` can say whether writes are failing.
    pub async fn write<T>(
        &self,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        let out = self.timed(op, call).await;
        self.note(&self.health.writes, out)
    }

    fn note<T>(
        &self,
        condition: &crate::health::Condition,
        out: Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        match out {
            Err(StoreError::Unavailable(error)) => {
                condition.failed(&error);
                Err(ApiError::new(ErrorCode::Unavailable))
            }
            Err(other) => Err(other.into()),
            Ok(value) => {
                condition.succeeded();
                Ok(value)
            }
        }
    }

    /// The plan's verified membership, from the cache or the store.
    pub async fn membership(
        &self,
        plan: PlanId,
        fresh: bool,
    ) -> Result<Arc<MembershipState>, ApiError> {
        if !fresh && let Some(state) = self.cached(plan) {
            return Ok(state);
        }
        let log = self.load_log(plan).await?;
        let state = Arc::new(log.state().clone());
        self.cache(plan, state.clone());
        Ok(state)
    }

    /// The plan's whole membership log, verified from its stored entries.
    pub async fn load_log(&self, plan: PlanId) -> Result<MembershipLog, ApiError> {
        let entries = self.read(StoreOp::Membership, self.store.membership(plan, 0)).await?;
        if entries.is_empty() {
            return Err(ApiError::new(ErrorCode::NotFound));
        }
        MembershipLog::decode(entries.iter().map(Vec::as_slice), None).map_err(|error| {
            // The relay verified every entry before storing it.
            tracing::error!(%plan, %error, "stored membership log does not verify");
            ApiError::new(ErrorCode::Internal)
        })
    }

    fn cached(&self, plan: PlanId) -> Option<Arc<MembershipState>> {
        self.memberships.lock().ok()?.get(&plan).cloned()
    }

    /// Caches a plan's membership.
    pub fn cache(&self, plan: PlanId, state: Arc<MembershipState>) {
        if let Ok(mut cache) = self.memberships.lock() {
            if cache.len() >= MEMBERSHIP_CACHE {
                cache.clear();
            }
            cache.insert(plan, state);
        }
    }

    /// A device's sign-in failed. If its answer verifies for the address it
    /// reached the relay by (`ws://` or `wss://` and the request's Host),
    /// the device is fine and the relay is not configured for that address:
    /// say so once, with both addresses, so the operator can fix it.
    pub fn note_unaccepted_origin(
        &self,
        host: &str,
        nonce: &wire::Nonce32,
        device: &cove_shared::DeviceId,
        signature: &wire::Signature64,
    ) {
        let Some(origin) = ["ws://", "wss://"]
            .iter()
            .map(|scheme| format!("{scheme}{host}"))
            .find(|origin| wire::verify_challenge(origin, nonce, device, signature))
        else {
            return;
        };
        let Ok(mut logged) = self.unaccepted.lock() else { return };
        if logged.len() < UNACCEPTED_LOGGED && logged.insert(origin.clone()) {
            tracing::warn!(
                signed = %origin,
                accepted = ?self.origins,
                "a device signed in for an address this relay does not accept; if devices should reach it there, add it to `origins` (COVE_ORIGINS)"
            );
        }
    }

    /// Drops a plan's cached membership.
    pub fn forget(&self, plan: PlanId) {
        if let Ok(mut cache) = self.memberships.lock() {
            cache.remove(&plan);
        }
    }

    /// Applies an event published by another relay process.
    pub async fn apply_remote(&self, event: Event) {
        match event {
            Event::Stored { plan, cursor, sender } => {
                let body = match self.store.envelope(plan, cursor).await {
                    Ok(Some(body)) => body,
                    Ok(None) => return, // compacted or deleted meanwhile
                    Err(error) => {
                        tracing::warn!(%error, "cannot read a notified envelope");
                        return;
                    }
                };
                let item = StoredEnvelope { cursor, envelope: Blob(body) };
                if let Ok(frame) = wire::encode(&RelayToClient::Deliver { plan, item }) {
                    let n = self.hub.deliver(plan, Some(sender), &Bytes::from(frame));
                    self.metrics.forwarded(n);
                }
            }
            Event::Membership { plan, len, revoked } => {
                self.forget(plan);
                if let Ok(frame) = wire::encode(&RelayToClient::MembershipChanged { plan, len }) {
                    self.hub.deliver(plan, None, &Bytes::from(frame));
                }
                self.hub.revoke(plan, &revoked);
            }
            Event::PlanDeleted { plan } => {
                self.forget(plan);
                self.hub.plan_deleted(plan);
            }
            Event::PairMessage { nameplate, to, id } => {
                let Ok(Some(body)) = self.store.pair_message(id).await else {
                    return;
                };
                let message =
                    RelayToClient::PairMessage { nameplate: nameplate.clone(), body: Blob(body) };
                if let Ok(frame) = wire::encode(&message) {
                    self.hub.pair_send(
                        &nameplate,
                        to,
                        Outbound::PairMessage { id, frame: Bytes::from(frame) },
                    );
                }
            }
            Event::PairClosed { nameplate, to, outcome } => {
                let message = RelayToClient::PairClosed { nameplate: nameplate.clone(), outcome };
                if let Ok(frame) = wire::encode(&message) {
                    self.hub.pair_send(&nameplate, to, Outbound::Frame(Bytes::from(frame)));
                }
            }
        }
    }

    /// Starts the tasks that listen to other relay processes and expire
    /// old data. They end when the relay shuts down.
    pub fn spawn_background(self: &Arc<Self>) {
        if let Some(mut events) = self.store.listen() {
            let relay = self.clone();
            tokio::spawn(async move {
                while let Some(heard) = events.recv().await {
                    match heard {
                        Heard::Event(event) => relay.apply_remote(event).await,
                        Heard::Gap => {
                            // Live deliveries from other processes may be
                            // lost: every subscribed device reconnects and
                            // fetches from its cursor.
                            let told = relay.hub.fell_behind();
                            relay.metrics.listener_gap();
                            tracing::warn!(
                                told,
                                "told connected devices to catch up after a gap in notifications"
                            );
                        }
                    }
                }
            });
        }
        let relay = self.clone();
        tokio::spawn(async move { relay.probe_while_failing().await });
        let relay = self.clone();
        tokio::spawn(async move {
            let mut shutdown = relay.shutdown.clone();
            let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                // A failure is noted (and logged once) by `write`.
                let now = relay.now_s();
                if let Ok(n) = relay.write(StoreOp::Other, relay.store.expire_signals(now)).await {
                    relay.metrics.expired(n);
                }
                let _ = relay.write(StoreOp::Pairing, relay.store.expire_mailboxes(now)).await;
            }
        });
    }

    /// While reads or writes fail, tries them now and then, so that the
    /// relay notices by itself when space is freed or the database is back,
    /// even if no device is sending.
    async fn probe_while_failing(&self) {
        let mut shutdown = self.shutdown.clone();
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if self.health.writes.failing().is_some() {
                let _ = self.write(StoreOp::Other, self.store.probe_write()).await;
            }
            if self.health.reads.failing().is_some() {
                let _ = self.read(StoreOp::Other, self.store.ping()).await;
            }
        }
    }
}
