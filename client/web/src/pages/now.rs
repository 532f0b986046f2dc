//! "Right now": the large-type page for the minutes after a session.

use super::{Flash, fresh, list, sequence};
use crate::Ui;
use crate::html::{esc, form, page};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use cove_client::plan::model::{Plan, Preference};
use cove_client::plan::signals;
use cove_client::plan::text as views;
use cove_shared::Partner;
use std::fmt::Write;
use std::sync::Arc;

/// The signals a button can send: the safe word first, then the other
/// built-in ones and the agreed ones. (The all-clear has its own button,
/// shown while this partner's stop stands.)
fn signal_buttons(plan: &Plan, csrf: &str) -> String {
    let mut names: Vec<(String, String)> = vec![
        (signals::STOP.into(), "Stop (the safe word)".into()),
        ("pause".into(), "Pause".into()),
        ("space".into(), "I need space".into()),
        ("check-on-me".into(), "Check on me".into()),
    ];
    for s in plan.signals.iter().filter(|s| !s.meta.archived()) {
        if !names.iter().any(|(n, _)| signals::same(n, &s.name)) {
            let label = match s.meaning {
                Some(meaning) => format!("{} ({meaning})", s.name),
                None => s.name.clone(),
            };
            names.push((s.name.clone(), label));
        }
    }
    let mut out = String::from("<div class=\"signals\">");
    for (name, label) in names {
        let inner = format!("<input type=\"hidden\" name=\"name\" value=\"{}\">", esc(&name));
        let class = if signals::is_stop(plan, &name) { "inline stop" } else { "inline" };
        out.push_str(
            &form("/signal", csrf, &inner, &label)
                .replace("<form ", &format!("<form class=\"{class}\" ")),
        );
    }
    out.push_str("</div>");
    out
}

/// `/now`: the right-now view, for low light.
pub async fn now(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let board = device.signal_board().await.unwrap_or_default();
    let partner = plan.name(device.partner().other());
    drop(device);
    let mut body = String::new();
    let now = ui.clock.now_ms();
    // The signal buttons first: in the moment, they matter most.
    body.push_str("<h2 class=\"hidden\">Send a signal</h2>");
    body.push_str(&signal_buttons(&plan, &ui.csrf));
    super::signals::own(&mut body, &board, &plan, &partner, &ui.csrf, now);
    body.push_str("<div class=\"now-grid\"><section><h2>The sequence</h2>");
    sequence(&mut body, &plan);
    let agreed: Vec<String> =
        plan.signals.iter().filter(|s| !s.meta.archived()).map(views::signal_line).collect();
    if !agreed.is_empty() {
        body.push_str("<h2>Our signals</h2>");
        list(&mut body, agreed.into_iter());
    }
    let _ = write!(
        body,
        "<p class=\"muted\">Next to choose the aftercare: {}.</p></section>",
        esc(&plan.name(plan.next_to_choose()))
    );
    for partner in [Partner::A, Partner::B] {
        let Some(part) = plan.partner(partner) else { continue };
        let _ = write!(body, "<section class=\"pick\"><h2>{}</h2>", esc(&plan.name(partner)));
        let start = body.len();
        for (label, want) in [
            ("Welcome", Preference::Yes),
            ("Ask first", Preference::AskMe),
            ("Not now", Preference::No),
        ] {
            let titles = views::picked(&plan, partner, want);
            if !titles.is_empty() {
                let _ =
                    write!(body, "<p><strong>{label}:</strong> {}</p>", esc(&titles.join(", ")));
            }
        }
        for need in part.needs.iter().filter(|n| !n.meta.archived()) {
            let line = views::need_line(&plan, partner, need);
            let _ = write!(body, "<p><strong>Needs:</strong> {}</p>", esc(&line));
        }
        for b in views::boundaries_now(part) {
            let _ = write!(
                body,
                "<p><strong>Boundary ({}):</strong> {}</p>",
                b.firmness,
                esc(&b.statement)
            );
        }
        if body.len() == start {
            body.push_str("<p class=\"muted\">No preferences, needs or boundaries yet.</p>");
        }
        body.push_str("</section>");
    }
    body.push_str("</div>");
    Html(page("Right now", "/now", &body, q.0.as_ref(), "now")).into_response()
}
