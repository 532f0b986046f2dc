//! `cove signal NAME` and `cove signals`.

use super::output::Printer;
use super::plan::saved;
use super::syncing::device_label;
use super::unlock;
use crate::device::unix_millis;
use crate::home::Home;
use crate::plan;
use crate::plan::model::Plan;
use serde_json::json;

/// Signals every plan understands, agreed or not.
pub const BUILT_IN: [&str; 3] = ["pause", "space", "check-on-me"];

/// What a signal means, from the agreed signals if it is one.
pub(crate) fn meaning(plan: &Plan, name: &str) -> Option<String> {
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

/// `cove signal NAME`.
pub async fn send(home: &Home, out: &Printer, name: &str, ttl_minutes: i64) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let plan = plan::current(device.docs());
    let name = name.trim().to_lowercase();
    let agreed: Vec<&str> =
        plan.signals.iter().filter(|s| !s.meta.archived()).map(|s| s.name.as_str()).collect();
    if !BUILT_IN.contains(&name.as_str()) && !agreed.contains(&name.as_str()) {
        let mut known: Vec<&str> = BUILT_IN.to_vec();
        known.extend(agreed);
        anyhow::bail!(
            "'{name}' is not a signal you have agreed on; the signals are: {}",
            known.join(", ")
        );
    }
    device.signal(&name, ttl_minutes * 60_000).await?;
    let what =
        format!("Signal '{name}' is on its way; it stays current for {ttl_minutes} minutes.");
    saved(out, &mut device, "", &what).await;
    Ok(())
}

/// `cove signals`.
pub async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = plan::current(device.docs());
    let now = unix_millis();
    let live: Vec<_> = device.sync_state().signals.iter().filter(|s| !s.expired(now)).collect();
    let rows: Vec<_> = live
        .iter()
        .map(|s| {
            json!({
                "from": s.from.to_string(),
                "signal": s.signal.signal,
                "meaning": meaning(&plan, &s.signal.signal),
                "sent_at": s.signal.sent_at,
                "expires_at": s.signal.expires_at,
            })
        })
        .collect();
    out.emit(&rows, || {
        if live.is_empty() {
            return "No current signals. (Signals are dropped once their time is up; run `cove sync` or keep `cove daemon` running to receive them.)".to_owned();
        }
        live.iter()
            .map(|s| {
                let minutes = (now - s.signal.sent_at).max(0) / 60_000;
                let mut line = format!(
                    "{}: {} ({minutes} min ago)",
                    device_label(&device, &s.from),
                    s.signal.signal
                );
                if let Some(m) = meaning(&plan, &s.signal.signal) {
                    line.push_str(&format!(": {m}"));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
