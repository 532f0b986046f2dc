//! Which fields each section's forms have, how they render, and how a
//! submitted form becomes fields to write (with the same rules as the
//! command line).

use crate::html::{esc, select, text_input};
use cove_client::plan::fields::{self, Kind, Spec};
use cove_client::plan::model::Plan;
use cove_client::plan::schema::{MAX_CADENCE_DAYS, MAX_MINUTES, shared as s};
use cove_client::plan::write::{Field, Section};
use std::collections::HashMap;

/// A whole-number setting of the shared document, as a form sets it.
pub struct Setting {
    /// Its name in the form's address: `/setting/{name}`.
    pub name: &'static str,
    /// The map that holds it, and its key there.
    pub at: (&'static str, &'static str),
    /// The largest value (the smallest is 1).
    pub max: i64,
    /// The page it is set on.
    pub page: &'static str,
    /// What people see.
    pub label: &'static str,
}

/// The settings: the check-in window, the time to reflect, the review
/// cadence (the same bounds as the command line's).
pub const SETTINGS: [Setting; 3] = [
    Setting {
        name: "window",
        at: (s::CHECKIN, "window_minutes"),
        max: MAX_MINUTES,
        page: "/checkin",
        label: "Check-in window after a session (minutes)",
    },
    Setting {
        name: "limit",
        at: (s::DEESCALATION, "reflection_limit_minutes"),
        max: MAX_MINUTES,
        page: "/deescalation",
        label: "Time to reflect before talking again (minutes)",
    },
    Setting {
        name: "cadence",
        at: (s::REVIEWS, "cadence_days"),
        max: MAX_CADENCE_DAYS,
        page: "/reviews",
        label: "Review every (days)",
    },
];

impl Setting {
    /// The setting called `name`.
    pub fn named(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    /// Its value in `plan`.
    pub fn current(&self, plan: &Plan) -> Option<i64> {
        match self.name {
            "window" => plan.checkin.window_minutes,
            "limit" => plan.deescalation.reflection_limit_minutes,
            _ => plan.reviews.cadence_days,
        }
    }
}

/// The sections with item pages, by URL name.
pub fn section(name: &str) -> Option<Section> {
    Some(match name {
        "needs" => Section::Needs,
        "boundaries" => Section::Boundaries,
        "menu" => Section::Menu,
        "sequence" => Section::Sequence,
        "signals" => Section::Signals,
        "vocabulary" => Section::Vocabulary,
        "questions" => Section::Questions,
        "later" => Section::Later,
        "techniques" => Section::Techniques,
        "spaces" => Section::Spaces,
        _ => return None,
    })
}

/// A section's URL name.
pub fn url_name(section: Section) -> &'static str {
    match section {
        Section::Needs => "needs",
        Section::Boundaries => "boundaries",
        Section::Menu => "menu",
        Section::Sequence => "sequence",
        Section::Signals => "signals",
        Section::Vocabulary => "vocabulary",
        Section::Questions => "questions",
        Section::Later => "later",
        Section::Techniques => "techniques",
        Section::Spaces => "spaces",
        Section::Sessions => "sessions",
        Section::Reviews => "reviews",
    }
}

/// The form fields of a section: the engine's table, less what the engine
/// sets itself.
fn specs(section: Section) -> impl Iterator<Item = &'static Spec> {
    fields::of(section).iter().filter(|spec| spec.shown())
}

/// The inputs of a form, filled from `item` (an item's JSON) if given.
pub fn inputs(section: Section, item: Option<&serde_json::Value>) -> String {
    let mut out = String::new();
    for spec in specs(section) {
        let current = item.and_then(|i| i.get(spec.json));
        let value = match current {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        };
        out.push_str(&match spec.kind {
            Kind::Text | Kind::Internal => {
                text_input(spec.key, spec.label, &value, spec.required && item.is_none())
            }
            Kind::Choice(of) => select(spec.key, spec.label, &of(), &value, Some("(not set)")),
            Kind::Int { min: lo, max: hi } => format!(
                "<label>{}<input type=\"number\" name=\"{}\" min=\"{lo}\" max=\"{hi}\" value=\"{}\"></label>",
                esc(spec.label),
                spec.key,
                esc(&value)
            ),
            Kind::Bool => format!(
                "<label><input type=\"checkbox\" name=\"{}\" value=\"true\"{}> {}</label><input type=\"hidden\" name=\"{}__present\" value=\"1\">",
                spec.key,
                if value == "true" { " checked" } else { "" },
                esc(spec.label),
                spec.key
            ),
        });
    }
    out
}

/// A submitted form, as fields to write: the engine checks and normalises
/// them (see `cove_client::plan::fields`). An empty input leaves a field
/// out when adding, and clears it when editing.
pub fn parse(
    section: Section,
    form: &HashMap<String, String>,
    adding: bool,
) -> Result<Vec<(&'static str, Field)>, String> {
    let mut out = Vec::new();
    for spec in specs(section) {
        let given = form.get(spec.key).map(|v| v.trim()).unwrap_or("");
        if let Kind::Bool = spec.kind {
            if form.contains_key(&format!("{}__present", spec.key)) || form.contains_key(spec.key) {
                out.push((spec.key, Field::Bool(given == "true" || given == "on")));
            }
            continue;
        }
        if given.is_empty() {
            if !adding && form.contains_key(spec.key) {
                out.push((spec.key, Field::Clear));
            }
            continue;
        }
        let field = match spec.kind {
            Kind::Choice(of) => match of().into_iter().find(|c| *c == given) {
                Some(c) => Field::Choice(c),
                None => return Err(format!("{}: choose one of the listed values.", spec.label)),
            },
            Kind::Int { .. } => match given.parse::<i64>() {
                Ok(n) => Field::Int(n),
                Err(_) => return Err(format!("{}: a whole number.", spec.label)),
            },
            _ => Field::Str(given.to_owned()),
        };
        out.push((spec.key, field));
    }
    Ok(out)
}
