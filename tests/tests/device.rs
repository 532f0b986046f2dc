//! The device against a real relay: pairing, offline edits, crashes and
//! restarts, snapshots, revocation and leaving.

use cove_client::device::{Alarm, Device, DeviceError};
use cove_client::keystore::{KdfParams, Keystore};
use cove_client::localdb::ListTable;
use cove_client::pairing::{self, Invite, PairError};
use cove_client::sync;
use cove_shared::envelope;
use cove_shared::wire::Cursor;
use cove_shared::{DocId, Keyring, Kind, MembershipLog, Partner, Recipient};
use cove_tests::devices::{
    PASSPHRASE, couple, get, heads, home, keys, new_device, pair, put, sync_now, try_put, try_sync,
};
use cove_tests::harness::{TempDir, TestRelay, copy_database};
use cove_tests::proxy::Proxy;

#[tokio::test]
async fn pairing_shows_one_safety_code_and_both_devices_hold_the_plan() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("pair");
    let mut a = new_device(&root, "alex", &relay.url).await;
    put(&mut a, DocId::Shared, "calm", "a blanket and quiet").await;
    let (mut b, seen_by_a, seen_by_b) = pair(&mut a, &root, "sam", &relay.url, false).await;

    assert_eq!(seen_by_a.safety_code, seen_by_b.safety_code);
    assert_eq!(seen_by_a.safety_code.len(), 6);
    assert_eq!(seen_by_a.device, b.id());
    assert_eq!(b.partner(), Partner::B);
    assert_eq!(b.plan(), a.plan());
    // The joiner brought the plan over in its first sync.
    assert_eq!(get(&b, DocId::Shared, "calm").as_deref(), Some("a blanket and quiet"));

    sync_now(&mut a).await;
    assert_eq!(cove_client::plan::display_name(a.docs(), Partner::B).as_deref(), Some("sam"));
    assert_eq!(cove_client::plan::display_name(b.docs(), Partner::A).as_deref(), Some("alex"));
    assert_eq!(a.membership().active().count(), 2);
    assert_eq!(a.log().entries(), b.log().entries());

    // The partner's first device can be paired only once.
    let again = Invite::open(&a, false).await;
    assert!(matches!(again, Err(PairError::PartnerHasIdentity)), "{again:?}");
    sync_now(&mut b).await;
}

#[tokio::test]
async fn a_wrong_code_fails_on_both_sides_and_cannot_be_retried() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("wrong-code");
    let mut a = new_device(&root, "alex", &relay.url).await;
    let invite = Invite::open(&a, false).await.unwrap();
    let code = invite.code().to_owned();
    let (nameplate, rest) = code.split_once('-').unwrap();
    let (first, second) = rest.split_once('-').unwrap();
    let other = cove_client::words::WORDS.iter().find(|w| **w != second).unwrap();
    let wrong = format!("{nameplate}-{first}-{other}");

    let joiner_home = home(&root, "sam");
    let (inviter, joiner) = tokio::join!(
        invite.complete(&mut a),
        pairing::join(
            &joiner_home,
            PASSPHRASE,
            &relay.url,
            &wrong,
            "sam",
            KdfParams::default(),
            |_| {}
        )
    );
    assert!(matches!(inviter, Err(PairError::WrongCode)), "inviter: {inviter:?}");
    assert!(matches!(joiner, Err(PairError::WrongCode)), "joiner: {:?}", joiner.map(|j| j.paired));
    // Nothing half made is left on the joining device.
    assert!(!joiner_home.exists());

    // The right code no longer works: the mailbox is burned.
    let retry = pairing::join(
        &joiner_home,
        PASSPHRASE,
        &relay.url,
        &code,
        "sam",
        KdfParams::default(),
        |_| {},
    )
    .await;
    assert!(
        matches!(retry, Err(PairError::Burned | PairError::Unknown)),
        "{:?}",
        retry.map(|j| j.paired)
    );
    assert_eq!(a.membership().members().count(), 1);
}

#[tokio::test]
async fn a_second_device_of_the_same_partner_joins_and_syncs() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("own-device");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut a, DocId::PartnerA, "rest", "twenty minutes lying down").await;
    sync_now(&mut a).await;
    let (mut a2, _, _) = pair(&mut a, &root, "alex-tablet", &relay.url, true).await;
    assert_eq!(a2.partner(), Partner::A);
    assert_eq!(get(&a2, DocId::PartnerA, "rest").as_deref(), Some("twenty minutes lying down"));

    // The second device may write the partner's own document.
    put(&mut a2, DocId::PartnerA, "water", "a glass of water").await;
    sync_now(&mut a2).await;
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::PartnerA, "water").as_deref(), Some("a glass of water"));
    // And it cannot write the other partner's.
    let refused = try_put(&mut a2, DocId::PartnerB, "x", "y").await;
    assert!(
        matches!(refused, Err(DeviceError::NotYours { partner: Partner::B, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn edits_made_offline_on_both_devices_converge() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("offline");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    sync_now(&mut b).await;

    // Offline: nothing is sent until the next sync.
    for i in 0..20 {
        put(&mut a, DocId::Shared, &format!("a-{i}"), "from alex").await;
        put(&mut b, DocId::Shared, &format!("b-{i}"), "from sam").await;
    }
    // The same key edited on both sides: Automerge picks one value, the
    // same on both devices.
    put(&mut a, DocId::Shared, "both", "alex's words").await;
    put(&mut b, DocId::Shared, "both", "sam's words").await;
    put(&mut a, DocId::PartnerA, "mine", "alex only").await;
    put(&mut b, DocId::PartnerB, "mine", "sam only").await;
    assert_eq!(a.outbox().await.unwrap().len(), 22);

    sync_now(&mut a).await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;

    for doc in DocId::ALL {
        assert_eq!(heads(&a, doc), heads(&b, doc), "{doc} differs");
    }
    assert_eq!(keys(&a, DocId::Shared).len(), 41);
    assert_eq!(get(&a, DocId::Shared, "both"), get(&b, DocId::Shared, "both"));
    assert_eq!(get(&a, DocId::PartnerB, "mine").as_deref(), Some("sam only"));
    assert_eq!(get(&b, DocId::PartnerA, "mine").as_deref(), Some("alex only"));
    assert!(a.outbox().await.unwrap().is_empty());
    assert!(b.outbox().await.unwrap().is_empty());
    assert!(a.sync_state().alarms().is_empty(), "{:?}", a.sync_state().alarms());
    assert!(b.sync_state().alarms().is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn a_relay_restart_in_the_middle_of_a_sync_loses_and_duplicates_nothing() {
    let root = TempDir::new("restart");
    let database = root.path().join("relay.db");
    let relay = TestRelay::start_on_file(&database).await;
    let addr = relay.addr;
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;

    const EDITS: usize = 300;
    for i in 0..EDITS {
        put(&mut a, DocId::Shared, &format!("k{i}"), "v").await;
    }
    let count = || async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&database).read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM envelopes WHERE kind = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    };
    let before = count().await;
    let (result, ()) = tokio::join!(try_sync(&mut a), async {
        // Stop the relay once part of the outbox has been stored.
        while count().await < before + 20 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        relay.stop().await;
    });
    assert!(result.is_err(), "the sync finished before the relay stopped: {result:?}");
    let left = a.outbox().await.unwrap().len();
    assert!(left > 0 && left < EDITS, "{left} of {EDITS} still to send");

    let _relay = TestRelay::start_at(addr, &database).await;
    let report = sync_now(&mut a).await;
    assert!(report.sent <= left && report.sent + 1 >= left, "sent {} of {left}", report.sent);
    assert!(a.outbox().await.unwrap().is_empty());
    // Each edit is stored exactly once.
    let stored = count().await - before;
    if stored != EDITS as i64 {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&database).read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let streams: Vec<(Vec<u8>, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT sender, kind, doc, MIN(seq), MAX(seq) FROM envelopes GROUP BY sender, kind, doc",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        panic!("{stored} stored for {EDITS} edits (before: {before}); streams: {streams:?}");
    }

    let report = sync_now(&mut b).await;
    assert_eq!(report.applied[0], EDITS);
    assert_eq!(keys(&b, DocId::Shared).len(), EDITS);
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
}

#[tokio::test]
async fn an_edit_survives_a_crash_before_or_after_it_reached_the_relay() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("crash");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let a_home = a.home().clone();

    // Crash after the local commit, before the send.
    put(&mut a, DocId::Shared, "first", "kept").await;
    drop(a);
    let mut a = Device::open(&a_home, PASSPHRASE).await.unwrap();
    assert_eq!(get(&a, DocId::Shared, "first").as_deref(), Some("kept"));
    assert_eq!(a.outbox().await.unwrap().len(), 1);

    // Crash after the relay stored it, before the device recorded that.
    put(&mut a, DocId::Shared, "second", "kept too").await;
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    for (_, envelope) in a.outbox().await.unwrap() {
        conn.push(a.plan(), &envelope).await.unwrap();
    }
    drop(conn);
    drop(a);
    let mut a = Device::open(&a_home, PASSPHRASE).await.unwrap();
    assert_eq!(a.outbox().await.unwrap().len(), 2);
    let report = sync_now(&mut a).await;
    assert_eq!(report.sent, 2);
    assert!(a.outbox().await.unwrap().is_empty());

    let report = sync_now(&mut b).await;
    assert_eq!(report.applied[0], 2, "each edit arrives once");
    assert_eq!(get(&b, DocId::Shared, "first").as_deref(), Some("kept"));
    assert_eq!(get(&b, DocId::Shared, "second").as_deref(), Some("kept too"));
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    let (items, _, _) = conn.fetch(b.plan(), Cursor(0), 1000).await.unwrap();
    let from_a = items
        .iter()
        .filter(|i| {
            envelope::header_of(&i.envelope.0).is_ok_and(|h| {
                h.sender == a.id() && h.kind == Kind::Changes && h.doc == DocId::Shared
            })
        })
        .count();
    // Genesis, the name written at init, and the two edits: no duplicates.
    assert_eq!(from_a, 3);
}

#[tokio::test]
async fn a_new_device_starts_from_a_snapshot_and_the_tail() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("snapshot");
    let mut a = new_device(&root, "alex", &relay.url).await;
    for i in 0..(cove_client::device::SNAPSHOT_EVERY as usize + 10) {
        put(&mut a, DocId::Shared, &format!("k{i}"), "v").await;
    }
    let report = sync_now(&mut a).await;
    assert!(report.snapshots >= 1, "{report:?}");
    put(&mut a, DocId::Shared, "tail", "after the snapshot").await;
    sync_now(&mut a).await;

    let (b, _, _) = pair(&mut a, &root, "sam", &relay.url, false).await;
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert_eq!(get(&b, DocId::Shared, "tail").as_deref(), Some("after the snapshot"));
    assert!(b.sync_state().alarms().is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn a_revoked_device_reads_nothing_written_afterwards_even_from_the_relay_database() {
    let root = TempDir::new("revoke");
    let database = root.path().join("relay.db");
    let relay = TestRelay::start_on_file(&database).await;
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut a, DocId::Shared, "before", "shared before revocation").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert!(get(&b, DocId::Shared, "before").is_some());
    let old_epoch = a.membership().epoch();

    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let target = b.id();
    sync::publish_entry(&mut a, &conn, |d| d.revocation(target)).await.unwrap();
    let new_epoch = a.membership().epoch();
    assert!(new_epoch > old_epoch);
    const MARKER: &str = "written-after-revocation-5c1d";
    put(&mut a, DocId::Shared, "after", MARKER).await;
    put(&mut a, DocId::PartnerA, "after", MARKER).await;
    sync_now(&mut a).await;

    // The relay refuses the revoked device.
    let refused = try_sync(&mut b).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(get(&b, DocId::Shared, "after").is_none());

    // Everything the relay holds, with every key the revoked device has.
    relay.stop().await;
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(&database).read_only(true),
    )
    .await
    .unwrap();
    let entries: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT entry FROM membership ORDER BY idx").fetch_all(&pool).await.unwrap();
    let bodies: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT body FROM envelopes UNION ALL SELECT body FROM snapshots")
            .fetch_all(&pool)
            .await
            .unwrap();
    let log = MembershipLog::decode(entries.iter().map(|(e,)| e.as_slice()), None).unwrap();
    let keystore = Keystore::open(&b.home().keystore(), PASSPHRASE).unwrap();
    let mut ring = Keyring::from_log(&log, keystore.device());
    let held = keystore.plan.as_ref().unwrap().epochs.clone();
    assert!(ring.key(new_epoch).is_none(), "the new key was never wrapped for the revoked device");
    // Even the old key, tried under the new epoch, does not open anything.
    if let Some((_, old)) = held.iter().find(|(e, _)| *e == old_epoch.0) {
        ring.insert(new_epoch, cove_shared::SymmetricKey::from_bytes(*old));
    }
    let policy = Recipient { membership: log.state(), keyring: &ring };
    let (mut opened_before, mut after) = (0, 0);
    for (body,) in &bodies {
        let header = envelope::header_of(body).unwrap();
        let result = envelope::open(body, &policy);
        if header.epoch >= new_epoch {
            after += 1;
            assert!(result.is_err(), "an envelope of the new epoch opened");
        } else if let Ok(opened) = result {
            opened_before += 1;
            let text = String::from_utf8_lossy(&opened.payload).into_owned();
            assert!(!text.contains(MARKER));
        }
    }
    assert!(after >= 2, "the edits after revocation are on the relay ({after})");
    assert!(opened_before > 0, "the same keys do open what came before");
}

#[tokio::test]
async fn leaving_moves_the_partner_to_a_new_key() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("leave");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let epoch = a.membership().epoch();
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    let me = b.id();
    sync::publish_entry(&mut b, &conn, |d| d.revocation(me)).await.unwrap();
    assert!(!b.is_active());

    sync_now(&mut a).await;
    assert!(a.membership().epoch() > epoch, "the remaining device rotated");
    assert!(!a.membership().rotation_due());
    put(&mut a, DocId::Shared, "after", "not for the one who left").await;
    sync_now(&mut a).await;
    let result = try_sync(&mut b).await;
    assert!(matches!(result, Err(DeviceError::Revoked | DeviceError::Transport(_))), "{result:?}");
    assert!(get(&b, DocId::Shared, "after").is_none());
    // The device that left still shows what it had, and cannot edit.
    assert!(matches!(try_put(&mut b, DocId::Shared, "x", "y").await, Err(DeviceError::Revoked)));
    assert_eq!(b.local().count(ListTable::Quarantine).await.unwrap(), 0);
}

#[tokio::test]
async fn a_revocation_cutoff_below_what_a_device_applied_is_reported() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("cutoff");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let (mut a2, _, _) = pair(&mut a, &root, "alex-tablet", &relay.url, true).await;
    // B writes; A applies it; A's second device does not see it before it
    // revokes B, so its cutoff stops short of what A holds.
    put(&mut b, DocId::Shared, "late", "from sam").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert!(get(&a, DocId::Shared, "late").is_some());
    let (conn, _pushes) = sync::connect(&a2).await.unwrap();
    let target = b.id();
    sync::publish_entry(&mut a2, &conn, |d| d.revocation(target)).await.unwrap();
    sync_now(&mut a).await;
    let alarms = &a.sync_state().alarms();
    assert!(
        alarms.iter().any(
            |x| matches!(x, Alarm::PastCutoff { device, doc: DocId::Shared } if *device == target)
        ),
        "{alarms:?}"
    );
    // The change stays where it was applied.
    assert!(get(&a, DocId::Shared, "late").is_some());
}

#[tokio::test]
async fn after_a_relay_restore_both_devices_raise_the_alarm_resend_what_it_lost_and_converge() {
    let root = TempDir::new("restore");
    let database = root.path().join("relay.db");
    let backup = root.path().join("backup.db");
    let relay = TestRelay::start_on_file(&database).await;
    let addr = relay.addr;
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut a, DocId::Shared, "before", "in the backup").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;

    // A cold backup, then more work that the backup will not hold.
    relay.stop().await;
    copy_database(&database, &backup);
    let relay = TestRelay::start_at(addr, &database).await;
    put(&mut a, DocId::Shared, "x", "after the backup, from alex").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    put(&mut b, DocId::Shared, "y", "after the backup, from sam").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert!(get(&a, DocId::Shared, "y").is_some() && get(&b, DocId::Shared, "x").is_some());

    // The operator restores the backup.
    relay.stop().await;
    copy_database(&backup, &database);
    let _relay = TestRelay::start_at(addr, &database).await;
    put(&mut a, DocId::Shared, "z", "after the restore").await;
    let report = sync_now(&mut a).await;

    assert!(report.resent >= 1, "alex sends x again: {report:?}");
    let report = sync_now(&mut b).await;
    assert!(report.resent >= 1, "sam sends y again: {report:?}");
    sync_now(&mut a).await;
    for device in [&a, &b] {
        let alarms = &device.sync_state().alarms();
        assert!(
            alarms.iter().any(|x| matches!(x, Alarm::Rollback { .. } | Alarm::Rewritten { .. })),
            "{alarms:?}"
        );
    }
    assert_eq!(get(&b, DocId::Shared, "z").as_deref(), Some("after the restore"));

    // Both streams carry on without a gap: a device paired now gets it all.
    put(&mut b, DocId::Shared, "w", "later still").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    let url = a.relay().to_owned();
    let (c, _, _) = pair(&mut a, &root, "alex-tablet", &url, true).await;
    assert_eq!(heads(&c, DocId::Shared), heads(&a, DocId::Shared));
    for key in ["before", "x", "y", "z", "w"] {
        assert!(get(&c, DocId::Shared, key).is_some(), "{key} missing on a new device");
    }
    assert!(
        !c.sync_state().alarms().iter().any(|x| matches!(x, Alarm::Gap { .. })),
        "{:?}",
        c.sync_state().alarms()
    );
}

/// Sends the outbox and nothing else: what a device that has not read
/// the relay's newest envelopes does when it sends an edit.
async fn push_only(device: &mut Device) {
    let (conn, _pushes) = sync::connect(device).await.unwrap();
    sync::send_outbox(device, &conn).await.unwrap();
}

/// An honest restore from a backup, in the order that used to lose an
/// edit: Sam's change, stored after the backup while Sam had not read
/// Alex's newest, was never sent again, because after the restore the
/// relay's head and Sam's read position looked unchanged. Now Sam's device
/// keeps it unconfirmed until a page shows it, and sends it again when it
/// reads past its position without seeing it.
#[tokio::test]
async fn after_a_restore_an_edit_the_device_never_read_back_is_sent_again() {
    let root = TempDir::new("restore-unread");
    let database = root.path().join("relay.db");
    let backup = root.path().join("backup.db");
    let relay = TestRelay::start_on_file(&database).await;
    let addr = relay.addr;
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    sync_now(&mut b).await;

    relay.stop().await;
    copy_database(&database, &backup);
    let relay = TestRelay::start_at(addr, &database).await;
    put(&mut a, DocId::Shared, "a-1", "from alex, after the backup").await;
    sync_now(&mut a).await;
    // Sam has not read a-1, and only sends.
    put(&mut b, DocId::Shared, "b-1", "from sam, after the backup").await;
    push_only(&mut b).await;

    relay.stop().await;
    copy_database(&backup, &database);
    let _relay = TestRelay::start_at(addr, &database).await;
    // Alex notices first, sends a-1 again, and writes a-2 into the
    // position b-1 had.
    sync_now(&mut a).await;
    put(&mut a, DocId::Shared, "a-2", "from alex, after the restore").await;
    sync_now(&mut a).await;

    let report = sync_now(&mut b).await;
    assert!(report.resent >= 1, "sam sends b-1 again: {report:?}");
    assert_eq!(report.unconfirmed, 1, "b-1 is back, and shows up on the next page: {report:?}");
    assert!(
        b.sync_state().alarms().iter().any(|x| matches!(x, Alarm::Unconfirmed { .. })),
        "{:?}",
        b.sync_state().alarms()
    );
    let report = sync_now(&mut b).await;
    assert_eq!(report.unconfirmed, 0, "{report:?}");
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "b-1").as_deref(), Some("from sam, after the backup"));

    // Sam's later changes are not held back behind a gap.
    put(&mut b, DocId::Shared, "b-2", "later").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "b-2").as_deref(), Some("later"));
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert!(
        !a.sync_state().alarms().iter().any(|x| matches!(x, Alarm::Gap { .. })),
        "{:?}",
        a.sync_state().alarms()
    );
}

#[tokio::test]
async fn two_processes_on_one_state_directory_never_reuse_a_sequence_number() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("two-processes");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    // A second handle on the same directory, as `cove daemon` beside a
    // one-off command.
    let mut other = Device::open(a.home(), PASSPHRASE).await.unwrap();
    put(&mut other, DocId::Shared, "from the other process", "1").await;
    // The first handle's memory is stale; whatever it writes next must not
    // roll back the other's stream position.
    a.raise_alarm(Alarm::Revoked).await.unwrap();
    a.acknowledge(&[]).await.unwrap();
    put(&mut a, DocId::Shared, "from the first process", "2").await;
    put(&mut other, DocId::Shared, "from the other process again", "3").await;
    let report = sync_now(&mut a).await;
    assert_eq!(report.sent, 3, "{report:?}");
    assert!(a.sync_state().alarms().is_empty(), "{:?}", a.sync_state().alarms());
    sync_now(&mut b).await;
    assert_eq!(keys(&b, DocId::Shared).len(), 3);
    assert!(b.sync_state().alarms().is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn a_partner_whose_only_device_was_removed_comes_back_with_the_phrase() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("re-pair");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    put(&mut b, DocId::PartnerB, "need", "quiet").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let lost = b.id();
    let phrase = b.recovery_phrase().unwrap().to_string();
    sync::publish_entry(&mut a, &conn, |d| d.revocation(lost)).await.unwrap();
    // Alex cannot pair Sam's new device: only Sam's identity can.
    assert!(matches!(Invite::open(&a, false).await, Err(PairError::PartnerHasIdentity)));
    // Sam's new device, from the phrase: the old one's document carries
    // over, untouched.
    let recovered = cove_client::recovery::recover(
        &home(&root, "sam-new-phone"),
        PASSPHRASE,
        &relay.url,
        &phrase,
        "sam",
        KdfParams::default(),
    )
    .await
    .unwrap();
    let b2 = recovered.device;
    assert_eq!(b2.partner(), Partner::B);
    assert_eq!(get(&b2, DocId::PartnerB, "need").as_deref(), Some("quiet"));
    assert_eq!(heads(&a, DocId::PartnerB), heads(&b2, DocId::PartnerB));
    assert_eq!(cove_client::plan::display_name(b2.docs(), Partner::B).as_deref(), Some("sam"));
}

#[tokio::test]
async fn a_device_restored_from_an_older_copy_stops_before_reusing_a_sequence_number() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("state-behind");
    let (a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let home = a.home().clone();
    drop(a);
    let backup = root.path().join("alex-backup");
    std::fs::create_dir_all(&backup).unwrap();
    for name in ["keystore.cove", "device.db", "device.db-wal", "device.db-shm"] {
        let from = home.root().join(name);
        if from.exists() {
            std::fs::copy(&from, backup.join(name)).unwrap();
        }
    }
    let mut a = Device::open(&home, PASSPHRASE).await.unwrap();
    put(&mut a, DocId::Shared, "after the copy", "kept").await;
    sync_now(&mut a).await;
    drop(a);
    for name in ["keystore.cove", "device.db", "device.db-wal", "device.db-shm"] {
        let _ = std::fs::remove_file(home.root().join(name));
        if backup.join(name).exists() {
            std::fs::copy(backup.join(name), home.root().join(name)).unwrap();
        }
    }
    let mut a = Device::open(&home, PASSPHRASE).await.unwrap();
    sync_now(&mut a).await;
    assert!(
        a.sync_state().alarms().contains(&&Alarm::StateBehind),
        "{:?}",
        a.sync_state().alarms()
    );
    let refused = try_put(&mut a, DocId::Shared, "would reuse a number", "x").await;
    assert!(matches!(refused, Err(DeviceError::StateBehind)), "{refused:?}");
    sync_now(&mut b).await;
    assert!(b.sync_state().alarms().is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn edits_made_while_a_rotation_is_due_are_sealed_only_under_the_new_key() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("rotation-due");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let (mut a2, _, _) = pair(&mut a, &root, "alex-tablet", &relay.url, true).await;
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    let me = b.id();
    sync::publish_entry(&mut b, &conn, |d| d.revocation(me)).await.unwrap();

    // A learns that B left, but has not rotated yet.
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    sync::sync_membership(&mut a, &conn).await.unwrap();
    assert!(a.membership().rotation_due());
    let old = a.membership().epoch();
    put(&mut a, DocId::Shared, "after the leave", "for the remaining devices").await;
    assert!(a.outbox().await.unwrap().is_empty(), "nothing sealed under the key B holds");

    sync_now(&mut a).await;
    assert!(a.membership().epoch() > old);
    sync_now(&mut a2).await;
    assert_eq!(
        get(&a2, DocId::Shared, "after the leave").as_deref(),
        Some("for the remaining devices")
    );
    let (items, _, _) = conn.fetch(a.plan(), Cursor(0), 1000).await.unwrap();
    for item in &items {
        let header = envelope::header_of(&item.envelope.0).unwrap();
        if header.sender == a.id() && header.seq.0 > 2 && header.kind == Kind::Changes {
            assert!(header.epoch > old, "sealed under the old key");
        }
    }
}

#[tokio::test]
async fn pairing_completes_when_the_inviter_is_further_from_the_relay_than_the_joiner() {
    // The inviter's frames go through a proxy (one more hop); the joiner's
    // go straight. The joiner finishes first and leaves: its mailbox must
    // not be counted as abandoned, and the inviter must see success.
    let (listener, proxy_url) = Proxy::bind().await;
    let origin = proxy_url.clone();
    let relay = TestRelay::start_with(|s| {
        s.origins = vec![format!("ws://{}", s.listen), origin];
    })
    .await;
    let _proxy = Proxy::start(listener, proxy_url.clone(), &relay.url);
    let root = TempDir::new("pair-far");
    for round in 0..3 {
        let mut a = new_device(&root, &format!("alex-{round}"), &proxy_url).await;
        let (b, inviter, joiner) =
            pair(&mut a, &root, &format!("sam-{round}"), &relay.url, false).await;
        assert_eq!(inviter.safety_code, joiner.safety_code);
        assert_eq!(b.partner(), Partner::B);
    }
}

/// An edit sealed on a device that was offline while another device
/// revoked someone is sealed again under the new key before it leaves, so
/// the revoked device's keys cannot open it; and the relay refuses the old
/// bytes.
#[tokio::test]
async fn an_edit_sealed_before_a_revocation_and_sent_after_it_uses_the_new_key() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("reseal");
    let (mut a, b) = couple(&root, &relay.url, &relay.url).await;
    let (mut a2, _, _) = pair(&mut a, &root, "alex-tablet", &relay.url, true).await;
    // Offline, A's tablet writes; the edit is sealed into its outbox now.
    put(&mut a2, DocId::Shared, "later", "written while offline").await;
    let old_bytes: Vec<Vec<u8>> = a2.outbox().await.unwrap().into_iter().map(|(_, e)| e).collect();
    assert!(!old_bytes.is_empty());
    let old_epoch = envelope::header_of(&old_bytes[0]).unwrap().epoch;
    // Meanwhile A's phone removes B: a new epoch B holds no key for.
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let target = b.id();
    sync::publish_entry(&mut a, &conn, |d| d.revocation(target)).await.unwrap();
    let revocation = a.membership().member(&target).unwrap().revoked.clone().unwrap();
    assert!(revocation.epoch > old_epoch);

    // The tablet syncs: what it sends is sealed under the new key.
    sync_now(&mut a2).await;
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let (items, _, _) = conn.fetch(a.plan(), Cursor(0), 512).await.unwrap();
    let from_tablet: Vec<_> = items
        .iter()
        .filter_map(|i| envelope::header_of(&i.envelope.0).ok())
        .filter(|h| h.sender == a2.id() && h.kind == Kind::Changes && h.doc == DocId::Shared)
        .collect();
    assert!(!from_tablet.is_empty());
    for header in &from_tablet {
        assert!(header.epoch >= revocation.epoch, "sealed in {:?}", header.epoch);
    }
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "later").as_deref(), Some("written while offline"));
    // The old bytes, offered again, are refused: sealed under a key the
    // log has moved past, and not what the relay holds.
    let (conn, _pushes) = sync::connect(&a2).await.unwrap();
    let refused = conn.push(a2.plan(), &old_bytes[0]).await.unwrap_err();
    assert_eq!(refused.code(), Some(cove_shared::wire::ErrorCode::StaleEpoch), "{refused}");
}

/// The relay's count of acknowledgements it has written.
async fn acks_written(relay: &TestRelay) -> u64 {
    let metrics = cove_tests::harness::http_get(&relay.addr.to_string(), "/metrics").await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("cove_store_seconds_count{op=\"ack\"} "))
        .map_or(0, |n| n.parse().unwrap())
}

/// Each acknowledgement is a durable write at the relay, and only lets it
/// compact: a daemon acknowledges live deliveries together, on its next
/// tick, not one by one.
#[tokio::test]
async fn live_deliveries_are_acknowledged_together_within_a_second() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("acks");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    sync_now(&mut b).await;
    let (applied_tx, mut applied) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        let events = |event: &sync::Event| match event {
            sync::Event::Synced(_) => {
                let _ = applied_tx.send(0);
            }
            sync::Event::Applied(received) => {
                let _ = applied_tx.send(received.applied.iter().sum());
            }
            _ => {}
        };
        let stop = Box::pin(async {
            let _ = stop_rx.await;
        });
        let result = sync::run_daemon(&mut b, events, stop).await;
        (b, result)
    });
    // The daemon's first pass, and the acknowledgements of its pages.
    tokio::time::timeout(std::time::Duration::from_secs(10), applied.recv())
        .await
        .expect("the daemon synced");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let before = acks_written(&relay).await;

    // Twenty edits, each delivered on its own, in about half a second.
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    for n in 0..20 {
        put(&mut a, DocId::Shared, &format!("k{n}"), "v").await;
        assert_eq!(sync::send_outbox(&mut a, &conn).await.unwrap(), 1);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let mut seen = 0;
    while seen < 20 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), applied.recv())
            .await
            .expect("the daemon applied the deliveries")
            .unwrap();
        seen += n;
    }
    let during = acks_written(&relay).await - before;
    assert!(during <= 2, "{during} acknowledgements for 20 live deliveries");
    // The last is acknowledged on the next tick.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(acks_written(&relay).await > before, "no acknowledgement after a second");
    let _ = stop_tx.send(());
    let (b, result) = daemon.await.unwrap();
    result.unwrap();
    assert_eq!(get(&b, DocId::Shared, "k19").as_deref(), Some("v"));
}
