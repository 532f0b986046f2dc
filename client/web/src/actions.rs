//! The forms. Each change follows the command line's rules (ownership,
//! archive rather than delete, the same validation), is committed locally,
//! handed to the sync engine to send at once, and announced to open pages.
//! Every answer is a redirect back to a page, with the key of a note (a
//! message or an error) that the server keeps: `?n=KEY`.

use crate::advice;
use crate::fields;
use crate::pages::fresh;
use crate::{Note, Ui};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cove_client::device::{Device, DeviceError};
use cove_client::plan::calendar::{format_day, parse_day, today};
use cove_client::plan::ids::{position_between, short};
use cove_client::plan::items::resolve;
use cove_client::plan::model::{Choice, Preference, Status};
use cove_client::plan::replaced::{self, Stored};
use cove_client::plan::review;
use cove_client::plan::schema::shared as s;
use cove_client::plan::write::{self, Author, Field, Section};
use cove_client::plan::{self};
use cove_shared::DocId;
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A submitted form: every pair, in order (checkboxes repeat a name).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &Bytes) -> Self {
        Self(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// Back to `path`, with a message or an error.
pub(crate) fn back(ui: &Ui, path: &str, outcome: Result<String, String>) -> Response {
    let note = match outcome {
        Ok(text) => Note { text, error: false },
        Err(text) => Note { text, error: true },
    };
    let key = ui.keep_note(note);
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{path}?n={key}"))]).into_response()
}

/// Where a form came from, if it names a page of this site; else
/// `otherwise`.
pub(crate) fn return_to(form: &Form, otherwise: &str) -> String {
    match form.get("back") {
        // Only a plain path of this site: no second slash at the start, no
        // backslash, query or anything a browser might read as another host.
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_')) =>
        {
            path.to_owned()
        }
        _ => otherwise.to_owned(),
    }
}

/// Whether the form carries this page's anti-forgery value.
pub(crate) fn genuine(ui: &Ui, form: &Form) -> bool {
    let csrf = form.get("csrf").unwrap_or("");
    csrf.len() == ui.csrf.len() && bool::from(csrf.as_bytes().ct_eq(ui.csrf.as_bytes()))
}

pub(crate) fn forged() -> Response {
    (StatusCode::FORBIDDEN, "This form is out of date: reload the page and try again.")
        .into_response()
}

/// Checks the anti-forgery value; runs `change` with the device; then hands
/// the change to the sync engine and tells open pages, and redirects.
async fn act(
    ui: &Ui,
    body: &Bytes,
    path: &str,
    change: impl AsyncFnOnce(&mut Device, &Form) -> Result<String, DeviceError>,
) -> Response {
    let form = Form::parse(body);
    if !genuine(ui, &form) {
        return forged();
    }
    let mut device = fresh(ui).await;
    let outcome = change(&mut device, &form).await;
    // The relay is the sync engine's business: no page waits on it.
    drop(device);
    if outcome.is_ok() {
        ui.send_now.notify_one();
        ui.changed();
    }
    back(ui, path, outcome.map_err(|e| advice::say(&e)))
}

fn author(device: &Device) -> Author {
    Author { partner: device.partner(), now_ms: device.now_ms() }
}

fn page_of(section: Section) -> String {
    match section {
        Section::Questions | Section::Later => "/checkin".into(),
        Section::Techniques | Section::Spaces => "/deescalation".into(),
        other => format!("/s/{}", other.name()),
    }
}

/// A step's menu option (form field `option`, when the form has one): the
/// field to write, with the title taken from the option when none is given,
/// as the command line does. An empty choice clears it.
fn step_option(
    device: &Device,
    section: Section,
    form: &mut HashMap<String, String>,
) -> Result<Option<(&'static str, Field)>, DeviceError> {
    if section != Section::Sequence {
        return Ok(None);
    }
    let Some(given) = form.get("option").map(|o| o.trim().to_owned()) else { return Ok(None) };
    if given.is_empty() {
        return Ok(Some(("option", Field::Clear)));
    }
    let id = resolve(device, Section::Menu, &given)?;
    if form.get("title").is_none_or(|t| t.trim().is_empty()) {
        let plan = device.current_plan();
        if let Some(option) = plan.menu.iter().find(|m| m.meta.id == id) {
            form.insert("title".into(), option.title.clone());
        }
    }
    Ok(Some(("option", Field::Str(id))))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "There is no such section.").into_response()
}

/// `POST /s/{section}/add`.
pub async fn add(State(ui): State<Arc<Ui>>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(section) = fields::section(&name) else { return not_found() };
    act(&ui, &body, &page_of(section), async |device, form| {
        let mut map = form.map();
        let option = step_option(device, section, &mut map)?;
        let mut all = fields::parse(section, &map, true).map_err(DeviceError::Invalid)?;
        all.extend(option);
        if section == Section::Sequence {
            // A new step goes last.
            let plan = device.current_plan();
            let last = plan.sequence.last().map(|s| s.position.clone());
            let position = position_between(last.as_deref(), None);
            all.push((plan::fields::step::POSITION.key, Field::Str(position)));
        }
        let who = author(device);
        let doc = section.doc(device.partner());
        let id = device
            .edit(doc, |tx| write::add(tx, who, section, all).map_err(DeviceError::from))
            .await?;
        Ok(format!("Added {} [{}].", section.noun(), short(&id)))
    })
    .await
}

/// `POST /s/{section}/{id}/edit`.
pub async fn edit(
    State(ui): State<Arc<Ui>>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(section) = fields::section(&name) else { return not_found() };
    act(&ui, &body, &page_of(section), async |device, form| {
        let id = resolve(device, section, &id)?;
        let mut map = form.map();
        let option = step_option(device, section, &mut map)?;
        let mut fields = fields::parse(section, &map, false).map_err(DeviceError::Invalid)?;
        fields.extend(option);
        let doc = section.doc(device.partner());
        device
            .edit(doc, |tx| write::update(tx, section, &id, fields).map_err(DeviceError::from))
            .await?;
        Ok(format!("Saved {} [{}].", section.noun(), short(&id)))
    })
    .await
}

/// `POST /s/{section}/{id}/archive`.
pub async fn archive(
    State(ui): State<Arc<Ui>>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(section) = fields::section(&name) else { return not_found() };
    act(&ui, &body, &page_of(section), async |device, _| {
        let id = resolve(device, section, &id)?;
        let who = author(device);
        let doc = section.doc(device.partner());
        device
            .edit(doc, |tx| write::archive(tx, who, section, &id).map_err(DeviceError::from))
            .await?;
        Ok(format!(
            "Archived {} [{}]; it is kept, and can be restored.",
            section.noun(),
            short(&id)
        ))
    })
    .await
}

/// `POST /s/{section}/{id}/restore`.
pub async fn restore(
    State(ui): State<Arc<Ui>>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(section) = fields::section(&name) else { return not_found() };
    act(&ui, &body, &page_of(section), async |device, _| {
        let id = resolve(device, section, &id)?;
        let doc = section.doc(device.partner());
        device.edit(doc, |tx| write::restore(tx, section, &id).map_err(DeviceError::from)).await?;
        Ok(format!("Restored {} [{}].", section.noun(), short(&id)))
    })
    .await
}

/// `POST /boundary/{id}/withdraw|reinstate`.
pub async fn boundary_status(
    State(ui): State<Arc<Ui>>,
    Path((id, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let status = match to.as_str() {
        "withdraw" => Status::Withdrawn,
        "reinstate" => Status::Active,
        _ => return (StatusCode::NOT_FOUND, "No such action.").into_response(),
    };
    act(&ui, &body, "/s/boundaries", async |device, _| {
        let id = resolve(device, Section::Boundaries, &id)?;
        let doc = device.partner().doc();
        let fields = vec![("status", Field::choice(status))];
        device
            .edit(doc, |tx| {
                write::update(tx, Section::Boundaries, &id, fields).map_err(DeviceError::from)
            })
            .await?;
        Ok(match status {
            Status::Withdrawn => format!("Withdrew boundary [{}].", short(&id)),
            Status::Active => format!("Boundary [{}] is in force again.", short(&id)),
        })
    })
    .await
}

/// `POST /prefer/{option}`.
pub async fn prefer(
    State(ui): State<Arc<Ui>>,
    Path(option): Path<String>,
    body: Bytes,
) -> Response {
    act(&ui, &body, "/s/menu", async |device, form| {
        let id = resolve(device, Section::Menu, &option)?;
        let Some(value) = form.get("preference").and_then(Preference::parse) else {
            return Err(DeviceError::Invalid("Choose yes, maybe, ask-me or no.".into()));
        };
        let plan = device.current_plan();
        let basis =
            plan.menu.iter().find(|m| m.meta.id == id).map(plan::read::option_basis).ok_or_else(
                || DeviceError::Invalid("That option is not on the menu; reload the page.".into()),
            )?;
        let doc = device.partner().doc();
        device
            .edit(doc, |tx| {
                write::set_preference(tx, &id, value, &basis).map_err(DeviceError::from)
            })
            .await?;
        Ok(format!("Your preference is now: {value}."))
    })
    .await
}

/// `POST /step/{id}/move` with `place` = first, up, down or last.
pub async fn move_step(State(ui): State<Arc<Ui>>, Path(id): Path<String>, body: Bytes) -> Response {
    act(&ui, &body, "/s/sequence", async |device, form| {
        let id = resolve(device, Section::Sequence, &id)?;
        let plan = device.current_plan();
        let order: Vec<&str> =
            plan.sequence.iter().filter(|s| s.meta.id != id).map(|s| s.position.as_str()).collect();
        let at = plan.sequence.iter().position(|s| s.meta.id == id).unwrap_or(0);
        let (before, after) = match form.get("place") {
            Some("first") => (None, order.first().copied()),
            Some("last") => (order.last().copied(), None),
            // Without the moved step, its old neighbours sit at at-1 and at.
            Some("up") => (
                at.checked_sub(2).and_then(|i| order.get(i).copied()),
                at.checked_sub(1).and_then(|i| order.get(i).copied()),
            ),
            Some("down") => (order.get(at).copied(), order.get(at + 1).copied()),
            _ => return Err(DeviceError::Invalid("Say where to move the step.".into())),
        };
        let position = position_between(before, after);
        let fields = vec![("position", Field::Str(position))];
        device
            .edit(DocId::Shared, |tx| {
                write::update(tx, Section::Sequence, &id, fields).map_err(DeviceError::from)
            })
            .await?;
        Ok("Moved the step.".into())
    })
    .await
}

/// `POST /setting/{window|limit|cadence}`.
pub async fn setting(State(ui): State<Arc<Ui>>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(setting) = fields::Setting::named(&name) else {
        return (StatusCode::NOT_FOUND, "No such setting.").into_response();
    };
    let (container, key) = setting.at;
    act(&ui, &body, fields::page(setting), async |device, form| {
        let max = setting.max;
        let Some(value) = form
            .get("value")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| (1..=max).contains(v))
        else {
            return Err(DeviceError::Invalid(format!(
                "{}: a whole number from 1 to {max}.",
                setting.label
            )));
        };
        let plan = device.current_plan();
        // A first cadence plans the first review, as the command line does.
        let next = (key == "cadence_days" && plan.reviews.next_due.is_none())
            .then(|| format_day(today(device.now_ms()) + value));
        device
            .edit(DocId::Shared, |tx| {
                write::set_setting(tx, container, key, Field::Int(value))?;
                if let Some(next) = next {
                    write::set_setting(tx, s::REVIEWS, "next_due", Field::Str(next))?;
                }
                Ok(())
            })
            .await?;
        Ok(format!("{}: {value}.", setting.label))
    })
    .await
}

/// `POST /replaced/restore`: puts back a value that an edit on another
/// device replaced at the same time.
pub async fn restore_replaced(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let path = return_to(&Form::parse(&body), "/");
    act(&ui, &body, &path, async |device, form| {
        let plan = device.current_plan();
        let (at, field) = (form.get("at").unwrap_or(""), form.get("field").unwrap_or(""));
        let section = Some(form.get("section").unwrap_or(""));
        let which = replaced::find_one(&plan.replaced, device.partner(), section, at, field)?;
        let value: Stored =
            form.get("value").and_then(|v| serde_json::from_str(v).ok()).ok_or_else(|| {
                DeviceError::Invalid("That form names no value: reload the page.".into())
            })?;
        replaced::restore(device, which, &value).await?;
        Ok(format!("Restored {value}."))
    })
    .await
}

/// `POST /sessions/log`.
pub async fn log_session(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    act(&ui, &body, "/sessions", async |device, form| {
        let day = match form.get("date").filter(|d| !d.is_empty()) {
            Some(d) => parse_day(d).ok_or_else(|| {
                DeviceError::Invalid(format!("'{d}' is not a day; choose one in the date field."))
            })?,
            None => today(device.now_ms()),
        };
        let plan = device.current_plan();
        let chooser = match form.get("chosen_by") {
            Some("me") => device.partner(),
            Some("partner") => device.partner().other(),
            _ => plan.next_to_choose(),
        };
        let options = form
            .all("option")
            .iter()
            .map(|o| resolve(device, Section::Menu, o))
            .collect::<Result<Vec<_>, _>>()?;
        let steps = form
            .all("step")
            .iter()
            .map(|o| resolve(device, Section::Sequence, o))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = vec![
            ("date", Field::Str(format_day(day))),
            ("chosen_by", Field::Partner(chooser)),
            ("options", Field::Set(options)),
            ("steps", Field::Set(steps)),
            ("notes", Field::Text(form.get("notes").unwrap_or("").to_owned())),
        ];
        let who = author(device);
        device
            .edit(DocId::Shared, |tx| {
                write::add(tx, who, Section::Sessions, fields).map_err(DeviceError::from)
            })
            .await?;
        Ok(format!("Logged the session on {}.", format_day(day)))
    })
    .await
}

/// `POST /debrief/{session}` with `question` and `answer`.
pub async fn debrief(
    State(ui): State<Arc<Ui>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Response {
    act(&ui, &body, "/sessions", async |device, form| {
        let session = resolve(device, Section::Sessions, &session)?;
        let question = resolve(device, Section::Questions, form.get("question").unwrap_or(""))?;
        let answer = form.get("answer").unwrap_or("").trim().to_owned();
        if answer.is_empty() {
            return Err(DeviceError::Invalid("Write an answer first.".into()));
        }
        let doc = device.partner().doc();
        device
            .edit(doc, |tx| {
                write::answer(tx, &session, &question, &answer).map_err(DeviceError::from)
            })
            .await?;
        Ok("Your answer is saved.".into())
    })
    .await
}

/// `POST /reviews/record`.
pub async fn record_review(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    act(&ui, &body, "/reviews", async |device, form| {
        let text = |k: &str| form.get(k).map(str::to_owned);
        review::record(device, text("wins"), text("lessons"), text("notes")).await?;
        Ok("Recorded the review, and confirmed it for you.".into())
    })
    .await
}

/// `POST /reviews/{id}/confirm`.
pub async fn confirm_review(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(&ui, &body, "/reviews", async |device, _| {
        let id = resolve(device, Section::Reviews, &id)?;
        let doc = device.partner().doc();
        let who = author(device);
        device.edit(doc, |tx| write::confirm(tx, who, &id).map_err(DeviceError::from)).await?;
        Ok("You confirmed the review.".into())
    })
    .await
}

/// `/alarms/{id}/ack`: acknowledges one alarm; `/alarms/all/ack` every open
/// alarm and every quarantined envelope so far. Nothing to send.
pub async fn acknowledge(
    State(ui): State<Arc<Ui>>,
    Path(which): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !genuine(&ui, &form) {
        return forged();
    }
    let ids: Vec<u64> = match which.as_str() {
        "all" => Vec::new(),
        id => match id.parse() {
            Ok(id) => vec![id],
            Err(_) => {
                return back(
                    &ui,
                    "/status",
                    Err("There is no such alarm; reload the Status page.".to_owned()),
                );
            }
        },
    };
    let mut device = fresh(&ui).await;
    let outcome = device.acknowledge(&ids).await;
    drop(device);
    ui.changed();
    let outcome = outcome
        .map(|n| match (ids.is_empty(), n) {
            (true, _) => "Acknowledged every alarm and set-aside envelope.".to_owned(),
            (false, _) => "Alarm acknowledged.".to_owned(),
        })
        .map_err(|e| advice::say(&e));
    back(&ui, "/status", outcome)
}

/// `POST /journal` with `text`.
pub async fn journal(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !genuine(&ui, &form) {
        return forged();
    }
    // Never sent anywhere: no announcement, no send.
    let device = fresh(&ui).await;
    let outcome = cove_client::journal::add(&device, form.get("text").unwrap_or("")).await;
    drop(device);
    let outcome = outcome
        .map(|_| "Written in this device's journal.".to_owned())
        .map_err(|e| advice::say(&e));
    back(&ui, "/journal", outcome)
}
