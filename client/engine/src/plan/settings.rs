//! The plan's whole-number settings: the check-in window, the time to
//! reflect, and the days between reviews, each with its bounds and label.

use super::model::Plan;
use super::schema::{MAX_CADENCE_DAYS, MAX_MINUTES, shared as s};

/// A whole-number setting of the shared document.
#[derive(Debug)]
pub struct Setting {
    /// Its short name (`/setting/{name}` on the page).
    pub name: &'static str,
    /// The map that holds it, and its key there.
    pub at: (&'static str, &'static str),
    /// The largest value (the smallest is 1).
    pub max: i64,
    /// What people see.
    pub label: &'static str,
}

/// The settings, with the command line's and the page's bounds.
pub const SETTINGS: [Setting; 3] = [
    Setting {
        name: "window",
        at: (s::CHECKIN, "window_minutes"),
        max: MAX_MINUTES,
        label: "Check-in window after a session (minutes)",
    },
    Setting {
        name: "limit",
        at: (s::DEESCALATION, "reflection_limit_minutes"),
        max: MAX_MINUTES,
        label: "Time to reflect before talking again (minutes)",
    },
    Setting {
        name: "cadence",
        at: (s::REVIEWS, "cadence_days"),
        max: MAX_CADENCE_DAYS,
        label: "Review every (days)",
    },
];

impl Setting {
    /// The setting called `name`.
    pub fn named(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    /// The setting stored under `key` in the map `container`.
    pub fn at(container: &str, key: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.at == (container, key))
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
