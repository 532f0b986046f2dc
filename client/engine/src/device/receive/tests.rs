//! Receiving, one envelope at a time, from a table of cases: each names
//! what a relay (honest or not) serves, and what the device must make of
//! it, without a relay or a database.

use super::classify::{Context, HOLD_WINDOW, classify};
use super::held::revoked_runs;
use crate::documents::Documents;
use crate::payload::{Payload, SignalPayload};
use automerge::ROOT;
use automerge::transaction::Transactable;
use cove_shared::envelope::{self, Seal};
use cove_shared::freshness::Freshness;
use cove_shared::membership::Cutoff;
use cove_shared::wire::{Blob, Cursor, StoredEnvelope};
use cove_shared::{
    DeviceSecret, DocId, EnvelopeHash, Keyring, Kind, MembershipLog, MembershipState, OsEntropy,
    Partner, PlanId, Seq, Stream, SymmetricKey,
};

/// A plan with this device (A's), B's device, and B's second device, which
/// sealed two shared changes and was then revoked with its cutoff there.
struct Fixture {
    a: DeviceSecret,
    b: DeviceSecret,
    revoked: DeviceSecret,
    log: MembershipLog,
    /// The revoked device's two shared changes, sealed before it left.
    revoked_changes: [StoredEnvelope; 2],
}

fn copy(secret: &DeviceSecret) -> DeviceSecret {
    DeviceSecret::from_secret_bytes(&secret.to_secret_bytes()).expect("a device secret")
}

impl Fixture {
    fn new() -> Self {
        let rng = &mut OsEntropy;
        let a = DeviceSecret::generate(rng);
        let b = DeviceSecret::generate(rng);
        let revoked = DeviceSecret::generate(rng);
        let first = SymmetricKey::random(rng);
        let identity = || {
            let seed = cove_shared::IdentitySeed::random(&mut OsEntropy);
            cove_shared::PartnerSecret::from_seed(&seed).expect("an identity")
        };
        let plan = PlanId::random(rng);
        let genesis = MembershipLog::genesis(plan, &a, &identity(), &first, rng).expect("genesis");
        let mut log = MembershipLog::from_genesis(genesis).expect("log");
        // A enrols B's first device; B's first device enrols B's second.
        let idb = identity();
        for (signer, device) in [(&a, &b), (&b, &revoked)] {
            let ring = Keyring::from_log(&log, signer);
            let cert = idb.certify(plan, log.state().genesis(), Partner::B, device.id());
            let add = log.add_device(
                signer,
                Partner::B,
                &device.bundle(),
                &idb.public(),
                &cert,
                |e| ring.key(e),
                rng,
            );
            log.append(add.expect("enrolment")).expect("append");
        }
        let one = seal(
            &log,
            &revoked,
            Kind::Changes,
            DocId::Shared,
            1,
            EnvelopeHash::GENESIS,
            &changes_by(&revoked),
        );
        let two =
            seal(&log, &revoked, Kind::Changes, DocId::Shared, 2, one.1, &changes_by(&revoked));
        let cutoff = Cutoff { doc: DocId::Shared, seq: Seq(2), hash: two.1 };
        let revoke = log.revoke(&a, revoked.id(), vec![cutoff], &SymmetricKey::random(rng), rng);
        log.append(revoke.expect("revocation")).expect("append");
        let revoked_changes = [stored(one.0, 40), stored(two.0, 41)];
        Self { a, b, revoked, log, revoked_changes }
    }
}

/// One change to the shared document, made by `device`, as a payload.
fn changes_by(device: &DeviceSecret) -> Vec<u8> {
    let mut docs = Documents::new(&device.id());
    let ((), changes) = docs
        .edit(DocId::Shared, 0, |tx| {
            tx.put(ROOT, "note", "hello").map_err(crate::documents::DocError::from)
        })
        .expect("an edit");
    Payload::Changes(changes.iter().map(|c| Blob(c.raw_bytes().to_vec())).collect()).encode()
}

fn signal_payload() -> Vec<u8> {
    let signal = SignalPayload { signal: "pause".into(), sent_at: 0, expires_at: i64::MAX };
    Payload::Signal(signal).encode()
}

/// Seals an envelope from `sender`, in the view of the whole `log`.
fn seal(
    log: &MembershipLog,
    sender: &DeviceSecret,
    kind: Kind,
    doc: DocId,
    seq: u64,
    prev: EnvelopeHash,
    payload: &[u8],
) -> (Vec<u8>, EnvelopeHash) {
    let state = log.state();
    let ring = Keyring::from_log(log, sender);
    let keys = ring.keys(state.epoch()).expect("a key for the current epoch");
    let request = Seal { kind, doc, seq: Seq(seq), prev, view: state.view(), payload };
    let sealed = envelope::seal(keys, sender, request, &mut OsEntropy).expect("seal");
    (sealed.bytes, sealed.hash)
}

fn stored(bytes: Vec<u8>, cursor: u64) -> StoredEnvelope {
    StoredEnvelope { cursor: Cursor(cursor), envelope: Blob(bytes) }
}

/// What the device holds in one case.
struct Holding {
    membership: MembershipState,
    freshness: Freshness,
    own_tip: u64,
    snapshot_covers: [u64; 3],
    /// Envelopes in the same batch (a revoked sender's run is judged on
    /// the whole batch).
    batch: Vec<StoredEnvelope>,
}

fn holding(f: &Fixture) -> Holding {
    Holding {
        membership: f.log.state().clone(),
        freshness: Freshness::new(),
        own_tip: 0,
        snapshot_covers: [0; 3],
        batch: Vec::new(),
    }
}

fn judge(f: &Fixture, h: &Holding, item: &StoredEnvelope) -> String {
    let keyring = Keyring::from_log(&f.log, &f.a);
    let mut batch = h.batch.clone();
    batch.push(item.clone());
    let runs = revoked_runs(&h.membership, &h.freshness, batch.iter());
    let own_tip = |_: Kind, _: DocId| Seq(h.own_tip);
    let cx = Context {
        me: f.a.id(),
        membership: &h.membership,
        keyring: &keyring,
        freshness: &h.freshness,
        own_tip: &own_tip,
        snapshot_covers: h.snapshot_covers,
        revoked_runs: &runs,
    };
    classify(&cx, item).name()
}

/// Records `bytes` as applied.
fn applied(freshness: &mut Freshness, bytes: &[u8]) {
    let (header, hash) = envelope::inspect(bytes).expect("a signed envelope");
    freshness.record(&header, hash);
}

#[test]
fn each_kind_of_envelope_is_classified_as_the_rules_say() {
    let f = Fixture::new();
    let b = copy(&f.b);
    let log = &f.log;
    let shared =
        |seq, prev, payload: &[u8]| seal(log, &b, Kind::Changes, DocId::Shared, seq, prev, payload);
    let (first, first_hash) = shared(1, EnvelopeHash::GENESIS, &changes_by(&b));
    let (second, _) = shared(2, first_hash, &changes_by(&b));
    let (other_first, _) = shared(1, EnvelopeHash::GENESIS, &changes_by(&b));
    let (far, _) = shared(HOLD_WINDOW + 2, EnvelopeHash([7; 32]), &changes_by(&b));

    type Setup = Box<dyn Fn(&mut Holding)>;
    let nothing: Setup = Box::new(|_| {});
    let seen_first: Setup = {
        let first = first.clone();
        Box::new(move |h| applied(&mut h.freshness, &first))
    };
    let seen_two: Setup = {
        let (first, second) = (first.clone(), second.clone());
        Box::new(move |h| {
            applied(&mut h.freshness, &first);
            applied(&mut h.freshness, &second);
        })
    };

    // The last 64 bytes are the signature; the ciphertext comes before.
    let mut tampered = first.clone();
    let in_ciphertext = tampered.len() - 64 - 10;
    tampered[in_ciphertext] ^= 1;
    let mut bad_signature = first.clone();
    let in_signature = bad_signature.len() - 1;
    bad_signature[in_signature] ^= 1;
    let (foreign, _) =
        seal(log, &b, Kind::Changes, DocId::PartnerA, 1, EnvelopeHash::GENESIS, &changes_by(&b));
    let (theirs, _) =
        seal(log, &b, Kind::Changes, DocId::PartnerB, 1, EnvelopeHash::GENESIS, &changes_by(&b));
    let (not_theirs, _) = shared(1, EnvelopeHash::GENESIS, &changes_by(&f.a));
    let (wrong_content, _) = shared(1, EnvelopeHash::GENESIS, &signal_payload());
    let (signal, _) =
        seal(log, &b, Kind::Signal, DocId::Shared, 1, EnvelopeHash::GENESIS, &signal_payload());
    let (late_signal, _) =
        seal(log, &b, Kind::Signal, DocId::Shared, 3, EnvelopeHash([1; 32]), &signal_payload());
    let (snapshot, _) =
        seal(log, &b, Kind::Snapshot, DocId::Shared, 1, EnvelopeHash::GENESIS, &signal_payload());
    let (mine, _) =
        seal(log, &f.a, Kind::Changes, DocId::Shared, 1, EnvelopeHash::GENESIS, &changes_by(&f.a));
    let [revoked_one, revoked_two] = f.revoked_changes.clone();
    let revoked = copy(&f.revoked);
    let past_cutoff = {
        let before = log.state_at(3).expect("the log before the revocation");
        let ring = Keyring::from_log(log, &revoked);
        let keys = ring.keys(before.epoch()).expect("the old key");
        let payload = changes_by(&revoked);
        let request = Seal {
            kind: Kind::Changes,
            doc: DocId::Shared,
            seq: Seq(3),
            prev: envelope::inspect(&revoked_two.envelope.0).expect("signed").1,
            view: before.view(),
            payload: &payload,
        };
        envelope::seal(keys, &revoked, request, &mut OsEntropy).expect("seal").bytes
    };
    let shorter = |len: usize| -> Setup {
        let state = log.state_at(len).expect("a prefix of the log");
        Box::new(move |h| h.membership = state.clone())
    };

    let cases: Vec<(&str, Vec<u8>, u64, Setup, &str)> = vec![
        ("valid changes", first.clone(), 1, nothing, "fresh changes"),
        ("the next changes", second.clone(), 2, seen_first, "fresh changes"),
        (
            "replayed",
            first.clone(),
            3,
            Box::new({
                let first = first.clone();
                move |h| applied(&mut h.freshness, &first)
            }),
            "duplicate",
        ),
        ("older than what was seen (a rolled-back relay)", first.clone(), 4, seen_two, "duplicate"),
        ("a gap before it", second.clone(), 5, Box::new(|_| {}), "gap"),
        ("too far past a gap to hold", far, 6, Box::new(|_| {}), "gap, too far ahead"),
        (
            "a second envelope for a seen position",
            other_first,
            7,
            Box::new({
                let first = first.clone();
                move |h| applied(&mut h.freshness, &first)
            }),
            "contradicts the sender's earlier envelopes",
        ),
        ("a flipped ciphertext bit", tampered, 8, Box::new(|_| {}), "failed verification"),
        ("a flipped signed bit", bad_signature, 9, Box::new(|_| {}), "failed verification"),
        ("B writing A's own document", foreign, 10, Box::new(|_| {}), "failed verification"),
        ("B writing B's own document", theirs, 11, Box::new(|_| {}), "fresh changes"),
        (
            "a change made by someone else",
            not_theirs,
            12,
            Box::new(|_| {}),
            "fresh, but a change not made by its sender, or not a change",
        ),
        (
            "changes that hold a signal",
            wrong_content,
            13,
            Box::new(|_| {}),
            "fresh, but unreadable content",
        ),
        ("not an envelope", b"cove".to_vec(), 14, Box::new(|_| {}), "malformed"),
        ("a signal", signal, 15, Box::new(|_| {}), "fresh signal"),
        (
            "a signal after lost ones",
            late_signal,
            16,
            Box::new(|_| {}),
            "fresh signal, after a gap",
        ),
        ("a snapshot in the log", snapshot, 17, Box::new(|_| {}), "not from the log"),
        (
            "inside the snapshot this device started from",
            first.clone(),
            18,
            Box::new(|h| {
                h.snapshot_covers[usize::from(DocId::Shared.code())] = 18;
            }),
            "not from the log",
        ),
        (
            "behind what a snapshot claimed",
            first.clone(),
            19,
            Box::new({
                let second = second.clone();
                move |h| {
                    h.snapshot_covers[usize::from(DocId::Shared.code())] = 10;
                    applied(&mut h.freshness, &second);
                }
            }),
            "inside the coverage a snapshot claimed",
        ),
        ("this device's own", mine.clone(), 20, Box::new(|h| h.own_tip = 1), "own"),
        (
            "this device's own, newer than it remembers",
            mine,
            21,
            Box::new(|_| {}),
            "own, ahead of this device",
        ),
        ("sealed against a longer log", first.clone(), 22, shorter(3), "needs membership"),
        (
            "from a device this device does not know yet",
            revoked_one.envelope.0.clone(),
            40,
            shorter(2),
            "needs membership, sender unknown",
        ),
        (
            "a revoked sender, its run incomplete",
            revoked_one.envelope.0.clone(),
            40,
            Box::new(|_| {}),
            "awaits a revoked sender's run",
        ),
        (
            "a revoked sender, its run complete",
            revoked_one.envelope.0.clone(),
            40,
            Box::new({
                let two = revoked_two.clone();
                move |h| h.batch.push(two.clone())
            }),
            "fresh changes",
        ),
        (
            "a revoked sender past its cutoff",
            past_cutoff,
            42,
            Box::new(|_| {}),
            "failed verification",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, bytes, cursor, setup, expected) in cases {
        let mut h = holding(&f);
        setup(&mut h);
        let got = judge(&f, &h, &stored(bytes, cursor));
        if got != expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn classifying_changes_nothing_it_is_given() {
    let f = Fixture::new();
    let b = copy(&f.b);
    let (first, _) =
        seal(&f.log, &b, Kind::Changes, DocId::Shared, 1, EnvelopeHash::GENESIS, &changes_by(&b));
    let h = holding(&f);
    let before = h.freshness.clone();
    assert_eq!(judge(&f, &h, &stored(first.clone(), 1)), "fresh changes");
    assert_eq!(judge(&f, &h, &stored(first, 1)), "fresh changes", "judged twice, the same");
    assert_eq!(h.freshness, before);
    let stream = Stream { sender: b.id(), kind: Kind::Changes, doc: DocId::Shared };
    assert!(h.freshness.tip(stream).is_none());
}
