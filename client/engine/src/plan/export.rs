//! Export (Markdown for print, JSON complete, or the three Automerge
//! documents as saved) and import of a JSON export or of the three saved
//! documents.
//!
//! The JSON format is `{"format": "cove-plan", "version": 1, "exported_at":
//! <Unix ms>, "plan": <Plan>}`, where `Plan` is [`super::model::Plan`] as
//! `cove plan show --json` prints it; docs/plan.md describes every field.
//! Import keeps each item's id and history, so that preferences, sessions
//! and steps still point at the right menu options.

use super::calendar::{self, format_day, today};
use super::fields::{boundary, later, menu, need, question, signal, space, step, technique, term};
use super::ids::{self, short};
use super::model::{
    Boundary, Choice, ItemMeta, LaterCheckin, MenuOption, Need, PartnerPlan, Plan, Question,
    Review, Scope, Session, Signal, Space, Status, Step, Technique, Term,
};
use super::schema::shared as s;
use super::write::{self, Field, PlanError, Section};
use automerge::transaction::Transaction;
use cove_shared::Partner;
use serde::{Deserialize, Serialize};

/// The `format` field of a JSON export.
pub const FORMAT: &str = "cove-plan";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
/// The largest export `cove import` reads.
pub const MAX_IMPORT_BYTES: u64 = 16 * 1024 * 1024;

/// A JSON export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Always "cove-plan".
    pub format: String,
    /// The export format's version.
    pub version: u32,
    /// When it was made (Unix milliseconds).
    pub exported_at: i64,
    /// The whole plan.
    pub plan: Plan,
}

/// An export file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not JSON, or not the shape of an export.
    #[error("the file is not a Cove JSON export ({0})")]
    Malformed(String),
    /// One of the three saved documents does not load.
    #[error("the {0} document is not a saved Automerge document ({1})")]
    NotAutomerge(&'static str, String),
    /// Another format or a newer version.
    #[error(
        "the file is a '{format}' export, version {version}; this Cove reads '{FORMAT}' version {VERSION}"
    )]
    Unsupported {
        /// Its format.
        format: String,
        /// Its version.
        version: u32,
    },
}

/// The plan as a JSON export.
pub fn to_json(plan: &Plan, now_ms: i64) -> String {
    let export = Export {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: now_ms,
        plan: plan.clone(),
    };
    serde_json::to_string_pretty(&export).unwrap_or_default()
}

/// Reads a JSON export.
pub fn from_json(text: &str) -> Result<Export, ImportError> {
    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: u32,
    }
    let head: Head =
        serde_json::from_str(text).map_err(|e| ImportError::Malformed(e.to_string()))?;
    if head.format != FORMAT || head.version != VERSION {
        return Err(ImportError::Unsupported { format: head.format, version: head.version });
    }
    serde_json::from_str(text).map_err(|e| ImportError::Malformed(e.to_string()))
}

/// Reads the plan from the three Automerge documents as `cove export
/// --format automerge` saved them (shared, partner A's, partner B's), for
/// import as a JSON export is imported. Their history is read, not kept.
pub fn from_automerge(saved: [&[u8]; 3]) -> Result<Plan, ImportError> {
    let load = |bytes: &[u8], which: &'static str| {
        automerge::Automerge::load(bytes)
            .map_err(|e| ImportError::NotAutomerge(which, e.to_string()))
    };
    let [shared, a, b] = saved;
    Ok(super::read::plan(
        &load(shared, "shared")?,
        &load(a, "partner A's")?,
        &load(b, "partner B's")?,
    ))
}

fn str_field(key: &'static str, value: &str) -> (&'static str, Field) {
    (key, Field::Str(value.to_owned()))
}

fn opt_str(fields: &mut Vec<(&'static str, Field)>, key: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        fields.push(str_field(key, v));
    }
}

fn opt_choice<C: Choice>(fields: &mut Vec<(&'static str, Field)>, key: &'static str, v: Option<C>) {
    if let Some(v) = v {
        fields.push((key, Field::choice(v)));
    }
}

/// One item to write: where, its history, its fields.
pub struct ImportItem {
    /// Its section.
    pub section: Section,
    /// Its id and history.
    pub meta: ItemMeta,
    /// Its fields.
    pub fields: Vec<(&'static str, Field)>,
}

fn item(section: Section, meta: &ItemMeta, fields: Vec<(&'static str, Field)>) -> ImportItem {
    ImportItem { section, meta: meta.clone(), fields }
}

/// Every item of the shared document, as writes.
pub fn shared_items(plan: &Plan) -> Vec<ImportItem> {
    let mut out = Vec::new();
    for MenuOption { meta, title, category, description } in &plan.menu {
        let mut f = vec![str_field(menu::TITLE.key, title)];
        opt_choice(&mut f, menu::CATEGORY.key, *category);
        opt_str(&mut f, menu::DESCRIPTION.key, description);
        out.push(item(Section::Menu, meta, f));
    }
    for Step { meta, title, option, for_whom, optional, position } in &plan.sequence {
        let mut f = vec![
            str_field(step::TITLE.key, title),
            (step::FOR.key, Field::choice(*for_whom)),
            (step::OPTIONAL.key, Field::Bool(*optional)),
            str_field(step::POSITION.key, position),
        ];
        opt_str(&mut f, step::OPTION.key, option);
        out.push(item(Section::Sequence, meta, f));
    }
    for Signal { meta, name, kind, meaning, response } in &plan.signals {
        let mut f = vec![str_field(signal::NAME.key, name)];
        opt_choice(&mut f, signal::KIND.key, *kind);
        opt_choice(&mut f, signal::MEANING.key, *meaning);
        opt_str(&mut f, signal::RESPONSE.key, response);
        out.push(item(Section::Signals, meta, f));
    }
    for Term { meta, term, meaning } in &plan.vocabulary {
        out.push(item(
            Section::Vocabulary,
            meta,
            vec![str_field(term::TERM.key, term), str_field(term::MEANING.key, meaning)],
        ));
    }
    for Question { meta, text } in &plan.checkin.questions {
        out.push(item(Section::Questions, meta, vec![str_field(question::TEXT.key, text)]));
    }
    for LaterCheckin { meta, when, note, after_hours } in &plan.checkin.later {
        let mut f = vec![str_field(later::WHEN.key, when)];
        opt_str(&mut f, later::NOTE.key, note);
        if let Some(h) = after_hours {
            f.push((later::AFTER_HOURS.key, Field::Int(*h)));
        }
        out.push(item(Section::Later, meta, f));
    }
    for Technique { meta, title, description } in &plan.deescalation.techniques {
        let mut f = vec![str_field(technique::TITLE.key, title)];
        opt_str(&mut f, technique::DESCRIPTION.key, description);
        out.push(item(Section::Techniques, meta, f));
    }
    for Space { meta, place, for_whom } in &plan.deescalation.spaces {
        out.push(item(
            Section::Spaces,
            meta,
            vec![str_field(space::PLACE.key, place), (space::FOR.key, Field::choice(*for_whom))],
        ));
    }
    for Session { meta, date, chosen_by, options, steps, notes } in &plan.sessions {
        let mut f = vec![
            str_field("date", date),
            ("options", Field::Set(options.clone())),
            ("steps", Field::Set(steps.clone())),
            ("notes", Field::Text(notes.clone())),
        ];
        if let Some(p) = chosen_by {
            f.push(("chosen_by", Field::Partner(*p)));
        }
        out.push(item(Section::Sessions, meta, f));
    }
    for Review { meta, date, heads, wins, lessons, notes } in &plan.reviews.history {
        let f = vec![
            str_field("date", date),
            str_field("heads_shared", &heads[0].join(",")),
            str_field("heads_a", &heads[1].join(",")),
            str_field("heads_b", &heads[2].join(",")),
            ("wins", Field::Text(wins.clone())),
            ("lessons", Field::Text(lessons.clone())),
            ("notes", Field::Text(notes.clone())),
        ];
        out.push(item(Section::Reviews, meta, f));
    }
    out
}

/// Checks that every write an import would make succeeds, on scratch
/// documents, before anything real is made or changed: `new_plan` writes
/// the shared part too; `part` is the partner whose part comes in.
pub fn check(plan: &Plan, new_plan: bool, part: Partner) -> Result<(), PlanError> {
    use automerge::Automerge;
    let mut shared = Automerge::new();
    let mut tx = shared.transaction();
    super::schema::genesis_shared(&mut tx, 0)?;
    if new_plan {
        for ImportItem { section, meta, fields } in shared_items(plan) {
            write::put_item(&mut tx, section, &meta, fields)?;
        }
        shared_settings(&mut tx, plan)?;
    }
    tx.commit();
    let mut own = Automerge::new();
    let mut tx = own.transaction();
    super::schema::genesis_partner(&mut tx, "")?;
    if let Some(their) = plan.partner(part) {
        for ImportItem { section, meta, fields } in partner_items(their) {
            write::put_item(&mut tx, section, &meta, fields)?;
        }
        partner_values(&mut tx, their, &plan.menu, None)?;
    }
    tx.commit();
    if let Some(next) = &plan.reviews.next_due
        && calendar::parse_day(next).is_none()
    {
        return Err(PlanError::Invalid {
            field: "next_due",
            reason: format!("'{next}' is not a day"),
        });
    }
    Ok(())
}

/// The shared document's settings, written in one change.
pub fn shared_settings(tx: &mut Transaction<'_>, plan: &Plan) -> Result<(), PlanError> {
    if let Some(m) = plan.checkin.window_minutes {
        write::set_setting(tx, s::CHECKIN, "window_minutes", Field::Int(m))?;
    }
    if let Some(m) = plan.deescalation.reflection_limit_minutes {
        write::set_setting(tx, s::DEESCALATION, "reflection_limit_minutes", Field::Int(m))?;
    }
    if let Some(d) = plan.reviews.cadence_days {
        write::set_setting(tx, s::REVIEWS, "cadence_days", Field::Int(d))?;
    }
    if let Some(next) = &plan.reviews.next_due {
        write::set_setting(tx, s::REVIEWS, "next_due", Field::Str(next.clone()))?;
    }
    Ok(())
}

/// A partner's needs and boundaries, as writes into their own document.
pub fn partner_items(part: &PartnerPlan) -> Vec<ImportItem> {
    let mut out = Vec::new();
    for Need { meta, domain, text, environment, closeness, communication } in &part.needs {
        let mut f = vec![str_field(need::TEXT.key, text)];
        opt_choice(&mut f, need::DOMAIN.key, *domain);
        opt_str(&mut f, need::ENVIRONMENT.key, environment);
        if let Some(c) = closeness {
            f.push((need::CLOSENESS.key, Field::Int(*c)));
        }
        opt_str(&mut f, need::COMMUNICATION.key, communication);
        out.push(item(Section::Needs, meta, f));
    }
    for Boundary { meta, statement, firmness, scope, status } in &part.boundaries {
        let f = vec![
            str_field(boundary::STATEMENT.key, statement),
            (boundary::FIRMNESS.key, Field::choice(*firmness)),
            (boundary::SCOPE.key, Field::choice(*scope)),
            (boundary::STATUS.key, Field::choice(*status)),
        ];
        out.push(item(Section::Boundaries, meta, f));
    }
    out
}

/// A partner's preferences, debrief answers and confirmations, into their
/// own document. Only what `existing` (their part as it stands) lacks is
/// written: bringing an export in again never undoes a later choice. A
/// preference is written only for an option in `menu`, with its basis.
pub fn partner_values(
    tx: &mut Transaction<'_>,
    part: &PartnerPlan,
    menu: &[MenuOption],
    existing: Option<&PartnerPlan>,
) -> Result<(), PlanError> {
    for (option, preference) in &part.preferences {
        let Some(current) = menu.iter().find(|m| &m.meta.id == option) else { continue };
        if existing.is_some_and(|e| e.preferences.contains_key(option)) {
            continue;
        }
        write::set_preference(tx, option, *preference, &super::read::option_basis(current))?;
    }
    for (session, answers) in &part.debriefs {
        for (question, answer) in answers {
            if !ids::is_id(session) || !ids::is_id(question) {
                return Err(PlanError::Invalid {
                    field: "debriefs",
                    reason: format!(
                        "'{session}/{question}' does not name a session and a question"
                    ),
                });
            }
            if existing
                .and_then(|e| e.debriefs.get(session))
                .is_some_and(|a| a.contains_key(question))
            {
                continue;
            }
            write::answer(tx, session, question, answer)?;
        }
    }
    for (review, at) in &part.confirmations {
        if existing.is_some_and(|e| e.confirmations.contains_key(review)) {
            continue;
        }
        write::confirm_at(tx, review, *at)?;
    }
    Ok(())
}

/// The plan as a printable Markdown document (archived items left out).
pub fn to_markdown(plan: &Plan, now_ms: i64) -> String {
    let mut md = String::new();
    let mut line = |text: String| {
        md.push_str(&text);
        md.push('\n');
    };
    line("# Our aftercare plan".into());
    line(String::new());
    line(format!("Printed from Cove on {}.", format_day(today(now_ms))));
    for partner in [Partner::A, Partner::B] {
        let name = plan.name(partner);
        line(String::new());
        line(format!("## {name}"));
        let Some(part) = plan.partner(partner) else {
            line(String::new());
            line("Not joined yet.".into());
            continue;
        };
        line(String::new());
        line("### Needs afterwards".into());
        line(String::new());
        let needs: Vec<&Need> = part.needs.iter().filter(|n| !n.meta.archived()).collect();
        if needs.is_empty() {
            line("None written.".into());
        }
        for n in needs {
            let mut extra = Vec::new();
            if let Some(d) = n.domain {
                extra.push(d.to_string());
            }
            if let Some(c) = n.closeness {
                extra.push(format!("closeness {c} of 4"));
            }
            if let Some(e) = &n.environment {
                extra.push(format!("surroundings: {e}"));
            }
            if let Some(c) = &n.communication {
                extra.push(format!("communication: {c}"));
            }
            let extra =
                if extra.is_empty() { String::new() } else { format!(" ({})", extra.join("; ")) };
            line(format!("- {}{extra}", n.text));
        }
        line(String::new());
        line("### Boundaries".into());
        line(String::new());
        let boundaries: Vec<&Boundary> = part
            .boundaries
            .iter()
            .filter(|b| !b.meta.archived() && b.status == Status::Active)
            .collect();
        if boundaries.is_empty() {
            line("None written.".into());
        }
        for b in boundaries {
            let when = match b.scope {
                Scope::Cooldown => "during cooldown",
                Scope::Debrief => "during the debrief",
                Scope::Always => "always",
            };
            line(format!("- **{}**, {when}: {}", b.firmness, b.statement));
        }
    }
    line(String::new());
    line("## Menu of aftercare options".into());
    line(String::new());
    line(format!(
        "| Option | Kind | Description | {} | {} |",
        plan.name(Partner::A),
        plan.name(Partner::B)
    ));
    line("|---|---|---|---|---|".into());
    for m in plan.menu.iter().filter(|m| !m.meta.archived()) {
        let pref = |p: Partner| {
            plan.partner(p)
                .and_then(|pp| pp.preferences.get(&m.meta.id))
                .map_or_else(String::new, |v| v.to_string())
        };
        line(format!(
            "| {} | {} | {} | {} | {} |",
            cell(&m.title),
            m.category.map(|c| c.to_string()).unwrap_or_default(),
            cell(m.description.as_deref().unwrap_or("")),
            pref(Partner::A),
            pref(Partner::B)
        ));
    }
    line(String::new());
    line("## Sequence".into());
    line(String::new());
    for (i, st) in plan.sequence.iter().filter(|s| !s.meta.archived()).enumerate() {
        let who = match st.for_whom {
            super::model::ForWhom::A => plan.name(Partner::A),
            super::model::ForWhom::B => plan.name(Partner::B),
            super::model::ForWhom::Both => "both".into(),
        };
        let optional = if st.optional { ", optional" } else { "" };
        line(format!("{}. {} (for {who}{optional})", i + 1, st.title));
    }
    line(String::new());
    line("## Signals".into());
    line(String::new());
    for x in plan.signals.iter().filter(|x| !x.meta.archived()) {
        let meaning = x.meaning.map(|m| format!(": {m}")).unwrap_or_default();
        let response =
            x.response.as_deref().map(|r| format!(". Response: {r}")).unwrap_or_default();
        line(format!("- **{}**{meaning}{response}", x.name));
    }
    let terms: Vec<&Term> = plan.vocabulary.iter().filter(|t| !t.meta.archived()).collect();
    if !terms.is_empty() {
        line(String::new());
        line("## Our words".into());
        line(String::new());
        for t in terms {
            line(format!("- **{}**: {}", t.term, t.meaning));
        }
    }
    line(String::new());
    line("## Check-in".into());
    line(String::new());
    if let Some(m) = plan.checkin.window_minutes {
        line(format!("Check-in window: {m} minutes after a session."));
        line(String::new());
    }
    for q in plan.checkin.questions.iter().filter(|q| !q.meta.archived()) {
        line(format!("- {}", q.text));
    }
    for l in plan.checkin.later.iter().filter(|l| !l.meta.archived()) {
        let note = l.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
        line(format!("- Later, {}{note}", l.when));
    }
    line(String::new());
    line("## De-escalation".into());
    line(String::new());
    if let Some(m) = plan.deescalation.reflection_limit_minutes {
        line(format!("Time to reflect before talking again: up to {m} minutes."));
        line(String::new());
    }
    for t in plan.deescalation.techniques.iter().filter(|t| !t.meta.archived()) {
        let d = t.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        line(format!("- **{}**{d}", t.title));
    }
    for sp in plan.deescalation.spaces.iter().filter(|x| !x.meta.archived()) {
        let whose = match sp.for_whom {
            super::model::ForWhom::A => format!(" ({})", plan.name(Partner::A)),
            super::model::ForWhom::B => format!(" ({})", plan.name(Partner::B)),
            super::model::ForWhom::Both => String::new(),
        };
        line(format!("- Neutral space: {}{whose}", sp.place));
    }
    line(String::new());
    line("## Sessions".into());
    line(String::new());
    let sessions: Vec<&Session> = plan.sessions.iter().filter(|x| !x.meta.archived()).collect();
    line(format!(
        "{} logged. Next to choose the aftercare: {}.",
        sessions.len(),
        plan.name(plan.next_to_choose())
    ));
    let titles = |ids: &[String], of: &dyn Fn(&str) -> Option<String>| -> String {
        ids.iter().filter_map(|id| of(id)).collect::<Vec<_>>().join(", ")
    };
    let option = |id: &str| plan.menu.iter().find(|m| m.meta.id == id).map(|m| m.title.clone());
    let step = |id: &str| plan.sequence.iter().find(|s| s.meta.id == id).map(|s| s.title.clone());
    for x in sessions {
        let chooser = x.chosen_by.map(|p| plan.name(p)).unwrap_or_default();
        line(format!("- {} [{}], chosen by {chooser}", x.date, short(&x.meta.id)));
        let used = titles(&x.options, &option);
        if !used.is_empty() {
            line(format!("  - Options used: {used}"));
        }
        let done = titles(&x.steps, &step);
        if !done.is_empty() {
            line(format!("  - Steps done: {done}"));
        }
        if !x.notes.is_empty() {
            line(format!("  - Notes: {}", x.notes));
        }
        for partner in [Partner::A, Partner::B] {
            let Some(answers) = plan.partner(partner).and_then(|p| p.debriefs.get(&x.meta.id))
            else {
                continue;
            };
            for (question, answer) in answers {
                let asked = plan
                    .checkin
                    .questions
                    .iter()
                    .find(|q| &q.meta.id == question)
                    .map_or("A debrief question", |q| q.text.as_str());
                line(format!("  - {} on \"{asked}\": {answer}", plan.name(partner)));
            }
        }
    }
    line(String::new());
    line("## Reviews".into());
    line(String::new());
    if let Some(d) = plan.reviews.cadence_days {
        line(format!(
            "Every {d} days. Next: {}.",
            plan.reviews.next_due.as_deref().unwrap_or("not set")
        ));
    }
    for r in plan.reviews.history.iter().filter(|r| !r.meta.archived()) {
        let confirmed = plan.confirmed_by(&r.meta.id);
        let confirmed = if confirmed.is_empty() {
            "not confirmed yet".to_owned()
        } else {
            format!("confirmed by {}", confirmed.join(" and "))
        };
        line(format!("- {} ({confirmed})", r.date));
        for (label, text) in [("Wins", &r.wins), ("Lessons", &r.lessons), ("Notes", &r.notes)] {
            if !text.is_empty() {
                line(format!("  - {label}: {text}"));
            }
        }
    }
    md
}

/// A value safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
