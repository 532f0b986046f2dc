//! Storage: what the relay keeps, split by concern into [`EnvelopeLog`],
//! [`Mailboxes`], [`Events`] and [`Health`], which together make a
//! [`Store`].
//!
//! Both backends run the same SQL, written once over the small
//! [`dialect::Backend`] trait (how a value is bound, how a column is read,
//! how run-time statements number their parameters). What else differs lives
//! in each backend's module: connection set-up, migrations (in
//! `server/migrations/{sqlite,postgres}/`), and how other relay processes
//! hear about new data (SQLite serves one process; PostgreSQL uses
//! LISTEN/NOTIFY).
//!
//! # Layout
//! - [`dialect`]: the `Backend` trait, values, rows, placeholders.
//! - `log`: the envelope log; `append`: its group commit.
//! - `mailboxes`: pairing mailboxes.
//! - `sqlite`, `postgres`: the two backends.
//!
//! # Invariants
//! - Every method that reports success has committed.
//! - Envelopes of one plan get strictly increasing cursors, and
//!   `(plan, sender, kind, doc, seq)` is unique: one stream position.
//! - The store never sees a key or a plaintext: it keeps what the relay
//!   receives, byte for byte.

mod append;
pub mod dialect;
mod log;
mod mailboxes;
mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::{SqliteOptions, SqliteStore};

use crate::events::{Event, Heard};
use cove_shared::wire::{Cursor, PairOutcome, StoredEnvelope, StoredSnapshot};
use cove_shared::{DeviceId, DocId, EnvelopeHash, Kind, PlanId, Seq};
use dialect::{Arg, Backend};
use sqlx::Connection;
use std::future::Future;
use tokio::sync::mpsc;

/// The size of the row [`Health::probe_write`] writes: a typical envelope.
pub const PROBE_BYTES: usize = 64 * 1024;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or failed.
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// Migrations could not run.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL is neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A plan with this id already exists.
    #[error("a plan with this id already exists")]
    PlanExists,
    /// The plan does not exist.
    #[error("no such plan")]
    NoSuchPlan,
    /// Another membership entry already holds this index.
    #[error("the membership log changed concurrently")]
    Conflict,
    /// The stored data contradicts the store's own invariants.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
}

/// Whether a device may act on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A current member.
    Active,
    /// Revoked: refused from now on.
    Revoked,
    /// Not a member, or no such plan. Deliberately one answer.
    Unknown,
}

/// An envelope to append, already inspected by the relay.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// The plan.
    pub plan: PlanId,
    /// The sending (authenticated) device.
    pub sender: DeviceId,
    /// Its kind.
    pub kind: Kind,
    /// Its sequence number.
    pub seq: Seq,
    /// Its document.
    pub doc: DocId,
    /// Its hash, to tell a resend from an equivocation.
    pub hash: EnvelopeHash,
    /// Unix seconds after which it is dropped (signals only).
    pub expires_at: Option<i64>,
    /// The envelope.
    pub body: bytes::Bytes,
}

/// The outcome of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, under this cursor.
    New(Cursor),
    /// Already stored, under this cursor: an idempotent resend.
    Duplicate(Cursor),
}

/// Why one append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// A different envelope holds this sender, kind, document and sequence number.
    #[error("equivocation")]
    Equivocation,
    /// The plan is at its quota.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The plan no longer exists.
    #[error("no such plan")]
    NoSuchPlan,
    /// The store failed; nothing from the batch was committed.
    #[error("storage unavailable")]
    Unavailable,
}

/// A plan's storage quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Envelopes.
    pub max_envelopes: u64,
    /// Bytes of envelopes.
    pub max_bytes: u64,
}

/// One page of a plan's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Envelopes, oldest first.
    pub items: Vec<StoredEnvelope>,
    /// The plan's newest cursor.
    pub head: Cursor,
    /// Changes envelopes at or below this cursor may have been replaced by
    /// snapshots.
    pub compacted: Cursor,
}

/// A snapshot to store.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// The plan.
    pub plan: PlanId,
    /// The document.
    pub doc: DocId,
    /// It covers the document's envelopes up to this cursor.
    pub covers: Cursor,
    /// The sending device.
    pub sender: DeviceId,
    /// Its sequence number in the sender's snapshot stream.
    pub seq: Seq,
    /// Its hash.
    pub hash: EnvelopeHash,
    /// The envelope.
    pub body: Vec<u8>,
}

/// The outcome of storing a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStored {
    /// Stored; `compacted` changes envelopes were deleted as a result.
    New {
        /// Envelopes deleted.
        compacted: u64,
    },
    /// The same snapshot was already stored.
    Duplicate,
    /// A snapshot covering more is already stored.
    Stale,
    /// It claims to cover cursors the plan has not reached.
    BeyondHead,
}

/// Membership changes to apply to the relay's registry with a new entry.
#[derive(Debug, Clone, Default)]
pub struct RegistryChange {
    /// Devices the entry adds.
    pub added: Vec<DeviceId>,
    /// Devices the entry revokes.
    pub revoked: Vec<DeviceId>,
    /// Partner identities the entry pins.
    pub identities: Vec<DeviceId>,
}

/// One side of a pairing mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The device that opened it.
    Opener,
    /// The device that joined it.
    Joiner,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Self::Opener => Self::Joiner,
            Self::Joiner => Self::Opener,
        }
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Opener => 0,
            Self::Joiner => 1,
        }
    }
}

/// The state of a pairing mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairState {
    /// Waiting for the other device.
    Open,
    /// Both devices are in.
    Joined,
    /// Completed: spent.
    Done,
    /// Burned by a failed attempt or a second join.
    Burned,
}

impl PairState {
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Open => 0,
            Self::Joined => 1,
            Self::Done => 2,
            Self::Burned => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Open),
            1 => Some(Self::Joined),
            2 => Some(Self::Done),
            3 => Some(Self::Burned),
            _ => None,
        }
    }
}

/// A pairing mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Its nameplate.
    pub nameplate: String,
    /// Its state.
    pub state: PairState,
    /// Unix seconds after which it no longer exists.
    pub expires_at: i64,
    /// The device that opened it.
    pub opener: DeviceId,
    /// The device that joined it.
    pub joiner: Option<DeviceId>,
}

impl Mailbox {
    /// Which side `device` is on, if any.
    pub fn side_of(&self, device: DeviceId) -> Option<Side> {
        if device == self.opener {
            Some(Side::Opener)
        } else if Some(device) == self.joiner {
            Some(Side::Joiner)
        } else {
            None
        }
    }
}

/// Why a pairing step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// No open mailbox has this nameplate.
    #[error("no such pairing")]
    Unknown,
    /// The mailbox was used or burned.
    #[error("pairing burned")]
    Burned,
    /// The store failed.
    #[error("storage unavailable")]
    Unavailable,
}

/// The envelope log: plans and their membership, the envelopes devices
/// push, snapshots and compaction. Implemented once, in [`log`], for every
/// [`dialect::Backend`].
pub trait EnvelopeLog: Clone + Send + Sync + 'static {
    /// Registers a plan, its genesis entry, its creator and the creator's
    /// partner identity.
    fn create_plan(
        &self,
        plan: PlanId,
        genesis: &[u8],
        creator: DeviceId,
        identity: DeviceId,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The plans whose membership pins `identity`.
    fn identity_plans(
        &self,
        identity: DeviceId,
    ) -> impl Future<Output = Result<Vec<PlanId>, StoreError>> + Send;

    /// The plan's membership entries from `from` on, in order.
    fn membership(
        &self,
        plan: PlanId,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send;

    /// Appends the entry at `index` (which must be the log's length) and
    /// applies its registry change, in one transaction.
    fn append_membership(
        &self,
        plan: PlanId,
        index: u64,
        entry: &[u8],
        change: &RegistryChange,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `device` may act on `plan`.
    fn access(
        &self,
        plan: PlanId,
        device: DeviceId,
    ) -> impl Future<Output = Result<Access, StoreError>> + Send;

    /// Appends a batch of envelopes in one transaction (group commit).
    /// Each item gets its own outcome; `Err` means the transaction did not
    /// commit, and none of them is stored.
    fn append(
        &self,
        batch: &[NewEnvelope],
        quota: Quota,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send;

    /// Envelopes after `after`, at most `limit` and about `max_bytes`
    /// (always at least one if any), leaving out expired signals.
    fn fetch(
        &self,
        plan: PlanId,
        after: Cursor,
        limit: u32,
        max_bytes: usize,
        now: i64,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Where the envelope at (sender, kind, doc, seq) is stored, and its
    /// hash, if one is: to answer a resend as a duplicate before judging it.
    fn stored_at(
        &self,
        plan: PlanId,
        sender: DeviceId,
        stream: (Kind, DocId, Seq),
    ) -> impl Future<Output = Result<Option<(Cursor, EnvelopeHash)>, StoreError>> + Send;

    /// One stored envelope, for relays that learn of it by notification.
    fn envelope(
        &self,
        plan: PlanId,
        cursor: Cursor,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Records that `device` has applied everything up to `cursor`, then
    /// compacts what every device has now acknowledged. Returns the number of
    /// envelopes compacted.
    fn ack(
        &self,
        plan: PlanId,
        device: DeviceId,
        cursor: Cursor,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Stores a snapshot if it is newer than the stored one, then compacts.
    fn put_snapshot(
        &self,
        snapshot: &NewSnapshot,
    ) -> impl Future<Output = Result<SnapshotStored, StoreError>> + Send;

    /// The newest snapshot of a document.
    fn snapshot(
        &self,
        plan: PlanId,
        doc: DocId,
    ) -> impl Future<Output = Result<Option<StoredSnapshot>, StoreError>> + Send;

    /// Deletes the plan and everything stored for it.
    fn delete_plan(&self, plan: PlanId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops signals and checkpoints past their time to live; returns how
    /// many.
    fn expire_signals(&self, now: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A device stored its checkpoint number `seq`: its earlier ones expire
    /// at `now` (the next expiry pass drops them), since devices keep only
    /// the newest.
    fn supersede_checkpoints(
        &self,
        plan: PlanId,
        sender: DeviceId,
        seq: Seq,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Pairing mailboxes. Implemented once, in [`mailboxes`], for every
/// [`dialect::Backend`].
pub trait Mailboxes: Clone + Send + Sync + 'static {
    /// Opens a pairing mailbox under the smallest free nameplate.
    fn pair_open(
        &self,
        opener: DeviceId,
        expires_at: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// A mailbox, if it exists and has not expired.
    fn pair_get(
        &self,
        nameplate: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<Mailbox>, StoreError>> + Send;

    /// Joins an open mailbox. A mailbox that is not open is burned, and
    /// joining it fails. Returns the opener's messages so far, with their ids.
    fn pair_join(
        &self,
        nameplate: &str,
        joiner: DeviceId,
        now: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Vec<u8>)>, PairError>> + Send;

    /// Stores a message from one side and returns its id, unless that side
    /// has already posted `wire::MAX_PAIR_MESSAGES` to this mailbox.
    fn pair_post(
        &self,
        nameplate: &str,
        from: Side,
        body: &[u8],
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// One stored pairing message.
    fn pair_message(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Closes a mailbox: spent if completed, burned if failed.
    fn pair_close(
        &self,
        nameplate: &str,
        outcome: PairOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops mailboxes past their time (and a grace period); returns how
    /// many.
    fn expire_mailboxes(&self, now: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What relay processes sharing one database tell each other. Each backend
/// implements it: SQLite serves one process, PostgreSQL uses LISTEN/NOTIFY.
pub trait Events: Clone + Send + Sync + 'static {
    /// Tells other relay processes sharing this database about an event.
    /// A no-op where there can be no other process.
    fn publish(&self, event: &Event) -> impl Future<Output = ()> + Send;

    /// Events published by other relay processes, if there can be any, and
    /// word of any stretch in which some may have been missed.
    fn listen(&self) -> Option<mpsc::Receiver<Heard>>;
}

/// Whether the database answers and takes writes.
pub trait Health: Clone + Send + Sync + 'static {
    /// Checks that the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes, commits and deletes one row of [`PROBE_BYTES`]: whether the
    /// store can take an envelope now, asked while its writes are failing.
    fn probe_write(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Storage for the relay: every concern above. The conformance story in
/// `tests/store.rs` runs against each backend.
pub trait Store: EnvelopeLog + Mailboxes + Events + Health {}

impl<T: EnvelopeLog + Mailboxes + Events + Health> Store for T {}

impl<B: Backend> Health for B {
    async fn ping(&self) -> Result<(), StoreError> {
        dialect::read(self, "SELECT 1", &[], &[]).await?;
        Ok(())
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        let body = vec![0u8; PROBE_BYTES];
        dialect::write(
            self,
            "INSERT INTO write_probe (id, body) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            &[Arg::Bytes(&body)],
            &[],
        )
        .await?;
        dialect::write(self, "DELETE FROM write_probe", &[], &[]).await?;
        Ok(())
    }
}

/// A migrator for one backend's `(version, name, SQL)` list.
fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    (*sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Whether a connection that goes back to its pool may be used again.
///
/// When a commit fails (a full disk, say), SQLite may already have rolled
/// the transaction back by itself; sqlx then still counts it as open, its
/// own rollback fails, and the next "transaction" on that connection is a
/// savepoint inside a transaction that nothing ever commits: every later
/// commit would report success and store nothing. So a connection is kept
/// only once its pending rollback has run (the ping flushes it) and sqlx
/// agrees that no transaction is open; otherwise the pool replaces it.
async fn still_usable<C: Connection>(conn: &mut C) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

#[cfg(test)]
mod tests {
    /// A migration file that is not registered would be silently ignored.
    #[test]
    fn migrations_are_all_registered() {
        for (folder, registered) in
            [("sqlite", super::sqlite::MIGRATIONS), ("postgres", super::postgres::MIGRATIONS)]
        {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(folder);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            let expected: Vec<String> = registered
                .iter()
                .map(|(version, name, _)| format!("{version:04}_{name}.sql"))
                .collect();
            assert_eq!(files, expected, "{folder}: every file in the folder, in order");
            for (i, (version, _, sql)) in registered.iter().enumerate() {
                assert_eq!(*version, i as i64 + 1);
                assert_eq!(*sql, std::fs::read_to_string(dir.join(&files[i])).unwrap());
            }
        }
    }
}
