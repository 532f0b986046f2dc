//! `cove ui`: the plan as a local web page, for partners who never open a
//! terminal.
//!
//! It serves on 127.0.0.1 only. The address it prints carries a one-time
//! token; the first request with it receives a session cookie (HttpOnly,
//! SameSite=Strict) and the token is spent. Every request must carry that
//! cookie and a `Host` of this loopback address (so that a web page elsewhere
//! cannot reach it by DNS rebinding); every form must come from this origin
//! and carry the page's anti-forgery value. The sync engine runs alongside,
//! and a change or signal from the partner reaches open pages at once as a
//! server-sent event.
//!
//! # Layout
//! - [`guard`]: the token, the cookie, the `Host` and origin checks.
//! - [`pages`]: the pages (GET).
//! - [`actions`]: the forms (POST), with the command line's rules.
//! - [`fields`]: which fields each section's forms have.
//! - [`html`], [`assets`]: markup helpers, the stylesheet and script.

pub mod actions;
pub mod assets;
pub mod fields;
pub mod guard;
pub mod html;
pub mod pages;

use crate::device::{Device, DeviceError};
use crate::home::Home;
use crate::sync::{self, Event};
use axum::Router;
use axum::routing::{get, post};
use cove_shared::random::Entropy;
use cove_shared::{DeviceId, OsEntropy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{Mutex, broadcast, oneshot};

/// Something open pages should know at once.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// "changed" or "signal".
    pub kind: &'static str,
    /// JSON for the page's script.
    pub data: String,
}

/// What the server shares between requests.
pub struct Ui {
    /// The device the pages read and change (the sync engine runs on a
    /// second instance of the same state; each request takes up its writes).
    pub device: Mutex<Device>,
    /// The one-time token, until it is spent.
    pub token: std::sync::Mutex<Option<String>>,
    /// The session cookie's value.
    pub session: String,
    /// The value every form carries.
    pub csrf: String,
    /// The `Host` values accepted: `127.0.0.1:PORT`, `localhost:PORT`.
    pub hosts: Vec<String>,
    /// Live events for open pages.
    pub events: broadcast::Sender<LiveEvent>,
}

impl Ui {
    /// Tells open pages the plan changed.
    pub fn changed(&self) {
        let _ = self.events.send(LiveEvent { kind: "changed", data: "{}".into() });
    }
}

/// A running `cove ui`.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The address to open, with the one-time token.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    daemon: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and the sync engine.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open pages hold their event streams: give requests in flight a
        // moment, then close the rest.
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.server).await.is_err()
        {
            self.server.abort();
            let _ = (&mut self.server).await;
        }
        self.daemon.abort();
        let _ = (&mut self.daemon).await;
    }
}

fn random_hex(entropy: &mut impl Entropy) -> String {
    let bytes: [u8; 32] = entropy.array();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unlocks the device in `home` (twice: one instance for the pages, one for
/// the sync engine), binds 127.0.0.1:`port` (0: any free port), and serves.
pub async fn start(home: &Home, passphrase: &str, port: u16) -> Result<Running, DeviceError> {
    let device = Device::open(home, passphrase).await?;
    let mut engine = Device::open(home, passphrase).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| DeviceError::Invalid(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DeviceError::Invalid(format!("cannot tell the listening address: {e}")))?;
    let (events, _) = broadcast::channel(64);
    let token = random_hex(&mut OsEntropy);
    let ui = Arc::new(Ui {
        device: Mutex::new(device),
        token: std::sync::Mutex::new(Some(token.clone())),
        session: random_hex(&mut OsEntropy),
        csrf: random_hex(&mut OsEntropy),
        hosts: vec![format!("127.0.0.1:{}", addr.port()), format!("localhost:{}", addr.port())],
        events: events.clone(),
    });
    let router = router(Arc::clone(&ui));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::warn!(%error, "the page server stopped");
        }
    });
    let labels = device_labels(&ui).await;
    let daemon = tokio::spawn(async move {
        let on_event = |event: &Event| forward(&events, &labels, event);
        let never = Box::pin(std::future::pending::<()>());
        if let Err(error) = sync::run_daemon(&mut engine, on_event, never).await {
            tracing::warn!(%error, "the sync engine stopped");
        }
    });
    Ok(Running {
        addr,
        url: format!("http://127.0.0.1:{}/?token={token}", addr.port()),
        stop: Some(stop_tx),
        server,
        daemon,
    })
}

/// Each device's name for signal banners: "Sam".
async fn device_labels(ui: &Ui) -> BTreeMap<DeviceId, String> {
    let device = ui.device.lock().await;
    let plan = crate::plan::current(device.docs());
    device.membership().members().map(|m| (m.device, plan.name(m.partner))).collect()
}

/// Turns the sync engine's events into live events for open pages.
fn forward(
    events: &broadcast::Sender<LiveEvent>,
    labels: &BTreeMap<DeviceId, String>,
    event: &Event,
) {
    let (applied, signals) = match event {
        Event::Synced(report) => (report.applied.iter().sum::<usize>(), report.signals.as_slice()),
        Event::Applied(received) => {
            (received.applied.iter().sum::<usize>(), received.signals.as_slice())
        }
        Event::Disconnected { .. } => (0, &[][..]),
    };
    if applied > 0 || matches!(event, Event::Synced(_)) {
        let _ = events.send(LiveEvent { kind: "changed", data: "{}".into() });
    }
    let now = crate::device::unix_millis();
    for signal in signals.iter().filter(|s| !s.expired(now)) {
        let from = labels.get(&signal.from).cloned().unwrap_or_else(|| "your partner".into());
        let data = serde_json::json!({ "from": from, "text": signal.signal.signal }).to_string();
        let _ = events.send(LiveEvent { kind: "signal", data });
    }
}

fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/now", get(pages::now))
        .route("/s/{section}", get(pages::section))
        .route("/checkin", get(pages::checkin))
        .route("/deescalation", get(pages::deescalation))
        .route("/sessions", get(pages::sessions))
        .route("/reviews", get(pages::reviews))
        .route("/journal", get(pages::journal))
        .route("/status", get(pages::status))
        .route("/events", get(pages::events))
        .route(assets::STYLE_PATH, get(pages::style))
        .route(assets::SCRIPT_PATH, get(pages::script))
        .route("/s/{section}/add", post(actions::add))
        .route("/s/{section}/{id}/edit", post(actions::edit))
        .route("/s/{section}/{id}/archive", post(actions::archive))
        .route("/s/{section}/{id}/restore", post(actions::restore))
        .route("/boundary/{id}/{status}", post(actions::boundary_status))
        .route("/prefer/{option}", post(actions::prefer))
        .route("/step/{id}/move", post(actions::move_step))
        .route("/setting/{name}", post(actions::setting))
        .route("/signal", post(actions::signal))
        .route("/sessions/log", post(actions::log_session))
        .route("/debrief/{session}", post(actions::debrief))
        .route("/reviews/record", post(actions::record_review))
        .route("/reviews/{id}/confirm", post(actions::confirm_review))
        .route("/journal", post(actions::journal))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&ui), guard::guard))
        .with_state(ui)
}
