//! The starter template (`cove init --template starter`): a menu, a
//! sequence, debrief questions, later check-ins, de-escalation techniques,
//! two signals and a 30-day review cadence, drawn from common aftercare
//! practice, for the couple to change, archive and add to.

use super::calendar::{format_day, today};
use super::ids::position_between;
use super::model::{Category, ForWhom, Meaning, SignalKind};
use super::schema::shared as s;
use super::write::{self, Author, Field, PlanError, Section};
use automerge::transaction::Transaction;

/// The templates `cove init --template` knows.
pub const TEMPLATES: [&str; 1] = ["starter"];

const MENU: &[(&str, Category, &str)] = &[
    ("Holding or cuddling", Category::Touch, "Close, calm physical contact, if both want it."),
    ("A hand to hold", Category::Touch, "Contact without being held."),
    ("Words of reassurance", Category::Words, "Simple, kind words: you are safe, I am here."),
    ("Quiet time together", Category::Quiet, "Being near each other without talking."),
    ("A glass of water", Category::Nourishment, "Within reach, without having to ask."),
    ("A small snack", Category::Nourishment, "Something light and familiar."),
    ("A warm blanket", Category::Environment, "Warmth and a sense of being covered."),
    ("Calm music", Category::Environment, "Low volume, chosen in advance."),
    ("Softer light", Category::Environment, "Dim the lights or use a lamp."),
    ("Rest lying down", Category::Rest, "A comfortable position for a while."),
    ("Slow breathing together", Category::Breathing, "A few minutes of slow, even breaths."),
];

/// The sequence: titles of menu options, in order, and whether optional.
const SEQUENCE: &[(&str, bool)] = &[
    ("Holding or cuddling", false),
    ("A glass of water", false),
    ("A small snack", true),
    ("Rest lying down", false),
    ("Slow breathing together", true),
];

const QUESTIONS: &[&str] = &[
    "What helped you, and what would you prefer next time?",
    "Was there anything that did not feel right, during or after?",
    "How are you feeling now, physically and emotionally?",
];

const LATER: &[(&str, &str)] = &[
    ("the next morning", "A short check-in: how are you feeling today?"),
    ("two days later", "Anything that came up since? Any low mood?"),
];

const TECHNIQUES: &[(&str, &str)] = &[
    ("Pause and breathe", "Stop, take five slow breaths each, then decide together how to go on."),
    ("Take space", "Each goes to a neutral space for the agreed time, then meets again."),
    ("Name the feeling", "Each says in one sentence what they feel, without explaining it yet."),
    ("Come back later", "Agree a time to talk again, and keep it."),
];

const SIGNALS: &[(&str, Meaning, &str)] = &[
    ("red", Meaning::Stop, "Stop everything at once, then check in."),
    ("yellow", Meaning::CheckOnMe, "Slow down and ask how I am."),
];

/// Writes the starter template into the shared document.
pub fn starter(tx: &mut Transaction<'_>, author: Author) -> Result<(), PlanError> {
    // One millisecond apart, so that ids (and lists) keep the template's order.
    let start = author;
    let mut clock = start.now_ms;
    let mut author = move || {
        clock += 1;
        Author { now_ms: clock, ..start }
    };
    let mut options = Vec::new();
    for (title, category, description) in MENU {
        let id = write::add(
            tx,
            author(),
            Section::Menu,
            vec![
                ("title", Field::Str((*title).to_owned())),
                ("category", Field::choice(*category)),
                ("description", Field::Str((*description).to_owned())),
            ],
        )?;
        options.push((*title, id));
    }
    let mut position: Option<String> = None;
    for (title, optional) in SEQUENCE {
        let next = position_between(position.as_deref(), None);
        let mut fields = vec![
            ("title", Field::Str((*title).to_owned())),
            ("for", Field::choice(ForWhom::Both)),
            ("optional", Field::Bool(*optional)),
            ("position", Field::Str(next.clone())),
        ];
        if let Some((_, id)) = options.iter().find(|(t, _)| t == title) {
            fields.push(("option", Field::Str(id.clone())));
        }
        write::add(tx, author(), Section::Sequence, fields)?;
        position = Some(next);
    }
    for text in QUESTIONS {
        write::add(
            tx,
            author(),
            Section::Questions,
            vec![("text", Field::Str((*text).to_owned()))],
        )?;
    }
    for (when, note) in LATER {
        let fields = vec![
            ("when", Field::Str((*when).to_owned())),
            ("note", Field::Str((*note).to_owned())),
        ];
        write::add(tx, author(), Section::Later, fields)?;
    }
    for (title, description) in TECHNIQUES {
        let fields = vec![
            ("title", Field::Str((*title).to_owned())),
            ("description", Field::Str((*description).to_owned())),
        ];
        write::add(tx, author(), Section::Techniques, fields)?;
    }
    for (name, meaning, response) in SIGNALS {
        let fields = vec![
            ("name", Field::Str((*name).to_owned())),
            ("kind", Field::choice(SignalKind::Word)),
            ("meaning", Field::choice(*meaning)),
            ("response", Field::Str((*response).to_owned())),
        ];
        write::add(tx, author(), Section::Signals, fields)?;
    }
    write::set_setting(tx, s::CHECKIN, "window_minutes", Field::Int(30))?;
    write::set_setting(tx, s::DEESCALATION, "reflection_limit_minutes", Field::Int(30))?;
    write::set_setting(tx, s::REVIEWS, "cadence_days", Field::Int(30))?;
    let next = format_day(today(start.now_ms) + 30);
    write::set_setting(tx, s::REVIEWS, "next_due", Field::Str(next))?;
    Ok(())
}
