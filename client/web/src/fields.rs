//! Which fields each section's forms have, how they render, and how a
//! submitted form becomes fields to write (with the same rules as the
//! command line).

use crate::html::{esc, select, text_input};
use cove_client::plan::model::{
    Category, Choice, Domain, Firmness, ForWhom, Meaning, Plan, Scope, SignalKind,
};
use cove_client::plan::schema::{MAX_CADENCE_DAYS, MAX_MINUTES, shared as s};
use cove_client::plan::write::{Field, Section};
use std::collections::HashMap;

/// How a field is entered.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Free text (one value).
    Text,
    /// One of a closed set.
    Choice(fn() -> Vec<&'static str>),
    /// A whole number in a range.
    Int(i64, i64),
    /// Yes or no.
    Bool,
}

/// One field of a section's form.
#[derive(Clone, Copy)]
pub struct Spec {
    /// The document key (and form field name).
    pub key: &'static str,
    /// The key in the item's JSON, where it differs.
    pub json: &'static str,
    /// The label people see.
    pub label: &'static str,
    /// How it is entered.
    pub kind: Kind,
    /// Whether an item needs it.
    pub required: bool,
}

fn names<C: Choice>() -> Vec<&'static str> {
    C::ALL.iter().map(|c| c.as_str()).collect()
}

const fn text(key: &'static str, label: &'static str, required: bool) -> Spec {
    Spec { key, json: key, label, kind: Kind::Text, required }
}

const fn choice(key: &'static str, label: &'static str, of: fn() -> Vec<&'static str>) -> Spec {
    Spec { key, json: key, label, kind: Kind::Choice(of), required: false }
}

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

/// The form fields of a section.
pub fn specs(section: Section) -> Vec<Spec> {
    match section {
        Section::Needs => vec![
            text("text", "The need, in your words", true),
            choice("domain", "About", names::<Domain>),
            text("environment", "Surroundings (light, sound, warmth, place)", false),
            Spec {
                key: "closeness",
                json: "closeness",
                label: "Closeness (0 = space, 4 = full contact)",
                kind: Kind::Int(0, 4),
                required: false,
            },
            text("communication", "How you like to communicate then", false),
        ],
        Section::Boundaries => vec![
            text("statement", "The boundary, in your words", true),
            choice("firmness", "Firmness", names::<Firmness>),
            choice("scope", "When it applies", names::<Scope>),
        ],
        Section::Menu => vec![
            text("title", "Title", true),
            choice("category", "Kind", names::<Category>),
            text("description", "Description", false),
        ],
        Section::Sequence => vec![
            // Or taken from the menu option the step uses (see `actions`).
            text("title", "Step", false),
            Spec {
                key: "for",
                json: "for_whom",
                label: "For",
                kind: Kind::Choice(names::<ForWhom>),
                required: false,
            },
            Spec {
                key: "optional",
                json: "optional",
                label: "Optional",
                kind: Kind::Bool,
                required: false,
            },
        ],
        Section::Signals => vec![
            text("name", "Word, gesture or button name", true),
            choice("kind", "How it is given", names::<SignalKind>),
            choice("meaning", "What it means", names::<Meaning>),
            text("response", "What the other partner does", false),
        ],
        Section::Vocabulary => {
            vec![text("term", "Term", true), text("meaning", "What we mean by it", false)]
        }
        Section::Questions => vec![text("text", "Question", true)],
        Section::Later => {
            vec![text("when", "When", true), text("note", "What to ask or do", false)]
        }
        Section::Techniques => {
            vec![text("title", "Technique", true), text("description", "How it goes", false)]
        }
        Section::Spaces => vec![
            text("place", "Place", true),
            Spec {
                key: "for",
                json: "for_whom",
                label: "Whose space",
                kind: Kind::Choice(names::<ForWhom>),
                required: false,
            },
        ],
        Section::Sessions | Section::Reviews => Vec::new(),
    }
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
            Kind::Text => text_input(spec.key, spec.label, &value, spec.required && item.is_none()),
            Kind::Choice(of) => select(spec.key, spec.label, &of(), &value, Some("(not set)")),
            Kind::Int(lo, hi) => format!(
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

/// A submitted form, as fields to write. An empty input leaves a field out
/// when adding, and clears it when editing (never a required one).
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
            if spec.required {
                return Err(format!("{} is needed.", spec.label));
            }
            if !adding && form.contains_key(spec.key) {
                out.push((spec.key, Field::Clear));
            }
            continue;
        }
        let field = match spec.kind {
            Kind::Text => Field::Str(given.to_owned()),
            Kind::Choice(of) => match of().into_iter().find(|c| *c == given) {
                Some(c) => Field::Choice(c),
                None => return Err(format!("{}: choose one of the listed values.", spec.label)),
            },
            Kind::Int(lo, hi) => match given.parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => Field::Int(n),
                _ => return Err(format!("{}: a whole number from {lo} to {hi}.", spec.label)),
            },
            Kind::Bool => continue,
        };
        out.push((spec.key, field));
    }
    Ok(out)
}
