//! Items as lists show them, and finding the item a person means by a
//! short id, with the ownership rule: only a partner's own devices may
//! change their needs, boundaries, preferences and answers.

use super::ids::short;
use super::model::{ItemMeta, Plan};
use super::text;
use super::write::{self, Author, PlanError, Section};
use crate::device::{Device, DeviceError};
use cove_shared::Partner;
use serde::Serialize;

/// One item as lists show it.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The item, as `--json` prints it.
    #[serde(flatten)]
    pub item: serde_json::Value,
    /// Whose document holds it, for needs and boundaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Partner>,
    /// "[K7Q2AB] " and the item on one line.
    #[serde(skip)]
    pub line: String,
    /// Whether it is archived.
    #[serde(skip)]
    pub archived: bool,
}

/// Every item of `section` (both partners' for needs and boundaries).
pub fn rows(plan: &Plan, section: Section) -> Vec<Row> {
    fn row<T: Serialize>(item: &T, meta: &ItemMeta, owner: Option<Partner>, line: String) -> Row {
        Row {
            item: serde_json::to_value(item).unwrap_or_default(),
            owner,
            line: format!("[{}] {line}", short(&meta.id)),
            archived: meta.archived(),
        }
    }
    let partners = || [Partner::A, Partner::B].into_iter().filter_map(|p| plan.partner(p));
    match section {
        Section::Needs => partners()
            .flat_map(|pp| {
                pp.needs.iter().map(move |n| {
                    row(n, &n.meta, Some(pp.partner), text::need_line(plan, pp.partner, n))
                })
            })
            .collect(),
        Section::Boundaries => partners()
            .flat_map(|pp| {
                pp.boundaries.iter().map(move |b| {
                    row(b, &b.meta, Some(pp.partner), text::boundary_line(plan, pp.partner, b))
                })
            })
            .collect(),
        Section::Menu => {
            plan.menu.iter().map(|m| row(m, &m.meta, None, text::option_line(plan, m))).collect()
        }
        Section::Sequence => plan
            .sequence
            .iter()
            .map(|st| row(st, &st.meta, None, text::step_line(plan, st)))
            .collect(),
        Section::Signals => {
            plan.signals.iter().map(|x| row(x, &x.meta, None, text::signal_line(x))).collect()
        }
        Section::Vocabulary => plan
            .vocabulary
            .iter()
            .map(|t| row(t, &t.meta, None, format!("{}: {}", t.term, t.meaning)))
            .collect(),
        Section::Questions => {
            plan.checkin.questions.iter().map(|q| row(q, &q.meta, None, q.text.clone())).collect()
        }
        Section::Later => {
            plan.checkin.later.iter().map(|l| row(l, &l.meta, None, text::later_line(l))).collect()
        }
        Section::Techniques => plan
            .deescalation
            .techniques
            .iter()
            .map(|t| row(t, &t.meta, None, text::titled(&t.title, t.description.as_deref())))
            .collect(),
        Section::Spaces => plan
            .deescalation
            .spaces
            .iter()
            .map(|sp| row(sp, &sp.meta, None, text::space_line(plan, sp)))
            .collect(),
        Section::Sessions => {
            plan.sessions.iter().map(|x| row(x, &x.meta, None, x.date.clone())).collect()
        }
        Section::Reviews => {
            plan.reviews.history.iter().map(|r| row(r, &r.meta, None, r.date.clone())).collect()
        }
    }
}

/// The ids a device of `me` may change in `section`.
fn ids(plan: &Plan, section: Section, me: Partner) -> Vec<String> {
    rows(plan, section)
        .into_iter()
        .filter(|r| r.owner.is_none_or(|o| o == me))
        .filter_map(|r| r.item.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

/// Finds the full id of an item this device may change.
pub fn resolve(device: &Device, section: Section, given: &str) -> Result<String, DeviceError> {
    let plan = device.current_plan();
    let me = device.partner();
    let mine = ids(&plan, section, me);
    match write::resolve(section, mine.iter().map(String::as_str), given) {
        Ok(id) => Ok(id),
        Err(PlanError::NotFound { .. })
            if write::resolve(
                section,
                ids(&plan, section, me.other()).iter().map(String::as_str),
                given,
            )
            .is_ok() =>
        {
            Err(device.not_yours(me.other()))
        }
        Err(error) => Err(error.into()),
    }
}

/// This device's partner, now: who a change is by.
pub fn author(device: &Device) -> Author {
    Author { partner: device.partner(), now_ms: device.now_ms() }
}
