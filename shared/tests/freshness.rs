//! The freshness tracker: duplicates, gaps, forks and rollbacks, a
//! persist/restore in the middle, and a revoked sender's pinned run.

mod common;

use common::{Plan, copy};
use cove_shared::envelope::Sealed;
use cove_shared::freshness::{Freshness, StreamTip, Verdict, revoked_run};
use cove_shared::{Cutoff, DeviceSecret, DocId, EnvelopeHash, Kind, Seq};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A sender's correctly chained stream of `n` envelopes of one kind and doc.
fn chain(plan: &mut Plan, sender: &DeviceSecret, kind: Kind, doc: DocId, n: u64) -> Vec<Sealed> {
    let mut prev = EnvelopeHash::GENESIS;
    (1..=n)
        .map(|seq| {
            let payload = format!("change {seq}");
            let sealed = plan.seal_after(sender, kind, doc, seq, prev, payload.as_bytes());
            prev = sealed.hash;
            sealed
        })
        .collect()
}

fn tip(s: &Sealed) -> StreamTip {
    StreamTip { seq: s.header.seq, hash: s.hash }
}

#[test]
fn changes_are_new_duplicate_gap_or_fork() {
    let mut plan = Plan::new(b"freshness");
    let a = copy(&plan.a1);
    let stream = chain(&mut plan, &a, Kind::Changes, DocId::Shared, 5);
    let mut f = Freshness::new();
    let see = |f: &mut Freshness, s: &Sealed| f.observe(&s.header, s.hash);

    assert_eq!(see(&mut f, &stream[0]), Verdict::New);
    assert_eq!(see(&mut f, &stream[0]), Verdict::Duplicate, "a replay");
    assert_eq!(see(&mut f, &stream[2]), Verdict::Gap { missing_from: Seq(2) });
    assert_eq!(see(&mut f, &stream[1]), Verdict::New);
    assert_eq!(see(&mut f, &stream[2]), Verdict::New, "the held-back envelope now fits");
    assert_eq!(see(&mut f, &stream[0]), Verdict::Duplicate, "an old replay");
    assert_eq!(f.tip(stream[0].header.stream()), Some(tip(&stream[2])));

    // The same sender signs a second, different stream (fresh nonces).
    let other = chain(&mut plan, &a, Kind::Changes, DocId::Shared, 4);
    assert_ne!(other[3].hash, stream[3].hash);
    assert_eq!(f.classify(&other[3].header, other[3].hash), Verdict::Fork, "does not chain on");
    assert_eq!(f.classify(&other[2].header, other[2].hash), Verdict::Fork, "differs at the mark");
    assert_eq!(see(&mut f, &stream[3]), Verdict::New);

    // Each document is its own stream, with its own numbering.
    let own_doc = chain(&mut plan, &a, Kind::Changes, DocId::PartnerA, 1);
    assert_eq!(see(&mut f, &own_doc[0]), Verdict::New);
}

#[test]
fn signals_report_gaps_without_holding_and_snapshots_never_go_back() {
    let mut plan = Plan::new(b"kinds");
    let a = copy(&plan.a1);
    let signals = chain(&mut plan, &a, Kind::Signal, DocId::Shared, 4);
    let snapshots = chain(&mut plan, &a, Kind::Snapshot, DocId::Shared, 3);
    let mut f = Freshness::new();

    assert_eq!(f.observe(&signals[0].header, signals[0].hash), Verdict::New);
    // Signals 2 and 3 expired on the relay, or were withheld: 4 still applies,
    // and the skip is reported.
    assert_eq!(
        f.observe(&signals[3].header, signals[3].hash),
        Verdict::NewAfterGap { missing_from: Seq(2) }
    );
    assert_eq!(f.observe(&signals[1].header, signals[1].hash), Verdict::Duplicate);

    assert_eq!(f.observe(&snapshots[1].header, snapshots[1].hash), Verdict::New);
    assert_eq!(f.observe(&snapshots[1].header, snapshots[1].hash), Verdict::Duplicate);
    assert_eq!(
        f.observe(&snapshots[0].header, snapshots[0].hash),
        Verdict::Rollback { seen: Seq(2) },
        "the relay served an older snapshot"
    );
    assert_eq!(f.observe(&snapshots[2].header, snapshots[2].hash), Verdict::New);
}

#[test]
fn a_claim_behind_what_was_seen_is_a_rollback_and_a_tail_inside_the_claim_is_caught() {
    let mut plan = Plan::new(b"coverage");
    let a = copy(&plan.a1);
    let stream = chain(&mut plan, &a, Kind::Changes, DocId::Shared, 3);
    let mut f = Freshness::new();
    for s in &stream {
        assert_eq!(f.observe(&s.header, s.hash), Verdict::New);
    }
    let id = a.id();
    let behind = BTreeMap::from([(id, tip(&stream[1]))]);
    assert_eq!(
        f.check_not_behind(DocId::Shared, &behind),
        Err((id, Verdict::Rollback { seen: Seq(3) }))
    );
    assert_eq!(f.check_not_behind(DocId::PartnerA, &behind), Ok(()), "another document's streams");
    let level = BTreeMap::from([(id, tip(&stream[2]))]);
    assert_eq!(f.check_not_behind(DocId::Shared, &level), Ok(()));
    assert!(
        f.check_not_behind(DocId::Shared, &BTreeMap::new()).is_err(),
        "a claim that omits the sender"
    );

    // Seeding from a snapshot lets a new device resume the chain after it.
    let mut fresh = Freshness::new();
    fresh.seed(stream[1].header.stream(), tip(&stream[1]));
    assert_eq!(fresh.check_tail(&stream[2].header), Ok(()));
    assert_eq!(fresh.observe(&stream[2].header, stream[2].hash), Verdict::New);

    // A snapshot that claims more than it holds: the real envelope after its
    // cursor is flagged instead of silently dropped as a duplicate.
    let mut fooled = Freshness::new();
    fooled
        .seed(stream[0].header.stream(), StreamTip { seq: Seq(1000), hash: EnvelopeHash([9; 32]) });
    assert_eq!(fooled.check_tail(&stream[2].header), Err(Verdict::Fork));
}

#[test]
fn state_survives_persist_and_restore() {
    let mut plan = Plan::new(b"persist");
    let a = copy(&plan.a1);
    let b = copy(&plan.b1);
    let from_a = chain(&mut plan, &a, Kind::Changes, DocId::Shared, 4);
    let from_b = chain(&mut plan, &b, Kind::Signal, DocId::Shared, 2);
    let mut f = Freshness::new();
    for s in from_a.iter().take(2).chain(from_b.iter()) {
        assert_eq!(f.observe(&s.header, s.hash), Verdict::New);
    }
    let bytes = f.to_bytes();
    let mut restored = Freshness::from_bytes(&bytes).unwrap();
    assert_eq!(restored, f);
    assert_eq!(restored.observe(&from_a[1].header, from_a[1].hash), Verdict::Duplicate);
    assert_eq!(
        restored.observe(&from_a[3].header, from_a[3].hash),
        Verdict::Gap { missing_from: Seq(3) }
    );
    assert_eq!(restored.observe(&from_a[2].header, from_a[2].hash), Verdict::New);

    assert!(Freshness::from_bytes(&[]).is_err());
    assert!(Freshness::from_bytes(&[2, 0, 0, 0, 0]).is_err(), "unknown format version");
    assert!(Freshness::from_bytes(&bytes[..bytes.len() - 1]).is_err(), "truncated");
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Freshness::from_bytes(&longer).is_err(), "trailing bytes");
}

#[test]
fn a_revoked_senders_run_applies_only_when_it_ends_at_the_pinned_cutoff() {
    let mut plan = Plan::new(b"cutoff");
    let b = copy(&plan.b1);
    let real = chain(&mut plan, &b, Kind::Changes, DocId::Shared, 4);
    let cutoff = Cutoff { doc: DocId::Shared, seq: Seq(3), hash: real[2].hash };
    let held = |envelopes: &[&Sealed]| -> BTreeMap<Seq, (EnvelopeHash, EnvelopeHash)> {
        envelopes.iter().map(|s| (s.header.seq, (s.header.prev, s.hash))).collect()
    };

    // Everything up to the cutoff has arrived: apply 1, 2, 3 in order.
    let all = held(&[&real[0], &real[1], &real[2], &real[3]]);
    assert_eq!(revoked_run(None, cutoff, &all), Some(vec![Seq(1), Seq(2), Seq(3)]));
    // From a tip part way along.
    assert_eq!(revoked_run(Some(tip(&real[0])), cutoff, &all), Some(vec![Seq(2), Seq(3)]));
    // Incomplete: hold.
    assert_eq!(revoked_run(None, cutoff, &held(&[&real[0], &real[2]])), None);

    // The revoked device forges a different envelope 2 (it still has its
    // keys): the run can no longer reach the pinned hash, so nothing applies.
    let forged = plan.seal_after(&b, Kind::Changes, DocId::Shared, 2, real[0].hash, b"forged");
    let mut tampered = all.clone();
    tampered.insert(Seq(2), (forged.header.prev, forged.hash));
    assert_eq!(revoked_run(None, cutoff, &tampered), None);
    // Nor can a forged last envelope.
    let forged_3 = plan.seal_after(&b, Kind::Changes, DocId::Shared, 3, real[1].hash, b"forged");
    let mut tampered = all.clone();
    tampered.insert(Seq(3), (forged_3.header.prev, forged_3.hash));
    assert_eq!(revoked_run(None, cutoff, &tampered), None);

    // Already at the cutoff: nothing to do. Past it, or at it with another
    // hash: this device applied something the revoker never saw.
    assert_eq!(revoked_run(Some(tip(&real[2])), cutoff, &all), Some(vec![]));
    assert_eq!(revoked_run(Some(tip(&real[3])), cutoff, &all), None);
    let nothing = Cutoff { doc: DocId::Shared, seq: Seq(0), hash: EnvelopeHash::GENESIS };
    assert_eq!(revoked_run(None, nothing, &all), Some(vec![]));
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
        let a = copy(&plan.a1);
        let stream = chain(&mut plan, &a, Kind::Changes, DocId::Shared, 12);
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
