//! The shape of the plan's documents, and their genesis.
//!
//! Every container a document will ever hold is created in that document's
//! first change: if two devices each created the same map, Automerge would
//! keep one and lose the other's contents. Items live in maps keyed by ULID,
//! never in lists. See `docs/plan.md` for every section and field.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjType, ROOT, ScalarValue};

/// The schema version this code writes. A document with a higher version is
/// read but not written (see `migrate`).
pub const SCHEMA_VERSION: i64 = 1;

/// The longest check-in window and time to reflect, in minutes: a week.
pub const MAX_MINUTES: i64 = 10_080;
/// The longest time between reviews, in days: a year.
pub const MAX_CADENCE_DAYS: i64 = 366;

/// Top-level keys of the shared document.
pub mod shared {
    /// Plan metadata.
    pub const META: &str = "meta";
    /// The menu of aftercare options.
    pub const MENU: &str = "menu";
    /// The mapped order of steps.
    pub const SEQUENCE: &str = "sequence";
    /// Signals (words, gestures, a button) and what they mean.
    pub const SIGNALS: &str = "signals";
    /// The couple's terms for needs, boundaries and triggers.
    pub const VOCABULARY: &str = "vocabulary";
    /// The check-in window, debrief questions and later check-ins.
    pub const CHECKIN: &str = "checkin";
    /// De-escalation techniques, the reflection limit and neutral spaces.
    pub const DEESCALATION: &str = "deescalation";
    /// The session log.
    pub const SESSIONS: &str = "sessions";
    /// Review cadence and history.
    pub const REVIEWS: &str = "reviews";
    /// Within `checkin`: debrief questions.
    pub const QUESTIONS: &str = "questions";
    /// Within `checkin`: later check-ins.
    pub const LATER: &str = "later";
    /// Within `deescalation`: techniques.
    pub const TECHNIQUES: &str = "techniques";
    /// Within `deescalation`: neutral spaces.
    pub const SPACES: &str = "spaces";
    /// Within `reviews`: past reviews.
    pub const HISTORY: &str = "history";
}

/// Top-level keys of a partner's document.
pub mod partner {
    /// Display name and similar.
    pub const PROFILE: &str = "profile";
    /// Within `profile`: each of the partner's devices' names, by device id
    /// (hex), each written by that device.
    pub const DEVICES: &str = "devices";
    /// Needs afterwards.
    pub const NEEDS: &str = "needs";
    /// Boundaries.
    pub const BOUNDARIES: &str = "boundaries";
    /// Preference per menu option.
    pub const PREFERENCES: &str = "preferences";
    /// Debrief answers, keyed "session/question".
    pub const DEBRIEFS: &str = "debriefs";
    /// Reviews this partner confirmed, keyed by review id.
    pub const CONFIRMATIONS: &str = "confirmations";
    /// For each preference, the digest of the option as it read when the
    /// preference was given (see `read::option_basis`).
    pub const PREFERENCE_BASIS: &str = "preference_basis";
}

/// Creates every container of the shared document.
pub fn genesis_shared<T: Transactable>(tx: &mut T, created_at: i64) -> Result<(), AutomergeError> {
    tx.put(ROOT, "schema", SCHEMA_VERSION)?;
    let meta = tx.put_object(ROOT, shared::META, ObjType::Map)?;
    tx.put(&meta, "created_at", ScalarValue::Timestamp(created_at))?;
    for key in
        [shared::MENU, shared::SEQUENCE, shared::SIGNALS, shared::VOCABULARY, shared::SESSIONS]
    {
        tx.put_object(ROOT, key, ObjType::Map)?;
    }
    let checkin = tx.put_object(ROOT, shared::CHECKIN, ObjType::Map)?;
    tx.put_object(&checkin, shared::QUESTIONS, ObjType::Map)?;
    tx.put_object(&checkin, shared::LATER, ObjType::Map)?;
    let deescalation = tx.put_object(ROOT, shared::DEESCALATION, ObjType::Map)?;
    tx.put_object(&deescalation, shared::TECHNIQUES, ObjType::Map)?;
    tx.put_object(&deescalation, shared::SPACES, ObjType::Map)?;
    let reviews = tx.put_object(ROOT, shared::REVIEWS, ObjType::Map)?;
    tx.put_object(&reviews, shared::HISTORY, ObjType::Map)?;
    Ok(())
}

/// Creates every container of a partner's document.
pub fn genesis_partner<T: Transactable>(
    tx: &mut T,
    display_name: &str,
) -> Result<(), AutomergeError> {
    tx.put(ROOT, "schema", SCHEMA_VERSION)?;
    let profile = tx.put_object(ROOT, partner::PROFILE, ObjType::Map)?;
    tx.put(&profile, "display_name", display_name)?;
    tx.put_object(&profile, partner::DEVICES, ObjType::Map)?;
    for key in [
        partner::NEEDS,
        partner::BOUNDARIES,
        partner::PREFERENCES,
        partner::DEBRIEFS,
        partner::CONFIRMATIONS,
        partner::PREFERENCE_BASIS,
    ] {
        tx.put_object(ROOT, key, ObjType::Map)?;
    }
    Ok(())
}
