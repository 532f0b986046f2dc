//! Who may use the page: the browser that opened the one-time address, on
//! this machine, from this page's own origin.

use crate::Ui;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Headers on every answer: nothing from elsewhere (no framing, no outside
/// scripts or styles), no referrer, nothing kept in the browser's cache.
fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A short page with one sentence.
fn sentence(status: StatusCode, text: &str, head: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{head}<title>Cove</title></head><body><main><h1>Cove</h1><p>{}</p></main></body></html>",
        super::html::esc(text)
    );
    let mut response =
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    harden(response.headers_mut());
    response
}

fn refuse(status: StatusCode, text: &str) -> Response {
    sentence(status, text, "")
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether any cookie `name` that was sent holds `value`. (Every port on
/// 127.0.0.1 shares cookies: a page served on another port can set one of
/// the same name, which must not shadow this one.)
fn has_cookie(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(k, v)| k == name && same(v, value))
}

/// Whether a state-changing request comes from this page. An `Origin`
/// other than this page's refuses it. `Sec-Fetch-Site`, which every current
/// browser sends, must then say `same-origin`: with this page's
/// `Referrer-Policy: no-referrer` a browser sends `Origin: null` even for its
/// own forms, so the origin alone cannot tell. A request with neither header
/// does not come from a browser page, and still needs the cookie and the
/// form's anti-forgery value.
fn same_origin(ui: &Ui, headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("invalid"));
    if let Some(origin) = origin
        && origin != "null"
        && !ui.hosts.iter().any(|h| origin == format!("http://{h}"))
    {
        return false;
    }
    match headers.get("sec-fetch-site") {
        Some(site) => site == "same-origin",
        None => origin != Some("null"),
    }
}

/// Checks every request; see the module documentation.
pub async fn guard(State(ui): State<Arc<Ui>>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ui.hosts.iter().any(|h| h == host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This page is served for this computer only: open it at the address `cove ui` printed.",
        );
    }
    // The one-time address: exchange the token for the session cookie.
    if let Some(query) = request.uri().query()
        && let Some((_, given)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token")
    {
        let mut token = ui.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if token.as_deref().is_some_and(|t| same(t, &given)) {
            *token = None;
            drop(token);
            ui.remove_launcher();
            // A page that moves on to `/` itself, rather than a redirect: a
            // browser sends a SameSite=Strict cookie only on a navigation
            // that this site started, and the one-time address may have
            // been opened from elsewhere (the launcher file, a terminal).
            let mut response = sentence(
                StatusCode::OK,
                "Opening the plan…",
                "<meta http-equiv=\"refresh\" content=\"0;url=/\">",
            );
            let cookie = format!("{}={}; HttpOnly; SameSite=Strict; Path=/", ui.cookie, ui.session);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "This address has been used already. Each address `cove ui` prints opens the page once: run `cove ui` again for a new one.",
        );
    }
    if !has_cookie(headers, &ui.cookie, &ui.session) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Open the page at the address `cove ui` printed in the terminal.",
        );
    }
    if request.method() != Method::GET && !same_origin(&ui, headers) {
        return refuse(StatusCode::FORBIDDEN, "A change can only come from Cove's own page.");
    }
    let mut response = next.run(request).await;
    harden(response.headers_mut());
    response
}
