//! "What changed since our last review": a readable diff between the heads a
//! review recorded and now, each change attributed to the partner whose
//! device made it.
//!
//! Attribution comes from Automerge itself: every value in a document is
//! the result of one operation, and every operation carries the actor id of
//! the device that made it, which the receiving device checked against the
//! envelope's signature (see `docs.rs`). Values are never deleted, only
//! overwritten (see `write.rs`), so each current value names its author.
//! Free-form text is attributed to the device that created it.

use super::calendar::{format_day, parse_day, today};
use super::items::author;
use super::model::Plan;
use super::schema::shared as s;
use super::write::{self, Field, Section};
use crate::device::{Device, DeviceError};
use automerge::{
    ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value,
};
use cove_shared::membership::MembershipState;
use cove_shared::{DeviceId, DocId, Partner};
use serde::Serialize;
use std::collections::BTreeMap;

/// One change since the review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Who made it, if the device is known.
    pub by: Option<Partner>,
    /// The document.
    pub doc: String,
    /// Where: the path of the value, such as `menu/<id>/title`.
    pub path: String,
    /// The value before ("" if none).
    pub before: String,
    /// The value now ("" if none).
    pub after: String,
    /// The same, in a sentence.
    pub summary: String,
}

/// A document's values: path to (value, author).
type Leaves = BTreeMap<String, (String, Option<ActorId>)>;

/// Every change between `since` (per document; empty = the beginning) and
/// now, oldest section first.
pub fn changes_since(
    docs: [&Automerge; 3],
    since: &[Vec<ChangeHash>; 3],
    membership: &MembershipState,
    plan: &Plan,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (i, doc) in DocId::ALL.into_iter().enumerate() {
        let now = leaves(docs[i]);
        let before = if since[i].is_empty() {
            Leaves::new()
        } else {
            match docs[i].fork_at(&since[i]) {
                Ok(old) => leaves(&old),
                // Heads this device does not hold: compare with nothing.
                Err(_) => Leaves::new(),
            }
        };
        // Items made since: one line each, not one per field.
        let added: Vec<String> = now
            .keys()
            .filter_map(|p| p.strip_suffix("/created_at"))
            .filter(|item| !before.contains_key(&format!("{item}/created_at")))
            .map(str::to_owned)
            .collect();
        for (path, (after, actor)) in &now {
            let old = before.get(path).map(|(v, _)| v.as_str()).unwrap_or("");
            if old == after || bookkeeping(path) {
                continue;
            }
            let inside_new = added.iter().any(|item| path.starts_with(&format!("{item}/")));
            let kept = path.ends_with("/created_at") || path.ends_with("/archived_at");
            if inside_new && !kept {
                continue;
            }
            let by = actor.as_ref().and_then(|a| partner_of(a, membership));
            let mut summary = describe(plan, doc, path, old, after, by);
            if let Some(item) = path.strip_suffix("/created_at")
                && let Some(label) = LABELS.iter().find_map(|f| now.get(&format!("{item}/{f}")))
            {
                summary.push_str(&format!(": \"{}\"", label.0));
            }
            if summary.is_empty() {
                continue;
            }
            out.push(Change {
                by,
                doc: doc.name().to_owned(),
                path: path.clone(),
                before: old.to_owned(),
                after: after.clone(),
                summary,
            });
        }
    }
    // Per item, its creation first.
    out.sort_by_key(|c| {
        let item = c.path.rsplit_once('/').map_or(c.path.as_str(), |(item, _)| item).to_owned();
        let doc = DocId::ALL.iter().position(|d| d.name() == c.doc);
        (doc, item, !c.path.ends_with("/created_at"))
    });
    out
}

/// Values that record reviews themselves (the history, the next date,
/// confirmations), that only back another value, or that describe the
/// documents rather than the plan (the schema version, when the plan was
/// made): a review lists changes to the plan, not to its own record.
fn bookkeeping(path: &str) -> bool {
    path == "schema"
        || path.starts_with("meta/")
        || path.starts_with("reviews/history/")
        || path == "reviews/next_due"
        || path.starts_with("confirmations/")
        || path.starts_with("preference_basis/")
}

fn partner_of(actor: &ActorId, membership: &MembershipState) -> Option<Partner> {
    let bytes: [u8; 32] = actor.to_bytes().try_into().ok()?;
    let device = DeviceId::from_bytes(bytes).ok()?;
    membership.member(&device).map(|m| m.partner)
}

fn leaves(doc: &Automerge) -> Leaves {
    let mut out = Leaves::new();
    walk(doc, &ROOT, String::new(), 0, &mut out);
    out
}

/// The schema nests maps four deep at most; a document nested deeper (a
/// partner's modified client can write anything into the shared one) is
/// not followed further, so that reading it cannot exhaust the stack.
const MAX_DEPTH: usize = 8;

fn walk(doc: &Automerge, obj: &ObjId, prefix: String, depth: usize, out: &mut Leaves) {
    if depth > MAX_DEPTH {
        return;
    }
    for key in doc.keys(obj).collect::<Vec<_>>() {
        let Ok(Some((value, id))) = doc.get(obj, key.as_str()) else { continue };
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}/{key}") };
        let actor = match &id {
            ObjId::Id(_, actor, _) => Some(actor.clone()),
            ObjId::Root => None,
        };
        match value {
            Value::Object(ObjType::Map) => {
                // A set of ids (a session's options) reads as its keys.
                let keys: Vec<String> = doc.keys(&id).collect();
                let is_set = !keys.is_empty()
                    && keys.iter().all(|k| {
                        matches!(doc.get(&id, k.as_str()), Ok(Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Boolean(true)))
                    });
                if is_set {
                    out.insert(path, (keys.join(", "), actor));
                } else {
                    walk(doc, &id, path, depth + 1, out);
                }
            }
            Value::Object(ObjType::Text) => {
                out.insert(path, (doc.text(&id).unwrap_or_default(), actor));
            }
            Value::Object(_) => {}
            Value::Scalar(s) => {
                let text = match s.as_ref() {
                    ScalarValue::Str(v) => v.to_string(),
                    ScalarValue::Int(v) => v.to_string(),
                    ScalarValue::Uint(v) => v.to_string(),
                    ScalarValue::F64(v) => v.to_string(),
                    ScalarValue::Boolean(v) => if *v { "yes" } else { "no" }.to_owned(),
                    ScalarValue::Timestamp(ms) => format_day(today(*ms)),
                    _ => String::new(),
                };
                out.insert(path, (text, actor));
            }
        }
    }
}

/// The field that names an item, in order of preference.
const LABELS: &[&str] = &["title", "statement", "text", "name", "term", "when", "place", "date"];

/// Item containers, with the noun for one of their items.
const NOUNS: &[(&str, &str)] = &[
    ("needs", "need"),
    ("boundaries", "boundary"),
    ("menu", "menu option"),
    ("sequence", "step"),
    ("signals", "signal"),
    ("vocabulary", "term"),
    ("checkin/questions", "debrief question"),
    ("checkin/later", "later check-in"),
    ("deescalation/techniques", "technique"),
    ("deescalation/spaces", "neutral space"),
    ("sessions", "session"),
    ("reviews/history", "review"),
];

fn describe(
    plan: &Plan,
    doc: DocId,
    path: &str,
    before: &str,
    after: &str,
    by: Option<Partner>,
) -> String {
    let who = by.map_or_else(|| "An unknown device".to_owned(), |p| plan.name(p));
    let whose = match doc.owner() {
        Some(owner) if by == Some(owner) => "their ".to_owned(),
        Some(owner) => format!("{}'s ", plan.name(owner)),
        None => String::new(),
    };
    for (container, noun) in NOUNS {
        let Some(rest) = path.strip_prefix(container).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let (id, field) = rest.split_once('/').unwrap_or((rest, ""));
        let short = super::ids::short(id);
        return match field {
            "created_at" => format!("{who} added {whose}{noun} [{short}]"),
            "created_by" | "position" if before.is_empty() => String::new(),
            "archived_at" if after.is_empty() => format!("{who} restored {whose}{noun} [{short}]"),
            "archived_at" => format!("{who} archived {whose}{noun} [{short}]"),
            "archived_by" => String::new(),
            "position" => format!("{who} moved {whose}{noun} [{short}]"),
            field if before.is_empty() => {
                format!("{who} set the {field} of {whose}{noun} [{short}] to \"{after}\"")
            }
            field => format!(
                "{who} changed the {field} of {whose}{noun} [{short}] from \"{before}\" to \"{after}\""
            ),
        };
    }
    if let Some(option) = path.strip_prefix("preferences/") {
        let title = plan.menu.iter().find(|m| m.meta.id == option).map_or_else(
            || format!("[{}]", super::ids::short(option)),
            |m| format!("\"{}\"", m.title),
        );
        return format!("{who} set a preference for {title} to {after}");
    }
    if path.starts_with("debriefs/") {
        return format!("{who} answered a debrief question");
    }
    if path.starts_with("confirmations/") {
        return format!("{who} confirmed a review");
    }
    let key = path.rsplit('/').next().unwrap_or(path);
    if let Some((what, unit)) = setting_words(key) {
        let unit = if after == "1" { unit.trim_end_matches('s') } else { unit };
        return format!("{who} set {what} to {after}{unit}");
    }
    let key = key.replace('_', " ");
    format!("{who} set {whose}{key} to \"{after}\"")
}

/// How a shared setting reads in a sentence: its name, and its unit.
fn setting_words(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "window_minutes" => ("the check-in window after a session", " minutes"),
        "reflection_limit_minutes" => ("the time to reflect before talking again", " minutes"),
        "cadence_days" => ("the time between reviews", " days"),
        "next_due" => ("the next review", ""),
        _ => return None,
    })
}

/// Parses the comma-separated heads a review stores.
pub fn parse_heads(heads: &[String]) -> Vec<ChangeHash> {
    heads.iter().filter_map(|h| h.parse().ok()).collect()
}

/// Heads as a review stores them.
pub fn format_heads(heads: &[ChangeHash]) -> String {
    heads.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The day a review is due, if it is due today or earlier.
pub fn due(plan: &Plan, now_ms: i64) -> Option<String> {
    let next = plan.reviews.next_due.as_deref()?;
    (parse_day(next)? <= today(now_ms)).then(|| next.to_owned())
}

/// Records a review today: the documents' heads now (what the next review
/// compares with), wins, lessons and notes; moves the next review date on
/// by the cadence; and confirms it for this device's partner. Returns its id.
pub async fn record(
    device: &mut Device,
    wins: Option<String>,
    lessons: Option<String>,
    notes: Option<String>,
) -> Result<String, DeviceError> {
    let plan = device.current_plan();
    let day = today(device.now_ms());
    let heads = |doc: DocId| format_heads(&device.docs().get(doc).get_heads());
    let fields = vec![
        ("date", Field::Str(format_day(day))),
        ("heads_shared", Field::Str(heads(DocId::Shared))),
        ("heads_a", Field::Str(heads(DocId::PartnerA))),
        ("heads_b", Field::Str(heads(DocId::PartnerB))),
        ("wins", Field::Text(wins.unwrap_or_default())),
        ("lessons", Field::Text(lessons.unwrap_or_default())),
        ("notes", Field::Text(notes.unwrap_or_default())),
    ];
    let next = plan.reviews.cadence_days.and_then(|days| day.checked_add(days)).map(format_day);
    let who = author(device);
    let id = device
        .edit(DocId::Shared, |tx| {
            let id = write::add(tx, who, Section::Reviews, fields)?;
            if let Some(next) = next {
                write::set_setting(tx, s::REVIEWS, "next_due", Field::Str(next))?;
            }
            Ok(id)
        })
        .await?;
    let doc = device.partner().doc();
    let who = author(device);
    device.edit(doc, |tx| write::confirm(tx, who, &id).map_err(DeviceError::from)).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::Automerge;

    #[test]
    fn a_review_is_due_on_its_day_and_after() {
        let empty = Automerge::new();
        let mut plan = super::super::read::plan(&empty, &empty, &empty);
        let day = parse_day("2026-11-25").unwrap();
        let noon = day * 86_400_000 + 43_200_000;
        assert_eq!(due(&plan, noon), None, "no review planned");
        plan.reviews.next_due = Some("2026-11-26".into());
        assert_eq!(due(&plan, noon), None);
        plan.reviews.next_due = Some("2026-11-25".into());
        assert_eq!(due(&plan, noon).as_deref(), Some("2026-11-25"));
        plan.reviews.next_due = Some("2026-10-01".into());
        assert_eq!(due(&plan, noon).as_deref(), Some("2026-10-01"));
        plan.reviews.next_due = Some("not a day".into());
        assert_eq!(due(&plan, noon), None);
    }
}
