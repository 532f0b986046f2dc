//! Golden vectors for the wire format, built deterministically from fixed
//! seeds.
//!
//! `cargo run -p cove-tests --bin cove-vectors -- --write` regenerates
//! `tests/vectors/*.json`. The test `tests/golden.rs` rebuilds them and
//! requires byte-for-byte equality, and separately decodes and verifies each
//! file with nothing but its own contents, as an independent reader would.
//! If a change makes it fail, the change breaks compatibility with every
//! deployed device and relay.

use automerge::transaction::Transactable;
use cove_client::documents::{DocError, Documents};
use cove_client::payload::{CheckpointPayload, Payload, SignalPayload, SnapshotPayload, TipClaim};
use cove_shared::codec::to_hex;
use cove_shared::envelope::{self, HEADER_LEN, NONCE_LEN, Seal};
use cove_shared::kdf::Purpose;
use cove_shared::random::{Entropy, SeededEntropy};
use cove_shared::wire::{
    self, Blob, ClientToRelay, Cursor, ErrorCode, Nonce32, PairOutcome, RelayToClient, Signature64,
    StoredEnvelope, StoredSnapshot,
};
use cove_shared::{
    Cutoff, DeviceSecret, DocId, EnvelopeHash, Epoch, EpochKeys, IdentitySeed, KeyWrap, Keyring,
    Kind, MembershipLog, Partner, PartnerSecret, PlanId, Seq, SymmetricKey,
};
use serde::{Deserialize, Serialize};

mod pairing;
pub use pairing::{InvitationVector, MailboxVector, PairingVector};

/// A device made from a fixed seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceVector {
    /// Name used by other vectors.
    pub name: String,
    /// The 64 secret bytes: Ed25519 seed ‖ X25519 secret.
    pub secret: String,
    /// The Ed25519 public key.
    pub device_id: String,
    /// The X25519 public key.
    pub exchange_public: String,
    /// The fingerprint shown to people.
    pub fingerprint: String,
    /// The signed 133-byte bundle.
    pub bundle: String,
}

/// An epoch key and everything derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochVector {
    /// The plan id.
    pub plan: String,
    /// The epoch.
    pub epoch: u32,
    /// The 32-byte epoch key.
    pub epoch_key: String,
    /// HKDF-derived key id.
    pub key_id: String,
    /// Subkey `cove/v1/changes`.
    pub changes_key: String,
    /// Subkey `cove/v1/snapshot`.
    pub snapshot_key: String,
    /// Subkey `cove/v1/signal`.
    pub signal_key: String,
    /// Subkey `cove/v1/checkpoint`.
    pub checkpoint_key: String,
}

/// One sealed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeVector {
    /// What it shows.
    pub name: String,
    /// The sending device's vector name.
    pub sender: String,
    /// Kind code.
    pub kind: u8,
    /// Doc code.
    pub doc: u8,
    /// Epoch (its key is in `epochs.json`).
    pub epoch: u32,
    /// Sequence number.
    pub seq: u64,
    /// Hash of the previous envelope.
    pub prev: String,
    /// The sender's membership view: entries.
    pub view_len: u32,
    /// The sender's membership view: hash of the last entry.
    pub view_head: String,

    /// The plaintext payload.
    pub payload: String,
    /// The nonce the seal drew.
    pub nonce: String,
    /// The whole envelope.
    pub envelope: String,
    /// Its hash.
    pub hash: String,
}

/// One key wrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapVector {
    /// Recipient vector name.
    pub recipient: String,
    /// Wrapper vector name.
    pub wrapper: String,
    /// Plan id.
    pub plan: String,
    /// Epoch.
    pub epoch: u32,
    /// The wrapped key.
    pub key: String,
    /// The ephemeral X25519 secret the wrap drew.
    pub ephemeral_secret: String,
    /// The nonce the wrap drew.
    pub nonce: String,
    /// The 257-byte wrap.
    pub wrap: String,
}

/// A membership chain and the state it yields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipVector {
    /// Plan id.
    pub plan: String,
    /// What the chain does, entry by entry.
    pub story: Vec<String>,
    /// Encoded entries, genesis first.
    pub entries: Vec<String>,
    /// Hash of each entry.
    pub hashes: Vec<String>,
    /// The epoch after the last entry.
    pub epoch: u32,
    /// Active devices after the last entry, by vector name, with partner.
    pub active: Vec<(String, String)>,
}

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireVector {
    /// `client-to-relay` or `relay-to-client`.
    pub direction: String,
    /// The message, in Rust debug notation, for people.
    pub message: String,
    /// The postcard frame.
    pub frame: String,
}

/// The signed authentication response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthVector {
    /// Device vector name.
    pub device: String,
    /// Relay origin.
    pub origin: String,
    /// Challenge nonce.
    pub nonce: String,
    /// The bytes signed.
    pub message: String,
    /// The signature.
    pub signature: String,
}

/// A partner identity made from a fixed seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityVector {
    /// Name used by other vectors.
    pub name: String,
    /// The 32-byte seed.
    pub seed: String,
    /// The seed as a recovery phrase.
    pub phrase: String,
    /// The Ed25519 public key.
    pub key: String,
    /// The X25519 public key.
    pub exchange_public: String,
    /// The signed 133-byte identity.
    pub identity: String,
}

/// A device certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateVector {
    /// The identity's vector name.
    pub identity: String,
    /// The device's vector name.
    pub device: String,
    /// Partner.
    pub partner: String,
    /// The genesis hash it names (zeros inside genesis).
    pub genesis: String,
    /// The 182-byte certificate.
    pub certificate: String,
}

/// `identities.json`: identities, certificates, a recovery proof, and an
/// entry every verifier must refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitiesVector {
    /// Partner identities.
    pub identities: Vec<IdentityVector>,
    /// Certificates, as the membership vector's entries carry them.
    pub certificates: Vec<CertificateVector>,
    /// The device that proves it acts for an identity.
    pub recovery_device: String,
    /// The identity it acts for.
    pub recovery_identity: String,
    /// The bytes signed.
    pub recovery_message: String,
    /// The proof.
    pub recovery_proof: String,
    /// An add-device entry that would follow `membership.json`'s chain,
    /// enrolling a device for partner B with a certificate by partner A's
    /// identity. Every verifier refuses it.
    pub rejected_entry: String,
    /// Why.
    pub rejected_because: String,
}

/// Something every reader must refuse, and the check that refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionVector {
    /// What it is.
    pub name: String,
    /// `envelope` (opened with `epochs.json` against `membership.json`) or
    /// `bundle` (decoded as section 3).
    pub format: String,
    /// The bytes.
    pub bytes: String,
    /// The check that must fail, in the words of the section that states it.
    pub check: String,
}

/// Every vector, one field per file in `tests/vectors/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vectors {
    /// `devices.json`
    pub devices: Vec<DeviceVector>,
    /// `epochs.json`
    pub epochs: Vec<EpochVector>,
    /// `envelopes.json`
    pub envelopes: Vec<EnvelopeVector>,
    /// `wraps.json`
    pub wraps: Vec<WrapVector>,
    /// `membership.json`
    pub membership: MembershipVector,
    /// `wire.json`
    pub wire: Vec<WireVector>,
    /// `auth.json`
    pub auth: AuthVector,
    /// `identities.json`
    pub identities: IdentitiesVector,
    /// `rejections.json`
    pub rejections: Vec<RejectionVector>,
    /// `membership-more.json`
    pub membership_more: MembershipVector,
    /// `pairing.json`
    pub pairing: PairingVector,
}

/// The files and their contents, pretty-printed with a trailing newline.
impl Vectors {
    /// `(file name, JSON)` for each file.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        fn json<T: Serialize>(v: &T) -> String {
            let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
            s.push('\n');
            s
        }
        vec![
            ("devices.json", json(&self.devices)),
            ("epochs.json", json(&self.epochs)),
            ("envelopes.json", json(&self.envelopes)),
            ("wraps.json", json(&self.wraps)),
            ("membership.json", json(&self.membership)),
            ("wire.json", json(&self.wire)),
            ("auth.json", json(&self.auth)),
            ("identities.json", json(&self.identities)),
            ("rejections.json", json(&self.rejections)),
            ("membership-more.json", json(&self.membership_more)),
            ("pairing.json", json(&self.pairing)),
        ]
    }
}

/// Where the vector files live.
pub fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn device(name: &str) -> (DeviceSecret, DeviceVector) {
    let secret = DeviceSecret::generate(&mut SeededEntropy::new(name.as_bytes()));
    let vector = DeviceVector {
        name: name.to_owned(),
        secret: to_hex(secret.to_secret_bytes().as_slice()),
        device_id: to_hex(secret.id().as_bytes()),
        exchange_public: to_hex(&secret.exchange_public()),
        fingerprint: secret.id().fingerprint(),
        bundle: to_hex(&secret.bundle().encode()),
    };
    (secret, vector)
}

fn identity(name: &str) -> (PartnerSecret, IdentityVector) {
    let seed = IdentitySeed::random(&mut SeededEntropy::new(name.as_bytes()));
    let secret = PartnerSecret::from_seed(&seed).unwrap_or_else(|| panic!("identity"));
    let vector = IdentityVector {
        name: name.to_owned(),
        seed: to_hex(seed.as_bytes()),
        phrase: cove_shared::phrase::encode(&seed).to_string(),
        key: to_hex(secret.key().as_bytes()),
        exchange_public: to_hex(&secret.exchange_public()),
        identity: to_hex(&secret.public().encode()),
    };
    (secret, vector)
}

fn epoch_vector(plan: PlanId, epoch: Epoch, key: &SymmetricKey) -> EpochVector {
    let keys = EpochKeys::derive(plan, epoch, key);
    EpochVector {
        plan: plan.to_string(),
        epoch: epoch.0,
        epoch_key: to_hex(key.as_bytes()),
        key_id: to_hex(&keys.key_id().0),
        changes_key: to_hex(keys.subkey(Purpose::Changes).as_bytes()),
        snapshot_key: to_hex(keys.subkey(Purpose::Snapshot).as_bytes()),
        signal_key: to_hex(keys.subkey(Purpose::Signal).as_bytes()),
        checkpoint_key: to_hex(keys.subkey(Purpose::Checkpoint).as_bytes()),
    }
}

/// Builds every vector from fixed seeds.
pub fn build() -> Vectors {
    let (alex, alex_v) = device("device-alex");
    let (blair, blair_v) = device("device-blair");
    let (blair2, blair2_v) = device("device-blair-2");
    let plan = PlanId::from_bytes(*b"cove-vector-plan");
    let key1 = SymmetricKey::random(&mut SeededEntropy::new(b"epoch-1"));
    let key2 = SymmetricKey::random(&mut SeededEntropy::new(b"epoch-2"));
    let key3 = SymmetricKey::random(&mut SeededEntropy::new(b"epoch-3"));

    // Membership: genesis by Alex; Alex adds Blair; Blair adds Blair's second
    // device; Blair rotates; Alex revokes Blair's second device; Blair's
    // identity enrols a third device (a recovery).
    let (id_alex, id_alex_v) = identity("identity-alex");
    let (id_blair, id_blair_v) = identity("identity-blair");
    let (blair3, blair3_v) = device("device-blair-3");
    let mut rng = SeededEntropy::new(b"membership");
    let genesis = MembershipLog::genesis(plan, &alex, &id_alex, &key1, &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut log = MembershipLog::from_genesis(genesis).unwrap_or_else(|e| panic!("{e}"));
    let genesis_hash = log.state().genesis();
    let keys = [key1.clone(), key2.clone(), key3.clone()];
    let key_of = |e: Epoch| keys.get(e.0 as usize - 1);
    fn push(
        log: &mut MembershipLog,
        entry: Result<cove_shared::Entry, cove_shared::MembershipError>,
    ) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        log.append(entry).unwrap_or_else(|e| panic!("{e}"));
    }
    let cert_blair = id_blair.certify(plan, genesis_hash, Partner::B, blair.id());
    let cert_blair2 = id_blair.certify(plan, genesis_hash, Partner::B, blair2.id());
    let blair_public = id_blair.public();
    let entry = log.add_device(
        &alex,
        Partner::B,
        &blair.bundle(),
        &blair_public,
        &cert_blair,
        key_of,
        &mut rng,
    );
    push(&mut log, entry);
    let entry = log.add_device(
        &blair,
        Partner::B,
        &blair2.bundle(),
        &blair_public,
        &cert_blair2,
        key_of,
        &mut rng,
    );
    push(&mut log, entry);
    let entry = log.rotate(&blair, &key2, &mut rng);
    push(&mut log, entry);
    let cutoff = Cutoff { doc: DocId::PartnerB, seq: Seq(2), hash: EnvelopeHash([0x42; 32]) };
    let entry = log.revoke(&alex, blair2.id(), vec![cutoff], &key3, &mut rng);
    push(&mut log, entry);
    let entry = log.recover(&id_blair, Partner::B, &blair3.bundle(), key_of, &mut rng);
    push(&mut log, entry);

    // Refused: Alex enrols a device for Blair, certified by Alex's identity.
    let (blair4, _) = device("device-blair-4");
    let forged_cert = id_alex.certify(plan, genesis_hash, Partner::B, blair4.id());
    let forged_body = cove_shared::EntryBody::AddDevice {
        partner: Partner::B,
        bundle: blair4.bundle(),
        identity: id_alex.public(),
        certificate: Box::new(forged_cert),
        wraps: (1..=3)
            .map(|e| {
                KeyWrap::wrap(
                    plan,
                    Epoch(e),
                    &keys[e as usize - 1],
                    blair4.id(),
                    &blair4.exchange_public(),
                    &alex,
                    &mut rng,
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect(),
    };
    let state = log.state();
    let forged = cove_shared::Entry::sign(plan, state.len(), state.head(), forged_body, &alex)
        .unwrap_or_else(|e| panic!("{e}"));
    let rejected_because = match log.clone().append(forged.clone()) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a device certified by the other partner's identity was accepted"),
    };
    let proof_message = cove_shared::identity::recovery_message(&blair3.id());
    let cert_vector = |identity: &str,
                       device: &str,
                       partner: Partner,
                       genesis: [u8; 32],
                       cert: &cove_shared::Certificate| {
        CertificateVector {
            identity: identity.into(),
            device: device.into(),
            partner: partner.to_string(),
            genesis: to_hex(&genesis),
            certificate: to_hex(&cert.encode()),
        }
    };
    let identities = IdentitiesVector {
        identities: vec![id_alex_v, id_blair_v],
        certificates: vec![
            cert_vector(
                "identity-alex",
                "device-alex",
                Partner::A,
                [0; 32],
                &id_alex.certify(plan, cove_shared::EntryHash::default(), Partner::A, alex.id()),
            ),
            cert_vector("identity-blair", "device-blair", Partner::B, genesis_hash.0, &cert_blair),
            cert_vector(
                "identity-blair",
                "device-blair-2",
                Partner::B,
                genesis_hash.0,
                &cert_blair2,
            ),
        ],
        recovery_device: "device-blair-3".into(),
        recovery_identity: "identity-blair".into(),
        recovery_message: to_hex(&proof_message),
        recovery_proof: to_hex(&id_blair.recovery_proof(&blair3.id())),
        rejected_entry: to_hex(forged.encode()),
        rejected_because,
    };
    let names = [
        (&alex, "device-alex"),
        (&blair, "device-blair"),
        (&blair2, "device-blair-2"),
        (&blair3, "device-blair-3"),
    ];
    let name_of = |id| names.iter().find(|(d, _)| d.id() == id).map_or("?", |(_, n)| n).to_owned();
    let membership = MembershipVector {
        plan: plan.to_string(),
        story: vec![
            "genesis: device-alex creates the plan as partner A, epoch 1".into(),
            "add device: device-alex adds device-blair as partner B".into(),
            "add device: device-blair adds device-blair-2 for partner B".into(),
            "rotate epoch: device-blair starts epoch 2".into(),
            "revoke device: device-alex revokes device-blair-2, partner-b cutoff at seq 2, epoch 3"
                .into(),
            "add device: identity-blair enrols device-blair-3 for partner B (a recovery)".into(),
        ],
        entries: log.entries().iter().map(|e| to_hex(e.encode())).collect(),
        hashes: log.entries().iter().map(|e| to_hex(&e.hash().0)).collect(),
        epoch: log.state().epoch().0,
        active: log.state().active().map(|m| (name_of(m.device), m.partner.to_string())).collect(),
    };

    // Envelopes, one per kind, sealed by members with the epoch 3 key.
    let ring = Keyring::from_log(&log, &alex);
    let epoch = log.state().epoch();
    let keys3 = ring.keys(epoch).cloned().unwrap_or_else(|| panic!("epoch key"));
    // Real section 10 payloads: Automerge changes made by each sender's
    // actor at a fixed time, a snapshot of Alex's shared document, a signal.
    let mut alex_docs = Documents::new(&alex.id());
    let mut blair_docs = Documents::new(&blair.id());
    let changes = |docs: &mut Documents, doc: DocId, key: &str, value: &str| {
        let (_, made) = docs
            .edit(doc, 1_796_342_400_000, |tx| {
                tx.put(automerge::ROOT, key, value).map_err(DocError::from)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let raw = made.iter().map(|c| Blob(c.raw_bytes().to_vec())).collect();
        Payload::Changes(raw).encode()
    };
    struct Case<'a> {
        name: &'a str,
        sender: (&'a DeviceSecret, &'a str),
        kind: Kind,
        doc: DocId,
        seq: u64,
        payload: Vec<u8>,
    }
    let cases = [
        Case {
            name: "changes, shared document, first in stream",
            sender: (&alex, "device-alex"),
            kind: Kind::Changes,
            doc: DocId::Shared,
            seq: 1,
            payload: changes(&mut alex_docs, DocId::Shared, "menu", "warm blanket"),
        },
        Case {
            name: "changes, partner-b document, first in stream",
            sender: (&blair, "device-blair"),
            kind: Kind::Changes,
            doc: DocId::PartnerB,
            seq: 1,
            payload: changes(&mut blair_docs, DocId::PartnerB, "boundary", "ask first"),
        },
        Case {
            name: "changes, partner-b document, second in stream",
            sender: (&blair, "device-blair"),
            kind: Kind::Changes,
            doc: DocId::PartnerB,
            seq: 2,
            payload: changes(&mut blair_docs, DocId::PartnerB, "boundary", "no analysis tonight"),
        },
        Case {
            name: "changes, partner-a document, in the 1024 bucket",
            sender: (&alex, "device-alex"),
            kind: Kind::Changes,
            doc: DocId::PartnerA,
            seq: 1,
            payload: changes(&mut alex_docs, DocId::PartnerA, "need", &"quiet time, ".repeat(50)),
        },
        Case {
            name: "snapshot, shared document",
            sender: (&alex, "device-alex"),
            kind: Kind::Snapshot,
            doc: DocId::Shared,
            seq: 1,
            // Filled in below, once the stream it covers has its hash.
            payload: Vec::new(),
        },
        Case {
            name: "signal",
            sender: (&blair, "device-blair"),
            kind: Kind::Signal,
            doc: DocId::Shared,
            seq: 1,
            payload: Payload::Signal(SignalPayload {
                signal: "pause".into(),
                sent_at: 1_796_342_400_000,
                expires_at: 1_796_344_200_000,
            })
            .encode(),
        },
        Case {
            name: "checkpoint, holding blair's partner-b stream at seq 2",
            sender: (&alex, "device-alex"),
            kind: Kind::Checkpoint,
            doc: DocId::Shared,
            seq: 1,
            // Filled in below, once the stream it names has its hash.
            payload: Vec::new(),
        },
    ];
    // A checkpoint by Alex's device, a real section 10 value: it holds
    // Blair's partner-b stream up to the second envelope above.
    let checkpoint = |tips: &std::collections::HashMap<_, EnvelopeHash>| {
        let key = (blair.id(), Kind::Changes.code(), DocId::PartnerB.code());
        let hash = tips.get(&key).copied().unwrap_or(EnvelopeHash::GENESIS);
        Payload::Checkpoint(CheckpointPayload {
            made_at: 1_796_342_400_000,
            read_through: Cursor(7),
            tips: vec![TipClaim {
                device: blair.id(),
                kind: Kind::Changes.code(),
                doc: DocId::PartnerB.code(),
                tip: cove_shared::freshness::StreamTip { seq: Seq(2), hash },
            }],
        })
        .encode()
    };
    let mut envelopes = Vec::new();
    // Each stream (sender, kind, doc) chains on its own: `prev` is the hash
    // of the same stream's previous envelope, zeros for its first.
    let mut tips: std::collections::HashMap<(cove_shared::DeviceId, u8, u8), EnvelopeHash> =
        std::collections::HashMap::new();
    for (i, Case { name, sender: (sender, sender_name), kind, doc, seq, mut payload }) in
        cases.into_iter().enumerate()
    {
        if kind == Kind::Snapshot {
            // Alex's shared document, covering Alex's one change to it.
            let key = (alex.id(), Kind::Changes.code(), DocId::Shared.code());
            let hash = tips.get(&key).copied().unwrap_or(EnvelopeHash::GENESIS);
            let tip = cove_shared::freshness::StreamTip { seq: Seq(1), hash };
            payload = Payload::Snapshot(SnapshotPayload {
                covers: Cursor(1),
                coverage: std::collections::BTreeMap::from([(alex.id(), tip)]),
                document: Blob(alex_docs.save(DocId::Shared)),
            })
            .encode();
        }
        if kind == Kind::Checkpoint {
            payload = checkpoint(&tips);
        }
        let payload = payload.as_slice();
        let stream = (sender.id(), kind.code(), doc.code());
        let prev = tips.get(&stream).copied().unwrap_or(EnvelopeHash::GENESIS);
        let mut rng = SeededEntropy::new(format!("envelope-{i}").as_bytes());
        let nonce: [u8; NONCE_LEN] = rng.clone().array();
        let view = log.state().view();
        let request = Seal { kind, doc, seq: Seq(seq), prev, view, payload };
        let sealed =
            envelope::seal(&keys3, sender, request, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        debug_assert_eq!(&sealed.bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN], &nonce);
        envelopes.push(EnvelopeVector {
            name: name.into(),
            sender: sender_name.into(),
            kind: kind.code(),
            doc: doc.code(),
            epoch: epoch.0,
            seq,
            prev: to_hex(&prev.0),
            view_len: view.len,
            view_head: to_hex(&view.head.0),
            payload: to_hex(payload),
            nonce: to_hex(&nonce),
            envelope: to_hex(&sealed.bytes),
            hash: to_hex(&sealed.hash.0),
        });
        tips.insert(stream, sealed.hash);
    }

    // A standalone key wrap.
    let mut rng = SeededEntropy::new(b"wrap-vector");
    let mut probe = rng.clone();
    let ephemeral: [u8; 32] = probe.array();
    let wrap_nonce: [u8; 24] = probe.array();
    let wrap =
        KeyWrap::wrap(plan, Epoch(1), &key1, blair.id(), &blair.exchange_public(), &alex, &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
    let wraps = vec![WrapVector {
        recipient: "device-blair".into(),
        wrapper: "device-alex".into(),
        plan: plan.to_string(),
        epoch: 1,
        key: to_hex(key1.as_bytes()),
        ephemeral_secret: to_hex(&ephemeral),
        nonce: to_hex(&wrap_nonce),
        wrap: to_hex(wrap.encode()),
    }];

    let nonce = Nonce32(*b"relay-challenge-nonce-32-bytes!!");
    let origin = "wss://relay.example:8443";
    let auth_message = wire::auth_message(origin, &nonce, &alex.id()).unwrap_or_default();
    let auth = AuthVector {
        device: "device-alex".into(),
        origin: origin.into(),
        nonce: to_hex(&nonce.0),
        message: to_hex(&auth_message),
        signature: to_hex(&alex.sign(&auth_message)),
    };

    let epochs = vec![
        epoch_vector(plan, Epoch(1), &key1),
        epoch_vector(plan, Epoch(2), &key2),
        epoch_vector(plan, Epoch(3), &key3),
    ];
    let signal = envelopes.iter().find(|e| e.kind == Kind::Signal.code());
    let small_envelope = Blob(
        signal.and_then(|e| cove_shared::codec::from_hex_vec(&e.envelope).ok()).unwrap_or_default(),
    );
    let rejections = rejections(&envelopes, &blair2, &keys3, &log);
    let (alex2, alex2_v) = device("device-alex-2");
    let membership_more = membership_more(&alex, &alex2, &blair, &id_alex, &id_blair, &keys);
    let pairing =
        pairing::pairing((&alex, "device-alex"), (&blair, "device-blair"), plan, genesis_hash);
    Vectors {
        devices: vec![alex_v, blair_v, blair2_v, blair3_v, alex2_v],
        epochs,
        envelopes,
        wraps,
        membership,
        wire: wire_vectors(plan, &alex, &small_envelope, log.entries()[0].encode()),
        auth,
        identities,
        rejections,
        membership_more,
        pairing,
    }
}

/// A second chain: a second device for partner A, a device leaving with
/// two cutoffs, the rotation that follows, and a revocation with none.
fn membership_more(
    alex: &DeviceSecret,
    alex2: &DeviceSecret,
    blair: &DeviceSecret,
    id_alex: &PartnerSecret,
    id_blair: &PartnerSecret,
    keys: &[SymmetricKey; 3],
) -> MembershipVector {
    let plan = PlanId::from_bytes(*b"cove-vector-two!");
    let mut rng = SeededEntropy::new(b"membership-more");
    let key_of = |e: Epoch| keys.get(e.0 as usize - 1);
    let push = |log: &mut MembershipLog, entry: Result<cove_shared::Entry, _>| {
        let entry: cove_shared::Entry =
            entry.unwrap_or_else(|e: cove_shared::MembershipError| panic!("{e}"));
        log.append(entry).unwrap_or_else(|e| panic!("{e}"));
    };
    let genesis = MembershipLog::genesis(plan, alex, id_alex, &keys[0], &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut log = MembershipLog::from_genesis(genesis).unwrap_or_else(|e| panic!("{e}"));
    let genesis = log.state().genesis();
    let cert = id_alex.certify(plan, genesis, Partner::A, alex2.id());
    let entry = log.add_device(
        alex,
        Partner::A,
        &alex2.bundle(),
        &id_alex.public(),
        &cert,
        key_of,
        &mut rng,
    );
    push(&mut log, entry);
    let cert = id_blair.certify(plan, genesis, Partner::B, blair.id());
    let entry = log.add_device(
        alex,
        Partner::B,
        &blair.bundle(),
        &id_blair.public(),
        &cert,
        key_of,
        &mut rng,
    );
    push(&mut log, entry);
    let cutoffs = vec![
        Cutoff { doc: DocId::Shared, seq: Seq(4), hash: EnvelopeHash([0x44; 32]) },
        Cutoff { doc: DocId::PartnerA, seq: Seq(2), hash: EnvelopeHash([0x22; 32]) },
    ];
    let entry = log.leave(alex2, cutoffs);
    push(&mut log, entry);
    let entry = log.rotate(blair, &keys[1], &mut rng);
    push(&mut log, entry);
    let entry = log.revoke(alex, blair.id(), Vec::new(), &keys[2], &mut rng);
    push(&mut log, entry);
    let names = [(alex, "device-alex"), (alex2, "device-alex-2"), (blair, "device-blair")];
    let name_of = |id| names.iter().find(|(d, _)| d.id() == id).map_or("?", |(_, n)| n).to_owned();
    MembershipVector {
        plan: plan.to_string(),
        story: vec![
            "genesis: device-alex creates the plan as partner A, epoch 1".into(),
            "add device: device-alex adds device-alex-2, a second device for partner A".into(),
            "add device: device-alex adds device-blair as partner B".into(),
            "revoke device: device-alex-2 leaves (revokes itself) with cutoffs shared seq 4 and partner-a seq 2; no new epoch".into(),
            "rotate epoch: device-blair starts epoch 2, as the leave made due".into(),
            "revoke device: device-alex revokes device-blair with no cutoff, epoch 3".into(),
        ],
        entries: log.entries().iter().map(|e| to_hex(e.encode())).collect(),
        hashes: log.entries().iter().map(|e| to_hex(&e.hash().0)).collect(),
        epoch: log.state().epoch().0,
        active: log.state().active().map(|m| (name_of(m.device), m.partner.to_string())).collect(),
    }
}

/// The order of the Ed25519 group, little-endian: adding it to a valid `S`
/// gives the same point but a non-canonical scalar.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// `s + ELL`, little-endian, when it still fits 256 bits.
fn plus_ell(s: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    (carry == 0).then_some(out)
}

fn rejections(
    envelopes: &[EnvelopeVector],
    revoked: &DeviceSecret,
    keys: &EpochKeys,
    log: &MembershipLog,
) -> Vec<RejectionVector> {
    let reject = |name: &str, format: &str, bytes: &[u8], check: &str| RejectionVector {
        name: name.into(),
        format: format.into(),
        bytes: to_hex(bytes),
        check: check.into(),
    };
    let first = cove_shared::codec::from_hex_vec(&envelopes[0].envelope).unwrap_or_default();
    let mut out = Vec::new();
    let mut flipped = first.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 0x01;
    }
    out.push(reject(
        "an envelope whose signature has one bit changed",
        "envelope",
        &flipped,
        "section 4, opening step 5: the Ed25519 signature verifies (strictly)",
    ));
    // S is the last 32 bytes; S + ℓ is the same point with a scalar ≥ ℓ.
    let at = first.len() - 32;
    let s: [u8; 32] = first[at..].try_into().unwrap_or([0; 32]);
    if let Some(big) = plus_ell(&s) {
        let mut malleated = first.clone();
        malleated[at..].copy_from_slice(&big);
        out.push(reject(
            "an envelope whose signature's S is replaced by S + ℓ",
            "envelope",
            &malleated,
            "section 4, opening step 5: strict verification refuses S ≥ ℓ",
        ));
    }
    let mut rng = SeededEntropy::new(b"rejection-revoked");
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::PartnerB,
        seq: Seq(3),
        prev: EnvelopeHash::GENESIS,
        view: log.state().view(),
        payload: b"written after its revocation",
    };
    if let Ok(sealed) = envelope::seal(keys, revoked, request, &mut rng) {
        out.push(reject(
            "an envelope from device-blair-2, sealed after its revocation with the current view",
            "envelope",
            &sealed.bytes,
            "section 4, opening step 4: the membership log admits the sender (a revoked device only for changes up to its cutoff, with a view from before its revocation)",
        ));
    }
    let mut rng = SeededEntropy::new(b"rejection-padding");
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(2),
        prev: EnvelopeHash::GENESIS,
        view: log.state().view(),
        payload: b"padding that is not all zero",
    };
    let alex = DeviceSecret::generate(&mut SeededEntropy::new(b"device-alex"));
    if let Ok(sealed) = envelope::seal_with_bad_padding(keys, &alex, request, &mut rng) {
        out.push(reject(
            "an envelope from device-alex, validly signed and encrypted, whose padding's last byte is 01",
            "envelope",
            &sealed.bytes,
            "section 4, opening step 8: the padding is canonical (all zero)",
        ));
    }
    let mut wrong_plan = first.clone();
    wrong_plan[6] ^= 0x01;
    out.push(reject(
        "an envelope relabelled with another plan id",
        "envelope",
        &wrong_plan,
        "section 4, opening step 3: the plan id is the receiver's plan",
    ));
    // A bundle whose exchange key has order 8, properly self-signed.
    let device = DeviceSecret::generate(&mut SeededEntropy::new(b"rejection-bundle"));
    let small = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    let mut bundle = b"CVDB".to_vec();
    bundle.push(cove_shared::VERSION);
    bundle.extend_from_slice(device.id().as_bytes());
    bundle.extend_from_slice(&small);
    let signature = device.sign(&bundle);
    bundle.extend_from_slice(&signature);
    out.push(reject(
        "a device bundle whose X25519 key has order 8, validly self-signed",
        "bundle",
        &bundle,
        "section 3: a reader rejects a bundle whose X25519 key is of small order",
    ));
    out
}

/// One sample of every message, in variant order, then the variants'
/// other shapes (a `Snapshot` with none, an `Error` with no request). The
/// `Authenticate` answers the `Challenge`: its signature is real.
pub fn wire_samples(
    plan: PlanId,
    device: &DeviceSecret,
    envelope: &Blob,
    entry: &[u8],
) -> (Vec<ClientToRelay>, Vec<RelayToClient>) {
    let entry = Blob(entry.to_vec());
    let stored = StoredEnvelope { cursor: Cursor(42), envelope: envelope.clone() };
    let (origin, nonce) = ("wss://relay.example:8443", Nonce32([0x11; 32]));
    let answer = wire::auth_message(origin, &nonce, &device.id()).unwrap_or_default();
    let client = vec![
        ClientToRelay::Authenticate {
            device: device.id(),
            signature: Signature64(device.sign(&answer)),
        },
        ClientToRelay::CreatePlan { request: 1, genesis: entry.clone() },
        ClientToRelay::AppendMembership { request: 2, plan, entry: entry.clone() },
        ClientToRelay::FetchMembership { request: 3, plan, from: 1 },
        ClientToRelay::Push { request: 4, plan, envelope: envelope.clone() },
        ClientToRelay::Fetch { request: 5, plan, after: Cursor(41), limit: 100 },
        ClientToRelay::Subscribe { request: 6, plan },
        ClientToRelay::Ack { request: 7, plan, cursor: Cursor(42) },
        ClientToRelay::PutSnapshot {
            request: 8,
            plan,
            covers: Cursor(300),
            envelope: envelope.clone(),
        },
        ClientToRelay::GetSnapshot { request: 9, plan, doc: DocId::PartnerA },
        ClientToRelay::DeletePlan { request: 10, plan },
        ClientToRelay::PairOpen { request: 11 },
        ClientToRelay::PairJoin { request: 12, nameplate: "7".into() },
        ClientToRelay::PairSend { request: 13, nameplate: "7".into(), body: Blob(vec![1, 2, 3]) },
        ClientToRelay::PairClose {
            request: 14,
            nameplate: "7".into(),
            outcome: PairOutcome::Failed,
        },
        ClientToRelay::Ping { request: 300 },
        ClientToRelay::Recover {
            request: 16,
            identity: device.id(),
            proof: Signature64([0x6b; 64]),
        },
    ];
    let relay = vec![
        RelayToClient::Challenge { version: wire::PROTOCOL_VERSION, origin: origin.into(), nonce },
        RelayToClient::Authenticated { device: device.id() },
        RelayToClient::Done { request: 7 },
        RelayToClient::Stored { request: 4, cursor: Cursor(42), duplicate: false },
        RelayToClient::Page {
            request: 5,
            plan,
            items: vec![stored.clone()],
            head: Cursor(42),
            compacted: Cursor(1),
        },
        RelayToClient::Deliver { plan, item: stored },
        RelayToClient::Membership { request: 3, plan, entries: vec![entry], len: 1 },
        RelayToClient::MembershipChanged { plan, len: 2 },
        RelayToClient::Snapshot {
            request: 9,
            plan,
            snapshot: Some(StoredSnapshot { covers: Cursor(300), envelope: envelope.clone() }),
        },
        RelayToClient::PairOpened { request: 11, nameplate: "7".into() },
        RelayToClient::PairMessage { nameplate: "7".into(), body: Blob(vec![4, 5]) },
        RelayToClient::PairClosed { nameplate: "7".into(), outcome: PairOutcome::Completed },
        RelayToClient::Pong { request: 300 },
        RelayToClient::Error {
            request: Some(4),
            code: ErrorCode::RateLimited,
            message: ErrorCode::RateLimited.describe().into(),
        },
        RelayToClient::Revoked { plan },
        RelayToClient::Recovering { request: 16, plan },
        RelayToClient::Snapshot { request: 10, plan, snapshot: None },
        RelayToClient::Error {
            request: None,
            code: ErrorCode::AuthFailed,
            message: ErrorCode::AuthFailed.describe().into(),
        },
    ];
    (client, relay)
}

fn wire_vectors(
    plan: PlanId,
    device: &DeviceSecret,
    envelope: &Blob,
    entry: &[u8],
) -> Vec<WireVector> {
    let (client, relay) = wire_samples(plan, device, envelope, entry);
    let frame = |m: &dyn erased::Encode| to_hex(&m.encode());
    client
        .iter()
        .map(|m| WireVector {
            direction: "client-to-relay".into(),
            message: format!("{m:?}"),
            frame: frame(m),
        })
        .chain(relay.iter().map(|m| WireVector {
            direction: "relay-to-client".into(),
            message: format!("{m:?}"),
            frame: frame(m),
        }))
        .collect()
}

mod erased {
    pub(super) trait Encode {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            cove_shared::wire::encode(self).unwrap_or_default()
        }
    }
}
