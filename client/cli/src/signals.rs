//! `cove signal NAME`, `cove signals`, and `cove signals ack|dismiss`.

use crate::args::SignalsCommand;
use crate::output::Printer;
use crate::plan::saved;
use crate::unlock;
use cove_client::device::IncomingSignal;
use cove_client::home::Home;
use cove_client::human::moment;
use cove_client::payload::Answer;
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
    let Some(name) = signals::agreed(&plan, name) else {
        let mut known: Vec<&str> = signals::BUILT_IN.to_vec();
        known.extend(plan.signals.iter().filter(|s| !s.meta.archived()).map(|s| s.name.as_str()));
        anyhow::bail!(
            "'{}' is not a signal you have agreed on; the signals are: {}",
            name.trim(),
            known.join(", ")
        );
    };
    device.signal(&name, ttl_minutes * 60_000).await?;
    let what = if signals::is_stop(&plan, &name) {
        format!(
            "Saved the stop ('{name}'): once it arrives, it stays in front of {} until they acknowledge it; `cove signal all-clear` lifts it.",
            plan.name(device.partner().other())
        )
    } else {
        format!("Saved the signal '{name}'; it stays current for {ttl_minutes} minutes.")
    };
    saved(out, &mut device, "", &what).await;
    Ok(())
}

/// One of the partner's signals, on one line.
pub(crate) fn incoming_line(partner: &str, s: &IncomingSignal, now: i64) -> String {
    let mut line = if s.stop {
        format!("STOP: {partner} used the safe word '{}'", s.name)
    } else {
        format!("{partner}: {}", s.name)
    };
    if let Some(meaning) = &s.meaning {
        line.push_str(&format!(" ({meaning})"));
    }
    line.push_str(&format!(", sent at {}", moment(s.sent_at, now)));
    if let Some(response) = &s.response {
        line.push_str(&format!(". What you agreed to do: {response}"));
    }
    match s.answer {
        Some((Answer::Acknowledged, at)) => {
            line.push_str(&format!(". You acknowledged it at {}", moment(at, now)));
        }
        Some((Answer::Dismissed, _)) | None => {}
    }
    if s.stop && s.lifted {
        line.push_str(". They have sent the all-clear");
    }
    line.push('.');
    line
}

/// `cove signals`.
pub(crate) async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let board = device.signal_board().await?;
    let partner = device.current_plan().name(device.partner().other());
    let now = device.now_ms();
    let value = json!({
        "incoming": board.incoming,
        "outgoing": board.outgoing,
        "stop": board.stop,
        "all_clear_due": board.all_clear_due,
    });
    out.emit(&value, || {
        let mut lines: Vec<String> =
            board.incoming.iter().map(|s| incoming_line(&partner, s, now)).collect();
        if lines.is_empty() {
            lines.push(format!(
                "No current signals from {partner}. (Signals are dropped once their time is up; keep `cove daemon` running to receive them as they come.)"
            ));
        } else if board.incoming.iter().any(|s| s.answer.is_none()) {
            lines.push("`cove signals ack` tells them you took these in.".into());
        }
        for s in &board.outgoing {
            lines.push(format!(
                "You sent {} at {}: {}.",
                s.name,
                moment(s.sent_at, now),
                s.progress.words(&partner)
            ));
        }
        if board.all_clear_due {
            lines.push("Your stop stands: `cove signal all-clear` lifts it.".into());
        }
        lines.join("\n")
    });
    Ok(())
}

/// `cove signals ack|dismiss`: answers every current signal of the
/// partner's that has no answer yet (a dismissal also those acknowledged).
pub(crate) async fn answer(
    home: &Home,
    out: &Printer,
    command: SignalsCommand,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let answer = match command {
        SignalsCommand::Ack => Answer::Acknowledged,
        SignalsCommand::Dismiss => Answer::Dismissed,
    };
    let board = device.signal_board().await?;
    let open: Vec<&IncomingSignal> = board
        .incoming
        .iter()
        // A stop is acknowledged, never dismissed unseen.
        .filter(|s| match answer {
            Answer::Acknowledged => s.answer.is_none(),
            Answer::Dismissed => board.stop.as_ref() != Some(*s),
        })
        .collect();
    let partner = device.current_plan().name(device.partner().other());
    if open.is_empty() {
        anyhow::bail!("there is no signal from {partner} to answer; `cove signals` lists them");
    }
    for s in &open {
        device.answer_signal(s.from, s.sent_at, answer).await?;
    }
    let verb = if answer == Answer::Acknowledged { "Acknowledged" } else { "Dismissed" };
    let names: Vec<&str> = open.iter().map(|s| s.name.as_str()).collect();
    let what = format!("{verb} {partner}'s {}.", names.join(", "));
    saved(out, &mut device, "", &what).await;
    Ok(())
}
