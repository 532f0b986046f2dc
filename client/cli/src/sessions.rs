//! `cove session log|list|notes|archive|restore` and `cove debrief`.

use crate::output::Printer;
use crate::plan::{archive, restore, saved};
use crate::plan_args::{DebriefArgs, SessionCommand};
use crate::unlock;
use cove_client::device::DeviceError;
use cove_client::home::Home;
use cove_client::plan::calendar::{format_day, parse_day, today};
use cove_client::plan::ids::short;
use cove_client::plan::items::{author, resolve};
use cove_client::plan::model::Plan;
use cove_client::plan::write::{self, Field, Section};
use cove_shared::{DocId, Partner};
use serde_json::json;

/// Runs `cove session ...`.
pub(crate) async fn run(home: &Home, out: &Printer, command: SessionCommand) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let section = Section::Sessions;
    match command {
        SessionCommand::Log { date, chosen_by, options, steps, notes } => {
            let plan = device.current_plan();
            let day = match date {
                Some(d) => parse_day(&d).ok_or_else(|| {
                    DeviceError::Invalid(format!("'{d}' is not a day; write it as YYYY-MM-DD"))
                })?,
                None => today(device.now_ms()),
            };
            let chooser = chosen_by
                .map_or_else(|| plan.next_to_choose(), |who| who.partner(device.partner()));
            let options = options
                .iter()
                .map(|o| resolve(&device, Section::Menu, o))
                .collect::<Result<Vec<_>, _>>()?;
            let steps = steps
                .iter()
                .map(|s| resolve(&device, Section::Sequence, s))
                .collect::<Result<Vec<_>, _>>()?;
            let mut fields = vec![
                ("date", Field::Str(format_day(day))),
                ("chosen_by", Field::Partner(chooser)),
                ("options", Field::Set(options)),
                ("steps", Field::Set(steps)),
            ];
            fields.push(("notes", Field::Text(notes.unwrap_or_default())));
            let who = author(&device);
            let id = device
                .edit(DocId::Shared, |tx| {
                    write::add(tx, who, section, fields).map_err(DeviceError::from)
                })
                .await?;
            let plan = device.current_plan();
            let what = format!(
                "Logged session [{}] on {}, chosen by {}. Next time it is {}'s turn to choose.",
                short(&id),
                format_day(day),
                plan.name(chooser),
                plan.name(plan.next_to_choose())
            );
            saved(out, &mut device, &id, &what).await;
        }
        SessionCommand::List { all } => {
            let plan = device.current_plan();
            let sessions: Vec<_> =
                plan.sessions.iter().filter(|s| all || !s.meta.archived()).collect();
            let value = json!({ "sessions": sessions, "next_to_choose": plan.next_to_choose() });
            out.emit(&value, || session_list(&plan, all));
        }
        SessionCommand::Notes { id, notes } => {
            let id = resolve(&device, section, &id)?;
            let fields = vec![("notes", Field::Text(notes))];
            device
                .edit(DocId::Shared, |tx| {
                    write::update(tx, section, &id, fields).map_err(DeviceError::from)
                })
                .await?;
            saved(out, &mut device, &id, &format!("Notes for session [{}] saved.", short(&id)))
                .await;
        }
        SessionCommand::Archive { id } => archive(out, &mut device, section, &id).await?,
        SessionCommand::Restore { id } => restore(out, &mut device, section, &id).await?,
    }
    Ok(())
}

fn session_list(plan: &Plan, all: bool) -> String {
    let mut lines = Vec::new();
    for s in plan.sessions.iter().filter(|s| all || !s.meta.archived()) {
        let chooser = s.chosen_by.map_or_else(|| "nobody recorded".to_owned(), |p| plan.name(p));
        let mut line = format!(
            "[{}] {}: chosen by {chooser}; {} option(s), {} step(s)",
            short(&s.meta.id),
            s.date,
            s.options.len(),
            s.steps.len()
        );
        if s.meta.archived() {
            line.push_str("  (archived)");
        }
        lines.push(line);
        if !s.notes.is_empty() {
            lines.push(format!("    {}", s.notes));
        }
    }
    if lines.is_empty() {
        lines.push("No sessions logged yet.".into());
    }
    lines.push(format!("Next to choose the aftercare: {}", plan.name(plan.next_to_choose())));
    lines.join("\n")
}

/// `cove debrief SESSION [QUESTION ANSWER]`.
pub(crate) async fn debrief(home: &Home, out: &Printer, args: DebriefArgs) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let session = resolve(&device, Section::Sessions, &args.session)?;
    match (args.question, args.answer) {
        (Some(question), Some(answer)) => {
            let answer = super::prompt::text_or_stdin(&answer)?;
            let question = resolve(&device, Section::Questions, &question)?;
            let doc = device.partner().doc();
            device
                .edit(doc, |tx| {
                    write::answer(tx, &session, &question, &answer).map_err(DeviceError::from)
                })
                .await?;
            let what = format!("Your answer for session [{}] is saved.", short(&session));
            saved(out, &mut device, &session, &what).await;
        }
        (Some(_), None) => anyhow::bail!("give the answer after the question's id"),
        _ => {
            let plan = device.current_plan();
            let answers = |p: Partner| {
                plan.partner(p)
                    .and_then(|pp| pp.debriefs.get(&session).cloned())
                    .unwrap_or_default()
            };
            let value = json!({
                "session": session,
                "questions": plan.checkin.questions.iter().filter(|q| !q.meta.archived()).collect::<Vec<_>>(),
                "a": answers(Partner::A),
                "b": answers(Partner::B),
            });
            out.emit(&value, || {
                let mut lines = Vec::new();
                for q in plan.checkin.questions.iter().filter(|q| !q.meta.archived()) {
                    lines.push(format!("[{}] {}", short(&q.meta.id), q.text));
                    for p in [Partner::A, Partner::B] {
                        let answer = answers(p).get(&q.meta.id).cloned();
                        let answer = answer.unwrap_or_else(|| "(not answered yet)".into());
                        lines.push(format!("    {}: {answer}", plan.name(p)));
                    }
                }
                if lines.is_empty() {
                    lines.push(
                        "No debrief questions yet: `cove plan checkin question add` adds one."
                            .into(),
                    );
                }
                lines.join("\n")
            });
        }
    }
    Ok(())
}
