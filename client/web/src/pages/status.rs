//! The relay, the devices, and what needs attention.

use super::{Flash, fresh, render};
use crate::html::{button, esc};
use crate::{Link, Ui};
use axum::extract::State;
use axum::response::Response;
use cove_client::device::Attention;
use cove_client::plan::review;
use std::fmt::Write;
use std::sync::Arc;

/// `/status`: the relay, the last sync, alarms, quarantine, a review due.
pub async fn status(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    // What the sync engine's connection says: the page never waits on the
    // relay itself.
    let reachable = match ui.link() {
        Link::Connecting => "connecting".to_owned(),
        Link::Connected => "connected, and in sync".to_owned(),
        Link::Down { error, retrying: true } => format!("not reachable ({error}); trying again"),
        Link::Down { error, retrying: false } => format!("not syncing ({error})"),
    };
    let plan = device.current_plan();
    let state = device.sync_state();
    let now_s = device.now_s();
    let mut body = String::new();
    if let Some(removal) = device.removal() {
        let _ = write!(body, "<p class=\"flash\">{}</p>", esc(&removal));
    }
    let relay = cove_client::transport::tls::describe(device.relay());
    let _ = write!(body, "<p>Relay {}: {}.</p>", esc(&relay), esc(&reachable));
    let _ = write!(
        body,
        "<p>Last sync: {}.</p>",
        esc(&state
            .last_sync()
            .map_or_else(|| "never".to_owned(), |t| cove_client::human::ago(t / 1000, now_s)))
    );
    body.push_str("<h2>Devices</h2><ul>");
    for row in device.device_rows() {
        let heard = row.last_heard.map_or_else(
            || "never heard from".to_owned(),
            |t| format!("last heard {}", cove_client::human::ago(t / 1000, now_s)),
        );
        let mut who = row.name.clone().unwrap_or_else(|| format!("partner {}", row.partner));
        if let Some(named) = &row.device_name {
            who.push_str(&format!(" \"{named}\""));
        }
        let what = if row.this_device {
            "this device".to_owned()
        } else if !row.active {
            "removed".to_owned()
        } else {
            heard
        };
        let _ = write!(body, "<li>{} · {} · {}</li>", esc(&row.fingerprint), esc(&who), esc(&what));
    }
    body.push_str("</ul>");
    let receipts = device.receipts();
    if !receipts.is_empty() {
        // Each device's own signed word, never the relay's.
        body.push_str("<h2>What each device has received</h2><ul class=\"receipts\">");
        for receipt in receipts {
            let _ = write!(body, "<li>{}.</li>", esc(&receipt.text));
        }
        body.push_str("</ul>");
    }
    match device.attention().await {
        Ok(attention) => attention_html(&mut body, &attention, &ui.csrf, now_s),
        Err(error) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&error.to_string()));
        }
    }
    if let Some(day) = review::due(&plan, device.now_ms()) {
        let _ = write!(body, "<p class=\"flash\">A review is due (since {}).</p>", esc(&day));
    }
    drop(device);
    render("Status", "/status", &body, &q)
}

/// When something happened, for a person: `first_at` and `last_at` in
/// Unix milliseconds.
fn when(first_at: i64, last_at: i64, times: u32, now_s: i64) -> String {
    let first = cove_client::human::ago(first_at / 1000, now_s);
    if times > 1 {
        format!(
            "first {first}, {times} times, last {}",
            cove_client::human::ago(last_at / 1000, now_s)
        )
    } else {
        first
    }
}

/// Open alarms and set-aside envelopes, each with a way to acknowledge it,
/// and what was acknowledged before.
fn attention_html(body: &mut String, attention: &Attention, csrf: &str, now_s: i64) {
    body.push_str("<h2>Alarms</h2>");
    if attention.alarms.is_empty() {
        body.push_str("<p>No alarms.</p>");
    } else {
        body.push_str("<ul class=\"items\">");
        for note in &attention.alarms {
            let _ = write!(
                body,
                "<li><p>{}</p><span class=\"meta\">{}</span>{}</li>",
                esc(&note.text),
                esc(&when(note.first_at, note.last_at, note.times, now_s)),
                button(&format!("/alarms/{}/ack", note.id), csrf, "Acknowledge")
            );
        }
        body.push_str("</ul>");
    }
    if !attention.quarantined.is_empty() {
        let _ = write!(
            body,
            "<h2>Set aside</h2><p>{} envelope(s) failed verification and were set aside; nothing in them was used.</p><ul class=\"items\">",
            attention.quarantined.len()
        );
        for q in &attention.quarantined {
            let from = q.claimed_sender.as_deref().map_or_else(
                || "not readable as an envelope".to_owned(),
                |s| format!("claiming to be from {s}"),
            );
            let _ = write!(
                body,
                "<li><p>{}: {}</p><span class=\"meta\">{}</span></li>",
                esc(&from),
                esc(&q.reason),
                esc(&cove_client::human::ago(q.at / 1000, now_s))
            );
        }
        body.push_str("</ul>");
    }
    if !attention.is_clear() {
        body.push_str(&button("/alarms/all/ack", csrf, "Acknowledge all"));
    }
    if !attention.history.is_empty() {
        body.push_str("<details><summary>Earlier alarms</summary><ul class=\"items\">");
        for note in &attention.history {
            let how = match (note.acknowledged_at, note.resolved_at) {
                (Some(at), _) => {
                    format!("acknowledged {}", cove_client::human::ago(at / 1000, now_s))
                }
                (None, Some(at)) => {
                    format!("ended by itself {}", cove_client::human::ago(at / 1000, now_s))
                }
                (None, None) => String::new(),
            };
            let _ = write!(
                body,
                "<li><p>{}</p><span class=\"meta\">{}; {}</span></li>",
                esc(&note.text),
                esc(&when(note.first_at, note.last_at, note.times, now_s)),
                esc(&how)
            );
        }
        body.push_str("</ul></details>");
    }
    if attention.quarantined_total > 0 {
        let _ = write!(
            body,
            "<p>Envelopes that failed verification since this device was set up: {}.</p>",
            attention.quarantined_total
        );
    }
}
