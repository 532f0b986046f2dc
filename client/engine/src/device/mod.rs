//! One device: its unlocked keys, its copy of the plan, and its sync state.
//!
//! A [`Device`] is the only way plan data is read or written. Every write is
//! one local transaction (see [`store`]): an edit, the envelope that
//! carries it to the partner (in the outbox) and the stream position it used
//! all commit together, so a crash never loses an edit and never reuses a
//! sequence number. Two processes may share a state directory (a `cove
//! daemon` and a one-off command): each write first takes SQLite's write
//! lock and reloads what the other process wrote since.
//!
//! # Layout
//! - [`state`]: the sync state.
//! - [`alarms`]: what a person should know, and what they acknowledged.
//! - [`attention`]: alarms and quarantined envelopes, as a person reads them.
//! - [`error`]: what can go wrong.
//! - [`store`]: the write discipline, loading and saving.
//! - [`members`]: the membership log: enrol, revoke, rotate.
//! - [`snapshot`]: sealed snapshots.

mod alarms;
mod attention;
mod error;
mod members;
mod snapshot;
mod state;
mod store;

pub use alarms::{ALARM_HISTORY, Alarm, AlarmLog, AlarmRecord};
pub use attention::{AlarmNote, Attention, DeviceRow, QuarantineNote};
pub use error::DeviceError;
pub use state::{
    CursorMark, OwnTip, ReceivedSignal, SENT_KEPT, SIGNALS_KEPT, SNAPSHOT_EVERY, SentEnvelope,
    SyncState,
};

use crate::docs::Docs;
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore, PlanKeys};
use crate::localdb::{ListTable, LocalDb, LocalTx};
use crate::payload::{Payload, SignalPayload};
use crate::plan::schema;
use automerge::ChangeHash;
use automerge::transaction::Transaction;
use cove_shared::envelope::{self, Seal, Sealed};
use cove_shared::freshness::Freshness;
use cove_shared::wire::{Blob, Cursor};
use cove_shared::{
    DeviceId, DeviceSecret, DocId, Epoch, Keyring, Kind, MembershipLog, MembershipState, OsEntropy,
    Partner, PlanId, SymmetricKey,
};
use std::time::{SystemTime, UNIX_EPOCH};
pub use store::LOCAL_FORMAT;
use store::{KV_FORMAT, KV_MEMBERSHIP, KV_READY};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

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
    /// The token of the last write this process saw; `None` forces a reload
    /// before the next write.
    generation: Option<u64>,
    /// How many membership entries are saved locally.
    log_saved: u64,
    /// The write under way must reach the disk before it returns (it holds
    /// an edit, or used a sequence number).
    must_sync: bool,
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
        let mut device = Self::assemble(home, keystore, log, false).await?;
        // An Automerge timestamp is in milliseconds.
        let now = unix_millis();
        device.genesis(DocId::Shared, |tx| schema::genesis_shared(tx, now)).await?;
        device.genesis(DocId::PartnerA, |tx| schema::genesis_partner(tx, name)).await?;
        device.mark_ready().await?;
        Ok(device)
    }

    /// Records that setting up this device finished; until then, `open`
    /// refuses it.
    pub(crate) async fn mark_ready(&mut self) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            device.must_sync = true;
            Ok(tx.put(KV_READY, &true)?)
        })
        .await
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
        name: &str,
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
        let mut device = Self::assemble(home, keystore, log, true).await?;
        device.update(|s| s.pending_name = Some(name.to_owned())).await?;
        Ok(device)
    }

    /// A partner's own document is made by their first device, once its
    /// first sync shows that no earlier device of theirs made it.
    pub(crate) async fn ensure_own_document(&mut self) -> Result<(), DeviceError> {
        let Some(name) = self.sync.pending_name.clone() else { return Ok(()) };
        let doc = self.partner().doc();
        if self.docs.heads(doc).is_empty() {
            self.genesis(doc, |tx| schema::genesis_partner(tx, &name)).await?;
        }
        self.update(|s| s.pending_name = None).await
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

    /// A new device's first local state: its log, empty documents.
    async fn assemble(
        home: &Home,
        keystore: Keystore,
        log: MembershipLog,
        registered: bool,
    ) -> Result<Self, DeviceError> {
        let db = LocalDb::open(&home.database(), keystore.storage_key()).await?;
        let mut device = Self {
            home: home.clone(),
            keyring: Keyring::new(log.state().plan()),
            docs: Docs::new(&keystore.device().id()),
            keystore,
            db,
            log,
            sync: SyncState { registered, ..SyncState::default() },
            freshness: Freshness::new(),
            generation: None,
            log_saved: 0,
            must_sync: false,
        };
        device.rebuild_keyring()?;
        device.save_new().await?;
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
        // Devices made before the layout was numbered wrote none: layout 1.
        let found = db.get::<u32>(KV_FORMAT).await?.unwrap_or(1);
        if found != LOCAL_FORMAT {
            return Err(DeviceError::OtherFormat { found });
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
            generation: None,
            log_saved: 0,
            must_sync: false,
        };
        device.reload().await?;
        // A signal is never kept past its time to live: one that expired
        // since the last write goes now, not at the next one.
        let now = unix_millis();
        if device.sync.signals.iter().any(|s| s.expired(now)) {
            device.update(|_| {}).await?;
        }
        Ok(device)
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
            Some(owner) if owner != self.partner() => Err(self.not_yours(owner)),
            _ => Ok(()),
        }
    }

    /// The refusal to change what is `owner`'s.
    pub fn not_yours(&self, owner: Partner) -> DeviceError {
        let name = crate::plan::current(&self.docs).name(owner);
        DeviceError::NotYours { partner: owner, name }
    }

    /// Seals the next envelope of this device's (`kind`, `doc`) stream,
    /// with the current epoch's key and this device's membership view.
    pub(crate) fn seal_next(
        &mut self,
        kind: Kind,
        doc: DocId,
        payload: &[u8],
    ) -> Result<Sealed, DeviceError> {
        if self.sync.sealing_stopped {
            return Err(DeviceError::StateBehind);
        }
        self.must_sync = true;
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
    ///
    /// While a key rotation is due (a device left, and no remaining device
    /// has moved the plan to a new key yet), the change is kept on this
    /// device but not sealed: the departed device still holds the current
    /// key. It is sealed under the new key once the rotation is done.
    pub async fn edit<T>(
        &mut self,
        doc: DocId,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.require_writable(doc)?;
        self.write(async |device, tx| {
            let before = device.docs.heads(doc);
            let (value, changes) = device.docs.edit(doc, unix_now(), edit)?;
            if changes.is_empty() {
                return Ok(value);
            }
            // A person's edit must survive a power cut, sealed or not.
            device.must_sync = true;
            device.sync.since_snapshot[usize::from(doc.code())] += changes.len() as u64;
            if device.log.state().rotation_due() {
                if !device.sync.unsealed.iter().any(|(d, _)| *d == doc.code()) {
                    let heads = before.iter().map(|h| h.0).collect();
                    device.sync.unsealed.push((doc.code(), heads));
                }
            } else {
                device.seal_changes(tx, doc, &changes).await?;
            }
            device.store_doc(tx, doc).await?;
            Ok(value)
        })
        .await
    }

    /// Seals `changes` of `doc` into as many envelopes as they need, into
    /// the outbox.
    async fn seal_changes(
        &mut self,
        tx: &mut LocalTx,
        doc: DocId,
        changes: &[automerge::Change],
    ) -> Result<(), DeviceError> {
        for chunk in chunks(changes.iter().map(|c| c.raw_bytes().to_vec()).collect()) {
            let sealed = self.seal_next(Kind::Changes, doc, &Payload::Changes(chunk).encode())?;
            tx.push_outbox(&sealed.bytes)?;
        }
        Ok(())
    }

    /// Test hook: seals `changes` to `doc` exactly as an edit would, but
    /// without checking that this device may write `doc`, and without
    /// storing anything: what a modified client of a member device could
    /// produce. Receiving devices must refuse it on their own.
    #[cfg(feature = "test-hooks")]
    pub fn seal_unchecked(
        &mut self,
        doc: DocId,
        changes: &[automerge::Change],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        chunks(changes.iter().map(|c| c.raw_bytes().to_vec()).collect())
            .into_iter()
            .map(|chunk| {
                self.seal_next(Kind::Changes, doc, &Payload::Changes(chunk).encode())
                    .map(|sealed| sealed.bytes)
            })
            .collect()
    }

    /// Seals the changes kept back while a rotation was due (see
    /// [`Self::edit`]), now that it is done.
    pub(crate) async fn seal_held_back(&mut self) -> Result<(), DeviceError> {
        if self.sync.unsealed.is_empty() || self.log.state().rotation_due() {
            return Ok(());
        }
        self.write(async |device, tx| {
            for (code, heads) in std::mem::take(&mut device.sync.unsealed) {
                let Some(doc) = DocId::ALL.into_iter().find(|d| d.code() == code) else {
                    continue;
                };
                let heads: Vec<ChangeHash> = heads.into_iter().map(ChangeHash).collect();
                let changes = device.docs.changes_since(doc, &heads);
                device.seal_changes(tx, doc, &changes).await?;
            }
            Ok(())
        })
        .await
    }

    /// Puts a signal in the outbox and returns it, sealed, for sending at
    /// once.
    pub async fn signal(&mut self, signal: &str, ttl_ms: i64) -> Result<Vec<u8>, DeviceError> {
        self.require_writable(DocId::Shared)?;
        if self.log.state().rotation_due() {
            return Err(DeviceError::Invalid(
                "a device has just left the plan; sync once so that the plan moves to a new key, then send the signal".into(),
            ));
        }
        self.write(async |device, tx| {
            let now = unix_millis();
            let payload = Payload::Signal(SignalPayload {
                signal: signal.to_owned(),
                sent_at: now,
                expires_at: now + ttl_ms,
            });
            let sealed = device.seal_next(Kind::Signal, DocId::Shared, &payload.encode())?;
            tx.push_outbox(&sealed.bytes)?;
            Ok(sealed.bytes)
        })
        .await
    }

    /// Records that the relay said it stored outbox entry `id` (`envelope`)
    /// under `cursor`. That is a hint, not proof: the envelope is kept as
    /// unconfirmed until a fetched page shows it (see [`Self::confirm_own`]
    /// and `sync::settle_own`), and sent again if the device reads past
    /// that position without seeing it.
    pub async fn sent(
        &mut self,
        id: i64,
        envelope: &[u8],
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            tx.remove_outbox(id);
            if let Ok(header) = envelope::header_of(envelope) {
                let record = SentEnvelope {
                    doc: header.doc.code(),
                    seq: header.seq.0,
                    cursor: cursor.0,
                    envelope: Blob(envelope.to_vec()),
                };
                tx.push_unconfirmed(&record)?;
            }
            device.sync.own_cursor = device.sync.own_cursor.max(cursor.0);
            Ok(())
        })
        .await
    }

    /// This device's envelopes that no fetched page has shown yet, oldest
    /// first.
    pub async fn unconfirmed(&self) -> Result<Vec<(i64, SentEnvelope)>, DeviceError> {
        Ok(self.db.unconfirmed().await?)
    }

    /// How many envelopes are held back until what comes before them
    /// arrives.
    pub async fn held_count(&self) -> Result<u64, DeviceError> {
        Ok(self.db.count(ListTable::Pending).await?)
    }

    /// How many of this device's envelopes no fetched page has shown yet.
    pub async fn unconfirmed_count(&self) -> Result<u64, DeviceError> {
        Ok(self.db.unconfirmed_len().await?)
    }

    /// A page showed kept envelope `id` at `cursor`: it is confirmed.
    pub(crate) async fn confirm_own(
        &mut self,
        id: i64,
        mut record: SentEnvelope,
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |_, tx| {
            record.cursor = cursor.0;
            tx.set_sent(id, &record, true)?;
            tx.prune_confirmed(SENT_KEPT);
            Ok(())
        })
        .await
    }

    /// Kept envelope `id` was sent again, and the relay now says `cursor`;
    /// it stays unconfirmed until a page shows it.
    pub(crate) async fn sent_again(
        &mut self,
        id: i64,
        mut record: SentEnvelope,
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            record.cursor = cursor.0;
            tx.set_sent(id, &record, false)?;
            device.sync.own_cursor = device.sync.own_cursor.max(cursor.0);
            Ok(())
        })
        .await
    }

    /// Whether one of this device's own signal envelopes is past its time
    /// to live at `now` (Unix milliseconds); one it cannot read counts as
    /// expired.
    pub(crate) fn own_signal_expired(&self, bytes: &[u8], now: i64) -> bool {
        let policy =
            cove_shared::Recipient { membership: self.log.state(), keyring: &self.keyring };
        let Ok(opened) = envelope::open(bytes, &policy) else { return true };
        match Payload::decode(&opened.payload) {
            Some(Payload::Signal(signal)) => now > signal.expires_at,
            _ => true,
        }
    }

    /// Drops kept envelope `id`: a signal past its time to live, which
    /// sending again would serve nobody.
    pub(crate) async fn forget_own(&mut self, id: i64) -> Result<(), DeviceError> {
        self.write(async |_, tx| {
            tx.remove(ListTable::Sent, id);
            Ok(())
        })
        .await
    }

    /// After the relay was seen to roll back or rewrite its log: every kept
    /// envelope it may have lost is unconfirmed again, to be checked as the
    /// log is read again. What lies at or below the relay's compaction
    /// point was replaced by a snapshot on purpose.
    pub(crate) async fn reopen_own(&mut self, compacted: u64) -> Result<(), DeviceError> {
        let rows: Vec<(i64, SentEnvelope)> = self.db.list(ListTable::Sent).await?;
        self.write(async |_, tx| {
            for (id, record) in rows.iter().filter(|(_, r)| r.cursor > compacted) {
                tx.set_sent(*id, record, false)?;
            }
            Ok(())
        })
        .await
    }

    /// Removes an outbox entry that can never be sent (it does not even
    /// parse: a local fault).
    pub(crate) async fn discard(&mut self, id: i64) -> Result<(), DeviceError> {
        self.write(async |_, tx| {
            tx.remove_outbox(id);
            Ok(())
        })
        .await
    }

    /// The outbox, oldest first.
    pub async fn outbox(&self) -> Result<Vec<(i64, Vec<u8>)>, DeviceError> {
        Ok(self.db.outbox().await?)
    }

    /// Raises an alarm and saves it.
    pub async fn alarm(&mut self, alarm: Alarm) -> Result<(), DeviceError> {
        self.update(|sync| sync.raise(alarm)).await
    }

    /// Acknowledges the open alarms `ids` (all of them, and every quarantined
    /// envelope so far, if `ids` is empty). Returns how many alarms were
    /// acknowledged; an id that is not open is an error, and then nothing
    /// is acknowledged.
    pub async fn acknowledge(&mut self, ids: &[u64]) -> Result<usize, DeviceError> {
        let open: Vec<u64> = self.sync.alarm_log.open().map(|r| r.id).collect();
        if let Some(unknown) = ids.iter().find(|id| !open.contains(id)) {
            return Err(DeviceError::Invalid(format!("there is no open alarm number {unknown}")));
        }
        let newest_quarantined = self.db.newest(ListTable::Quarantine).await?;
        self.update(|sync| {
            let now = unix_millis();
            if ids.is_empty() {
                sync.quarantine_seen = sync.quarantine_seen.max(newest_quarantined);
                sync.alarm_log.acknowledge_all(now)
            } else {
                ids.iter().filter(|id| sync.alarm_log.acknowledge(**id, now)).count()
            }
        })
        .await
    }

    /// How many envelopes failed verification since this device was set up.
    pub fn quarantined(&self) -> u64 {
        self.sync.quarantined_total
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
