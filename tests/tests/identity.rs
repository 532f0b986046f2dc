//! Partner identities against a real relay: what the other partner cannot
//! do, what a lying relay cannot slip in, and recovering, pairing and
//! replacing a phrase through the client library.

use cove_client::device::Alarm;
use cove_client::keystore::KdfParams;
use cove_client::pairing::{self, Invite, PairError};
use cove_client::recovery::{self, RecoverError};
use cove_shared::{DocId, IdentitySeed, Partner, PartnerSecret};
use cove_tests::devices::{
    PASSPHRASE, couple, forged_enrolment, get, home, new_device, pair, put, sync_now, try_sync,
};
use cove_tests::harness::{TempDir, TestRelay};

#[tokio::test]
async fn an_enrolment_certified_by_the_wrong_partner_is_refused_and_reported() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("wrong-partner");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut b, DocId::PartnerB, "limit", "hard: nothing new without asking").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let forged = forged_enrolment(&a);

    // The relay refuses it.
    let (conn, _pushes) = cove_client::sync::connect(&a).await.unwrap();
    let refused = conn.append_membership(a.plan(), forged.encode()).await.unwrap_err();
    assert!(refused.to_string().contains("not certified by its partner's identity"), "{refused}");

    // A relay that served it anyway: B's device refuses it, changes
    // nothing, and raises an alarm that says what was tried.
    let before = b.log().entries().len();
    let applied = b.apply_membership(&[forged.encode().to_vec()]).await;
    assert!(applied.is_err(), "{applied:?}");
    assert_eq!(b.log().entries().len(), before);
    let reported = b.sync_state().alarms().into_iter().any(
        |alarm| matches!(alarm, Alarm::RefusedEntry { reason } if reason.contains("certified")),
    );
    assert!(reported, "{:?}", b.sync_state().alarms());
    assert_eq!(
        get(&b, DocId::PartnerB, "limit").as_deref(),
        Some("hard: nothing new without asking")
    );
    sync_now(&mut b).await;
}

#[tokio::test]
async fn the_other_partner_cannot_pair_a_device_for_you_even_after_revoking_yours() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("no-proxy");
    let (mut a, b) = couple(&root, &relay.url, &relay.url).await;
    let entry = a.revocation(b.id()).unwrap();
    let (conn, _pushes) = cove_client::sync::connect(&a).await.unwrap();
    conn.append_membership(a.plan(), entry.encode()).await.unwrap();
    sync_now(&mut a).await;
    assert_eq!(a.membership().active_of(Partner::B).count(), 0);
    let again = Invite::open(&a, false).await;
    assert!(matches!(again, Err(PairError::PartnerHasIdentity)), "{again:?}");
}

#[tokio::test]
async fn every_device_lost_the_phrase_brings_the_partner_back() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("recover");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut a, DocId::Shared, "calm", "a blanket and quiet").await;
    put(&mut b, DocId::PartnerB, "limit", "hard: nothing new without asking").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let phrase = b.recovery_phrase().unwrap().to_string();
    let lost = b.id();
    drop(b);
    home(&root, "sam").wipe().unwrap();

    let recovered = recovery::recover(
        &home(&root, "sam-new"),
        PASSPHRASE,
        &relay.url,
        &phrase,
        "sam",
        KdfParams::default(),
    )
    .await
    .unwrap();
    assert!(recovered.sync_error.is_none(), "{:?}", recovered.sync_error);
    assert_eq!(recovered.partner, Partner::B);
    let mut b2 = recovered.device;
    // The whole plan, both partners' parts.
    assert_eq!(get(&b2, DocId::Shared, "calm").as_deref(), Some("a blanket and quiet"));
    assert_eq!(
        get(&b2, DocId::PartnerB, "limit").as_deref(),
        Some("hard: nothing new without asking")
    );
    // B edits B's own part; A's device takes it.
    put(&mut b2, DocId::PartnerB, "limit", "soft: ask first").await;
    sync_now(&mut b2).await;
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::PartnerB, "limit").as_deref(), Some("soft: ask first"));
    assert!(a.sync_state().alarms().is_empty(), "{:?}", a.sync_state().alarms());
    // The recovered device removes the lost one; the plan moves to a new key.
    let entry = b2.revocation(lost).unwrap();
    let (conn, _pushes) = cove_client::sync::connect(&b2).await.unwrap();
    conn.append_membership(b2.plan(), entry.encode()).await.unwrap();
    sync_now(&mut b2).await;
    assert!(!b2.membership().is_active(&lost));
}

#[tokio::test]
async fn a_phrase_that_fits_no_plan_creates_nothing() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("no-plan");
    let _a = new_device(&root, "alex", &relay.url).await;
    let nowhere = cove_shared::phrase::encode(&IdentitySeed::from_bytes(&[3; 32]));
    let target = home(&root, "other");
    let result =
        recovery::recover(&target, PASSPHRASE, &relay.url, &nowhere, "x", KdfParams::default())
            .await;
    assert!(matches!(result, Err(RecoverError::NoPlan(_))), "{result:?}");
    assert!(!target.exists());
    let garbled = "abandon ".repeat(24);
    let result =
        recovery::recover(&target, PASSPHRASE, &relay.url, &garbled, "x", KdfParams::default())
            .await;
    assert!(matches!(result, Err(RecoverError::Phrase(_))), "{result:?}");
    assert!(!target.exists());
}

#[tokio::test]
async fn a_refused_safety_code_wraps_nothing_and_admits_nobody() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("refused");
    let mut a = new_device(&root, "alex", &relay.url).await;
    let invite = Invite::open(&a, false).await.unwrap();
    let code = invite.code().to_owned();
    let target = home(&root, "sam");
    let (inviter, joiner) = tokio::join!(
        async {
            let meeting = invite.meet(&a).await?;
            meeting.refuse().await
        },
        pairing::join(&target, PASSPHRASE, &relay.url, &code, "sam", KdfParams::default(), |_| {})
    );
    inviter.unwrap();
    assert!(matches!(joiner, Err(PairError::Declined)), "{:?}", joiner.map(|j| j.paired));
    assert!(!target.exists());
    sync_now(&mut a).await;
    assert_eq!(a.log().entries().len(), 1, "no entry, so no key was wrapped for the joiner");
}

#[tokio::test]
async fn a_second_device_holds_the_identity_and_a_new_phrase_retires_the_old_one() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("new-phrase");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let (mut a2, _, _) = pair(&mut a, &root, "alex-tablet", &relay.url, true).await;
    let old = a.recovery_phrase().unwrap().to_string();
    assert_eq!(a2.recovery_phrase().map(|p| p.to_string()), Some(old.clone()));
    // The second device can enrol a third on its own.
    let (a3, _, _) = pair(&mut a2, &root, "alex-laptop", &relay.url, true).await;
    assert_eq!(a3.partner(), Partner::A);

    let epoch = a.membership().epoch();
    let new = cove_client::sync::new_phrase(&mut a).await.unwrap().to_string();
    assert_ne!(new, old);
    assert!(a.membership().epoch() > epoch, "a new key the old phrase cannot open");
    // The other device of A forgets the old identity; B is unaffected.
    sync_now(&mut a2).await;
    assert!(a2.recovery_phrase().is_none());
    sync_now(&mut b).await;
    assert!(b.recovery_phrase().is_some());
    // The old phrase recovers nothing; the new one does.
    let old_try = recovery::recover(
        &home(&root, "x"),
        PASSPHRASE,
        &relay.url,
        &old,
        "x",
        KdfParams::default(),
    )
    .await;
    assert!(matches!(old_try, Err(RecoverError::NoPlan(_))), "{old_try:?}");
    let new_try = recovery::recover(
        &home(&root, "y"),
        PASSPHRASE,
        &relay.url,
        &new,
        "y",
        KdfParams::default(),
    )
    .await
    .unwrap();
    assert_eq!(new_try.partner, Partner::A);
    assert!(try_sync(&mut a2).await.is_ok());
}

/// Uncoupling from one side: every device of the other partner is revoked
/// and their identity retired, so that neither their devices nor their
/// phrase read anything written afterwards.
#[tokio::test]
async fn a_removed_partner_is_cut_off_from_devices_and_phrase_alike() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("remove");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let phrase = b.recovery_phrase().unwrap().to_string();
    let seed = cove_shared::phrase::decode(&phrase).unwrap();
    let identity = PartnerSecret::from_seed(&seed).unwrap();
    let before = a.membership().len();
    let (conn, _pushes) = cove_client::sync::connect(&a).await.unwrap();
    let target = b.id();
    cove_client::sync::publish_entry(&mut a, &conn, |d| d.revocation(target)).await.unwrap();
    cove_client::sync::publish_entry(&mut a, &conn, |d| d.retirement(Partner::B)).await.unwrap();
    sync_now(&mut a).await;
    let state = a.membership();
    assert!(state.has_left(Partner::B));
    assert!(!state.rotation_due(), "the device rotated the key the phrase held");
    let held = cove_shared::Keyring::from_log(a.log(), identity.as_signer());
    assert!(held.latest() < Some(state.epoch()), "the phrase holds no key of the new epoch");
    // B's device learns of its removal from signed entries, and sees no
    // entry after the one that removed it.
    let removed_at = state.member(&target).unwrap().revoked.as_ref().unwrap().at;
    assert!(removed_at >= before);
    assert!(try_sync(&mut b).await.is_err());
    assert!(!b.is_active());
    assert_eq!(b.log().entries().len() as u64, removed_at + 1);
    assert!(b.removal().unwrap().starts_with("alex removed this device from the plan on "));
    // The phrase brings nobody back.
    let result = recovery::recover(
        &home(&root, "sam-again"),
        PASSPHRASE,
        &relay.url,
        &phrase,
        "sam",
        KdfParams::default(),
    )
    .await;
    assert!(matches!(result, Err(RecoverError::NoPlan(_))), "{result:?}");
    assert!(matches!(Invite::open(&a, false).await, Err(PairError::PartnerLeft)));
}

/// A running daemon whose device is removed says so from the signed log:
/// who removed it and when, not merely that the relay said so.
#[tokio::test]
async fn a_running_daemon_learns_its_removal_from_the_signed_log() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("daemon-removed");
    let (mut a, b) = couple(&root, &relay.url, &relay.url).await;
    let (synced_tx, mut synced) = tokio::sync::mpsc::unbounded_channel::<()>();
    let daemon = tokio::spawn(async move {
        let mut b = b;
        let events = |event: &cove_client::sync::Event| {
            if matches!(event, cove_client::sync::Event::Synced(_)) {
                let _ = synced_tx.send(());
            }
        };
        let result =
            cove_client::sync::run_daemon(&mut b, events, Box::pin(std::future::pending())).await;
        (b, result)
    });
    synced.recv().await;
    let (conn, _pushes) = cove_client::sync::connect(&a).await.unwrap();
    let target = {
        let state = a.membership();
        state.active_of(Partner::B).next().unwrap().device
    };
    cove_client::sync::publish_entry(&mut a, &conn, |d| d.revocation(target)).await.unwrap();
    let (b, result) = tokio::time::timeout(std::time::Duration::from_secs(20), daemon)
        .await
        .expect("the daemon stopped")
        .unwrap();
    assert!(matches!(result, Err(cove_client::device::DeviceError::Revoked)), "{result:?}");
    let removal = b.removal().unwrap();
    assert!(removal.starts_with("alex removed this device from the plan on "), "{removal}");
}
