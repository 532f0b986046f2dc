//! The pages. Each reads the plan as this device holds it (after taking up
//! what the sync engine wrote) and renders it; nothing is cached.

use crate::fields::{self, url_name};
use crate::html::{button, esc, form, page, seg, select, textarea};
use crate::{Link, LiveEvent, Note, Ui};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use cove_client::device::{Attention, Device};
use cove_client::plan::items::{Row, rows};
use cove_client::plan::keys::{format_day, is_id, short, today};
use cove_client::plan::model::{Choice, Plan, Preference, Status};
use cove_client::plan::review;
use cove_client::plan::text as views;
use cove_client::plan::write::Section;
use cove_shared::{DocId, Partner};
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
    body.push_str(&to_resolve(&plan, me));
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

/// Conflicts and changed options the owner should see.
fn to_resolve(plan: &Plan, me: Partner) -> String {
    let mut lines = Vec::new();
    for c in plan.conflicts.iter().filter(|c| c.owner == me) {
        lines.push(format!(
            "Your {} for [{}] was set to {} on two of your devices at once; {} is in force until you set it again.",
            c.field,
            short(&c.item),
            c.values.join(" and "),
            c.kept
        ));
    }
    for c in plan.changed_options.iter().filter(|c| c.owner == me) {
        let title = plan
            .menu
            .iter()
            .find(|m| m.meta.id == c.option)
            .map_or("an option", |m| m.title.as_str());
        lines.push(format!(
            "Your preference for \"{title}\" ({}) was given before the option changed; it counts as {} until you give it again.",
            c.given, c.counts_as
        ));
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section class=\"resolve\"><h2>To resolve</h2><ul>");
    for line in lines {
        let _ = write!(out, "<li>{}</li>", esc(&line));
    }
    out.push_str("</ul></section>");
    out
}

/// The items of one section, with forms to change them.
fn items_html(plan: &Plan, me: Partner, section: Section, csrf: &str) -> String {
    let name = url_name(section);
    let mut out = String::new();
    let rows: Vec<Row> = rows(plan, section);
    let mut archived = String::new();
    let mut active = String::new();
    for row in &rows {
        let Some(id) = row.item.get("id").and_then(|v| v.as_str()).filter(|id| is_id(id)) else {
            continue;
        };
        let mine = row.owner.is_none_or(|o| o == me);
        let mut li = String::new();
        let owner = row
            .owner
            .filter(|o| *o != me)
            .map(|o| format!("{}: ", plan.name(o)))
            .unwrap_or_default();
        let _ = write!(
            li,
            "<li id=\"item-{}\"{}><span class=\"line\">{}{}</span>",
            esc(id),
            if row.archived { " class=\"archived\"" } else { "" },
            esc(&owner),
            esc(&row.line)
        );
        if mine {
            let base = format!("/s/{name}/{}", seg(id));
            if row.archived {
                li.push_str(&button(&format!("{base}/restore"), csrf, "Restore"));
            } else {
                let mut inputs = fields::inputs(section, Some(&row.item));
                if section == Section::Sequence {
                    let current = row.item.get("option").and_then(|v| v.as_str()).unwrap_or("");
                    inputs.push_str(&option_select(plan, current));
                }
                let edit = form(&format!("{base}/edit"), csrf, &inputs, "Save");
                let _ = write!(li, "<details><summary>Change</summary>{edit}</details>");
                li.push_str(&button(&format!("{base}/archive"), csrf, "Archive"));
                if section == Section::Boundaries {
                    let withdrawn = row.item.get("status").and_then(|v| v.as_str())
                        == Some(Status::Withdrawn.to_string().as_str());
                    let (to, label) = if withdrawn {
                        ("reinstate", "Put back in force")
                    } else {
                        ("withdraw", "Withdraw")
                    };
                    li.push_str(&button(&format!("/boundary/{}/{to}", seg(id)), csrf, label));
                }
                if section == Section::Sequence {
                    for (place, label) in [
                        ("first", "Move to first"),
                        ("up", "Move up"),
                        ("down", "Move down"),
                        ("last", "Move to last"),
                    ] {
                        let inner =
                            format!("<input type=\"hidden\" name=\"place\" value=\"{place}\">");
                        li.push_str(
                            &form(&format!("/step/{}/move", seg(id)), csrf, &inner, label)
                                .replace("<form ", "<form class=\"inline\" "),
                        );
                    }
                }
            }
        }
        if section == Section::Menu && !row.archived {
            let current = plan
                .partner(me)
                .and_then(|p| p.preferences.get(id))
                .map(|p| p.to_string())
                .unwrap_or_default();
            let choices: Vec<&str> = Preference::ALL.iter().map(|p| p.as_str()).collect();
            let inner =
                select("preference", "Your preference", &choices, &current, Some("(not given)"));
            li.push_str(&form(&format!("/prefer/{}", seg(id)), csrf, &inner, "Save preference"));
        }
        li.push_str("</li>");
        if row.archived { archived.push_str(&li) } else { active.push_str(&li) }
    }
    if active.is_empty() {
        out.push_str("<p class=\"muted\">Nothing here yet.</p>");
    } else {
        let _ = write!(out, "<ul class=\"items\">{active}</ul>");
    }
    if !archived.is_empty() {
        let _ = write!(
            out,
            "<details><summary>Archived</summary><ul class=\"items\">{archived}</ul></details>"
        );
    }
    let mut inputs = fields::inputs(section, None);
    if section == Section::Sequence {
        inputs.push_str(&option_select(plan, ""));
    }
    let add = form(&format!("/s/{name}/add"), csrf, &inputs, "Add");
    let _ = write!(out, "<h2>Add a {}</h2>{add}", esc(section.noun()));
    out
}

/// A step's menu option: a choice of the menu's current options (the step's
/// title is taken from the option when no title is given).
fn option_select(plan: &Plan, current: &str) -> String {
    let mut options = String::from("<option value=\"\">(none)</option>");
    for m in plan.menu.iter().filter(|m| !m.meta.archived() || m.meta.id == current) {
        let selected = if m.meta.id == current { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(&m.meta.id),
            esc(&m.title)
        );
    }
    format!("<label>Uses the menu option<select name=\"option\">{options}</select></label>")
}

/// `/s/{section}`.
pub async fn section(State(ui): State<Arc<Ui>>, Path(name): Path<String>, q: Flash) -> Response {
    let Some(section) = fields::section(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("Not found", "", "<p>There is no such page.</p>", None, "")),
        )
            .into_response();
    };
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let me = device.partner();
    drop(device);
    let mut body = String::new();
    if matches!(section, Section::Needs | Section::Boundaries) {
        body.push_str("<p class=\"muted\">Yours are yours alone: only your devices can change them. Your partner's are shown, and cannot be changed here.</p>");
    }
    body.push_str(&to_resolve(&plan, me));
    body.push_str(&items_html(&plan, me, section, &ui.csrf));
    let title = match section {
        Section::Needs => "Needs",
        Section::Boundaries => "Boundaries",
        Section::Menu => "Menu and preferences",
        Section::Sequence => "Sequence",
        Section::Signals => "Signals",
        Section::Vocabulary => "Vocabulary",
        _ => section.noun(),
    };
    render(title, &format!("/s/{name}"), &body, &q)
}

fn setting_form(csrf: &str, plan: &Plan, name: &str) -> String {
    let Some(setting) = fields::Setting::named(name) else { return String::new() };
    let inner = format!(
        "<label>{}<input type=\"number\" name=\"value\" min=\"1\" max=\"{}\" value=\"{}\" required></label>",
        esc(setting.label),
        setting.max,
        setting.current(plan).map(|v| v.to_string()).unwrap_or_default()
    );
    form(&format!("/setting/{name}"), csrf, &inner, "Save")
}

/// A page of one setting and two sections: the check-in, de-escalation.
async fn settings_page(
    ui: &Ui,
    q: &Flash,
    (title, path): (&str, &str),
    setting: &str,
    sections: [(&str, Section); 2],
) -> Response {
    let device = fresh(ui).await;
    let plan = device.current_plan();
    let me = device.partner();
    drop(device);
    let mut body = setting_form(&ui.csrf, &plan, setting);
    for (heading, section) in sections {
        let _ = write!(body, "<h2>{heading}</h2>");
        body.push_str(&items_html(&plan, me, section, &ui.csrf));
    }
    render(title, path, &body, q)
}

/// `/checkin`.
pub async fn checkin(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let sections = [("Debrief questions", Section::Questions), ("Later check-ins", Section::Later)];
    settings_page(&ui, &q, ("Check-in", "/checkin"), "window", sections).await
}

/// `/deescalation`.
pub async fn deescalation(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let sections = [("Techniques", Section::Techniques), ("Neutral spaces", Section::Spaces)];
    settings_page(&ui, &q, ("De-escalation", "/deescalation"), "limit", sections).await
}

/// The signals a button can send: the built-in ones and the agreed ones.
fn signal_buttons(plan: &Plan, csrf: &str) -> String {
    let mut names: Vec<(String, String)> = vec![
        ("pause".into(), "Pause".into()),
        ("space".into(), "I need space".into()),
        ("check-on-me".into(), "Check on me".into()),
    ];
    for s in plan.signals.iter().filter(|s| !s.meta.archived()) {
        if !names.iter().any(|(n, _)| *n == s.name) {
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
        out.push_str(
            &form("/signal", csrf, &inner, &label).replace("<form ", "<form class=\"inline\" "),
        );
    }
    out.push_str("</div>");
    out
}

/// `/now`: the right-now view, for low light.
pub async fn now(State(ui): State<Arc<Ui>>, q: Flash) -> Response {
    let device = fresh(&ui).await;
    let plan = device.current_plan();
    let signals = device.sync_state().signals().to_vec();
    let senders: Vec<(cove_shared::DeviceId, Partner)> =
        device.membership().members().map(|m| (m.device, m.partner)).collect();
    drop(device);
    let mut body = String::new();
    let now = ui.clock.now_ms();
    for s in signals.iter().filter(|s| !s.expired(now)) {
        let from = senders
            .iter()
            .find(|(d, _)| *d == s.from)
            .map_or_else(|| "your partner".to_owned(), |(_, p)| plan.name(*p));
        let _ = write!(
            body,
            "<p class=\"signal-received\">Signal from {}: {}</p>",
            esc(&from),
            esc(&s.signal.signal)
        );
    }
    // The signal buttons first: in the moment, they matter most.
    body.push_str("<h2 class=\"hidden\">Send a signal</h2>");
    body.push_str(&signal_buttons(&plan, &ui.csrf));
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
    let mut body = format!("<p>Relay {}: {}.</p>", esc(device.relay()), esc(&reachable));
    let _ = write!(
        body,
        "<p>Last sync: {}.</p>",
        esc(&state
            .last_sync()
            .map_or_else(|| "never".to_owned(), |t| cove_client::human::ago(t, now_s)))
    );
    body.push_str("<h2>Devices</h2><ul>");
    for row in device.device_rows() {
        let heard = row.last_heard.map_or_else(
            || "never heard from".to_owned(),
            |t| format!("last heard {}", cove_client::human::ago(t, now_s)),
        );
        let who = row.name.clone().unwrap_or_else(|| format!("partner {}", row.partner));
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

/// `/events`: live events for the page's script.
pub async fn events(
    State(ui): State<Arc<Ui>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = ui.events.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(LiveEvent { kind, data }) => {
                Some((Ok(SseEvent::default().event(kind).data(data)), receiver))
            }
            // Missed some: the page fetches the latest anyway.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                Some((Ok(SseEvent::default().event("changed").data("{}")), receiver))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
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
