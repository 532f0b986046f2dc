//! What happened: sessions and debriefs, reviews with what changed since
//! the last one, and the journal.

use super::sections::setting_form;
use super::{Flash, fresh, render};
use crate::Ui;
use crate::html::{button, esc, form, seg, select, textarea};
use axum::extract::State;
use axum::response::Response;
use cove_client::plan::calendar::{format_day, today};
use cove_client::plan::ids::short;
use cove_client::plan::review;
use cove_shared::{DocId, Partner};
use std::fmt::Write;
use std::sync::Arc;

/// `/sessions`: the log, a form to log one, and debriefs.
pub async fn sessions(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let me = device.partner();
    drop(device);
    let csrf = &ui.csrf;
    let mut body = format!(
        "<p>Next to choose the aftercare: <strong>{}</strong>.</p>",
        esc(&plan.name(plan.next_to_choose()))
    );
    let questions: Vec<_> = plan.checkin.questions.iter().filter(|q| !q.meta.archived()).collect();
    body.push_str("<ul class=\"items\">");
    for s in plan.sessions.iter().rev().filter(|s| !s.meta.archived()) {
        let chooser = s.chosen_by.map(|p| plan.name(p)).unwrap_or_default();
        let _ = write!(
            body,
            "<li><strong>{}</strong> <span class=\"meta\">chosen by {} · [{}]</span>",
            esc(&s.date),
            esc(&chooser),
            esc(short(&s.meta.id))
        );
        let used: Vec<&str> = plan
            .menu
            .iter()
            .filter(|m| s.options.contains(&m.meta.id))
            .map(|m| m.title.as_str())
            .collect();
        if !used.is_empty() {
            let _ = write!(body, "<p>Used: {}</p>", esc(&used.join(", ")));
        }
        if !s.notes.is_empty() {
            let _ = write!(body, "<p>{}</p>", esc(&s.notes));
        }
        let _ = write!(body, "<details><summary>Debrief</summary>");
        for question in &questions {
            let _ = write!(body, "<p><strong>{}</strong></p>", esc(&question.text));
            for p in [Partner::A, Partner::B] {
                let answer = plan
                    .partner(p)
                    .and_then(|pp| pp.debriefs.get(&s.meta.id))
                    .and_then(|a| a.get(&question.meta.id))
                    .cloned();
                let _ = write!(
                    body,
                    "<p class=\"muted\">{}: {}</p>",
                    esc(&plan.name(p)),
                    esc(&answer.unwrap_or_else(|| "(not answered yet)".into()))
                );
            }
            let inner = format!(
                "<input type=\"hidden\" name=\"question\" value=\"{}\">{}",
                esc(&question.meta.id),
                textarea("answer", "Your answer", "")
            );
            body.push_str(&form(
                &format!("/debrief/{}", seg(&s.meta.id)),
                csrf,
                &inner,
                "Save my answer",
            ));
        }
        body.push_str("</details></li>");
    }
    body.push_str("</ul><h2>Log a session</h2>");
    let mut inner = format!(
        "<label>Day<input type=\"date\" name=\"date\" value=\"{}\"></label>",
        format_day(today(ui.clock.now_ms()))
    );
    inner.push_str(&select(
        "chosen_by",
        "Who chose the aftercare",
        &["me", "partner"],
        "",
        Some("whoever's turn it was"),
    ));
    inner.push_str("<fieldset><legend>Options used</legend>");
    for m in plan.menu.iter().filter(|m| !m.meta.archived()) {
        let _ = write!(
            inner,
            "<label><input type=\"checkbox\" name=\"option\" value=\"{}\"> {}</label>",
            esc(&m.meta.id),
            esc(&m.title)
        );
    }
    inner.push_str("</fieldset><fieldset><legend>Steps done</legend>");
    for st in plan.sequence.iter().filter(|s| !s.meta.archived()) {
        let _ = write!(
            inner,
            "<label><input type=\"checkbox\" name=\"step\" value=\"{}\"> {}</label>",
            esc(&st.meta.id),
            esc(&st.title)
        );
    }
    inner.push_str("</fieldset>");
    inner.push_str(&textarea("notes", "Shared notes", ""));
    body.push_str(&form("/sessions/log", csrf, &inner, "Log the session"));
    let _ = me;
    render("Sessions", "/sessions", &body, &q)
}

/// `/reviews`: what changed since the last review, and who changed it.
pub async fn reviews(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let me = device.partner();
    let history: Vec<_> = plan.reviews.history.iter().filter(|r| !r.meta.archived()).collect();
    let last = history.last().copied();
    let since = last.map_or_else(Default::default, |r| {
        [
            review::parse_heads(&r.heads[0]),
            review::parse_heads(&r.heads[1]),
            review::parse_heads(&r.heads[2]),
        ]
    });
    let docs = DocId::ALL.map(|d| device.docs().get(d));
    let changes = review::changes_since(docs, &since, device.membership(), &plan);
    drop(device);
    let csrf = &ui.csrf;
    let mut body = String::new();
    if let Some(day) = review::due(&plan, ui.clock.now_ms()) {
        let _ = write!(body, "<p class=\"flash\">A review is due (since {}).</p>", esc(&day));
    } else if let Some(day) = &plan.reviews.next_due {
        let _ = write!(body, "<p>Next review: {}.</p>", esc(day));
    }
    let _ = write!(
        body,
        "<h2>{}</h2>",
        esc(&last.map_or_else(
            || "Since the plan began".to_owned(),
            |r| format!("Since the review of {}", r.date)
        ))
    );
    if changes.is_empty() {
        body.push_str("<p class=\"muted\">Nothing has changed.</p>");
    } else {
        body.push_str("<ul class=\"changes\">");
        for c in &changes {
            let _ = write!(body, "<li>{}</li>", esc(&c.summary));
        }
        body.push_str("</ul>");
    }
    if let Some(r) = last {
        let confirmed = plan.confirmed_by(&r.meta.id);
        let _ = write!(
            body,
            "<h2>Last review: {}</h2><p>Confirmed by: {}</p>",
            esc(&r.date),
            esc(&if confirmed.is_empty() { "nobody yet".to_owned() } else { confirmed.join(", ") })
        );
        for (label, text) in [("Wins", &r.wins), ("Lessons", &r.lessons), ("Notes", &r.notes)] {
            if !text.is_empty() {
                let _ = write!(body, "<p><strong>{label}:</strong> {}</p>", esc(text));
            }
        }
        if !plan.confirmed(me, &r.meta.id) {
            body.push_str(&button(
                &format!("/reviews/{}/confirm", seg(&r.meta.id)),
                csrf,
                "Confirm this review",
            ));
        }
    }
    body.push_str("<h2>Record a review</h2>");
    let inner = format!(
        "{}{}{}",
        textarea("wins", "What went well", ""),
        textarea("lessons", "What to do differently", ""),
        textarea("notes", "Notes", "")
    );
    body.push_str(&form("/reviews/record", csrf, &inner, "Record the review"));
    body.push_str(&setting_form(csrf, &plan, "cadence"));
    render("Reviews", "/reviews", &body, &q)
}

/// `/journal`: private notes on this device.
pub async fn journal(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let entries = cove_client::journal::list(&device).await.unwrap_or_default();
    drop(device);
    let mut body = String::from(
        "<p class=\"muted\">Only on this device: never sent to the relay or to your partner.</p>",
    );
    body.push_str(&form(
        "/journal",
        &ui.csrf,
        &textarea("text", "New entry", ""),
        "Add to the journal",
    ));
    body.push_str("<ul class=\"items\">");
    for e in entries.iter().rev() {
        let _ = write!(
            body,
            "<li><span class=\"meta\">{}</span><p>{}</p></li>",
            format_day(today(e.at)),
            esc(&e.text)
        );
    }
    body.push_str("</ul>");
    render("Journal", "/journal", &body, &q)
}
