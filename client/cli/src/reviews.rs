//! `cove review [show|record|confirm|cadence|list]`.

use crate::output::Printer;
use crate::plan::saved;
use crate::plan_args::ReviewCommand;
use crate::unlock;
use cove_client::device::{Device, DeviceError};
use cove_client::home::Home;
use cove_client::plan::calendar::{format_day, parse_day, today};
use cove_client::plan::ids::short;
use cove_client::plan::items::{author, resolve};
use cove_client::plan::model::{Plan, Review};
use cove_client::plan::review::{self, parse_heads};
use cove_client::plan::schema::shared as s;
use cove_client::plan::write::{self, Field, Section};
use cove_shared::DocId;
use serde_json::json;

/// Runs `cove review ...`.
pub(crate) async fn run(home: &Home, out: &Printer, command: ReviewCommand) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    match command {
        ReviewCommand::Show => show(out, &device),
        ReviewCommand::List => {
            let plan = device.current_plan();
            let history = active(&plan);
            out.emit(&history, || {
                if history.is_empty() {
                    return "No reviews yet: `cove review record` records one.".to_owned();
                }
                history.iter().map(|r| review_line(&plan, r)).collect::<Vec<_>>().join("\n")
            });
        }
        ReviewCommand::Cadence { days } => {
            let plan = device.current_plan();
            let next =
                plan.reviews.next_due.is_none().then(|| format_day(today(device.now_ms()) + days));
            device
                .edit(DocId::Shared, |tx| {
                    write::set_setting(tx, s::REVIEWS, "cadence_days", Field::Int(days))?;
                    if let Some(next) = next {
                        write::set_setting(tx, s::REVIEWS, "next_due", Field::Str(next))?;
                    }
                    Ok(())
                })
                .await?;
            let plan = device.current_plan();
            let next = plan.reviews.next_due.unwrap_or_default();
            saved(
                out,
                &mut device,
                "",
                &format!("Reviews every {days} days; the next is due {next}."),
            )
            .await;
        }
        ReviewCommand::Next { date } => {
            let Some(day) = parse_day(date.trim()) else {
                anyhow::bail!("'{date}' is not a day; give it as YYYY-MM-DD, such as 2026-12-24");
            };
            let now = today(device.now_ms());
            if day < now {
                anyhow::bail!(
                    "{date} is in the past; give today ({}) or a later day as YYYY-MM-DD",
                    format_day(now)
                );
            }
            let next = format_day(day);
            let value = Field::Str(next.clone());
            device
                .edit(DocId::Shared, |tx| {
                    write::set_setting(tx, s::REVIEWS, "next_due", value).map_err(Into::into)
                })
                .await?;
            saved(out, &mut device, "", &format!("The next review is due {next}.")).await;
        }
        ReviewCommand::Record { wins, lessons, notes } => {
            record(out, &mut device, wins, lessons, notes).await?
        }
        ReviewCommand::Confirm { id } => {
            let plan = device.current_plan();
            let id = match id {
                Some(given) => resolve(&device, Section::Reviews, &given)?,
                None => active(&plan).last().map(|r| r.meta.id.clone()).ok_or_else(|| {
                    DeviceError::Invalid("there is no review to confirm yet".into())
                })?,
            };
            confirm(out, &mut device, &id).await?;
        }
    }
    Ok(())
}

fn active(plan: &Plan) -> Vec<&Review> {
    plan.reviews.history.iter().filter(|r| !r.meta.archived()).collect()
}

fn review_line(plan: &Plan, r: &Review) -> String {
    let confirmed = plan.confirmed_by(&r.meta.id);
    let confirmed = if confirmed.is_empty() {
        "not confirmed yet".to_owned()
    } else {
        format!("confirmed by {}", confirmed.join(" and "))
    };
    let mut line = format!("[{}] {}: {confirmed}", short(&r.meta.id), r.date);
    for (label, text) in [("Wins", &r.wins), ("Lessons", &r.lessons), ("Notes", &r.notes)] {
        if !text.is_empty() {
            line.push_str(&format!("\n    {label}: {text}"));
        }
    }
    line
}

fn show(out: &Printer, device: &Device) {
    let plan = device.current_plan();
    let last = active(&plan).last().copied();
    let since = last.map_or_else(Default::default, |r| {
        [parse_heads(&r.heads[0]), parse_heads(&r.heads[1]), parse_heads(&r.heads[2])]
    });
    let docs = [DocId::Shared, DocId::PartnerA, DocId::PartnerB].map(|d| device.docs().get(d));
    let changes = review::changes_since(docs, &since, device.membership(), &plan);
    let value = json!({
        "since": last.map(|r| r.date.clone()),
        "last_review": last,
        "next_due": plan.reviews.next_due,
        "changes": changes,
    });
    out.emit(&value, || {
        let mut lines = Vec::new();
        match last {
            Some(r) => {
                lines.push(format!("Since the review of {}:", r.date));
            }
            None => lines.push("Since the plan began (no review yet):".to_owned()),
        }
        if changes.is_empty() {
            lines.push("  Nothing has changed.".into());
        }
        for c in &changes {
            lines.push(format!("  - {}", c.summary));
        }
        if let Some(r) = last {
            lines.push(String::new());
            lines.push(format!("Last review: {}", review_line(&plan, r)));
        }
        if let Some(next) = &plan.reviews.next_due {
            lines.push(format!("Next review: {next}"));
        }
        lines.join("\n")
    });
}

async fn record(
    out: &Printer,
    device: &mut Device,
    wins: Option<String>,
    lessons: Option<String>,
    notes: Option<String>,
) -> anyhow::Result<()> {
    let id = review::record(device, wins, lessons, notes).await?;
    let what = format!(
        "Recorded review [{}] and confirmed it. Your partner confirms with `cove review confirm`.",
        short(&id)
    );
    saved(out, device, &id, &what).await;
    Ok(())
}

async fn confirm(out: &Printer, device: &mut Device, id: &str) -> anyhow::Result<()> {
    let doc = device.partner().doc();
    let who = author(device);
    device.edit(doc, |tx| write::confirm(tx, who, id).map_err(DeviceError::from)).await?;
    saved(out, device, id, &format!("You confirmed review [{}].", short(id))).await;
    Ok(())
}
