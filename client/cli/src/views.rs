//! `cove plan show` (the whole plan, calmly laid out) and `cove now` (what
//! matters right after a session, on one screen).

use crate::output::Printer;
use crate::unlock;
use cove_client::home::Home;
use cove_client::plan::ids::short;
use cove_client::plan::model::{Plan, Preference, Signal, Step};
use cove_client::plan::replaced::Replaced;
use cove_client::plan::text::{
    boundaries_now, boundary_line, conflict_line, later_line, need_line, option_line, picked,
    signal_line, space_line, step_line, titled,
};
use cove_shared::Partner;
use serde_json::json;

/// `cove plan show`.
pub(crate) async fn show(home: &Home, out: &Printer, all: bool) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = device.current_plan();
    out.emit(&plan, || overview(&plan, device.partner(), all));
    Ok(())
}

/// `cove now`.
pub(crate) async fn now(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let plan = device.current_plan();
    let picks = |p: Partner| {
        plan.partner(p).map(|pp| {
            json!({
                "partner": p,
                "name": plan.name(p),
                "yes": picked(&plan, p, Preference::Yes),
                "ask_me": picked(&plan, p, Preference::AskMe),
                "no": picked(&plan, p, Preference::No),
                "closeness": pp.needs.iter().filter(|n| !n.meta.archived()).find_map(|n| n.closeness),
            })
        })
    };
    let value = json!({
        "sequence": plan.sequence.iter().filter(|s| !s.meta.archived()).collect::<Vec<_>>(),
        "signals": plan.signals.iter().filter(|s| !s.meta.archived()).collect::<Vec<_>>(),
        "a": picks(Partner::A),
        "b": picks(Partner::B),
        "next_to_choose": plan.next_to_choose(),
    });
    out.emit(&value, || right_now(&plan));
    Ok(())
}

fn right_now(plan: &Plan) -> String {
    let mut out = Vec::new();
    out.push("Right now".to_owned());
    out.push(String::new());
    let steps: Vec<&Step> = plan.sequence.iter().filter(|s| !s.meta.archived()).collect();
    if steps.is_empty() {
        out.push("No sequence yet: `cove plan step add` maps one.".into());
    } else {
        for (i, step) in steps.iter().enumerate() {
            out.push(format!("  {}. {}", i + 1, step_line(plan, step)));
        }
    }
    for partner in [Partner::A, Partner::B] {
        let Some(pp) = plan.partner(partner) else { continue };
        out.push(String::new());
        out.push(format!("{}:", plan.name(partner)));
        let yes = picked(plan, partner, Preference::Yes);
        let ask = picked(plan, partner, Preference::AskMe);
        let no = picked(plan, partner, Preference::No);
        if !yes.is_empty() {
            out.push(format!("  welcome: {}", yes.join(", ")));
        }
        if !ask.is_empty() {
            out.push(format!("  ask first: {}", ask.join(", ")));
        }
        if !no.is_empty() {
            out.push(format!("  not now: {}", no.join(", ")));
        }
        for need in pp.needs.iter().filter(|n| !n.meta.archived()) {
            out.push(format!("  needs: {}", need_line(plan, partner, need)));
        }
        for b in boundaries_now(pp) {
            out.push(format!("  boundary ({}): {}", b.firmness, b.statement));
        }
    }
    let signals: Vec<&Signal> = plan.signals.iter().filter(|s| !s.meta.archived()).collect();
    if !signals.is_empty() {
        out.push(String::new());
        out.push("Signals:".into());
        for s in signals {
            out.push(format!("  {}", signal_line(s)));
        }
    }
    out.push(String::new());
    out.push(format!("Next to choose the aftercare: {}", plan.name(plan.next_to_choose())));
    out.join("\n")
}

/// A value replaced by another set at the same time, and the command that
/// puts it back.
fn replaced_line(plan: &Plan, me: Partner, r: &Replaced) -> String {
    let mut line = r.line(plan, me);
    if !r.restorable_by(me) {
        return line;
    }
    for value in &r.replaced {
        let pick = if r.replaced.len() > 1 {
            format!(" --value {}", shell_word(&value.typed()))
        } else {
            String::new()
        };
        line.push_str(&format!(
            " To restore {value}: `cove plan restore-replaced {} {}{pick}`.",
            r.at(),
            r.field
        ));
    }
    line
}

/// `word` as one word for a POSIX shell.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn overview(plan: &Plan, me: Partner, all: bool) -> String {
    let keep = |archived: bool| all || !archived;
    let mut out = Vec::new();
    let mut section = |title: &str, lines: Vec<String>, empty: &str| {
        out.push(title.to_owned());
        if lines.is_empty() {
            out.push(format!("  {empty}"));
        }
        out.extend(lines.into_iter().map(|l| format!("  {l}")));
        out.push(String::new());
    };
    let mark = |archived: bool| if archived { "  (archived)" } else { "" };

    let conflicts: Vec<String> =
        plan.conflicts.iter().map(|c| conflict_line(plan, me, c)).collect();
    let mut conflicts = conflicts;
    for c in &plan.changed_options {
        let title = plan
            .menu
            .iter()
            .find(|m| m.meta.id == c.option)
            .map_or_else(|| short(&c.option).to_owned(), |m| m.title.clone());
        let (whose, who) = if c.owner == me {
            ("Your".to_owned(), "you give".to_owned())
        } else {
            (format!("{}'s", plan.name(c.owner)), format!("{} gives", plan.name(c.owner)))
        };
        conflicts.push(format!(
            "{whose} preference for \"{title}\" ({}) was given before the option changed; it counts as {} until {who} it again.",
            c.given, c.counts_as
        ));
    }
    conflicts.extend(plan.replaced.iter().map(|r| replaced_line(plan, me, r)));
    if !conflicts.is_empty() {
        section("To resolve", conflicts, "");
    }
    for partner in [Partner::A, Partner::B] {
        let name = plan.name(partner);
        let Some(pp) = plan.partner(partner) else {
            section(&name, Vec::new(), "Not joined yet.");
            continue;
        };
        let needs = pp
            .needs
            .iter()
            .filter(|n| keep(n.meta.archived()))
            .map(|n| {
                format!(
                    "[{}] {}{}",
                    short(&n.meta.id),
                    need_line(plan, partner, n),
                    mark(n.meta.archived())
                )
            })
            .collect();
        section(&format!("{name}: needs"), needs, "None written yet.");
        let boundaries = pp
            .boundaries
            .iter()
            .filter(|b| keep(b.meta.archived()))
            .map(|b| {
                format!(
                    "[{}] {}{}",
                    short(&b.meta.id),
                    boundary_line(plan, partner, b),
                    mark(b.meta.archived())
                )
            })
            .collect();
        section(&format!("{name}: boundaries"), boundaries, "None written yet.");
    }
    let menu = plan
        .menu
        .iter()
        .filter(|m| keep(m.meta.archived()))
        .map(|m| {
            format!("[{}] {}{}", short(&m.meta.id), option_line(plan, m), mark(m.meta.archived()))
        })
        .collect();
    section("Menu", menu, "No options yet.");
    let steps = plan
        .sequence
        .iter()
        .filter(|st| keep(st.meta.archived()))
        .enumerate()
        .map(|(i, st)| {
            format!(
                "{}. [{}] {}{}",
                i + 1,
                short(&st.meta.id),
                step_line(plan, st),
                mark(st.meta.archived())
            )
        })
        .collect();
    section("Sequence", steps, "No steps yet.");
    let signals = plan
        .signals
        .iter()
        .filter(|x| keep(x.meta.archived()))
        .map(|x| format!("[{}] {}{}", short(&x.meta.id), signal_line(x), mark(x.meta.archived())))
        .collect();
    section("Signals", signals, "None agreed yet.");
    let terms = plan
        .vocabulary
        .iter()
        .filter(|t| keep(t.meta.archived()))
        .map(|t| {
            format!("[{}] {}: {}{}", short(&t.meta.id), t.term, t.meaning, mark(t.meta.archived()))
        })
        .collect();
    section("Vocabulary", terms, "No terms yet.");

    let mut checkin = Vec::new();
    checkin.push(match plan.checkin.window_minutes {
        Some(m) => format!("Window: {m} minutes after a session"),
        None => "Window: not set".to_owned(),
    });
    for q in plan.checkin.questions.iter().filter(|q| keep(q.meta.archived())) {
        checkin.push(format!("[{}] {}{}", short(&q.meta.id), q.text, mark(q.meta.archived())));
    }
    for l in plan.checkin.later.iter().filter(|l| keep(l.meta.archived())) {
        checkin.push(format!(
            "[{}] Later: {}{}",
            short(&l.meta.id),
            later_line(l),
            mark(l.meta.archived())
        ));
    }
    section("Check-in", checkin, "");

    let mut calm = Vec::new();
    calm.push(match plan.deescalation.reflection_limit_minutes {
        Some(m) => format!("Time to reflect before talking again: up to {m} minutes"),
        None => "Time to reflect: not set".to_owned(),
    });
    for t in plan.deescalation.techniques.iter().filter(|t| keep(t.meta.archived())) {
        calm.push(format!(
            "[{}] {}{}",
            short(&t.meta.id),
            titled(&t.title, t.description.as_deref()),
            mark(t.meta.archived())
        ));
    }
    for sp in plan.deescalation.spaces.iter().filter(|x| keep(x.meta.archived())) {
        calm.push(format!(
            "[{}] Space: {}{}",
            short(&sp.meta.id),
            space_line(plan, sp),
            mark(sp.meta.archived())
        ));
    }
    section("De-escalation", calm, "");

    let sessions = plan.sessions.iter().filter(|x| !x.meta.archived()).count();
    let mut log = vec![format!("{sessions} logged")];
    log.push(format!("Next to choose the aftercare: {}", plan.name(plan.next_to_choose())));
    section("Sessions", log, "");
    let mut reviews = Vec::new();
    if let Some(days) = plan.reviews.cadence_days {
        reviews.push(format!("Every {days} days"));
    }
    if let Some(next) = &plan.reviews.next_due {
        reviews.push(format!("Next review: {next}"));
    }
    reviews.push(format!("{} held", plan.reviews.history.len()));
    section("Reviews", reviews, "");
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n")
}
