//! The page on a shared computer: it locks after a time without use (15
//! minutes unless `cove ui --lock-after` says otherwise), and at once when
//! the person presses Escape twice; then every request is answered with the
//! lock page, which shows no plan content, until the passphrase is given
//! again.
//!
//! The lock is kept by the server, not the page: a reload, the back button
//! or a second tab finds it locked too. Only what a person does counts as
//! use: requests the page's script makes by itself (live updates, the
//! signal banner, the event stream) carry `X-Cove-Live` or are the event
//! stream, and do not keep the page open. The script tells the server of
//! typing and clicking that stay on one page (`POST /alive`).

use crate::Ui;
use crate::actions::{Form, forged, genuine};
use crate::html::esc;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use cove_client::keystore::{Keystore, KeystoreError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long the page stays open without use, unless told otherwise.
pub const LOCK_AFTER: Duration = Duration::from_secs(15 * 60);

/// The header the page's script puts on requests it makes by itself.
pub const LIVE_HEADER: &str = "x-cove-live";

/// The lock's state.
#[derive(Debug)]
pub struct Lock {
    /// How long without use before it locks; `None`: never.
    after_ms: Option<i64>,
    state: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    locked: bool,
    last_used: i64,
    /// Wrong passphrases in a row, and when the next try is taken.
    failures: u32,
    next_try: i64,
    /// A passphrase is being checked: one at a time, so that the wait
    /// after a wrong one cannot be skipped by asking in parallel.
    checking: bool,
}

impl Lock {
    /// A lock that closes after `after` without use (`None`: never), open
    /// now (`now_ms`).
    pub fn new(after: Option<Duration>, now_ms: i64) -> Self {
        let after_ms = after.map(|a| i64::try_from(a.as_millis()).unwrap_or(i64::MAX));
        Self {
            after_ms,
            state: Mutex::new(Inner {
                locked: false,
                last_used: now_ms,
                failures: 0,
                next_try: 0,
                checking: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it is locked at `now_ms` (locking it if the time has run out).
    pub fn locked(&self, now_ms: i64) -> bool {
        let mut state = self.state();
        if let Some(after) = self.after_ms
            && now_ms.saturating_sub(state.last_used) >= after
        {
            state.locked = true;
        }
        state.locked
    }

    /// The person used the page at `now_ms`.
    pub fn used(&self, now_ms: i64) {
        let mut state = self.state();
        if !state.locked {
            state.last_used = now_ms;
        }
    }

    /// Locks now.
    pub fn lock(&self) {
        self.state().locked = true;
    }

    /// How long the page stays open without use, for the script.
    pub fn after_ms(&self) -> Option<i64> {
        self.after_ms
    }
}

/// Whether `request` is one the page's script made by itself, or one that
/// did not come from this page (a page on another local port may still
/// send the cookie, for a plain load): neither keeps the lock open.
fn automatic(request: &Request) -> bool {
    let headers = request.headers();
    let from_elsewhere = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    from_elsewhere || headers.contains_key(LIVE_HEADER) || request.uri().path() == "/events"
}

/// In front of every route but the lock's own and the assets: while
/// locked, a page load goes to the lock page and anything else is refused
/// with 423; while open, what a person does keeps it open.
pub async fn gate(State(ui): State<Arc<Ui>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let own = matches!(path, "/unlock" | "/lock") || path.starts_with("/assets/");
    if own {
        return next.run(request).await;
    }
    let now = ui.clock.now_ms();
    if ui.lock.locked(now) {
        // A page load, or a form the person sent (what they typed is lost
        // either way; the lock page at least says why).
        let navigating = request
            .headers()
            .get("sec-fetch-mode")
            .is_some_and(|mode| mode.as_bytes() == b"navigate");
        if (request.method() == Method::GET && !automatic(&request)) || navigating {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/unlock")]).into_response();
        }
        return (StatusCode::LOCKED, "Locked: unlock the page with your passphrase.")
            .into_response();
    }
    if !automatic(&request) {
        ui.lock.used(now);
    }
    next.run(request).await
}

/// `POST /alive`: the person is typing or clicking on an open page.
pub async fn alive(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    if !genuine(&ui, &Form::parse(&body)) {
        return forged();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /lock`: Escape twice, or the page's own timer.
pub async fn lock(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    if !genuine(&ui, &Form::parse(&body)) {
        return forged();
    }
    ui.lock.lock();
    // Every other open tab blanks itself too.
    ui.locked();
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/unlock")]).into_response()
}

/// The lock page: no plan content, no script. It looks again every minute,
/// to say (without saying what) that a signal is waiting. The passphrase
/// field asks the browser not to keep it: a saved passphrase would open
/// the page for anyone at this computer.
fn lock_page(ui: &Ui, error: Option<&str>, waiting: bool) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let waiting = if waiting {
        "<p class=\"flash\" role=\"status\">A signal from your partner is waiting. Unlock to see it.</p>"
    } else {
        ""
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>Locked · Cove</title><link rel=\"stylesheet\" href=\"{}\"></head>\
         <body><main id=\"main\"><h1>Cove is locked</h1>{error}{waiting}\
         <p>It locks after a while without use, or when Escape is pressed twice, so that nobody else at this computer sees the plan.</p>\
         <form method=\"post\" action=\"/unlock\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Passphrase<input type=\"password\" name=\"passphrase\" autocomplete=\"off\" required autofocus></label>\
         <button type=\"submit\">Unlock</button></form></main></body></html>",
        crate::assets::STYLE_PATH,
        esc(&ui.csrf),
    );
    Html(body).into_response()
}

/// Whether a signal of the partner's is waiting unanswered.
async fn signal_waiting(ui: &Ui) -> bool {
    let device = crate::pages::fresh(ui).await;
    device.signal_board().await.is_ok_and(|b| b.incoming.iter().any(|s| s.answer.is_none()))
}

/// `GET /unlock`.
pub async fn unlock_page(State(ui): State<Arc<Ui>>) -> Response {
    if !ui.lock.locked(ui.clock.now_ms()) {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    }
    lock_page(&ui, None, signal_waiting(&ui).await)
}

/// `POST /unlock` with `passphrase`. Each wrong passphrase doubles the wait
/// before the next is taken (from one second, up to 64 seconds), on top of
/// the key derivation's own cost; one is checked at a time.
pub async fn unlock(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !genuine(&ui, &form) {
        return forged();
    }
    let now = ui.clock.now_ms();
    {
        let mut state = ui.lock.state();
        if state.checking {
            drop(state);
            return lock_page(&ui, Some("A passphrase is being checked; wait a moment."), false);
        }
        if now < state.next_try {
            let wait = (state.next_try - now + 999) / 1000;
            drop(state);
            let said = format!("Too many wrong passphrases: wait {wait} seconds, then try again.");
            return lock_page(&ui, Some(&said), false);
        }
        state.checking = true;
    }
    let passphrase = zeroize::Zeroizing::new(form.get("passphrase").unwrap_or("").to_owned());
    let path = ui.device.lock().await.home().keystore();
    let checked = tokio::task::spawn_blocking(move || Keystore::open(&path, &passphrase)).await;
    ui.lock.state().checking = false;
    match checked {
        Ok(Ok(_)) => {
            let mut state = ui.lock.state();
            let now = ui.clock.now_ms();
            *state =
                Inner { locked: false, last_used: now, failures: 0, next_try: 0, checking: false };
            drop(state);
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
        }
        Ok(Err(KeystoreError::WrongPassphrase)) => {
            let mut state = ui.lock.state();
            state.failures = state.failures.saturating_add(1);
            let wait_s = 1_i64 << state.failures.min(7).saturating_sub(1);
            state.next_try = now + wait_s * 1000;
            drop(state);
            lock_page(&ui, Some("That is not the passphrase. Try again."), false)
        }
        Ok(Err(error)) => {
            lock_page(&ui, Some(&format!("Cannot check the passphrase: {error}.")), false)
        }
        Err(_) => lock_page(&ui, Some("Cannot check the passphrase; try again."), false),
    }
}
