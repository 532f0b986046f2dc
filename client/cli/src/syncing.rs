//! `cove status`, `cove sync` and `cove daemon`.

use crate::output::Printer;
use crate::unlock;
use cove_client::device::{Attention, Device, DeviceError};
use cove_client::home::Home;
use cove_client::human::ago;
use cove_client::plan::text::count;
use cove_client::sync::{self, SyncReport};
use cove_shared::DeviceId;
use serde::Serialize;
use std::time::Duration;

/// How long `cove status` waits for the relay.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects and runs one sync pass.
pub(crate) async fn sync_now(device: &mut Device) -> Result<SyncReport, DeviceError> {
    let (conn, _pushes) = sync::connect(device).await?;
    sync::sync_once(device, &conn).await
}

/// Names for devices, for messages: "Sam's device (k7q2-...)".
pub(crate) fn device_label(device: &Device, id: &DeviceId) -> String {
    device.device_label(id)
}

#[derive(Debug, Serialize)]
struct Status {
    plan: String,
    device: String,
    fingerprint: String,
    partner: String,
    relay: String,
    reachable: bool,
    relay_error: Option<String>,
    active: bool,
    /// For a device no longer in the plan: who removed it, and when.
    removal: Option<String>,
    last_sync: Option<i64>,
    devices: Vec<cove_client::device::DeviceRow>,
    /// What each other device holds of this one's changes, by its checkpoint.
    receipts: Vec<cove_client::device::Receipt>,
    /// Open alarms.
    alarms: Vec<cove_client::device::AlarmNote>,
    /// Quarantined envelopes not yet acknowledged.
    quarantined: Vec<cove_client::device::QuarantineNote>,
    /// Envelopes that failed verification, ever.
    quarantined_total: u64,
    outbox: usize,
    /// Own changes the relay said it stored that no page has shown yet.
    unconfirmed: u64,
    held: u64,
    /// This partner's consent-bearing values set differently on two of
    /// their devices at once (see docs/plan.md).
    conflicts: Vec<cove_client::plan::model::Conflict>,
    /// The day a review fell due, if one is due.
    review_due: Option<String>,
    /// This partner's preferences for options changed since they were given.
    changed_options: Vec<cove_client::plan::model::ChangedOption>,
    /// Ordinary values replaced by another set at the same time.
    replaced: Vec<cove_client::plan::replaced::Replaced>,
}

/// `cove status`.
pub(crate) async fn status(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let reach = match tokio::time::timeout(STATUS_TIMEOUT, sync::check_relay(&device)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("it did not answer within 5 seconds".to_owned()),
    };
    let state = device.sync_state();
    let plan = device.current_plan();
    let attention = device.attention().await?;
    let status = Status {
        plan: device.plan().to_string(),
        device: device.id().to_string(),
        fingerprint: device.id().fingerprint(),
        partner: device.partner().to_string(),
        relay: cove_client::transport::tls::describe(device.relay()),
        reachable: reach.is_ok(),
        relay_error: reach.clone().err(),
        active: device.is_active(),
        removal: device.removal(),
        last_sync: state.last_sync(),
        devices: device.device_rows(),
        receipts: device.receipts(),
        alarms: attention.alarms,
        quarantined: attention.quarantined,
        quarantined_total: attention.quarantined_total,
        outbox: device.outbox().await?.len(),
        unconfirmed: device.unconfirmed_count().await?,
        held: device.held_count().await?,
        conflicts: plan.conflicts.iter().filter(|c| c.owner == device.partner()).cloned().collect(),
        review_due: cove_client::plan::review::due(&plan, device.now_ms()),
        changed_options: plan
            .changed_options
            .iter()
            .filter(|c| c.owner == device.partner())
            .cloned()
            .collect(),
        replaced: plan.replaced.clone(),
    };
    let now = device.now_s();
    out.emit(&status, || human_status(&status, now));
    Ok(())
}

fn human_status(s: &Status, now: i64) -> String {
    let mut lines = Vec::new();
    lines.push(format!("This device: {} (partner {})", s.fingerprint, s.partner));
    if let Some(removal) = &s.removal {
        lines.push(format!("{}; `cove wipe` removes its copy.", removal.trim_end_matches('.')));
    }
    match &s.relay_error {
        None => lines.push(format!("Relay: {} (reachable)", s.relay)),
        Some(error) => lines.push(format!("Relay: {} (not reachable: {error})", s.relay)),
    }
    lines.push(format!(
        "Last sync: {}",
        s.last_sync.map_or_else(|| "never".to_owned(), |t| ago(t / 1000, now))
    ));
    if s.outbox > 0 {
        lines.push(format!("Waiting to send: {} change(s)", s.outbox));
    }
    if s.unconfirmed > 0 {
        lines.push(format!(
            "Sent, not yet confirmed by the relay: {} (checked, and sent again if missing, at each sync)",
            s.unconfirmed
        ));
    }
    lines.push("Devices:".into());
    for d in &s.devices {
        let who = d.name.clone().unwrap_or_else(|| format!("partner {}", d.partner));
        let mut line = format!("  {}  {who}", d.fingerprint);
        if d.this_device {
            line.push_str("  (this device)");
        } else if !d.active {
            line.push_str("  (removed)");
        } else {
            line.push_str(&format!(
                "  last heard from {}",
                d.last_heard.map_or_else(|| "never".to_owned(), |t| ago(t / 1000, now))
            ));
        }
        lines.push(line);
    }
    if !s.receipts.is_empty() {
        lines.push("Received, by each device's own signed word:".into());
        lines.extend(s.receipts.iter().map(|r| format!("  {}", r.text)));
    }
    let attention = Attention {
        alarms: s.alarms.clone(),
        quarantined: s.quarantined.clone(),
        quarantined_total: s.quarantined_total,
        history: Vec::new(),
    };
    if attention.is_clear() {
        lines.push("Alarms: none".into());
    }
    lines.extend(super::alarms::lines(&attention, now));
    if s.held > 0 {
        lines.push(format!("Held back until missing changes arrive: {}", s.held));
    }
    if s.quarantined_total > 0 {
        lines.push(format!(
            "Envelopes that failed verification since this device was set up: {}",
            s.quarantined_total
        ));
    }
    if let Some(day) = &s.review_due {
        lines.push(format!("A review is due (since {day}): `cove review` shows what changed."));
    }
    if !s.changed_options.is_empty() {
        lines.push(format!(
            "To resolve: {} given before {} changed; `cove plan show` lists them.",
            count(s.changed_options.len(), "of your preferences was", "of your preferences were"),
            if s.changed_options.len() == 1 { "its option" } else { "their options" }
        ));
    }
    if !s.conflicts.is_empty() {
        lines.push(format!(
            "To resolve: {} set differently on two of your devices at once; `cove plan show` lists them.",
            count(s.conflicts.len(), "of your values was", "of your values were")
        ));
    }
    if !s.replaced.is_empty() {
        lines.push(format!(
            "To resolve: {} changed on both devices at once; `cove plan show` lists what was replaced and how to restore it.",
            count(s.replaced.len(), "field was", "fields were")
        ));
    }
    lines.join("\n")
}

#[derive(Debug, Serialize)]
struct SyncSummary {
    sent: usize,
    received: usize,
    membership: usize,
    held: usize,
    quarantined: usize,
    snapshots: usize,
    signals: usize,
    /// Own changes sent again because the relay did not show them.
    resent: usize,
    /// Own changes the relay said it stored that no page has shown yet.
    unconfirmed: u64,
    /// What needs attention after the sync.
    attention: Attention,
}

fn summary(report: &SyncReport, attention: Attention) -> SyncSummary {
    SyncSummary {
        sent: report.sent,
        received: report.applied.iter().sum(),
        membership: report.membership,
        held: report.held,
        quarantined: report.quarantined,
        snapshots: report.snapshots,
        signals: report.signals.len(),
        resent: report.resent,
        unconfirmed: report.unconfirmed,
        attention,
    }
}

/// `cove sync`.
pub(crate) async fn sync(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let report = sync_now(&mut device).await.map_err(|e| removed(&device, e))?;
    let mut attention = device.attention().await?;
    attention.history.clear();
    let summary = summary(&report, attention);
    let now = device.now_s();
    out.emit(&summary, || {
        let mut text =
            format!("Synced: sent {} change(s), received {}.", summary.sent, summary.received);
        if summary.unconfirmed > 0 {
            text.push_str(&format!(
                "\n{} change(s) the relay said it stored have not shown up on it yet; they are checked again, and sent again if missing, at the next sync.",
                summary.unconfirmed
            ));
        }
        for line in super::alarms::lines(&summary.attention, now) {
            text.push('\n');
            text.push_str(&line);
        }
        text
    });
    Ok(())
}

/// A removal, said as the signed log has it: who removed this device and
/// when. Any other error as it is.
pub(crate) fn removed(device: &Device, error: DeviceError) -> anyhow::Error {
    match device.removal() {
        Some(removal) if error.is_removal() => {
            anyhow::anyhow!("{}; `cove wipe` removes its copy", removal.trim_end_matches('.'))
        }
        _ => error.into(),
    }
}
