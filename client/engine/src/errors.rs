//! One example of every error the engine returns, so that each face can
//! show, in its own tests, that it has words for every one of them.
//!
//! The engine's sentence says what happened, lowercase and without a full
//! stop, and names no command: a face adds what to do next, in its own
//! wording (a `cove` command on the command line, a page on the web), and
//! ends the sentence. [`kind`] matches every variant without a wildcard,
//! so a new error does not compile until it has a name here; the tests
//! below fail until that name is in [`KINDS`] and has an example.

use crate::device::DeviceError;
use crate::documents::DocError;
use crate::keystore::KeystoreError;
use crate::localdb::LocalError;
use crate::pairing::PairError;
use crate::plan::export::ImportError;
use crate::plan::write::PlanError;
use crate::recovery::RecoverError;
use crate::transport::TransportError;

/// An error from any of the engine's actions.
#[derive(Debug)]
pub enum AnyError {
    /// From a device: opening it, editing, syncing, signals.
    Device(DeviceError),
    /// From pairing a device.
    Pair(PairError),
    /// From recovering with a recovery phrase.
    Recover(RecoverError),
    /// From importing an export.
    Import(ImportError),
}

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Device(e) => e.fmt(f),
            Self::Pair(e) => e.fmt(f),
            Self::Recover(e) => e.fmt(f),
            Self::Import(e) => e.fmt(f),
        }
    }
}

/// Every kind of error, as [`kind`] names it.
pub const KINDS: &[&str] = &[
    "keystore/missing",
    "keystore/wrong-passphrase",
    "keystore/tampered",
    "keystore/downgraded",
    "keystore/other-format",
    "keystore/empty-passphrase",
    "keystore/io",
    "local/no-space",
    "local/read-only",
    "local/write-failed",
    "local/database",
    "local/migrate",
    "local/corrupt",
    "local/io",
    "device/already-exists",
    "device/home",
    "device/incomplete",
    "device/other-format",
    "device/revoked",
    "device/not-yours",
    "doc/automerge",
    "doc/wrong-author",
    "doc/foreign-author",
    "doc/queued-changes",
    "doc/coverage-unbacked",
    "device/membership",
    "device/no-key",
    "device/too-large",
    "transport/bad-url",
    "transport/unreachable",
    "transport/refused",
    "transport/wrong-origin",
    "transport/certificate",
    "transport/plain-only",
    "transport/revoked",
    "transport/closed",
    "transport/timeout",
    "transport/protocol",
    "device/plan-gone",
    "device/state-behind",
    "device/invalid",
    "plan/doc",
    "plan/not-found",
    "plan/ambiguous",
    "plan/required",
    "plan/out-of-range",
    "plan/not-a-choice",
    "plan/invalid",
    "plan/missing",
    "plan/newer-schema",
    "pair/wrong-code",
    "pair/unknown",
    "pair/burned",
    "pair/bad-code",
    "pair/timed-out",
    "pair/partner-has-identity",
    "pair/partner-left",
    "pair/no-identity",
    "pair/declined",
    "pair/identity-taken",
    "pair/rate-limited",
    "pair/protocol",
    "recover/phrase",
    "recover/no-plan",
    "import/malformed",
    "import/not-automerge",
    "import/unsupported",
];

/// The kinds whose sentence already says what to do, in words that fit
/// any face ("free some space and try again", "give more of its id"): a
/// face need not add a next step to these, and must to every other.
pub const SAYS_WHAT_TO_DO: &[&str] = &[
    "keystore/empty-passphrase",
    "local/no-space",
    "local/read-only",
    "local/write-failed",
    "device/other-format",
    "device/not-yours",
    "device/invalid",
    "transport/bad-url",
    "transport/unreachable",
    "transport/wrong-origin",
    "transport/plain-only",
    "plan/ambiguous",
    "plan/out-of-range",
    "plan/not-a-choice",
    "plan/invalid",
    "plan/missing",
    "plan/newer-schema",
    "pair/bad-code",
    "pair/partner-left",
    "pair/identity-taken",
    "pair/rate-limited",
    "recover/no-plan",
];

/// The kind of a device error, such as "keystore/wrong-passphrase".
pub fn device_kind(error: &DeviceError) -> &'static str {
    use DeviceError as D;
    match error {
        D::Keystore(e) => match e {
            KeystoreError::Missing => "keystore/missing",
            KeystoreError::WrongPassphrase => "keystore/wrong-passphrase",
            KeystoreError::Tampered => "keystore/tampered",
            KeystoreError::Downgraded { .. } => "keystore/downgraded",
            KeystoreError::OtherFormat => "keystore/other-format",
            KeystoreError::EmptyPassphrase => "keystore/empty-passphrase",
            KeystoreError::Io { .. } => "keystore/io",
        },
        D::Local(e) => match e {
            LocalError::NoSpace => "local/no-space",
            LocalError::ReadOnly => "local/read-only",
            LocalError::WriteFailed => "local/write-failed",
            LocalError::Database(_) => "local/database",
            LocalError::Migrate(_) => "local/migrate",
            LocalError::Corrupt => "local/corrupt",
            LocalError::Io(_) => "local/io",
        },
        D::AlreadyExists(_) => "device/already-exists",
        D::Home { .. } => "device/home",
        D::Incomplete => "device/incomplete",
        D::OtherFormat { .. } => "device/other-format",
        D::Revoked => "device/revoked",
        D::NotYours { .. } => "device/not-yours",
        D::Doc(e) => match **e {
            DocError::Automerge(_) => "doc/automerge",
            DocError::WrongAuthor => "doc/wrong-author",
            DocError::ForeignAuthor => "doc/foreign-author",
            DocError::QueuedChanges => "doc/queued-changes",
            DocError::CoverageUnbacked => "doc/coverage-unbacked",
        },
        D::Membership(_) => "device/membership",
        D::NoKey => "device/no-key",
        D::TooLarge(_) => "device/too-large",
        D::Transport(e) => match e {
            TransportError::BadUrl(_) => "transport/bad-url",
            TransportError::Unreachable { .. } => "transport/unreachable",
            TransportError::Refused { .. } => "transport/refused",
            TransportError::WrongOrigin { .. } => "transport/wrong-origin",
            TransportError::Certificate(_) => "transport/certificate",
            TransportError::PlainOnly { .. } => "transport/plain-only",
            TransportError::Revoked => "transport/revoked",
            TransportError::Closed => "transport/closed",
            TransportError::Timeout => "transport/timeout",
            TransportError::Protocol(_) => "transport/protocol",
        },
        D::PlanGone => "device/plan-gone",
        D::StateBehind => "device/state-behind",
        D::Invalid(_) => "device/invalid",
        D::Plan(e) => match e {
            PlanError::Doc(_) => "plan/doc",
            PlanError::NotFound { .. } => "plan/not-found",
            PlanError::Ambiguous { .. } => "plan/ambiguous",
            PlanError::Required { .. } => "plan/required",
            PlanError::OutOfRange { .. } => "plan/out-of-range",
            PlanError::NotAChoice { .. } => "plan/not-a-choice",
            PlanError::Invalid { .. } => "plan/invalid",
            PlanError::Missing(_) => "plan/missing",
            PlanError::NewerSchema(_) => "plan/newer-schema",
        },
    }
}

/// The kind of any error (a wrapped device error by its own kind).
pub fn kind(error: &AnyError) -> &'static str {
    match error {
        AnyError::Device(e) => device_kind(e),
        AnyError::Pair(e) => match e {
            PairError::WrongCode => "pair/wrong-code",
            PairError::Unknown => "pair/unknown",
            PairError::Burned => "pair/burned",
            PairError::BadCode(_) => "pair/bad-code",
            PairError::TimedOut => "pair/timed-out",
            PairError::PartnerHasIdentity => "pair/partner-has-identity",
            PairError::PartnerLeft => "pair/partner-left",
            PairError::NoIdentity => "pair/no-identity",
            PairError::Declined => "pair/declined",
            PairError::IdentityTaken => "pair/identity-taken",
            PairError::RateLimited => "pair/rate-limited",
            PairError::Protocol(_) => "pair/protocol",
            PairError::Device(e) => device_kind(e),
        },
        AnyError::Recover(e) => match e {
            RecoverError::Phrase(_) => "recover/phrase",
            RecoverError::NoPlan(_) => "recover/no-plan",
            RecoverError::Device(e) => device_kind(e),
        },
        AnyError::Import(e) => match e {
            ImportError::Malformed(_) => "import/malformed",
            ImportError::NotAutomerge(..) => "import/not-automerge",
            ImportError::Unsupported { .. } => "import/unsupported",
        },
    }
}

/// One example of each kind in [`KINDS`], in that order.
pub fn examples() -> Vec<AnyError> {
    use DeviceError as D;
    use cove_shared::Partner;
    let text = |s: &str| s.to_owned();
    let device = [
        D::Keystore(KeystoreError::Missing),
        D::Keystore(KeystoreError::WrongPassphrase),
        D::Keystore(KeystoreError::Tampered),
        D::Keystore(KeystoreError::Downgraded { memory_kib: 8, passes: 1 }),
        D::Keystore(KeystoreError::OtherFormat),
        D::Keystore(KeystoreError::EmptyPassphrase),
        D::Keystore(KeystoreError::Io { path: text("/home/a/.cove"), error: text("denied") }),
        D::Local(LocalError::NoSpace),
        D::Local(LocalError::ReadOnly),
        D::Local(LocalError::WriteFailed),
        D::Local(LocalError::Database(sqlx::Error::PoolTimedOut)),
        D::Local(LocalError::Migrate(sqlx::migrate::MigrateError::VersionMissing(2))),
        D::Local(LocalError::Corrupt),
        D::Local(LocalError::Io(std::io::Error::other("denied"))),
        D::AlreadyExists(text("/home/a/.cove")),
        D::Home { path: text("/home/a/.cove"), error: text("denied") },
        D::Incomplete,
        D::OtherFormat { found: 1 },
        D::Revoked,
        D::NotYours { partner: Partner::B, name: text("Sam") },
        D::from(DocError::Automerge(automerge::AutomergeError::Fail)),
        D::from(DocError::WrongAuthor),
        D::from(DocError::ForeignAuthor),
        D::from(DocError::QueuedChanges),
        D::from(DocError::CoverageUnbacked),
        D::Membership(cove_shared::membership::MembershipError::WrongPlan),
        D::NoKey,
        D::TooLarge(cove_shared::envelope::SealError::TooLarge { len: 70_000, max: 65_000 }),
        D::Transport(TransportError::BadUrl(text("relay.example"))),
        D::Transport(TransportError::Unreachable {
            url: text("wss://relay.example"),
            reason: text("connection refused"),
        }),
        D::Transport(TransportError::Refused {
            code: cove_shared::wire::ErrorCode::Unavailable,
            message: text("the relay cannot store anything right now"),
        }),
        D::Transport(TransportError::WrongOrigin {
            dialed: text("wss://a.example"),
            expected: text("wss://b.example"),
        }),
        D::Transport(TransportError::Certificate(text(
            "the relay's certificate is not the pinned one",
        ))),
        D::Transport(TransportError::PlainOnly { dialed: text("wss://relay.example") }),
        D::Transport(TransportError::Revoked),
        D::Transport(TransportError::Closed),
        D::Transport(TransportError::Timeout),
        D::Transport(TransportError::Protocol("an unexpected frame")),
        D::PlanGone,
        D::StateBehind,
        D::Invalid(text("a journal entry needs some text")),
        D::Plan(PlanError::Doc(automerge::AutomergeError::Fail)),
        D::Plan(PlanError::NotFound { section: "need", id: text("K7Q2AB") }),
        D::Plan(PlanError::Ambiguous { section: "need", id: text("K") }),
        D::Plan(PlanError::Required { section: "need", label: "The need", key: "text" }),
        D::Plan(PlanError::OutOfRange { label: "Closeness", min: 0, max: 4 }),
        D::Plan(PlanError::NotAChoice { label: "About", choices: text("emotional, physical") }),
        D::Plan(PlanError::Invalid { field: "title", reason: text("at most 4000 characters") }),
        D::Plan(PlanError::Missing("menu")),
        D::Plan(PlanError::NewerSchema(2)),
    ];
    let pair = [
        PairError::WrongCode,
        PairError::Unknown,
        PairError::Burned,
        PairError::BadCode(text("12-lantern")),
        PairError::TimedOut,
        PairError::PartnerHasIdentity,
        PairError::PartnerLeft,
        PairError::NoIdentity,
        PairError::Declined,
        PairError::IdentityTaken,
        PairError::RateLimited,
        PairError::Protocol("an unexpected message"),
    ];
    let recover = [
        RecoverError::Phrase(cove_shared::phrase::PhraseError::WordCount(3)),
        RecoverError::NoPlan(text("wss://relay.example")),
    ];
    let import = [
        ImportError::Malformed(text("expected a JSON object")),
        ImportError::NotAutomerge("shared", text("not a document")),
        ImportError::Unsupported { format: text("other"), version: 9 },
    ];
    device
        .into_iter()
        .map(AnyError::Device)
        .chain(pair.into_iter().map(AnyError::Pair))
        .chain(recover.into_iter().map(AnyError::Recover))
        .chain(import.into_iter().map(AnyError::Import))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_example_of_every_kind() {
        let kinds: Vec<&str> = examples().iter().map(kind).collect();
        assert_eq!(kinds, KINDS);
    }

    #[test]
    fn what_says_what_to_do_is_a_kind() {
        for kind in SAYS_WHAT_TO_DO {
            assert!(KINDS.contains(kind), "{kind}");
        }
    }

    /// Every name the matches above give is listed in `KINDS`, so a new
    /// variant's name cannot be left out of the examples.
    #[test]
    fn every_kind_the_matches_name_is_listed() {
        let source = include_str!("errors.rs");
        let body = &source[..source.find("pub fn examples").unwrap_or(source.len())];
        let body = &body[body.find("pub fn device_kind").unwrap_or(0)..];
        let mut named: Vec<&str> =
            body.split("=> \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        named.sort_unstable();
        named.dedup();
        let mut listed = KINDS.to_vec();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }

    /// What happened, as a clause a face can finish: not capitalised, no
    /// full stop, one sentence, and no command (which belongs to a face).
    #[test]
    fn every_engine_sentence_is_a_clause_a_face_can_finish() {
        let mut wrong = Vec::new();
        for error in examples() {
            let text = error.to_string();
            let first = text.chars().next().unwrap_or('A');
            let two = text
                .split(". ")
                .skip(1)
                .any(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
            if first.is_ascii_uppercase() || text.ends_with('.') || text.contains("`cove") || two {
                wrong.push(format!("{}: {text}", kind(&error)));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
