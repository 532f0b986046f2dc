//! What a person should be reminded of, once each, by whichever face is
//! running (`cove daemon`, `cove ui`): a later check-in that has come due
//! after a logged session, a review that is due, and the other partner's
//! confirmation of a review.
//!
//! Each reminder is given once on this device: what was given is kept
//! under its own key (apart from the sync state, so that an older state
//! directory still opens). The first look on a device takes confirmations
//! that already exist as given, so that an upgrade or a new device does not
//! bring up the whole history at once; a review or check-in that is due
//! now is still brought up.

use super::{Device, DeviceError};
use crate::plan::model::{LATER_DEFAULT_HOURS, Plan};
use crate::plan::review;
use cove_shared::Partner;
use serde::{Deserialize, Serialize};

/// How many given reminders a device remembers.
const REMEMBERED: usize = 500;

/// How long after it came due a later check-in is still brought up: a
/// device that was off for days does not remind of last week's.
const CHECKIN_STALE_MS: i64 = 24 * 60 * 60 * 1000;

/// Something to bring up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reminder {
    /// A later check-in came due after a session.
    Checkin {
        /// The session's day.
        session_day: String,
        /// When the couple said it happens: "the next morning".
        when: String,
        /// What to ask or do.
        note: Option<String>,
    },
    /// A review is due.
    ReviewDue {
        /// The day it was due.
        day: String,
    },
    /// The other partner confirmed a review (recording one confirms it for
    /// its author).
    ReviewConfirmed {
        /// The review's day.
        day: String,
        /// Their name.
        by: String,
        /// Whether they recorded it too: then it is this partner's to
        /// confirm.
        recorded: bool,
    },
}

impl Reminder {
    /// Words that give nothing of the plan away, for a notification others
    /// may see.
    pub fn discreet(&self) -> &'static str {
        match self {
            Self::Checkin { .. } => "Cove: a check-in is due",
            Self::ReviewDue { .. } => "Cove: a review is due",
            Self::ReviewConfirmed { recorded: true, .. } => "Cove: your partner recorded a review",
            Self::ReviewConfirmed { .. } => "Cove: your partner confirmed a review",
        }
    }

    /// The whole sentence, with what the plan says, and no command: each
    /// face adds where to look (see `cove daemon` and the page).
    pub fn detailed(&self) -> String {
        match self {
            Self::Checkin { session_day, when, note } => {
                let mut text =
                    format!("A check-in is due ({when}, after the session of {session_day})");
                if let Some(note) = note.as_deref().filter(|n| !n.is_empty()) {
                    text.push_str(&format!(": {note}"));
                }
                text.push('.');
                text
            }
            Self::ReviewDue { day } => {
                format!("A review is due (since {day}).")
            }
            Self::ReviewConfirmed { day, by, recorded: true } => {
                format!("{by} recorded the review of {day}, and it waits for you to confirm it.")
            }
            Self::ReviewConfirmed { day, by, recorded: false } => {
                format!("{by} confirmed the review of {day}.")
            }
        }
    }
}

/// The reminders this device has given, by key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Given {
    /// Whether the first look has happened.
    started: bool,
    /// Keys of what was given, oldest first.
    keys: Vec<String>,
}

impl Given {
    fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    fn add(&mut self, key: String) {
        super::push_bounded(&mut self.keys, key, REMEMBERED);
    }
}

/// Everything that is due in `plan` at `now_ms`, with its key.
fn due(plan: &Plan, me: Partner, now_ms: i64) -> Vec<(String, Reminder)> {
    let mut out = Vec::new();
    for session in plan.sessions.iter().filter(|s| !s.meta.archived()) {
        let Some(logged) = session.meta.created_at else { continue };
        for later in plan.checkin.later.iter().filter(|l| !l.meta.archived()) {
            let hours = later.after_hours.unwrap_or(LATER_DEFAULT_HOURS);
            let at = logged.saturating_add(hours.saturating_mul(3_600_000));
            if now_ms >= at && now_ms - at < CHECKIN_STALE_MS {
                out.push((
                    format!("checkin:{}:{}", session.meta.id, later.meta.id),
                    Reminder::Checkin {
                        session_day: session.date.clone(),
                        when: later.when.clone(),
                        note: later.note.clone(),
                    },
                ));
            }
        }
    }
    if let Some(day) = review::due(plan, now_ms) {
        out.push((format!("review-due:{day}"), Reminder::ReviewDue { day }));
    }
    let other = me.other();
    for r in plan.reviews.history.iter().filter(|r| !r.meta.archived()) {
        if plan.confirmed(other, &r.meta.id) {
            let key = format!("confirmed:{}:{other}", r.meta.id);
            let recorded = r.meta.created_by == Some(other);
            let by = plan.name(other);
            out.push((key, Reminder::ReviewConfirmed { day: r.date.clone(), by, recorded }));
        }
    }
    out
}

impl Device {
    /// The reminders due now that this device has not given yet; they count
    /// as given from now on (see the module documentation for the first).
    pub async fn due_reminders(&mut self) -> Result<Vec<Reminder>, DeviceError> {
        // Most looks find nothing new: those write nothing.
        let now = self.now_ms();
        let looked = due(&self.current_plan(), self.partner(), now);
        if self.reminded.started && looked.iter().all(|(key, _)| self.reminded.has(key)) {
            return Ok(Vec::new());
        }
        // Decided again inside the write, after taking up what another
        // process on this state directory gave: each reminder once.
        self.write(async |device, _| {
            let now = device.now_ms();
            let due = due(&device.current_plan(), device.partner(), now);
            let first = !device.reminded.started;
            device.reminded.started = true;
            let mut fresh = Vec::new();
            for (key, reminder) in due {
                if device.reminded.has(&key) {
                    continue;
                }
                device.reminded.add(key);
                let history = first && matches!(reminder, Reminder::ReviewConfirmed { .. });
                if !history {
                    fresh.push(reminder);
                }
            }
            Ok(fresh)
        })
        .await
    }
}
