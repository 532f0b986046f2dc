//! Sealing and opening envelopes: round trips, tampering, misdirection and
//! membership.

mod common;

use common::{Plan, copy};
use cove_shared::envelope::{self, HEADER_LEN, OVERHEAD, SIGNATURE_LEN, Seal, SealError};
use cove_shared::padding::{MAX_PAYLOAD_LEN, bucket_for};
use cove_shared::random::SeededEntropy;
use cove_shared::{
    Cutoff, DeviceSecret, DocId, EnvelopeHash, Epoch, EpochKeys, Keyring, Kind, MembershipLog,
    PlanId, Recipient, Seq, SymmetricKey,
};
use proptest::prelude::*;

/// Re-signs a modified envelope as `signer`, as a malicious member could.
fn resign(bytes: &mut [u8], signer: &DeviceSecret) {
    let at = bytes.len() - SIGNATURE_LEN;
    let signature = signer.sign(&bytes[..at]);
    bytes[at..].copy_from_slice(&signature);
}

fn kind_and_doc() -> impl Strategy<Value = (Kind, DocId)> {
    prop_oneof![
        Just((Kind::Changes, DocId::Shared)),
        Just((Kind::Changes, DocId::PartnerA)),
        Just((Kind::Snapshot, DocId::Shared)),
        Just((Kind::Snapshot, DocId::PartnerA)),
        Just((Kind::Signal, DocId::Shared)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trips_for_every_kind_and_size(
        (kind, doc) in kind_and_doc(),
        len in prop_oneof![0usize..600, 4000usize..4200, 60_000usize..140_000],
        seq in 1u64..=Seq::MAX.0,
        prev in any::<[u8; 32]>(),
        fill in any::<u8>(),
    ) {
        let mut plan = Plan::new(b"round trip");
        let payload = vec![fill; len];
        let ring = plan.ring(&plan.a1);
        let keys = ring.keys(Epoch(1)).unwrap();
        let view = plan.log.state().view();
        let request = Seal { kind, doc, seq: Seq(seq), prev: EnvelopeHash(prev), view, payload: &payload };
        let sealed = envelope::seal(keys, &plan.a1, request, &mut plan.rng).unwrap();
        prop_assert_eq!(sealed.bytes.len(), OVERHEAD + bucket_for(len).unwrap());

        let b_ring = plan.ring(&plan.b1);
        let policy = Recipient { membership: plan.log.state(), keyring: &b_ring };
        let opened = envelope::open(&sealed.bytes, &policy).unwrap();
        prop_assert_eq!(&opened.payload[..], &payload[..]);
        prop_assert_eq!(opened.header, sealed.header);
        prop_assert_eq!(opened.hash, sealed.hash);
        prop_assert_eq!(envelope::inspect(&sealed.bytes), Ok((sealed.header, sealed.hash)));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_rejected(
        len in prop_oneof![0usize..300, 5000usize..9000],
        position in any::<prop::sample::Index>(),
    ) {
        let mut plan = Plan::new(b"bit flips");
        let a1 = copy(&plan.a1);
        let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, &vec![7; len]);
        let mut bytes = sealed.bytes.clone();
        let bit = position.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(plan.open(&plan.b1, &bytes).is_err());
    }
}

#[test]
fn every_single_bit_flip_of_a_small_envelope_is_rejected() {
    let mut plan = Plan::new(b"every bit");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"boundary: no questions tonight");
    assert!(plan.open(&plan.b1, &sealed.bytes).is_ok());
    for bit in 0..sealed.bytes.len() * 8 {
        let mut bytes = sealed.bytes.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert!(plan.open(&plan.b1, &bytes).is_err(), "flip of bit {bit} was accepted");
    }
}

#[test]
fn truncation_and_extension_are_rejected() {
    let mut plan = Plan::new(b"lengths");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"water, then a blanket");
    for len in 0..sealed.bytes.len() {
        assert!(plan.open(&plan.b1, &sealed.bytes[..len]).is_err(), "truncated to {len}");
    }
    for extra in [1usize, 16, 64, 256, 512] {
        let mut longer = sealed.bytes.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        assert!(plan.open(&plan.b1, &longer).is_err(), "extended by {extra}");
    }
    // Grow the ciphertext to the next bucket and re-sign: the AEAD refuses it.
    let mut grown = sealed.bytes.clone();
    let at = grown.len() - SIGNATURE_LEN;
    grown.splice(at..at, std::iter::repeat_n(0u8, 256));
    resign(&mut grown, &a1);
    assert!(plan.open(&plan.b1, &grown).is_err());
}

#[test]
fn a_maximal_payload_round_trips_and_one_more_byte_is_refused() {
    let mut plan = Plan::new(b"max");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Snapshot, DocId::Shared, 1, &vec![1; MAX_PAYLOAD_LEN]);
    assert_eq!(plan.open(&plan.b1, &sealed.bytes).unwrap().len(), MAX_PAYLOAD_LEN);
    let ring = plan.ring(&a1);
    let payload = vec![1; MAX_PAYLOAD_LEN + 1];
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(1),
        prev: EnvelopeHash::GENESIS,
        view: plan.log.state().view(),
        payload: &payload,
    };
    assert!(matches!(
        envelope::seal(ring.keys(Epoch(1)).unwrap(), &a1, request, &mut plan.rng),
        Err(SealError::TooLarge { .. })
    ));
}

/// Field offsets in the header, from the documented layout.
const VERSION_AT: usize = 4;
const KIND_AT: usize = 5;
const PLAN_AT: usize = 6;
const DOC_AT: usize = 22;
const EPOCH_AT: usize = 23;
const SENDER_AT: usize = 59;
const SEQ_AT: usize = 91;
const VIEW_AT: usize = 131;

#[test]
fn relabelled_headers_are_rejected_even_when_re_signed() {
    let mut plan = Plan::new(b"relabel");
    let a1 = copy(&plan.a1);
    let b1 = copy(&plan.b1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 5, b"check in next morning");

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut doc = sealed.bytes.clone();
    doc[DOC_AT] = DocId::PartnerA.code();
    cases.push(("doc", doc));
    let mut kind = sealed.bytes.clone();
    kind[KIND_AT] = Kind::Snapshot.code();
    cases.push(("kind", kind));
    let mut seq = sealed.bytes.clone();
    seq[SEQ_AT + 7] = 6;
    cases.push(("seq", seq));
    let mut epoch = sealed.bytes.clone();
    epoch[EPOCH_AT + 3] = 2;
    cases.push(("epoch", epoch));

    for (field, bytes) in &cases {
        // The relay cannot re-sign: the signature fails.
        assert!(plan.open(&b1, bytes).is_err(), "{field} relabelled");
        // A sender that re-signs still fails the AEAD, which binds the header.
        let mut resigned = bytes.clone();
        resign(&mut resigned, &a1);
        assert!(plan.open(&b1, &resigned).is_err(), "{field} relabelled and re-signed");
    }

    // Partner B claims partner A's envelope as its own: new sender, new signature.
    let mut claimed = sealed.bytes.clone();
    claimed[SENDER_AT..SENDER_AT + 32].copy_from_slice(b1.id().as_bytes());
    resign(&mut claimed, &b1);
    assert!(plan.open(&a1, &claimed).is_err());
}

#[test]
fn an_envelope_replayed_into_another_plan_is_rejected() {
    let mut plan = Plan::new(b"plan x");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"pause means pause");

    // Plan Y has the same devices and even the same epoch key.
    let mut rng = SeededEntropy::new(b"plan y");
    let other = PlanId::random(&mut rng);
    let key = plan.ring(&a1).key(Epoch(1)).unwrap().clone();
    let genesis =
        MembershipLog::genesis(other, &a1, &common::identity(&mut rng), &key, &mut rng).unwrap();
    let log_y = MembershipLog::from_genesis(genesis).unwrap();
    let ring_y = Keyring::from_log(&log_y, &a1);
    let policy = Recipient { membership: log_y.state(), keyring: &ring_y };
    assert!(envelope::open(&sealed.bytes, &policy).is_err());

    // Relabelled with plan Y's id and re-signed: the key id and AEAD differ.
    let mut moved = sealed.bytes.clone();
    moved[PLAN_AT..PLAN_AT + 16].copy_from_slice(other.as_bytes());
    resign(&mut moved, &a1);
    assert!(envelope::open(&moved, &policy).is_err());
}

#[test]
fn wrong_key_and_unknown_epoch_are_rejected() {
    let mut plan = Plan::new(b"keys");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"quiet, low light");

    // A keyring holding a different key for epoch 1.
    let mut wrong = Keyring::new(plan.plan);
    wrong.insert(Epoch(1), SymmetricKey::from_bytes([0x11; 32]));
    let policy = Recipient { membership: plan.log.state(), keyring: &wrong };
    assert!(envelope::open(&sealed.bytes, &policy).is_err());

    // An envelope claiming epoch 2, which the sender's view does not have.
    let mut keys2 = Keyring::new(plan.plan);
    keys2.insert(Epoch(2), SymmetricKey::from_bytes([0x22; 32]));
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(2),
        prev: sealed.hash,
        view: plan.log.state().view(),
        payload: b"x",
    };
    let future =
        envelope::seal(keys2.keys(Epoch(2)).unwrap(), &a1, request, &mut plan.rng).unwrap();
    let mut ring = plan.ring(&plan.b1);
    ring.insert(Epoch(2), SymmetricKey::from_bytes([0x22; 32]));
    let policy = Recipient { membership: plan.log.state(), keyring: &ring };
    assert!(envelope::open(&future.bytes, &policy).is_err());
}

#[test]
fn the_senders_membership_view_must_be_a_prefix_of_the_receivers_log() {
    let mut plan = Plan::new(b"views");
    let a1 = copy(&plan.a1);
    let b1 = copy(&plan.b1);
    let before = plan.log.clone();

    // A rotates; B's copy of the log has not caught up.
    let key2 = SymmetricKey::random(&mut plan.rng);
    let rotate = plan.log.rotate(&a1, &key2, &mut plan.rng).unwrap();
    plan.log.append(rotate).unwrap();
    let after_rotation = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"new epoch");
    let b_ring = Keyring::from_log(&plan.log, &b1);
    let stale = Recipient { membership: before.state(), keyring: &b_ring };
    assert!(
        envelope::open(&after_rotation.bytes, &stale).is_err(),
        "a view longer than the receiver's log"
    );
    let current = Recipient { membership: plan.log.state(), keyring: &b_ring };
    assert!(envelope::open(&after_rotation.bytes, &current).is_ok());

    // An envelope from an older view is fine if sealed in that view's epoch...
    let ring = Keyring::from_log(&plan.log, &a1);
    let old_view = before.state().view();
    let request = |seq: u64| Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(seq),
        prev: EnvelopeHash::GENESIS,
        view: old_view,
        payload: b"offline edit",
    };
    let offline =
        envelope::seal(ring.keys(Epoch(1)).unwrap(), &a1, request(2), &mut plan.rng).unwrap();
    assert!(envelope::open(&offline.bytes, &current).is_ok());
    // ...but not in an epoch the view had not reached.
    let mixed =
        envelope::seal(ring.keys(Epoch(2)).unwrap(), &a1, request(3), &mut plan.rng).unwrap();
    assert!(envelope::open(&mixed.bytes, &current).is_err());

    // A view naming a head that is not in the receiver's log: a forked log.
    let mut forked = after_rotation.bytes.clone();
    forked[VIEW_AT + 4] ^= 1;
    resign(&mut forked, &a1);
    assert!(envelope::open(&forked, &current).is_err());
}

#[test]
fn a_sequence_number_beyond_the_last_is_never_sealed_nor_opened() {
    let mut plan = Plan::new(b"last seq");
    let a1 = copy(&plan.a1);
    let last = plan.seal(&a1, Kind::Changes, DocId::Shared, Seq::MAX.0, b"x");
    assert!(plan.open(&plan.b1, &last.bytes).is_ok(), "2^63 - 1 is the last valid one");
    assert_eq!(Seq::MAX.next(), None);
    for beyond in [Seq::MAX.0 + 1, u64::MAX] {
        let mut bytes = last.bytes.clone();
        bytes[SEQ_AT..SEQ_AT + 8].copy_from_slice(&beyond.to_be_bytes());
        resign(&mut bytes, &a1);
        assert!(envelope::inspect(&bytes).is_err(), "{beyond}");
        assert!(plan.open(&plan.b1, &bytes).is_err(), "{beyond}");
        let ring = plan.ring(&a1);
        let request = Seal {
            kind: Kind::Changes,
            doc: DocId::Shared,
            seq: Seq(beyond),
            prev: EnvelopeHash::GENESIS,
            view: plan.log.state().view(),
            payload: b"x",
        };
        let keys = ring.keys(Epoch(1)).unwrap();
        assert!(envelope::seal(keys, &a1, request, &mut plan.rng).is_err(), "{beyond}");
    }
}

#[test]
fn unknown_version_is_rejected_even_when_re_signed() {
    let mut plan = Plan::new(b"version");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"x");
    for version in [0u8, 2, 0xff] {
        let mut bytes = sealed.bytes.clone();
        bytes[VERSION_AT] = version;
        resign(&mut bytes, &a1);
        assert!(plan.open(&plan.b1, &bytes).is_err());
        assert!(envelope::inspect(&bytes).is_err());
    }
}

#[test]
fn only_a_documents_owner_may_write_it() {
    let mut plan = Plan::new(b"ownership");
    let a1 = copy(&plan.a1);
    let b1 = copy(&plan.b1);
    let mine = plan.seal(&a1, Kind::Changes, DocId::PartnerA, 1, b"my boundary");
    assert!(plan.open(&b1, &mine.bytes).is_ok());
    let theirs = plan.seal(&b1, Kind::Changes, DocId::PartnerA, 1, b"weakened boundary");
    assert!(plan.open(&a1, &theirs.bytes).is_err());
    let snapshot = plan.seal(&b1, Kind::Snapshot, DocId::PartnerA, 1, b"rewritten doc");
    assert!(plan.open(&a1, &snapshot.bytes).is_err());
    let shared = plan.seal(&b1, Kind::Changes, DocId::Shared, 1, b"menu item");
    assert!(plan.open(&a1, &shared.bytes).is_ok());
}

#[test]
fn outsiders_and_revoked_senders_are_rejected() {
    let mut plan = Plan::new(b"revoked");
    let a1 = copy(&plan.a1);
    let b1 = copy(&plan.b1);
    let before_1 = plan.seal(&b1, Kind::Changes, DocId::Shared, 1, b"sent before");
    let before_2 = plan.seal_after(
        &b1,
        Kind::Changes,
        DocId::Shared,
        2,
        before_1.hash,
        b"sent before, unseen",
    );
    let signal = plan.seal(&b1, Kind::Signal, DocId::Shared, 1, b"pause");

    // An outsider who somehow holds the epoch key still cannot write.
    let outsider = DeviceSecret::generate(&mut plan.rng);
    let ring = plan.ring(&a1);
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(1),
        prev: EnvelopeHash::GENESIS,
        view: plan.log.state().view(),
        payload: b"x",
    };
    let forged = envelope::seal(ring.keys(Epoch(1)).unwrap(), &outsider, request, &mut plan.rng);
    assert!(plan.open(&a1, &forged.unwrap().bytes).is_err());

    // A revokes B, having applied B's shared-document changes up to seq 1.
    let cutoff = Cutoff { doc: DocId::Shared, seq: Seq(1), hash: before_1.hash };
    let new_key = SymmetricKey::random(&mut plan.rng);
    let revoke = plan.log.revoke(&a1, b1.id(), vec![cutoff], &new_key, &mut plan.rng).unwrap();
    let b_log = plan.log.clone();
    plan.log.append(revoke).unwrap();
    assert_eq!(plan.log.state().epoch(), Epoch(2));

    assert!(plan.open(&a1, &before_1.bytes).is_ok(), "within the cutoff");
    assert!(plan.open(&a1, &before_2.bytes).is_err(), "beyond the cutoff");
    assert!(plan.open(&a1, &signal.bytes).is_err(), "signals from a revoked device");

    // B keeps its old epoch key and its old view, and keeps writing: refused.
    let b_ring = Keyring::from_log(&b_log, &b1);
    assert_eq!(plan.ring(&b1).latest(), Some(Epoch(1)), "B never receives epoch 2");
    let late = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(3),
        prev: before_2.hash,
        view: b_log.state().view(),
        payload: b"after revocation",
    };
    let late = envelope::seal(b_ring.keys(Epoch(1)).unwrap(), &b1, late, &mut plan.rng).unwrap();
    assert!(plan.open(&a1, &late.bytes).is_err());

    // And B cannot read what A writes in epoch 2.
    let after = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"written after revocation");
    assert_eq!(after.header.epoch, Epoch(2));
    let policy = Recipient { membership: plan.log.state(), keyring: &b_ring };
    assert!(envelope::open(&after.bytes, &policy).is_err());
    assert!(b_ring.keys(Epoch(2)).is_none());
}

#[test]
fn the_signature_covers_header_nonce_and_ciphertext_exactly() {
    let mut plan = Plan::new(b"layout");
    let a1 = copy(&plan.a1);
    let sealed = plan.seal(&a1, Kind::Changes, DocId::Shared, 1, b"x");
    let bytes = &sealed.bytes;
    let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let signature: [u8; 64] = signature.try_into().unwrap();
    assert!(cove_shared::keys::verify_signature(&a1.id(), signed, &signature));
    assert_eq!(&bytes[..HEADER_LEN], &sealed.header.encode());
}

#[test]
fn envelope_keys_are_bound_to_plan_and_epoch() {
    let key = SymmetricKey::from_bytes([3; 32]);
    let plan = PlanId::from_bytes([4; 16]);
    let one = EpochKeys::derive(plan, Epoch(1), &key);
    let two = EpochKeys::derive(plan, Epoch(2), &key);
    assert_ne!(one.key_id(), two.key_id());
}
