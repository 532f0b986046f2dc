//! The hub: which connection in this process wants which plan's live
//! envelopes, and which side of which pairing mailbox.
//!
//! Every connection gets an outbound queue bounded in frames and in bytes.
//! A frame that is pushed to many devices is encoded once and shared. A
//! connection whose queue is full has fallen behind: it is told so and
//! closed, and reconnects and fetches from its cursor; nothing is lost, and
//! a slow reader cannot make the relay buffer without bound.

use crate::store::Side;
use bytes::Bytes;
use cove_shared::wire::ErrorCode;
use cove_shared::{DeviceId, PlanId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};

/// Frames queued for one connection before it counts as fallen behind.
pub const OUTBOUND_QUEUE: usize = 512;

/// Identifies one connection within this process.
pub type ConnId = u64;

/// Bytes queued for one connection, unless the relay is told otherwise.
pub const OUTBOUND_BYTES: usize = 4 * 1024 * 1024;

/// What the hub tells a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Send this encoded frame.
    Frame(Bytes),
    /// This pairing message, unless the connection already passed it on.
    PairMessage {
        /// The stored message id, to drop duplicates.
        id: i64,
        /// The encoded `PairMessage` frame.
        frame: Bytes,
    },
}

impl Outbound {
    /// The bytes it will put on the wire.
    pub fn len(&self) -> usize {
        match self {
            Self::Frame(frame) | Self::PairMessage { frame, .. } => frame.len(),
        }
    }

    /// Whether it is empty (never, for a real frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the hub ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kick {
    /// The device was revoked from this plan.
    Revoked(PlanId),
    /// An error that ends the connection.
    Error(ErrorCode),
}

/// One connection's handle, held by the hub.
#[derive(Debug)]
struct Conn {
    device: DeviceId,
    tx: mpsc::Sender<Outbound>,
    /// Bytes in `tx`'s queue.
    queued: Arc<AtomicUsize>,
    kick: watch::Sender<Option<Kick>>,
}

impl Conn {
    /// Queues `message`, unless the queue is full in frames or in bytes;
    /// then the connection is told it fell behind.
    fn offer(&self, message: Outbound, max_bytes: usize) -> bool {
        let len = message.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            let _ = self.kick.send(Some(Kick::Error(ErrorCode::Overloaded)));
            return false;
        }
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(error) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                if matches!(error, mpsc::error::TrySendError::Full(_)) {
                    let _ = self.kick.send(Some(Kick::Error(ErrorCode::Overloaded)));
                }
                false
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next: ConnId,
    conns: HashMap<ConnId, Conn>,
    plans: HashMap<PlanId, Vec<ConnId>>,
    pairs: HashMap<String, [Option<ConnId>; 2]>,
}

/// What a connection receives from the hub.
#[derive(Debug)]
pub struct Registration {
    /// Its id.
    pub id: ConnId,
    /// Frames to send.
    pub outbound: Queue,
    /// Set when the connection must end.
    pub kick: watch::Receiver<Option<Kick>>,
}

/// One connection's outbound queue, which counts the bytes in it.
#[derive(Debug)]
pub struct Queue {
    rx: mpsc::Receiver<Outbound>,
    /// Bytes queued.
    queued: Arc<AtomicUsize>,
}

impl Queue {
    /// The next frame to send, once there is one (`None`: the hub let go).
    pub async fn next(&mut self) -> Option<Outbound> {
        let out = self.rx.recv().await?;
        self.queued.fetch_sub(out.len(), Ordering::AcqRel);
        Some(out)
    }

    /// The next frame to send, if one is queued now.
    pub fn try_next(&mut self) -> Option<Outbound> {
        let out = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(out.len(), Ordering::AcqRel);
        Some(out)
    }
}

/// The process-wide routing table.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    /// Bytes queued for one connection before it counts as fallen behind.
    max_queued: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(OUTBOUND_BYTES)
    }
}

fn slot(side: Side) -> usize {
    match side {
        Side::Opener => 0,
        Side::Joiner => 1,
    }
}

impl Hub {
    /// A hub that queues at most `max_queued` bytes for one connection.
    pub fn new(max_queued: usize) -> Self {
        Self { inner: Mutex::default(), max_queued }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain routing data behind;
        // it stays usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an authenticated connection.
    pub fn register(&self, device: DeviceId) -> Registration {
        let (tx, outbound) = mpsc::channel(OUTBOUND_QUEUE);
        let (kick, kick_rx) = watch::channel(None);
        let queued = Arc::new(AtomicUsize::new(0));
        let mut inner = self.lock();
        inner.next += 1;
        let id = inner.next;
        inner.conns.insert(id, Conn { device, tx, queued: Arc::clone(&queued), kick });
        Registration { id, outbound: Queue { rx: outbound, queued }, kick: kick_rx }
    }

    /// Forgets a connection, and every subscription and mailbox it held.
    /// Returns the mailboxes it was a party to.
    pub fn unregister(&self, id: ConnId) -> Vec<(String, Side)> {
        let mut inner = self.lock();
        inner.conns.remove(&id);
        inner.plans.retain(|_, conns| {
            conns.retain(|c| *c != id);
            !conns.is_empty()
        });
        let mut left = Vec::new();
        inner.pairs.retain(|nameplate, sides| {
            for (i, side) in sides.iter_mut().enumerate() {
                if *side == Some(id) {
                    *side = None;
                    left.push((
                        nameplate.clone(),
                        if i == 0 { Side::Opener } else { Side::Joiner },
                    ));
                }
            }
            sides.iter().any(Option::is_some)
        });
        left
    }

    /// Subscribes a connection to a plan's live envelopes.
    pub fn subscribe(&self, id: ConnId, plan: PlanId) {
        let mut inner = self.lock();
        let conns = inner.plans.entry(plan).or_default();
        if !conns.contains(&id) {
            conns.push(id);
        }
    }

    /// Queues `frame` for every connection subscribed to `plan`, except
    /// those of the device that sent it. Returns how many it was queued for.
    pub fn deliver(&self, plan: PlanId, sender: Option<DeviceId>, frame: &Bytes) -> usize {
        let inner = self.lock();
        let Some(conns) = inner.plans.get(&plan) else {
            return 0;
        };
        let mut sent = 0;
        for id in conns {
            let Some(conn) = inner.conns.get(id) else {
                continue;
            };
            if Some(conn.device) == sender {
                continue;
            }
            if conn.offer(Outbound::Frame(frame.clone()), self.max_queued) {
                sent += 1;
            }
        }
        sent
    }

    /// Ends every connection of `devices`: they were revoked from `plan`.
    pub fn revoke(&self, plan: PlanId, devices: &[DeviceId]) {
        let inner = self.lock();
        for conn in inner.conns.values().filter(|c| devices.contains(&c.device)) {
            let _ = conn.kick.send(Some(Kick::Revoked(plan)));
        }
    }

    /// Ends every connection subscribed to a plan with "the connection fell
    /// behind; reconnect to catch up": live delivery may have skipped
    /// something, and a reconnecting device fetches from its cursor.
    /// Returns how many were told.
    pub fn fell_behind(&self) -> usize {
        let inner = self.lock();
        let mut told = std::collections::HashSet::new();
        for id in inner.plans.values().flatten() {
            if let Some(conn) = inner.conns.get(id)
                && told.insert(*id)
            {
                let _ = conn.kick.send(Some(Kick::Error(ErrorCode::Overloaded)));
            }
        }
        told.len()
    }

    /// Ends every connection subscribed to `plan`: it was deleted.
    pub fn plan_deleted(&self, plan: PlanId) {
        let mut inner = self.lock();
        let Some(conns) = inner.plans.remove(&plan) else {
            return;
        };
        for id in conns {
            if let Some(conn) = inner.conns.get(&id) {
                let _ = conn.kick.send(Some(Kick::Error(ErrorCode::NotFound)));
            }
        }
    }

    /// Records which connection is one side of a mailbox.
    pub fn pair_attach(&self, nameplate: &str, side: Side, id: ConnId) {
        self.lock().pairs.entry(nameplate.to_owned()).or_default()[slot(side)] = Some(id);
    }

    /// Forgets a connection's place in a mailbox.
    pub fn pair_detach(&self, nameplate: &str, id: ConnId) {
        let mut inner = self.lock();
        if let Some(sides) = inner.pairs.get_mut(nameplate) {
            for s in sides.iter_mut().filter(|s| **s == Some(id)) {
                *s = None;
            }
            if sides.iter().all(Option::is_none) {
                inner.pairs.remove(nameplate);
            }
        }
    }

    /// Queues a pairing frame for one side of a mailbox, if that side is
    /// connected to this process. Returns whether it was.
    pub fn pair_send(&self, nameplate: &str, to: Side, message: Outbound) -> bool {
        let inner = self.lock();
        let Some(id) = inner.pairs.get(nameplate).and_then(|sides| sides[slot(to)]) else {
            return false;
        };
        inner.conns.get(&id).is_some_and(|c| c.offer(message, self.max_queued))
    }

    /// Connections registered now.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }
}

/// A hub shared by every connection of the process.
pub type SharedHub = Arc<Hub>;

#[cfg(test)]
mod tests {
    use super::*;
    use cove_shared::random::SeededEntropy;

    fn device(seed: &str) -> DeviceId {
        cove_shared::DeviceSecret::generate(&mut SeededEntropy::new(seed.as_bytes())).id()
    }

    #[tokio::test]
    async fn delivers_to_subscribers_except_the_sender_and_kicks_the_slow() {
        let hub = Hub::default();
        let plan = PlanId::from_bytes([1; 16]);
        let (a, b) = (device("a"), device("b"));
        let mut ra = hub.register(a);
        let mut rb = hub.register(b);
        hub.subscribe(ra.id, plan);
        hub.subscribe(rb.id, plan);
        let frame = Bytes::from_static(b"frame");
        assert_eq!(hub.deliver(plan, Some(a), &frame), 1);
        assert!(matches!(rb.outbound.next().await, Some(Outbound::Frame(f)) if f == frame));
        assert!(ra.outbound.try_next().is_none(), "the sender does not get its own envelope back");

        // One frame more than the queue holds.
        for _ in 0..=OUTBOUND_QUEUE {
            hub.deliver(plan, Some(a), &frame);
        }
        assert!(rb.kick.has_changed().unwrap());
        assert_eq!(*rb.kick.borrow_and_update(), Some(Kick::Error(ErrorCode::Overloaded)));

        hub.revoke(plan, &[a]);
        assert_eq!(*ra.kick.borrow_and_update(), Some(Kick::Revoked(plan)));
        hub.unregister(ra.id);
        hub.unregister(rb.id);
        assert_eq!(hub.connections(), 0);
        assert_eq!(hub.deliver(plan, None, &frame), 0);
    }

    #[tokio::test]
    async fn a_reader_that_does_not_keep_up_is_bounded_in_bytes_too() {
        let hub = Hub::new(10_000);
        let plan = PlanId::from_bytes([1; 16]);
        let mut slow = hub.register(device("slow"));
        hub.subscribe(slow.id, plan);
        let big = Bytes::from(vec![0u8; 4_000]);
        assert_eq!(hub.deliver(plan, None, &big), 1);
        assert_eq!(hub.deliver(plan, None, &big), 1);
        assert!(!slow.kick.has_changed().unwrap());
        // A third would make 12,000 bytes: over the bound, though the
        // queue has room for hundreds of frames.
        assert_eq!(hub.deliver(plan, None, &big), 0);
        assert_eq!(*slow.kick.borrow_and_update(), Some(Kick::Error(ErrorCode::Overloaded)));
        // What is taken off the queue frees its bytes.
        assert!(slow.outbound.next().await.is_some());
        assert!(slow.outbound.try_next().is_some());
        assert_eq!(hub.deliver(plan, None, &big), 1);
    }

    #[test]
    fn after_a_gap_every_subscribed_connection_is_told_to_catch_up() {
        let hub = Hub::default();
        let (x, y) = (PlanId::from_bytes([1; 16]), PlanId::from_bytes([2; 16]));
        let mut a = hub.register(device("a"));
        let mut b = hub.register(device("b"));
        let idle = hub.register(device("c"));
        hub.subscribe(a.id, x);
        hub.subscribe(a.id, y);
        hub.subscribe(b.id, y);
        assert_eq!(hub.fell_behind(), 2, "each subscribed connection once");
        for r in [&mut a, &mut b] {
            assert_eq!(*r.kick.borrow_and_update(), Some(Kick::Error(ErrorCode::Overloaded)));
        }
        assert!(
            !idle.kick.has_changed().unwrap(),
            "a connection that follows no plan is left alone"
        );
    }

    #[test]
    fn unregistering_reports_the_mailboxes_a_connection_held() {
        let hub = Hub::default();
        let r = hub.register(device("a"));
        hub.pair_attach("7", Side::Opener, r.id);
        assert_eq!(hub.unregister(r.id), vec![("7".to_owned(), Side::Opener)]);
        assert!(!hub.pair_send("7", Side::Opener, Outbound::Frame(Bytes::new())));
    }
}
