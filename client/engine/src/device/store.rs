//! How a device writes: every change to its state is one local transaction
//! that first takes SQLite's write lock, then reloads whatever another
//! process on the same state directory committed since, then changes memory
//! and disk together. If anything fails, memory is reloaded from disk, so
//! it is never ahead of what was committed.

use super::{Device, DeviceError, SyncState};
use crate::documents::Documents;
use crate::localdb::{CHUNKS_PER_SAVE, Durability, ListTable, LocalError, LocalTx};
use cove_shared::freshness::Freshness;
use cove_shared::random::Entropy;
use cove_shared::wire::Blob;
use cove_shared::{DocId, Epoch, Keyring, MembershipLog, OsEntropy, SymmetricKey};
use zeroize::Zeroizing;

pub(super) const KV_MEMBERSHIP: &str = "membership";
pub(super) const KV_FRESHNESS: &str = "freshness";
pub(super) const KV_SYNC: &str = "sync";
pub(super) const KV_CHECKPOINTS: &str = "checkpoints";
pub(super) const KV_SIGNALS: &str = "signals";
pub(super) const KV_REMINDERS: &str = "reminders";
pub(super) const KV_GENERATION: &str = crate::localdb::GENERATION;
pub(super) const KV_READY: &str = "ready";
pub(super) const KV_FORMAT: &str = "format";

/// The layout of the values this version keeps in the local database. A
/// database written in another layout is refused with a sentence, never
/// read as if it were damaged. Before Cove 1.0 the layout may change
/// between versions; see `docs/device.md`.
pub const LOCAL_FORMAT: u32 = 3;

/// The encodings of the state rows this process last wrote. A row whose
/// encoding is the same at the next write is not sealed and written again:
/// an edit changes the sync state, rarely the rest.
/// Forgotten whenever the state is reloaded, since another process may have
/// written in between.
#[derive(Default)]
pub(super) struct Written(Vec<(&'static str, Zeroizing<Vec<u8>>)>);

impl Written {
    fn changed(&self, key: &str, bytes: &[u8]) -> bool {
        self.0.iter().find(|(k, _)| *k == key).is_none_or(|(_, v)| v.as_slice() != bytes)
    }

    fn note(&mut self, key: &'static str, bytes: Zeroizing<Vec<u8>>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = bytes,
            None => self.0.push((key, bytes)),
        }
    }
}

/// A state row the device can do without: one that does not open (damaged,
/// or from an older layout) reads as empty; any other failure stands.
fn dispensable<T: Default>(read: Result<T, LocalError>) -> Result<T, DeviceError> {
    match read {
        Err(LocalError::Corrupt) => Ok(T::default()),
        read => Ok(read?),
    }
}

/// A value's stored encoding, wiped when dropped.
fn encode<T: serde::Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, DeviceError> {
    Ok(Zeroizing::new(postcard::to_allocvec(value).map_err(|_| LocalError::Corrupt)?))
}

impl Device {
    /// Runs `change` as one local transaction; see the module documentation.
    /// The sync state, freshness marks and (if it grew) the membership log
    /// are written with it.
    pub(crate) async fn write<T>(
        &mut self,
        change: impl AsyncFnOnce(&mut Device, &mut LocalTx) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let mut tx = self.db.begin().await?;
        let result = match self.catch_up(&mut tx).await {
            Ok(()) => change(self, &mut tx).await,
            Err(error) => Err(error),
        };
        let outcome = self.finish(tx, result).await;
        self.must_sync = false;
        if outcome.is_err() {
            // Memory may be ahead of the database: take the database's word,
            // now or, failing that, at the next write.
            self.generation = None;
            self.written = Written::default();
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "reloading the local state failed");
            }
        }
        outcome
    }

    async fn finish<T>(
        &mut self,
        mut tx: LocalTx,
        result: Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let value = result?;
        // A signal is never kept past its time to live, except a stop that
        // stands until it is answered.
        let now = self.now_ms();
        let desk = &self.desk;
        self.sync.signals.retain(|s| !s.expired(now) || desk.stands(s.from, s.signal.sent_at));
        self.persist(&mut tx).await?;
        let durability = if std::mem::take(&mut self.must_sync) {
            Durability::Synced
        } else {
            Durability::Eventual
        };
        tx.commit_with(durability).await?;
        Ok(value)
    }

    /// Saves a new device's first state, into a database that holds none.
    pub(super) async fn save_new(&mut self) -> Result<(), DeviceError> {
        let mut tx = self.db.begin().await?;
        tx.put(KV_FORMAT, &LOCAL_FORMAT)?;
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the sync state, as one local transaction.
    pub(super) async fn update<T>(
        &mut self,
        change: impl FnOnce(&mut SyncState) -> T,
    ) -> Result<T, DeviceError> {
        self.write(async |device, _| Ok(change(&mut device.sync))).await
    }

    /// Inside a write transaction: reloads if another process wrote since.
    async fn catch_up(&mut self, tx: &mut LocalTx) -> Result<(), DeviceError> {
        let generation = tx.generation()?;
        if self.generation.is_none() || generation != self.generation {
            self.reload().await?;
        }
        Ok(())
    }

    /// Writes the sync state, freshness and membership log, and a fresh
    /// random generation token, so that another process sees the change.
    async fn persist(&mut self, tx: &mut LocalTx) -> Result<(), DeviceError> {
        let generation = u64::from_be_bytes(OsEntropy.array());
        let sync = encode(&self.sync)?;
        let freshness = encode(&self.freshness.to_bytes())?;
        let token = encode(&generation)?;
        let book = encode(&self.book)?;
        let desk = encode(&self.desk)?;
        let reminded = encode(&self.reminded)?;
        let state = [
            (KV_SYNC, sync),
            (KV_FRESHNESS, freshness),
            (KV_CHECKPOINTS, book),
            (KV_SIGNALS, desk),
            (KV_REMINDERS, reminded),
        ];
        let mut rows: Vec<(&str, &[u8])> = state
            .iter()
            .filter(|(key, bytes)| self.written.changed(key, bytes))
            .map(|(key, bytes)| (*key, bytes.as_slice()))
            .collect();
        rows.push((KV_GENERATION, &token));
        let membership;
        if self.log.state().len() != self.log_saved {
            let entries: Vec<Blob> =
                self.log.entries().iter().map(|e| Blob(e.encode().to_vec())).collect();
            membership = encode(&entries)?;
            rows.push((KV_MEMBERSHIP, &membership));
        }
        // One statement for all of them.
        tx.put_many(&rows)?;
        self.own.persist(tx)?;
        drop(rows);
        for (key, bytes) in state {
            self.written.note(key, bytes);
        }
        self.generation = Some(generation);
        self.log_saved = self.log.state().len();
        Ok(())
    }

    /// Stores a document changed in this transaction: the changes since it
    /// was last stored, as a chunk, or now and then a full save.
    pub(crate) async fn store_doc(
        &mut self,
        tx: &mut LocalTx,
        doc: DocId,
    ) -> Result<(), DeviceError> {
        if self.docs.saved_heads(doc).is_empty() || tx.chunks(doc) >= CHUNKS_PER_SAVE {
            tx.put_doc(doc, &self.docs.save(doc))?;
        } else {
            let chunk = self.docs.unsaved(doc);
            if !chunk.is_empty() {
                tx.append_doc(doc, &chunk)?;
            }
        }
        self.docs.mark_saved(doc);
        Ok(())
    }

    /// Reloads everything from the local database.
    pub(crate) async fn reload(&mut self) -> Result<(), DeviceError> {
        // The token first: if another process writes while this reads, the
        // token read here is already stale, and the next check reloads
        // again. (Read last, it could name a write this read missed.)
        let generation = self.db.get(KV_GENERATION).await?;
        self.written = Written::default();
        let genesis = self.keys().genesis;
        if let Some(entries) = self.db.get::<Vec<Blob>>(KV_MEMBERSHIP).await? {
            self.log =
                MembershipLog::decode(entries.iter().map(|b| b.0.as_slice()), Some(genesis))?;
        }
        self.log_saved = self.log.state().len();
        let me = self.id();
        let mut saved = Vec::with_capacity(3);
        for doc in DocId::ALL {
            saved.push(self.db.doc(doc).await?);
        }
        self.docs =
            Documents::load(&me, [0, 1, 2].map(|i| saved[i].as_deref().map(Vec::as_slice)))?;
        self.sync = self.db.get(KV_SYNC).await?.unwrap_or_default();
        // Kept apart from the sync state, so that a directory made before
        // checkpoints existed still opens (with none).
        // Only receipts and comparisons are lost, and rebuilt as checkpoints
        // come: never a reason to refuse the device.
        self.book = dispensable(self.db.get(KV_CHECKPOINTS).await)?.unwrap_or_default();
        let legacy = std::mem::take(&mut self.book.own);
        let stored = dispensable(self.db.list(ListTable::Own).await)?;
        self.own = super::checkpoints::OwnLog::load(stored, legacy);
        // Likewise: answers and standing stops are lost at worst, never the
        // device.
        self.desk = dispensable(self.db.get(KV_SIGNALS).await)?.unwrap_or_default();
        self.reminded = dispensable(self.db.get(KV_REMINDERS).await)?.unwrap_or_default();
        self.freshness = match self.db.get::<Vec<u8>>(KV_FRESHNESS).await? {
            Some(bytes) => Freshness::from_bytes(&bytes).map_err(|_| LocalError::Corrupt)?,
            None => Freshness::new(),
        };
        self.generation = generation;
        self.rebuild_keyring()?;
        Ok(())
    }

    /// Reloads if another process wrote since, without writing: for a
    /// process that only reads, such as the daemon between deliveries.
    pub async fn refresh(&mut self) -> Result<(), DeviceError> {
        let generation: Option<u64> = self.db.get(KV_GENERATION).await?;
        if self.generation.is_none() || generation != self.generation {
            self.reload().await?;
        }
        Ok(())
    }

    /// Keys for every epoch: from the keystore where its key matches the
    /// key id the log announced, else unwrapped from the log. Alarms for
    /// unusable wraps are raised in memory and saved with the next write.
    pub(super) fn rebuild_keyring(&mut self) -> Result<(), DeviceError> {
        let state = self.log.state();
        let mut ring = Keyring::from_log(&self.log, self.keystore.device());
        let keys = self.keys().clone();
        for (epoch, bytes) in &keys.epochs {
            let epoch = Epoch(*epoch);
            if ring.key(epoch).is_none() {
                let key = SymmetricKey::from_bytes(*bytes);
                let id = cove_shared::EpochKeys::derive(state.plan(), epoch, &key).key_id();
                if state.key_id(epoch) == Some(id) {
                    ring.insert(epoch, key);
                }
            }
        }
        for epoch in ring.unusable() {
            if ring.key(*epoch).is_none() {
                self.sync.raise(super::Alarm::UnusableKey { epoch: epoch.0 }, self.clock.now_ms());
            }
        }
        // Keep the keystore's copy complete.
        let mut changed = false;
        if let Some(plan) = self.keystore.plan.as_mut() {
            for epoch in ring.epochs() {
                if plan.epoch_key(epoch).is_none()
                    && let Some(key) = ring.key(epoch)
                {
                    plan.set_epoch_key(epoch, key);
                    changed = true;
                }
            }
        }
        if changed {
            self.keystore.save(&self.home.keystore())?;
        }
        self.keyring = ring;
        Ok(())
    }
}
