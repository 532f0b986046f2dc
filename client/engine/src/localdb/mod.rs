//! The device's local database: documents, outbox, sync state and
//! quarantine, in SQLite, with every value sealed.
//!
//! Nothing is stored in the clear. Each value is XChaCha20-Poly1305 under the
//! storage key from the keystore, with a fresh random nonce, and its
//! associated data names the table and row it belongs to, so a value copied
//! into another row does not open. Only row keys (a document number, an
//! outbox position, a setting's name) are plain.
//!
//! Writes that belong together (an edit, its outbox entry and its stream
//! position; or a batch of received changes, the freshness marks and the
//! cursor) happen in one transaction: a crash leaves all of them or none.
//!
//! Each statement is a round trip to SQLite's worker thread, so a write
//! transaction reads what it needs to know up front in one statement (the
//! generation token, the next row numbers, what is held back), buffers its
//! writes and sends them as one statement list just before it commits; and
//! a document is stored as a full save plus the changes made since,
//! appended as small chunks and folded back into a full save now and then.
//!
//! # Layout
//! - this module: opening the database, and reading from it.
//! - [`tx`]: a write transaction, buffered and committed in one go.
//! - [`sealer`]: sealing and opening each value.
//! - [`error`]: what can go wrong, in words a person can act on.

mod error;
mod sealer;
mod tx;

pub use error::LocalError;
pub use sealer::Sealer;
use tx::Preamble;
pub use tx::{Durability, LocalTx};

use cove_shared::{DocId, SymmetricKey};
use serde::de::DeserializeOwned;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Every migration, in order; `migrations_are_all_registered` checks that
/// none in the folder is missing.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "sent_confirmed", include_str!("../../migrations/0002_sent_confirmed.sql")),
    (3, "own", include_str!("../../migrations/0003_own.sql")),
];

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
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

/// The open local database. Cloning it is cheap and shares the pools.
#[derive(Debug, Clone)]
pub struct LocalDb {
    /// For reads.
    pool: SqlitePool,
    /// One connection for write transactions. SQLite empties a
    /// connection's page cache whenever another connection has written
    /// since its last transaction; so transactions that take turns on
    /// several connections would each read the tables from the file again.
    writer: SqlitePool,
    sealer: Arc<Sealer>,
    /// SQLite's write-ahead log, synced by hand for a [`Durability::Synced`]
    /// commit.
    wal: Arc<PathBuf>,
}

/// The `kv` row that changes with every write, so that another process
/// can tell it must reload.
pub const GENERATION: &str = "generation";

/// After this many chunks, a document is saved in full again.
pub const CHUNKS_PER_SAVE: u64 = 128;

/// Tables that hold lists of sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTable {
    /// Envelopes held back until the envelopes before them arrive.
    Pending,
    /// Envelopes that failed verification, kept for inspection.
    Quarantine,
    /// The device-only journal.
    Journal,
    /// This device's recent envelopes that the relay stored.
    Sent,
    /// What this device remembers of its newest envelopes, for receipts.
    Own,
}

impl ListTable {
    fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Quarantine => "quarantine",
            Self::Journal => "journal",
            Self::Sent => "sent",
            Self::Own => "own",
        }
    }

    /// Its slot in [`Preamble::next`].
    fn slot(self) -> usize {
        match self {
            Self::Pending => 0,
            Self::Quarantine => 1,
            Self::Journal => 2,
            Self::Sent => 3,
            Self::Own => 6,
        }
    }
}

const OUTBOX_SLOT: usize = 4;
const CHUNK_SLOT: usize = 5;

impl LocalDb {
    /// Opens (creating if missing) the database at `path`, sealed with `key`.
    pub async fn open(path: &Path, key: &SymmetricKey) -> Result<Self, LocalError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Commits reach the log without waiting for the disk; a commit
            // that must be on disk syncs the log itself (see `Durability`).
            // A checkpoint always syncs the log first.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        // Reads do not wait for a write under way, nor for each other. A
        // local file needs no liveness check on every acquire (a round trip
        // to SQLite's thread each time).
        let pools = |connections| {
            SqlitePoolOptions::new().max_connections(connections).test_before_acquire(false)
        };
        let writer = pools(1).connect_with(options.clone()).await?;
        migrator().run(&writer).await?;
        let pool = pools(2).connect_with(options).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self {
            pool,
            writer,
            sealer: Arc::new(Sealer::new(key)),
            wal: Arc::new(PathBuf::from(wal)),
        })
    }

    /// Closes the database, checkpointing its log.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`) and reads what it
    /// will need to know, in one round trip to SQLite's thread.
    ///
    /// The transaction is opened and committed by statements of its own,
    /// not by sqlx's transaction calls, each of which would be a round trip
    /// of its own; so sqlx does not know it is open. A connection whose
    /// transaction did not commit (an error, or a dropped future) is closed,
    /// never given back to the pool: closing it rolls the transaction back.
    pub async fn begin(&self) -> Result<LocalTx, LocalError> {
        // Held by the transaction before its first statement, so that it is
        // closed if that statement fails or is given up.
        let mut tx = LocalTx {
            conn: Some(self.writer.acquire().await?),
            sealer: Arc::clone(&self.sealer),
            wal: Arc::clone(&self.wal),
            known: Preamble::default(),
            sql: String::new(),
            args: Vec::new(),
        };
        type Row =
            (Option<Vec<u8>>, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);
        let row: Row = sqlx::query_as(
            "BEGIN IMMEDIATE; \
             SELECT (SELECT value FROM kv WHERE key = 'generation'), \
             (SELECT COALESCE(MAX(id), 0) FROM pending), \
             (SELECT COALESCE(MAX(id), 0) FROM quarantine), \
             (SELECT COALESCE(MAX(id), 0) FROM journal), \
             (SELECT COALESCE(MAX(id), 0) FROM sent), \
             (SELECT COALESCE(MAX(id), 0) FROM outbox), \
             (SELECT COALESCE(MAX(id), 0) FROM doc_chunks), \
             (SELECT COUNT(*) FROM pending), \
             (SELECT COUNT(*) FROM outbox), \
             (SELECT COUNT(*) FROM doc_chunks WHERE doc = 0), \
             (SELECT COUNT(*) FROM doc_chunks WHERE doc = 1), \
             (SELECT COUNT(*) FROM doc_chunks WHERE doc = 2), \
             (SELECT COUNT(*) FROM sent WHERE confirmed = 0), \
             (SELECT COALESCE(MAX(id), 0) FROM own)",
        )
        .fetch_one(tx.connection()?)
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        tx.known = Preamble {
            generation: row.0,
            next: [row.1 + 1, row.2 + 1, row.3 + 1, row.4 + 1, row.5 + 1, row.6 + 1, row.13 + 1],
            pending: count(row.7),
            outbox: count(row.8),
            chunks: [count(row.9), count(row.10), count(row.11)],
            unconfirmed: count(row.12),
        };
        Ok(tx)
    }

    /// A setting or piece of state.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LocalError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(sealed,)| {
            let plain = self.sealer.open("kv", key, &sealed)?;
            postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)
        })
        .transpose()
    }

    /// A document's saved bytes: its full save followed by the chunks of
    /// changes stored since, which Automerge loads as one.
    pub async fn doc(&self, doc: DocId) -> Result<Option<Zeroizing<Vec<u8>>>, LocalError> {
        let code = i64::from(doc.code());
        let base: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM docs WHERE doc = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        let Some((sealed,)) = base else { return Ok(None) };
        let mut bytes = self.sealer.open("docs", doc.name(), &sealed)?;
        let chunks: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, value FROM doc_chunks WHERE doc = $1 ORDER BY id")
                .bind(code)
                .fetch_all(&self.pool)
                .await?;
        for (id, sealed) in chunks {
            bytes.extend_from_slice(&self.sealer.open("doc_chunks", &id.to_string(), &sealed)?);
        }
        Ok(Some(bytes))
    }

    /// The outbox, oldest first: (position, envelope).
    pub async fn outbox(&self) -> Result<Vec<(i64, Vec<u8>)>, LocalError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, value FROM outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(id, sealed)| {
                Ok((id, self.sealer.open("outbox", &id.to_string(), &sealed)?.to_vec()))
            })
            .collect()
    }

    /// How many envelopes wait in the outbox.
    pub async fn outbox_len(&self) -> Result<u64, LocalError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Own envelopes not yet seen on a fetched page, oldest first.
    pub async fn unconfirmed<T: DeserializeOwned>(&self) -> Result<Vec<(i64, T)>, LocalError> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, value FROM sent WHERE confirmed = 0 ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, sealed)| {
                let plain = self.sealer.open("sent", &id.to_string(), &sealed)?;
                Ok((id, postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)?))
            })
            .collect()
    }

    /// The newest row of kept own envelopes (0 if none): rows added later
    /// have higher numbers.
    pub async fn sent_watermark(&self) -> Result<i64, LocalError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM sent").fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// How many own envelopes are not yet confirmed.
    pub async fn unconfirmed_len(&self) -> Result<u64, LocalError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sent WHERE confirmed = 0")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Values of a list table, oldest first.
    pub async fn list<T: DeserializeOwned>(
        &self,
        table: ListTable,
    ) -> Result<Vec<(i64, T)>, LocalError> {
        let sql = format!("SELECT id, value FROM {} ORDER BY id", table.name());
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(id, sealed)| {
                let plain = self.sealer.open(table.name(), &id.to_string(), &sealed)?;
                Ok((id, postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)?))
            })
            .collect()
    }

    /// One row of a list table, if it is there.
    pub async fn row<T: DeserializeOwned>(
        &self,
        table: ListTable,
        id: i64,
    ) -> Result<Option<T>, LocalError> {
        let sql = format!("SELECT value FROM {} WHERE id = $1", table.name());
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.map(|(sealed,)| {
            let plain = self.sealer.open(table.name(), &id.to_string(), &sealed)?;
            postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)
        })
        .transpose()
    }

    /// The row ids of a list table, oldest first.
    pub async fn ids(&self, table: ListTable) -> Result<Vec<i64>, LocalError> {
        let sql = format!("SELECT id FROM {} ORDER BY id", table.name());
        let rows: Vec<(i64,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The newest row of a list table (0 if it is empty).
    pub async fn newest(&self, table: ListTable) -> Result<i64, LocalError> {
        let sql = format!("SELECT COALESCE(MAX(id), 0) FROM {}", table.name());
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// How many rows a list table holds.
    pub async fn count(&self, table: ListTable) -> Result<u64, LocalError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_with_its_own_key() {
        let key = SymmetricKey::from_bytes([7; 32]);
        let sealer = Sealer::new(&key);
        let sealed = sealer.seal("kv", "sync", b"state").unwrap();
        assert_eq!(sealer.open("kv", "sync", &sealed).unwrap().as_slice(), b"state");
        assert!(!sealed.windows(5).any(|w| w == b"state"));
        assert!(matches!(sealer.open("kv", "membership", &sealed), Err(LocalError::Corrupt)));
        assert!(matches!(sealer.open("outbox", "sync", &sealed), Err(LocalError::Corrupt)));
        let other = Sealer::new(&SymmetricKey::from_bytes([8; 32]));
        assert!(matches!(other.open("kv", "sync", &sealed), Err(LocalError::Corrupt)));
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(matches!(sealer.open("kv", "sync", &flipped), Err(LocalError::Corrupt)));
        assert!(matches!(sealer.open("kv", "sync", &sealed[..20]), Err(LocalError::Corrupt)));
    }

    /// A migration file that is not registered would be silently ignored.
    #[test]
    fn migrations_are_all_registered() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let expected: Vec<String> = MIGRATIONS
            .iter()
            .map(|(version, name, _)| format!("{version:04}_{name}.sql"))
            .collect();
        assert_eq!(files, expected);
        for (i, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
            assert_eq!(*sql, std::fs::read_to_string(dir.join(&files[i])).unwrap());
        }
    }

    #[tokio::test]
    async fn a_read_only_or_full_store_is_said_as_such() {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = SqliteConnectOptions::new()
            .in_memory(true)
            .pragma("query_only", "1")
            .connect()
            .await
            .unwrap();
        let refused = sqlx::query("CREATE TABLE t (x)").execute(&mut conn).await.unwrap_err();
        let error = LocalError::from(refused);
        assert!(matches!(error, LocalError::ReadOnly), "{error:?}");
        assert!(error.to_string().contains("read-only: this change was not saved"));
        conn.close().await.unwrap();
        let full = LocalError::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(matches!(full, LocalError::NoSpace), "{full:?}");
        assert!(full.to_string().starts_with("there is no room left on the disk"));
    }

    /// A transaction is opened and committed by statements of its own, so
    /// one given up halfway must not stay open on its connection.
    #[tokio::test]
    async fn a_transaction_given_up_leaves_nothing_and_the_next_one_begins() {
        let dir = std::env::temp_dir().join(format!("cove-localdb-drop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = LocalDb::open(&dir.join("device.db"), &SymmetricKey::from_bytes([1; 32]))
            .await
            .unwrap();
        // Each is given up with its transaction open, on the writer's one
        // connection.
        for round in 0..4 {
            let mut tx = db.begin().await.unwrap();
            tx.put("name", &format!("dropped {round}")).unwrap();
            tx.push(ListTable::Journal, &"dropped".to_owned()).unwrap();
            drop(tx);
        }
        assert_eq!(db.get::<String>("name").await.unwrap(), None);
        assert_eq!(db.count(ListTable::Journal).await.unwrap(), 0);
        for round in 0..4 {
            let mut tx = db.begin().await.unwrap();
            tx.put("name", &format!("kept {round}")).unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(db.get::<String>("name").await.unwrap().as_deref(), Some("kept 3"));
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_database_from_another_keystore_is_refused_as_damaged() {
        const MARKER: &str = "MARKER-journal-entry-93ab";
        let dir = std::env::temp_dir().join(format!("cove-localdb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("device.db");
        let db = LocalDb::open(&path, &SymmetricKey::from_bytes([1; 32])).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.put("name", &"value".to_owned()).unwrap();
        tx.push(ListTable::Journal, &MARKER.to_owned()).unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.get::<String>("name").await.unwrap().as_deref(), Some("value"));
        db.close().await;

        let other = LocalDb::open(&path, &SymmetricKey::from_bytes([2; 32])).await.unwrap();
        assert!(matches!(other.get::<String>("name").await, Err(LocalError::Corrupt)));
        assert!(matches!(other.list::<String>(ListTable::Journal).await, Err(LocalError::Corrupt)));
        other.close().await;
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
