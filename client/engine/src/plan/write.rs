//! Changing the plan: typed operations on one Automerge transaction.
//!
//! Each function here is one person's action, and runs inside
//! `Device::edit`, which seals the resulting change for the partner. Items
//! are maps keyed by ULID inside containers made at genesis; nothing is
//! deleted (`archive` stamps `archived_at`/`archived_by`, `restore` removes
//! the stamp), so an edit that races with an archive is kept.

use super::ids;
use super::model::Choice;
use super::schema::{self, SCHEMA_VERSION, partner as p};
pub use super::section::Section;
use automerge::transaction::{Transactable, Transaction};
use automerge::{AutomergeError, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use cove_shared::{OsEntropy, Partner};

/// The longest text a single value may hold, in characters. Plans are for
/// people to read; this keeps every edit within one envelope.
pub const MAX_FIELD_CHARS: usize = 4_000;
/// The longest free-form notes (Automerge text) may be: two partners'
/// concurrent additions merge, so notes may grow past one person's edit.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// A change to the plan could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Automerge refused the operation.
    #[error("the plan could not be changed: {0}")]
    Doc(#[from] AutomergeError),
    /// No item in the section has that id.
    #[error("there is no {section} with the id '{id}'")]
    NotFound {
        /// The section, singular.
        section: &'static str,
        /// What was given.
        id: String,
    },
    /// More than one item ends in what was given.
    #[error("'{id}' matches more than one {section}; give more of its id")]
    Ambiguous {
        /// The section, singular.
        section: &'static str,
        /// What was given.
        id: String,
    },
    /// An item would be without a field it cannot do without.
    #[error("\u{201c}{label}\u{201d} is needed: a {section} cannot be without it")]
    Required {
        /// The section, singular.
        section: &'static str,
        /// The field's label.
        label: &'static str,
        /// The field's key.
        key: &'static str,
    },
    /// A number outside what a field takes.
    #[error("\u{201c}{label}\u{201d} takes a whole number from {min} to {max}")]
    OutOfRange {
        /// The field's label.
        label: &'static str,
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// A choice that is not one of a field's.
    #[error("\u{201c}{label}\u{201d} takes one of: {choices}")]
    NotAChoice {
        /// The field's label.
        label: &'static str,
        /// The choices, listed.
        choices: String,
    },
    /// A value is out of range or empty.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The document lacks a container its genesis should have made.
    #[error("the plan has no '{0}' section: it is damaged, or made by another program")]
    Missing(&'static str),
    /// A newer version of Cove wrote this document.
    #[error(
        "this plan uses schema {0}, newer than this Cove understands; update Cove to change it"
    )]
    NewerSchema(i64),
}

/// A value to write into an item's field.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A single string value (never merged character by character).
    Str(String),
    /// A choice, stored as its kebab-case name.
    Choice(&'static str),
    /// An integer.
    Int(i64),
    /// Yes or no.
    Bool(bool),
    /// Free-form notes: Automerge text, merged character by character.
    Text(String),
    /// A set of ids (a map of id to `true`).
    Set(Vec<String>),
    /// A partner, stored as "a" or "b".
    Partner(Partner),
    /// Remove the field.
    Clear,
}

impl Field {
    /// A choice.
    pub fn choice<C: Choice>(c: C) -> Self {
        Self::Choice(c.as_str())
    }
}

/// Who is writing, and when.
#[derive(Debug, Clone, Copy)]
pub struct Author {
    /// The writing device's partner.
    pub partner: Partner,
    /// Now, in Unix milliseconds.
    pub now_ms: i64,
}

/// "a" or "b".
pub fn partner_code(partner: Partner) -> &'static str {
    match partner {
        Partner::A => "a",
        Partner::B => "b",
    }
}

/// Refuses to write a document made by a newer schema, and brings an older
/// one up to date: the migration step. Version 1 is the first, so there is
/// nothing to migrate yet; a version 2 adds its containers here, in the
/// first change a device makes after upgrading.
pub fn migrate(tx: &mut Transaction<'_>) -> Result<(), PlanError> {
    let version = match tx.get(ROOT, "schema")? {
        Some((Value::Scalar(v), _)) => v.as_i64().unwrap_or(0),
        _ => return Ok(()),
    };
    if version > SCHEMA_VERSION {
        return Err(PlanError::NewerSchema(version));
    }
    Ok(())
}

fn container(tx: &Transaction<'_>, section: Section) -> Result<ObjId, PlanError> {
    let mut obj = ROOT;
    for key in section.path() {
        obj = match tx.get(&obj, *key)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(PlanError::Missing(key)),
        };
    }
    Ok(obj)
}

/// A root-level map (such as `checkin` or `preferences`).
fn root_map(tx: &Transaction<'_>, key: &'static str) -> Result<ObjId, PlanError> {
    match tx.get(ROOT, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(PlanError::Missing(key)),
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), PlanError> {
    if value.chars().count() > max {
        return Err(PlanError::Invalid { field, reason: format!("at most {max} characters") });
    }
    Ok(())
}

/// Before the owner sets a value that is in conflict: removes every
/// concurrent value, so that the new one replaces them all even when it
/// equals one of them (Automerge makes no change for a value set to what it
/// already reads as).
fn settle(tx: &mut Transaction<'_>, obj: &ObjId, key: &str) -> Result<(), PlanError> {
    if tx.get_all(obj, key)?.len() > 1 {
        tx.delete(obj, key)?;
    }
    Ok(())
}

fn write_field(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &'static str,
    value: Field,
) -> Result<(), PlanError> {
    match value {
        Field::Str(v) => {
            check_text(key, &v, MAX_FIELD_CHARS)?;
            tx.put(obj, key, v)?;
        }
        Field::Choice(v) => {
            settle(tx, obj, key)?;
            tx.put(obj, key, v)?;
        }
        Field::Int(v) => {
            // Ranges of a section's fields are checked by `fields::prepare`.
            let range = 0..=i64::from(u32::MAX);
            if !range.contains(&v) {
                return Err(PlanError::Invalid {
                    field: key,
                    reason: format!("{v} is outside {}..={}", range.start(), range.end()),
                });
            }
            tx.put(obj, key, v)?;
        }
        Field::Bool(v) => tx.put(obj, key, v)?,
        Field::Partner(v) => tx.put(obj, key, partner_code(v))?,
        Field::Text(v) => {
            check_text(key, &v, MAX_TEXT_CHARS)?;
            match tx.get(obj, key)? {
                Some((Value::Object(ObjType::Text), text)) => tx.update_text(&text, &v)?,
                _ => {
                    let text = tx.put_object(obj, key, ObjType::Text)?;
                    tx.splice_text(&text, 0, 0, &v)?;
                }
            }
        }
        Field::Set(ids) => {
            // Made with the item (or replaced whole): the map is new, so no
            // other device can be making the same one.
            let set = tx.put_object(obj, key, ObjType::Map)?;
            for id in ids {
                tx.put(&set, id, true)?;
            }
        }
        Field::Clear => {
            // A null, not a deletion: a put carries its author, so a review
            // can say who cleared it.
            if tx.get(obj, key)?.is_some() {
                tx.put(obj, key, ScalarValue::Null)?;
            }
        }
    }
    Ok(())
}

/// Adds an item to `section`; returns its id.
pub fn add(
    tx: &mut Transaction<'_>,
    author: Author,
    section: Section,
    fields: Vec<(&'static str, Field)>,
) -> Result<String, PlanError> {
    migrate(tx)?;
    let fields = super::fields::prepare(section, fields, true)?;
    super::signals::not_built_in(section, &fields)?;
    let map = container(tx, section)?;
    let id = ids::new_id(author.now_ms, &mut OsEntropy);
    let item = tx.put_object(&map, id.as_str(), ObjType::Map)?;
    tx.put(&item, "created_at", ScalarValue::Timestamp(author.now_ms))?;
    tx.put(&item, "created_by", partner_code(author.partner))?;
    for (key, value) in fields {
        write_field(tx, &item, key, value)?;
    }
    Ok(id)
}

/// Puts an item with a given id and history (an import): the id must be a
/// ULID not yet in the section.
pub fn put_item(
    tx: &mut Transaction<'_>,
    section: Section,
    meta: &super::model::ItemMeta,
    fields: Vec<(&'static str, Field)>,
) -> Result<(), PlanError> {
    migrate(tx)?;
    let fields = super::fields::prepare(section, fields, true)?;
    if !ids::is_id(&meta.id) {
        return Err(PlanError::Invalid {
            field: "id",
            reason: format!("'{}' is not an item id", meta.id),
        });
    }
    let map = container(tx, section)?;
    if tx.get(&map, meta.id.as_str())?.is_some() {
        return Err(PlanError::Invalid {
            field: "id",
            reason: format!("the plan already holds a {} with the id {}", section.noun(), meta.id),
        });
    }
    let item = tx.put_object(&map, meta.id.as_str(), ObjType::Map)?;
    if let Some(at) = meta.created_at {
        tx.put(&item, "created_at", ScalarValue::Timestamp(at))?;
    }
    if let Some(by) = meta.created_by {
        tx.put(&item, "created_by", partner_code(by))?;
    }
    if let Some(at) = meta.archived_at {
        tx.put(&item, "archived_at", ScalarValue::Timestamp(at))?;
    }
    if let Some(by) = meta.archived_by {
        tx.put(&item, "archived_by", partner_code(by))?;
    }
    for (key, value) in fields {
        write_field(tx, &item, key, value)?;
    }
    Ok(())
}

/// The item `id` of `section` (an exact id).
fn item(tx: &Transaction<'_>, section: Section, id: &str) -> Result<ObjId, PlanError> {
    let map = container(tx, section)?;
    match tx.get(&map, id)? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(PlanError::NotFound { section: section.noun(), id: id.to_owned() }),
    }
}

/// Sets fields of an existing item.
pub fn update(
    tx: &mut Transaction<'_>,
    section: Section,
    id: &str,
    fields: Vec<(&'static str, Field)>,
) -> Result<(), PlanError> {
    migrate(tx)?;
    let fields = super::fields::prepare(section, fields, false)?;
    super::signals::not_built_in(section, &fields)?;
    let obj = item(tx, section, id)?;
    for (key, value) in fields {
        write_field(tx, &obj, key, value)?;
    }
    Ok(())
}

/// Archives an item: hidden from views, kept, and restorable.
pub fn archive(
    tx: &mut Transaction<'_>,
    author: Author,
    section: Section,
    id: &str,
) -> Result<(), PlanError> {
    migrate(tx)?;
    let obj = item(tx, section, id)?;
    tx.put(&obj, "archived_at", ScalarValue::Timestamp(author.now_ms))?;
    tx.put(&obj, "archived_by", partner_code(author.partner))?;
    Ok(())
}

/// Restores an archived item.
pub fn restore(tx: &mut Transaction<'_>, section: Section, id: &str) -> Result<(), PlanError> {
    migrate(tx)?;
    let obj = item(tx, section, id)?;
    for key in ["archived_at", "archived_by"] {
        write_field(tx, &obj, key, Field::Clear)?;
    }
    Ok(())
}

/// Sets a scalar setting of the shared document, such as the check-in
/// window: `(container, key)`.
pub fn set_setting(
    tx: &mut Transaction<'_>,
    container_key: &'static str,
    key: &'static str,
    value: Field,
) -> Result<(), PlanError> {
    migrate(tx)?;
    let map = root_map(tx, container_key)?;
    write_field(tx, &map, key, value)
}

/// Sets this partner's preference for a menu option (in their own
/// document). A plain value per option, so two of the partner's devices
/// setting it at once leave a visible conflict, resolved to the stricter.
///
/// `basis` is [`super::read::option_basis`] of the option as the partner
/// saw it when choosing.
pub fn set_preference(
    tx: &mut Transaction<'_>,
    option: &str,
    value: super::model::Preference,
    basis: &str,
) -> Result<(), PlanError> {
    migrate(tx)?;
    let map = root_map(tx, p::PREFERENCES)?;
    settle(tx, &map, option)?;
    tx.put(&map, option, value.as_str())?;
    let bases = root_map(tx, p::PREFERENCE_BASIS)?;
    tx.put(&bases, option, basis)?;
    Ok(())
}

/// Records this partner's answer to a debrief question (own document).
pub fn answer(
    tx: &mut Transaction<'_>,
    session: &str,
    question: &str,
    text: &str,
) -> Result<(), PlanError> {
    migrate(tx)?;
    check_text("answer", text, MAX_FIELD_CHARS)?;
    let map = root_map(tx, p::DEBRIEFS)?;
    tx.put(&map, format!("{session}/{question}"), text)?;
    Ok(())
}

/// Records that this partner confirms a review (own document).
pub fn confirm(tx: &mut Transaction<'_>, author: Author, review: &str) -> Result<(), PlanError> {
    confirm_at(tx, review, author.now_ms)
}

/// As [`confirm`], at a given time (an import keeps the original).
pub fn confirm_at(tx: &mut Transaction<'_>, review: &str, at_ms: i64) -> Result<(), PlanError> {
    migrate(tx)?;
    let map = root_map(tx, p::CONFIRMATIONS)?;
    tx.put(&map, review, ScalarValue::Timestamp(at_ms))?;
    Ok(())
}

/// Changes the display name (own document).
pub fn set_display_name(tx: &mut Transaction<'_>, name: &str) -> Result<(), PlanError> {
    migrate(tx)?;
    let profile = root_map(tx, schema::partner::PROFILE)?;
    tx.put(&profile, "display_name", name)?;
    Ok(())
}

/// The longest device name, in characters.
pub const MAX_DEVICE_NAME: usize = 60;

/// Names a device of this partner (own document), as the device lists and
/// messages show it.
pub fn name_device(tx: &mut Transaction<'_>, device: &str, name: &str) -> Result<(), PlanError> {
    migrate(tx)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(PlanError::Invalid { field: "device name", reason: "it is empty".into() });
    }
    check_text("device name", name, MAX_DEVICE_NAME)?;
    let profile = root_map(tx, schema::partner::PROFILE)?;
    let devices = match tx.get(&profile, schema::partner::DEVICES)? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => return Err(PlanError::Missing(schema::partner::DEVICES)),
    };
    tx.put(&devices, device, name)?;
    Ok(())
}

/// Finds the one id in `ids` that is `given` or ends with it (at least four
/// characters, any case), as people type the short ids views show.
pub fn resolve<'a>(
    section: Section,
    ids: impl IntoIterator<Item = &'a str>,
    given: &str,
) -> Result<String, PlanError> {
    let want = given.trim().to_ascii_uppercase();
    let not_found = || PlanError::NotFound { section: section.noun(), id: given.to_owned() };
    if want.len() < 4 {
        return Err(not_found());
    }
    let mut found: Vec<&str> = ids.into_iter().filter(|id| id.ends_with(&want)).collect();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(not_found()),
        _ if found.contains(&want.as_str()) => Ok(want),
        _ => Err(PlanError::Ambiguous { section: section.noun(), id: given.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::schema;
    use automerge::Automerge;

    fn author() -> Author {
        Author { partner: Partner::A, now_ms: 1_700_000_000_000 }
    }

    fn menu_item(doc: &mut Automerge) -> Result<String, PlanError> {
        let mut tx = doc.transaction();
        match add(&mut tx, author(), Section::Menu, vec![("title", Field::Str("Tea".into()))]) {
            Ok(id) => {
                tx.commit();
                Ok(id)
            }
            Err(error) => {
                tx.rollback();
                Err(error)
            }
        }
    }

    #[test]
    fn a_document_from_a_newer_schema_is_read_but_never_written() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        schema::genesis_shared(&mut tx, 0).unwrap();
        tx.commit();
        assert!(menu_item(&mut doc).is_ok(), "this version writes its own schema");

        let mut tx = doc.transaction();
        tx.put(ROOT, "schema", SCHEMA_VERSION + 1).unwrap();
        tx.commit();
        let before = doc.get_heads();
        match menu_item(&mut doc) {
            Err(PlanError::NewerSchema(v)) => assert_eq!(v, SCHEMA_VERSION + 1),
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert_eq!(doc.get_heads(), before, "nothing was written");
        let empty = Automerge::new();
        assert_eq!(crate::plan::read::plan(&doc, &empty, &empty).menu.len(), 1, "still read");
    }
}
