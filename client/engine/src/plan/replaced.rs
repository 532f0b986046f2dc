//! Ordinary values that two devices set at the same time: a menu option's
//! title, the check-in window, a need's wording.
//!
//! Automerge keeps one of the values and would drop the others unseen.
//! Reading keeps them here instead, so that both partners see what was
//! replaced, and either can put it back with one action ([`restore`]).
//! Setting the field again, to anything, settles it. Consent-bearing values
//! (firmness, status, preferences) have their own, stricter rule: see
//! `read::consent`.

use super::fields::{self, Kind, boundary};
use super::read::Reader;
use super::schema::{partner as p, shared as s};
use super::section::Section;
use super::settings::{SETTINGS, Setting};
use super::write::{self, Field, PlanError};
use crate::device::{Device, DeviceError};
use automerge::{Automerge, ObjId, ROOT, ReadDoc, ScalarValue, Value};
use cove_shared::{DocId, Partner};
use serde::{Deserialize, Serialize};

/// A value as the document stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stored {
    /// Yes or no.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text, or a choice's stored spelling.
    Str(String),
    /// Cleared.
    Empty,
}

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(true) => f.write_str("yes"),
            Self::Bool(false) => f.write_str("no"),
            Self::Int(n) => write!(f, "{n}"),
            Self::Str(text) => write!(f, "\"{text}\""),
            Self::Empty => f.write_str("nothing"),
        }
    }
}

/// One field whose value was replaced by another set at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    /// Whose document holds it; none for the shared document.
    pub owner: Option<Partner>,
    /// The section ([`Section::name`]), or the map of a setting:
    /// "checkin", "deescalation", "reviews", or "profile" for a name.
    pub section: String,
    /// The item's id, for a field of an item.
    pub item: Option<String>,
    /// The item's name as it reads now (its title, its words).
    pub name: Option<String>,
    /// The field's key.
    pub field: String,
    /// The field's label, as people see it.
    pub label: String,
    /// The value in force.
    pub kept: Stored,
    /// The values set at the same time and not in force.
    pub replaced: Vec<Stored>,
}

impl Replaced {
    /// The document it is in.
    pub fn doc(&self) -> DocId {
        self.owner.map_or(DocId::Shared, Partner::doc)
    }

    /// "Menu option \"Tea\", Title: changed on both devices at once: kept
    /// \"Tea\", replaced \"Warm tea\"." `whose` ("your", "Alex's") names
    /// the partner whose document it is, when it is not the shared one.
    pub fn sentence(&self, whose: Option<&str>) -> String {
        let mut place = String::new();
        if let Some(whose) = whose {
            place.push_str(&format!("{whose} "));
        }
        match (Section::named(&self.section), &self.name) {
            (Some(section), Some(name)) => {
                place.push_str(&format!("{} \"{name}\", {}", section.noun(), self.label));
            }
            _ => place.push_str(&self.label),
        }
        let replaced: Vec<String> = self.replaced.iter().map(Stored::to_string).collect();
        format!(
            "{}: changed on both devices at once: kept {}, replaced {}.",
            super::text::capitalised(&place),
            self.kept,
            replaced.join(" and ")
        )
    }

    /// [`Replaced::sentence`] as a device of `me` reads it.
    pub fn line(&self, plan: &super::model::Plan, me: Partner) -> String {
        let whose = self
            .owner
            .map(|o| if o == me { "your".to_owned() } else { format!("{}'s", plan.name(o)) });
        self.sentence(whose.as_deref())
    }

    /// Whether a device of `me` may put a replaced value back.
    pub fn restorable_by(&self, me: Partner) -> bool {
        self.owner.is_none_or(|o| o == me)
    }

    /// What names it for [`find_one`]: the item's short id, or the
    /// setting's map.
    pub fn at(&self) -> &str {
        self.item.as_deref().map_or(self.section.as_str(), super::ids::short)
    }
}

impl Stored {
    /// Whether `given`, as a person typed it, is this value.
    pub fn is(&self, given: &str) -> bool {
        let given = given.trim();
        match self {
            Self::Bool(b) => match given {
                "yes" | "true" => *b,
                "no" | "false" => !*b,
                _ => false,
            },
            Self::Int(n) => given.parse::<i64>().is_ok_and(|g| g == *n),
            Self::Str(text) => text == given,
            Self::Empty => given.is_empty() || given == "nothing",
        }
    }

    /// The value as a person would type it back.
    pub fn typed(&self) -> String {
        match self {
            Self::Str(text) => text.clone(),
            Self::Empty => String::new(),
            other => other.to_string(),
        }
    }
}

/// Every replaced value in the three documents.
pub(crate) fn find(shared: &Automerge, a: &Automerge, b: &Automerge) -> Vec<Replaced> {
    let mut out = Vec::new();
    for section in Section::ALL {
        let docs = match section.doc(Partner::A) {
            DocId::Shared => vec![(None, shared)],
            _ => vec![(Some(Partner::A), a), (Some(Partner::B), b)],
        };
        for (owner, doc) in docs {
            items(doc, owner, section, &mut out);
        }
    }
    for (container, key, label) in settings() {
        let Some(map) = Reader(shared).map(&ROOT, container) else { continue };
        if let Some((kept, replaced)) = values(shared, &map, key) {
            out.push(Replaced {
                owner: None,
                section: container.to_owned(),
                item: None,
                name: None,
                field: key.to_owned(),
                label: label.to_owned(),
                kept,
                replaced,
            });
        }
    }
    for (owner, doc) in [(Partner::A, a), (Partner::B, b)] {
        let Some(profile) = Reader(doc).map(&ROOT, p::PROFILE) else { continue };
        if let Some((kept, replaced)) = values(doc, &profile, "display_name") {
            out.push(Replaced {
                owner: Some(owner),
                section: p::PROFILE.to_owned(),
                item: None,
                name: None,
                field: "display_name".to_owned(),
                label: "name".to_owned(),
                kept,
                replaced,
            });
        }
    }
    out
}

/// The settings a value can be replaced in, besides items' fields: each
/// one's map, key and label.
fn settings() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    SETTINGS.iter().map(|s| (s.at.0, s.at.1, s.label)).chain([(
        s::REVIEWS,
        "next_due",
        "Next review",
    )])
}

/// The replaced fields of the current items of one section in one document.
fn items(doc: &Automerge, owner: Option<Partner>, section: Section, out: &mut Vec<Replaced>) {
    let r = Reader(doc);
    let Some(map) = section.path().iter().try_fold(ROOT, |obj, key| r.map(&obj, key)) else {
        return;
    };
    let ordinary = || {
        fields::of(section).iter().filter(|spec| spec.shown() && spec.key != boundary::FIRMNESS.key)
    };
    for (id, obj) in r.entries(Some(map)) {
        if r.meta(&obj, &id).archived() {
            continue;
        }
        for spec in ordinary() {
            let Some((kept, replaced)) = values(doc, &obj, spec.key) else { continue };
            // Its first field is what an item is called: a title, its words.
            let name = fields::of(section).first().and_then(|first| r.str(&obj, first.key));
            out.push(Replaced {
                owner,
                section: section.name().to_owned(),
                item: Some(id.clone()),
                name,
                field: spec.key.to_owned(),
                label: spec.label.to_owned(),
                kept,
                replaced,
            });
        }
    }
}

/// The value in force at `key` and the others set at the same time, if
/// there are others that differ from it.
fn values(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<(Stored, Vec<Stored>)> {
    let all = doc.get_all(obj, key).ok()?;
    if all.len() < 2 {
        return None;
    }
    let (kept, _) = doc.get(obj, key).ok()??;
    let kept = stored(&kept)?;
    let mut replaced = Vec::new();
    for (value, _) in &all {
        match stored(value) {
            Some(value) if value != kept && !replaced.contains(&value) => replaced.push(value),
            _ => {}
        }
    }
    (!replaced.is_empty()).then_some((kept, replaced))
}

fn stored(value: &Value<'_>) -> Option<Stored> {
    let Value::Scalar(scalar) = value else { return None };
    Some(match scalar.as_ref() {
        ScalarValue::Str(text) => Stored::Str(text.to_string()),
        ScalarValue::Int(n) => Stored::Int(*n),
        ScalarValue::Uint(n) => Stored::Int(i64::try_from(*n).ok()?),
        ScalarValue::Boolean(b) => Stored::Bool(*b),
        ScalarValue::Null => Stored::Empty,
        _ => return None,
    })
}

/// Finds the replaced value, among those this device of `me` may put back,
/// that `at` and `field` name: an item's id (whole, or its last four or more
/// characters) and a field's key, or a setting's map and key ("checkin
/// window_minutes"), or "profile display_name" for this partner's name.
/// `section` narrows it to one section, as the page says which.
pub fn find_one<'a>(
    all: &'a [Replaced],
    me: Partner,
    section: Option<&str>,
    at: &str,
    field: &str,
) -> Result<&'a Replaced, DeviceError> {
    let at = at.trim();
    let id_end = at.to_ascii_uppercase();
    let candidates = || {
        all.iter().filter(|r| {
            r.restorable_by(me) && r.field == field && section.is_none_or(|s| r.section == s)
        })
    };
    let exact: Vec<&Replaced> = candidates()
        .filter(|r| r.item.as_deref().map_or(r.section == at, |id| id == id_end))
        .collect();
    let matches: Vec<&Replaced> = if exact.is_empty() && id_end.len() >= 4 {
        candidates().filter(|r| r.item.as_ref().is_some_and(|id| id.ends_with(&id_end))).collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(DeviceError::Invalid(format!(
            "no value of '{field}' at '{at}' is waiting to be restored; it may have been set again since"
        ))),
        _ => Err(DeviceError::Invalid(format!(
            "'{at}' matches more than one item; give more of its id"
        ))),
    }
}

/// Puts `value`, one of the values `which` replaced, back in force. Only
/// the owner's devices can write a partner's own document.
pub async fn restore(
    device: &mut Device,
    which: &Replaced,
    value: &Stored,
) -> Result<(), DeviceError> {
    if !which.replaced.contains(value) {
        return Err(DeviceError::Invalid(format!(
            "{value} is not a value that was replaced there; it may have been set again since"
        )));
    }
    if let Some(owner) = which.owner.filter(|o| *o != device.partner()) {
        return Err(device.not_yours(owner));
    }
    device
        .edit(which.doc(), |tx| {
            // The state may have moved on since the plan was read (another
            // process on this device, or a sync): put back only a value
            // that is still one of those replaced, never over a newer edit.
            let still = place(tx, which)
                .and_then(|obj| values(tx, &obj, &which.field))
                .is_some_and(|(_, replaced)| replaced.contains(value));
            if !still {
                return Err(DeviceError::Invalid(format!(
                    "{value} is no longer waiting to be restored there; it was set again since"
                )));
            }
            match (&which.item, Section::named(&which.section)) {
                (Some(id), Some(section)) => {
                    let spec = fields::spec(section, &which.field)
                        .ok_or(PlanError::Missing("that field"))?;
                    let field = field_for(spec.key, spec.kind, value)?;
                    write::update(tx, section, id, vec![(spec.key, field)])?;
                }
                _ if which.section == p::PROFILE => {
                    // The same bounds as a rename.
                    let name = match value {
                        Stored::Str(name) if (1..=64).contains(&name.trim().chars().count()) => {
                            name.trim()
                        }
                        _ => return Err(not_a(&which.label)),
                    };
                    write::set_display_name(tx, name)?;
                }
                _ => {
                    let (container, key, label) = settings()
                        .find(|(c, k, _)| *c == which.section && *k == which.field)
                        .ok_or(PlanError::Missing("that setting"))?;
                    let field = match (value, Setting::at(container, key)) {
                        (Stored::Int(n), Some(setting)) if (1..=setting.max).contains(n) => {
                            Field::Int(*n)
                        }
                        (Stored::Str(day), None) if super::calendar::parse_day(day).is_some() => {
                            Field::Str(day.clone())
                        }
                        _ => return Err(not_a(label)),
                    };
                    write::set_setting(tx, container, key, field)?;
                }
            }
            Ok(())
        })
        .await
}

/// The map that holds the field `which` names, in the document as `doc`
/// reads it now.
fn place(doc: &impl ReadDoc, which: &Replaced) -> Option<ObjId> {
    let map = |obj: &ObjId, key: &str| match doc.get(obj, key).ok()?? {
        (Value::Object(automerge::ObjType::Map), id) => Some(id),
        _ => None,
    };
    match (&which.item, Section::named(&which.section)) {
        (Some(id), Some(section)) => {
            let container = section.path().iter().try_fold(ROOT, |obj, key| map(&obj, key))?;
            map(&container, id)
        }
        _ => map(&ROOT, &which.section),
    }
}

fn not_a(label: &str) -> DeviceError {
    DeviceError::Invalid(format!("the replaced value does not fit \u{201c}{label}\u{201d}"))
}

/// The field to write to put `value` back, as the table says it is given.
fn field_for(key: &'static str, kind: Kind, value: &Stored) -> Result<Field, DeviceError> {
    Ok(match (kind, value) {
        (_, Stored::Empty) => Field::Clear,
        (Kind::Text, Stored::Str(text)) => Field::Str(text.clone()),
        (Kind::Choice(of), Stored::Str(text)) => match of().into_iter().find(|c| c == text) {
            Some(choice) => Field::Choice(choice),
            None => return Err(not_a(key)),
        },
        (Kind::Int { .. }, Stored::Int(n)) => Field::Int(*n),
        (Kind::Bool, Stored::Bool(b)) => Field::Bool(*b),
        _ => return Err(not_a(key)),
    })
}
