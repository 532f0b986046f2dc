//! Making a device: a new plan (`init`), a device that pairing enrolled
//! (`join`), and unlocking one that exists (`open`).

use super::checkpoints::Book;
use super::store::{KV_FORMAT, KV_MEMBERSHIP, KV_READY, LOCAL_FORMAT};
use super::{Device, DeviceError, SyncState};
use crate::documents::Documents;
use crate::home::Home;
use crate::keystore::{KdfParams, Keystore, PlanKeys};
use crate::localdb::LocalDb;
use crate::plan::schema;
use automerge::transaction::Transaction;
use cove_shared::clock::{self, SharedClock};
use cove_shared::freshness::Freshness;
use cove_shared::wire::Blob;
use cove_shared::{
    DocId, Epoch, IdentitySeed, Keyring, MembershipLog, OsEntropy, Partner, PartnerSecret, PlanId,
    SymmetricKey,
};

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
        let seed = IdentitySeed::random(&mut rng);
        let identity = PartnerSecret::from_seed(&seed).ok_or(DeviceError::Invalid(
            "the new identity's keys were unusable; try again".into(),
        ))?;
        let genesis = MembershipLog::genesis(plan, keystore.device(), &identity, &first, &mut rng)?;
        let log = MembershipLog::from_genesis(genesis)?;
        let mut keys = PlanKeys {
            plan,
            relay: relay.to_owned(),
            genesis: log.state().genesis(),
            partner: Partner::A,
            epochs: Vec::new(),
            identity: Some(*seed.as_bytes()),
        };
        keys.set_epoch_key(Epoch::FIRST, &first);
        keystore.plan = Some(keys);
        keystore.save(&home.keystore())?;
        let mut device = Self::assemble(home, keystore, log, false).await?;
        // An Automerge timestamp is in milliseconds.
        let now = device.now_ms();
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
        identity: &IdentitySeed,
    ) -> Result<Self, DeviceError> {
        let ring = Keyring::from_log(&log, keystore.device());
        let mut keys = PlanKeys {
            plan: log.state().plan(),
            relay: relay.to_owned(),
            genesis: log.state().genesis(),
            partner,
            epochs: Vec::new(),
            identity: Some(*identity.as_bytes()),
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

    /// Whether this device is a partner's first, still waiting to make that
    /// partner's own document, or is waiting for that document to name
    /// itself in it.
    pub(crate) fn owes_own_document(&self) -> bool {
        self.sync.pending_name.is_some() || self.sync.pending_device_name.is_some()
    }

    /// Names this device, as both partners' device lists and messages show
    /// it. The name lives in this partner's own document (so only their
    /// devices can set it, and the relay never reads it); a device whose
    /// partner's document has not arrived yet names itself once it has.
    pub async fn set_device_name(&mut self, name: &str) -> Result<(), DeviceError> {
        let doc = self.partner().doc();
        if self.docs.heads(doc).is_empty() {
            let name = name.trim().to_owned();
            return self.update(|s| s.pending_device_name = Some(name)).await;
        }
        let id = self.id().to_string();
        self.edit(doc, |tx| Ok(crate::plan::write::name_device(tx, &id, name)?)).await?;
        self.update(|s| s.pending_device_name = None).await
    }

    /// A partner's own document is made by their first device, once its
    /// first sync shows that no earlier device of theirs made it.
    pub(crate) async fn ensure_own_document(&mut self) -> Result<(), DeviceError> {
        let doc = self.partner().doc();
        if let Some(name) = self.sync.pending_name.clone() {
            if self.docs.heads(doc).is_empty() {
                self.genesis(doc, |tx| schema::genesis_partner(tx, &name)).await?;
            }
            self.update(|s| s.pending_name = None).await?;
        }
        if let Some(name) = self.sync.pending_device_name.clone()
            && !self.docs.heads(doc).is_empty()
        {
            self.set_device_name(&name).await?;
        }
        Ok(())
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
            docs: Documents::new(&keystore.device().id()),
            keystore,
            db,
            log,
            sync: SyncState { registered, ..SyncState::default() },
            freshness: Freshness::new(),
            book: Book::default(),
            own: Default::default(),
            desk: Default::default(),
            reminded: Default::default(),
            clock: clock::system(),
            generation: None,
            log_saved: 0,
            written: Default::default(),
            must_sync: false,
        };
        device.rebuild_keyring()?;
        device.save_new().await?;
        Ok(device)
    }

    /// Reaches the same relay another way from now on: another address, or
    /// another certificate pinned (after the relay's certificate was
    /// renewed). The address is checked, then stored in the keystore.
    pub fn set_relay(&mut self, address: &str) -> Result<(), DeviceError> {
        let (url, _) = crate::transport::tls::split(address)?;
        crate::transport::endpoint(url)?;
        if let Some(plan) = self.keystore.plan.as_mut() {
            plan.relay = address.to_owned();
        }
        Ok(self.keystore.save(&self.home.keystore())?)
    }

    /// Unlocks the device in `home`.
    pub async fn open(home: &Home, passphrase: &str) -> Result<Self, DeviceError> {
        Self::open_with_clock(home, passphrase, clock::system()).await
    }

    /// Unlocks the device in `home`, reading the time from `clock`.
    pub async fn open_with_clock(
        home: &Home,
        passphrase: &str,
        clock: SharedClock,
    ) -> Result<Self, DeviceError> {
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
            docs: Documents::new(&keystore.device().id()),
            keystore,
            db,
            log,
            sync: SyncState::default(),
            freshness: Freshness::new(),
            book: Book::default(),
            own: Default::default(),
            desk: Default::default(),
            reminded: Default::default(),
            clock,
            generation: None,
            log_saved: 0,
            written: Default::default(),
            must_sync: false,
        };
        device.reload().await?;
        // A signal is never kept past its time to live (a standing stop
        // aside): one that expired since the last write goes now, not at
        // the next one.
        let now = device.now_ms();
        let desk = &device.desk;
        if device
            .sync
            .signals
            .iter()
            .any(|s| s.expired(now) && !desk.stands(s.from, s.signal.sent_at))
        {
            device.update(|_| {}).await?;
        }
        Ok(device)
    }
}
