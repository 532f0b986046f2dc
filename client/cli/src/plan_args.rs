//! Flags of `cove plan ...`: one subcommand per section, each with add,
//! edit, archive, restore and list.

use clap::{Args, Subcommand};
use cove_client::plan::model::{
    Category, Choice, Domain, Firmness, ForWhom, Meaning, Preference, Scope, SignalKind,
};
use cove_shared::Partner;

/// Parses one of a plan choice's spellings (`ask-me`, `check-on-me`), the
/// same the documents store, and offers them all in `--help`.
fn choice<C: Choice + Send + Sync + 'static>() -> impl clap::builder::TypedValueParser<Value = C> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(C::ALL.iter().map(|c| c.as_str()))
        .try_map(|s: String| C::parse(&s).ok_or("not one of the choices"))
}

/// `cove plan`.
#[derive(Debug, Subcommand)]
pub(crate) enum PlanCommand {
    /// A calm overview of the whole plan.
    Show {
        /// Include archived items.
        #[arg(long)]
        all: bool,
    },
    /// Your needs afterwards (only you can change them).
    #[command(subcommand)]
    Need(ItemCommand<NeedFields>),
    /// Your boundaries (only you can change or withdraw them).
    #[command(subcommand)]
    Boundary(BoundaryCommand),
    /// The shared menu of aftercare options.
    #[command(subcommand)]
    Menu(ItemCommand<MenuFields>),
    /// Your preference for a menu option: yes, maybe, ask-me or no.
    Prefer {
        /// The option's id (as `cove plan menu list` shows it).
        option: String,
        /// Your preference.
        #[arg(value_parser = choice::<Preference>())]
        preference: Preference,
    },
    /// The sequence of steps.
    #[command(subcommand)]
    Step(StepCommand),
    /// Pre-agreed signals and what they mean (`cove signal NAME` sends one).
    #[command(subcommand)]
    Signal(ItemCommand<SignalFields>),
    /// The couple's vocabulary.
    #[command(subcommand)]
    Term(ItemCommand<TermFields>),
    /// The check-in after a session.
    #[command(subcommand)]
    Checkin(CheckinCommand),
    /// De-escalation.
    #[command(subcommand)]
    Deescalation(DeescalationCommand),
    /// Change the name your partner sees.
    Rename {
        /// The new name.
        name: String,
    },
    /// Put back a value that an edit on another device replaced at the same
    /// time (`cove plan show` lists them under "To resolve").
    RestoreReplaced {
        /// The item's id, or the setting's section: checkin, deescalation,
        /// reviews, or profile for your name.
        at: String,
        /// The field, as "To resolve" names it.
        field: String,
        /// Which replaced value, when more than one was.
        #[arg(long)]
        value: Option<String>,
    },
}

/// The actions every section has.
#[derive(Debug, Subcommand)]
pub(crate) enum ItemCommand<F: Args> {
    /// Add an item.
    Add(F),
    /// Change an item's fields (only those given).
    Edit {
        /// The item's id, or its last characters as lists show them.
        id: String,
        /// The fields to change.
        #[command(flatten)]
        fields: F,
    },
    /// Archive an item: hidden, kept, and restorable.
    Archive {
        /// The item's id.
        id: String,
    },
    /// Bring back an archived item.
    Restore {
        /// The item's id.
        id: String,
    },
    /// List the items.
    List {
        /// Include archived items.
        #[arg(long)]
        all: bool,
    },
}

/// Fields of a need.
#[derive(Debug, Args)]
pub(crate) struct NeedFields {
    /// The need, in your words.
    #[arg(long)]
    pub(crate) text: Option<String>,
    /// What it is about.
    #[arg(long, value_parser = choice::<Domain>())]
    pub(crate) domain: Option<Domain>,
    /// Preferred surroundings: light, sound, warmth, place.
    #[arg(long)]
    pub(crate) environment: Option<String>,
    /// How close you want to be: 0 = space, 4 = full contact.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=4))]
    pub(crate) closeness: Option<i64>,
    /// How you like to communicate then.
    #[arg(long)]
    pub(crate) communication: Option<String>,
}

/// `cove plan boundary`.
#[derive(Debug, Subcommand)]
pub(crate) enum BoundaryCommand {
    /// Add, edit, archive, restore or list.
    #[command(flatten)]
    Item(ItemCommand<BoundaryFields>),
    /// Withdraw a boundary (it stays in the plan, marked withdrawn).
    Withdraw {
        /// The boundary's id.
        id: String,
    },
    /// Put a withdrawn boundary back in force.
    Reinstate {
        /// The boundary's id.
        id: String,
    },
}

/// Fields of a boundary.
#[derive(Debug, Args)]
pub(crate) struct BoundaryFields {
    /// The statement, in your words.
    #[arg(long)]
    pub(crate) statement: Option<String>,
    /// Hard (not to be crossed) or soft (can be talked about).
    #[arg(long, value_parser = choice::<Firmness>())]
    pub(crate) firmness: Option<Firmness>,
    /// When it applies.
    #[arg(long, value_parser = choice::<Scope>())]
    pub(crate) scope: Option<Scope>,
}

/// Fields of a menu option.
#[derive(Debug, Args)]
pub(crate) struct MenuFields {
    /// A short title.
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// Its kind.
    #[arg(long, value_parser = choice::<Category>())]
    pub(crate) category: Option<Category>,
    /// A description.
    #[arg(long)]
    pub(crate) description: Option<String>,
}

/// `cove plan step`.
#[derive(Debug, Subcommand)]
pub(crate) enum StepCommand {
    /// Add a step (at the end unless placed).
    Add {
        /// The fields.
        #[command(flatten)]
        fields: StepFields,
        /// Where to put it.
        #[command(flatten)]
        place: Place,
    },
    /// Change a step's fields (only those given).
    Edit {
        /// The step's id.
        id: String,
        /// The fields to change.
        #[command(flatten)]
        fields: StepFields,
    },
    /// Move a step.
    Move {
        /// The step's id.
        id: String,
        /// Where to put it.
        #[command(flatten)]
        place: Place,
    },
    /// Remove a step from the sequence (archived: `restore` brings it back).
    Remove {
        /// The step's id.
        id: String,
    },
    /// Bring back a removed step.
    Restore {
        /// The step's id.
        id: String,
    },
    /// List the steps in order.
    List {
        /// Include removed steps.
        #[arg(long)]
        all: bool,
    },
}

/// Fields of a step.
#[derive(Debug, Args)]
pub(crate) struct StepFields {
    /// What the step is.
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// The menu option it uses.
    #[arg(long)]
    pub(crate) option: Option<String>,
    /// Whom it is for: a, b or both.
    #[arg(long = "for", value_parser = choice::<ForWhom>())]
    pub(crate) for_whom: Option<ForWhom>,
    /// Whether it may be skipped.
    #[arg(long)]
    pub(crate) optional: Option<bool>,
}

/// Where a step goes.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct Place {
    /// Right after this step.
    #[arg(long, value_name = "ID")]
    pub(crate) after: Option<String>,
    /// Right before this step.
    #[arg(long, value_name = "ID")]
    pub(crate) before: Option<String>,
    /// First.
    #[arg(long)]
    pub(crate) first: bool,
    /// Last.
    #[arg(long)]
    pub(crate) last: bool,
}

/// Fields of a signal.
#[derive(Debug, Args)]
pub(crate) struct SignalFields {
    /// The word, gesture or button name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// How it is given.
    #[arg(long, value_parser = choice::<SignalKind>())]
    pub(crate) kind: Option<SignalKind>,
    /// What it means.
    #[arg(long, value_parser = choice::<Meaning>())]
    pub(crate) meaning: Option<Meaning>,
    /// What the other partner does on receiving it.
    #[arg(long)]
    pub(crate) response: Option<String>,
}

/// Fields of a vocabulary term.
#[derive(Debug, Args)]
pub(crate) struct TermFields {
    /// The term.
    #[arg(long)]
    pub(crate) term: Option<String>,
    /// What the couple means by it.
    #[arg(long)]
    pub(crate) meaning: Option<String>,
}

/// `cove plan checkin`.
#[derive(Debug, Subcommand)]
pub(crate) enum CheckinCommand {
    /// Set how long the check-in window lasts, in minutes.
    Window {
        /// Minutes.
        #[arg(value_parser = clap::value_parser!(i64).range(1..=cove_client::plan::schema::MAX_MINUTES))]
        minutes: i64,
    },
    /// Debrief questions.
    #[command(subcommand)]
    Question(ItemCommand<QuestionFields>),
    /// Later check-ins, such as the next morning.
    #[command(subcommand)]
    Later(ItemCommand<LaterFields>),
}

/// Fields of a debrief question.
#[derive(Debug, Args)]
pub(crate) struct QuestionFields {
    /// The question.
    #[arg(long)]
    pub(crate) text: Option<String>,
}

/// Fields of a later check-in.
#[derive(Debug, Args)]
pub(crate) struct LaterFields {
    /// When: "the next morning", "two days later".
    #[arg(long)]
    pub(crate) when: Option<String>,
    /// What to ask or do.
    #[arg(long)]
    pub(crate) note: Option<String>,
    /// Hours after a session when it is due: `cove daemon` and `cove ui`
    /// remind you then [default: 12].
    #[arg(long)]
    pub(crate) after_hours: Option<i64>,
}

/// `cove plan deescalation`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeescalationCommand {
    /// Set the time limit for reflection before talking again, in minutes.
    Limit {
        /// Minutes.
        #[arg(value_parser = clap::value_parser!(i64).range(1..=cove_client::plan::schema::MAX_MINUTES))]
        minutes: i64,
    },
    /// Techniques.
    #[command(subcommand)]
    Technique(ItemCommand<TechniqueFields>),
    /// Neutral spaces.
    #[command(subcommand)]
    Space(ItemCommand<SpaceFields>),
}

/// Fields of a technique.
#[derive(Debug, Args)]
pub(crate) struct TechniqueFields {
    /// A short name.
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// How it goes.
    #[arg(long)]
    pub(crate) description: Option<String>,
}

/// Fields of a neutral space.
#[derive(Debug, Args)]
pub(crate) struct SpaceFields {
    /// The place.
    #[arg(long)]
    pub(crate) place: Option<String>,
    /// Whose space it is: a, b or both.
    #[arg(long = "for", value_parser = choice::<ForWhom>())]
    pub(crate) for_whom: Option<ForWhom>,
}

/// Who: me or my partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Who {
    /// The partner using this device.
    Me,
    /// The other partner.
    Partner,
}

impl Who {
    /// The partner meant, for a device of `me`.
    pub(crate) fn partner(self, me: Partner) -> Partner {
        match self {
            Self::Me => me,
            Self::Partner => me.other(),
        }
    }
}

/// `cove session`.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Record a session.
    Log {
        /// The day, YYYY-MM-DD [default: today].
        #[arg(long)]
        date: Option<String>,
        /// Who chose the aftercare this time [default: whoever's turn it was].
        #[arg(long, value_enum)]
        chosen_by: Option<Who>,
        /// A menu option used (repeat for each).
        #[arg(long = "option", value_name = "ID")]
        options: Vec<String>,
        /// A step of the sequence done (repeat for each).
        #[arg(long = "step", value_name = "ID")]
        steps: Vec<String>,
        /// Shared notes.
        #[arg(long)]
        notes: Option<String>,
    },
    /// List sessions, and whose turn it is to choose next.
    List {
        /// Include archived sessions.
        #[arg(long)]
        all: bool,
    },
    /// Change a session's shared notes.
    Notes {
        /// The session's id.
        id: String,
        /// The notes.
        notes: String,
    },
    /// Archive a session.
    Archive {
        /// The session's id.
        id: String,
    },
    /// Restore an archived session.
    Restore {
        /// The session's id.
        id: String,
    },
}

/// `cove debrief`.
#[derive(Debug, Args)]
pub(crate) struct DebriefArgs {
    /// The session's id (as `cove session list` shows it).
    pub(crate) session: String,
    /// The question's id (as `cove plan checkin question list` shows it).
    pub(crate) question: Option<String>,
    /// Your answer, or - to read it from standard input.
    pub(crate) answer: Option<String>,
}

/// `cove review`.
#[derive(Debug, Subcommand)]
pub(crate) enum ReviewCommand {
    /// What changed since the last review, and who changed it (the default).
    Show,
    /// Record a review now: the plan as it stands, with wins, lessons and
    /// notes. You confirm it as you record it; your partner confirms with
    /// `cove review confirm`.
    Record {
        /// What went well.
        #[arg(long)]
        wins: Option<String>,
        /// What to do differently.
        #[arg(long)]
        lessons: Option<String>,
        /// Anything else.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Confirm a review (the latest unless an id is given).
    Confirm {
        /// The review's id.
        id: Option<String>,
    },
    /// Set how often to review, in days; the next review is set from today
    /// if none is planned.
    Cadence {
        /// Days between reviews.
        #[arg(value_parser = clap::value_parser!(i64).range(1..=cove_client::plan::schema::MAX_CADENCE_DAYS))]
        days: i64,
    },
    /// Set the day of the next review (YYYY-MM-DD), for example to move it
    /// to a day that suits you both.
    Next {
        /// The day.
        date: String,
    },
    /// List past reviews and who confirmed each.
    List,
}
