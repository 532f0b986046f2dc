//! Signals: the ones every plan understands, whether a name is known, what
//! a signal means, and which one is the safe word.
//!
//! `stop` is the safe word every plan has: it outranks every other signal
//! and stays in front of the partner until they acknowledge it. A signal
//! the couple agreed on with the meaning "stop" is a safe word too. Only
//! the partner who sent a stop lifts it, with `all-clear`.

use super::model::{Choice, Meaning, Plan, Signal};
use super::write::{Field, PlanError, Section};

/// The safe word every plan understands.
pub const STOP: &str = "stop";

/// The signal that lifts its sender's stop: "I am all right; it is over".
pub const ALL_CLEAR: &str = "all-clear";

/// Signals every plan understands, agreed or not.
pub const BUILT_IN: [&str; 5] = [STOP, "pause", "space", "check-on-me", ALL_CLEAR];

/// The agreed (not archived) signal called `name`, if there is one.
fn agreed_signal<'a>(plan: &'a Plan, name: &str) -> Option<&'a Signal> {
    plan.signals.iter().find(|s| !s.meta.archived() && same(&s.name, name))
}

/// What a signal means, from the agreed signals if it is one.
pub fn meaning(plan: &Plan, name: &str) -> Option<String> {
    match agreed_signal(plan, name) {
        Some(s) => s.meaning.map(|m| built_in_meaning(m.as_str()).unwrap_or(m.as_str()).to_owned()),
        None => built_in_meaning(&name.trim().to_lowercase()).map(str::to_owned),
    }
}

/// The response the couple agreed on for a signal, if any.
pub fn response(plan: &Plan, name: &str) -> Option<String> {
    agreed_signal(plan, name).and_then(|s| s.response.clone()).filter(|r| !r.trim().is_empty())
}

fn built_in_meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        STOP => "stop everything, now",
        "pause" => "pause what is happening",
        "space" => "I need space",
        "reassure" => "reassure me",
        "stop-topic" => "stop this topic",
        "check-on-me" => "check on me",
        ALL_CLEAR => "the stop is over; I am all right",
        _ => return None,
    })
}

/// Whether `name` is a safe word: the built-in `stop` (always: nothing in
/// the plan can make it mean less), or an agreed signal that means "stop".
pub fn is_stop(plan: &Plan, name: &str) -> bool {
    same(name, STOP) || agreed_signal(plan, name).is_some_and(|s| s.meaning == Some(Meaning::Stop))
}

/// Whether `name` is one of the signals every plan has: an agreed signal
/// may not take its name.
pub fn is_built_in(name: &str) -> bool {
    BUILT_IN.iter().any(|b| same(b, name))
}

/// Whether `name` is the all-clear.
pub fn is_all_clear(name: &str) -> bool {
    same(name, ALL_CLEAR)
}

/// Whether two signal names are the same signal: names are compared
/// trimmed and without regard to case, and shown as they were written.
pub fn same(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// The signal `name` stands for, as it is sent and shown: a built-in name,
/// or an agreed (not archived) signal's name as the couple wrote it.
/// `None` if the plan does not understand it.
pub fn agreed(plan: &Plan, name: &str) -> Option<String> {
    if let Some(built_in) = BUILT_IN.iter().find(|b| same(b, name)) {
        return Some((*built_in).to_owned());
    }
    agreed_signal(plan, name).map(|s| s.name.clone())
}

/// An agreed signal may not take the name of one every plan has: `stop`
/// must always be the safe word, whatever the plan says.
pub(crate) fn not_built_in(
    section: Section,
    fields: &[(&'static str, Field)],
) -> Result<(), PlanError> {
    let named = fields.iter().find(|(k, _)| *k == super::fields::signal::NAME.key);
    if let (Section::Signals, Some((_, Field::Str(name)))) = (section, named)
        && is_built_in(name)
    {
        return Err(PlanError::Invalid {
            field: "name",
            reason: format!("'{name}' is a signal every plan has already; choose another name"),
        });
    }
    Ok(())
}
