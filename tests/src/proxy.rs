//! A misbehaving relay: a WebSocket proxy between a device and a real relay
//! that alters what the relay serves, the way a compromised relay could.
//!
//! Requests pass through untouched, unless the fault answers them itself.
//! Pages and live deliveries pass through the current [`Fault`]. The relay must list the proxy's origin among the
//! origins it accepts, since the device signs the address it dialed.

use cove_shared::wire::{self, Blob, ClientToRelay, Cursor, RelayToClient, StoredEnvelope};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// How the proxy misbehaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    #[default]
    None,
    /// Flip one bit inside the ciphertext of the envelopes with these
    /// cursors.
    FlipBit(Vec<u64>),
    /// Serve every envelope twice.
    Replay,
    /// Serve the envelopes with these cursors in reverse order, with their
    /// cursors swapped to match, so that sorting by cursor does not undo it.
    Reorder(Vec<u64>),
    /// Leave out the envelopes with these cursors.
    Drop(Vec<u64>),
    /// Leave out the envelopes with the `drop` cursors, and serve copies of
    /// the envelope at `copy` in place of those at the `onto` cursors: the
    /// same envelope again and again, under other cursors.
    DropAndCopy {
        /// Cursors left out.
        drop: Vec<u64>,
        /// The envelope copied.
        copy: u64,
        /// Cursors whose envelopes are replaced by the copy.
        onto: Vec<u64>,
    },
    /// Leave out live deliveries of the envelopes with these cursors (pages
    /// still carry them), as a relay with a full queue does.
    DropLive(Vec<u64>),
    /// Add these envelopes (old ones, say, under new cursors) to the next
    /// page, once.
    Inject(Vec<StoredEnvelope>),
    /// Pretend the plan ends at this cursor: serve nothing after it, and say
    /// the head is there; serve only this many membership entries.
    Rollback {
        /// The head to claim.
        head: u64,
        /// The membership length to claim.
        membership: u64,
    },
    /// Serve this entry after the membership log's last one.
    ExtraEntry(Vec<u8>),
    /// Leave out every envelope this device sent, in pages and live
    /// deliveries, while serving everything else.
    Withhold(cove_shared::DeviceId),
    /// Label every page with another plan's id.
    WrongPlan(cove_shared::PlanId),
    /// After the next frame, tell the device it was revoked from this plan
    /// (an unsigned claim), once.
    ClaimRevoked(cove_shared::PlanId),
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// `ws://127.0.0.1:PORT`: give this to the device as its relay.
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    pushes: Arc<Mutex<Option<FakeStored>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Binds the proxy's port; call [`Self::start`] once the relay runs.
    pub async fn bind() -> (TcpListener, String) {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind proxy: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("proxy addr: {e}"));
        (listener, format!("ws://{addr}"))
    }

    /// Serves on `listener`, forwarding to the relay at `upstream`.
    pub fn start(listener: TcpListener, url: String, upstream: &str) -> Self {
        let fault = Arc::new(Mutex::new(Fault::None));
        let pushes = Arc::new(Mutex::new(None));
        let upstream = format!("{upstream}/v1/ws");
        let (shared, fakes) = (Arc::clone(&fault), Arc::clone(&pushes));
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (fault, pushes) = (Arc::clone(&shared), Arc::clone(&fakes));
                tokio::spawn(relay_one(tcp, upstream.clone(), fault, pushes));
            }
        });
        Self { url, fault, pushes, task }
    }

    /// Changes how the proxy alters what the relay serves from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Answers pushes itself from now on (`None`: passes them on again).
    pub fn fake_pushes(&self, fake: Option<FakeStored>) {
        *self.pushes.lock().unwrap_or_else(PoisonError::into_inner) = fake;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay_one(
    tcp: tokio::net::TcpStream,
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    pushes: Arc<Mutex<Option<FakeStored>>>,
) {
    let Ok(client) = tokio_tungstenite::accept_async(tcp).await else { return };
    let Ok((relay, _)) = tokio_tungstenite::connect_async(upstream.as_str()).await else { return };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_relay, mut from_relay) = relay.split();
    loop {
        tokio::select! {
            message = from_client.next() => match message {
                Some(Ok(message)) => {
                    let fake = *pushes.lock().unwrap_or_else(PoisonError::into_inner);
                    let faked = fake_answer(&message, fake);
                    let sent = match faked {
                        Some(answer) => to_client.send(Message::Binary(answer.into())).await,
                        None => to_relay.send(message).await,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            message = from_relay.next() => match message {
                Some(Ok(Message::Binary(frame))) => {
                    let frames = {
                        let mut current = fault.lock().unwrap_or_else(PoisonError::into_inner);
                        let frames = tamper(&frame, &current);
                        let page = matches!(wire::decode::<RelayToClient>(&frame), Ok(RelayToClient::Page { .. }));
                        if (page && matches!(*current, Fault::Inject(_)))
                            || matches!(*current, Fault::ClaimRevoked(_))
                        {
                            *current = Fault::None;
                        }
                        frames
                    };
                    for out in frames {
                        if to_client.send(Message::Binary(out.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(message)) => {
                    if to_client.send(message).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

/// How the proxy answers pushes itself: "stored" under a cursor it names,
/// while the relay never sees the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeStored {
    /// The cursor claimed.
    pub cursor: u64,
    /// Whether to claim it was already stored.
    pub duplicate: bool,
}

/// The answer the proxy gives itself, instead of passing `message` on.
fn fake_answer(message: &Message, fake: Option<FakeStored>) -> Option<Vec<u8>> {
    let FakeStored { cursor, duplicate } = fake?;
    let Message::Binary(frame) = message else { return None };
    let Ok(ClientToRelay::Push { request, .. }) = wire::decode::<ClientToRelay>(frame) else {
        return None;
    };
    let answer = RelayToClient::Stored { request, cursor: Cursor(cursor), duplicate };
    wire::encode(&answer).ok()
}

/// The frames the device gets instead of `frame`.
fn tamper(frame: &[u8], fault: &Fault) -> Vec<Vec<u8>> {
    if *fault == Fault::None {
        return vec![frame.to_vec()];
    }
    let Ok(message) = wire::decode::<RelayToClient>(frame) else { return vec![frame.to_vec()] };
    if let Fault::ClaimRevoked(plan) = fault {
        let claim = wire::encode(&RelayToClient::Revoked { plan: *plan }).unwrap_or_default();
        return vec![frame.to_vec(), claim];
    }
    if let (Fault::WrongPlan(other), RelayToClient::Page { request, items, head, compacted, .. }) =
        (fault, &message)
    {
        let (items, head, compacted) = (items.clone(), *head, *compacted);
        let page = RelayToClient::Page { request: *request, plan: *other, items, head, compacted };
        return wire::encode(&page).into_iter().collect();
    }
    let altered = match message {
        RelayToClient::Page { request, plan, items, head, compacted } => {
            let (items, head) = alter_items(items, head, fault);
            vec![RelayToClient::Page { request, plan, items, head, compacted }]
        }
        RelayToClient::Deliver { item, .. } if matches!(fault, Fault::DropLive(c) if c.contains(&item.cursor.0)) => {
            Vec::new()
        }
        RelayToClient::Deliver { plan, item } => {
            let (items, _) = alter_items(vec![item], Cursor(u64::MAX), fault);
            items.into_iter().map(|item| RelayToClient::Deliver { plan, item }).collect()
        }
        RelayToClient::Membership { request, plan, mut entries, len } => match fault {
            Fault::Rollback { membership, .. } => {
                let keep = usize::try_from(*membership).unwrap_or(usize::MAX);
                entries.truncate(keep);
                vec![RelayToClient::Membership {
                    request,
                    plan,
                    entries,
                    len: len.min(*membership),
                }]
            }
            Fault::ExtraEntry(extra) => {
                entries.push(Blob(extra.clone()));
                vec![RelayToClient::Membership { request, plan, entries, len: len + 1 }]
            }
            _ => vec![RelayToClient::Membership { request, plan, entries, len }],
        },
        other => vec![other],
    };
    altered.iter().filter_map(|m| wire::encode(m).ok()).collect()
}

fn alter_items(
    mut items: Vec<StoredEnvelope>,
    head: Cursor,
    fault: &Fault,
) -> (Vec<StoredEnvelope>, Cursor) {
    match fault {
        Fault::None
        | Fault::DropLive(_)
        | Fault::WrongPlan(_)
        | Fault::ClaimRevoked(_)
        | Fault::ExtraEntry(_) => (items, head),
        Fault::FlipBit(cursors) => {
            for item in items.iter_mut().filter(|i| cursors.contains(&i.cursor.0)) {
                flip(&mut item.envelope);
            }
            (items, head)
        }
        Fault::Replay => (items.iter().flat_map(|i| [i.clone(), i.clone()]).collect(), head),
        Fault::Reorder(targets) => {
            let chosen: Vec<usize> =
                (0..items.len()).filter(|i| targets.contains(&items[*i].cursor.0)).collect();
            let cursors: Vec<Cursor> = chosen.iter().map(|i| items[*i].cursor).collect();
            let envelopes: Vec<Blob> = chosen.iter().map(|i| items[*i].envelope.clone()).collect();
            for ((slot, cursor), envelope) in
                chosen.iter().zip(cursors).zip(envelopes.into_iter().rev())
            {
                items[*slot] = StoredEnvelope { cursor, envelope };
            }
            (items, head)
        }
        Fault::Drop(cursors) => {
            items.retain(|i| !cursors.contains(&i.cursor.0));
            (items, head)
        }
        Fault::Withhold(sender) => {
            items.retain(|i| {
                cove_shared::envelope::header_of(&i.envelope.0)
                    .map_or(true, |h| h.sender != *sender)
            });
            (items, head)
        }
        Fault::DropAndCopy { drop, copy, onto } => {
            let copied = items.iter().find(|i| i.cursor.0 == *copy).map(|i| i.envelope.clone());
            items.retain(|i| !drop.contains(&i.cursor.0));
            if let Some(envelope) = copied {
                for item in items.iter_mut().filter(|i| onto.contains(&i.cursor.0)) {
                    item.envelope = envelope.clone();
                }
            }
            (items, head)
        }
        Fault::Inject(extra) => {
            items.extend(extra.iter().cloned());
            (items, head)
        }
        Fault::Rollback { head: claimed, .. } => {
            items.retain(|i| i.cursor.0 <= *claimed);
            (items, Cursor(head.0.min(*claimed)))
        }
    }
}

/// Flips one bit just after the header and nonce: inside the ciphertext.
fn flip(envelope: &mut Blob) {
    let at = cove_shared::envelope::HEADER_LEN + 24 + 1;
    if let Some(byte) = envelope.0.get_mut(at) {
        *byte ^= 0x10;
    }
}
