//! The SQLite backend: the default, one file, no set-up.
//!
//! One writer connection (SQLite has one writer at a time anyway, and a
//! single connection turns concurrent appends into natural group commits)
//! and a few reader connections, in WAL mode so that readers never block the
//! writer.

use super::sql::{store_helpers, store_methods};
use super::{
    Access, AppendError, Appended, Expired, Mailbox, NewEnvelope, NewSnapshot, Page, PairError,
    PairState, Quota, RegistryChange, Side, SnapshotStored, Store, StoreError,
};
use crate::events::Event;
use crate::settings::SqliteSync;
use cove_shared::wire::{Blob, Cursor, PairOutcome, StoredEnvelope, StoredSnapshot};
use cove_shared::{DeviceId, DocId, PlanId};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// The relay's store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        include_str!("../../migrations/sqlite/0001_init.sql").into_sql_str(),
        false,
    )])
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and migrates it.
    pub async fn open(path: &Path, sync: SqliteSync) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrator().run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Opens `sqlite://PATH` (or `sqlite:PATH`).
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        Self::open(Path::new(path), sync).await
    }
}

store_helpers!(SqliteStore, sqlx::Sqlite);

impl Store for SqliteStore {
    store_methods!();

    async fn publish(&self, _event: &Event) {
        // One SQLite file serves one relay process: nobody else to tell.
    }

    fn listen(&self) -> Option<mpsc::Receiver<Event>> {
        None
    }
}
