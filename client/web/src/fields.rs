//! Which fields each section's forms have, how they render, and how a
//! submitted form becomes fields to write (with the same rules as the
//! command line).

use crate::html::{esc, select, text_input};
use cove_client::plan::fields::{self, Kind, Spec};
use cove_client::plan::schema::shared as s;
pub use cove_client::plan::settings::Setting;
use cove_client::plan::write::{Field, Section};
use std::collections::HashMap;

/// The page a setting is set on.
pub fn page(setting: &Setting) -> &'static str {
    match setting.at.0 {
        s::CHECKIN => "/checkin",
        s::DEESCALATION => "/deescalation",
        _ => "/reviews",
    }
}

/// The sections with item pages, by URL name.
pub fn section(name: &str) -> Option<Section> {
    Section::named(name).filter(|s| !matches!(s, Section::Sessions | Section::Reviews))
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
