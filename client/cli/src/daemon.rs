//! `cove daemon`: stays connected, and tells of what arrives (changes,
//! signals, answers) and of reminders that come due, in its output and
//! through the `--exec` hook (see [`crate::notify`]).

use crate::notify::Hook;
use crate::output::Printer;
use crate::syncing::{device_label, removed};
use crate::unlock;
use cove_client::device::{AnswerRecord, ReceivedSignal, Reminder};
use cove_client::home::Home;
use cove_client::payload::Answer;
use cove_client::plan::signals;
use cove_client::sync::{self, Event};
use cove_shared::DeviceId;
use std::collections::BTreeMap;

/// `cove daemon`.
pub(crate) async fn daemon(home: &Home, out: &Printer, hook: Hook) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let labels: BTreeMap<DeviceId, String> = device
        .membership()
        .members()
        .map(|m| (m.device, device_label(&device, &m.device)))
        .collect();
    let label = |id: &DeviceId| {
        labels.get(id).cloned().unwrap_or_else(|| format!("device {}", id.fingerprint()))
    };
    out.say(&format!("Connecting to {}. Stop with Ctrl-C.", device.relay()));
    let printer = *out;
    let clock = device.clock().clone();
    // What each signal means, from the plan as it was when the daemon began.
    let plan = device.current_plan();
    let label = |id: &DeviceId| label(id);
    let describe = |id: &DeviceId, name: &str| {
        let meaning = signals::meaning(&plan, name).map(|m| format!(" ({m})")).unwrap_or_default();
        let response = signals::response(&plan, name)
            .map(|r| format!("; what you agreed to do: {r}"))
            .unwrap_or_default();
        if signals::is_stop(&plan, name) {
            // The safe word outranks everything: it is not one line among
            // others.
            format!(
                "\n==========\nSTOP: {} used the safe word '{name}'{meaning}{response}.\n`cove signals ack` tells them you have stopped.\n==========",
                label(id)
            )
        } else {
            format!("{}: {name}{meaning}{response}", label(id))
        }
    };
    let mine: Vec<DeviceId> = device
        .membership()
        .members()
        .filter(|m| m.partner == device.partner())
        .map(|m| m.device)
        .collect();
    // Each live signal, to the hook: a stop as such.
    let tell = |received: &[ReceivedSignal]| {
        let now = clock.now_ms();
        for s in received.iter().filter(|s| !mine.contains(&s.from)) {
            let name = &s.signal.signal;
            // A stop is told whatever its age: it stands until answered.
            let stop = signals::is_stop(&plan, name);
            if s.expired(now) && !stop {
                continue;
            }
            let (kind, discreet) = if stop {
                ("stop", "Cove: your partner used the safe word")
            } else {
                ("signal", "Cove: a signal from your partner")
            };
            hook.fire(kind, discreet, &describe(&s.from, name));
        }
    };
    let print_answers = |answers: &[AnswerRecord]| {
        let now = clock.now_ms();
        for a in answers.iter().filter(|a| !mine.contains(&a.by)) {
            let verb = match a.answer {
                Answer::Acknowledged => "acknowledged",
                Answer::Dismissed => "dismissed",
            };
            hook.fire(
                "answer",
                "Cove: your partner answered your signal",
                &format!("{} {verb} your signal.", label(&a.by)),
            );
            printer.emit(
                &serde_json::json!({ "event": "answer", "by": a.by.to_string(), "answer": verb, "sent_at": a.sent_at }),
                || {
                    format!(
                        "{} {verb} your signal of {}.",
                        label(&a.by),
                        cove_client::human::moment(a.sent_at, now)
                    )
                },
            );
        }
    };
    let events = |event: &Event| match event {
        Event::Synced(report) => {
            let received: usize = report.applied.iter().sum();
            printer.emit(
                &serde_json::json!({ "event": "synced", "sent": report.sent, "received": received }),
                || format!("In sync (sent {}, received {received}).", report.sent),
            );
            print_signals(&printer, &report.signals, &describe, clock.now_ms());
            tell(&report.signals);
            print_answers(&report.answers);
        }
        Event::Applied(received) => {
            let n: usize = received.applied.iter().sum();
            if n > 0 {
                printer.emit(&serde_json::json!({ "event": "received", "changes": n }), || {
                    format!("Received {n} change(s).")
                });
            }
            print_signals(&printer, &received.signals, &describe, clock.now_ms());
            tell(&received.signals);
            print_answers(&received.answers);
            if received.quarantined > 0 {
                printer.emit(
                    &serde_json::json!({ "event": "quarantined", "count": received.quarantined }),
                    || {
                        format!(
                            "! {} envelope(s) failed verification and were quarantined.",
                            received.quarantined
                        )
                    },
                );
            }
        }
        Event::Reminders(due) => {
            for reminder in due {
                let kind = match reminder {
                    Reminder::Checkin { .. } => "checkin",
                    Reminder::ReviewDue { .. } => "review-due",
                    Reminder::ReviewConfirmed { .. } => "review-confirmed",
                };
                let detailed = match reminder {
                    Reminder::ReviewDue { .. } => {
                        format!("{} `cove review` shows what changed.", reminder.detailed())
                    }
                    Reminder::ReviewConfirmed { recorded: true, .. } => {
                        format!("{} `cove review confirm` confirms it.", reminder.detailed())
                    }
                    _ => reminder.detailed(),
                };
                printer.emit(
                    &serde_json::json!({ "event": "reminder", "reminder": reminder }),
                    || format!("\x07{detailed}"),
                );
                hook.fire(kind, reminder.discreet(), &detailed);
            }
        }
        Event::Disconnected { error, retry } => {
            printer.emit(
                &serde_json::json!({ "event": "disconnected", "error": error, "retry_ms": retry.as_millis() as u64 }),
                || format!("Disconnected ({error}); trying again in {:.1} s.", retry.as_secs_f64()),
            );
        }
        _ => {}
    };
    let result = sync::run_daemon(&mut device, events, Box::pin(shutdown())).await;
    result.map_err(|e| removed(&device, e))?;
    out.say("Stopped.");
    Ok(())
}

/// Prints signals as they arrive: a live one with the terminal's bell; one
/// past its time to live plainly, with its age, since it is history now.
fn print_signals(
    printer: &Printer,
    signals: &[ReceivedSignal],
    describe: &impl Fn(&DeviceId, &str) -> String,
    now: i64,
) {
    for signal in signals {
        let expired = signal.expired(now);
        let age_s = (now - signal.signal.sent_at).max(0) / 1000;
        printer.emit(
            &serde_json::json!({
                "event": "signal",
                "from": signal.from.to_string(),
                "signal": signal.signal.signal,
                "sent_at": signal.signal.sent_at,
                "expired": expired,
                "after_gap": signal.after_gap,
            }),
            || {
                let what = describe(&signal.from, &signal.signal.signal);
                let mut line = if expired {
                    format!("Signal from {what} (sent {age_s} s ago; no longer current)")
                } else {
                    format!("\x07Signal from {what}")
                };
                if signal.after_gap {
                    line.push_str(" (earlier signals from this device did not arrive)");
                }
                line
            },
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
