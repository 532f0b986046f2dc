//! `cove alarms`: what needs attention, and acknowledging it. `cove status`
//! and `cove sync` show the same lines.

use crate::output::Printer;
use crate::unlock;
use cove_client::device::{AlarmNote, Attention};
use cove_client::home::Home;
use cove_client::human::ago;
use serde_json::json;

/// `cove alarms`: open alarms and unacknowledged quarantined envelopes, and
/// with `history`, the alarms acknowledged or resolved before.
pub(crate) async fn list(home: &Home, out: &Printer, history: bool) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let attention = device.attention().await?;
    let now = device.now_s();
    out.emit(&attention, || {
        let mut lines = lines(&attention, now);
        if attention.is_clear() {
            lines.push("Nothing needs attention.".into());
        }
        if history {
            lines.push(if attention.history.is_empty() {
                "No earlier alarms.".into()
            } else {
                "Earlier:".into()
            });
            for note in &attention.history {
                let how = match (note.acknowledged_at, note.resolved_at) {
                    (Some(at), _) => format!("acknowledged {}", ago(at / 1000, now)),
                    (None, Some(at)) => format!("ended by itself {}", ago(at / 1000, now)),
                    (None, None) => String::new(),
                };
                lines.push(format!("  [{}] {} ({}; {how})", note.id, note.text, when(note, now)));
            }
        }
        lines.join("\n")
    });
    Ok(())
}

/// `cove alarms ack`: the given alarms, or with `all` every open alarm and
/// quarantined envelope.
pub(crate) async fn ack(home: &Home, out: &Printer, ids: &[u64], all: bool) -> anyhow::Result<()> {
    if ids.is_empty() && !all {
        anyhow::bail!("name the alarms to acknowledge by number (see `cove alarms`), or use --all");
    }
    let mut device = unlock(home).await?;
    let acknowledged = device.acknowledge(ids).await?;
    out.emit(&json!({ "acknowledged": acknowledged, "all": all }), || {
        let what =
            if acknowledged == 1 { "1 alarm".to_owned() } else { format!("{acknowledged} alarms") };
        if all {
            format!("Acknowledged {what}, and every quarantined envelope so far.")
        } else {
            format!("Acknowledged {what}.")
        }
    });
    Ok(())
}

/// When an alarm happened, for a person.
fn when(note: &AlarmNote, now: i64) -> String {
    let first = ago(note.first_at / 1000, now);
    if note.times > 1 {
        format!("first {first}, {} times, last {}", note.times, ago(note.last_at / 1000, now))
    } else {
        first
    }
}

/// The lines `cove status`, `cove sync` and `cove alarms` print for what
/// needs attention; nothing when nothing does.
pub(crate) fn lines(attention: &Attention, now: i64) -> Vec<String> {
    let mut lines = Vec::new();
    if !attention.alarms.is_empty() {
        lines.push("Alarms:".into());
        for note in &attention.alarms {
            lines.push(format!("  ! [{}] {} ({})", note.id, note.text, when(note, now)));
        }
    }
    if !attention.quarantined.is_empty() {
        lines.push(format!(
            "Envelopes that failed verification and were set aside (quarantined): {}",
            attention.quarantined.len()
        ));
        // One line per claimed sender and reason.
        let mut groups: Vec<(Option<&str>, &str, usize, i64)> = Vec::new();
        for q in &attention.quarantined {
            let key = (q.claimed_sender.as_deref(), q.reason.as_str());
            match groups.iter_mut().find(|g| (g.0, g.1) == key) {
                Some(group) => {
                    group.2 += 1;
                    group.3 = group.3.max(q.at);
                }
                None => groups.push((key.0, key.1, 1, q.at)),
            }
        }
        for (sender, reason, count, last) in groups {
            let from = sender.map_or_else(
                || "not even readable as an envelope".to_owned(),
                |s| format!("claiming to be from {s}"),
            );
            lines.push(format!("  ? {count} {from}: {reason}; last {}", ago(last / 1000, now)));
        }
    }
    if !attention.is_clear() {
        lines.push(
            "Acknowledge with `cove alarms ack NUMBER`, or everything with `cove alarms ack --all`."
                .into(),
        );
    }
    lines
}
