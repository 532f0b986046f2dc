//! `cove-web`: the plan as a local web page (`cove ui`), for partners who
//! never open a terminal; one face over the `cove-client` engine.
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
//! - [`lock`]: the lock after a time without use, or on Escape twice.
//! - [`pages`]: the pages (GET).
//! - [`actions`]: the forms (POST), with the command line's rules.
//! - [`signaling`]: sending a signal and answering one, truthfully.
//! - [`fields`]: which fields each section's forms have.
//! - [`html`], [`assets`]: markup helpers, the stylesheet and script.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod actions;
mod advice;
pub mod assets;
pub mod fields;
pub mod guard;
pub mod html;
pub mod lock;
pub mod pages;
pub mod signaling;

use axum::Router;
use axum::routing::{get, post};
use cove_client::device::{Device, DeviceError, Reminder};
use cove_client::home::Home;
use cove_client::sync::{self, Event};
use cove_shared::random::Entropy;
use cove_shared::{DeviceId, OsEntropy, Partner};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify, broadcast, oneshot};

/// Something open pages should know at once.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// "changed" or "signal".
    pub kind: &'static str,
    /// JSON for the page's script.
    pub data: String,
}

/// The outcome of a form, shown once on the page it leads back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// One sentence.
    pub text: String,
    /// Whether it reports something that was refused.
    pub error: bool,
}

/// How many form outcomes are kept for their pages.
const NOTES_KEPT: usize = 64;

/// The sync engine's connection to the relay, as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    /// Connected and in sync.
    Connected,
    /// Not connected: why, and whether it will try again.
    Down {
        /// What went wrong, in one sentence.
        error: String,
        /// Whether the engine retries (it stops for good when revoked).
        retrying: bool,
    },
}

/// What the server shares between requests.
pub struct Ui {
    /// The device the pages read and change (the sync engine runs on a
    /// second instance of the same state; each request takes up its writes).
    pub device: Mutex<Device>,
    /// The one-time token, until it is spent.
    pub token: std::sync::Mutex<Option<String>>,
    /// The session cookie's name: `cove_session_PORT`, so that two `cove ui`
    /// (two devices on one computer) in one browser keep their own.
    pub cookie: String,
    /// The session cookie's value.
    pub session: String,
    /// The value every form carries.
    pub csrf: String,
    /// The `Host` values accepted: `127.0.0.1:PORT`, `localhost:PORT`.
    pub hosts: Vec<String>,
    /// Live events for open pages.
    pub events: broadcast::Sender<LiveEvent>,
    /// Wakes the sync engine to send the outbox at once.
    pub send_now: Notify,
    /// Form outcomes by their random key (`?n=`), newest last: kept on the
    /// server, so that a link from elsewhere cannot put words on the page.
    pub notes: std::sync::Mutex<VecDeque<(String, Note)>>,
    /// The sync engine's connection.
    pub link: std::sync::Mutex<Link>,
    /// The owner-only page that forwards to the one-time address, if one
    /// was written; removed once the token is spent.
    pub launcher: std::sync::Mutex<Option<PathBuf>>,
    /// Where the pages read the time: the device's clock.
    pub clock: cove_shared::SharedClock,
    /// The lock after a time without use.
    pub lock: lock::Lock,
    /// Desktop notifications, if wanted.
    pub desktop: Option<Arc<cove_notify::Notifier>>,
    /// This device's partner.
    pub me: Partner,
}

/// How `cove ui` serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// How long the page stays open without use; `None`: never locks.
    pub lock_after: Option<std::time::Duration>,
    /// Whether signals, answers and reminders raise desktop notifications
    /// (discreet ones), where there is a desktop session bus. Off unless
    /// asked for (`cove ui` asks, unless `--no-desktop`).
    pub desktop: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { port: 0, lock_after: Some(lock::LOCK_AFTER), desktop: false }
    }
}

impl Ui {
    /// Tells open pages the plan changed.
    pub fn changed(&self) {
        let _ = self.events.send(LiveEvent { kind: "changed", data: "{}".into() });
    }

    /// Tells open pages the page was locked: each blanks itself.
    pub fn locked(&self) {
        let _ = self.events.send(LiveEvent { kind: "locked", data: "{}".into() });
    }

    /// Keeps `note` for the page a form leads back to; returns its key.
    pub fn keep_note(&self, note: Note) -> String {
        let key = random_hex(&mut OsEntropy);
        let mut notes = self.notes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if notes.len() >= NOTES_KEPT {
            notes.pop_front();
        }
        notes.push_back((key.clone(), note));
        key
    }

    /// The note kept under `key`.
    pub fn note(&self, key: &str) -> Option<Note> {
        let notes = self.notes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        notes.iter().find(|(k, _)| k == key).map(|(_, n)| n.clone())
    }

    /// The sync engine's connection now.
    pub fn link(&self) -> Link {
        self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_link(&self, link: Link) {
        *self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = link;
    }

    /// Removes the launcher page, if any (best effort: it holds a spent
    /// token once the page is open).
    pub fn remove_launcher(&self) {
        let path = self.launcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(path) = path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A running `cove ui`.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The address to open, with the one-time token.
    pub url: String,
    ui: Arc<Ui>,
    home: Home,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    daemon: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Writes an owner-only page in the state directory that forwards the
    /// browser to the one-time address, and returns its path. A browser is
    /// opened on this path rather than on the address: a program's
    /// arguments show in the process list, to every account on the
    /// computer, and the path is no secret. The page is removed once the
    /// token is spent, or when `cove ui` stops.
    pub fn launcher(&self) -> std::io::Result<PathBuf> {
        let path = self.home.root().join(cove_client::home::UI_LAUNCHER);
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>Cove</title></head><body><p><a href=\"{url}\">Open Cove</a></p></body></html>\n",
            url = html::esc(&self.url)
        );
        let _ = std::fs::remove_file(&path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        std::io::Write::write_all(&mut options.open(&path)?, page.as_bytes())?;
        *self.ui.launcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(path.clone());
        Ok(path)
    }

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
        self.ui.remove_launcher();
    }
}

fn random_hex(entropy: &mut impl Entropy) -> String {
    let bytes: [u8; 32] = entropy.array();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unlocks the device in `home` (twice: one instance for the pages, one for
/// the sync engine), binds 127.0.0.1:`port` (0: any free port), and serves,
/// locking after [`lock::LOCK_AFTER`] without use.
pub async fn start(home: &Home, passphrase: &str, port: u16) -> Result<Running, DeviceError> {
    start_with(home, passphrase, Options { port, ..Options::default() }).await
}

/// As [`start`], with `options`.
pub async fn start_with(
    home: &Home,
    passphrase: &str,
    options: Options,
) -> Result<Running, DeviceError> {
    let port = options.port;
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
    let clock = device.clock().clone();
    let ui = Arc::new(Ui {
        desktop: options.desktop.then(|| Arc::new(cove_notify::Notifier::new())),
        me: device.partner(),
        lock: lock::Lock::new(options.lock_after, clock.now_ms()),
        clock,
        device: Mutex::new(device),
        token: std::sync::Mutex::new(Some(token.clone())),
        cookie: format!("cove_session_{}", addr.port()),
        session: random_hex(&mut OsEntropy),
        csrf: random_hex(&mut OsEntropy),
        hosts: vec![format!("127.0.0.1:{}", addr.port()), format!("localhost:{}", addr.port())],
        events,
        send_now: Notify::new(),
        notes: std::sync::Mutex::new(VecDeque::new()),
        link: std::sync::Mutex::new(Link::Connecting),
        launcher: std::sync::Mutex::new(None),
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
    let partners: BTreeMap<DeviceId, Partner> =
        ui.device.lock().await.membership().members().map(|m| (m.device, m.partner)).collect();
    let shared = Arc::clone(&ui);
    let daemon = tokio::spawn(async move {
        let on_event = |event: &Event| forward(&shared, &labels, &partners, event);
        let never = Box::pin(std::future::pending::<()>());
        let stopped = sync::run_daemon_nudged(&mut engine, on_event, never, &shared.send_now).await;
        if let Err(error) = stopped {
            tracing::warn!(%error, "the sync engine stopped");
            shared.set_link(Link::Down { error: error.to_string(), retrying: false });
            shared.changed();
        }
    });
    Ok(Running {
        addr,
        url: format!("http://127.0.0.1:{}/?token={token}", addr.port()),
        ui,
        home: home.clone(),
        stop: Some(stop_tx),
        server,
        daemon,
    })
}

/// Each device's name for signal banners: "Sam".
async fn device_labels(ui: &Ui) -> BTreeMap<DeviceId, String> {
    labels_of(&*ui.device.lock().await)
}

fn labels_of(device: &Device) -> BTreeMap<DeviceId, String> {
    let plan = device.current_plan();
    device.membership().members().map(|m| (m.device, plan.name(m.partner))).collect()
}

/// Raises a desktop notification, if wanted, without waiting for it.
fn notify(ui: &Ui, text: &'static str) {
    if let Some(desktop) = &ui.desktop {
        let desktop = Arc::clone(desktop);
        tokio::spawn(async move { desktop.show(text, "").await });
    }
}

/// Whether `device` is known to be one of this partner's own (a device
/// not known yet counts as the other partner's: better a notification too
/// many than a stop missed).
fn own(ui: &Ui, partners: &BTreeMap<DeviceId, Partner>, device: &DeviceId) -> bool {
    partners.get(device) == Some(&ui.me)
}

/// Turns the sync engine's events into live events for open pages, and
/// keeps the connection's state for the status page.
fn forward(
    ui: &Ui,
    labels: &BTreeMap<DeviceId, String>,
    partners: &BTreeMap<DeviceId, Partner>,
    event: &Event,
) {
    let events = &ui.events;
    let signals = match event {
        Event::Synced(report) => report.signals.as_slice(),
        Event::Applied(received) => received.signals.as_slice(),
        _ => &[][..],
    };
    if let Event::Reminders(due) = event {
        // On the page, which is this person's own and unlocked, in full;
        // on the desktop, discreetly.
        for reminder in due {
            let text = match reminder {
                Reminder::ReviewDue { .. } | Reminder::ReviewConfirmed { recorded: true, .. } => {
                    format!("{} The Reviews page shows it.", reminder.detailed())
                }
                _ => reminder.detailed(),
            };
            let data = serde_json::json!({ "text": text }).to_string();
            let _ = events.send(LiveEvent { kind: "reminder", data });
            notify(ui, reminder.discreet());
        }
        return;
    }
    let answers = match event {
        Event::Synced(report) => report.answers.as_slice(),
        Event::Applied(received) => received.answers.as_slice(),
        _ => &[][..],
    };
    if answers.iter().any(|a| !own(ui, partners, &a.by)) {
        notify(ui, "Cove: your partner answered your signal");
    }
    let was = ui.link();
    match event {
        Event::Synced(_) => ui.set_link(Link::Connected),
        Event::Disconnected { error, .. } => {
            ui.set_link(Link::Down { error: error.clone(), retrying: true });
        }
        _ => {}
    }
    // An arrival of any kind (changes, signals, answers, receipts) may
    // change what a page shows.
    let arrived = matches!(event, Event::Applied(_) | Event::Synced(_));
    if arrived || ui.link() != was {
        let _ = events.send(LiveEvent { kind: "changed", data: "{}".into() });
    }
    let now = ui.clock.now_ms();
    // Current signals, and a stop whatever its age: it stands until answered.
    let is_stop = |s: &cove_client::device::ReceivedSignal| {
        cove_client::plan::signals::same(&s.signal.signal, cove_client::plan::signals::STOP)
    };
    let live: Vec<_> = signals.iter().filter(|s| !s.expired(now) || is_stop(s)).collect();
    if live.is_empty() {
        return;
    }
    // Names as the plan has them now, unless a request holds the device:
    // then as they were when `cove ui` started.
    let current = ui.device.try_lock().ok().map(|device| labels_of(&device));
    let labels = current.as_ref().unwrap_or(labels);
    for signal in live {
        if !own(ui, partners, &signal.from) {
            // The built-in safe word by its name; any other signal plainly.
            let text = if is_stop(signal) {
                "Cove: your partner used the safe word"
            } else {
                "Cove: a signal from your partner"
            };
            notify(ui, text);
        }
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
        .route("/replaced/restore", post(actions::restore_replaced))
        .route("/signal", post(signaling::signal))
        .route("/signal/answer", post(signaling::answer))
        .route("/signals.json", get(pages::signal_board))
        .route("/sessions/log", post(actions::log_session))
        .route("/debrief/{session}", post(actions::debrief))
        .route("/reviews/record", post(actions::record_review))
        .route("/reviews/{id}/confirm", post(actions::confirm_review))
        .route("/journal", post(actions::journal))
        .route("/alarms/{which}/ack", post(actions::acknowledge))
        .route("/unlock", get(lock::unlock_page).post(lock::unlock))
        .route("/lock", post(lock::lock))
        .route("/alive", post(lock::alive))
        // The guard runs first (the outer layer), then the lock.
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&ui), lock::gate))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&ui), guard::guard))
        .with_state(ui)
}
