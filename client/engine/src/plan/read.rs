//! Reading the plan out of its documents.
//!
//! Reading never fails on a value it does not expect: a missing or
//! malformed field reads as absent, and a consent-bearing value that cannot
//! be read counts as its most restrictive value.

use super::fields::{boundary, later, menu, need, question, signal, space, step, technique, term};
use super::ids;
use super::model::{
    Boundary, ChangedOption, Checkin, Choice, Conflict, Deescalation, ItemMeta, LaterCheckin,
    MenuOption, Need, PartnerPlan, Plan, Preference, Question, Restrictive, Review, Reviews,
    Session, Signal, Space, Step, Technique, Term,
};
use super::schema::{partner as p, shared as s};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, Value};
use cove_shared::Partner;
use std::collections::BTreeMap;

/// Reads the whole plan from the three documents.
pub fn plan(shared: &Automerge, a_doc: &Automerge, b_doc: &Automerge) -> Plan {
    let r = Reader(shared);
    let mut conflicts = Vec::new();
    let mut a = partner_plan(a_doc, Partner::A, &mut conflicts);
    let mut b = partner_plan(b_doc, Partner::B, &mut conflicts);
    let menu: Vec<MenuOption> = r.items(r.map(&ROOT, s::MENU), menu_option);
    let mut changed_options = Vec::new();
    for (part, doc) in [(&mut a, a_doc), (&mut b, b_doc)] {
        if let Some(part) = part.as_mut() {
            changed_options.extend(hold_changed_preferences(part, doc, &menu));
        }
    }
    let checkin = r.map(&ROOT, s::CHECKIN);
    let deescalation = r.map(&ROOT, s::DEESCALATION);
    let reviews = r.map(&ROOT, s::REVIEWS);
    let mut sequence: Vec<Step> = r.items(r.map(&ROOT, s::SEQUENCE), step);
    sequence.sort_by(|x, y| (&x.position, &x.meta.id).cmp(&(&y.position, &y.meta.id)));
    let mut sessions: Vec<Session> = r.items(r.map(&ROOT, s::SESSIONS), session);
    sessions.sort_by(|x, y| (&x.date, &x.meta.id).cmp(&(&y.date, &y.meta.id)));
    let mut history: Vec<Review> =
        r.items(reviews.as_ref().and_then(|m| r.map(m, s::HISTORY)), review);
    history.sort_by(|x, y| (&x.date, &x.meta.id).cmp(&(&y.date, &y.meta.id)));
    Plan {
        schema: r.int(&ROOT, "schema"),
        created_at: r.map(&ROOT, s::META).and_then(|m| r.time(&m, "created_at")),
        menu,
        sequence,
        signals: r.items(r.map(&ROOT, s::SIGNALS), signal),
        vocabulary: r.items(r.map(&ROOT, s::VOCABULARY), term),
        checkin: Checkin {
            window_minutes: checkin.as_ref().and_then(|m| r.int(m, "window_minutes")),
            questions: r.items(checkin.as_ref().and_then(|m| r.map(m, s::QUESTIONS)), question),
            later: r.items(checkin.as_ref().and_then(|m| r.map(m, s::LATER)), later),
        },
        deescalation: Deescalation {
            reflection_limit_minutes: deescalation
                .as_ref()
                .and_then(|m| r.int(m, "reflection_limit_minutes")),
            techniques: r
                .items(deescalation.as_ref().and_then(|m| r.map(m, s::TECHNIQUES)), technique),
            spaces: r.items(deescalation.as_ref().and_then(|m| r.map(m, s::SPACES)), space),
        },
        sessions,
        reviews: Reviews {
            // Written by either partner's device: only a sensible cadence counts.
            cadence_days: reviews
                .as_ref()
                .and_then(|m| r.int(m, "cadence_days"))
                .filter(|d| (1..=366).contains(d)),
            next_due: reviews.as_ref().and_then(|m| r.str(m, "next_due")),
            history,
        },
        a,
        b,
        conflicts,
        changed_options,
        replaced: super::replaced::find(shared, a_doc, b_doc),
    }
}

/// A digest of what a menu option says, kept with each preference: if the
/// other partner retitles or redescribes an option, a preference given for
/// what it said before must not carry over to what it says now.
pub fn option_basis(option: &MenuOption) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"cove/v1/plan/option\0");
    for part in [
        option.title.as_str(),
        option.category.map_or("", Choice::as_str),
        option.description.as_deref().unwrap_or(""),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Each preference given for an option that has changed since counts as
/// `ask-me` or stricter; returns those, for the owner to give again.
fn hold_changed_preferences(
    part: &mut PartnerPlan,
    doc: &Automerge,
    menu: &[MenuOption],
) -> Vec<ChangedOption> {
    let r = Reader(doc);
    let basis = r.map(&ROOT, p::PREFERENCE_BASIS);
    let mut out = Vec::new();
    for (option, value) in part.preferences.iter_mut() {
        let Some(current) = menu.iter().find(|m| &m.meta.id == option) else { continue };
        let given = basis.as_ref().and_then(|m| r.str(m, option));
        if given.as_deref() == Some(option_basis(current).as_str()) {
            continue;
        }
        let counts_as =
            if value.rank() >= Preference::AskMe.rank() { *value } else { Preference::AskMe };
        out.push(ChangedOption {
            owner: part.partner,
            option: option.clone(),
            given: *value,
            counts_as,
        });
        *value = counts_as;
    }
    out
}

fn partner_plan(
    doc: &Automerge,
    partner: Partner,
    conflicts: &mut Vec<Conflict>,
) -> Option<PartnerPlan> {
    let r = Reader(doc);
    r.int(&ROOT, "schema")?;
    let mut boundaries = Vec::new();
    for (id, obj) in r.entries(r.map(&ROOT, p::BOUNDARIES)) {
        let Some(statement) = r.str(&obj, boundary::STATEMENT.key) else { continue };
        let firmness =
            r.consent(&obj, boundary::FIRMNESS.key, partner, "boundaries", &id, conflicts);
        let status = r.consent(&obj, boundary::STATUS.key, partner, "boundaries", &id, conflicts);
        boundaries.push(Boundary {
            meta: r.meta(&obj, &id),
            statement,
            firmness,
            scope: r.choice(&obj, boundary::SCOPE.key).unwrap_or(super::model::Scope::Always),
            status,
        });
    }
    let mut preferences = BTreeMap::new();
    if let Some(map) = r.map(&ROOT, p::PREFERENCES) {
        for option in r.ids(&map) {
            let value = r.consent(&map, &option, partner, "preferences", &option, conflicts);
            preferences.insert(option, value);
        }
    }
    let mut debriefs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(map) = r.map(&ROOT, p::DEBRIEFS) {
        for key in doc.keys(&map) {
            // Flat keys, "session/question": no map to create concurrently.
            let (Some((session, question)), Some(answer)) =
                (key.split_once('/'), r.str(&map, &key))
            else {
                continue;
            };
            if !ids::is_id(session) || !ids::is_id(question) {
                continue;
            }
            debriefs.entry(session.to_owned()).or_default().insert(question.to_owned(), answer);
        }
    }
    let mut confirmations = BTreeMap::new();
    if let Some(map) = r.map(&ROOT, p::CONFIRMATIONS) {
        for key in r.ids(&map) {
            if let Some(at) = r.time(&map, &key) {
                confirmations.insert(key, at);
            }
        }
    }
    Some(PartnerPlan {
        partner,
        display_name: r.map(&ROOT, p::PROFILE).and_then(|m| r.str(&m, "display_name")),
        needs: r.items(r.map(&ROOT, p::NEEDS), need),
        boundaries,
        preferences,
        debriefs,
        confirmations,
    })
}

fn need(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Need> {
    Some(Need {
        meta,
        domain: r.choice(obj, need::DOMAIN.key),
        text: r.str(obj, need::TEXT.key)?,
        environment: r.str(obj, need::ENVIRONMENT.key),
        closeness: r.int(obj, need::CLOSENESS.key),
        communication: r.str(obj, need::COMMUNICATION.key),
    })
}

fn menu_option(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<MenuOption> {
    Some(MenuOption {
        meta,
        title: r.str(obj, menu::TITLE.key)?,
        category: r.choice(obj, menu::CATEGORY.key),
        description: r.str(obj, menu::DESCRIPTION.key),
    })
}

fn step(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Step> {
    Some(Step {
        meta,
        title: r.str(obj, step::TITLE.key)?,
        option: r.str(obj, step::OPTION.key).filter(|o| ids::is_id(o)),
        for_whom: r.choice(obj, step::FOR.key).unwrap_or(super::model::ForWhom::Both),
        optional: r.bool(obj, step::OPTIONAL.key).unwrap_or(false),
        position: r.str(obj, step::POSITION.key).unwrap_or_default(),
    })
}

fn signal(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Signal> {
    Some(Signal {
        meta,
        name: r.str(obj, signal::NAME.key)?,
        kind: r.choice(obj, signal::KIND.key),
        meaning: r.choice(obj, signal::MEANING.key),
        response: r.str(obj, signal::RESPONSE.key),
    })
}

fn term(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Term> {
    Some(Term {
        meta,
        term: r.str(obj, term::TERM.key)?,
        meaning: r.str(obj, term::MEANING.key).unwrap_or_default(),
    })
}

fn question(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Question> {
    Some(Question { meta, text: r.str(obj, question::TEXT.key)? })
}

fn later(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<LaterCheckin> {
    Some(LaterCheckin {
        meta,
        when: r.str(obj, later::WHEN.key)?,
        note: r.str(obj, later::NOTE.key),
        // Whatever the other partner's device wrote, within the bounds.
        after_hours: r.int(obj, later::AFTER_HOURS.key).map(|h| h.clamp(1, 336)),
    })
}

fn technique(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Technique> {
    Some(Technique {
        meta,
        title: r.str(obj, technique::TITLE.key)?,
        description: r.str(obj, technique::DESCRIPTION.key),
    })
}

fn space(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Space> {
    Some(Space {
        meta,
        place: r.str(obj, space::PLACE.key)?,
        for_whom: r.choice(obj, space::FOR.key).unwrap_or(super::model::ForWhom::Both),
    })
}

fn session(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Session> {
    let set = |key: &str| -> Vec<String> {
        r.map(obj, key).map(|m| r.ids(&m).collect()).unwrap_or_default()
    };
    Some(Session {
        meta,
        date: r.str(obj, "date")?,
        chosen_by: r.str(obj, "chosen_by").and_then(|s| partner_from(&s)),
        options: set("options"),
        steps: set("steps"),
        notes: r.text(obj, "notes"),
    })
}

fn review(r: &Reader<'_>, obj: &ObjId, meta: ItemMeta) -> Option<Review> {
    let heads = |key: &str| -> Vec<String> {
        r.str(obj, key)
            .map(|s| s.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    Some(Review {
        meta,
        date: r.str(obj, "date")?,
        heads: [heads("heads_shared"), heads("heads_a"), heads("heads_b")],
        wins: r.text(obj, "wins"),
        lessons: r.text(obj, "lessons"),
        notes: r.text(obj, "notes"),
    })
}

/// "a" or "b", as documents store a partner.
pub fn partner_from(s: &str) -> Option<Partner> {
    match s {
        "a" => Some(Partner::A),
        "b" => Some(Partner::B),
        _ => None,
    }
}

/// Typed reads from one document.
pub(crate) struct Reader<'a>(pub(crate) &'a Automerge);

impl Reader<'_> {
    fn value(&self, obj: &ObjId, key: &str) -> Option<Value<'_>> {
        self.0.get(obj, key).ok().flatten().map(|(v, _)| v)
    }

    pub(crate) fn map(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        match self.0.get(obj, key).ok().flatten()? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        }
    }

    pub(crate) fn str(&self, obj: &ObjId, key: &str) -> Option<String> {
        self.value(obj, key)?.as_str().map(str::to_owned)
    }

    fn int(&self, obj: &ObjId, key: &str) -> Option<i64> {
        self.value(obj, key)?.as_i64()
    }

    fn time(&self, obj: &ObjId, key: &str) -> Option<i64> {
        match self.value(obj, key)? {
            Value::Scalar(s) => match s.as_ref() {
                automerge::ScalarValue::Timestamp(t) | automerge::ScalarValue::Int(t) => Some(*t),
                _ => None,
            },
            Value::Object(_) => None,
        }
    }

    fn bool(&self, obj: &ObjId, key: &str) -> Option<bool> {
        self.value(obj, key)?.as_bool()
    }

    fn text(&self, obj: &ObjId, key: &str) -> String {
        match self.0.get(obj, key).ok().flatten() {
            Some((Value::Object(ObjType::Text), id)) => self.0.text(&id).unwrap_or_default(),
            Some((v, _)) => v.as_str().map(str::to_owned).unwrap_or_default(),
            None => String::new(),
        }
    }

    fn choice<C: Choice>(&self, obj: &ObjId, key: &str) -> Option<C> {
        C::parse(&self.str(obj, key)?)
    }

    /// A consent-bearing value: of every value set concurrently, the most
    /// restrictive; a conflict is recorded when they differ.
    fn consent<C: Restrictive>(
        &self,
        obj: &ObjId,
        key: &str,
        owner: Partner,
        section: &str,
        item: &str,
        conflicts: &mut Vec<Conflict>,
    ) -> C {
        let values: Vec<C> = self
            .0
            .get_all(obj, key)
            .unwrap_or_default()
            .into_iter()
            .map(|(v, _)| v.as_str().and_then(C::parse).unwrap_or_else(C::strictest))
            .collect();
        let kept = values.iter().copied().max_by_key(|v| v.rank()).unwrap_or_else(C::strictest);
        let mut distinct: Vec<C> = values.clone();
        distinct.sort_by_key(|v| v.rank());
        distinct.dedup();
        if distinct.len() > 1 {
            conflicts.push(Conflict {
                owner,
                section: section.to_owned(),
                item: item.to_owned(),
                field: if section == "preferences" { "preference".into() } else { key.to_owned() },
                values: distinct.iter().map(|v| v.as_str().to_owned()).collect(),
                kept: kept.as_str().to_owned(),
            });
        }
        kept
    }

    /// The items of `map`. A key that is not an item id (which only a
    /// modified client writes) is left out: ids go into commands and the
    /// web page's addresses, so one such as `x/../../boundary/ID` must never
    /// reach them.
    pub(crate) fn entries(&self, map: Option<ObjId>) -> Vec<(String, ObjId)> {
        let Some(map) = map else { return Vec::new() };
        self.0
            .map_range(&map, ..)
            .filter_map(|item| match item.value {
                automerge::ValueRef::Object(ObjType::Map) if ids::is_id(&item.key) => {
                    Some((item.key.to_string(), item.id()))
                }
                _ => None,
            })
            .collect()
    }

    /// The keys of `map` that are item ids (see `entries`).
    fn ids(&self, map: &ObjId) -> impl Iterator<Item = String> {
        self.0.keys(map).filter(|k| ids::is_id(k))
    }

    pub(crate) fn meta(&self, obj: &ObjId, id: &str) -> ItemMeta {
        ItemMeta {
            id: id.to_owned(),
            created_at: self.time(obj, "created_at"),
            created_by: self.str(obj, "created_by").and_then(|s| partner_from(&s)),
            archived_at: self.time(obj, "archived_at"),
            archived_by: self.str(obj, "archived_by").and_then(|s| partner_from(&s)),
        }
    }

    fn items<T>(
        &self,
        map: Option<ObjId>,
        read: impl Fn(&Self, &ObjId, ItemMeta) -> Option<T>,
    ) -> Vec<T> {
        self.entries(map)
            .into_iter()
            .filter_map(|(id, obj)| read(self, &obj, self.meta(&obj, &id)))
            .collect()
    }
}
