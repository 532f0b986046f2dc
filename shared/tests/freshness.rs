//! The freshness tracker: duplicates, gaps, forks and rollbacks, and a
//! persist/restore in the middle.

mod common;

use common::Plan;
use cove_shared::envelope::{self, Seal, Sealed};
use cove_shared::freshness::{Freshness, StreamTip, Verdict};
use cove_shared::{DeviceSecret, DocId, EnvelopeHash, Epoch, Kind, Seq};
use proptest::prelude::*;

/// A sender's correctly chained stream of `n` envelopes of one kind.
fn chain(plan: &mut Plan, sender: &DeviceSecret, kind: Kind, n: u64) -> Vec<Sealed> {
    let ring = plan.ring(sender);
    let keys = ring.keys(Epoch(1)).unwrap().clone();
    let mut prev = EnvelopeHash::GENESIS;
    (1..=n)
        .map(|seq| {
            let payload = format!("change {seq}");
            let request = Seal {
                kind,
                doc: DocId::Shared,
                seq: Seq(seq),
                prev,
                payload: payload.as_bytes(),
            };
            let sealed = envelope::seal(&keys, sender, request, &mut plan.rng).unwrap();
            prev = sealed.hash;
            sealed
        })
        .collect()
}

fn a1(plan: &Plan) -> DeviceSecret {
    DeviceSecret::from_secret_bytes(&plan.a1.to_secret_bytes()).unwrap()
}

#[test]
fn changes_are_new_duplicate_gap_or_fork() {
    let mut plan = Plan::new(b"freshness");
    let a = a1(&plan);
    let stream = chain(&mut plan, &a, Kind::Changes, 5);
    let mut f = Freshness::new();
    let see = |f: &mut Freshness, s: &Sealed| f.observe(&s.header, s.hash);

    assert_eq!(see(&mut f, &stream[0]), Verdict::New);
    assert_eq!(see(&mut f, &stream[0]), Verdict::Duplicate, "a replay");
    assert_eq!(
        see(&mut f, &stream[2]),
        Verdict::Gap {
            missing_from: Seq(2)
        }
    );
    assert_eq!(see(&mut f, &stream[1]), Verdict::New);
    assert_eq!(
        see(&mut f, &stream[2]),
        Verdict::New,
        "the held-back envelope now fits"
    );
    assert_eq!(see(&mut f, &stream[0]), Verdict::Duplicate, "an old replay");
    assert_eq!(f.tip(a.id(), Kind::Changes).unwrap().seq, Seq(3));

    // Another envelope signed for seq 4 that does not chain onto seq 3: a fork.
    // The same sender signs a second, different stream (fresh nonces).
    let other = chain(&mut plan, &a, Kind::Changes, 4);
    assert_ne!(other[3].hash, stream[3].hash);
    assert_eq!(f.classify(&other[3].header, other[3].hash), Verdict::Fork);
    // A different envelope at the current mark: a fork too.
    assert_eq!(f.classify(&other[2].header, other[2].hash), Verdict::Fork);
    assert_eq!(see(&mut f, &stream[3]), Verdict::New);
}

#[test]
fn signals_tolerate_gaps_and_snapshots_never_go_back() {
    let mut plan = Plan::new(b"kinds");
    let a = a1(&plan);
    let signals = chain(&mut plan, &a, Kind::Signal, 4);
    let snapshots = chain(&mut plan, &a, Kind::Snapshot, 3);
    let mut f = Freshness::new();

    assert_eq!(f.observe(&signals[0].header, signals[0].hash), Verdict::New);
    // Signals 2 and 3 expired on the relay: 4 is still new, not a gap.
    assert_eq!(f.observe(&signals[3].header, signals[3].hash), Verdict::New);
    assert_eq!(
        f.observe(&signals[1].header, signals[1].hash),
        Verdict::Duplicate
    );

    assert_eq!(
        f.observe(&snapshots[1].header, snapshots[1].hash),
        Verdict::New
    );
    assert_eq!(
        f.observe(&snapshots[1].header, snapshots[1].hash),
        Verdict::Duplicate
    );
    assert_eq!(
        f.observe(&snapshots[0].header, snapshots[0].hash),
        Verdict::Rollback { seen: Seq(2) },
        "the relay served an older snapshot"
    );
    assert_eq!(
        f.observe(&snapshots[2].header, snapshots[2].hash),
        Verdict::New
    );
}

#[test]
fn a_claim_behind_what_was_seen_is_a_rollback() {
    let mut plan = Plan::new(b"coverage");
    let a = a1(&plan);
    let stream = chain(&mut plan, &a, Kind::Changes, 3);
    let mut f = Freshness::new();
    for s in &stream {
        assert_eq!(f.observe(&s.header, s.hash), Verdict::New);
    }
    let id = a.id();
    let behind = StreamTip {
        seq: Seq(2),
        hash: stream[1].hash,
    };
    assert_eq!(
        f.check_not_behind([(&id, &behind)], Kind::Changes),
        Err((id, Verdict::Rollback { seen: Seq(3) }))
    );
    let level = StreamTip {
        seq: Seq(3),
        hash: stream[2].hash,
    };
    assert_eq!(f.check_not_behind([(&id, &level)], Kind::Changes), Ok(()));
    assert!(
        f.check_not_behind([], Kind::Changes).is_err(),
        "a claim that omits the sender"
    );

    // Seeding from a snapshot lets a new device resume the chain after it.
    let mut fresh = Freshness::new();
    fresh.seed(
        id,
        Kind::Changes,
        StreamTip {
            seq: Seq(2),
            hash: stream[1].hash,
        },
    );
    assert_eq!(
        fresh.observe(&stream[2].header, stream[2].hash),
        Verdict::New
    );
}

#[test]
fn state_survives_persist_and_restore() {
    let mut plan = Plan::new(b"persist");
    let a = a1(&plan);
    let b = DeviceSecret::from_secret_bytes(&plan.b1.to_secret_bytes()).unwrap();
    let from_a = chain(&mut plan, &a, Kind::Changes, 4);
    let from_b = chain(&mut plan, &b, Kind::Signal, 2);
    let mut f = Freshness::new();
    for s in from_a.iter().take(2).chain(from_b.iter()) {
        assert_eq!(f.observe(&s.header, s.hash), Verdict::New);
    }
    let bytes = f.to_bytes();
    let mut restored = Freshness::from_bytes(&bytes).unwrap();
    assert_eq!(restored, f);
    assert_eq!(
        restored.observe(&from_a[1].header, from_a[1].hash),
        Verdict::Duplicate
    );
    assert_eq!(
        restored.observe(&from_a[3].header, from_a[3].hash),
        Verdict::Gap {
            missing_from: Seq(3)
        }
    );
    assert_eq!(
        restored.observe(&from_a[2].header, from_a[2].hash),
        Verdict::New
    );

    assert!(Freshness::from_bytes(&[]).is_err());
    assert!(
        Freshness::from_bytes(&[2]).is_err(),
        "unknown format version"
    );
    assert!(
        Freshness::from_bytes(&bytes[..bytes.len() - 1]).is_err(),
        "truncated"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// However the relay reorders and repeats a stream, holding back gaps and
    /// retrying them applies each envelope exactly once, in order.
    #[test]
    fn reordered_and_repeated_delivery_applies_each_envelope_once(
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in prop::collection::vec(0..12usize, 0..12),
    ) {
        let mut plan = Plan::new(b"reorder");
        let a = a1(&plan);
        let stream = chain(&mut plan, &a, Kind::Changes, 12);
        let mut f = Freshness::new();
        let mut applied = Vec::new();
        let mut held = Vec::new();
        for i in order.iter().chain(repeats.iter()) {
            held.push(*i);
            // Retry everything held back until nothing more fits.
            loop {
                let before = held.len();
                held.retain(|j| match f.observe(&stream[*j].header, stream[*j].hash) {
                    Verdict::New => { applied.push(*j); false }
                    Verdict::Duplicate => false,
                    Verdict::Gap { .. } => true,
                    other => panic!("unexpected {other:?}"),
                });
                if held.len() == before { break; }
            }
        }
        prop_assert_eq!(applied, (0..12).collect::<Vec<_>>());
        prop_assert!(held.is_empty());
    }
}
