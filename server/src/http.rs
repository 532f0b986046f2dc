//! The HTTP surface: the WebSocket at `/v1/ws`, `/healthz` and `/metrics`.

use crate::connection;
use crate::error::ApiError;
use crate::metrics::StoreOp;
use crate::relay::RelayState;
use crate::store::Store;
use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cove_shared::wire::ErrorCode;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The relay's routes.
pub fn router<S: Store>(relay: Arc<RelayState<S>>) -> Router {
    Router::new()
        .route("/v1/ws", get(websocket::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .with_state(relay)
}

async fn websocket<S: Store>(
    State(relay): State<Arc<RelayState<S>>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer = peer_address(&relay, addr, &headers);
    // Only to say, when a device's sign-in fails, which address it used.
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.len() <= 255)
        .map(str::to_ascii_lowercase);
    let limits = &relay.settings.limits;
    // tungstenite allocates its buffers per connection; the defaults (about
    // 128 KiB) would dominate an idle relay's memory.
    upgrade
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(limits.write_buffer_bytes)
        .max_write_buffer_size(limits.max_frame_bytes.saturating_mul(2))
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| connection::serve(relay, socket, peer, host))
}

/// The client's address: the TCP peer, or what a trusted proxy says it is
/// (see [`crate::proxies`]).
fn peer_address<S: Store>(relay: &RelayState<S>, addr: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    crate::proxies::client_address(addr.ip(), forwarded, &relay.settings.trusted_proxies)
}

/// 200 when the relay can read and write its store; 503, with one line on
/// what is wrong, when it cannot (or is shutting down).
async fn healthz<S: Store>(State(relay): State<Arc<RelayState<S>>>) -> Response {
    if *relay.shutdown.borrow() {
        return ApiError::new(ErrorCode::ShuttingDown).into_response();
    }
    // A ping shows whether reads work now; whether writes do, only the
    // last write (or probe) can tell.
    let _ = relay.read(StoreOp::Other, relay.store.ping()).await;
    match relay.health.problem() {
        None => "ok\n".into_response(),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")).into_response(),
    }
}

async fn metrics<S: Store>(State(relay): State<Arc<RelayState<S>>>) -> Response {
    let mut text = relay.metrics.render();
    relay.health.render(&mut text);
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
