//! `cove signal NAME` and `cove signals`.

use crate::output::Printer;
use crate::plan::saved;
use crate::syncing::device_label;
use crate::unlock;
use cove_client::home::Home;
use cove_client::plan::signals;
use serde_json::json;

/// `cove signal NAME`.
pub(crate) async fn send(
    home: &Home,
    out: &Printer,
    name: &str,
    ttl_minutes: i64,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let plan = device.current_plan();
    let name = signals::normalize(name);
    if !signals::known(&plan, &name) {
        let mut known: Vec<&str> = signals::BUILT_IN.to_vec();
        known.extend(plan.signals.iter().filter(|s| !s.meta.archived()).map(|s| s.name.as_str()));
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
pub(crate) async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = device.current_plan();
    let now = device.now_ms();
    let live: Vec<_> = device.sync_state().signals().iter().filter(|s| !s.expired(now)).collect();
    let sent: Vec<_> = device.sent_signals().into_iter().filter(|s| s.expires_at >= now).collect();
    let mut rows: Vec<_> = live
        .iter()
        .map(|s| {
            json!({
                "from": s.from.to_string(),
                "signal": s.signal.signal,
                "meaning": signals::meaning(&plan, &s.signal.signal),
                "sent_at": s.signal.sent_at,
                "expires_at": s.signal.expires_at,
            })
        })
        .collect();
    rows.extend(sent.iter().map(|s| {
        json!({
            "from": device.id().to_string(),
            "signal": s.signal,
            "meaning": signals::meaning(&plan, &s.signal),
            "sent_at": s.sent_at,
            "expires_at": s.expires_at,
            "seen": s.seen,
        })
    }));
    out.emit(&rows, || {
        // "Seen" only on the partner's device's own signed word.
        let yours = sent.iter().map(|s| {
            let minutes = (now - s.sent_at).max(0) / 60_000;
            let seen = if s.seen { "seen" } else { "no receipt yet" };
            format!("You sent: {} ({minutes} min ago): {seen}", s.signal)
        });
        if live.is_empty() {
            let mut lines: Vec<String> = yours.collect();
            lines.push("No current signals from your partner. (Signals are dropped once their time is up; run `cove sync` or keep `cove daemon` running to receive them.)".to_owned());
            return lines.join("\n");
        }
        live.iter()
            .map(|s| {
                let minutes = (now - s.signal.sent_at).max(0) / 60_000;
                let mut line = format!(
                    "{}: {} ({minutes} min ago)",
                    device_label(&device, &s.from),
                    s.signal.signal
                );
                if let Some(m) = signals::meaning(&plan, &s.signal.signal) {
                    line.push_str(&format!(": {m}"));
                }
                line
            })
            .chain(yours)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
