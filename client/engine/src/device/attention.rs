//! What a person sees of the sync, as both faces show it: the plan's
//! devices; open alarms and quarantined envelopes, each with what happened,
//! when, and which device (or the relay) it concerns; and what was
//! acknowledged before.

use super::receive::Quarantined;
use super::{Alarm, AlarmRecord, Device, DeviceError};
use crate::localdb::ListTable;
use crate::plan::{device_name, display_name};
use cove_shared::Partner;
use cove_shared::{DeviceId, envelope};
use serde::Serialize;
use std::collections::BTreeMap;

/// One alarm, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmNote {
    /// Its number, for acknowledging it.
    pub id: u64,
    /// One sentence on what happened.
    pub text: String,
    /// The device it concerns, named; `None` when it concerns the relay or
    /// this device.
    pub device: Option<String>,
    /// When it was first raised (Unix milliseconds).
    pub first_at: i64,
    /// When it was last raised.
    pub last_at: i64,
    /// How many times it was raised.
    pub times: u32,
    /// When a person acknowledged it, if one did.
    pub acknowledged_at: Option<i64>,
    /// When it ended by itself, if it did.
    pub resolved_at: Option<i64>,
}

/// One quarantined envelope, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineNote {
    /// Why it was refused.
    pub reason: String,
    /// Who the envelope says sent it, named (a claim: it did not verify).
    pub claimed_sender: Option<String>,
    /// When it arrived (Unix milliseconds).
    pub at: i64,
    /// The relay's position for it.
    pub cursor: u64,
}

/// Everything that needs attention, and what was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// Open alarms, oldest first.
    pub alarms: Vec<AlarmNote>,
    /// Quarantined envelopes not yet acknowledged, oldest first.
    pub quarantined: Vec<QuarantineNote>,
    /// Envelopes that failed verification since this device was set up.
    pub quarantined_total: u64,
    /// Acknowledged and resolved alarms, newest first.
    pub history: Vec<AlarmNote>,
}

impl Attention {
    /// Whether nothing needs attention.
    pub fn is_clear(&self) -> bool {
        self.alarms.is_empty() && self.quarantined.is_empty()
    }
}

impl Device {
    /// A device as a person knows it: "Sam's device (k7q2-…)".
    pub fn device_label(&self, id: &DeviceId) -> String {
        let owner = self.membership().member(id).map(|m| m.partner);
        let named = owner.and_then(|p| device_name(self.docs(), p, id));
        let named = named.map(|n| format!(" \"{n}\"")).unwrap_or_default();
        if *id == self.id() {
            return format!("this device{named} ({})", id.fingerprint());
        }
        match owner.and_then(|p| display_name(self.docs(), p)) {
            Some(name) => format!("{name}'s device{named} ({})", id.fingerprint()),
            None => format!("device{named} {}", id.fingerprint()),
        }
    }

    fn note(&self, record: &AlarmRecord) -> AlarmNote {
        AlarmNote {
            id: record.id,
            text: record.alarm.describe(|id| self.device_label(id)),
            device: record.alarm.device().map(|id| self.device_label(&id)),
            first_at: record.first_at,
            last_at: record.last_at,
            times: record.times,
            acknowledged_at: record.acknowledged_at,
            resolved_at: record.resolved_at,
        }
    }

    /// What needs attention now, and what was acknowledged before.
    pub async fn attention(&self) -> Result<Attention, DeviceError> {
        let log = &self.sync.alarm_log;
        let seen = self.sync.quarantine_seen;
        let quarantined = self
            .local()
            .list::<Quarantined>(ListTable::Quarantine)
            .await?
            .into_iter()
            .filter(|(id, _)| *id > seen)
            .map(|(_, q)| QuarantineNote {
                claimed_sender: envelope::header_of(&q.envelope.0)
                    .ok()
                    .map(|h| self.device_label(&h.sender)),
                reason: q.reason,
                at: q.at,
                cursor: q.cursor,
            })
            .collect();
        Ok(Attention {
            alarms: log.open().map(|r| self.note(r)).collect(),
            quarantined,
            quarantined_total: self.quarantined(),
            history: log.history().map(|r| self.note(r)).collect(),
        })
    }

    /// Raises an alarm and saves it.
    pub async fn raise_alarm(&mut self, alarm: Alarm) -> Result<(), DeviceError> {
        let now = self.now_ms();
        self.update(|sync| sync.raise(alarm, now)).await
    }

    /// Acknowledges the open alarms `ids` (all of them, and every quarantined
    /// envelope so far, if `ids` is empty). Returns how many alarms were
    /// acknowledged; an id that is not open is an error, and then nothing
    /// is acknowledged.
    pub async fn acknowledge(&mut self, ids: &[u64]) -> Result<usize, DeviceError> {
        let open: Vec<u64> = self.sync.alarm_log.open().map(|r| r.id).collect();
        if let Some(unknown) = ids.iter().find(|id| !open.contains(id)) {
            return Err(DeviceError::Invalid(format!("there is no open alarm number {unknown}")));
        }
        let newest_quarantined = self.db.newest(ListTable::Quarantine).await?;
        let now = self.now_ms();
        self.update(|sync| {
            if ids.is_empty() {
                sync.quarantine_seen = sync.quarantine_seen.max(newest_quarantined);
                sync.alarm_log.acknowledge_all(now)
            } else {
                ids.iter().filter(|id| sync.alarm_log.acknowledge(**id, now)).count()
            }
        })
        .await
    }
}

/// One device, as status and `device list` show it.
#[derive(Debug, Serialize)]
pub struct DeviceRow {
    /// Its id (hex).
    pub id: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Whose it is: "A" or "B".
    pub partner: String,
    /// That partner's display name, if known.
    pub name: Option<String>,
    /// The name the device gave itself, if known.
    pub device_name: Option<String>,
    /// Whether it is the device running this command.
    pub this_device: bool,
    /// Whether it is still a member.
    pub active: bool,
    /// When something from it was last received (Unix milliseconds, kept to
    /// the second).
    pub last_heard: Option<i64>,
}

impl Device {
    /// Every device of the plan.
    pub fn device_rows(&self) -> Vec<DeviceRow> {
        let device = self;
        let names: BTreeMap<String, Option<String>> = [Partner::A, Partner::B]
            .into_iter()
            .map(|p| (p.to_string(), display_name(device.docs(), p)))
            .collect();
        device
            .membership()
            .members()
            .map(|m| DeviceRow {
                id: m.device.to_string(),
                fingerprint: m.device.fingerprint(),
                partner: m.partner.to_string(),
                name: names.get(&m.partner.to_string()).cloned().flatten(),
                device_name: device_name(device.docs(), m.partner, &m.device),
                this_device: m.device == device.id(),
                active: m.is_active(),
                last_heard: device.sync.last_seen(&m.device).map(|s| s * 1000),
            })
            .collect()
    }
}
