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

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use cove_shared::random::Entropy;
use cove_shared::{DocId, OsEntropy, SymmetricKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{SqlSafeStr, Sqlite, Transaction};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The local database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// SQLite failed (including a full disk).
    #[error("the local database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("the local database could not be prepared: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed value did not open: the database was altered, damaged, or
    /// belongs to another keystore.
    #[error("the local database is damaged or does not belong to this keystore")]
    Corrupt,
}

/// Seals and opens local values with the storage key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn label(table: &str, key: &str) -> Vec<u8> {
    format!("cove/v1/local/{table}/{key}").into_bytes()
}

impl Sealer {
    /// A sealer for `key`.
    pub fn new(key: &SymmetricKey) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.as_bytes().into()) }
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `table` and `key`.
    pub fn seal(&self, table: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>, LocalError> {
        let nonce: [u8; 24] = OsEntropy.array();
        let mut out = Vec::with_capacity(24 + plain.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let ad = label(table, key);
        // Fails only beyond 256 GiB; the plaintext must never be stored then.
        let tag = self
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &ad, (&mut out[24..]).into())
            .map_err(|_| LocalError::Corrupt)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a value sealed for `table` and `key`.
    pub fn open(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, LocalError> {
        if sealed.len() < 40 {
            return Err(LocalError::Corrupt);
        }
        let (nonce, rest) = sealed.split_at(24);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| LocalError::Corrupt)?;
        let tag = Tag::try_from(tag).map_err(|_| LocalError::Corrupt)?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        self.cipher
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &label(table, key),
                plain.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| LocalError::Corrupt)?;
        Ok(plain)
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        include_str!("../migrations/0001_init.sql").into_sql_str(),
        false,
    )])
}

/// The open local database. Cloning it is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct LocalDb {
    pool: SqlitePool,
    sealer: Arc<Sealer>,
}

/// A write transaction on the local database. It holds SQLite's write lock
/// from its first statement, so that two processes using the same state
/// directory (a `cove daemon` and a one-off command) take turns.
pub struct LocalTx {
    tx: Transaction<'static, Sqlite>,
    sealer: Arc<Sealer>,
}

impl LocalDb {
    /// Opens (creating if missing) the database at `path`, sealed with `key`.
    pub async fn open(path: &Path, key: &SymmetricKey) -> Result<Self, LocalError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // An edit is acknowledged to the person only once it is on disk.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        // Two connections: one may hold the write lock while the other reads.
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await?;
        migrator().run(&pool).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(Self { pool, sealer: Arc::new(Sealer::new(key)) })
    }

    /// Closes the database, checkpointing its log.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`).
    pub async fn begin(&self) -> Result<LocalTx, LocalError> {
        Ok(LocalTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            sealer: Arc::clone(&self.sealer),
        })
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

    /// A document's saved bytes.
    pub async fn doc(&self, doc: DocId) -> Result<Option<Zeroizing<Vec<u8>>>, LocalError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM docs WHERE doc = $1")
            .bind(i64::from(doc.code()))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(sealed,)| self.sealer.open("docs", doc.name(), &sealed)).transpose()
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

    /// Values of a list table (`pending`, `quarantine`, `journal`), oldest first.
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

    /// How many envelopes wait in the outbox.
    pub async fn outbox_len(&self) -> Result<u64, LocalError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
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

    /// How many rows a list table holds.
    pub async fn count(&self, table: ListTable) -> Result<u64, LocalError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

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
}

impl ListTable {
    fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Quarantine => "quarantine",
            Self::Journal => "journal",
            Self::Sent => "sent",
        }
    }
}

impl LocalTx {
    /// Reads a setting or piece of state inside the transaction.
    pub async fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, LocalError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|(sealed,)| {
            let plain = self.sealer.open("kv", key, &sealed)?;
            postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)
        })
        .transpose()
    }

    /// Sets a setting or piece of state.
    pub async fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), LocalError> {
        let plain = Zeroizing::new(postcard::to_allocvec(value).map_err(|_| LocalError::Corrupt)?);
        let sealed = self.sealer.seal("kv", key, &plain)?;
        sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(sealed)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a document's saved bytes.
    pub async fn put_doc(&mut self, doc: DocId, bytes: &[u8]) -> Result<(), LocalError> {
        let sealed = self.sealer.seal("docs", doc.name(), bytes)?;
        sqlx::query("INSERT INTO docs (doc, value) VALUES ($1, $2) ON CONFLICT (doc) DO UPDATE SET value = excluded.value")
            .bind(i64::from(doc.code()))
            .bind(sealed)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Appends an envelope to the outbox.
    pub async fn push_outbox(&mut self, envelope: &[u8]) -> Result<i64, LocalError> {
        let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")
            .fetch_one(&mut *self.tx)
            .await?;
        let sealed = self.sealer.seal("outbox", &id.to_string(), envelope)?;
        sqlx::query("INSERT INTO outbox (id, value) VALUES ($1, $2)")
            .bind(id)
            .bind(sealed)
            .execute(&mut *self.tx)
            .await?;
        Ok(id)
    }

    /// Removes an outbox entry the relay has stored.
    pub async fn remove_outbox(&mut self, id: i64) -> Result<(), LocalError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1").bind(id).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Appends a value to a list table.
    pub async fn push<T: Serialize>(
        &mut self,
        table: ListTable,
        value: &T,
    ) -> Result<i64, LocalError> {
        let sql = format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {}", table.name());
        let (id,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *self.tx).await?;
        let plain = Zeroizing::new(postcard::to_allocvec(value).map_err(|_| LocalError::Corrupt)?);
        let sealed = self.sealer.seal(table.name(), &id.to_string(), &plain)?;
        let sql = format!("INSERT INTO {} (id, value) VALUES ($1, $2)", table.name());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(sealed).execute(&mut *self.tx).await?;
        Ok(id)
    }

    /// Removes a row of a list table.
    pub async fn remove(&mut self, table: ListTable, id: i64) -> Result<(), LocalError> {
        let sql = format!("DELETE FROM {} WHERE id = $1", table.name());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// How many rows a list table holds.
    pub async fn count(&mut self, table: ListTable) -> Result<u64, LocalError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *self.tx).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many envelopes wait in the outbox.
    pub async fn outbox_len(&mut self) -> Result<u64, LocalError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox").fetch_one(&mut *self.tx).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Keeps only the newest `keep` rows of a list table.
    pub async fn prune(&mut self, table: ListTable, keep: u64) -> Result<(), LocalError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let sql = format!(
            "DELETE FROM {0} WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM {0}) - $1",
            table.name()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(keep).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), LocalError> {
        self.tx.commit().await?;
        Ok(())
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

    #[tokio::test]
    async fn a_database_from_another_keystore_is_refused_as_damaged() {
        const MARKER: &str = "MARKER-journal-entry-93ab";
        let dir = std::env::temp_dir().join(format!("cove-localdb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("device.db");
        let db = LocalDb::open(&path, &SymmetricKey::from_bytes([1; 32])).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.put("name", &"value".to_owned()).await.unwrap();
        tx.push(ListTable::Journal, &MARKER.to_owned()).await.unwrap();
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
