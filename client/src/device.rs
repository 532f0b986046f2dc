//! One device: its unlocked keys, its copy of the plan, and its sync state.
//!
//! A [`Device`] is the only way plan data is read or written. Every write is
//! one local transaction: an edit, the envelope that carries it to the
//! partner (in the outbox) and the stream position it used all commit
//! together, so a crash never loses an edit and never reuses a sequence
//! number. Two processes may share a state directory (a `cove daemon` and a
//! one-off command): each write first takes SQLite's write lock and reloads
//! what the other process wrote since.

use crate::docs::{DocError, Docs};
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore, KeystoreError, PlanKeys};
use crate::localdb::{ListTable, LocalDb, LocalError, LocalTx};
use crate::payload::{Payload, SignalPayload, SnapshotPayload};
use crate::plan::schema;
use automerge::transaction::Transaction;
use cove_shared::envelope::{self, Seal, SealError, Sealed};
use cove_shared::freshness::{Freshness, StreamTip};
use cove_shared::membership::{Appended, Cutoff, Entry, MembershipError};
use cove_shared::wire::{Blob, Cursor, StoredEnvelope};
use cove_shared::{
    DeviceId, DeviceSecret, DocId, EnvelopeHash, Epoch, Keyring, Kind, MembershipLog,
    MembershipState, OsEntropy, Partner, PlanId, Seq, Stream, SymmetricKey,
};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// After this many changes to a document since its last snapshot, the
/// device uploads a new one.
pub const SNAPSHOT_EVERY: u64 = 200;

/// Something a person should know about the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alarm {
    /// Envelopes from a device are missing; later ones are held back.
    Gap {
        /// The sender.
        device: DeviceId,
        /// The document.
        doc: DocId,
        /// The first missing sequence number.
        missing_from: u64,
    },
    /// A device's stream contradicts what this device already holds.
    Fork {
        /// The sender.
        device: DeviceId,
    },
    /// The relay served older state than this device has seen.
    Rollback {
        /// What this device had seen.
        seen: u64,
        /// What the relay served.
        served: u64,
    },
    /// This device has been removed from the plan.
    Revoked,
    /// A key wrapped for this device did not match the plan's key.
    UnusableKey {
        /// The epoch.
        epoch: u32,
    },
    /// A snapshot claimed to hold more than it did.
    BadSnapshot {
        /// The document.
        doc: DocId,
    },
    /// The membership log the relay serves conflicts with this device's.
    MembershipFork,
    /// The relay no longer holds what this device read at a cursor: its log
    /// was rewritten (restored from a backup, or altered).
    Rewritten {
        /// The cursor.
        cursor: u64,
    },
    /// A device was revoked with a cutoff below changes from it that this
    /// device had already applied.
    PastCutoff {
        /// The revoked device.
        device: DeviceId,
        /// The document.
        doc: DocId,
    },
}

impl Alarm {
    /// One sentence for a person; `label` names a device.
    pub fn describe(&self, label: impl Fn(&DeviceId) -> String) -> String {
        match self {
            Self::Gap { device, doc, missing_from } => format!(
                "missing changes from {} since {missing_from} (in the {doc} document); later ones are held back until they arrive",
                label(device)
            ),
            Self::Fork { device } => format!(
                "{} sent two different versions of the same change; the second was refused",
                label(device)
            ),
            Self::Rollback { seen, served } => format!(
                "the relay served older state than this device had already seen ({served} after {seen}); nothing was undone here, but the relay may have been restored from a backup or tampered with"
            ),
            Self::Revoked => "this device has been removed from the plan".to_owned(),
            Self::UnusableKey { epoch } => format!(
                "a key sent to this device for period {epoch} does not match the plan's key; ask your partner to remove and re-pair this device"
            ),
            Self::BadSnapshot { doc } => format!(
                "a snapshot of the {doc} document did not check out and was not used"
            ),
            Self::MembershipFork => "the relay's list of devices contradicts this device's; the relay may be misbehaving".to_owned(),
            Self::Rewritten { cursor } => format!(
                "the relay no longer holds what this device read at position {cursor}; it may have been restored from a backup or tampered with, so this device read its log again and sent what it had lost"
            ),
            Self::PastCutoff { device, doc } => format!(
                "{} was removed with a cutoff below changes this device had already applied (in the {doc} document); they stay here, but devices that had not received them will not apply them",
                label(device)
            ),
        }
    }
}

/// This device's sequence positions and sync progress, persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// Whether the relay has the plan's genesis.
    pub registered: bool,
    /// Every envelope up to this relay cursor has been handled.
    pub cursor: u64,
    /// The highest cursor the relay has reported.
    pub relay_head: u64,
    /// The longest membership log the relay has served.
    pub relay_membership: u64,
    /// The cursor of this device's newest stored envelope.
    pub own_cursor: u64,
    /// This device's own streams: (kind, doc) → (seq, hash).
    pub tips: Vec<OwnTip>,
    /// Changes applied to each document since its last snapshot.
    pub since_snapshot: [u64; 3],
    /// While starting from snapshots: the cursor each document's snapshot covers.
    pub snapshot_covers: [u64; 3],
    /// When each device was last heard from (Unix seconds).
    pub last_seen: Vec<(DeviceId, i64)>,
    /// When this device last finished a sync (Unix seconds).
    pub last_sync: Option<i64>,
    /// Open alarms.
    pub alarms: Vec<Alarm>,
    /// Signals received, newest last (bounded).
    pub signals: Vec<ReceivedSignal>,
    /// For each stream of another device: (sender, kind, doc) and the relay
    /// cursor of its newest applied envelope.
    pub stream_cursors: Vec<(DeviceId, u8, u8, u64)>,
    /// A gap was seen: fetch again from this cursor, in case the relay now
    /// serves what it left out.
    pub refetch_after: Option<u64>,
    /// After a rollback: the relay's log is being read again, and this
    /// device's envelopes that it lost are to be sent again.
    pub resend_pending: bool,
    /// While `resend_pending`: (document code, sequence number) of each of
    /// this device's own `changes` envelopes the relay still serves.
    pub relay_own_seen: Vec<(u8, u64)>,
    /// The relay's compaction point, as its last page said.
    pub relay_compacted: u64,
    /// The envelope at `cursor`, as this device read it.
    pub cursor_mark: Option<CursorMark>,
}

/// What a device read at one relay cursor, to check later that the relay
/// still holds the same thing there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorMark {
    /// The cursor.
    pub cursor: u64,
    /// SHA-256 of the envelope's bytes.
    pub digest: [u8; 32],
    /// The envelope's kind code (0 if its header did not parse).
    pub kind: u8,
}

impl CursorMark {
    /// The mark of a stored envelope.
    pub fn of(item: &StoredEnvelope) -> Self {
        use sha2::Digest;
        Self {
            cursor: item.cursor.0,
            digest: sha2::Sha256::digest(&item.envelope.0).into(),
            kind: envelope::header_of(&item.envelope.0).map_or(0, |h| h.kind.code()),
        }
    }

    /// Whether `item` is the envelope this mark was taken of.
    pub fn matches(&self, item: &StoredEnvelope) -> bool {
        *self == Self::of(item)
    }

    /// Whether the relay may have removed this envelope on purpose: a signal
    /// past its time to live, or changes a snapshot replaced.
    pub fn may_vanish(&self, compacted: Cursor) -> bool {
        self.kind == Kind::Signal.code() || self.cursor <= compacted.0
    }
}

/// One of this device's own streams, (kind, doc), and its tip, (seq, hash).
pub type OwnTip = ((u8, u8), (u64, [u8; 32]));

/// A signal that arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedSignal {
    /// Who sent it.
    pub from: DeviceId,
    /// What it was.
    pub signal: SignalPayload,
    /// When it arrived (Unix milliseconds).
    pub received_at: i64,
}

/// How many of its own stored `changes` envelopes a device keeps, to send
/// again after a relay restore.
pub const SENT_KEPT: u64 = 4096;

/// One of this device's envelopes that the relay stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentEnvelope {
    /// Its document's code.
    pub doc: u8,
    /// Its sequence number in this device's `changes` stream of that document.
    pub seq: u64,
    /// The cursor the relay stored it under.
    pub cursor: u64,
    /// The envelope.
    pub envelope: Blob,
}

/// How many received signals are kept.
pub const SIGNALS_KEPT: usize = 50;

impl SyncState {
    fn tip(&self, kind: Kind, doc: DocId) -> (Seq, EnvelopeHash) {
        self.tips
            .iter()
            .find(|(k, _)| *k == (kind.code(), doc.code()))
            .map_or((Seq(0), EnvelopeHash::GENESIS), |(_, (s, h))| (Seq(*s), EnvelopeHash(*h)))
    }

    fn set_tip(&mut self, kind: Kind, doc: DocId, seq: Seq, hash: EnvelopeHash) {
        let key = (kind.code(), doc.code());
        self.tips.retain(|(k, _)| *k != key);
        self.tips.push((key, (seq.0, hash.0)));
    }

    /// Raises an alarm unless an equal one is open.
    pub fn raise(&mut self, alarm: Alarm) {
        if !self.alarms.contains(&alarm) {
            self.alarms.push(alarm);
        }
    }

    /// Records that `device` was heard from.
    pub fn seen(&mut self, device: DeviceId, at: i64) {
        self.last_seen.retain(|(d, _)| *d != device);
        self.last_seen.push((device, at));
    }

    /// Records the cursor of a stream's newest applied envelope.
    pub fn set_stream_cursor(&mut self, stream: Stream, cursor: u64) {
        let key = (stream.sender, stream.kind.code(), stream.doc.code());
        self.stream_cursors.retain(|(d, k, o, _)| (*d, *k, *o) != key);
        self.stream_cursors.push((key.0, key.1, key.2, cursor));
    }

    /// The cursor of a stream's newest applied envelope, if known.
    pub fn stream_cursor(&self, stream: Stream) -> Option<u64> {
        let key = (stream.sender, stream.kind.code(), stream.doc.code());
        self.stream_cursors.iter().find(|(d, k, o, _)| (*d, *k, *o) == key).map(|e| e.3)
    }

    /// Records that the relay serves this device's own `changes` envelope
    /// `seq` of `doc`.
    pub fn note_relay_own(&mut self, doc: DocId, seq: u64) {
        if let Err(at) = self.relay_own_seen.binary_search(&(doc.code(), seq)) {
            self.relay_own_seen.insert(at, (doc.code(), seq));
        }
    }

    /// Whether the relay was seen to serve this device's own `changes`
    /// envelope `seq` of the document with code `doc`.
    pub fn relay_serves_own(&self, doc: u8, seq: u64) -> bool {
        self.relay_own_seen.binary_search(&(doc, seq)).is_ok()
    }

    /// When `device` was last heard from.
    pub fn last_seen(&self, device: &DeviceId) -> Option<i64> {
        self.last_seen.iter().find(|(d, _)| d == device).map(|(_, t)| *t)
    }
}

/// Something a person asked for could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The keystore could not be opened or saved.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The local database failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// A device already lives in this state directory.
    #[error("a Cove device already lives in {0}; use it, or run `cove wipe` first")]
    AlreadyExists(String),
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}: {error}")]
    Home {
        /// The directory.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// An earlier `cove init` or `cove join` stopped half way.
    #[error(
        "this device was not set up completely; run `cove wipe` and then `cove init` or `cove join` again"
    )]
    Incomplete,
    /// This device has been removed from the plan.
    #[error(
        "this device has been removed from the plan; it can still show what it had, but can no longer sync or change anything"
    )]
    Revoked,
    /// The edit would change the other partner's document.
    #[error("only {0}'s own devices can change their needs, boundaries, preferences and answers")]
    NotYours(Partner),
    /// A document operation failed.
    #[error(transparent)]
    Doc(Box<DocError>),
    /// The membership log refused an entry.
    #[error("the membership change was refused: {0}")]
    Membership(#[from] MembershipError),
    /// No key for the current epoch.
    #[error(
        "this device does not hold the plan's current key; sync, and if that does not help, pair this device again"
    )]
    NoKey,
    /// The change is too large for one envelope.
    #[error("the change is too large to send ({0})")]
    TooLarge(#[from] SealError),
    /// The relay address is not usable.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// The relay does not hold the plan any more.
    #[error(
        "the relay no longer holds this plan (it was deleted there, or this is a different relay); this device keeps its copy, and `cove wipe` removes it"
    )]
    PlanGone,
    /// The input is not valid.
    #[error("{0}")]
    Invalid(String),
}

impl From<DocError> for DeviceError {
    fn from(error: DocError) -> Self {
        Self::Doc(Box::new(error))
    }
}

impl From<automerge::AutomergeError> for DeviceError {
    fn from(error: automerge::AutomergeError) -> Self {
        Self::Doc(Box::new(DocError::Automerge(error)))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

const KV_MEMBERSHIP: &str = "membership";
const KV_FRESHNESS: &str = "freshness";
const KV_SYNC: &str = "sync";
const KV_GENERATION: &str = "generation";
const KV_READY: &str = "ready";

/// An unlocked device.
pub struct Device {
    pub(crate) home: Home,
    pub(crate) keystore: Keystore,
    pub(crate) db: LocalDb,
    pub(crate) log: MembershipLog,
    pub(crate) keyring: Keyring,
    pub(crate) docs: Docs,
    pub(crate) sync: SyncState,
    pub(crate) freshness: Freshness,
    generation: u64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id())
            .field("plan", &self.plan())
            .finish_non_exhaustive()
    }
}

fn home_error(home: &Home) -> impl Fn(std::io::Error) -> DeviceError + '_ {
    move |e| DeviceError::Home { path: home.root().display().to_string(), error: e.to_string() }
}

impl Device {
    /// Makes this device and a new plan: a device identity, a signed
    /// genesis, and the shared and partner-A documents with every container.
    pub async fn init(
        home: &Home,
        passphrase: &str,
        relay: &str,
        name: &str,
        params: KdfParams,
    ) -> Result<Self, DeviceError> {
        crate::transport::endpoint(relay)?;
        if home.exists() {
            return Err(DeviceError::AlreadyExists(home.root().display().to_string()));
        }
        let result = Self::init_in(home, passphrase, relay, name, params).await;
        if result.is_err() {
            // Leave nothing half made behind.
            let _ = home.wipe();
        }
        result
    }

    async fn init_in(
        home: &Home,
        passphrase: &str,
        relay: &str,
        name: &str,
        params: KdfParams,
    ) -> Result<Self, DeviceError> {
        let mut keystore = Keystore::create(passphrase, params)?;
        home.create().map_err(home_error(home))?;
        let mut rng = OsEntropy;
        let plan = PlanId::random(&mut rng);
        let first = SymmetricKey::random(&mut rng);
        let genesis = MembershipLog::genesis(plan, keystore.device(), &first, &mut rng)?;
        let log = MembershipLog::from_genesis(genesis)?;
        let mut keys = PlanKeys {
            plan,
            relay: relay.to_owned(),
            genesis: log.state().genesis(),
            partner: Partner::A,
            epochs: Vec::new(),
        };
        keys.set_epoch_key(Epoch::FIRST, &first);
        keystore.plan = Some(keys);
        keystore.save(&home.keystore())?;
        let mut device = Self::assemble(home, keystore, log).await?;
        let now = unix_now();
        device.genesis(DocId::Shared, |tx| schema::genesis_shared(tx, now)).await?;
        device.genesis(DocId::PartnerA, |tx| schema::genesis_partner(tx, name)).await?;
        device.mark_ready().await?;
        Ok(device)
    }

    /// Records that setting up this device finished; until then, `open`
    /// refuses it.
    pub(crate) async fn mark_ready(&mut self) -> Result<(), DeviceError> {
        let mut tx = self.db.begin().await?;
        tx.put(KV_READY, &true).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes setting up a device that pairing enrolled: `log` is the
    /// plan's membership log, verified from its pinned genesis, and already
    /// lists `keystore`'s device.
    pub(crate) async fn join(
        home: &Home,
        mut keystore: Keystore,
        relay: &str,
        log: MembershipLog,
        partner: Partner,
    ) -> Result<Self, DeviceError> {
        let ring = Keyring::from_log(&log, keystore.device());
        let mut keys = PlanKeys {
            plan: log.state().plan(),
            relay: relay.to_owned(),
            genesis: log.state().genesis(),
            partner,
            epochs: Vec::new(),
        };
        for epoch in ring.epochs() {
            if let Some(key) = ring.key(epoch) {
                keys.set_epoch_key(epoch, key);
            }
        }
        keystore.plan = Some(keys);
        home.create().map_err(home_error(home))?;
        keystore.save(&home.keystore())?;
        let mut device = Self::assemble(home, keystore, log).await?;
        device.sync.registered = true;
        let mut tx = device.db.begin().await?;
        device.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(device)
    }

    /// Creates a document's containers in its first change.
    pub(crate) async fn genesis<E>(
        &mut self,
        doc: DocId,
        make: impl FnOnce(&mut Transaction<'_>) -> Result<(), E>,
    ) -> Result<(), DeviceError>
    where
        DeviceError: From<E>,
    {
        self.edit(doc, |tx| make(tx).map_err(DeviceError::from)).await
    }

    async fn assemble(
        home: &Home,
        keystore: Keystore,
        log: MembershipLog,
    ) -> Result<Self, DeviceError> {
        let db = LocalDb::open(&home.database(), keystore.storage_key()).await?;
        let keyring = Keyring::new(log.state().plan());
        let docs = Docs::new(&keystore.device().id());
        let mut device = Self {
            home: home.clone(),
            keystore,
            db,
            log,
            keyring,
            docs,
            sync: SyncState::default(),
            freshness: Freshness::new(),
            generation: 0,
        };
        device.rebuild_keyring()?;
        let mut tx = device.db.begin().await?;
        device.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(device)
    }

    /// Unlocks the device in `home`.
    pub async fn open(home: &Home, passphrase: &str) -> Result<Self, DeviceError> {
        let keystore = Keystore::open(&home.keystore(), passphrase)?;
        let keys = keystore.plan.clone().ok_or(DeviceError::Incomplete)?;
        let db = LocalDb::open(&home.database(), keystore.storage_key()).await?;
        if db.get::<bool>(KV_READY).await? != Some(true) {
            return Err(DeviceError::Incomplete);
        }
        let entries: Vec<Blob> = db.get(KV_MEMBERSHIP).await?.ok_or(DeviceError::Incomplete)?;
        let log =
            MembershipLog::decode(entries.iter().map(|b| b.0.as_slice()), Some(keys.genesis))?;
        let mut device = Self {
            home: home.clone(),
            keyring: Keyring::new(keys.plan),
            docs: Docs::new(&keystore.device().id()),
            keystore,
            db,
            log,
            sync: SyncState::default(),
            freshness: Freshness::new(),
            generation: 0,
        };
        device.reload().await?;
        Ok(device)
    }

    /// Reloads everything from the local database (after another process
    /// wrote to it, or after a failed write left memory ahead of disk).
    pub(crate) async fn reload(&mut self) -> Result<(), DeviceError> {
        let genesis = self.keys().genesis;
        if let Some(entries) = self.db.get::<Vec<Blob>>(KV_MEMBERSHIP).await? {
            self.log =
                MembershipLog::decode(entries.iter().map(|b| b.0.as_slice()), Some(genesis))?;
        }
        self.rebuild_keyring()?;
        let me = self.id();
        let saved = [
            self.db.doc(DocId::Shared).await?,
            self.db.doc(DocId::PartnerA).await?,
            self.db.doc(DocId::PartnerB).await?,
        ];
        self.docs = Docs::load(
            &me,
            [
                saved[0].as_deref().map(Vec::as_slice),
                saved[1].as_deref().map(Vec::as_slice),
                saved[2].as_deref().map(Vec::as_slice),
            ],
        )?;
        self.sync = self.db.get(KV_SYNC).await?.unwrap_or_default();
        self.freshness = match self.db.get::<Vec<u8>>(KV_FRESHNESS).await? {
            Some(bytes) => Freshness::from_bytes(&bytes).map_err(|_| LocalError::Corrupt)?,
            None => Freshness::new(),
        };
        self.generation = self.db.get(KV_GENERATION).await?.unwrap_or(0);
        Ok(())
    }

    /// Inside a write transaction: reloads if another process wrote since.
    pub(crate) async fn catch_up(&mut self, tx: &mut LocalTx) -> Result<(), DeviceError> {
        let generation: u64 = tx.get(KV_GENERATION).await?.unwrap_or(0);
        if generation != self.generation {
            self.reload().await?;
        }
        Ok(())
    }

    /// Writes the membership log, sync state and freshness, and marks the
    /// database as changed for other processes.
    pub(crate) async fn persist(&mut self, tx: &mut LocalTx) -> Result<(), DeviceError> {
        let entries: Vec<Blob> =
            self.log.entries().iter().map(|e| Blob(e.encode().to_vec())).collect();
        tx.put(KV_MEMBERSHIP, &entries).await?;
        tx.put(KV_SYNC, &self.sync).await?;
        tx.put(KV_FRESHNESS, &self.freshness.to_bytes()).await?;
        self.generation += 1;
        tx.put(KV_GENERATION, &self.generation).await?;
        Ok(())
    }

    /// Keys for every epoch: from the keystore where its key matches the
    /// key id the log announced, else unwrapped from the log.
    fn rebuild_keyring(&mut self) -> Result<(), DeviceError> {
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
                self.sync.raise(Alarm::UnusableKey { epoch: epoch.0 });
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

    /// This device's id.
    pub fn id(&self) -> DeviceId {
        self.keystore.device().id()
    }

    pub(crate) fn secret(&self) -> &DeviceSecret {
        self.keystore.device()
    }

    fn keys(&self) -> &PlanKeys {
        // `open`, `init` and `join` all refuse a keystore without a plan.
        self.keystore.plan.as_ref().unwrap_or_else(|| unreachable!("a device always has a plan"))
    }

    /// The plan.
    pub fn plan(&self) -> PlanId {
        self.keys().plan
    }

    /// The relay address.
    pub fn relay(&self) -> &str {
        &self.keys().relay
    }

    /// Whose device this is.
    pub fn partner(&self) -> Partner {
        self.keys().partner
    }

    /// The verified membership.
    pub fn membership(&self) -> &MembershipState {
        self.log.state()
    }

    /// The membership log.
    pub fn log(&self) -> &MembershipLog {
        &self.log
    }

    /// The documents.
    pub fn docs(&self) -> &Docs {
        &self.docs
    }

    /// The sync state.
    pub fn sync_state(&self) -> &SyncState {
        &self.sync
    }

    /// The state directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The local database.
    pub fn local(&self) -> &LocalDb {
        &self.db
    }

    /// Whether this device is still a member.
    pub fn is_active(&self) -> bool {
        self.log.state().is_active(&self.id())
    }

    fn require_writable(&self, doc: DocId) -> Result<(), DeviceError> {
        if !self.is_active() {
            return Err(DeviceError::Revoked);
        }
        match doc.owner() {
            Some(owner) if owner != self.partner() => Err(DeviceError::NotYours(owner)),
            _ => Ok(()),
        }
    }

    /// Seals the next envelope of this device's (`kind`, `doc`) stream,
    /// with the current epoch's key and this device's membership view.
    pub(crate) fn seal_next(
        &mut self,
        kind: Kind,
        doc: DocId,
        payload: &[u8],
    ) -> Result<Sealed, DeviceError> {
        let state = self.log.state();
        let keys = self.keyring.keys(state.epoch()).ok_or(DeviceError::NoKey)?;
        let (seq, prev) = self.sync.tip(kind, doc);
        let seq = seq.next().ok_or(DeviceError::NoKey)?;
        let request = Seal { kind, doc, seq, prev, view: state.view(), payload };
        let sealed = envelope::seal(keys, self.keystore.device(), request, &mut OsEntropy)?;
        self.sync.set_tip(kind, doc, seq, sealed.hash);
        Ok(sealed)
    }

    /// Runs `edit` as one transaction on `doc`, and puts the changes it made
    /// in the outbox, in one local commit.
    pub async fn edit<T>(
        &mut self,
        doc: DocId,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.require_writable(doc)?;
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let result = self.edit_in(&mut tx, doc, edit).await;
        match result {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                drop(tx);
                // Memory may be ahead of the database now.
                self.reload().await?;
                Err(error)
            }
        }
    }

    async fn edit_in<T>(
        &mut self,
        tx: &mut LocalTx,
        doc: DocId,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let (value, changes) = self.docs.edit(doc, unix_now(), edit)?;
        if changes.is_empty() {
            return Ok(value);
        }
        let count = changes.len() as u64;
        for chunk in chunks(changes.iter().map(|c| c.raw_bytes().to_vec()).collect()) {
            let sealed = self.seal_next(Kind::Changes, doc, &Payload::Changes(chunk).encode())?;
            tx.push_outbox(&sealed.bytes).await?;
        }
        tx.put_doc(doc, &self.docs.save(doc)).await?;
        self.sync.since_snapshot[usize::from(doc.code())] += count;
        self.persist(tx).await?;
        Ok(value)
    }

    /// Puts a signal in the outbox and returns it, sealed, for sending at
    /// once.
    pub async fn signal(&mut self, signal: &str, ttl_ms: i64) -> Result<Vec<u8>, DeviceError> {
        self.require_writable(DocId::Shared)?;
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let now = unix_millis();
        let payload = Payload::Signal(SignalPayload {
            signal: signal.to_owned(),
            sent_at: now,
            expires_at: now + ttl_ms,
        });
        let sealed = self.seal_next(Kind::Signal, DocId::Shared, &payload.encode())?;
        tx.push_outbox(&sealed.bytes).await?;
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(sealed.bytes)
    }

    /// Records that the relay stored outbox entry `id` (`envelope`) under
    /// `cursor`, or, with `envelope` `None`, that it refused it for good.
    /// Stored `changes` envelopes are kept a while (the newest
    /// [`SENT_KEPT`]), to send again if the relay is restored from a backup
    /// that lacks them.
    pub async fn sent(
        &mut self,
        id: i64,
        envelope: Option<&[u8]>,
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        tx.remove_outbox(id).await?;
        if let Some(header) =
            envelope.and_then(|e| envelope::header_of(e).ok()).filter(|h| h.kind == Kind::Changes)
        {
            let record = SentEnvelope {
                doc: header.doc.code(),
                seq: header.seq.0,
                cursor: cursor.0,
                envelope: Blob(envelope.unwrap_or_default().to_vec()),
            };
            tx.push(ListTable::Sent, &record).await?;
            tx.prune(ListTable::Sent, SENT_KEPT).await?;
        }
        self.sync.own_cursor = self.sync.own_cursor.max(cursor.0);
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outbox, oldest first.
    pub async fn outbox(&self) -> Result<Vec<(i64, Vec<u8>)>, DeviceError> {
        Ok(self.db.outbox().await?)
    }

    /// Saves sync-state changes made outside an edit.
    pub(crate) async fn save_state(&mut self) -> Result<(), DeviceError> {
        let mut tx = self.db.begin().await?;
        tx.put(KV_SYNC, &self.sync).await?;
        self.generation += 1;
        tx.put(KV_GENERATION, &self.generation).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Raises an alarm and saves it.
    pub async fn alarm(&mut self, alarm: Alarm) -> Result<(), DeviceError> {
        self.sync.raise(alarm);
        self.save_state().await
    }

    /// Clears the alarms a person has seen.
    pub async fn clear_alarms(&mut self) -> Result<(), DeviceError> {
        self.sync.alarms.clear();
        self.save_state().await
    }

    /// Appends membership entries from the relay, after checking each.
    /// Returns how many were new. Picks up new epoch keys, and notices when
    /// this device has been revoked.
    pub async fn apply_membership(&mut self, entries: &[Vec<u8>]) -> Result<usize, DeviceError> {
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let was_active: Vec<DeviceId> = self.log.state().active().map(|m| m.device).collect();
        let mut added = 0;
        for bytes in entries {
            let entry = Entry::decode(bytes).map_err(MembershipError::from)?;
            match self.log.append(entry) {
                Ok(Appended::New) => added += 1,
                Ok(Appended::Duplicate) => {}
                Err(error @ (MembershipError::Fork { .. } | MembershipError::WrongPlan)) => {
                    self.sync.raise(Alarm::MembershipFork);
                    self.persist(&mut tx).await?;
                    tx.commit().await?;
                    return Err(error.into());
                }
                Err(error) => {
                    drop(tx);
                    self.reload().await?;
                    return Err(error.into());
                }
            }
        }
        if added > 0 {
            self.rebuild_keyring()?;
            if !self.is_active() {
                self.sync.raise(Alarm::Revoked);
            }
            self.check_cutoffs(&was_active);
        }
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// For devices revoked just now: says so if this device had already
    /// applied changes from them past the cutoff the revocation pinned.
    /// Those stay here; devices that had not received them never will.
    fn check_cutoffs(&mut self, was_active: &[DeviceId]) {
        for device in was_active {
            let Some(revocation) = self.log.state().member(device).and_then(|m| m.revoked.clone())
            else {
                continue;
            };
            if *device == self.id() {
                continue;
            }
            for doc in DocId::ALL {
                let stream = Stream { sender: *device, kind: Kind::Changes, doc };
                let cutoff = revocation.cutoff(doc);
                let past = self.freshness.tip(stream).is_some_and(|tip| {
                    tip.seq > cutoff.seq || (tip.seq == cutoff.seq && tip.hash != cutoff.hash)
                });
                if past {
                    self.sync.raise(Alarm::PastCutoff { device: *device, doc });
                }
            }
        }
    }

    /// Appends an entry this device made (after the relay accepted it).
    pub(crate) async fn append_own_entry(&mut self, entry: Entry) -> Result<(), DeviceError> {
        self.apply_membership(&[entry.encode().to_vec()]).await.map(|_| ())
    }

    /// An entry that revokes `device`: its changes are accepted up to what
    /// this device has applied, and the remaining devices get a new key. A
    /// device revoking itself leaves instead (no new key).
    pub fn revocation(&self, device: DeviceId) -> Result<Entry, DeviceError> {
        let cutoffs: Vec<Cutoff> = DocId::ALL
            .into_iter()
            .filter_map(|doc| {
                let stream = Stream { sender: device, kind: Kind::Changes, doc };
                let tip = if device == self.id() {
                    let (seq, hash) = self.sync.tip(Kind::Changes, doc);
                    (seq.0 > 0).then_some(StreamTip { seq, hash })
                } else {
                    self.freshness.tip(stream)
                };
                tip.map(|t| Cutoff { doc, seq: t.seq, hash: t.hash })
            })
            .collect();
        if device == self.id() {
            return Ok(self.log.leave(self.keystore.device(), cutoffs)?);
        }
        let key = SymmetricKey::random(&mut OsEntropy);
        Ok(self.log.revoke(self.keystore.device(), device, cutoffs, &key, &mut OsEntropy)?)
    }

    /// An entry that enrols `bundle` as a device of `partner`, with every
    /// epoch key wrapped for it.
    pub fn enrolment(
        &self,
        partner: Partner,
        bundle: &cove_shared::DeviceBundle,
    ) -> Result<Entry, DeviceError> {
        let ring = &self.keyring;
        Ok(self.log.add_device(
            self.keystore.device(),
            partner,
            bundle,
            |e| ring.key(e),
            &mut OsEntropy,
        )?)
    }

    /// An entry that moves every active device to a new key.
    pub fn rotation(&self) -> Result<Entry, DeviceError> {
        let key = SymmetricKey::random(&mut OsEntropy);
        Ok(self.log.rotate(self.keystore.device(), &key, &mut OsEntropy)?)
    }

    /// A sealed snapshot of `doc`, if one is due and this device may make
    /// it: the outbox must be empty, so that everything the snapshot holds
    /// is at or below the cursor it claims to cover.
    pub(crate) async fn snapshot_if_due(
        &mut self,
        doc: DocId,
    ) -> Result<Option<(Cursor, Vec<u8>)>, DeviceError> {
        let due = self.sync.since_snapshot[usize::from(doc.code())] >= SNAPSHOT_EVERY;
        if !due || self.require_writable(doc).is_err() || !self.db.outbox().await?.is_empty() {
            return Ok(None);
        }
        if self.sync.own_cursor > self.sync.cursor {
            return Ok(None);
        }
        Ok(Some(self.snapshot(doc).await?))
    }

    /// Seals a snapshot of `doc` covering everything up to the current cursor.
    pub(crate) async fn snapshot(&mut self, doc: DocId) -> Result<(Cursor, Vec<u8>), DeviceError> {
        let mut tx = self.db.begin().await?;
        self.catch_up(&mut tx).await?;
        let mut coverage = std::collections::BTreeMap::new();
        for (stream, tip) in self.freshness.tips() {
            if stream.kind == Kind::Changes && stream.doc == doc {
                coverage.insert(stream.sender, tip);
            }
        }
        let (seq, hash) = self.sync.tip(Kind::Changes, doc);
        if seq.0 > 0 {
            coverage.insert(self.id(), StreamTip { seq, hash });
        }
        let covers = Cursor(self.sync.cursor);
        let payload = Payload::Snapshot(SnapshotPayload {
            covers,
            coverage,
            document: Blob(self.docs.save(doc)),
        });
        let sealed = self.seal_next(Kind::Snapshot, doc, &payload.encode())?;
        self.sync.since_snapshot[usize::from(doc.code())] = 0;
        self.persist(&mut tx).await?;
        tx.commit().await?;
        Ok((covers, sealed.bytes))
    }

    /// How many envelopes are in quarantine.
    pub async fn quarantined(&self) -> Result<u64, DeviceError> {
        Ok(self.db.count(ListTable::Quarantine).await?)
    }
}

/// Splits raw changes into payloads that each fit in one envelope.
fn chunks(changes: Vec<Vec<u8>>) -> Vec<Vec<Blob>> {
    // Leave room for postcard's framing around each change.
    let budget = cove_shared::padding::MAX_PAYLOAD_LEN - 1024;
    let mut out: Vec<Vec<Blob>> = Vec::new();
    let mut size = 0;
    for change in changes {
        let len = change.len() + 10;
        if out.is_empty() || size + len > budget {
            out.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(last) = out.last_mut() {
            last.push(Blob(change));
        }
    }
    out
}
