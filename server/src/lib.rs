//! `cove-server`: the relay. It stores and forwards sealed envelopes for
//! many plans and never holds a key: ciphertext, routing data and public
//! keys are all it ever sees.
//!
//! A library with a thin binary: [`launch`] runs the relay from
//! [`Settings`] until SIGINT or SIGTERM; [`launch_with_listener`] runs it on
//! a listener you bound, until the future you pass resolves (tests use it).
//!
//! # Layout
//! - [`settings`]: layered configuration.
//! - [`store`]: the `Store` trait and its SQLite and PostgreSQL backends.
//! - [`events`]: what relay processes sharing a database tell each other.
//! - [`relay`]: shared state and background tasks.
//! - [`http`]: routes; [`connection`]: one WebSocket; [`requests`]: each request.
//! - [`hub`]: in-process live delivery; [`batch`]: group commit.
//! - [`serve`]: the accept loop, with a deadline on every request head.
//! - [`tcp`]: every socket's handshake and idle deadlines, and their caps.
//! - [`health`]: whether the store takes reads and writes.
//! - [`proxies`]: which reverse proxies may name a client's address.
//! - [`limits`], [`metrics`], [`error`].

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batch;
pub mod connection;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod probe;
pub mod proxies;
pub mod relay;
pub mod requests;
pub mod serve;
pub mod settings;
pub mod store;
pub mod tcp;
pub mod tls;

pub use settings::Settings;

use anyhow::Context;
use cove_shared::clock::{self, SharedClock};
use relay::RelayState;
use std::future::Future;
use std::time::Duration;
use store::{PostgresStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The protocol version this relay speaks.
pub const PROTOCOL_VERSION: u16 = cove_shared::wire::PROTOCOL_VERSION;

/// Binds `settings.listen` and serves until SIGINT or SIGTERM.
pub async fn launch(settings: Settings) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    launch_with_listener(settings, listener, clock::system(), shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves, then lets connections
/// finish (up to the drain timeout) and returns. The relay reads the time
/// (for signals' time to live and pairing mailboxes) from `clock`.
pub async fn launch_with_listener(
    settings: Settings,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let url = settings.database.clone();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(&url)
            .await
            .with_context(|| format!("cannot open {}", settings::redact_url(&url)))?;
        serve(settings, store, listener, clock, shutdown).await
    } else {
        let options = store::SqliteOptions {
            synchronous: settings.sqlite_synchronous,
            max_bytes: settings.sqlite_max_bytes,
        };
        let store = SqliteStore::connect(&url, options)
            .await
            .with_context(|| format!("cannot open {}", settings::redact_url(&url)))?;
        serve(settings, store, listener, clock, shutdown).await
    }
}

/// Serves with a store that is already open.
pub async fn serve<S: Store>(
    settings: Settings,
    store: S,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let drain = settings.limits.drain_timeout;
    let (stop, stopped) = watch::channel(false);
    let relay = RelayState::new(settings, store, clock, stopped);
    relay.spawn_background();
    let address = listener.local_addr().ok();
    tracing::info!(?address, origins = ?relay.origins, "relay listening");
    let app = http::router(relay.clone());
    let limits = &relay.settings.limits;
    let bounds = tcp::Bounds {
        handshake_timeout: limits.handshake_timeout,
        // Longer than the WebSocket's own, which closes with a reason.
        idle_timeout: limits.idle_timeout.saturating_mul(2),
        max_pending: limits.max_pending_connections,
        max_open: limits.max_connections.saturating_add(limits.max_pending_connections),
        max_pending_per_address: limits.max_pending_per_address,
        max_open_per_address: limits.max_connections_per_address,
        exempt: relay.settings.trusted_proxies.clone(),
    };
    let tls = match (&relay.settings.tls_cert, &relay.settings.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = std::sync::Arc::new(tls::Tls::load(cert, key).map_err(anyhow::Error::msg)?);
            tls.spawn_reloader(relay.shutdown.clone());
            Some(tls)
        }
        (None, None) => {
            // SIGHUP reloads TLS; without TLS it must still not end the
            // relay (`systemctl reload` sends it).
            tls::ignore_hangups(relay.shutdown.clone());
            None
        }
        _ => anyhow::bail!("TLS needs both tls_cert and tls_key (or neither)"),
    };
    let listener = tcp::GuardedListener::new(listener, bounds);
    relay.metrics.watch_sockets(listener.counts());
    serve::serve(listener, app, limits.handshake_timeout, tls, async move {
        shutdown.await;
        tracing::info!("shutting down; draining connections");
        let _ = stop.send(true);
    })
    .await;
    // WebSocket connections run outside the HTTP server once upgraded: each
    // has been told to close; give them the drain timeout to finish.
    let deadline = tokio::time::Instant::now() + drain;
    while relay.metrics.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(remaining = relay.metrics.open_connections(), "relay stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
