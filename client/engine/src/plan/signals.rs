//! Signals: the ones every plan understands, whether a name is known, and
//! what a signal means.

use super::model::Plan;

/// Signals every plan understands, agreed or not.
pub const BUILT_IN: [&str; 3] = ["pause", "space", "check-on-me"];

/// What a signal means, from the agreed signals if it is one.
pub fn meaning(plan: &Plan, name: &str) -> Option<String> {
    let agreed = plan.signals.iter().find(|s| !s.meta.archived() && s.name == name);
    match agreed {
        Some(s) => {
            let mut text = s.meaning.map(|m| m.to_string()).unwrap_or_default();
            if let Some(r) = s.response.as_deref().filter(|r| !r.is_empty()) {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&format!("response: {r}"));
            }
            (!text.is_empty()).then_some(text)
        }
        None => match name {
            "pause" => Some("pause what is happening".into()),
            "space" => Some("I need space".into()),
            "check-on-me" => Some("check on me".into()),
            _ => None,
        },
    }
}

/// A signal's name as it is compared and sent: trimmed and lowercased.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Whether `name` (normalized) is a signal this plan understands: built in,
/// or agreed and not archived.
pub fn known(plan: &Plan, name: &str) -> bool {
    BUILT_IN.contains(&name) || plan.signals.iter().any(|s| !s.meta.archived() && s.name == name)
}
