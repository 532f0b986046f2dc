//! The SQLite backend: the default, one file, no set-up.
//!
//! One writer connection (SQLite has one writer at a time anyway, and a
//! single connection turns concurrent appends into natural group commits)
//! and a few reader connections, in WAL mode so that readers never block the
//! writer.

use super::dialect::{self, Arg, Backend, Col, Placeholders, Row};
use super::{Events, StoreError};
use crate::events::{Event, Heard};
use crate::settings::SqliteSync;
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// How the SQLite store keeps its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How durable each commit is.
    pub synchronous: SqliteSync,
    /// The most bytes the database file may grow to, if bounded.
    pub max_bytes: Option<u64>,
}

impl SqliteOptions {
    /// Unbounded, with the given durability.
    pub fn new(synchronous: SqliteSync) -> Self {
        Self { synchronous, max_bytes: None }
    }
}

/// SQLite's page size, which `max_bytes` is counted in.
const PAGE_BYTES: u64 = 4096;

/// The relay's store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// Every migration, in order; `migrations_are_all_registered` checks that
/// none in the folder is missing.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "write_probe", include_str!("../../migrations/sqlite/0002_write_probe.sql")),
    (3, "identities", include_str!("../../migrations/sqlite/0003_identities.sql")),
];

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and migrates it.
    pub async fn open(path: &Path, store: SqliteOptions) -> Result<Self, StoreError> {
        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .page_size(PAGE_BYTES as u32)
            .synchronous(match store.synchronous {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5))
            // A larger page cache: group commits touch many index pages.
            .pragma("cache_size", "-65536")
            // Checkpoints run in the background (see `checkpoints`), never
            // inside a commit that a device is waiting for.
            .pragma("wal_autocheckpoint", "0")
            // Temporary tables (such as a RETURNING clause's results) in memory,
            // not in a file created and deleted per statement.
            .pragma("temp_store", "memory");
        if let Some(max) = store.max_bytes {
            // Every connection, the writer's replacements included.
            options = options.pragma("max_page_count", (max / PAGE_BYTES).max(1).to_string());
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(|conn, _| Box::pin(super::still_usable(conn)))
            .connect_with(options.clone())
            .await?;
        super::migrator(MIGRATIONS).run(&writer).await?;
        let checkpointer =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        tokio::spawn(checkpoints(checkpointer, writer.clone()));
        Ok(Self { writer, reader })
    }

    /// Opens `sqlite://PATH` (or `sqlite:PATH`).
    pub async fn connect(url: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl(crate::settings::redact_url(url)))?;
        Self::open(Path::new(path), options).await
    }
}

/// How often the write-ahead log is copied back into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Write-ahead log frames (pages) beyond which a checkpoint also resets and
/// truncates the log: 64 MiB at SQLite's 4 KiB pages.
const MAX_WAL_FRAMES: i64 = 16_384;

/// Copies committed pages from the write-ahead log into the database file,
/// alongside the writer rather than inside one of its commits, until the
/// store is closed. A passive checkpoint never makes the writer wait, but
/// under sustained writes it never gets to restart the log either; so once
/// the log passes [`MAX_WAL_FRAMES`], a truncating checkpoint resets it. That
/// one runs on the writer's own connection, so that appends queue behind it
/// for a moment instead of finding the database locked.
async fn checkpoints(checkpointer: SqlitePool, writer: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !writer.is_closed() {
        tick.tick().await;
        let passive: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&checkpointer).await;
        let result = match passive {
            Ok((_, frames, _)) if frames > MAX_WAL_FRAMES => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&writer).await.map(|_| ())
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "write-ahead log checkpoint failed");
        }
    }
    checkpointer.close().await;
}

impl Backend for SqliteStore {
    type Db = Sqlite;
    const PLACEHOLDERS: Placeholders = Placeholders::Positional;

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    async fn rows<'a>(
        conn: &'a mut SqliteConnection,
        sql: &'a str,
        args: &'a [Arg<'a>],
        cols: &'a [Col],
    ) -> Result<Vec<Row>, sqlx::Error> {
        let query = dialect::bind_all(sqlx::query(AssertSqlSafe(sql)), args);
        let rows = query.fetch_all(conn).await?;
        rows.iter().map(|row| dialect::read_row(row, cols)).collect()
    }

    async fn execute<'a>(
        conn: &'a mut SqliteConnection,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> Result<u64, sqlx::Error> {
        let query = dialect::bind_all(sqlx::query(AssertSqlSafe(sql)), args);
        Ok(query.execute(conn).await?.rows_affected())
    }
}

impl Events for SqliteStore {
    async fn publish(&self, _event: &Event) {
        // One SQLite file serves one relay process: nobody else to tell.
    }

    fn listen(&self) -> Option<mpsc::Receiver<Heard>> {
        None
    }
}
