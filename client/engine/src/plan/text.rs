//! How plan items read in a sentence, in either face: one line per item,
//! and the plural of a section's noun.

use super::model::{
    Boundary, Conflict, ForWhom, LaterCheckin, MenuOption, Need, PartnerPlan, Plan, Preference,
    Scope, Signal, Space, Status, Step,
};
use cove_shared::Partner;

/// The titles of the current menu options `partner` gave `want`.
pub fn picked(plan: &Plan, partner: Partner, want: Preference) -> Vec<String> {
    let Some(pp) = plan.partner(partner) else { return Vec::new() };
    plan.menu
        .iter()
        .filter(|m| !m.meta.archived() && pp.preferences.get(&m.meta.id) == Some(&want))
        .map(|m| m.title.clone())
        .collect()
}

/// The boundaries in force right after a session: active, current, and
/// scoped to the cooldown or always.
pub fn boundaries_now(pp: &PartnerPlan) -> impl Iterator<Item = &Boundary> {
    pp.boundaries.iter().filter(|b| {
        !b.meta.archived()
            && b.status == Status::Active
            && matches!(b.scope, Scope::Cooldown | Scope::Always)
    })
}

/// A value set to two things on two of its owner's devices at once, as
/// `me` reads it: named by its item's words, not its id.
pub fn conflict_line(plan: &Plan, me: Partner, c: &Conflict) -> String {
    let named = match c.section.as_str() {
        "boundaries" => plan
            .partner(c.owner)
            .and_then(|pp| pp.boundaries.iter().find(|b| b.meta.id == c.item))
            .map(|b| b.statement.clone()),
        _ => plan.menu.iter().find(|m| m.meta.id == c.item).map(|m| m.title.clone()),
    };
    let what =
        named.map_or_else(|| format!("[{}]", super::ids::short(&c.item)), |t| format!("\"{t}\""));
    let values = c.values.join(" and ");
    if c.owner == me {
        format!(
            "Your {} for {what} was set to {values} on two of your devices at once; {} is in force until you set it again.",
            c.field, c.kept
        )
    } else {
        let name = plan.name(c.owner);
        format!(
            "{name}'s {} for {what} was set to {values} on two of their devices at once; {} is in force until {name} sets it again.",
            c.field, c.kept
        )
    }
}

/// `text` with its first letter in capitals.
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "1 option was" or "2 options were": a count with its noun and verb.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 { format!("1 {singular}") } else { format!("{n} {plural}") }
}

/// "ones", as in "No needs yet".
pub fn plural(noun: &str) -> String {
    match noun {
        "boundary" => "boundaries".into(),
        "later check-in" => "later check-ins".into(),
        other => format!("{other}s"),
    }
}

/// "Sam", "Alex" or "both".
pub fn for_whom(plan: &Plan, who: ForWhom) -> String {
    match who {
        ForWhom::A => plan.name(Partner::A),
        ForWhom::B => plan.name(Partner::B),
        ForWhom::Both => "both".into(),
    }
}

/// A title and an optional description.
pub fn titled(title: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("{title}: {d}"),
        _ => title.to_owned(),
    }
}

/// One need on one line.
pub fn need_line(_plan: &Plan, _partner: Partner, n: &Need) -> String {
    let mut parts = vec![match n.domain {
        Some(d) => format!("{} ({d})", n.text),
        None => n.text.clone(),
    }];
    if let Some(c) = n.closeness {
        parts.push(format!("closeness {c}/4"));
    }
    if let Some(e) = &n.environment {
        parts.push(format!("surroundings: {e}"));
    }
    if let Some(c) = &n.communication {
        parts.push(format!("communication: {c}"));
    }
    parts.join("; ")
}

/// One boundary on one line.
pub fn boundary_line(_plan: &Plan, _partner: Partner, b: &Boundary) -> String {
    let mut line = format!("{} ({}, {})", b.statement, b.firmness, scope_words(b.scope));
    if b.status == Status::Withdrawn {
        line.push_str(" (withdrawn)");
    }
    line
}

/// When a boundary holds, in words.
pub fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::Cooldown => "during cooldown",
        Scope::Debrief => "during the debrief",
        Scope::Always => "always",
    }
}

/// One menu option, with both partners' preferences.
pub fn option_line(plan: &Plan, m: &MenuOption) -> String {
    let mut line = m.title.clone();
    if let Some(c) = m.category {
        line.push_str(&format!(" ({c})"));
    }
    if let Some(d) = m.description.as_deref().filter(|d| !d.is_empty()) {
        line.push_str(&format!(": {d}"));
    }
    let prefs: Vec<String> = [Partner::A, Partner::B]
        .into_iter()
        .filter_map(|p| {
            let pp = plan.partner(p)?;
            let pref = pp.preferences.get(&m.meta.id)?;
            Some(format!("{} {}", plan.name(p), pref))
        })
        .collect();
    if !prefs.is_empty() {
        line.push_str(&format!("  [{}]", prefs.join(", ")));
    }
    line
}

/// One step.
pub fn step_line(plan: &Plan, st: &Step) -> String {
    let mut line = format!("{} (for {})", st.title, for_whom(plan, st.for_whom));
    if st.optional {
        line.push_str(", optional");
    }
    line
}

/// One signal.
pub fn signal_line(x: &Signal) -> String {
    let mut line = x.name.clone();
    if let Some(k) = x.kind {
        line.push_str(&format!(" ({k})"));
    }
    if let Some(m) = x.meaning {
        line.push_str(&format!(": means {m}"));
    }
    if let Some(r) = x.response.as_deref().filter(|r| !r.is_empty()) {
        line.push_str(&format!("; response: {r}"));
    }
    line
}

/// One later check-in.
pub fn later_line(l: &LaterCheckin) -> String {
    titled(&l.when, l.note.as_deref())
}

/// One neutral space.
pub fn space_line(plan: &Plan, sp: &Space) -> String {
    format!("{} (for {})", sp.place, for_whom(plan, sp.for_whom))
}
