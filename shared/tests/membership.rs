//! The membership log: a valid chain verifies, and every forgery is refused.

mod common;

use common::copy;
use cove_shared::kdf::KeyId;
use cove_shared::membership::{
    Appended, Entry, EntryBody, EntryHash, MAX_ENTRY_LEN, MembershipError,
};
use cove_shared::random::{Entropy, SeededEntropy};
use cove_shared::{
    Cutoff, DeviceSecret, DocId, EnvelopeHash, Epoch, EpochKeys, IdentitySeed, KeyWrap, Keyring,
    MembershipLog, Partner, PartnerSecret, PlanId, Seq, SymmetricKey,
};

struct Story {
    rng: SeededEntropy,
    plan: PlanId,
    a1: DeviceSecret,
    a2: DeviceSecret,
    b1: DeviceSecret,
    b2: DeviceSecret,
    outsider: DeviceSecret,
    /// Partner A's identity seed.
    ida: [u8; 32],
    /// Partner B's identity seed.
    idb: [u8; 32],
    /// Every epoch key, in epoch order.
    keys: Vec<SymmetricKey>,
}

fn identity(seed: &[u8; 32]) -> PartnerSecret {
    PartnerSecret::from_seed(&IdentitySeed::from_bytes(seed)).unwrap()
}

impl Story {
    fn new() -> Self {
        let mut rng = SeededEntropy::new(b"membership story");
        let plan = PlanId::random(&mut rng);
        let mut device = || DeviceSecret::generate(&mut rng);
        let (a1, a2, b1, b2, outsider) = (device(), device(), device(), device(), device());
        let (ida, idb) = (rng.array(), rng.array());
        Self { rng, plan, a1, a2, b1, b2, outsider, ida, idb, keys: Vec::new() }
    }

    fn identity_of(&self, partner: Partner) -> PartnerSecret {
        identity(match partner {
            Partner::A => &self.ida,
            Partner::B => &self.idb,
        })
    }

    fn key(&self, epoch: Epoch) -> Option<&SymmetricKey> {
        self.keys.get(epoch.0 as usize - 1)
    }

    fn genesis(&mut self) -> MembershipLog {
        let key = SymmetricKey::random(&mut self.rng);
        let genesis =
            MembershipLog::genesis(self.plan, &self.a1, &identity(&self.ida), &key, &mut self.rng)
                .unwrap();
        self.keys.push(key);
        MembershipLog::from_genesis(genesis).unwrap()
    }

    fn add(
        &mut self,
        log: &MembershipLog,
        by: &DeviceSecret,
        partner: Partner,
        new: &DeviceSecret,
    ) -> Result<Entry, MembershipError> {
        let certifier = self.identity_of(partner);
        self.add_certified(log, by, partner, new, &certifier)
    }

    /// As `add`, with the certificate signed by `certifier`.
    fn add_certified(
        &mut self,
        log: &MembershipLog,
        by: &DeviceSecret,
        partner: Partner,
        new: &DeviceSecret,
        certifier: &PartnerSecret,
    ) -> Result<Entry, MembershipError> {
        let keys = self.keys.clone();
        let genesis = log.state().genesis();
        let cert = certifier.certify(self.plan, genesis, partner, new.id());
        let identity = certifier.public();
        let key = |e: Epoch| keys.get(e.0 as usize - 1);
        log.add_device(by, partner, &new.bundle(), &identity, &cert, key, &mut self.rng)
    }

    /// genesis(A1) → A1 adds B1, with B's identity.
    fn couple(&mut self) -> MembershipLog {
        let mut log = self.genesis();
        let (a1, b1) = (copy(&self.a1), copy(&self.b1));
        let e = self.add(&log, &a1, Partner::B, &b1).unwrap();
        log.append(e).unwrap();
        log
    }

    fn new_key(&mut self) -> SymmetricKey {
        let key = SymmetricKey::random(&mut self.rng);
        self.keys.push(key.clone());
        key
    }

    /// genesis(A1) → A1 adds B1 → A1 adds A2 → B1 adds B2 → B2 rotates →
    /// A1 revokes A2.
    fn full_chain(&mut self) -> MembershipLog {
        let mut log = self.genesis();
        let (a1, a2, b1, b2) = (copy(&self.a1), copy(&self.a2), copy(&self.b1), copy(&self.b2));
        let e = self.add(&log, &a1, Partner::B, &b1).unwrap();
        log.append(e).unwrap();
        let e = self.add(&log, &a1, Partner::A, &a2).unwrap();
        log.append(e).unwrap();
        let e = self.add(&log, &b1, Partner::B, &b2).unwrap();
        log.append(e).unwrap();
        let key = self.new_key();
        let e = log.rotate(&b2, &key, &mut self.rng).unwrap();
        log.append(e).unwrap();
        let key = self.new_key();
        let cutoff = Cutoff { doc: DocId::PartnerA, seq: Seq(10), hash: EnvelopeHash([7; 32]) };
        let e = log.revoke(&a1, a2.id(), vec![cutoff], &key, &mut self.rng).unwrap();
        log.append(e).unwrap();
        log
    }
}

fn sign(log: &MembershipLog, body: EntryBody, signer: &DeviceSecret) -> Entry {
    let state = log.state();
    Entry::sign(state.plan(), state.len(), state.head(), body, signer).unwrap()
}

fn wrap(
    rng: &mut SeededEntropy,
    plan: PlanId,
    epoch: u32,
    key: &SymmetricKey,
    to: &DeviceSecret,
    by: &DeviceSecret,
) -> KeyWrap {
    KeyWrap::wrap(plan, Epoch(epoch), key, to.id(), &to.exchange_public(), by, rng).unwrap()
}

fn key_id(plan: PlanId, epoch: u32, key: &SymmetricKey) -> KeyId {
    EpochKeys::derive(plan, Epoch(epoch), key).key_id()
}

#[test]
fn a_valid_add_revoke_rotate_chain_verifies() {
    let mut story = Story::new();
    let log = story.full_chain();
    let state = log.state();
    assert_eq!(state.len(), 6);
    assert_eq!(state.epoch(), Epoch(3));
    assert_eq!(state.active().count(), 3);
    assert!(!state.is_active(&story.a2.id()));
    assert_eq!(state.active_of(Partner::A).count(), 1);
    assert_eq!(state.active_of(Partner::B).count(), 2);
    assert!(!state.rotation_due());
    let revocation = state.member(&story.a2.id()).unwrap().revoked.clone().unwrap();
    assert_eq!((revocation.by, revocation.epoch, revocation.at), (story.a1.id(), Epoch(3), 5));
    assert_eq!(revocation.cutoff(DocId::PartnerA).seq, Seq(10));
    assert_eq!(
        revocation.cutoff(DocId::Shared).seq,
        Seq(0),
        "nothing accepted where none was pinned"
    );

    // Re-verifying the encoded chain from scratch, pinned to its genesis.
    let encoded: Vec<Vec<u8>> = log.entries().iter().map(|e| e.encode().to_vec()).collect();
    let again =
        MembershipLog::decode(encoded.iter().map(Vec::as_slice), Some(state.genesis())).unwrap();
    assert_eq!(again.state(), state);

    // The state at any point in the chain.
    let at_2 = log.state_at(2).unwrap();
    assert_eq!((at_2.epoch(), at_2.active().count()), (Epoch(1), 2));
    let at_5 = log.state_at(5).unwrap();
    assert_eq!((at_5.epoch(), at_5.active().count()), (Epoch(2), 4));
    assert!(log.state_at(0).is_none() && log.state_at(7).is_none());
    // Views of earlier points map to the epoch a sender then had to use.
    assert_eq!(state.epoch_at(at_2.view()), Some(Epoch(1)));
    assert_eq!(state.epoch_at(at_5.view()), Some(Epoch(2)));
    assert_eq!(at_2.epoch_at(state.view()), None, "a longer log is not a prefix");

    // Each device recovers exactly the epoch keys it was given, all usable.
    let epochs = |d: &DeviceSecret| Keyring::from_log(&log, d).epochs().collect::<Vec<_>>();
    assert_eq!(epochs(&story.a1), [Epoch(1), Epoch(2), Epoch(3)]);
    assert_eq!(epochs(&story.b2), [Epoch(1), Epoch(2), Epoch(3)]);
    assert_eq!(epochs(&story.a2), [Epoch(1), Epoch(2)], "revoked before epoch 3");
    let ring = Keyring::from_log(&log, &story.b1);
    assert!(ring.unusable().is_empty());
    for epoch in 1..=3 {
        assert_eq!(ring.key(Epoch(epoch)), story.key(Epoch(epoch)));
    }
}

#[test]
fn the_genesis_is_pinned() {
    let mut story = Story::new();
    let log = story.full_chain();
    let encoded: Vec<Vec<u8>> = log.entries().iter().map(|e| e.encode().to_vec()).collect();
    let wrong = EntryHash([1; 32]);
    assert_eq!(
        MembershipLog::decode(encoded.iter().map(Vec::as_slice), Some(wrong)).unwrap_err(),
        MembershipError::WrongGenesis
    );
}

#[test]
fn duplicates_are_harmless_and_forks_are_refused() {
    let mut story = Story::new();
    let mut log = story.genesis();
    let (a1, b1, a2) = (copy(&story.a1), copy(&story.b1), copy(&story.a2));
    let add_b = story.add(&log, &a1, Partner::B, &b1).unwrap();
    let add_a2 = story.add(&log, &a1, Partner::A, &a2).unwrap();
    assert_eq!(log.append(add_b.clone()), Ok(Appended::New));
    assert_eq!(log.append(add_b), Ok(Appended::Duplicate));
    // A second, different entry for index 1: a fork.
    assert_eq!(log.append(add_a2), Err(MembershipError::Fork { index: 1 }));
    assert_eq!(log.state().len(), 2);
}

#[test]
fn a_bad_signature_or_malformed_entry_is_refused() {
    let mut story = Story::new();
    let log = story.full_chain();
    let entry = log.entries()[1].encode().to_vec();
    for bit in [0usize, 40, 8 * 30, 8 * 62, 8 * 100, entry.len() * 8 - 1] {
        let mut bytes = entry.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert!(Entry::decode(&bytes).is_err(), "bit {bit}");
    }
    assert!(Entry::decode(&entry[..entry.len() - 1]).is_err());
    let mut longer = entry.clone();
    longer.push(0);
    assert!(Entry::decode(&longer).is_err());
}

#[test]
fn re_ordered_entries_are_refused() {
    let mut story = Story::new();
    let log = story.full_chain();
    let mut entries = log.entries().to_vec();
    entries.swap(2, 3);
    assert!(matches!(
        MembershipLog::verify(entries, None),
        Err(MembershipError::OutOfOrder { .. })
    ));
    let mut skipped = log.entries().to_vec();
    skipped.remove(2);
    assert!(matches!(
        MembershipLog::verify(skipped, None),
        Err(MembershipError::OutOfOrder { .. })
    ));
    let mut genesis_last = log.entries().to_vec();
    genesis_last.rotate_left(1);
    assert!(MembershipLog::verify(genesis_last, None).is_err());
}

#[test]
fn entries_signed_by_non_members_or_revoked_devices_are_refused() {
    let mut story = Story::new();
    let mut log = story.full_chain();
    let (outsider, a2) = (copy(&story.outsider), copy(&story.a2));
    let key = SymmetricKey::random(&mut story.rng);
    let state = log.state().clone();
    let plan = state.plan();
    let rotate_by = |rng: &mut SeededEntropy, signer: &DeviceSecret| {
        let wraps = state
            .recipients()
            .into_iter()
            .map(|(to, exchange)| {
                KeyWrap::wrap(plan, Epoch(4), &key, to, &exchange, signer, rng).unwrap()
            })
            .collect();
        EntryBody::RotateEpoch { epoch: Epoch(4), key_id: key_id(plan, 4, &key), wraps }
    };

    // Sign as the outsider, with correct wraps for everyone: still not a member.
    let body = rotate_by(&mut story.rng, &outsider);
    assert_eq!(log.append(sign(&log, body, &outsider)), Err(MembershipError::NotMember));

    // The revoked A2 tries to rotate the key.
    let body = rotate_by(&mut story.rng, &a2);
    assert_eq!(log.append(sign(&log, body, &a2)), Err(MembershipError::SignerRevoked));

    // The revoked A2 tries to add a device of its own.
    let new = DeviceSecret::generate(&mut story.rng);
    let keys = story.keys.clone();
    let wraps =
        (1..=3).map(|e| wrap(&mut story.rng, plan, e, &keys[e as usize - 1], &new, &a2)).collect();
    let ida = story.identity_of(Partner::A);
    let body = EntryBody::AddDevice {
        partner: Partner::A,
        bundle: new.bundle(),
        identity: ida.public(),
        certificate: Box::new(ida.certify(plan, state.genesis(), Partner::A, new.id())),
        wraps,
    };
    assert_eq!(log.append(sign(&log, body, &a2)), Err(MembershipError::SignerRevoked));
    assert_eq!(log.state(), &state);
}

#[test]
fn only_a_partners_own_identity_certifies_their_devices() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1, b2, a2) = (copy(&story.a1), copy(&story.b1), copy(&story.b2), copy(&story.a2));
    let (ida, idb) = (story.identity_of(Partner::A), story.identity_of(Partner::B));
    assert_eq!(log.state().live_identity(Partner::B).map(|i| i.key), Some(idb.key()));
    // A cannot certify a device for B, with A's identity or a new one.
    let mut rng = SeededEntropy::new(b"made up");
    let made_up = identity(&rng.array());
    for certifier in [&ida, &made_up] {
        assert!(matches!(
            story.add_certified(&log, &a1, Partner::B, &b2, certifier),
            Err(MembershipError::NotAllowed(_))
        ));
    }
    // B cannot certify a device for A.
    assert!(matches!(
        story.add_certified(&log, &b1, Partner::A, &a2, &idb),
        Err(MembershipError::NotAllowed(_))
    ));
    // A carries an enrolment that B's identity certified (as at pairing),
    // and A adds its own.
    let e = story.add(&log, &a1, Partner::B, &b2).unwrap();
    log.append(e).unwrap();
    let e = story.add(&log, &a1, Partner::A, &a2).unwrap();
    log.append(e).unwrap();
    // Nobody can add a device twice.
    assert!(matches!(story.add(&log, &a1, Partner::A, &a2), Err(MembershipError::NotAllowed(_))));
}

#[test]
fn a_certificate_is_bound_to_its_plan_genesis_partner_and_device() {
    let mut story = Story::new();
    let log = story.genesis();
    let (a1, b1, b2) = (copy(&story.a1), copy(&story.b1), copy(&story.b2));
    let idb = story.identity_of(Partner::B);
    let genesis = log.state().genesis();
    let keys = story.keys.clone();
    let key = |e: Epoch| keys.get(e.0 as usize - 1);
    let wrong = [
        idb.certify(PlanId::from_bytes([1; 16]), genesis, Partner::B, b1.id()),
        idb.certify(story.plan, EntryHash([1; 32]), Partner::B, b1.id()),
        idb.certify(story.plan, genesis, Partner::A, b1.id()),
        idb.certify(story.plan, genesis, Partner::B, b2.id()),
    ];
    for cert in wrong {
        let made = log.add_device(
            &a1,
            Partner::B,
            &b1.bundle(),
            &idb.public(),
            &cert,
            key,
            &mut story.rng,
        );
        assert!(matches!(made, Err(MembershipError::NotAllowed(_))), "{cert:?}");
    }
}

#[test]
fn a_partner_with_no_device_recovers_with_their_identity_and_nobody_else_can() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1, b2, a2) = (copy(&story.a1), copy(&story.b1), copy(&story.b2), copy(&story.a2));
    let (ida, idb) = (story.identity_of(Partner::A), story.identity_of(Partner::B));
    // B's only device is lost: A revokes it (epoch 2).
    let key = story.new_key();
    let e = log.revoke(&a1, b1.id(), vec![], &key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    // A still cannot enrol a device for B.
    let mut rng = SeededEntropy::new(b"made up");
    let made_up = identity(&rng.array());
    assert!(story.add_certified(&log, &a1, Partner::B, &b2, &made_up).is_err());

    // B's identity holds every epoch key through its recovery wraps.
    let from_phrase = Keyring::from_log(&log, idb.as_signer());
    assert_eq!(from_phrase.epochs().collect::<Vec<_>>(), [Epoch(1), Epoch(2)]);
    // A's identity cannot enrol a device for B, nor sign anything else.
    let recovering = |id: &PartnerSecret, partner, rng: &mut SeededEntropy| {
        let ring = Keyring::from_log(&log, id.as_signer());
        log.recover(id, partner, &b2.bundle(), |e| ring.key(e), rng)
    };
    assert!(matches!(
        recovering(&ida, Partner::B, &mut story.rng),
        Err(MembershipError::NotAllowed(_))
    ));
    assert!(matches!(
        log.rotate(ida.as_signer(), &story.keys[0].clone(), &mut story.rng),
        Err(MembershipError::NotAllowed(_))
    ));
    // B's identity enrols B's new device itself.
    let e = recovering(&idb, Partner::B, &mut story.rng).unwrap();
    assert_eq!(e.signer(), idb.key());
    log.append(e).unwrap();
    assert_eq!(log.state().member(&b2.id()).map(|m| m.partner), Some(Partner::B));
    let ring = Keyring::from_log(&log, &b2);
    assert_eq!(ring.epochs().collect::<Vec<_>>(), [Epoch(1), Epoch(2)]);
    assert!(ring.unusable().is_empty());
    // The recovered chain verifies from scratch.
    let encoded: Vec<Vec<u8>> = log.entries().iter().map(|e| e.encode().to_vec()).collect();
    let genesis = log.state().genesis();
    assert!(MembershipLog::decode(encoded.iter().map(Vec::as_slice), Some(genesis)).is_ok());
    // A can still add its own devices.
    let e = story.add(&log, &a1, Partner::A, &a2).unwrap();
    log.append(e).unwrap();
}

#[test]
fn a_new_identity_replaces_the_old_one_and_a_rotation_falls_due() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1, b2) = (copy(&story.a1), copy(&story.b1), copy(&story.b2));
    let idb = story.identity_of(Partner::B);
    let mut rng = SeededEntropy::new(b"new phrase");
    let fresh = identity(&rng.array());
    let keys = story.keys.clone();
    let key = |e: Epoch| keys.get(e.0 as usize - 1);
    // Only B's own device can give B a new identity.
    assert!(matches!(
        log.rotate_identity(&a1, Partner::B, &fresh, key, &mut story.rng),
        Err(MembershipError::NotAllowed(_))
    ));
    let e = log.rotate_identity(&b1, Partner::B, &fresh, key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    assert_eq!(log.state().live_identity(Partner::B).map(|i| i.key), Some(fresh.key()));
    assert!(log.state().rotation_due(), "the old phrase still opens the current key");
    // The old phrase recovers nothing any more; the new one holds epoch 1.
    let old_ring = Keyring::from_log(&log, idb.as_signer());
    assert!(
        log.recover(&idb, Partner::B, &b2.bundle(), |e| old_ring.key(e), &mut story.rng).is_err()
    );
    assert_eq!(Keyring::from_log(&log, fresh.as_signer()).latest(), Some(Epoch(1)));
    let next = story.new_key();
    let e = log.rotate(&a1, &next, &mut story.rng).unwrap();
    log.append(e).unwrap();
    assert!(!log.state().rotation_due());
    assert_eq!(Keyring::from_log(&log, idb.as_signer()).latest(), Some(Epoch(1)));
    assert_eq!(Keyring::from_log(&log, fresh.as_signer()).latest(), Some(Epoch(2)));
}

#[test]
fn a_partner_who_left_cannot_come_back() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1, b2) = (copy(&story.a1), copy(&story.b1), copy(&story.b2));
    let idb = story.identity_of(Partner::B);
    // A cannot remove B while B has a device: revoking comes first.
    assert!(matches!(log.retire(&a1, Partner::B), Err(MembershipError::NotAllowed(_))));
    let key = story.new_key();
    let e = log.revoke(&a1, b1.id(), vec![], &key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    let e = log.retire(&a1, Partner::B).unwrap();
    log.append(e).unwrap();
    assert!(log.state().has_left(Partner::B));
    assert!(log.state().rotation_due(), "B's phrase still holds epoch 2");
    // B's phrase enrols nothing, and the next epoch is not wrapped for it.
    let ring = Keyring::from_log(&log, idb.as_signer());
    assert!(matches!(
        log.recover(&idb, Partner::B, &b2.bundle(), |e| ring.key(e), &mut story.rng),
        Err(MembershipError::NotMember)
    ));
    let next = story.new_key();
    let e = log.rotate(&a1, &next, &mut story.rng).unwrap();
    log.append(e).unwrap();
    assert_eq!(Keyring::from_log(&log, idb.as_signer()).latest(), Some(Epoch(2)));
    // Nor can anyone pin a new identity for B.
    let mut rng = SeededEntropy::new(b"someone new");
    let someone = identity(&rng.array());
    assert!(story.add_certified(&log, &a1, Partner::B, &b2, &someone).is_err());
}

#[test]
fn a_partner_leaves_from_their_own_device() {
    let mut story = Story::new();
    let mut log = story.couple();
    let b1 = copy(&story.b1);
    let e = log.retire(&b1, Partner::B).unwrap();
    log.append(e).unwrap();
    let e = log.leave(&b1, vec![]).unwrap();
    log.append(e).unwrap();
    let end = log.state().identity(Partner::B).and_then(|i| i.ended.clone()).unwrap();
    assert!(end.retired && end.by == b1.id());
}

#[test]
fn a_revocation_must_rotate_and_wrap_for_exactly_the_remaining_devices() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1) = (copy(&story.a1), copy(&story.b1));
    let plan = log.state().plan();
    let key = SymmetricKey::random(&mut story.rng);
    let id2 = key_id(plan, 2, &key);
    let revoke = |epoch: u32, wraps: Vec<KeyWrap>| EntryBody::RevokeDevice {
        device: b1.id(),
        cutoffs: vec![],
        epoch: Epoch(epoch),
        key_id: id2,
        wraps,
    };

    // The revoked device is still given the new key.
    let w = vec![
        wrap(&mut story.rng, plan, 2, &key, &a1, &a1),
        wrap(&mut story.rng, plan, 2, &key, &b1, &a1),
    ];
    assert_eq!(log.clone().append(sign(&log, revoke(2, w), &a1)), Err(MembershipError::BadWraps));

    // No new epoch, and a skipped epoch.
    let w = vec![wrap(&mut story.rng, plan, 1, &key, &a1, &a1)];
    assert!(matches!(
        log.clone().append(sign(&log, revoke(1, w), &a1)),
        Err(MembershipError::NotAllowed(_))
    ));
    let w = vec![wrap(&mut story.rng, plan, 3, &key, &a1, &a1)];
    assert!(matches!(
        log.clone().append(sign(&log, revoke(3, w), &a1)),
        Err(MembershipError::NotAllowed(_))
    ));

    // A rotation that leaves a device without the key.
    let w = vec![wrap(&mut story.rng, plan, 2, &key, &a1, &a1)];
    let body = EntryBody::RotateEpoch { epoch: Epoch(2), key_id: id2, wraps: w };
    assert_eq!(log.clone().append(sign(&log, body, &a1)), Err(MembershipError::BadWraps));

    // A wrap made by someone other than the signer.
    let foreign = vec![wrap(&mut story.rng, plan, 2, &key, &a1, &b1)];
    assert_eq!(
        log.clone().append(sign(&log, revoke(2, foreign), &a1)),
        Err(MembershipError::BadWraps)
    );

    // The correct revocation works, and then the last device cannot be revoked.
    let e = log.revoke(&a1, b1.id(), vec![], &key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    let key3 = SymmetricKey::random(&mut story.rng);
    assert!(matches!(
        log.revoke(&a1, a1.id(), vec![], &key3, &mut story.rng),
        Err(MembershipError::NotAllowed(_))
    ));
}

#[test]
fn a_device_that_leaves_gets_no_new_key_and_another_device_must_rotate() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1) = (copy(&story.a1), copy(&story.b1));
    let plan = log.state().plan();

    // Leaving with a new epoch would hand the leaver the next key: refused.
    let key = SymmetricKey::random(&mut story.rng);
    let sneaky = EntryBody::RevokeDevice {
        device: b1.id(),
        cutoffs: vec![],
        epoch: Epoch(2),
        key_id: key_id(plan, 2, &key),
        wraps: vec![wrap(&mut story.rng, plan, 2, &key, &a1, &b1)],
    };
    assert!(matches!(
        log.clone().append(sign(&log, sneaky, &b1)),
        Err(MembershipError::NotAllowed(_))
    ));

    let leave = log.leave(&b1, vec![]).unwrap();
    log.append(leave).unwrap();
    assert!(!log.state().is_active(&b1.id()));
    assert_eq!(log.state().epoch(), Epoch(1), "no new key yet");
    assert!(log.state().rotation_due());

    // The leaver can no longer act; the remaining device rotates.
    assert_eq!(log.rotate(&b1, &key, &mut story.rng).unwrap_err(), MembershipError::SignerRevoked);
    let e = log.rotate(&a1, &key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    assert!(!log.state().rotation_due());
    assert_eq!(Keyring::from_log(&log, &b1).latest(), Some(Epoch(1)));
    assert_eq!(Keyring::from_log(&log, &a1).latest(), Some(Epoch(2)));
}

#[test]
fn a_wrap_that_does_not_match_the_announced_key_is_unusable() {
    let mut story = Story::new();
    let mut log = story.couple();
    let (a1, b1) = (copy(&story.a1), copy(&story.b1));
    let plan = log.state().plan();
    // A malicious rotation: A gets one key, B another, under A's key id.
    let (for_a, for_b) =
        (SymmetricKey::random(&mut story.rng), SymmetricKey::random(&mut story.rng));
    let wraps = {
        let mut w = vec![
            wrap(&mut story.rng, plan, 2, &for_a, &a1, &a1),
            wrap(&mut story.rng, plan, 2, &for_b, &b1, &a1),
        ];
        w.sort_by_key(|w| w.recipient());
        for id in [story.identity_of(Partner::A), story.identity_of(Partner::B)] {
            w.push(wrap(&mut story.rng, plan, 2, &for_a, id.as_signer(), &a1));
        }
        w
    };
    let body = EntryBody::RotateEpoch { epoch: Epoch(2), key_id: key_id(plan, 2, &for_a), wraps };
    log.append(sign(&log, body, &a1)).unwrap();
    let ring_a = Keyring::from_log(&log, &a1);
    let ring_b = Keyring::from_log(&log, &b1);
    assert_eq!(ring_a.latest(), Some(Epoch(2)));
    assert_eq!(ring_b.unusable(), [Epoch(2)], "B notices it was given a different key");
    assert_eq!(ring_b.latest(), Some(Epoch(1)), "and still holds its other epochs");
}

#[test]
fn an_entry_too_large_for_peers_is_never_signed() {
    let mut story = Story::new();
    let log = story.couple();
    let (a1, b1) = (copy(&story.a1), copy(&story.b1));
    let plan = log.state().plan();
    let one = wrap(&mut story.rng, plan, 2, &story.keys[0], &b1, &a1);
    let count = MAX_ENTRY_LEN / one.encode().len() + 1;
    let body = EntryBody::RotateEpoch {
        epoch: Epoch(2),
        key_id: KeyId::default(),
        wraps: vec![one; count],
    };
    let state = log.state();
    assert!(matches!(
        Entry::sign(state.plan(), state.len(), state.head(), body, &a1),
        Err(MembershipError::NotAllowed(_))
    ));
}

#[test]
fn genesis_rules_hold() {
    let mut story = Story::new();
    let log = story.genesis();
    let (a1, b1) = (copy(&story.a1), copy(&story.b1));
    let key = SymmetricKey::random(&mut story.rng);

    let ida = story.identity_of(Partner::A);
    // A second genesis in the middle of the chain.
    let again = MembershipLog::genesis(story.plan, &a1, &ida, &key, &mut story.rng).unwrap();
    let late = sign(&log, again.body().clone(), &a1);
    assert!(matches!(log.clone().append(late), Err(MembershipError::NotAllowed(_))));

    // A genesis signed by someone other than its creator.
    let stolen =
        Entry::sign(story.plan, 0, EntryHash::default(), again.body().clone(), &b1).unwrap();
    assert!(matches!(MembershipLog::from_genesis(stolen), Err(MembershipError::NotAllowed(_))));

    // An entry from another plan.
    let other = PlanId::from_bytes([9; 16]);
    let other_log = MembershipLog::from_genesis(
        MembershipLog::genesis(other, &a1, &ida, &key, &mut story.rng).unwrap(),
    )
    .unwrap();
    let ring = Keyring::from_log(&other_log, &a1);
    let idb = story.identity_of(Partner::B);
    let cert = idb.certify(other, other_log.state().genesis(), Partner::B, b1.id());
    let foreign = other_log
        .add_device(
            &a1,
            Partner::B,
            &b1.bundle(),
            &idb.public(),
            &cert,
            |e| ring.key(e),
            &mut story.rng,
        )
        .unwrap();
    assert_eq!(log.clone().append(foreign), Err(MembershipError::WrongPlan));
}

#[test]
fn a_cutoff_must_name_an_envelope_of_a_document_the_device_could_write() {
    let mut story = Story::new();
    let mut log = story.genesis();
    let (a1, a2, b1) = (copy(&story.a1), copy(&story.a2), copy(&story.b1));
    let e = story.add(&log, &a1, Partner::B, &b1).unwrap();
    log.append(e).unwrap();
    let e = story.add(&log, &a1, Partner::A, &a2).unwrap();
    log.append(e).unwrap();
    let cut = |doc, seq| Cutoff { doc, seq: Seq(seq), hash: EnvelopeHash([7; 32]) };
    // Partner B's document, which A2 could never write; and no envelope at all.
    for bad in [cut(DocId::PartnerB, 3), cut(DocId::Shared, 0)] {
        let key = story.new_key();
        let made = log.revoke(&a1, a2.id(), vec![bad], &key, &mut story.rng);
        let refused = made.map_or(true, |e| log.clone().append(e).is_err());
        assert!(refused, "{bad:?}");
    }
    let key = story.new_key();
    let good = vec![cut(DocId::Shared, 3), cut(DocId::PartnerA, 1)];
    let e = log.revoke(&a1, a2.id(), good, &key, &mut story.rng).unwrap();
    log.append(e).unwrap();
    assert!(!log.state().is_active(&a2.id()));
}
