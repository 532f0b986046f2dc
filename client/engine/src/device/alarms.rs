//! Alarms: what a person should know about the sync, when it happened,
//! which device (or the relay) it concerns, and whether someone has
//! acknowledged it.
//!
//! An alarm stays open until a person acknowledges it (or, for a gap, until
//! what was missing arrives). The same thing raised again while open is
//! counted on the open record, not added: a relay that keeps misbehaving
//! cannot grow the list. Acknowledged and resolved alarms stay in a
//! bounded history.

use cove_shared::{DeviceId, DocId};
use serde::{Deserialize, Serialize};

/// Something a person should know about the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alarm {
    /// Envelopes from a device are missing; later ones are held back.
    Gap {
        /// The sender.
        device: DeviceId,
        /// The document.
        doc: DocId,
        /// The first missing sequence number.
        missing_from: u64,
    },
    /// A device's stream contradicts what this device already holds.
    Fork {
        /// The sender.
        device: DeviceId,
    },
    /// The relay served older state than this device has seen.
    Rollback {
        /// What this device had seen.
        seen: u64,
        /// What the relay served.
        served: u64,
    },
    /// This device has been removed from the plan.
    Revoked,
    /// A key wrapped for this device did not match the plan's key.
    UnusableKey {
        /// The epoch.
        epoch: u32,
    },
    /// A snapshot claimed to hold more than it did.
    BadSnapshot {
        /// The document.
        doc: DocId,
    },
    /// The membership log the relay serves conflicts with this device's.
    MembershipFork,
    /// The relay no longer holds what this device read at a cursor: its log
    /// was rewritten (restored from a backup, or altered).
    Rewritten {
        /// The cursor.
        cursor: u64,
    },
    /// A device was revoked with a cutoff below changes from it that this
    /// device had already applied.
    PastCutoff {
        /// The revoked device.
        device: DeviceId,
        /// The document.
        doc: DocId,
    },
    /// The relay served a shorter membership log than it served before.
    MembershipRollback {
        /// The length this device had seen.
        seen: u64,
        /// The length the relay served.
        served: u64,
    },
    /// The relay's answers contradict each other: it served an envelope
    /// numbered beyond the end of its own log.
    Inconsistent {
        /// The impossible cursor.
        cursor: u64,
    },
    /// The relay said it stored envelopes from this device, but a page read
    /// past the position it named without showing them. They were sent
    /// again.
    Unconfirmed {
        /// The first such position.
        cursor: u64,
    },
    /// The relay holds envelopes from this very device that are newer than
    /// this device's own state: the state directory was restored from an
    /// older copy. Sealing stops, since it would reuse sequence numbers.
    StateBehind,
    /// The relay served a membership entry that breaks the log's rules,
    /// such as a device enrolled for a partner by someone else. It was
    /// refused, with everything after it.
    RefusedEntry {
        /// Why, as the rules put it.
        reason: String,
    },
    /// The relay said this device was removed from the plan, but the
    /// plan's signed list of devices still includes it.
    FalseRemoval,
    /// The other partner is no longer in the plan: they left, or this
    /// partner's device removed them.
    PartnerLeft {
        /// Their name, as the plan had it then.
        name: String,
        /// Whether this partner removed them, rather than they left.
        removed: bool,
    },
    /// A device that checkpoints regularly still lacks changes from this
    /// device that the relay showed before those checkpoints.
    Withheld {
        /// The device kept from them.
        device: DeviceId,
        /// When this device made the oldest change it lacks (Unix ms).
        since: i64,
    },
    /// A device's checkpoint, or an envelope it signed, contradicts this
    /// device's history: the relay is showing the two different histories.
    Diverged {
        /// The device.
        device: DeviceId,
    },
    /// Other devices signed changes against a longer list of devices than
    /// the relay gives this one: it may be hiding a removal.
    LogWithheld {
        /// The length others cited.
        cited: u64,
        /// The length this device has.
        have: u64,
    },
}

impl Alarm {
    /// Whether two alarms are about the same thing.
    pub fn same_subject(&self, other: &Self) -> bool {
        use Alarm as A;
        match (self, other) {
            (A::Gap { device: a, doc: x, .. }, A::Gap { device: b, doc: y, .. })
            | (A::PastCutoff { device: a, doc: x }, A::PastCutoff { device: b, doc: y }) => {
                a == b && x == y
            }
            (A::Fork { device: a }, A::Fork { device: b })
            | (A::Withheld { device: a, .. }, A::Withheld { device: b, .. })
            | (A::Diverged { device: a }, A::Diverged { device: b }) => a == b,
            (A::UnusableKey { epoch: a }, A::UnusableKey { epoch: b }) => a == b,
            (A::BadSnapshot { doc: a }, A::BadSnapshot { doc: b }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }

    /// One sentence for a person; `label` names a device.
    pub fn describe(&self, label: impl Fn(&DeviceId) -> String) -> String {
        match self {
            Self::Gap { device, doc, missing_from } => format!(
                "missing changes from {} since {missing_from} (in the {doc} document); later ones are held back until they arrive",
                label(device)
            ),
            Self::Fork { device } => format!(
                "{} sent two different versions of the same change; the second was refused",
                label(device)
            ),
            Self::Rollback { seen, served } => format!(
                "the relay served older state than this device had already seen ({served} after {seen}); nothing was undone here, but the relay may have been restored from a backup or tampered with"
            ),
            Self::Revoked => "this device has been removed from the plan".to_owned(),
            Self::UnusableKey { epoch } => format!(
                "a key sent to this device for period {epoch} does not match the plan's key; ask your partner to remove and re-pair this device"
            ),
            Self::BadSnapshot { doc } => format!(
                "a snapshot of the {doc} document did not check out and was not used"
            ),
            Self::MembershipFork => "the relay's list of devices contradicts this device's; the relay may be misbehaving".to_owned(),
            Self::Rewritten { cursor } => format!(
                "the relay no longer holds what this device read at position {cursor}; it may have been restored from a backup or tampered with, so this device read its log again and sent what it had lost"
            ),
            Self::MembershipRollback { seen, served } => format!(
                "the relay served a shorter list of devices than before ({served} entries after {seen}); nothing was undone here, but the relay may have been restored from a backup or tampered with"
            ),
            Self::Inconsistent { cursor } => format!(
                "the relay served an envelope numbered {cursor}, beyond the end of its own log; it was not used, and the relay may be misbehaving"
            ),
            Self::Unconfirmed { cursor } => format!(
                "the relay said it had stored changes from this device (at position {cursor} and perhaps later) but did not serve them there; they were sent again. The relay may have been restored from a backup, or it is misbehaving"
            ),
            Self::StateBehind => "the relay holds newer changes from this very device than the device itself has: its state was restored from an older copy; it no longer sends anything, so that nothing is overwritten; remove it and pair it again".to_owned(),
            Self::FalseRemoval => "the relay said this device had been removed from the plan, but the plan's signed list of devices still includes it; this device carries on, and the relay may be misbehaving".to_owned(),
            Self::PartnerLeft { name, removed: false } => format!(
                "{name} left the plan: nothing written from now on reaches {name}'s devices or {name}'s recovery phrase"
            ),
            Self::PartnerLeft { name, removed: true } => format!(
                "{name} was removed from the plan: nothing written from now on reaches {name}'s devices or {name}'s recovery phrase"
            ),
            Self::RefusedEntry { reason } => format!(
                "the relay served a change to the plan's devices that breaks the plan's rules ({reason}); it was refused and changes nothing here. Someone may have tried to add a device that is not theirs"
            ),
            Self::Withheld { device, since } => format!(
                "{} has not received your changes since {}, although it has been in touch since; the relay may be holding them back",
                label(device),
                crate::human::moment(*since, i64::MAX)
            ),
            Self::Diverged { device } => format!(
                "{} reports a history of the plan that contradicts this device's (a different version of a change, or of the list of devices); the relay may be showing the two of you different plans",
                label(device)
            ),
            Self::LogWithheld { cited, have } => format!(
                "other devices have signed changes against a list of devices with {cited} entries, but the relay gives this device only {have}; it may be hiding a removal, so this device keeps its edits here, unsent, until it has the whole list"
            ),
            Self::PastCutoff { device, doc } => format!(
                "{} was removed with a cutoff below changes this device had already applied (in the {doc} document); they stay here, but devices that had not received them will not apply them",
                label(device)
            ),
        }
    }
}

impl Alarm {
    /// The device the alarm is about, if it is about one rather than the
    /// relay or this device.
    pub fn device(&self) -> Option<DeviceId> {
        match self {
            Self::Gap { device, .. }
            | Self::Fork { device }
            | Self::PastCutoff { device, .. }
            | Self::Withheld { device, .. }
            | Self::Diverged { device } => Some(*device),
            _ => None,
        }
    }
}

/// One alarm, with its times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// Its number, for acknowledging it; never reused.
    pub id: u64,
    /// What happened (the newest details, if it was raised more than once).
    pub alarm: Alarm,
    /// When it was first raised (Unix milliseconds).
    pub first_at: i64,
    /// When it was last raised.
    pub last_at: i64,
    /// How many times it was raised while open.
    pub times: u32,
    /// When a person acknowledged it.
    pub acknowledged_at: Option<i64>,
    /// When it ended by itself (what was missing arrived).
    pub resolved_at: Option<i64>,
}

impl AlarmRecord {
    /// Whether nobody has acknowledged it and it has not ended by itself.
    pub fn is_open(&self) -> bool {
        self.acknowledged_at.is_none() && self.resolved_at.is_none()
    }
}

/// Acknowledged and resolved alarms kept.
pub const ALARM_HISTORY: usize = 100;

/// Every alarm, open and past.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmLog {
    records: Vec<AlarmRecord>,
    next_id: u64,
}

impl AlarmLog {
    /// Raises `alarm` at `now`. An open alarm about the same thing (the same
    /// kind, for the same device and document) takes the new details and
    /// counts once more.
    pub fn raise(&mut self, alarm: Alarm, now: i64) {
        if let Some(open) =
            self.records.iter_mut().find(|r| r.is_open() && r.alarm.same_subject(&alarm))
        {
            open.alarm = alarm;
            open.last_at = now;
            open.times = open.times.saturating_add(1);
            return;
        }
        self.next_id += 1;
        self.records.push(AlarmRecord {
            id: self.next_id,
            alarm,
            first_at: now,
            last_at: now,
            times: 1,
            acknowledged_at: None,
            resolved_at: None,
        });
    }

    /// Open alarms, oldest first.
    pub fn open(&self) -> impl Iterator<Item = &AlarmRecord> {
        self.records.iter().filter(|r| r.is_open())
    }

    /// Acknowledged and resolved alarms, the most recently closed first.
    pub fn history(&self) -> impl Iterator<Item = &AlarmRecord> {
        let mut past: Vec<&AlarmRecord> = self.records.iter().filter(|r| !r.is_open()).collect();
        past.sort_by_key(|r| std::cmp::Reverse(r.acknowledged_at.or(r.resolved_at)));
        past.into_iter()
    }

    /// Acknowledges open alarm `id`; whether there was one.
    pub fn acknowledge(&mut self, id: u64, now: i64) -> bool {
        let found = self.records.iter_mut().find(|r| r.id == id && r.is_open());
        let Some(record) = found else { return false };
        record.acknowledged_at = Some(now);
        self.trim();
        true
    }

    /// Acknowledges every open alarm; returns how many.
    pub fn acknowledge_all(&mut self, now: i64) -> usize {
        let mut n = 0;
        for record in self.records.iter_mut().filter(|r| r.is_open()) {
            record.acknowledged_at = Some(now);
            n += 1;
        }
        self.trim();
        n
    }

    /// Ends, as resolved by themselves, the open alarms `ended` picks.
    pub fn resolve(&mut self, now: i64, ended: impl Fn(&Alarm) -> bool) {
        let mut any = false;
        for record in self.records.iter_mut().filter(|r| r.is_open() && ended(&r.alarm)) {
            record.resolved_at = Some(now);
            any = true;
        }
        if any {
            self.trim();
        }
    }

    /// Keeps the [`ALARM_HISTORY`] most recently closed past alarms.
    fn trim(&mut self) {
        let kept: Vec<u64> = self.history().take(ALARM_HISTORY).map(|r| r.id).collect();
        self.records.retain(|r| r.is_open() || kept.contains(&r.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceId {
        cove_shared::DeviceSecret::generate(&mut cove_shared::random::SeededEntropy::new(&[n])).id()
    }

    #[test]
    fn an_alarm_raised_again_is_counted_not_repeated_until_acknowledged() {
        let mut log = AlarmLog::default();
        let gap = |from| Alarm::Gap { device: device(1), doc: DocId::Shared, missing_from: from };
        log.raise(gap(3), 1_000);
        log.raise(gap(4), 2_000);
        log.raise(Alarm::Rollback { seen: 9, served: 4 }, 2_500);
        let open: Vec<&AlarmRecord> = log.open().collect();
        assert_eq!(open.len(), 2);
        assert_eq!((open[0].times, open[0].first_at, open[0].last_at), (2, 1_000, 2_000));
        assert_eq!(open[0].alarm, gap(4), "the newest details");
        assert_eq!(open[0].alarm.device(), Some(device(1)));
        assert_eq!(open[1].alarm.device(), None, "about the relay");

        let id = open[1].id;
        assert!(log.acknowledge(id, 3_000));
        assert!(!log.acknowledge(id, 3_001), "once");
        assert_eq!(log.open().count(), 1);
        // Raised again after acknowledgement: a new alarm, the old in history.
        log.raise(Alarm::Rollback { seen: 9, served: 2 }, 4_000);
        let again: Vec<&AlarmRecord> = log.open().collect();
        assert_eq!(again.len(), 2);
        assert!(again[1].id > id, "numbers are never reused");
        assert_eq!(log.history().map(|r| r.id).collect::<Vec<_>>(), [id]);

        log.resolve(5_000, |a| matches!(a, Alarm::Gap { .. }));
        assert_eq!(log.open().count(), 1);
        assert_eq!(log.history().next().unwrap().resolved_at, Some(5_000));
        assert_eq!(log.acknowledge_all(6_000), 1);
        assert_eq!(log.open().count(), 0);
    }

    #[test]
    fn the_history_is_bounded() {
        let mut log = AlarmLog::default();
        for i in 0..(ALARM_HISTORY as i64 + 20) {
            log.raise(Alarm::Inconsistent { cursor: i as u64 }, i);
            log.acknowledge_all(i);
        }
        log.raise(Alarm::Revoked, 9_999);
        assert_eq!(log.history().count(), ALARM_HISTORY);
        assert_eq!(log.open().count(), 1, "open alarms are never trimmed");
    }
}
