//! Signals on the page: `/signals.json`, from which every open page draws
//! the partner's stop (full screen, until it is acknowledged) and the
//! banner of their other signals; and, on "Right now", this partner's own
//! signals with how far each got.

use super::fresh;
use crate::Ui;
use crate::html::{esc, form};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cove_client::device::{Board, IncomingSignal};
use cove_client::human::moment;
use cove_client::payload::Answer;
use cove_client::plan::model::Plan;
use serde_json::{Value, json};
use std::fmt::Write;
use std::sync::Arc;

/// `GET /signals.json`: the partner's signals, to draw live on any page.
/// Only words from this device's copy of the plan; the page puts them in
/// with `textContent`, never as markup.
pub async fn board(State(ui): State<Arc<Ui>>) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let board = match device.signal_board().await {
        Ok(board) => board,
        Err(error) => {
            return json_response(&json!({ "error": crate::advice::say(&error) }));
        }
    };
    let partner = plan.name(device.partner().other());
    drop(device);
    let now = ui.clock.now_ms();
    let incoming = |s: &IncomingSignal| {
        json!({
            "from": s.from.to_string(),
            "name": s.name,
            "stop": s.stop,
            "meaning": s.meaning,
            "response": s.response,
            "sent_at": s.sent_at,
            "when": moment(s.sent_at, now),
            "acknowledged": matches!(s.answer, Some((Answer::Acknowledged, _))),
            "lifted": s.lifted,
            "headline": headline(&partner, s),
        })
    };
    let banner: Vec<Value> = board
        .incoming
        .iter()
        .filter(|s| {
            board.stop.as_ref().is_none_or(|stop| (stop.from, stop.sent_at) != (s.from, s.sent_at))
        })
        .map(incoming)
        .collect();
    json_response(&json!({
        "csrf": ui.csrf,
        "lock_after_ms": ui.lock.after_ms(),
        "partner": partner,
        "stop": board.stop.as_ref().map(incoming),
        "banner": banner,
    }))
}

fn json_response(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// One line for a signal from the partner: who, what, and what it means.
fn headline(partner: &str, s: &IncomingSignal) -> String {
    let mut line = if s.stop {
        format!("{partner} used the safe word: {}", s.name)
    } else {
        format!("Signal from {partner}: {}", s.name)
    };
    if let Some(meaning) = &s.meaning {
        let _ = write!(line, " ({meaning})");
    }
    if s.stop && s.lifted {
        line.push_str("; they have since sent the all-clear");
    } else if s.stop && matches!(s.answer, Some((Answer::Acknowledged, _))) {
        line.push_str("; you acknowledged it, and they have not sent the all-clear yet");
    }
    line
}

/// This partner's own signals of the last day, with how far each got, and
/// the all-clear button while their stop stands.
pub(super) fn own(
    body: &mut String,
    board: &Board,
    plan: &Plan,
    partner: &str,
    csrf: &str,
    now: i64,
) {
    if board.all_clear_due {
        body.push_str("<section class=\"all-clear\"><p>Your stop stands until you lift it.</p>");
        let inner = "<input type=\"hidden\" name=\"name\" value=\"all-clear\">";
        body.push_str(&form("/signal", csrf, inner, "Send the all-clear: I am all right"));
        body.push_str("</section>");
    }
    let listed: Vec<_> = board.outgoing.iter().take(5).collect();
    if listed.is_empty() {
        return;
    }
    body.push_str("<h2>Your signals</h2><ul class=\"sent-signals\">");
    for s in listed {
        let meaning = cove_client::plan::signals::meaning(plan, &s.name)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<li class=\"progress-{}\">{} at {}{}: {}.</li>",
            esc(&format!("{:?}", s.progress).to_lowercase()),
            esc(&s.name),
            esc(&moment(s.sent_at, now)),
            esc(&meaning),
            esc(&s.progress.words(partner)),
        );
    }
    body.push_str("</ul>");
}
