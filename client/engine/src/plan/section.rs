//! The sections of the plan that hold items, and where each lives.

use super::schema::{partner as p, shared as s};
use cove_shared::{DocId, Partner};

/// A section of the plan that holds items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Needs (the partner's own document).
    Needs,
    /// Boundaries (the partner's own document).
    Boundaries,
    /// The menu.
    Menu,
    /// The sequence.
    Sequence,
    /// Signals.
    Signals,
    /// Vocabulary.
    Vocabulary,
    /// Debrief questions.
    Questions,
    /// Later check-ins.
    Later,
    /// De-escalation techniques.
    Techniques,
    /// Neutral spaces.
    Spaces,
    /// The session log.
    Sessions,
    /// Review history.
    Reviews,
}

impl Section {
    /// Its name in addresses and in `--json`: "needs", "menu", "later".
    pub fn name(self) -> &'static str {
        match self {
            Self::Needs => "needs",
            Self::Boundaries => "boundaries",
            Self::Menu => "menu",
            Self::Sequence => "sequence",
            Self::Signals => "signals",
            Self::Vocabulary => "vocabulary",
            Self::Questions => "questions",
            Self::Later => "later",
            Self::Techniques => "techniques",
            Self::Spaces => "spaces",
            Self::Sessions => "sessions",
            Self::Reviews => "reviews",
        }
    }

    /// The section called `name` (see [`Section::name`]).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Every section.
    pub const ALL: [Self; 12] = [
        Self::Needs,
        Self::Boundaries,
        Self::Menu,
        Self::Sequence,
        Self::Signals,
        Self::Vocabulary,
        Self::Questions,
        Self::Later,
        Self::Techniques,
        Self::Spaces,
        Self::Sessions,
        Self::Reviews,
    ];

    /// Its name in messages and commands, singular.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Needs => "need",
            Self::Boundaries => "boundary",
            Self::Menu => "menu option",
            Self::Sequence => "step",
            Self::Signals => "signal",
            Self::Vocabulary => "term",
            Self::Questions => "question",
            Self::Later => "later check-in",
            Self::Techniques => "technique",
            Self::Spaces => "space",
            Self::Sessions => "session",
            Self::Reviews => "review",
        }
    }

    /// The document that holds it, for a device of partner `me`.
    pub fn doc(self, me: Partner) -> DocId {
        match self {
            Self::Needs | Self::Boundaries => me.doc(),
            _ => DocId::Shared,
        }
    }

    /// The container's path from the document's root.
    pub(crate) fn path(self) -> &'static [&'static str] {
        match self {
            Self::Needs => &[p::NEEDS],
            Self::Boundaries => &[p::BOUNDARIES],
            Self::Menu => &[s::MENU],
            Self::Sequence => &[s::SEQUENCE],
            Self::Signals => &[s::SIGNALS],
            Self::Vocabulary => &[s::VOCABULARY],
            Self::Questions => &[s::CHECKIN, s::QUESTIONS],
            Self::Later => &[s::CHECKIN, s::LATER],
            Self::Techniques => &[s::DEESCALATION, s::TECHNIQUES],
            Self::Spaces => &[s::DEESCALATION, s::SPACES],
            Self::Sessions => &[s::SESSIONS],
            Self::Reviews => &[s::REVIEWS, s::HISTORY],
        }
    }
}
