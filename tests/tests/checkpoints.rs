//! Checkpoints against a relay that withholds, forks or lies about
//! snapshots: each device's signed account of what it holds lets the other
//! side notice, and a relay that turns honest is caught up with in one pass.

use cove_client::device::{Alarm, Device};
use cove_client::sync;
use cove_shared::freshness::StreamTip;
use cove_shared::wire::Cursor;
use cove_shared::{DocId, EnvelopeHash, Seq};
use cove_tests::devices::{couple, get, heads, pair, put, sync_now};
use cove_tests::harness::{TempDir, TestRelay, copy_database};
use cove_tests::proxy::{Fault, Proxy};
use sqlx::Connection;

fn alarms(device: &Device) -> Vec<Alarm> {
    device.sync_state().alarms().into_iter().cloned().collect()
}

/// A relay, and a proxy in front of it that the relay accepts as an origin.
async fn relay_and_proxy() -> (Proxy, TestRelay) {
    let (listener, proxy_url) = Proxy::bind().await;
    let origin = proxy_url.clone();
    let relay = TestRelay::start_with(|s| {
        s.origins = vec![format!("ws://{}", s.listen), origin];
    })
    .await;
    (Proxy::start(listener, proxy_url, &relay.url), relay)
}

/// A couple whose device B reaches the relay only through the proxy.
async fn behind_proxy(name: &str) -> (Proxy, Device, Device, TestRelay, TempDir) {
    let (proxy, relay) = relay_and_proxy().await;
    let root = TempDir::new(name);
    let (mut a, mut b) = couple(&root, &relay.url, &proxy.url).await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    (proxy, a, b, relay, root)
}

/// The relay hides Alex's envelopes from Sam, and serves Sam's to Alex.
/// Sam's checkpoints say what Sam lacks, so Alex's device raises the alarm
/// within a bounded number of syncs; when the relay turns honest, one pass
/// of Sam's device takes in everything it missed, and the alarm ends.
#[tokio::test]
async fn withholding_is_noticed_within_a_few_syncs_and_one_honest_pass_heals_it() {
    let (proxy, mut a, mut b, _relay, _root) = behind_proxy("withhold").await;
    put(&mut a, DocId::Shared, "before", "seen by both").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "before").as_deref(), Some("seen by both"));

    proxy.set(Fault::Withhold(a.id()));
    let withheld = |a: &Device, b: &Device| {
        alarms(a).iter().any(|x| matches!(x, Alarm::Withheld { device, .. } if *device == b.id()))
    };
    let mut noticed_after = None;
    for round in 1..=3 {
        put(&mut a, DocId::Shared, &format!("alex-{round}"), "hidden from sam").await;
        sync_now(&mut a).await;
        put(&mut b, DocId::Shared, &format!("sam-{round}"), "served to alex").await;
        sync_now(&mut b).await;
        sync_now(&mut a).await;
        if noticed_after.is_none() && withheld(&a, &b) {
            noticed_after = Some(round);
        }
    }
    assert!(noticed_after.is_some(), "no alarm on alex's device: {:?}", alarms(&a));
    assert_eq!(get(&a, DocId::Shared, "sam-3").as_deref(), Some("served to alex"));
    assert_eq!(get(&b, DocId::Shared, "alex-1"), None, "the proxy withheld it");
    let text = alarms(&a)
        .iter()
        .find(|x| matches!(x, Alarm::Withheld { .. }))
        .map(|x| x.describe(|_| "Sam's device".into()))
        .unwrap_or_default();
    assert!(text.starts_with("Sam's device has not received your changes since "), "{text}");
    assert!(text.contains("the relay may be holding them back"), "{text}");
    let receipt = a.receipts().into_iter().next().expect("a receipt for sam's device");
    assert!(receipt.lacks_since.is_some(), "{receipt:?}");

    // Sam's own next change moves Sam's device past Alex's last checkpoint
    // too; then the relay turns honest, Alex does nothing more, and one pass
    // of Sam's device brings it up to date.
    put(&mut b, DocId::Shared, "sam-4", "served to alex").await;
    sync_now(&mut b).await;
    proxy.set(Fault::None);
    sync_now(&mut b).await;
    for round in 1..=3 {
        assert_eq!(
            get(&b, DocId::Shared, &format!("alex-{round}")).as_deref(),
            Some("hidden from sam")
        );
    }
    sync_now(&mut a).await;
    assert_eq!(heads(&a, DocId::Shared), heads(&b, DocId::Shared));
    assert!(!withheld(&a, &b), "the alarm ends once sam has it all: {:?}", alarms(&a));
    let receipt = a.receipts().into_iter().next().expect("a receipt for sam's device");
    assert_eq!(receipt.lacks_since, None, "{receipt:?}");
    assert!(receipt.text.contains("has all your changes"), "{}", receipt.text);
}

/// Receipts: once the partner's device has synced, it says it holds this
/// device's change and signal, and each one reads as seen.
#[tokio::test]
async fn receipts_say_which_changes_and_signals_the_partner_holds() {
    let (_proxy, mut a, mut b, _relay, _root) = behind_proxy("receipts").await;
    put(&mut a, DocId::Shared, "k", "v").await;
    a.signal("pause", 60_000).await.unwrap();
    sync_now(&mut a).await;
    let before = a.receipts();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].lacks_since.is_some(), "sam has not synced since: {before:?}");
    assert!(!a.sent_signals().last().expect("a sent signal").seen);

    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let after = a.receipts();
    assert!(after[0].holds_upto.is_some() && after[0].lacks_since.is_none(), "{after:?}");
    let sent = a.sent_signals();
    assert_eq!(sent.last().map(|s| (s.signal.as_str(), s.seen)), Some(("pause", true)));
}

/// The operator copies the relay's database and serves each partner from
/// its own copy; each makes a change to the list of devices there (a new
/// recovery phrase), then edits. When the operator shows Alex what Sam
/// wrote to the other copy, Alex's device names the fork instead of
/// quietly setting Sam's envelopes aside.
#[tokio::test]
async fn serving_the_partners_different_histories_is_caught_as_a_fork() {
    let root = TempDir::new("fork");
    let database = root.path().join("relay.db");
    let other = root.path().join("other.db");
    let relay = TestRelay::start_on_file(&database).await;
    let addr = relay.addr;
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    sync_now(&mut b).await;
    relay.stop().await;
    copy_database(&database, &other);

    let relay = TestRelay::start_at(addr, &database).await;
    sync::new_phrase(&mut a).await.unwrap();
    put(&mut a, DocId::Shared, "alex", "in one copy").await;
    sync_now(&mut a).await;
    relay.stop().await;

    let relay = TestRelay::start_at(addr, &other).await;
    sync::new_phrase(&mut b).await.unwrap();
    put(&mut b, DocId::Shared, "sam", "in the other copy").await;
    sync_now(&mut b).await;
    relay.stop().await;

    stitch(&other, &database, &b).await;
    let _relay = TestRelay::start_at(addr, &database).await;
    sync_now(&mut a).await;
    assert!(
        alarms(&a).iter().any(|x| matches!(x, Alarm::Diverged { device } if *device == b.id())),
        "{:?}",
        alarms(&a)
    );
    assert_eq!(get(&a, DocId::Shared, "sam"), None);
}

/// The relay hides a removal from one of Alex's devices: Alex's laptop
/// removes Sam's device, and the relay serves the tablet the list of devices
/// from before. The tablet sees the laptop's envelopes signed against the
/// longer list, says so, and keeps its edits here, unsealed and unsent, until
/// it has the whole list; then they go out.
#[tokio::test]
async fn a_device_shown_a_shorter_list_than_others_signed_against_keeps_its_edits_back() {
    let (proxy, relay) = relay_and_proxy().await;
    let root = TempDir::new("log-withheld");
    let (mut a, b) = couple(&root, &relay.url, &relay.url).await;
    let (mut tablet, _, _) = pair(&mut a, &root, "alex-tablet", &proxy.url, true).await;
    sync_now(&mut a).await;
    sync_now(&mut tablet).await;
    let known = tablet.membership().len();
    proxy.set(Fault::Rollback { head: u64::MAX, membership: known });

    let (conn, _pushes) = sync::connect(&a).await.unwrap();
    let target = b.id();
    sync::publish_entry(&mut a, &conn, |d| d.revocation(target)).await.unwrap();
    sync_now(&mut a).await;
    put(&mut a, DocId::Shared, "laptop", "after the removal").await;
    sync_now(&mut a).await;
    sync_now(&mut tablet).await;
    let withheld = |d: &Device| alarms(d).iter().any(|x| matches!(x, Alarm::LogWithheld { .. }));
    assert!(withheld(&tablet), "{:?}", alarms(&tablet));
    assert!(tablet.log_withheld());
    put(&mut tablet, DocId::Shared, "tablet", "kept back").await;
    sync_now(&mut tablet).await;
    assert_eq!(tablet.outbox().await.unwrap().len(), 0, "nothing sealed meanwhile");
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "tablet"), None);

    proxy.set(Fault::None);
    sync_now(&mut tablet).await;
    assert!(!withheld(&tablet), "{:?}", alarms(&tablet));
    assert_eq!(get(&tablet, DocId::Shared, "laptop").as_deref(), Some("after the removal"));
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "tablet").as_deref(), Some("kept back"));
    assert_eq!(tablet.membership().epoch(), a.membership().epoch());
}

/// A member device signs a snapshot that claims far more of Sam's changes
/// than it holds, or one that carries a change queued on a missing one. A
/// new device refuses it with an alarm, reads the history instead, and
/// still takes Sam's later changes.
#[tokio::test]
async fn a_snapshot_with_inflated_coverage_or_a_queued_change_is_refused_with_an_alarm() {
    for inflated in [true, false] {
        let root = TempDir::new(if inflated { "inflated" } else { "queued" });
        let relay = TestRelay::start().await;
        let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
        put(&mut b, DocId::Shared, "early", "from sam").await;
        sync_now(&mut b).await;
        sync_now(&mut a).await;
        let sam = b.id();
        let foreign = queued_change(&a);
        // Covering no position, so that the relay drops nothing.
        let forged = a
            .seal_snapshot_altered(DocId::Shared, Cursor(0), |payload| {
                if inflated {
                    let tip = StreamTip { seq: Seq(1 << 40), hash: EnvelopeHash([7; 32]) };
                    payload.coverage.insert(sam, tip);
                } else {
                    payload.document.0.extend_from_slice(&foreign);
                }
            })
            .await
            .unwrap();
        let (conn, _pushes) = sync::connect(&a).await.unwrap();
        conn.put_snapshot(a.plan(), Cursor(0), &forged).await.unwrap();

        let url = relay.url.clone();
        let (mut c, _, _) = pair(&mut a, &root, "alex-tablet", &url, true).await;
        assert!(
            alarms(&c).iter().any(|x| matches!(x, Alarm::BadSnapshot { doc: DocId::Shared })),
            "{:?}",
            alarms(&c)
        );
        let attention = c.attention().await.unwrap();
        assert_eq!(get(&c, DocId::Shared, "early").as_deref(), Some("from sam"), "{attention:?}");
        put(&mut b, DocId::Shared, "later", "from sam").await;
        sync_now(&mut b).await;
        sync_now(&mut c).await;
        assert_eq!(get(&c, DocId::Shared, "later").as_deref(), Some("from sam"), "{inflated}");
        assert_eq!(get(&c, DocId::Shared, "queued"), None);
    }
}

/// A change by a stranger to the shared document, on top of one this
/// device never made: Automerge would keep it queued inside a loaded save.
fn queued_change(device: &Device) -> Vec<u8> {
    use automerge::transaction::Transactable;
    let mut doc = device.docs().get(DocId::Shared).fork();
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "missing", "dependency").unwrap();
    tx.commit();
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "queued", "by a stranger").unwrap();
    tx.commit();
    doc.get_last_local_change().map(|c| c.raw_bytes().to_vec()).unwrap()
}

/// What an operator with both copies can do: append to `into` the
/// envelopes `device` stored only in `from`, under new positions.
async fn stitch(from: &std::path::Path, into: &std::path::Path, device: &Device) {
    let url = |p: &std::path::Path| format!("sqlite://{}", p.display());
    let mut source = sqlx::SqliteConnection::connect(&url(from)).await.unwrap();
    let mut target = sqlx::SqliteConnection::connect(&url(into)).await.unwrap();
    let sender = device.id().as_bytes().to_vec();
    type Row = (Vec<u8>, i64, i64, i64, Vec<u8>, i64, Option<i64>, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT plan, kind, seq, doc, hash, size, expires_at, body FROM envelopes
         WHERE sender = ? ORDER BY cursor",
    )
    .bind(&sender)
    .fetch_all(&mut source)
    .await
    .unwrap();
    for (plan, kind, seq, doc, hash, size, expires_at, body) in rows {
        let (head,): (i64,) = sqlx::query_as("SELECT head FROM plans WHERE id = ?")
            .bind(&plan)
            .fetch_one(&mut target)
            .await
            .unwrap();
        let added = sqlx::query(
            "INSERT INTO envelopes (plan, cursor, sender, kind, seq, doc, hash, size, expires_at, body)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&plan)
        .bind(head + 1)
        .bind(&sender)
        .bind(kind)
        .bind(seq)
        .bind(doc)
        .bind(&hash)
        .bind(size)
        .bind(expires_at)
        .bind(&body)
        .execute(&mut target)
        .await
        .unwrap();
        if added.rows_affected() == 1 {
            sqlx::query("UPDATE plans SET head = ? WHERE id = ?")
                .bind(head + 1)
                .bind(&plan)
                .execute(&mut target)
                .await
                .unwrap();
        }
    }
}
