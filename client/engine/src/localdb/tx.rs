//! A write transaction: it reads what it needs up front in one statement,
//! buffers its writes, and sends them as one statement list just before it
//! commits.

use super::{CHUNK_SLOT, GENERATION, ListTable, LocalError, OUTBOX_SLOT, Sealer};
use cove_shared::DocId;
use serde::Serialize;
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// What a write transaction reads up front.
#[derive(Debug, Clone, Default)]
pub(super) struct Preamble {
    /// The sealed generation token, if any.
    pub(super) generation: Option<Vec<u8>>,
    /// The next row number for each list table and the outbox.
    pub(super) next: [i64; 7],
    /// Rows held back.
    pub(super) pending: u64,
    /// Rows in the outbox.
    pub(super) outbox: u64,
    /// Own envelopes not yet seen on a fetched page.
    pub(super) unconfirmed: u64,
    /// Chunks stored after each document's full save.
    pub(super) chunks: [u64; 3],
}

/// A write transaction on the local database. It holds SQLite's write lock
/// from its first statement, so that two processes using the same state
/// directory (a `cove daemon` and a one-off command) take turns. Dropped
/// without a commit, or if its commit fails, it closes its connection,
/// which rolls it back (when a commit fails on a full disk, SQLite may
/// already have rolled it back by itself); a connection with a transaction
/// open is never used again.
pub struct LocalTx {
    /// Taken once the commit has succeeded.
    pub(super) conn: Option<PoolConnection<Sqlite>>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) wal: Arc<PathBuf>,
    pub(super) known: Preamble,
    /// Writes, sent to SQLite together at commit: each statement sent on
    /// its own is a round trip to SQLite's thread.
    pub(super) sql: String,
    pub(super) args: Vec<Arg>,
}

/// How durable a commit must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the commit returns (the log is synced): for anything
    /// that could not be had again, such as a person's edit, or a sequence
    /// number this device has used.
    Synced,
    /// Safe from a crash of the program, and on disk at the next synced
    /// commit or checkpoint; a power cut may lose it. For what the relay
    /// can serve again, such as received changes and acknowledgements.
    Eventual,
}

/// A value bound into a buffered statement.
pub(super) enum Arg {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Drop for LocalTx {
    fn drop(&mut self) {
        // Not committed: see the type's documentation.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl LocalTx {
    /// Its connection, until the commit.
    pub(super) fn connection(&mut self) -> Result<&mut sqlx::SqliteConnection, LocalError> {
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(LocalError::Io(std::io::Error::other("the transaction has ended"))),
        }
    }

    /// The generation token (the `kv` row [`GENERATION`]) as the
    /// transaction found it.
    pub fn generation(&self) -> Result<Option<u64>, LocalError> {
        self.known
            .generation
            .as_ref()
            .map(|sealed| {
                let plain = self.sealer.open("kv", GENERATION, sealed)?;
                postcard::from_bytes(&plain).map_err(|_| LocalError::Corrupt)
            })
            .transpose()
    }

    /// How many envelopes wait in the outbox.
    pub fn outbox_len(&self) -> u64 {
        self.known.outbox
    }

    /// How many envelopes are held back.
    pub fn pending(&self) -> u64 {
        self.known.pending
    }

    /// How many own envelopes are not yet confirmed.
    pub fn unconfirmed(&self) -> u64 {
        self.known.unconfirmed
    }

    /// Chunks stored after a document's full save.
    pub fn chunks(&self, doc: DocId) -> u64 {
        self.known.chunks[usize::from(doc.code())]
    }

    /// Buffers a statement; every `?` in `sql` takes the next of `args`.
    fn statement(&mut self, sql: &str, args: impl IntoIterator<Item = Arg>) {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self.args.extend(args);
    }

    fn next(&mut self, slot: usize) -> i64 {
        let id = self.known.next[slot];
        self.known.next[slot] += 1;
        id
    }

    /// Sets a setting or piece of state.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), LocalError> {
        self.put_many(&[(key, &postcard_bytes(value)?)])
    }

    /// Sets several settings at once.
    pub fn put_many(&mut self, values: &[(&str, &[u8])]) -> Result<(), LocalError> {
        if values.is_empty() {
            return Ok(());
        }
        let rows = vec!["(?, ?)"; values.len()].join(", ");
        let mut args = Vec::with_capacity(values.len() * 2);
        for (key, plain) in values {
            args.push(Arg::Text((*key).to_owned()));
            args.push(Arg::Blob(self.sealer.seal("kv", key, plain)?));
        }
        let sql = format!(
            "INSERT INTO kv (key, value) VALUES {rows} \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        );
        self.statement(&sql, args);
        Ok(())
    }

    /// Stores a document's full save, replacing its chunks.
    pub fn put_doc(&mut self, doc: DocId, bytes: &[u8]) -> Result<(), LocalError> {
        let sealed = self.sealer.seal("docs", doc.name(), bytes)?;
        let code = i64::from(doc.code());
        self.statement(
            "INSERT INTO docs (doc, value) VALUES (?, ?) \
             ON CONFLICT (doc) DO UPDATE SET value = excluded.value",
            [Arg::Int(code), Arg::Blob(sealed)],
        );
        if self.known.chunks[usize::from(doc.code())] > 0 {
            self.statement("DELETE FROM doc_chunks WHERE doc = ?", [Arg::Int(code)]);
            self.known.chunks[usize::from(doc.code())] = 0;
        }
        Ok(())
    }

    /// Appends the changes made to a document since it was last stored.
    pub fn append_doc(&mut self, doc: DocId, chunk: &[u8]) -> Result<(), LocalError> {
        let id = self.next(CHUNK_SLOT);
        let sealed = self.sealer.seal("doc_chunks", &id.to_string(), chunk)?;
        self.statement(
            "INSERT INTO doc_chunks (id, doc, value) VALUES (?, ?, ?)",
            [Arg::Int(id), Arg::Int(i64::from(doc.code())), Arg::Blob(sealed)],
        );
        self.known.chunks[usize::from(doc.code())] += 1;
        Ok(())
    }

    /// Appends an envelope to the outbox.
    pub fn push_outbox(&mut self, envelope: &[u8]) -> Result<i64, LocalError> {
        let id = self.next(OUTBOX_SLOT);
        let sealed = self.sealer.seal("outbox", &id.to_string(), envelope)?;
        self.statement(
            "INSERT INTO outbox (id, value) VALUES (?, ?)",
            [Arg::Int(id), Arg::Blob(sealed)],
        );
        self.known.outbox += 1;
        Ok(id)
    }

    /// Replaces an outbox entry's envelope in place (sealed again under a
    /// newer key), keeping its position.
    pub fn replace_outbox(&mut self, id: i64, envelope: &[u8]) -> Result<(), LocalError> {
        let sealed = self.sealer.seal("outbox", &id.to_string(), envelope)?;
        self.statement(
            "UPDATE outbox SET value = ? WHERE id = ?",
            [Arg::Blob(sealed), Arg::Int(id)],
        );
        Ok(())
    }

    /// Removes an outbox entry the relay has stored.
    pub fn remove_outbox(&mut self, id: i64) {
        self.statement("DELETE FROM outbox WHERE id = ?", [Arg::Int(id)]);
        self.known.outbox = self.known.outbox.saturating_sub(1);
    }

    /// Keeps one of this device's envelopes that the relay says it stored,
    /// as unconfirmed until a fetched page shows it.
    pub fn push_unconfirmed<T: Serialize>(&mut self, value: &T) -> Result<i64, LocalError> {
        let id = self.next(ListTable::Sent.slot());
        let sealed = self.sealer.seal("sent", &id.to_string(), &postcard_bytes(value)?)?;
        self.statement(
            "INSERT INTO sent (id, value, confirmed) VALUES (?, ?, 0)",
            [Arg::Int(id), Arg::Blob(sealed)],
        );
        self.known.unconfirmed += 1;
        Ok(id)
    }

    /// Replaces a kept own envelope's record, and sets whether a fetched
    /// page has shown it.
    pub fn set_sent<T: Serialize>(
        &mut self,
        id: i64,
        value: &T,
        confirmed: bool,
    ) -> Result<(), LocalError> {
        let sealed = self.sealer.seal("sent", &id.to_string(), &postcard_bytes(value)?)?;
        self.statement(
            "UPDATE sent SET value = ?, confirmed = ? WHERE id = ?",
            [Arg::Blob(sealed), Arg::Int(i64::from(confirmed)), Arg::Int(id)],
        );
        Ok(())
    }

    /// Keeps only the newest `keep` confirmed own envelopes; unconfirmed
    /// ones are never dropped here.
    pub fn prune_confirmed(&mut self, keep: u64) {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let oldest_kept = self.known.next[ListTable::Sent.slot()].saturating_sub(keep);
        if oldest_kept > 1 {
            self.statement(
                "DELETE FROM sent WHERE confirmed = 1 AND id < ?",
                [Arg::Int(oldest_kept)],
            );
        }
    }

    /// Appends a value to a list table.
    pub fn push<T: Serialize>(&mut self, table: ListTable, value: &T) -> Result<i64, LocalError> {
        let id = self.next(table.slot());
        let plain = postcard_bytes(value)?;
        let sealed = self.sealer.seal(table.name(), &id.to_string(), &plain)?;
        let sql = format!("INSERT INTO {} (id, value) VALUES (?, ?)", table.name());
        self.statement(&sql, [Arg::Int(id), Arg::Blob(sealed)]);
        if table == ListTable::Pending {
            self.known.pending += 1;
        }
        Ok(id)
    }

    /// Replaces the value of a row of a list table.
    pub fn replace<T: Serialize>(
        &mut self,
        table: ListTable,
        id: i64,
        value: &T,
    ) -> Result<(), LocalError> {
        let sealed = self.sealer.seal(table.name(), &id.to_string(), &postcard_bytes(value)?)?;
        let sql = format!("UPDATE {} SET value = ? WHERE id = ?", table.name());
        self.statement(&sql, [Arg::Blob(sealed), Arg::Int(id)]);
        Ok(())
    }

    /// Removes a row of a list table.
    pub fn remove(&mut self, table: ListTable, id: i64) {
        let sql = format!("DELETE FROM {} WHERE id = ?", table.name());
        self.statement(&sql, [Arg::Int(id)]);
        if table == ListTable::Pending {
            self.known.pending = self.known.pending.saturating_sub(1);
        }
    }

    /// Keeps only the newest `keep` rows of a list table.
    pub fn prune(&mut self, table: ListTable, keep: u64) {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let oldest_kept = self.known.next[table.slot()].saturating_sub(keep);
        if oldest_kept > 1 {
            let sql = format!("DELETE FROM {} WHERE id < ?", table.name());
            self.statement(&sql, [Arg::Int(oldest_kept)]);
        }
    }

    /// Writes everything buffered, in one statement list, and commits,
    /// synced to disk before returning. See [`Self::commit_with`].
    pub async fn commit(self) -> Result<(), LocalError> {
        self.commit_with(Durability::Synced).await
    }

    /// Writes everything buffered and commits, in one statement list: one
    /// round trip to SQLite's thread. If any statement fails, nothing after
    /// it runs, and the transaction is rolled back with its connection.
    pub async fn commit_with(mut self, durability: Durability) -> Result<(), LocalError> {
        let mut sql = std::mem::take(&mut self.sql);
        sql.push_str("COMMIT;");
        // Prepared once and kept: the lists of an edit, or of a received
        // batch, are the same statements from one time to the next, and
        // preparing them again cost about 7% of a device's work.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in std::mem::take(&mut self.args) {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Blob(v) => query.bind(v),
            };
        }
        query.execute(self.connection()?).await?;
        // Committed: the connection goes back to the pool.
        drop(self.conn.take());
        if durability == Durability::Synced {
            sync_log(Arc::clone(&self.wal)).await?;
        }
        Ok(())
    }
}

/// Syncs SQLite's write-ahead log to disk, which is what `synchronous =
/// FULL` would have done at the commit: in WAL mode a commit is durable once
/// its frames in the log are. A log that is gone was checkpointed, and a
/// checkpoint syncs both the log and the database.
async fn sync_log(wal: Arc<PathBuf>) -> Result<(), LocalError> {
    let synced = tokio::task::spawn_blocking(move || match std::fs::File::open(&*wal) {
        Ok(file) => file.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    })
    .await
    .map_err(|_| LocalError::Io(std::io::Error::other("the disk sync task stopped")))?;
    synced.map_err(LocalError::from)
}

/// A value's postcard encoding, wiped when dropped.
fn postcard_bytes<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, LocalError> {
    Ok(Zeroizing::new(postcard::to_allocvec(value).map_err(|_| LocalError::Corrupt)?))
}
