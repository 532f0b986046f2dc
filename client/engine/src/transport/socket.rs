//! The task that owns the socket: it sends requests in order, matches
//! answers to them, forwards what the relay sends on its own, and keeps
//! the connection alive.

use super::{KEEPALIVE, Push, Reply, TransportError};
use cove_shared::wire::{self, ClientToRelay, RelayToClient, RequestId};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) async fn read(socket: &mut Socket) -> Result<RelayToClient, TransportError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(frame))) => {
                let message = wire::decode(&frame)
                    .map_err(|_| TransportError::Protocol("undecodable frame"))?;
                return super::checks::checked(message);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => return Err(TransportError::Protocol("text frame")),
            Some(Ok(Message::Close(_))) | None => return Err(TransportError::Closed),
            Some(Err(_)) => return Err(TransportError::Closed),
        }
    }
}

pub(super) async fn write(
    socket: &mut Socket,
    message: &ClientToRelay,
) -> Result<(), TransportError> {
    let frame = wire::encode(message).map_err(|_| TransportError::Protocol("message too large"))?;
    socket.send(Message::Binary(frame.into())).await.map_err(|_| TransportError::Closed)
}

/// Owns the socket until it closes.
pub(super) async fn drive(
    mut socket: Socket,
    mut requests: mpsc::Receiver<(ClientToRelay, Reply)>,
    pushes: mpsc::Sender<Push>,
) {
    let mut waiting: HashMap<RequestId, Reply> = HashMap::new();
    let mut lagged = false;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let end = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((message, reply)) = request else { break TransportError::Closed };
                let Some(id) = message.request() else { continue };
                if let Err(error) = write(&mut socket, &message).await {
                    let _ = reply.send(Err(error.clone()));
                    break error;
                }
                waiting.insert(id, reply);
            }
            frame = read(&mut socket) => {
                let message = match frame {
                    Ok(message) => message,
                    Err(error) => break error,
                };
                if let Some(id) = message.request() {
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(Ok(message));
                    }
                    continue;
                }
                let push = match message {
                    RelayToClient::Deliver { plan, item } => Push::Deliver { plan, item },
                    RelayToClient::MembershipChanged { plan, len } => Push::MembershipChanged { plan, len },
                    RelayToClient::PairMessage { nameplate, body } => Push::PairMessage { nameplate, body: body.0 },
                    RelayToClient::PairClosed { nameplate, outcome } => Push::PairClosed { nameplate, outcome },
                    RelayToClient::Revoked { plan } => {
                        let _ = pushes.send(Push::Revoked { plan }).await;
                        break TransportError::Revoked;
                    }
                    RelayToClient::Error { code, message, .. } => {
                        break TransportError::Refused { code, message };
                    }
                    _ => continue,
                };
                match push {
                    // Never let a slow reader stop answers from flowing: a
                    // dropped delivery is fetched again after `Lagged`.
                    Push::Deliver { .. } => {
                        if pushes.try_send(push).is_err() {
                            lagged = true;
                        }
                    }
                    other => {
                        let _ = pushes.send(other).await;
                    }
                }
                if lagged && pushes.try_send(Push::Lagged).is_ok() {
                    lagged = false;
                }
            }
            _ = keepalive.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break TransportError::Closed;
                }
            }
        }
    };
    for (_, reply) in waiting.drain() {
        let _ = reply.send(Err(end.clone()));
    }
    let _ = pushes.send(Push::Closed(end)).await;
    let _ = socket.close(None).await;
}
