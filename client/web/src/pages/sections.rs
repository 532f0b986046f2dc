//! One page per plan section: its items, with the forms that add, change,
//! archive and restore them.

use super::{Flash, fresh, render, to_resolve};
use crate::Ui;
use crate::fields;
use crate::html::{button, esc, form, page, seg, select};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cove_client::plan::ids::is_id;
use cove_client::plan::items::{Row, rows};
use cove_client::plan::model::{Choice, Plan, Preference, Status};
use cove_client::plan::write::Section;
use cove_shared::Partner;
use std::fmt::Write;
use std::sync::Arc;

/// The items of one section, with forms to change them.
fn items_html(plan: &Plan, me: Partner, section: Section, csrf: &str) -> String {
    let name = section.name();
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
    body.push_str(&to_resolve(&plan, me, &ui.csrf, &format!("/s/{}", section.name())));
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

pub(super) fn setting_form(csrf: &str, plan: &Plan, name: &str) -> String {
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
    let mut body = to_resolve(&plan, me, &ui.csrf, path);
    body.push_str(&setting_form(&ui.csrf, &plan, setting));
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
