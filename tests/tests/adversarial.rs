//! A relay that misbehaves: it flips bits, replays, reorders, drops and
//! rolls back what it serves. The device rejects, ignores, converges,
//! reports the gap or raises the alarm, and never regresses.

use cove_client::device::{Alarm, Device};
use cove_client::localdb::ListTable;
use cove_client::sync;
use cove_shared::wire::{Cursor, StoredEnvelope};
use cove_shared::{DocId, Kind, ManualClock, envelope};
use cove_tests::devices::{couple, forged_enrolment, get, heads, put, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use cove_tests::proxy::{FakeStored, Fault, Proxy};

/// A couple whose device B reaches the relay only through the proxy.
struct Setup {
    proxy: Proxy,
    a: Device,
    b: Device,
    _relay: TestRelay,
    _root: TempDir,
}

async fn setup(name: &str) -> Setup {
    let (listener, proxy_url) = Proxy::bind().await;
    let origin = proxy_url.clone();
    let relay = TestRelay::start_with(|s| {
        s.origins = vec![format!("ws://{}", s.listen), origin];
    })
    .await;
    let proxy = Proxy::start(listener, proxy_url, &relay.url);
    let root = TempDir::new(name);
    let (a, mut b) = couple(&root, &relay.url, &proxy.url).await;
    sync_now(&mut b).await;
    Setup { proxy, a, b, _relay: relay, _root: root }
}

/// A's `changes` envelopes for the shared document, as the relay stores them.
async fn stored_from(a: &Device) -> Vec<StoredEnvelope> {
    let (conn, _pushes) = sync::connect(a).await.unwrap();
    let (items, _, _) = conn.fetch(a.plan(), Cursor(0), 1000).await.unwrap();
    items
        .into_iter()
        .filter(|i| {
            envelope::header_of(&i.envelope.0).is_ok_and(|h| {
                h.sender == a.id() && h.kind == Kind::Changes && h.doc == DocId::Shared
            })
        })
        .collect()
}

fn gaps(device: &Device) -> Vec<&Alarm> {
    device.sync_state().alarms().into_iter().filter(|a| matches!(a, Alarm::Gap { .. })).collect()
}

#[tokio::test]
async fn a_flipped_bit_is_quarantined_and_the_honest_copy_is_taken_later() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("flip").await;
    put(&mut a, DocId::Shared, "x", "first").await;
    sync_now(&mut a).await;
    let x = stored_from(&a).await.last().unwrap().cursor.0;

    proxy.set(Fault::FlipBit(vec![x]));
    let clock = ManualClock::at(1_900_000_000_000);
    b.set_clock(std::sync::Arc::new(clock.clone()));
    let report = sync_now(&mut b).await;
    assert_eq!(report.quarantined, 1);
    assert_eq!(b.quarantined(), 1);
    assert_eq!(get(&b, DocId::Shared, "x"), None, "nothing of a tampered envelope is applied");
    // A person is told which device it claims to come from, why, and when.
    let attention = b.attention().await.unwrap();
    assert_eq!(attention.quarantined.len(), 1, "{attention:?}");
    let note = &attention.quarantined[0];
    assert_eq!(note.reason, "failed verification");
    assert_eq!(note.claimed_sender.as_deref(), Some(b.device_label(&a.id()).as_str()));
    assert!(note.claimed_sender.as_deref().unwrap().starts_with("alex's device ("), "{note:?}");
    assert_eq!(note.at, 1_900_000_000_000, "when, by the device's clock");
    assert_eq!(note.cursor, x);
    b.acknowledge(&[]).await.unwrap();
    let attention = b.attention().await.unwrap();
    assert!(attention.quarantined.is_empty(), "acknowledged: {attention:?}");
    assert_eq!(attention.quarantined_total, 1, "but still counted");

    // Once the relay serves honestly again, the device notices the hole in
    // A's stream, fetches that stretch again, and converges.
    proxy.set(Fault::None);
    put(&mut a, DocId::Shared, "y", "second").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "x").as_deref(), Some("first"));
    assert_eq!(get(&b, DocId::Shared, "y").as_deref(), Some("second"));
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert!(gaps(&b).is_empty(), "{:?}", b.sync_state().alarms());
    assert_eq!(b.quarantined(), 1, "the tampered copy stays in quarantine");
}

#[tokio::test]
async fn replayed_envelopes_are_ignored() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("replay").await;
    for i in 0..3 {
        put(&mut a, DocId::Shared, &format!("k{i}"), "v").await;
    }
    sync_now(&mut a).await;
    proxy.set(Fault::Replay);
    let report = sync_now(&mut b).await;
    assert_eq!(report.applied[0], 3, "each change once");

    // Old envelopes served again as if new, under new cursors, are
    // duplicates too.
    let old = stored_from(&a).await;
    let injected: Vec<StoredEnvelope> = old
        .iter()
        .map(|i| StoredEnvelope {
            cursor: Cursor(i.cursor.0 + 1_000),
            envelope: i.envelope.clone(),
        })
        .collect();
    proxy.set(Fault::Inject(injected));
    let report = sync_now(&mut b).await;
    assert_eq!(report.applied, [0, 0, 0]);
    assert_eq!(report.quarantined, 0);
    // The made-up cursors lie beyond the head the relay itself states: the
    // device says so and does not move its cursor onto them.
    let alarms = &b.sync_state().alarms();
    assert!(matches!(alarms.as_slice(), [Alarm::Inconsistent { .. }]), "{alarms:?}");

    // Nothing stored afterwards is missed.
    put(&mut a, DocId::Shared, "later", "v").await;
    sync_now(&mut a).await;
    let report = sync_now(&mut b).await;
    assert_eq!(report.applied[0], 1);
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));

    // An old envelope served under a real, new cursor (in place of the one
    // stored there) reaches the freshness check, which knows it: a
    // duplicate, ignored, neither quarantined nor taken for a fork.
    put(&mut a, DocId::Shared, "next", "v").await;
    sync_now(&mut a).await;
    let stored = stored_from(&a).await;
    let (newest, before) = (stored[stored.len() - 1].cursor.0, stored[stored.len() - 2].cursor.0);
    proxy.set(Fault::DropAndCopy { drop: Vec::new(), copy: before, onto: vec![newest] });
    let alarms_before = b.sync_state().alarms().len();
    let report = sync_now(&mut b).await;
    assert_eq!(report.quarantined, 0);
    assert_eq!(b.sync_state().alarms().len(), alarms_before, "{:?}", b.sync_state().alarms());
    // A's checkpoint, later on the same page, names the change the copy hid:
    // the device fetched that stretch again, where the copy trick (which
    // needs the copied envelope on the same page) no longer worked.
    assert_eq!(report.applied, [1, 0, 0]);
    assert_eq!(get(&b, DocId::Shared, "next").as_deref(), Some("v"));
}

#[tokio::test]
async fn reordered_envelopes_converge() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("reorder").await;
    for i in 0..5 {
        put(&mut a, DocId::Shared, &format!("k{i}"), &format!("v{i}")).await;
    }
    sync_now(&mut a).await;
    let stored = stored_from(&a).await;
    let new: Vec<u64> = stored[stored.len() - 5..].iter().map(|i| i.cursor.0).collect();
    proxy.set(Fault::Reorder(new));
    let report = sync_now(&mut b).await;
    assert_eq!(report.applied[0], 5);
    assert_eq!(report.quarantined, 0);
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert!(b.sync_state().alarms().is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn a_dropped_envelope_is_reported_as_a_gap_until_it_arrives() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("drop").await;
    for key in ["one", "two", "three"] {
        put(&mut a, DocId::Shared, key, key).await;
    }
    sync_now(&mut a).await;
    let stored = stored_from(&a).await;
    let two = stored[stored.len() - 2].cursor.0;

    proxy.set(Fault::Drop(vec![two]));
    let report = sync_now(&mut b).await;
    assert_eq!(report.held, 1, "the change after the hole waits");
    assert_eq!(get(&b, DocId::Shared, "one").as_deref(), Some("one"));
    assert_eq!(get(&b, DocId::Shared, "two"), None);
    assert_eq!(get(&b, DocId::Shared, "three"), None);
    let gap = gaps(&b);
    assert_eq!(gap.len(), 1, "{:?}", b.sync_state().alarms());
    let a_id = a.id();
    let text = gap[0].describe(|d| if *d == a_id { "alex's device".into() } else { "?".into() });
    assert!(text.starts_with("missing changes from alex's device since "), "{text}");

    proxy.set(Fault::None);
    let report = sync_now(&mut b).await;
    assert_eq!(report.held, 0);
    assert_eq!(get(&b, DocId::Shared, "three").as_deref(), Some("three"));
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert!(gaps(&b).is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn a_rollback_raises_the_alarm_and_nothing_regresses() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("rollback").await;
    put(&mut a, DocId::Shared, "x", "kept").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    let seen = b.cursor().0;
    put(&mut a, DocId::Shared, "y", "after").await;
    sync_now(&mut a).await;

    proxy.set(Fault::Rollback { head: seen - 2, membership: 1 });
    sync_now(&mut b).await;
    let alarms = &b.sync_state().alarms();
    assert!(
        alarms.iter().any(|a| matches!(a, Alarm::Rollback { served, .. } if *served == seen - 2)),
        "{alarms:?}"
    );
    assert!(
        alarms.iter().any(|a| matches!(a, Alarm::MembershipRollback { served: 1, .. })),
        "{alarms:?}"
    );
    assert_eq!(get(&b, DocId::Shared, "x").as_deref(), Some("kept"), "nothing regresses");
    assert_eq!(b.membership().len(), 2, "the membership log does not shrink");

    // The relay comes back honest: the device carries on and catches up.
    proxy.set(Fault::None);
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "y").as_deref(), Some("after"));
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
}

#[tokio::test]
async fn a_log_rewritten_under_the_devices_cursor_is_noticed() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("rewritten").await;
    put(&mut a, DocId::Shared, "x", "kept").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    let read = b.cursor().0;

    // The relay now serves something else where the device last read.
    proxy.set(Fault::FlipBit(vec![read]));
    sync_now(&mut b).await;
    let alarms = &b.sync_state().alarms();
    assert!(alarms.contains(&&Alarm::Rewritten { cursor: read }), "{alarms:?}");
    assert_eq!(get(&b, DocId::Shared, "x").as_deref(), Some("kept"));

    proxy.set(Fault::None);
    put(&mut a, DocId::Shared, "y", "after").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
}

#[tokio::test]
async fn a_live_delivery_that_never_came_is_fetched_before_the_cursor_moves_past_it() {
    let Setup { proxy, mut a, b, _relay, _root } = setup("live-drop").await;
    let (applied_tx, mut applied) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        let mut b = b;
        let events = |event: &sync::Event| {
            if matches!(event, sync::Event::Synced(_) | sync::Event::Applied(_)) {
                let _ = applied_tx.send(());
            }
        };
        let stop = Box::pin(async {
            let _ = stop_rx.await;
        });
        let result = sync::run_daemon(&mut b, events, stop).await;
        (b, result)
    });
    applied.recv().await;

    // X's live delivery is lost; Y's arrives, with a hole before it.
    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let (_, head, _) = conn.fetch(a.plan(), Cursor(0), 1).await.unwrap();
    let next = head.0 + 1;
    proxy.set(Fault::DropLive(vec![next]));
    put(&mut a, DocId::Shared, "x", "lost on the way").await;
    sync_now(&mut a).await;
    put(&mut a, DocId::Shared, "y", "arrives").await;
    sync_now(&mut a).await;
    // The daemon handles Y's delivery (and the checkpoints around it):
    // wait until it has been quiet for a second.
    tokio::time::timeout(std::time::Duration::from_secs(10), applied.recv())
        .await
        .expect("the daemon handled the delivery");
    while tokio::time::timeout(std::time::Duration::from_secs(1), applied.recv()).await.is_ok() {}
    let _ = stop_tx.send(());
    let (b, result) = daemon.await.unwrap();
    result.unwrap();
    assert_eq!(get(&b, DocId::Shared, "x").as_deref(), Some("lost on the way"));
    assert_eq!(get(&b, DocId::Shared, "y").as_deref(), Some("arrives"));
    assert!(gaps(&b).is_empty(), "{:?}", b.sync_state().alarms());
}

#[tokio::test]
async fn what_a_relay_can_make_a_device_hold_back_stays_bounded() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("bounded").await;
    for key in ["one", "two", "three", "four", "five"] {
        put(&mut a, DocId::Shared, key, key).await;
    }
    sync_now(&mut a).await;
    let c: Vec<u64> = stored_from(&a).await.iter().rev().take(4).map(|i| i.cursor.0).collect();
    let (two, three, four, five) = (c[3], c[2], c[1], c[0]);
    // "two" never comes; "three" is served again in place of "four" and
    // "five", and again at every sync: it is held once.
    proxy.set(Fault::DropAndCopy { drop: vec![two], copy: three, onto: vec![four, five] });
    for _ in 0..3 {
        sync_now(&mut b).await;
    }
    assert_eq!(b.local().count(ListTable::Pending).await.unwrap(), 1);
    proxy.set(Fault::None);
    sync_now(&mut b).await;
    assert_eq!(b.local().count(ListTable::Pending).await.unwrap(), 0);
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
}

/// A relay that answers "stored" and drops the push, before and after a
/// rollback alarm, or claims the push was already stored at cursor 1: the
/// edit stays on the device, unconfirmed, and is sent again until a page
/// shows it; once the relay turns honest, the partner gets it.
#[tokio::test]
async fn a_relay_that_lies_about_storing_loses_no_edit() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("lying").await;
    put(&mut a, DocId::Shared, "warm-up", "x").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    let head = b.relay_head().0;
    let lost =
        |b: &Device| b.sync_state().alarms().iter().any(|x| matches!(x, Alarm::Unconfirmed { .. }));

    put(&mut b, DocId::Shared, "kept", "from sam").await;
    proxy.fake_pushes(Some(FakeStored { cursor: head + 1, duplicate: false }));
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    assert!(
        !sync::send_and_confirm(&mut b, &conn).await.unwrap(),
        "a relay's word alone is not a confirmation"
    );
    drop(conn);
    assert!(lost(&b), "{:?}", b.sync_state().alarms());
    let report = sync_now(&mut b).await;
    assert_eq!(report.unconfirmed, 1, "{report:?}");

    // A rollback alarm in between, still dropping pushes; then a lie
    // about an old position.
    proxy.set(Fault::Rollback { head: 1, membership: 3 });
    sync_now(&mut b).await;
    proxy.set(Fault::None);
    proxy.fake_pushes(Some(FakeStored { cursor: 1, duplicate: true }));
    let report = sync_now(&mut b).await;
    assert_eq!(report.unconfirmed, 1, "{report:?}");
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "kept"), None, "the relay never had it");

    // Honest again: the edit is sent, shown, and reaches the partner.
    proxy.fake_pushes(None);
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    assert!(sync::send_and_confirm(&mut b, &conn).await.unwrap());
    drop(conn);
    assert_eq!(b.unconfirmed_count().await.unwrap(), 0);
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "kept").as_deref(), Some("from sam"));
    put(&mut b, DocId::Shared, "after", "more").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
}

/// A page labelled with another plan's id is not taken as this plan's.
#[tokio::test]
async fn a_page_for_another_plan_is_refused() {
    let Setup { proxy, mut a, mut b, _relay, _root } = setup("wrong-plan").await;
    put(&mut a, DocId::Shared, "x", "for this plan").await;
    sync_now(&mut a).await;
    proxy.set(Fault::WrongPlan(cove_shared::PlanId::from_bytes([7; 16])));
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    let result = sync::sync_once(&mut b, &conn).await;
    assert!(result.is_err(), "{result:?}");
    assert!(get(&b, DocId::Shared, "x").is_none());
    proxy.set(Fault::None);
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "x").as_deref(), Some("for this plan"));
}

/// The relay's "revoked" frame for a device the signed log still lists:
/// the device keeps working, and says the relay claimed something false.
#[tokio::test]
async fn an_unsigned_revoked_claim_leaves_the_device_working_and_is_reported() {
    let Setup { proxy, mut a, b, _relay, _root } = setup("false-revoked").await;
    let plan = a.plan();
    let (synced_tx, mut synced) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        let mut b = b;
        // A full sync pass: the first, and each after a reconnection.
        let events = |event: &sync::Event| {
            if matches!(event, sync::Event::Synced(_)) {
                let _ = synced_tx.send(());
            }
        };
        let stop = Box::pin(async {
            let _ = stop_rx.await;
        });
        let result = sync::run_daemon(&mut b, events, stop).await;
        (b, result)
    });
    synced.recv().await;
    proxy.set(Fault::ClaimRevoked(plan));
    put(&mut a, DocId::Shared, "after", "the claim").await;
    sync_now(&mut a).await;
    // The claim comes with the live delivery; the daemon reconnects, checks
    // the signed log, and syncs again instead of stopping.
    tokio::time::timeout(std::time::Duration::from_secs(20), synced.recv())
        .await
        .expect("the daemon synced again after the claim");
    let _ = stop_tx.send(());
    let (b, result) = daemon.await.unwrap();
    result.unwrap();
    assert!(b.is_active());
    assert_eq!(get(&b, DocId::Shared, "after").as_deref(), Some("the claim"));
    assert!(
        b.sync_state().alarms().iter().any(|a| matches!(a, Alarm::FalseRemoval)),
        "{:?}",
        b.sync_state().alarms()
    );
}

/// A forged membership entry (a device for B, certified by an identity A
/// made up, signed by A's device) served by the relay is refused with an
/// alarm, and the honest log served afterwards is not taken for a shorter one.
#[tokio::test]
async fn a_forged_entry_is_reported_once_and_the_honest_log_is_not_called_short() {
    let Setup { proxy, a, mut b, _relay, _root } = setup("forged-entry").await;
    let forged = forged_enrolment(&a);
    proxy.set(Fault::ExtraEntry(forged.encode().to_vec()));
    let (conn, _pushes) = sync::connect(&b).await.unwrap();
    assert!(sync::sync_once(&mut b, &conn).await.is_err());
    let alarms = |b: &Device| b.sync_state().alarms().into_iter().cloned().collect::<Vec<_>>();
    assert!(alarms(&b).iter().any(|a| matches!(a, Alarm::RefusedEntry { .. })), "{:?}", alarms(&b));
    proxy.set(Fault::None);
    sync_now(&mut b).await;
    assert!(
        !alarms(&b).iter().any(|a| matches!(a, Alarm::MembershipRollback { .. })),
        "{:?}",
        alarms(&b)
    );
}
