//! Devices for tests: made, paired and edited through the real client
//! library, against a real relay.

use crate::harness::TempDir;
use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use cove_client::device::{Device, DeviceError};
use cove_client::home::Home;
use cove_client::keystore::KdfParams;
use cove_client::pairing::{self, Invite, Paired};
use cove_client::sync::{self, SyncReport};
use cove_shared::DocId;

/// The passphrase every test device uses.
pub const PASSPHRASE: &str = "a long and private passphrase";

/// A new device with a new plan on `relay`, in `root/name`.
pub async fn new_device(root: &TempDir, name: &str, relay: &str) -> Device {
    Device::init(&home(root, name), PASSPHRASE, relay, name, KdfParams::default())
        .await
        .unwrap_or_else(|e| panic!("init {name}: {e}"))
}

/// The state directory `root/name`.
pub fn home(root: &TempDir, name: &str) -> Home {
    Home::at(root.path().join(name))
}

/// Pairs a new device in `root/name`, joining through `relay`, with
/// `inviter`. Returns the new device, what the inviter saw and what the
/// joiner saw.
pub async fn pair(
    inviter: &mut Device,
    root: &TempDir,
    name: &str,
    relay: &str,
    own_device: bool,
) -> (Device, Paired, Paired) {
    let invite =
        Invite::open(inviter, own_device).await.unwrap_or_else(|e| panic!("open pairing: {e}"));
    let code = invite.code().to_owned();
    let home = home(root, name);
    let (inviter_side, joiner_side) = tokio::join!(
        invite.complete(inviter),
        pairing::join(&home, PASSPHRASE, relay, &code, name, KdfParams::default(), |_| {})
    );
    let inviter_side = inviter_side.unwrap_or_else(|e| panic!("inviter: {e}"));
    let joined = joiner_side.unwrap_or_else(|e| panic!("joiner: {e}"));
    if let Some(error) = &joined.sync_error {
        panic!("first sync of {name}: {error}");
    }
    (joined.device, inviter_side, joined.paired)
}

/// Two partners' devices: A made the plan (through `relay_a`), B joined
/// (through `relay_b`).
pub async fn couple(root: &TempDir, relay_a: &str, relay_b: &str) -> (Device, Device) {
    let mut a = new_device(root, "alex", relay_a).await;
    let (b, _, _) = pair(&mut a, root, "sam", relay_b, false).await;
    sync_now(&mut a).await;
    (a, b)
}

/// One sync pass; panics on failure.
pub async fn sync_now(device: &mut Device) -> SyncReport {
    try_sync(device).await.unwrap_or_else(|e| panic!("sync: {e}"))
}

/// One sync pass.
pub async fn try_sync(device: &mut Device) -> Result<SyncReport, DeviceError> {
    let (conn, _pushes) = sync::connect(device).await?;
    sync::sync_once(device, &conn).await
}

/// The map a test writes to in `doc`: the shared document's vocabulary, or
/// a partner's needs.
fn container(doc: DocId) -> &'static str {
    match doc {
        DocId::Shared => cove_client::plan::schema::shared::VOCABULARY,
        _ => cove_client::plan::schema::partner::NEEDS,
    }
}

/// Sets `key` to `value` in the test container of `doc`, as one edit.
pub async fn put(device: &mut Device, doc: DocId, key: &str, value: &str) {
    try_put(device, doc, key, value).await.unwrap_or_else(|e| panic!("edit {key}: {e}"));
}

/// As [`put`], returning the error.
pub async fn try_put(
    device: &mut Device,
    doc: DocId,
    key: &str,
    value: &str,
) -> Result<(), DeviceError> {
    let name = container(doc);
    device
        .edit(doc, |tx| {
            let map = match tx.get(ROOT, name)? {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, name, ObjType::Map)?,
            };
            tx.put(&map, key, value)?;
            Ok(())
        })
        .await
}

/// The value at `key` in the test container of `doc`.
pub fn get(device: &Device, doc: DocId, key: &str) -> Option<String> {
    let automerge = device.docs().get(doc);
    let (_, map) = automerge.get(ROOT, container(doc)).ok()??;
    let (value, _) = automerge.get(&map, key).ok()??;
    value.as_str().map(str::to_owned)
}

/// Every key in the test container of `doc`.
pub fn keys(device: &Device, doc: DocId) -> Vec<String> {
    let automerge = device.docs().get(doc);
    match automerge.get(ROOT, container(doc)) {
        Ok(Some((_, map))) => automerge.keys(&map).collect(),
        _ => Vec::new(),
    }
}

/// A document's heads, sorted.
pub fn heads(device: &Device, doc: DocId) -> Vec<String> {
    let mut heads: Vec<String> = device.docs().heads(doc).iter().map(ToString::to_string).collect();
    heads.sort();
    heads
}

/// What partner A could forge: an add-device entry for partner B, certified
/// by an identity made up on the spot and signed with `device`'s own key
/// (which it opens from its keystore), at the end of `device`'s log.
pub fn forged_enrolment(device: &Device) -> cove_shared::Entry {
    use cove_shared::{DeviceSecret, EntryBody, IdentitySeed, OsEntropy, Partner, PartnerSecret};
    let fake = PartnerSecret::from_seed(&IdentitySeed::random(&mut OsEntropy))
        .unwrap_or_else(|| panic!("an identity"));
    let stooge = DeviceSecret::generate(&mut OsEntropy);
    let cert = fake.certify(device.plan(), device.membership().genesis(), Partner::B, stooge.id());
    let body = EntryBody::AddDevice {
        partner: Partner::B,
        bundle: stooge.bundle(),
        identity: fake.public(),
        certificate: Box::new(cert),
        wraps: Vec::new(),
    };
    let keystore = cove_client::keystore::Keystore::open(&device.home().keystore(), PASSPHRASE)
        .unwrap_or_else(|e| panic!("keystore: {e}"));
    let state = device.membership();
    cove_shared::Entry::sign(device.plan(), state.len(), state.head(), body, keystore.device())
        .unwrap_or_else(|e| panic!("sign: {e}"))
}
