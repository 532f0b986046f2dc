//! The plan as typed values: what [`super::read`] builds from the
//! documents, what `--json` prints, and what a JSON export holds.
//!
//! Choices are stored in the documents as the kebab-case strings that
//! `--help` shows (`ask-me`, `check-on-me`), so that a document reads the
//! same in any tool.

use cove_shared::Partner;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A closed set of choices stored as strings.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// Every choice, in order.
    const ALL: &'static [Self];
    /// The stored spelling.
    fn as_str(self) -> &'static str;
    /// Parses the stored spelling.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl Choice for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// What a need is about.
    Domain {
        /// Feelings: reassurance, being heard.
        Emotional = "emotional",
        /// The body: warmth, water, rest.
        Physical = "physical",
        /// Thoughts: quiet, time to process.
        Mental = "mental",
    }
);

choice!(
    /// How firm a boundary is. Hard is the more restrictive.
    Firmness {
        /// Not to be crossed, not up for discussion in the moment.
        Hard = "hard",
        /// A strong preference that can be talked about.
        Soft = "soft",
    }
);

choice!(
    /// When a boundary applies.
    Scope {
        /// During the cooldown right after a session.
        Cooldown = "cooldown",
        /// During the debrief.
        Debrief = "debrief",
        /// At all times.
        Always = "always",
    }
);

choice!(
    /// Whether a boundary is in force. Only its owner can withdraw it.
    Status {
        /// In force.
        Active = "active",
        /// Withdrawn by its owner.
        Withdrawn = "withdrawn",
    }
);

choice!(
    /// The kind of an aftercare option.
    Category {
        /// Holding, cuddling, a hand to hold.
        Touch = "touch",
        /// Words and affirmation.
        Words = "words",
        /// Quiet or silence.
        Quiet = "quiet",
        /// A drink, a snack, water.
        Nourishment = "nourishment",
        /// Music, light, a blanket.
        Environment = "environment",
        /// Rest.
        Rest = "rest",
        /// Breathing together or alone.
        Breathing = "breathing",
    }
);

choice!(
    /// A partner's preference for a menu option.
    Preference {
        /// Welcome.
        Yes = "yes",
        /// Possibly.
        Maybe = "maybe",
        /// Ask in the moment before offering it.
        AskMe = "ask-me",
        /// Not wanted.
        No = "no",
    }
);

choice!(
    /// Whom a step of the sequence is for.
    ForWhom {
        /// Partner A.
        A = "a",
        /// Partner B.
        B = "b",
        /// Both partners.
        Both = "both",
    }
);

choice!(
    /// How a signal is given.
    SignalKind {
        /// A spoken word.
        Word = "word",
        /// A gesture.
        Gesture = "gesture",
        /// A button in the app (`cove signal`).
        Button = "button",
    }
);

choice!(
    /// What a signal means.
    Meaning {
        /// Stop everything, now: the safe word. It outranks every other
        /// signal until the partner acknowledges it.
        Stop = "stop",
        /// Pause what is happening.
        Pause = "pause",
        /// I need space.
        Space = "space",
        /// Reassure me.
        Reassure = "reassure",
        /// Stop this topic.
        StopTopic = "stop-topic",
        /// Check on me.
        CheckOnMe = "check-on-me",
        /// Something else, as described.
        Other = "other",
    }
);

/// How restrictive a consent-bearing value is: when two of the owner's
/// devices set different values concurrently, the highest rank is kept.
pub trait Restrictive: Choice {
    /// Higher is more restrictive.
    fn rank(self) -> u8;
    /// What an unreadable stored value counts as: the most restrictive.
    fn strictest() -> Self;
}

impl Restrictive for Firmness {
    fn rank(self) -> u8 {
        match self {
            Self::Soft => 0,
            Self::Hard => 1,
        }
    }
    fn strictest() -> Self {
        Self::Hard
    }
}

impl Restrictive for Status {
    /// A boundary stays in force until its owner withdraws it on purpose:
    /// a withdrawal that raced with keeping it is not taken.
    fn rank(self) -> u8 {
        match self {
            Self::Withdrawn => 0,
            Self::Active => 1,
        }
    }
    fn strictest() -> Self {
        Self::Active
    }
}

impl Restrictive for Preference {
    fn rank(self) -> u8 {
        match self {
            Self::Yes => 0,
            Self::Maybe => 1,
            Self::AskMe => 2,
            Self::No => 3,
        }
    }
    fn strictest() -> Self {
        Self::No
    }
}

/// Who made an item, and whether it is archived. Nothing in a plan is
/// deleted: archiving hides an item and `restore` brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// A ULID.
    pub id: String,
    /// When it was made (Unix milliseconds).
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Which partner made it.
    #[serde(default)]
    pub created_by: Option<Partner>,
    /// When it was archived (Unix milliseconds), if it is.
    #[serde(default)]
    pub archived_at: Option<i64>,
    /// Which partner archived it.
    #[serde(default)]
    pub archived_by: Option<Partner>,
}

impl ItemMeta {
    /// Whether the item is archived.
    pub fn archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// A need afterwards, in its partner's own document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// What it is about.
    pub domain: Option<Domain>,
    /// The need, in the partner's words.
    pub text: String,
    /// Preferred surroundings: light, sound, warmth, place.
    pub environment: Option<String>,
    /// 0 = space, 4 = full contact.
    pub closeness: Option<i64>,
    /// How they like to communicate then.
    pub communication: Option<String>,
}

/// A boundary, in its partner's own document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The statement, one string value: never merged character by character.
    pub statement: String,
    /// Hard or soft.
    pub firmness: Firmness,
    /// When it applies.
    pub scope: Scope,
    /// In force or withdrawn.
    pub status: Status,
}

/// An aftercare option on the shared menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// A short title.
    pub title: String,
    /// Its kind.
    pub category: Option<Category>,
    /// A description.
    pub description: Option<String>,
}

/// One step of the shared sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// What the step is.
    pub title: String,
    /// The menu option it uses, if any.
    pub option: Option<String>,
    /// Whom it is for.
    pub for_whom: ForWhom,
    /// Whether it may be skipped.
    pub optional: bool,
    /// Sort key: steps are ordered by position, then id.
    pub position: String,
}

/// A pre-agreed signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The word, gesture or button name; `cove signal NAME` sends it.
    pub name: String,
    /// How it is given.
    pub kind: Option<SignalKind>,
    /// What it means.
    pub meaning: Option<Meaning>,
    /// What the other partner does on receiving it.
    pub response: Option<String>,
}

/// One of the couple's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The term.
    pub term: String,
    /// What the couple means by it.
    pub meaning: String,
}

/// A debrief question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The question.
    pub text: String,
}

/// A later check-in, such as the next morning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaterCheckin {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// When: "the next morning", "two days later".
    pub when: String,
    /// What to ask or do.
    pub note: Option<String>,
    /// Hours after a session when it is due; see [`LATER_DEFAULT_HOURS`].
    #[serde(default)]
    pub after_hours: Option<i64>,
}

/// When a later check-in without `after_hours` is due: the next morning,
/// for a session in the evening.
pub const LATER_DEFAULT_HOURS: i64 = 12;

/// The check-in after a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkin {
    /// How long the check-in window lasts, in minutes.
    pub window_minutes: Option<i64>,
    /// The debrief questions.
    pub questions: Vec<Question>,
    /// Later check-ins.
    pub later: Vec<LaterCheckin>,
}

/// A de-escalation technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// A short name.
    pub title: String,
    /// How it goes.
    pub description: Option<String>,
}

/// A neutral space where a partner can collect their thoughts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The place.
    pub place: String,
    /// Whose space it is.
    pub for_whom: ForWhom,
}

/// De-escalation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deescalation {
    /// The time limit for reflection before talking again, in minutes.
    pub reflection_limit_minutes: Option<i64>,
    /// Techniques.
    pub techniques: Vec<Technique>,
    /// Neutral spaces.
    pub spaces: Vec<Space>,
}

/// One logged session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Who chose the aftercare this time.
    pub chosen_by: Option<Partner>,
    /// Menu options used (ids).
    pub options: Vec<String>,
    /// Steps done (ids).
    pub steps: Vec<String>,
    /// Shared notes (Automerge text).
    pub notes: String,
}

/// One review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Id and history.
    #[serde(flatten)]
    pub meta: ItemMeta,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// The heads of each document when it was recorded (hex change hashes),
    /// in document order: shared, partner-a, partner-b.
    pub heads: [Vec<String>; 3],
    /// What went well.
    pub wins: String,
    /// What to do differently.
    pub lessons: String,
    /// Anything else.
    pub notes: String,
}

/// Reviews: cadence and history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviews {
    /// Days between reviews.
    pub cadence_days: Option<i64>,
    /// The next review's day, `YYYY-MM-DD`.
    pub next_due: Option<String>,
    /// Past reviews, oldest first.
    pub history: Vec<Review>,
}

/// Everything in one partner's own document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerPlan {
    /// Which partner.
    pub partner: Partner,
    /// Their name as they chose it.
    pub display_name: Option<String>,
    /// Needs.
    pub needs: Vec<Need>,
    /// Boundaries.
    pub boundaries: Vec<Boundary>,
    /// Preference per menu option id.
    pub preferences: BTreeMap<String, Preference>,
    /// Debrief answers: session id, then question id, then the answer.
    pub debriefs: BTreeMap<String, BTreeMap<String, String>>,
    /// Reviews this partner confirmed: review id, then when (Unix ms).
    pub confirmations: BTreeMap<String, i64>,
}

/// Two of one partner's devices set a consent-bearing value differently at
/// the same time. The most restrictive value is in force; the owner sees
/// the conflict until they set the value again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Whose value it is.
    pub owner: Partner,
    /// The section: "boundaries" or "preferences".
    pub section: String,
    /// The item (a boundary id, or a menu option id for a preference).
    pub item: String,
    /// The field: "firmness", "status" or "preference".
    pub field: String,
    /// Every value set concurrently.
    pub values: Vec<String>,
    /// The value in force.
    pub kept: String,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The schema version of the shared document.
    pub schema: Option<i64>,
    /// When the plan was made (Unix milliseconds).
    pub created_at: Option<i64>,
    /// The menu.
    pub menu: Vec<MenuOption>,
    /// The sequence, in order.
    pub sequence: Vec<Step>,
    /// Signals.
    pub signals: Vec<Signal>,
    /// Vocabulary.
    pub vocabulary: Vec<Term>,
    /// The check-in.
    pub checkin: Checkin,
    /// De-escalation.
    pub deescalation: Deescalation,
    /// The session log, oldest first.
    pub sessions: Vec<Session>,
    /// Reviews.
    pub reviews: Reviews,
    /// Partner A's document, if it exists yet.
    pub a: Option<PartnerPlan>,
    /// Partner B's document, if it exists yet.
    pub b: Option<PartnerPlan>,
    /// Unresolved conflicts on consent-bearing values.
    pub conflicts: Vec<Conflict>,
    /// Preferences given for a menu option whose title, kind or description
    /// has changed since: they count as `ask-me` (or stricter) until their
    /// owner gives them again.
    #[serde(default)]
    pub changed_options: Vec<ChangedOption>,
    /// Ordinary values replaced by another set at the same time.
    #[serde(default)]
    pub replaced: Vec<super::replaced::Replaced>,
}

/// A preference whose option changed after it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedOption {
    /// Whose preference it is.
    pub owner: Partner,
    /// The menu option.
    pub option: String,
    /// The preference as given.
    pub given: Preference,
    /// What it counts as now.
    pub counts_as: Preference,
}

impl Plan {
    /// One partner's part.
    pub fn partner(&self, partner: Partner) -> Option<&PartnerPlan> {
        match partner {
            Partner::A => self.a.as_ref(),
            Partner::B => self.b.as_ref(),
        }
    }

    /// A partner's name for display: their chosen name, else "Partner A".
    pub fn name(&self, partner: Partner) -> String {
        self.partner(partner)
            .and_then(|p| p.display_name.clone())
            .unwrap_or_else(|| format!("Partner {partner}"))
    }

    /// Whether `partner` has confirmed review `review`.
    pub fn confirmed(&self, partner: Partner, review: &str) -> bool {
        self.partner(partner).is_some_and(|p| p.confirmations.contains_key(review))
    }

    /// The names of the partners who confirmed review `review`, A first.
    pub fn confirmed_by(&self, review: &str) -> Vec<String> {
        [Partner::A, Partner::B]
            .into_iter()
            .filter(|p| self.confirmed(*p, review))
            .map(|p| self.name(p))
            .collect()
    }

    /// Whose turn it is to choose the aftercare next: the partner who did
    /// not choose last time (A if nobody has chosen yet). Derived from the
    /// log, never stored.
    pub fn next_to_choose(&self) -> Partner {
        self.sessions
            .iter()
            .rev()
            .filter(|s| !s.meta.archived())
            .find_map(|s| s.chosen_by)
            .map_or(Partner::A, Partner::other)
    }
}
