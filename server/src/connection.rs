//! One WebSocket connection: challenge, authentication, then requests in
//! order, with live deliveries interleaved.
//!
//! Every wait has a bound: authentication must finish within the auth
//! timeout, a silent connection is closed after the idle timeout, a device
//! that keeps exceeding its rate is disconnected, and a peer that does not
//! take what the relay writes within the write timeout is dropped (its
//! frames would otherwise sit in the relay's memory). Whatever else ends a
//! connection is reported to the device as one error frame first.

use crate::error::ApiError;
use crate::hub::{Kick, Outbound, Registration};
use crate::relay::RelayState;
use crate::requests::Session;
use crate::store::Store;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use cove_shared::random::Entropy;
use cove_shared::wire::{self, ClientToRelay, ErrorCode, Nonce32, RelayToClient, WireError};
use cove_shared::{DeviceId, OsEntropy};
use futures_util::SinkExt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until, timeout};

/// Queued frames written before one flush.
const MAX_COALESCED: usize = 64;

/// Serves one upgraded connection until it ends.
#[tracing::instrument(skip_all, fields(peer = %peer, device = tracing::field::Empty))]
pub async fn serve<S: Store>(
    relay: Arc<RelayState<S>>,
    mut socket: WebSocket,
    peer: IpAddr,
    host: Option<String>,
) {
    let _gauge = relay.metrics.connection();
    // The gauge counts this connection already, authenticated or not.
    if relay.metrics.open_connections() > relay.settings.limits.max_connections as i64 {
        refuse(&relay, &mut socket, ApiError::new(ErrorCode::TooManyConnections)).await;
        return;
    }
    let device = match authenticate(&relay, &mut socket, host.as_deref()).await {
        Ok(device) => device,
        Err(error) => {
            refuse(&relay, &mut socket, error).await;
            return;
        }
    };
    tracing::Span::current().record("device", tracing::field::display(device.fingerprint()));
    tracing::debug!("authenticated");
    let registration = relay.hub.register(device);
    let id = registration.id;
    let mut session = Session::new(&relay, device, id, peer);
    let end = run(&relay, &mut socket, &mut session, registration).await;
    for (nameplate, side) in relay.hub.unregister(id) {
        // Boxed, like every request: a store call's future is large, and
        // held inline it would make every idle connection's task as large.
        Box::pin(session.abandon_pairing(&nameplate, side)).await;
    }
    match end {
        End::Error(error) => refuse(&relay, &mut socket, error).await,
        End::Quiet => {
            let _ = timeout(relay.settings.limits.write_timeout, socket.send(Message::Close(None)))
                .await;
        }
        End::Stalled => {
            // Writing anything more would wait on the same peer: drop it.
            relay.metrics.rejected(ErrorCode::Overloaded);
            tracing::debug!("the peer stopped taking frames; dropped");
        }
    }
    tracing::debug!("closed");
}

/// Sends the challenge and checks the answer. `host` is the Host the
/// upgrade request named, used only to tell the operator which address a
/// refused device used.
async fn authenticate<S: Store>(
    relay: &RelayState<S>,
    socket: &mut WebSocket,
    host: Option<&str>,
) -> Result<DeviceId, ApiError> {
    let nonce = Nonce32(OsEntropy.array());
    let origin = relay.origins.first().cloned().unwrap_or_default();
    let challenge = RelayToClient::Challenge { version: wire::PROTOCOL_VERSION, origin, nonce };
    send(socket, &challenge).await.map_err(|()| ApiError::new(ErrorCode::Internal).fatal())?;
    let answer = timeout(relay.settings.limits.auth_timeout, socket.recv())
        .await
        .map_err(|_| ApiError::new(ErrorCode::AuthTimeout).fatal())?;
    let frame = match answer {
        Some(Ok(Message::Binary(frame))) => frame,
        Some(Ok(_)) | Some(Err(_)) | None => return Err(ApiError::new(ErrorCode::BadFrame).fatal()),
    };
    match wire::decode::<ClientToRelay>(&frame) {
        Ok(ClientToRelay::Authenticate { device, signature }) => {
            let valid = relay
                .origins
                .iter()
                .any(|o| wire::verify_challenge(o, &nonce, &device, &signature));
            if valid {
                send(socket, &RelayToClient::Authenticated { device })
                    .await
                    .map_err(|()| ApiError::new(ErrorCode::Internal).fatal())?;
                Ok(device)
            } else {
                if let Some(host) = host {
                    relay.note_unaccepted_origin(host, &nonce, &device, &signature);
                }
                Err(ApiError::new(ErrorCode::AuthFailed).fatal())
            }
        }
        Ok(_) => Err(ApiError::new(ErrorCode::AuthRequired).fatal()),
        Err(error) => Err(frame_error(&error).fatal()),
    }
}

/// How a connection's request loop ended.
enum End {
    /// With an error to report.
    Error(ApiError),
    /// Closed by the peer, or let go by the hub: nothing to say.
    Quiet,
    /// The peer stopped taking what the relay writes.
    Stalled,
}

/// Why a write did not happen.
enum WriteFailed {
    /// The socket is gone.
    Closed,
    /// The peer did not take it within the write timeout.
    Stalled,
}

impl From<WriteFailed> for End {
    fn from(failed: WriteFailed) -> Self {
        match failed {
            WriteFailed::Closed => Self::Quiet,
            WriteFailed::Stalled => Self::Stalled,
        }
    }
}

/// One write to the socket, within `limit`.
async fn within(
    limit: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), WriteFailed> {
    match timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Closed),
        Err(_) => Err(WriteFailed::Stalled),
    }
}

/// The request loop, until something ends it.
async fn run<S: Store>(
    relay: &RelayState<S>,
    socket: &mut WebSocket,
    session: &mut Session<'_, S>,
    mut registration: Registration,
) -> End {
    let idle = relay.settings.limits.idle_timeout;
    let write = relay.settings.limits.write_timeout;
    let mut deadline = Instant::now() + idle;
    let mut shutdown = relay.shutdown.clone();
    if *shutdown.borrow() {
        return End::Error(ApiError::new(ErrorCode::ShuttingDown).fatal());
    }
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return End::Error(ApiError::new(ErrorCode::ShuttingDown).fatal()),
            _ = registration.kick.changed() => {
                let kick = registration.kick.borrow_and_update().clone();
                match kick {
                    Some(Kick::Revoked(plan)) => {
                        relay.metrics.rejected(ErrorCode::Revoked);
                        let frame = encoded(&RelayToClient::Revoked { plan });
                        if let Err(failed) = within(write, socket.send(Message::Binary(frame))).await {
                            return failed.into();
                        }
                        return End::Quiet;
                    }
                    Some(Kick::Error(code)) => return End::Error(ApiError::new(code).fatal()),
                    None => {}
                }
            }
            out = registration.outbound.next() => {
                // The hub dropped this connection: end quietly.
                let Some(first) = out else { return End::Quiet };
                // Write everything already queued, then flush once: under
                // load this turns many small writes into one system call.
                let mut next = Some(first);
                let mut written = 0;
                while let Some(out) = next {
                    let frame = match out {
                        Outbound::Frame(frame) => Some(frame),
                        Outbound::PairMessage { id, frame } => session.first_delivery(id).then_some(frame),
                    };
                    if let Some(frame) = frame {
                        if let Err(failed) = within(write, socket.feed(Message::Binary(frame))).await {
                            return failed.into();
                        }
                        written += 1;
                    }
                    next = if written < MAX_COALESCED { registration.outbound.try_next() } else { None };
                }
                if let Err(failed) = within(write, socket.flush()).await {
                    return failed.into();
                }
            }
            message = socket.recv() => {
                deadline = Instant::now() + idle;
                let frame = match message {
                    Some(Ok(Message::Binary(frame))) => frame,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(_))) => return End::Error(ApiError::with(ErrorCode::BadFrame, "text frames are not part of the protocol").fatal()),
                    Some(Ok(Message::Close(_))) | None => return End::Quiet,
                    Some(Err(error)) => return End::Error(socket_error(&error, relay.settings.limits.max_frame_bytes)),
                };
                // Boxed: a request's future (the store's calls) is large, and
                // would otherwise be part of every idle connection's memory.
                match Box::pin(respond(session, &frame)).await {
                    Ok(replies) => {
                        for reply in replies {
                            if let Err(failed) = within(write, socket.feed(Message::Binary(reply))).await {
                                return failed.into();
                            }
                        }
                        if let Err(failed) = within(write, socket.flush()).await {
                            return failed.into();
                        }
                    }
                    Err(error) => return End::Error(error),
                }
            }
            _ = sleep_until(deadline) => return End::Error(ApiError::new(ErrorCode::IdleTimeout).fatal()),
        }
    }
}

fn encoded(message: &RelayToClient) -> Bytes {
    wire::encode(message).map(Bytes::from).unwrap_or_default()
}

/// Handles one frame; `Err` only for an error that ends the connection.
async fn respond<S: Store>(
    session: &mut Session<'_, S>,
    frame: &[u8],
) -> Result<Vec<Bytes>, ApiError> {
    // A fatal error is counted where the connection ends (`refuse`); a
    // refused request here.
    let request = match wire::decode::<ClientToRelay>(frame) {
        Ok(request) => request,
        Err(error) => return Err(frame_error(&error).fatal()),
    };
    let id = request.request();
    let replies = match session.handle(request).await {
        Ok(replies) => replies,
        Err(error) => {
            if error.fatal {
                return Err(error);
            }
            session.relay.metrics.rejected(error.code);
            tracing::debug!(code = %error.code, "request refused");
            vec![error.frame(id)]
        }
    };
    Ok(replies.iter().filter_map(|r| wire::encode(r).ok()).map(Bytes::from).collect())
}

fn frame_error(error: &WireError) -> ApiError {
    match error {
        WireError::FrameTooLarge { .. } => ApiError::new(ErrorCode::FrameTooLarge),
        WireError::Unsupported => ApiError::new(ErrorCode::Unsupported),
        _ => ApiError::new(ErrorCode::BadFrame),
    }
}

fn socket_error(error: &axum::Error, max: usize) -> ApiError {
    let text = error.to_string();
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("Capacity")
    {
        ApiError::with(ErrorCode::FrameTooLarge, format!("messages are limited to {max} bytes"))
            .fatal()
    } else {
        ApiError::new(ErrorCode::BadFrame).fatal()
    }
}

/// Reports `error` to the peer and closes, giving up on a peer that does
/// not take it within the write timeout.
async fn refuse<S: Store>(relay: &RelayState<S>, socket: &mut WebSocket, error: ApiError) {
    relay.metrics.rejected(error.code);
    tracing::debug!(code = %error.code, "connection ended");
    let limit = relay.settings.limits.write_timeout;
    let frame = Message::Binary(encoded(&error.frame(None)));
    if within(limit, socket.send(frame)).await.is_err() {
        return;
    }
    let reason = error.code.name();
    let close = Message::Close(Some(CloseFrame { code: 1008, reason: reason.into() }));
    let _ = within(limit, socket.send(close)).await;
}

async fn send(socket: &mut WebSocket, message: &RelayToClient) -> Result<(), ()> {
    let frame = wire::encode(message).map_err(|_| ())?;
    socket.send(Message::Binary(Bytes::from(frame))).await.map_err(|_| ())
}
