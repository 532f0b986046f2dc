//! Signals between two real devices through a relay: a stop stands on the
//! partner's device until they answer it, even past its time to live and
//! across a restart; answers reach the sender and count as receipts; only
//! the sender's all-clear lifts a stop; a dismissed signal leaves the board.

use cove_client::device::{Device, Progress};
use cove_client::payload::Answer;
use cove_shared::ManualClock;
use cove_tests::devices::{PASSPHRASE, couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use std::sync::Arc;
use std::time::Duration;

async fn send(device: &mut Device, name: &str, ttl_ms: i64) {
    device.signal(name, ttl_ms).await.unwrap();
    sync_now(device).await;
}

#[tokio::test]
async fn a_stop_stands_until_answered_and_only_its_senders_all_clear_lifts_it() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("signals-stop");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    // Both devices read one clock that moves only when the test says.
    let clock = ManualClock::now();
    a.set_clock(Arc::new(clock.clone()));
    b.set_clock(Arc::new(clock.clone()));

    // A short time to live: the stop must outlast it on A's device.
    send(&mut b, "stop", 1500).await;
    sync_now(&mut a).await;
    let board = a.signal_board().await.unwrap();
    let stop = board.stop.clone().expect("the stop stands");
    assert!(stop.stop && stop.answer.is_none());
    assert_eq!(stop.meaning.as_deref(), Some("stop everything, now"));
    clock.advance(2000);
    put_something(&mut a).await;
    let home_a = a.home().clone();
    drop(a);
    let mut a =
        Device::open_with_clock(&home_a, PASSPHRASE, Arc::new(clock.clone())).await.unwrap();
    let board = a.signal_board().await.unwrap();
    assert!(board.stop.is_some(), "an unanswered stop outlasts its time to live and a restart");
    assert!(!board.stop.as_ref().unwrap().live);

    // B's own board: the relay was seen to store it.
    let b_board = b.signal_board().await.unwrap();
    assert!(matches!(b_board.outgoing[0].progress, Progress::Sent | Progress::Seen));

    // A acknowledges: the stop no longer stands; B sees the answer.
    a.answer_signal(stop.from, stop.sent_at, Answer::Acknowledged).await.unwrap();
    sync_now(&mut a).await;
    assert!(a.signal_board().await.unwrap().stop.is_none());
    sync_now(&mut b).await;
    let mine = &b.signal_board().await.unwrap().outgoing[0];
    assert_eq!(mine.name, "stop");
    assert_eq!(mine.progress, Progress::Acknowledged);
    assert!(
        b.sent_signals().iter().any(|s| s.signal == "stop" && s.seen),
        "an answer is a receipt"
    );

    // A cannot lift B's stop; B's all-clear does.
    send(&mut b, "stop", 60_000).await;
    sync_now(&mut a).await;
    assert!(a.signal_board().await.unwrap().stop.is_some());
    send(&mut a, "all-clear", 60_000).await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert!(a.signal_board().await.unwrap().stop.is_some(), "only the sender lifts a stop");
    assert!(b.signal_board().await.unwrap().all_clear_due);
    send(&mut b, "all-clear", 60_000).await;
    assert!(!b.signal_board().await.unwrap().all_clear_due);
    sync_now(&mut a).await;
    let board = a.signal_board().await.unwrap();
    assert!(board.stop.is_none(), "the all-clear lifted it");
    let lifted = board.incoming.iter().find(|s| s.stop).expect("still listed while current");
    assert!(lifted.lifted);

    // A dismissed signal leaves the board; the sender sees the dismissal.
    send(&mut b, "check-on-me", 60_000).await;
    sync_now(&mut a).await;
    let check = a.signal_board().await.unwrap();
    let check = check.incoming.iter().find(|s| s.name == "check-on-me").unwrap().clone();
    a.answer_signal(check.from, check.sent_at, Answer::Dismissed).await.unwrap();
    sync_now(&mut a).await;
    let board = a.signal_board().await.unwrap();
    assert!(board.incoming.iter().all(|s| s.name != "check-on-me"));
    sync_now(&mut b).await;
    let board = b.signal_board().await.unwrap();
    assert_eq!(board.outgoing[0].name, "check-on-me");
    assert_eq!(board.outgoing[0].progress, Progress::Dismissed);

    // A stop that arrives after its time to live still stands: late, it
    // is shown with when it was sent.
    send(&mut b, "stop", 1000).await;
    clock.advance(5000);
    sync_now(&mut a).await;
    let late = a.signal_board().await.unwrap().stop.expect("a late stop stands");
    assert!(!late.live);

    // Nothing in the plan can make `stop` mean less.
    let who = cove_client::plan::write::Author { partner: a.partner(), now_ms: a.now_ms() };
    let renamed = a
        .edit(cove_shared::DocId::Shared, |tx| {
            let fields = vec![
                ("name", cove_client::plan::write::Field::Str("Stop".into())),
                ("meaning", cove_client::plan::write::Field::Choice("pause")),
            ];
            cove_client::plan::write::add(
                tx,
                who,
                cove_client::plan::write::Section::Signals,
                fields,
            )
            .map_err(Into::into)
        })
        .await;
    let refused = renamed.expect_err("an agreed signal may not be called stop").to_string();
    assert!(refused.contains("every plan has already"), "{refused}");

    // A device answers only the other partner's signals.
    let own = b.id();
    let refused = b.answer_signal(own, 1, Answer::Acknowledged).await;
    assert!(refused.is_err());
}

/// Any edit, so that the device writes (and drops expired signals).
async fn put_something(device: &mut Device) {
    cove_tests::devices::put(device, cove_shared::DocId::Shared, "note", "written").await;
}

/// A signal saved while the relay is away is "waiting", never "sent".
#[tokio::test]
async fn a_signal_saved_without_a_relay_is_waiting_not_sent() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("signals-waiting");
    let (a, mut b) = couple(&root, &relay.url, &relay.url).await;
    drop(a);
    relay.stop().await;
    b.signal("pause", 60_000).await.unwrap();
    let delivery = cove_client::sync::deliver(&mut b, Duration::from_secs(2)).await;
    assert!(matches!(delivery, cove_client::sync::Delivery::NotSent(_)), "{delivery:?}");
    let board = b.signal_board().await.unwrap();
    assert_eq!(board.outgoing[0].progress, Progress::Waiting);
    assert!(board.outgoing[0].progress.words("Alex").starts_with("not sent yet"));
}
