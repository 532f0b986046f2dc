//! Where this device stands: once it is no longer in the plan, who removed
//! it and on which day it learned so, in one plain sentence either face can
//! show.

use super::{Alarm, Device};
use crate::human;

impl Device {
    /// For a device that is no longer in the plan: who removed it, and the
    /// day this device learned it. `None` while it is a member.
    pub fn removal(&self) -> Option<String> {
        let revocation = self.membership().member(&self.id())?.revoked.clone()?;
        let log = self.sync.alarm_log();
        let learned =
            log.open().chain(log.history()).find(|r| r.alarm == Alarm::Revoked).map(|r| r.first_at);
        let when = learned.map(|at| format!(" on {}", human::day(at, self.now_ms())));
        let when = when.unwrap_or_default();
        let by = self.membership().member(&revocation.by).map(|m| m.partner);
        let who = match by {
            _ if revocation.by == self.id() => format!("This device left the plan{when}"),
            Some(p) if p == self.partner() => format!(
                "You removed this device from the plan{when}, from {}",
                self.device_label(&revocation.by)
            ),
            Some(p) => {
                format!("{} removed this device from the plan{when}", self.current_plan().name(p))
            }
            None => format!("This device was removed from the plan{when}"),
        };
        Some(format!("{who}; it keeps what it had, and no longer syncs or sends anything."))
    }
}
