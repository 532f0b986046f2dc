//! One table per plan section: for each field, its key in the document (the
//! command line's flag is `--` and the key), its key in an item's JSON, the
//! label people see, its kind, whether an item needs it, its default, and
//! how a value is normalised. Writes ([`prepare`], called by `write::add` and
//! `write::update`), reads, both faces and the export take fields from
//! here, so that a field is described once.

use super::model::{Category, Choice, Domain, Firmness, ForWhom, Meaning, Scope, SignalKind};
use super::write::{Field, PlanError, Section};

/// How a field's value is given.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text, one value.
    Text,
    /// One of a closed set; the function lists the stored spellings.
    Choice(fn() -> Vec<&'static str>),
    /// A whole number from `min` to `max`.
    Int {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// Yes or no.
    Bool,
    /// Set by the engine itself (a position, a reference, a status that a
    /// dedicated action changes): never shown as a form field or flag.
    Internal,
}

/// One field of a section.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The key in the document (and in a form).
    pub key: &'static str,
    /// The key in an item's JSON, where it differs from `key`.
    pub json: &'static str,
    /// The label people see.
    pub label: &'static str,
    /// How it is given.
    pub kind: Kind,
    /// Whether an item cannot be without it.
    pub required: bool,
    /// The stored value an added item gets when none is given.
    pub default: Option<&'static str>,
}

impl Spec {
    /// Whether people set it (a form field, a flag).
    pub fn shown(&self) -> bool {
        !matches!(self.kind, Kind::Internal)
    }
}

fn names<C: Choice>() -> Vec<&'static str> {
    C::ALL.iter().map(|c| c.as_str()).collect()
}

const fn text(key: &'static str, label: &'static str) -> Spec {
    Spec { key, json: key, label, kind: Kind::Text, required: false, default: None }
}

const fn needed(spec: Spec) -> Spec {
    Spec { required: true, ..spec }
}

const fn choice(key: &'static str, label: &'static str, of: fn() -> Vec<&'static str>) -> Spec {
    Spec { kind: Kind::Choice(of), ..text(key, label) }
}

const fn internal(key: &'static str) -> Spec {
    Spec { kind: Kind::Internal, ..text(key, "") }
}

/// Needs (the partner's own document).
pub mod need {
    use super::*;
    /// The need.
    pub const TEXT: Spec = needed(text("text", "The need, in your words"));
    /// What it is about.
    pub const DOMAIN: Spec = choice("domain", "About", names::<Domain>);
    /// Light, sound, warmth, place.
    pub const ENVIRONMENT: Spec = text("environment", "Surroundings (light, sound, warmth, place)");
    /// How close to be.
    pub const CLOSENESS: Spec = Spec {
        kind: Kind::Int { min: 0, max: 4 },
        ..text("closeness", "Closeness (0 = space, 4 = full contact)")
    };
    /// How they like to communicate.
    pub const COMMUNICATION: Spec = text("communication", "How you like to communicate then");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TEXT, DOMAIN, ENVIRONMENT, CLOSENESS, COMMUNICATION];
}

/// Boundaries (the partner's own document).
pub mod boundary {
    use super::*;
    /// The boundary.
    pub const STATEMENT: Spec = needed(text("statement", "The boundary, in your words"));
    /// Hard or soft; hard unless said otherwise.
    pub const FIRMNESS: Spec =
        Spec { default: Some("hard"), ..choice("firmness", "Firmness", names::<Firmness>) };
    /// When it applies; always unless said otherwise.
    pub const SCOPE: Spec =
        Spec { default: Some("always"), ..choice("scope", "When it applies", names::<Scope>) };
    /// Active or withdrawn: changed by withdrawing or reinstating.
    pub const STATUS: Spec = Spec { default: Some("active"), ..internal("status") };
    /// Every field, in order.
    pub const ALL: &[Spec] = &[STATEMENT, FIRMNESS, SCOPE, STATUS];
}

/// The menu of options.
pub mod menu {
    use super::*;
    /// Its title.
    pub const TITLE: Spec = needed(text("title", "Title"));
    /// Its kind.
    pub const CATEGORY: Spec = choice("category", "Kind", names::<Category>);
    /// What it is.
    pub const DESCRIPTION: Spec = text("description", "Description");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TITLE, CATEGORY, DESCRIPTION];
}

/// The sequence of steps.
pub mod step {
    use super::*;
    /// Its name (or taken from the menu option it uses).
    pub const TITLE: Spec = needed(text("title", "Name of the step"));
    /// Who it is for; both unless said otherwise.
    pub const FOR: Spec =
        Spec { json: "for_whom", default: Some("both"), ..choice("for", "For", names::<ForWhom>) };
    /// Whether it may be skipped.
    pub const OPTIONAL: Spec = Spec { kind: Kind::Bool, ..text("optional", "Optional") };
    /// The menu option it uses, if any (by id).
    pub const OPTION: Spec = internal("option");
    /// Where it stands in the order.
    pub const POSITION: Spec = internal("position");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TITLE, FOR, OPTIONAL, OPTION, POSITION];
}

/// Signals.
pub mod signal {
    use super::*;
    /// The word, gesture or button, as written ("Tap twice"); compared
    /// without regard to case (see [`crate::plan::signals`]).
    pub const NAME: Spec = needed(text("name", "Word, gesture or button name"));
    /// How it is given.
    pub const KIND: Spec = choice("kind", "How it is given", names::<SignalKind>);
    /// What it means.
    pub const MEANING: Spec = choice("meaning", "What it means", names::<Meaning>);
    /// What the other partner does.
    pub const RESPONSE: Spec = text("response", "What the other partner does");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[NAME, KIND, MEANING, RESPONSE];
}

/// The couple's vocabulary.
pub mod term {
    use super::*;
    /// The term.
    pub const TERM: Spec = needed(text("term", "Term"));
    /// What the couple means by it.
    pub const MEANING: Spec = text("meaning", "What we mean by it");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TERM, MEANING];
}

/// The debrief questions.
pub mod question {
    use super::*;
    /// The question.
    pub const TEXT: Spec = needed(text("text", "Question"));
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TEXT];
}

/// Later check-ins.
pub mod later {
    use super::*;
    /// When.
    pub const WHEN: Spec = needed(text("when", "When"));
    /// What to ask or do.
    pub const NOTE: Spec = text("note", "What to ask or do");
    /// How many hours after a session it is due (a reminder then); when
    /// not given, [`crate::plan::model::LATER_DEFAULT_HOURS`].
    pub const AFTER_HOURS: Spec = Spec {
        kind: Kind::Int { min: 1, max: 336 },
        ..text("after_hours", "Hours after a session (for the reminder)")
    };
    /// Every field, in order.
    pub const ALL: &[Spec] = &[WHEN, NOTE, AFTER_HOURS];
}

/// De-escalation techniques.
pub mod technique {
    use super::*;
    /// Its name.
    pub const TITLE: Spec = needed(text("title", "Technique"));
    /// How it goes.
    pub const DESCRIPTION: Spec = text("description", "How it goes");
    /// Every field, in order.
    pub const ALL: &[Spec] = &[TITLE, DESCRIPTION];
}

/// Neutral spaces.
pub mod space {
    use super::*;
    /// The place.
    pub const PLACE: Spec = needed(text("place", "Place"));
    /// Whose space it is; both unless said otherwise.
    pub const FOR: Spec = Spec {
        json: "for_whom",
        default: Some("both"),
        ..choice("for", "Whose space", names::<ForWhom>)
    };
    /// Every field, in order.
    pub const ALL: &[Spec] = &[PLACE, FOR];
}

/// A section's fields, in order; none for the session log and reviews,
/// whose items are written by their own actions.
pub fn of(section: Section) -> &'static [Spec] {
    match section {
        Section::Needs => need::ALL,
        Section::Boundaries => boundary::ALL,
        Section::Menu => menu::ALL,
        Section::Sequence => step::ALL,
        Section::Signals => signal::ALL,
        Section::Vocabulary => term::ALL,
        Section::Questions => question::ALL,
        Section::Later => later::ALL,
        Section::Techniques => technique::ALL,
        Section::Spaces => space::ALL,
        Section::Sessions | Section::Reviews => &[],
    }
}

/// The field of `section` stored under `key`.
pub fn spec(section: Section, key: &str) -> Option<&'static Spec> {
    of(section).iter().find(|s| s.key == key)
}

/// Fields as the table says they are stored: text normalised (a blank one
/// is a clearing), choices and numbers checked; a required field may not
/// be cleared; and, when `adding`, every required field must be there and
/// a field with a default gets it. Keys the table does not know pass as
/// they are (the session log and reviews have no table).
pub fn prepare(
    section: Section,
    given: Vec<(&'static str, Field)>,
    adding: bool,
) -> Result<Vec<(&'static str, Field)>, PlanError> {
    let mut out = Vec::with_capacity(given.len() + 2);
    for (key, field) in given {
        let Some(spec) = spec(section, key) else {
            out.push((key, field));
            continue;
        };
        let field = normalise(spec, field)?;
        if spec.required && field == Field::Clear {
            return Err(PlanError::Required { section: section.noun(), label: spec.label, key });
        }
        out.push((key, field));
    }
    if adding {
        for spec in of(section) {
            let present = out.iter().any(|(k, f)| *k == spec.key && *f != Field::Clear);
            if present {
                continue;
            }
            if spec.required {
                return Err(PlanError::Required {
                    section: section.noun(),
                    label: spec.label,
                    key: spec.key,
                });
            }
            if let Some(default) = spec.default {
                out.push((spec.key, Field::Choice(default)));
            }
        }
    }
    Ok(out)
}

fn normalise(spec: &Spec, field: Field) -> Result<Field, PlanError> {
    Ok(match (spec.kind, field) {
        (_, Field::Str(v)) => {
            let v = v.trim();
            if v.is_empty() { Field::Clear } else { Field::Str(v.to_owned()) }
        }
        (Kind::Choice(of), Field::Choice(v)) => match of().into_iter().find(|c| *c == v) {
            Some(c) => Field::Choice(c),
            None => {
                return Err(PlanError::NotAChoice { label: spec.label, choices: of().join(", ") });
            }
        },
        (Kind::Int { min, max }, Field::Int(v)) => {
            if !(min..=max).contains(&v) {
                return Err(PlanError::OutOfRange { label: spec.label, min, max });
            }
            Field::Int(v)
        }
        (_, other) => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::items::rows;
    use crate::plan::{read, schema, write};
    use automerge::Automerge;
    use cove_shared::Partner;

    /// The three documents, made as a new plan makes them.
    fn documents() -> [Automerge; 3] {
        let mut shared = Automerge::new();
        let mut tx = shared.transaction();
        schema::genesis_shared(&mut tx, 1_000).unwrap();
        tx.commit();
        let partner = |name: &str| {
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            schema::genesis_partner(&mut tx, name).unwrap();
            tx.commit();
            doc
        };
        [shared, partner("Alex"), partner("Sam")]
    }

    const ALEX: write::Author = write::Author { partner: Partner::A, now_ms: 2_000 };

    /// Adds an item of `section` to the documents; returns its JSON.
    fn add(
        docs: &mut [Automerge; 3],
        section: Section,
        fields: Vec<(&'static str, Field)>,
    ) -> Result<serde_json::Value, PlanError> {
        let doc = &mut docs[usize::from(section.doc(Partner::A).code())];
        let mut tx = doc.transaction();
        let id = write::add(&mut tx, ALEX, section, fields)?;
        tx.commit();
        let plan = read::plan(&docs[0], &docs[1], &docs[2]);
        let row = rows(&plan, section)
            .into_iter()
            .find(|r| r.item.get("id").and_then(|v| v.as_str()) == Some(id.as_str()))
            .expect("the item reads back");
        Ok(row.item)
    }

    const SECTIONS: [Section; 10] = [
        Section::Needs,
        Section::Boundaries,
        Section::Menu,
        Section::Sequence,
        Section::Signals,
        Section::Vocabulary,
        Section::Questions,
        Section::Later,
        Section::Techniques,
        Section::Spaces,
    ];

    /// Every section, through its table: each field written is read back
    /// under its JSON key, normalised; left out, a field takes its default;
    /// an item without a required field is refused, and so is clearing it.
    #[test]
    fn every_section_goes_through_its_table() {
        let mut docs = documents();
        for section in SECTIONS {
            let specs = of(section);
            assert!(!specs.is_empty(), "{section:?} has a table");
            // Every shown field, with a value of its kind.
            let mut given = Vec::new();
            let mut expected = Vec::new();
            for spec in specs.iter().filter(|s| s.shown()) {
                let (field, read_back) = match spec.kind {
                    Kind::Text => {
                        let text = format!("  Some {} ", spec.key.to_uppercase());
                        let stored = text.trim().to_owned();
                        (Field::Str(text), serde_json::json!(stored))
                    }
                    Kind::Choice(of) => {
                        let last = *of().last().unwrap();
                        (Field::Choice(last), serde_json::json!(last))
                    }
                    Kind::Int { max, .. } => (Field::Int(max), serde_json::json!(max)),
                    Kind::Bool => (Field::Bool(true), serde_json::json!(true)),
                    Kind::Internal => unreachable!("not shown"),
                };
                given.push((spec.key, field));
                expected.push((spec.json, read_back));
            }
            let item = add(&mut docs, section, given).unwrap();
            for (json, value) in expected {
                assert_eq!(item.get(json), Some(&value), "{section:?}.{json} in {item}");
            }

            // Only what is required: the defaults fill the rest.
            let required: Vec<(&'static str, Field)> = specs
                .iter()
                .filter(|s| s.required)
                .map(|s| (s.key, Field::Str("needed".into())))
                .collect();
            let item = add(&mut docs, section, required.clone()).unwrap();
            for spec in specs.iter().filter(|s| s.default.is_some()) {
                assert_eq!(
                    item.get(spec.json).and_then(|v| v.as_str()),
                    spec.default,
                    "{section:?}.{} defaults",
                    spec.key
                );
            }

            // Without a required field, or clearing one: refused.
            for spec in specs.iter().filter(|s| s.required) {
                let without: Vec<_> =
                    required.iter().filter(|(k, _)| *k != spec.key).cloned().collect();
                let refused = add(&mut docs, section, without);
                assert!(matches!(refused, Err(PlanError::Required { key, .. }) if key == spec.key));
                let blank: Vec<_> = required
                    .iter()
                    .map(|(k, f)| {
                        if *k == spec.key {
                            (*k, Field::Str("   ".into()))
                        } else {
                            (*k, f.clone())
                        }
                    })
                    .collect();
                assert!(matches!(add(&mut docs, section, blank), Err(PlanError::Required { .. })));
                let cleared = prepare(section, vec![(spec.key, Field::Clear)], false);
                assert!(matches!(cleared, Err(PlanError::Required { .. })), "{section:?}");
            }
        }
    }

    #[test]
    fn values_outside_a_fields_kind_are_refused() {
        let closeness = prepare(Section::Needs, vec![(need::CLOSENESS.key, Field::Int(5))], false);
        assert!(matches!(closeness, Err(PlanError::OutOfRange { min: 0, max: 4, .. })));
        let firmness = prepare(
            Section::Boundaries,
            vec![(boundary::FIRMNESS.key, Field::Choice("firm"))],
            false,
        );
        let refused = firmness.unwrap_err().to_string();
        assert_eq!(refused, "\u{201c}Firmness\u{201d} takes one of: hard, soft");
        // The session log has no table: its fields pass as given.
        let log = prepare(Section::Sessions, vec![("date", Field::Str(" x ".into()))], true);
        assert_eq!(log.unwrap(), vec![("date", Field::Str(" x ".into()))]);
    }
}
