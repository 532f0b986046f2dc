//! The membership log: a valid chain verifies, and every forgery is refused.

mod common;

use cove_shared::membership::{Appended, Entry, EntryBody, EntryHash, MembershipError};
use cove_shared::random::SeededEntropy;
use cove_shared::{
    DeviceSecret, Epoch, KeyWrap, Keyring, MembershipLog, Partner, PlanId, Seq, SymmetricKey,
};

struct Story {
    rng: SeededEntropy,
    plan: PlanId,
    a1: DeviceSecret,
    a2: DeviceSecret,
    b1: DeviceSecret,
    b2: DeviceSecret,
    outsider: DeviceSecret,
    /// Every epoch key, as the story's devices learn them.
    keys: Vec<SymmetricKey>,
}

impl Story {
    fn new() -> Self {
        let mut rng = SeededEntropy::new(b"membership story");
        let plan = PlanId::random(&mut rng);
        let mut device = || DeviceSecret::generate(&mut rng);
        let (a1, a2, b1, b2, outsider) = (device(), device(), device(), device(), device());
        Self {
            rng,
            plan,
            a1,
            a2,
            b1,
            b2,
            outsider,
            keys: Vec::new(),
        }
    }

    fn key(&self, epoch: Epoch) -> Option<&SymmetricKey> {
        self.keys.get(epoch.0 as usize - 1)
    }

    fn genesis(&mut self) -> MembershipLog {
        let key = SymmetricKey::random(&mut self.rng);
        let genesis = MembershipLog::genesis(self.plan, &self.a1, &key, &mut self.rng).unwrap();
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
        let keys = self.keys.clone();
        log.add_device(
            by,
            partner,
            &new.bundle(),
            |e| keys.get(e.0 as usize - 1),
            &mut self.rng,
        )
    }

    /// genesis(A1) → A1 adds B1 → A1 adds A2 → B1 adds B2 → B2 rotates →
    /// A1 revokes A2.
    fn full_chain(&mut self) -> MembershipLog {
        let mut log = self.genesis();
        let (a1, a2, b1, b2) = (
            self.clone_of(1),
            self.clone_of(2),
            self.clone_of(3),
            self.clone_of(4),
        );
        let e = self.add(&log, &a1, Partner::B, &b1).unwrap();
        log.append(e).unwrap();
        let e = self.add(&log, &a1, Partner::A, &a2).unwrap();
        log.append(e).unwrap();
        let e = self.add(&log, &b1, Partner::B, &b2).unwrap();
        log.append(e).unwrap();
        let key = SymmetricKey::random(&mut self.rng);
        let e = log.rotate(&b2, &key, &mut self.rng).unwrap();
        self.keys.push(key);
        log.append(e).unwrap();
        let key = SymmetricKey::random(&mut self.rng);
        let e = log
            .revoke(&a1, a2.id(), Seq(10), &key, &mut self.rng)
            .unwrap();
        self.keys.push(key);
        log.append(e).unwrap();
        log
    }

    fn clone_of(&self, which: u8) -> DeviceSecret {
        let d = match which {
            1 => &self.a1,
            2 => &self.a2,
            3 => &self.b1,
            4 => &self.b2,
            _ => &self.outsider,
        };
        DeviceSecret::from_secret_bytes(&d.to_secret_bytes()).unwrap()
    }
}

#[test]
fn a_valid_add_revoke_rotate_chain_verifies() {
    let mut story = Story::new();
    let log = story.full_chain();
    let state = log.state();
    assert_eq!(state.len(), 6);
    assert_eq!(state.epoch(), Epoch(3));
    let active: Vec<_> = state.active().map(|m| m.device).collect();
    assert_eq!(active.len(), 3);
    assert!(!state.is_active(&story.a2.id()));
    assert_eq!(state.active_of(Partner::A).count(), 1);
    assert_eq!(state.active_of(Partner::B).count(), 2);
    let revocation = state.member(&story.a2.id()).unwrap().revoked.unwrap();
    assert_eq!(
        (revocation.by, revocation.cutoff, revocation.epoch),
        (story.a1.id(), Seq(10), Epoch(3))
    );

    // Re-verifying the encoded chain from scratch gives the same state.
    let encoded: Vec<Vec<u8>> = log.entries().iter().map(|e| e.encode().to_vec()).collect();
    let again = MembershipLog::decode(encoded.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(again.state(), state);

    // The state at any point in the chain.
    let at_2 = log.state_at(2).unwrap();
    assert_eq!((at_2.epoch(), at_2.active().count()), (Epoch(1), 2));
    let at_5 = log.state_at(5).unwrap();
    assert_eq!((at_5.epoch(), at_5.active().count()), (Epoch(2), 4));
    assert!(log.state_at(0).is_none() && log.state_at(7).is_none());

    // Each device recovers exactly the epoch keys it was given.
    let epochs = |d: &DeviceSecret| {
        Keyring::from_log(&log, d)
            .unwrap()
            .epochs()
            .collect::<Vec<_>>()
    };
    assert_eq!(epochs(&story.a1), [Epoch(1), Epoch(2), Epoch(3)]);
    assert_eq!(epochs(&story.b2), [Epoch(1), Epoch(2), Epoch(3)]);
    assert_eq!(
        epochs(&story.a2),
        [Epoch(1), Epoch(2)],
        "revoked before epoch 3"
    );
    let ring = Keyring::from_log(&log, &story.b1).unwrap();
    for epoch in 1..=3 {
        assert_eq!(ring.key(Epoch(epoch)), story.key(Epoch(epoch)));
    }
}

#[test]
fn duplicates_are_harmless_and_forks_are_refused() {
    let mut story = Story::new();
    let mut log = story.genesis();
    let (a1, b1, a2) = (story.clone_of(1), story.clone_of(3), story.clone_of(2));
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
        MembershipLog::verify(entries),
        Err(MembershipError::OutOfOrder { .. })
    ));
    let mut skipped = log.entries().to_vec();
    skipped.remove(2);
    assert!(matches!(
        MembershipLog::verify(skipped),
        Err(MembershipError::OutOfOrder { .. })
    ));
    let mut genesis_last = log.entries().to_vec();
    genesis_last.rotate_left(1);
    assert!(MembershipLog::verify(genesis_last).is_err());
}

#[test]
fn entries_signed_by_non_members_or_revoked_devices_are_refused() {
    let mut story = Story::new();
    let mut log = story.full_chain();
    let (outsider, a2) = (story.clone_of(9), story.clone_of(2));
    let key = SymmetricKey::random(&mut story.rng);
    let state = log.state().clone();

    // Sign as the outsider, with correct wraps for everyone: still not a member.
    let wraps: Vec<KeyWrap> = state
        .active()
        .map(|m| {
            KeyWrap::wrap(
                state.plan(),
                Epoch(4),
                &key,
                m.device,
                &m.exchange,
                &outsider,
                &mut story.rng,
            )
            .unwrap()
        })
        .collect();
    let body = EntryBody::RotateEpoch {
        epoch: Epoch(4),
        wraps,
    };
    let forged = Entry::sign(state.plan(), state.len(), state.head(), body, &outsider);
    assert_eq!(log.append(forged), Err(MembershipError::NotMember));

    // The revoked A2 tries to rotate the key.
    let wraps: Vec<KeyWrap> = state
        .active()
        .map(|m| {
            KeyWrap::wrap(
                state.plan(),
                Epoch(4),
                &key,
                m.device,
                &m.exchange,
                &a2,
                &mut story.rng,
            )
            .unwrap()
        })
        .collect();
    let body = EntryBody::RotateEpoch {
        epoch: Epoch(4),
        wraps,
    };
    let forged = Entry::sign(state.plan(), state.len(), state.head(), body, &a2);
    assert_eq!(log.append(forged), Err(MembershipError::SignerRevoked));

    // The revoked A2 tries to add a device of its own.
    let keys = story.keys.clone();
    let new = DeviceSecret::generate(&mut story.rng);
    let wraps: Vec<KeyWrap> = (1..=3)
        .map(|e| {
            let k = &keys[e - 1];
            KeyWrap::wrap(
                state.plan(),
                Epoch(e as u32),
                k,
                new.id(),
                &new.exchange_public(),
                &a2,
                &mut story.rng,
            )
            .unwrap()
        })
        .collect();
    let body = EntryBody::AddDevice {
        partner: Partner::A,
        bundle: new.bundle(),
        wraps,
    };
    let forged = Entry::sign(state.plan(), state.len(), state.head(), body, &a2);
    assert_eq!(log.append(forged), Err(MembershipError::SignerRevoked));
    assert_eq!(log.state(), &state);
}

#[test]
fn no_partner_can_enrol_a_device_for_the_other() {
    let mut story = Story::new();
    let mut log = story.genesis();
    let (a1, b1, b2, a2) = (
        story.clone_of(1),
        story.clone_of(3),
        story.clone_of(4),
        story.clone_of(2),
    );
    let e = story.add(&log, &a1, Partner::B, &b1).unwrap();
    log.append(e).unwrap();
    // A cannot add a second device for B: it could then speak for B.
    assert!(matches!(
        story.add(&log, &a1, Partner::B, &b2),
        Err(MembershipError::NotAllowed(_))
    ));
    // B cannot add a device for A.
    assert!(matches!(
        story.add(&log, &b1, Partner::A, &a2),
        Err(MembershipError::NotAllowed(_))
    ));
    // B adds its own second device; A adds its own.
    let e = story.add(&log, &b1, Partner::B, &b2).unwrap();
    log.append(e).unwrap();
    let e = story.add(&log, &a1, Partner::A, &a2).unwrap();
    log.append(e).unwrap();
    // Nobody can add a device twice.
    assert!(matches!(
        story.add(&log, &a1, Partner::A, &a2),
        Err(MembershipError::NotAllowed(_))
    ));
}

#[test]
fn a_revocation_must_rotate_and_wrap_for_exactly_the_remaining_devices() {
    let mut story = Story::new();
    let mut log = story.genesis();
    let (a1, b1) = (story.clone_of(1), story.clone_of(3));
    let e = story.add(&log, &a1, Partner::B, &b1).unwrap();
    log.append(e).unwrap();
    let state = log.state().clone();
    let key = SymmetricKey::random(&mut story.rng);
    let wrap_for = |rng: &mut SeededEntropy, d: &DeviceSecret, epoch: u32| {
        KeyWrap::wrap(
            state.plan(),
            Epoch(epoch),
            &key,
            d.id(),
            &d.exchange_public(),
            &a1,
            rng,
        )
        .unwrap()
    };
    let attempt = |body| Entry::sign(state.plan(), state.len(), state.head(), body, &a1);

    // The revoked device is still given the new key.
    let w = vec![
        wrap_for(&mut story.rng, &a1, 2),
        wrap_for(&mut story.rng, &b1, 2),
    ];
    let body = EntryBody::RevokeDevice {
        device: b1.id(),
        cutoff: Seq(0),
        epoch: Epoch(2),
        wraps: w,
    };
    assert_eq!(
        log.clone().append(attempt(body)),
        Err(MembershipError::BadWraps)
    );

    // No new epoch.
    let w = vec![wrap_for(&mut story.rng, &a1, 1)];
    let body = EntryBody::RevokeDevice {
        device: b1.id(),
        cutoff: Seq(0),
        epoch: Epoch(1),
        wraps: w,
    };
    assert!(matches!(
        log.clone().append(attempt(body)),
        Err(MembershipError::NotAllowed(_))
    ));

    // A skipped epoch.
    let w = vec![wrap_for(&mut story.rng, &a1, 3)];
    let body = EntryBody::RevokeDevice {
        device: b1.id(),
        cutoff: Seq(0),
        epoch: Epoch(3),
        wraps: w,
    };
    assert!(matches!(
        log.clone().append(attempt(body)),
        Err(MembershipError::NotAllowed(_))
    ));

    // A rotation that leaves a device without the key.
    let w = vec![wrap_for(&mut story.rng, &a1, 2)];
    let body = EntryBody::RotateEpoch {
        epoch: Epoch(2),
        wraps: w,
    };
    assert_eq!(
        log.clone().append(attempt(body)),
        Err(MembershipError::BadWraps)
    );

    // A wrap made by someone other than the signer.
    let foreign = KeyWrap::wrap(
        state.plan(),
        Epoch(2),
        &key,
        a1.id(),
        &a1.exchange_public(),
        &b1,
        &mut story.rng,
    )
    .unwrap();
    let body = EntryBody::RevokeDevice {
        device: b1.id(),
        cutoff: Seq(0),
        epoch: Epoch(2),
        wraps: vec![foreign],
    };
    assert_eq!(
        log.clone().append(attempt(body)),
        Err(MembershipError::BadWraps)
    );

    // The correct revocation works, and then the last device cannot be revoked.
    let e = log
        .revoke(&a1, b1.id(), Seq(0), &key, &mut story.rng)
        .unwrap();
    log.append(e).unwrap();
    let key3 = SymmetricKey::random(&mut story.rng);
    assert!(matches!(
        log.revoke(&a1, a1.id(), Seq(0), &key3, &mut story.rng),
        Err(MembershipError::NotAllowed(_))
    ));
}

#[test]
fn genesis_rules_hold() {
    let mut story = Story::new();
    let log = story.genesis();
    let (a1, b1) = (story.clone_of(1), story.clone_of(3));
    let key = SymmetricKey::random(&mut story.rng);

    // A second genesis in the middle of the chain.
    let again = MembershipLog::genesis(story.plan, &a1, &key, &mut story.rng).unwrap();
    let state = log.state();
    let body = again.body().clone();
    let late = Entry::sign(story.plan, state.len(), state.head(), body, &a1);
    assert!(matches!(
        log.clone().append(late),
        Err(MembershipError::NotAllowed(_))
    ));

    // A genesis signed by someone other than its creator.
    let EntryBody::Genesis { creator, wrap } = again.body().clone() else {
        unreachable!()
    };
    let body = EntryBody::Genesis { creator, wrap };
    let stolen = Entry::sign(story.plan, 0, EntryHash::default(), body, &b1);
    assert!(matches!(
        MembershipLog::from_genesis(stolen),
        Err(MembershipError::NotAllowed(_))
    ));

    // An entry from another plan.
    let other = PlanId::from_bytes([9; 16]);
    let other_log = MembershipLog::from_genesis(
        MembershipLog::genesis(other, &a1, &key, &mut story.rng).unwrap(),
    )
    .unwrap();
    let ring = Keyring::from_log(&other_log, &a1).unwrap();
    let foreign = other_log
        .add_device(
            &a1,
            Partner::B,
            &b1.bundle(),
            |e| ring.key(e),
            &mut story.rng,
        )
        .unwrap();
    assert_eq!(log.clone().append(foreign), Err(MembershipError::WrongPlan));
}
