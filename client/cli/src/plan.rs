//! `cove plan ...`: add, edit, archive, restore and list in every section.
//!
//! Each change is one local commit (with its sealed envelope in the
//! outbox), then one short attempt to send it; if the relay cannot be
//! reached, the change waits for the next `cove sync` or the daemon.

use crate::output::Printer;
use crate::plan_args::{
    BoundaryCommand, BoundaryFields, CheckinCommand, DeescalationCommand, ItemCommand, LaterFields,
    MenuFields, NeedFields, PlanCommand, QuestionFields, SignalFields, SpaceFields, StepCommand,
    StepFields, TechniqueFields, TermFields,
};
use crate::unlock;
use crate::views;
use clap::Args;
use cove_client::device::{Device, DeviceError};
use cove_client::home::Home;
use cove_client::plan::fields::{
    Spec, boundary, later, menu, need, question, signal, space, step, technique, term,
};
use cove_client::plan::ids::{position_between, short};
use cove_client::plan::items::{Row, author, resolve, rows};
use cove_client::plan::model::{Choice, Plan, Status};
use cove_client::plan::schema::shared as s;
use cove_client::plan::write::{self, Field, Section};
use cove_client::plan::{self, model, replaced, text};
use cove_client::sync::{self, Delivery};
use serde_json::json;

/// Runs `cove plan ...`.
pub(crate) async fn run(home: &Home, out: &Printer, command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::Show { all } => views::show(home, out, all).await,
        PlanCommand::Need(c) => items::<NeedFields>(home, out, c).await,
        PlanCommand::Boundary(BoundaryCommand::Item(c)) => {
            items::<BoundaryFields>(home, out, c).await
        }
        PlanCommand::Boundary(BoundaryCommand::Withdraw { id }) => {
            set_status(home, out, &id, Status::Withdrawn).await
        }
        PlanCommand::Boundary(BoundaryCommand::Reinstate { id }) => {
            set_status(home, out, &id, Status::Active).await
        }
        PlanCommand::Menu(c) => items::<MenuFields>(home, out, c).await,
        PlanCommand::Prefer { option, preference } => prefer(home, out, &option, preference).await,
        PlanCommand::Step(c) => steps(home, out, c).await,
        PlanCommand::Signal(c) => items::<SignalFields>(home, out, c).await,
        PlanCommand::Term(c) => items::<TermFields>(home, out, c).await,
        PlanCommand::Checkin(CheckinCommand::Window { minutes }) => {
            setting(home, out, s::CHECKIN, "window_minutes", minutes, "Check-in window").await
        }
        PlanCommand::Checkin(CheckinCommand::Question(c)) => {
            items::<QuestionFields>(home, out, c).await
        }
        PlanCommand::Checkin(CheckinCommand::Later(c)) => items::<LaterFields>(home, out, c).await,
        PlanCommand::Deescalation(DeescalationCommand::Limit { minutes }) => {
            let what = "Reflection limit";
            setting(home, out, s::DEESCALATION, "reflection_limit_minutes", minutes, what).await
        }
        PlanCommand::Deescalation(DeescalationCommand::Technique(c)) => {
            items::<TechniqueFields>(home, out, c).await
        }
        PlanCommand::Deescalation(DeescalationCommand::Space(c)) => {
            items::<SpaceFields>(home, out, c).await
        }
        PlanCommand::Rename { name } => rename(home, out, &name).await,
        PlanCommand::RestoreReplaced { at, field, value } => {
            restore_replaced(home, out, &at, &field, value.as_deref()).await
        }
    }
}

/// A section's flags, as fields to write. What an item needs, its
/// defaults and how values are normalised are the engine's (see
/// `cove_client::plan::fields`).
pub(crate) trait SectionFields: Args {
    /// The section.
    const SECTION: Section;
    /// The fields given, to write.
    fn fields(self) -> Vec<(&'static str, Field)>;
}

fn push_str(fields: &mut Vec<(&'static str, Field)>, spec: Spec, value: Option<String>) {
    if let Some(v) = value {
        fields.push((spec.key, Field::Str(v)));
    }
}

fn push_choice<C: Choice>(fields: &mut Vec<(&'static str, Field)>, spec: Spec, v: Option<C>) {
    if let Some(v) = v {
        fields.push((spec.key, Field::choice(v)));
    }
}

impl SectionFields for NeedFields {
    const SECTION: Section = Section::Needs;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, need::TEXT, self.text);
        push_choice(&mut f, need::DOMAIN, self.domain);
        push_str(&mut f, need::ENVIRONMENT, self.environment);
        if let Some(c) = self.closeness {
            f.push((need::CLOSENESS.key, Field::Int(c)));
        }
        push_str(&mut f, need::COMMUNICATION, self.communication);
        f
    }
}

impl SectionFields for BoundaryFields {
    const SECTION: Section = Section::Boundaries;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, boundary::STATEMENT, self.statement);
        push_choice(&mut f, boundary::FIRMNESS, self.firmness);
        push_choice(&mut f, boundary::SCOPE, self.scope);
        f
    }
}

impl SectionFields for MenuFields {
    const SECTION: Section = Section::Menu;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, menu::TITLE, self.title);
        push_choice(&mut f, menu::CATEGORY, self.category);
        push_str(&mut f, menu::DESCRIPTION, self.description);
        f
    }
}

impl SectionFields for SignalFields {
    const SECTION: Section = Section::Signals;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, signal::NAME, self.name);
        push_choice(&mut f, signal::KIND, self.kind);
        push_choice(&mut f, signal::MEANING, self.meaning);
        push_str(&mut f, signal::RESPONSE, self.response);
        f
    }
}

impl SectionFields for TermFields {
    const SECTION: Section = Section::Vocabulary;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, term::TERM, self.term);
        push_str(&mut f, term::MEANING, self.meaning);
        f
    }
}

impl SectionFields for QuestionFields {
    const SECTION: Section = Section::Questions;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, question::TEXT, self.text);
        f
    }
}

impl SectionFields for LaterFields {
    const SECTION: Section = Section::Later;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, later::WHEN, self.when);
        push_str(&mut f, later::NOTE, self.note);
        if let Some(h) = self.after_hours {
            f.push((later::AFTER_HOURS.key, Field::Int(h)));
        }
        f
    }
}

impl SectionFields for TechniqueFields {
    const SECTION: Section = Section::Techniques;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, technique::TITLE, self.title);
        push_str(&mut f, technique::DESCRIPTION, self.description);
        f
    }
}

impl SectionFields for SpaceFields {
    const SECTION: Section = Section::Spaces;
    fn fields(self) -> Vec<(&'static str, Field)> {
        let mut f = Vec::new();
        push_str(&mut f, space::PLACE, self.place);
        push_choice(&mut f, space::FOR, self.for_whom);
        f
    }
}

async fn items<F: SectionFields>(
    home: &Home,
    out: &Printer,
    command: ItemCommand<F>,
) -> anyhow::Result<()> {
    let section = F::SECTION;
    let mut device = unlock(home).await?;
    let doc = section.doc(device.partner());
    match command {
        ItemCommand::List { all } => {
            list(out, &device.current_plan(), section, all);
            return Ok(());
        }
        ItemCommand::Add(fields) => {
            let all = fields.fields();
            let who = author(&device);
            let id = device
                .edit(doc, |tx| write::add(tx, who, section, all).map_err(DeviceError::from))
                .await?;
            let what = format!("Added {} [{}].", section.noun(), short(&id));
            saved(out, &mut device, &id, &what).await;
        }
        ItemCommand::Edit { id, fields } => {
            let id = resolve(&device, section, &id)?;
            let fields = fields.fields();
            if fields.is_empty() {
                anyhow::bail!("nothing to change; `cove plan ... edit --help` lists the fields");
            }
            device
                .edit(doc, |tx| write::update(tx, section, &id, fields).map_err(DeviceError::from))
                .await?;
            saved(out, &mut device, &id, &format!("Changed {} [{}].", section.noun(), short(&id)))
                .await;
        }
        ItemCommand::Archive { id } => archive(out, &mut device, section, &id).await?,
        ItemCommand::Restore { id } => restore(out, &mut device, section, &id).await?,
    }
    Ok(())
}

pub(crate) async fn archive(
    out: &Printer,
    device: &mut Device,
    section: Section,
    given: &str,
) -> anyhow::Result<()> {
    let id = resolve(device, section, given)?;
    let who = author(device);
    let doc = section.doc(device.partner());
    device.edit(doc, |tx| write::archive(tx, who, section, &id).map_err(DeviceError::from)).await?;
    let what = format!(
        "Archived {} [{}]. It is kept, and `restore {}` brings it back.",
        section.noun(),
        short(&id),
        short(&id)
    );
    saved(out, device, &id, &what).await;
    Ok(())
}

pub(crate) async fn restore(
    out: &Printer,
    device: &mut Device,
    section: Section,
    given: &str,
) -> anyhow::Result<()> {
    let id = resolve(device, section, given)?;
    let doc = section.doc(device.partner());
    device.edit(doc, |tx| write::restore(tx, section, &id).map_err(DeviceError::from)).await?;
    saved(out, device, &id, &format!("Restored {} [{}].", section.noun(), short(&id))).await;
    Ok(())
}

pub(crate) fn list(out: &Printer, plan: &Plan, section: Section, all: bool) {
    let rows: Vec<Row> = rows(plan, section).into_iter().filter(|r| all || !r.archived).collect();
    out.emit(&rows, || {
        if rows.is_empty() {
            return format!("No {} yet.", text::plural(section.noun()));
        }
        rows.iter()
            .map(|r| {
                let mut line = String::new();
                if let Some(owner) = r.owner {
                    line.push_str(&format!("{}: ", plan.name(owner)));
                }
                line.push_str(&r.line);
                if r.archived {
                    line.push_str("  (archived)");
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

async fn set_status(home: &Home, out: &Printer, given: &str, status: Status) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let section = Section::Boundaries;
    let id = resolve(&device, section, given)?;
    let doc = section.doc(device.partner());
    let fields = vec![("status", Field::choice(status))];
    device
        .edit(doc, |tx| write::update(tx, section, &id, fields).map_err(DeviceError::from))
        .await?;
    let what = match status {
        Status::Withdrawn => format!("Withdrew boundary [{}].", short(&id)),
        Status::Active => format!("Boundary [{}] is in force again.", short(&id)),
    };
    saved(out, &mut device, &id, &what).await;
    Ok(())
}

async fn prefer(
    home: &Home,
    out: &Printer,
    given: &str,
    preference: model::Preference,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let id = resolve(&device, Section::Menu, given)?;
    let doc = device.partner().doc();
    // The option as this partner sees it now (see `read::option_basis`).
    let plan = device.current_plan();
    let option = plan.menu.iter().find(|m| m.meta.id == id).ok_or_else(|| {
        DeviceError::Invalid(format!("there is no menu option with the id '{given}'"))
    })?;
    let basis = plan::read::option_basis(option);
    device
        .edit(doc, |tx| {
            write::set_preference(tx, &id, preference, &basis).map_err(DeviceError::from)
        })
        .await?;
    let what = format!("Your preference for [{}] is now: {preference}.", short(&id));
    saved(out, &mut device, &id, &what).await;
    Ok(())
}

async fn setting(
    home: &Home,
    out: &Printer,
    container: &'static str,
    key: &'static str,
    minutes: i64,
    what: &str,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let field = Field::Int(minutes);
    device
        .edit(cove_shared::DocId::Shared, |tx| {
            write::set_setting(tx, container, key, field).map_err(DeviceError::from)
        })
        .await?;
    saved(out, &mut device, "", &format!("{what}: {minutes} minutes.")).await;
    Ok(())
}

async fn rename(home: &Home, out: &Printer, name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        anyhow::bail!("a name needs 1 to 64 characters");
    }
    let mut device = unlock(home).await?;
    let doc = device.partner().doc();
    device.edit(doc, |tx| write::set_display_name(tx, name).map_err(DeviceError::from)).await?;
    saved(out, &mut device, "", &format!("Your partner will see you as {name}.")).await;
    Ok(())
}

async fn restore_replaced(
    home: &Home,
    out: &Printer,
    at: &str,
    field: &str,
    value: Option<&str>,
) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let plan = device.current_plan();
    let which = replaced::find_one(&plan.replaced, device.partner(), None, at, field)?;
    let value = match (value, which.replaced.as_slice()) {
        (None, [one]) => one.clone(),
        (None, _) => anyhow::bail!(
            "more than one value was replaced there; say which with --value ({})",
            listed(&which.replaced)
        ),
        (Some(given), all) => all.iter().find(|v| v.is(given)).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "'{given}' was not replaced there; the replaced values are {}",
                listed(all)
            )
        })?,
    };
    replaced::restore(&mut device, which, &value).await?;
    saved(out, &mut device, which.item.as_deref().unwrap_or(""), &format!("Restored {value}."))
        .await;
    Ok(())
}

fn listed(values: &[replaced::Stored]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

async fn steps(home: &Home, out: &Printer, command: StepCommand) -> anyhow::Result<()> {
    let section = Section::Sequence;
    let mut device = unlock(home).await?;
    let doc = cove_shared::DocId::Shared;
    match command {
        StepCommand::List { all } => list(out, &device.current_plan(), section, all),
        StepCommand::Add { fields, place } => {
            let mut fields = fields;
            let option = step_option(&device, &mut fields)?;
            let position = place_position(&device, &place, None)?;
            let mut all = vec![(step::POSITION.key, Field::Str(position))];
            all.extend(step_fields(fields, option));
            let who = author(&device);
            let id = device
                .edit(doc, |tx| write::add(tx, who, section, all).map_err(DeviceError::from))
                .await?;
            saved(out, &mut device, &id, &format!("Added step [{}].", short(&id))).await;
        }
        StepCommand::Edit { id, mut fields } => {
            let id = resolve(&device, section, &id)?;
            let option = step_option(&device, &mut fields)?;
            let all = step_fields(fields, option);
            if all.is_empty() {
                anyhow::bail!("nothing to change; `cove plan step edit --help` lists the fields");
            }
            device
                .edit(doc, |tx| write::update(tx, section, &id, all).map_err(DeviceError::from))
                .await?;
            saved(out, &mut device, &id, &format!("Changed step [{}].", short(&id))).await;
        }
        StepCommand::Move { id, place } => {
            let id = resolve(&device, section, &id)?;
            if place.after.is_none() && place.before.is_none() && !place.first && !place.last {
                anyhow::bail!("say where: --after ID, --before ID, --first or --last");
            }
            let position = place_position(&device, &place, Some(&id))?;
            let all = vec![(step::POSITION.key, Field::Str(position))];
            device
                .edit(doc, |tx| write::update(tx, section, &id, all).map_err(DeviceError::from))
                .await?;
            saved(out, &mut device, &id, &format!("Moved step [{}].", short(&id))).await;
        }
        StepCommand::Remove { id } => archive(out, &mut device, section, &id).await?,
        StepCommand::Restore { id } => restore(out, &mut device, section, &id).await?,
    }
    Ok(())
}

/// Resolves `--option` to a menu id, and fills in the title from it.
fn step_option(device: &Device, fields: &mut StepFields) -> Result<Option<String>, DeviceError> {
    let Some(given) = fields.option.take() else { return Ok(None) };
    let id = resolve(device, Section::Menu, &given)?;
    if fields.title.is_none() {
        let plan = device.current_plan();
        fields.title = plan.menu.iter().find(|m| m.meta.id == id).map(|m| m.title.clone());
    }
    Ok(Some(id))
}

fn step_fields(fields: StepFields, option: Option<String>) -> Vec<(&'static str, Field)> {
    let mut f = Vec::new();
    push_str(&mut f, step::TITLE, fields.title);
    if let Some(option) = option {
        f.push((step::OPTION.key, Field::Str(option)));
    }
    push_choice(&mut f, step::FOR, fields.for_whom);
    if let Some(optional) = fields.optional {
        f.push((step::OPTIONAL.key, Field::Bool(optional)));
    }
    f
}

/// A position key for `place`, ignoring the step being moved.
fn place_position(
    device: &Device,
    place: &super::plan_args::Place,
    moving: Option<&str>,
) -> Result<String, DeviceError> {
    let plan = device.current_plan();
    // Every step, archived too, so that a restored step keeps its place.
    let order: Vec<(&str, &str)> = plan
        .sequence
        .iter()
        .filter(|st| Some(st.meta.id.as_str()) != moving)
        .map(|st| (st.meta.id.as_str(), st.position.as_str()))
        .collect();
    let find = |given: &str| -> Result<usize, DeviceError> {
        let id = resolve(device, Section::Sequence, given)?;
        order.iter().position(|(i, _)| *i == id).ok_or_else(|| {
            DeviceError::Invalid("a step cannot be placed next to itself".to_owned())
        })
    };
    let pos = |i: usize| order.get(i).map(|(_, p)| *p);
    let (before, after) = if place.first {
        (None, pos(0))
    } else if let Some(target) = &place.after {
        let i = find(target)?;
        // Past any step sharing the target's position (made concurrently).
        let next = order[i + 1..].iter().find(|(_, p)| *p > order[i].1).map(|(_, p)| *p);
        (Some(order[i].1), next)
    } else if let Some(target) = &place.before {
        let i = find(target)?;
        let prev = order[..i].iter().rev().find(|(_, p)| *p < order[i].1).map(|(_, p)| *p);
        (prev, Some(order[i].1))
    } else {
        (order.last().map(|(_, p)| *p), None)
    };
    Ok(position_between(before, after))
}

/// After a change: says what was saved, and tries once to send it. "Sent"
/// means a page from the relay showed it stored, not merely that the relay
/// said so.
pub(crate) async fn saved(out: &Printer, device: &mut Device, id: &str, what: &str) {
    let delivery = sync::deliver(device, sync::DELIVER_WITHIN).await;
    let removed = matches!(delivery, Delivery::Removed(_));
    out.emit(
        &json!({ "id": (!id.is_empty()).then_some(id), "sent": delivery == Delivery::Sent, "removed": removed }),
        || match &delivery {
            Delivery::Sent => format!("{what} Sent."),
            Delivery::Removed(removal) => {
                format!("{what} Saved on this device only; it will not be sent. {removal}")
            }
            Delivery::NotSent(reason) => format!(
                "{what} Saved on this device; it will be sent at the next `cove sync` ({reason})."
            ),
        },
    );
}
