//! The pages. Each reads the plan as this device holds it (after taking up
//! what the sync engine wrote) and renders it; nothing is cached.
//!
//! # Layout
//! - this module: the overview, live events, and what every page shares.
//! - [`sections`]: one page per plan section, with its forms.
//! - [`now`]: "Right now", in large type, with the signal buttons.
//! - [`history`]: sessions and debriefs, reviews, the journal.
//! - [`status`]: the relay, the devices, and what needs attention.
//! - [`signals`]: the partner's signals on every page, and this partner's
//!   own with how far each got.

mod history;
mod now;
mod sections;
mod signals;
mod status;

pub use history::{journal, reviews, sessions};
pub use now::now;
pub use sections::{checkin, deescalation, section};
pub use signals::board as signal_board;
pub use status::status;

use crate::html::{esc, page};
use crate::{LiveEvent, Note, Ui};
use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use cove_client::device::Device;
use cove_client::plan::model::Plan;
use cove_client::plan::text as views;
use cove_shared::Partner;
use futures_util::stream::Stream;
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;

/// The note a form left for this page (`?n=KEY`; see `actions`).
pub struct Flash(Option<Note>);

impl FromRequestParts<Arc<Ui>> for Flash {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ui: &Arc<Ui>,
    ) -> Result<Self, Infallible> {
        let key = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "n").map(|(_, v)| v)
        });
        Ok(Self(key.and_then(|k| ui.note(&k))))
    }
}

/// The device, up to date with what the sync engine wrote.
pub async fn fresh(ui: &Ui) -> tokio::sync::MutexGuard<'_, Device> {
    let mut device = ui.device.lock().await;
    if let Err(error) = device.refresh().await {
        tracing::warn!(%error, "reading the local state failed");
    }
    device
}

fn render(title: &str, path: &str, body: &str, q: &Flash) -> Response {
    Html(page(title, path, body, q.0.as_ref(), "")).into_response()
}

/// `/`: the whole plan, calmly laid out.
pub async fn overview(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let me = device.partner();
    drop(device);
    let mut body = String::new();
    body.push_str(&to_resolve(&plan, me, &ui.csrf, "/"));
    for partner in [me, me.other()] {
        let name = plan.name(partner);
        let whose = if partner == me { "Your".to_owned() } else { format!("{name}'s") };
        let Some(part) = plan.partner(partner) else {
            let _ = write!(body, "<h2>{}</h2><p class=\"muted\">Not joined yet.</p>", esc(&name));
            continue;
        };
        let _ = write!(body, "<h2>{} needs</h2>", esc(&whose));
        list(
            &mut body,
            part.needs
                .iter()
                .filter(|n| !n.meta.archived())
                .map(|n| views::need_line(&plan, partner, n)),
        );
        let _ = write!(body, "<h2>{} boundaries</h2>", esc(&whose));
        list(
            &mut body,
            part.boundaries
                .iter()
                .filter(|b| !b.meta.archived())
                .map(|b| views::boundary_line(&plan, partner, b)),
        );
    }
    body.push_str("<h2>Menu</h2>");
    list(
        &mut body,
        plan.menu.iter().filter(|m| !m.meta.archived()).map(|m| views::option_line(&plan, m)),
    );
    body.push_str("<h2>Sequence</h2>");
    sequence(&mut body, &plan);
    body.push_str("<h2>Signals</h2>");
    list(&mut body, plan.signals.iter().filter(|s| !s.meta.archived()).map(views::signal_line));
    body.push_str("<h2>Check-in</h2>");
    if let Some(m) = plan.checkin.window_minutes {
        let _ = write!(body, "<p>Window: {m} minutes after a session.</p>");
    }
    list(
        &mut body,
        plan.checkin.questions.iter().filter(|q| !q.meta.archived()).map(|q| q.text.clone()),
    );
    body.push_str("<h2>De-escalation</h2>");
    if let Some(m) = plan.deescalation.reflection_limit_minutes {
        let _ = write!(body, "<p>Time to reflect before talking again: up to {m} minutes.</p>");
    }
    list(
        &mut body,
        plan.deescalation
            .techniques
            .iter()
            .filter(|t| !t.meta.archived())
            .map(|t| views::titled(&t.title, t.description.as_deref())),
    );
    let sessions = plan.sessions.iter().filter(|s| !s.meta.archived()).count();
    let _ = write!(
        body,
        "<h2>Sessions</h2><p>{sessions} logged. Next to choose the aftercare: {}.</p><h2>Reviews</h2><p>{}</p>",
        esc(&plan.name(plan.next_to_choose())),
        esc(&plan
            .reviews
            .next_due
            .as_ref()
            .map_or_else(|| "No review planned.".to_owned(), |d| format!("Next review: {d}.")))
    );
    render("Our aftercare plan", "/", &body, &q)
}

/// The steps in order, as a numbered list.
fn sequence(body: &mut String, plan: &Plan) {
    let steps: Vec<_> = plan.sequence.iter().filter(|s| !s.meta.archived()).collect();
    if steps.is_empty() {
        body.push_str("<p class=\"muted\">No steps yet.</p>");
        return;
    }
    body.push_str("<ol class=\"sequence\">");
    for st in steps {
        let _ = write!(body, "<li>{}</li>", esc(&views::step_line(plan, st)));
    }
    body.push_str("</ol>");
}

fn list(body: &mut String, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        body.push_str("<p class=\"muted\">Nothing here yet.</p>");
        return;
    }
    body.push_str("<ul>");
    for line in lines {
        let _ = write!(body, "<li>{}</li>", esc(&line));
    }
    body.push_str("</ul>");
}

/// Conflicts and changed options the owner should see, and values that
/// an edit on another device replaced, with a button to put each back
/// (which returns to `path`).
fn to_resolve(plan: &Plan, me: Partner, csrf: &str, path: &str) -> String {
    let mut lines = Vec::new();
    for c in plan.conflicts.iter().filter(|c| c.owner == me) {
        lines.push(esc(&views::conflict_line(plan, me, c)));
    }
    for c in plan.changed_options.iter().filter(|c| c.owner == me) {
        let title = plan
            .menu
            .iter()
            .find(|m| m.meta.id == c.option)
            .map_or("an option", |m| m.title.as_str());
        lines.push(esc(&format!(
            "Your preference for \"{title}\" ({}) was given before the option changed; it counts as {} until you give it again.",
            c.given, c.counts_as
        )));
    }
    for r in &plan.replaced {
        let mut line = esc(&r.line(plan, me));
        if r.restorable_by(me) {
            for value in &r.replaced {
                let hidden = [
                    ("section", r.section.as_str()),
                    ("at", r.item.as_deref().unwrap_or(&r.section)),
                    ("field", &r.field),
                    ("value", &serde_json::to_string(value).unwrap_or_default()),
                    ("back", path),
                ];
                let inner: String = hidden
                    .iter()
                    .map(|(name, value)| {
                        format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(value))
                    })
                    .collect();
                let _ = write!(
                    line,
                    " <form method=\"post\" action=\"/replaced/restore\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{inner}<button type=\"submit\">Restore {}</button></form>",
                    esc(csrf),
                    esc(&value.to_string())
                );
            }
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section class=\"resolve\"><h2>To resolve</h2><ul>");
    for line in lines {
        // Each line is already escaped: it may carry a form.
        let _ = write!(out, "<li>{line}</li>");
    }
    out.push_str("</ul></section>");
    out
}

/// How often an open event stream looks whether the page has locked.
const LOCK_LOOK: std::time::Duration = std::time::Duration::from_secs(5);

/// `/events`: live events for the page's script. Once the page is locked
/// (by time, or on another tab), the stream says so and ends: nothing more
/// reaches a page that should show nothing.
pub async fn events(
    State(ui): State<Arc<Ui>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    use tokio::sync::broadcast::error::RecvError;
    let receiver = ui.events.subscribe();
    let stream = futures_util::stream::unfold(Some((receiver, ui)), |open| async move {
        let (mut receiver, ui) = open?;
        loop {
            let next = tokio::time::timeout(LOCK_LOOK, receiver.recv()).await;
            if ui.lock.locked(ui.clock.now_ms()) {
                return Some((Ok(SseEvent::default().event("locked").data("{}")), None));
            }
            let event = match next {
                Err(_) => continue,
                Ok(Ok(LiveEvent { kind, data })) => SseEvent::default().event(kind).data(data),
                // Missed some: the page fetches the latest anyway.
                Ok(Err(RecvError::Lagged(_))) => SseEvent::default().event("changed").data("{}"),
                Ok(Err(RecvError::Closed)) => return None,
            };
            return Some((Ok(event), Some((receiver, ui))));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The stylesheet.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], super::assets::STYLE).into_response()
}

/// The script.
pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], super::assets::SCRIPT)
        .into_response()
}
