//! Reminders: a later check-in comes due the given hours after a session
//! is logged, a review on its day, and the partner's confirmation of a
//! review when it arrives; each is given once, and a new device does not
//! bring up confirmations that happened before it looked. `cove daemon
//! --exec` runs a command for each, with discreet words unless asked.

use cove_client::device::{Device, Reminder};
use cove_client::plan::calendar::{format_day, today};
use cove_client::plan::write::{self, Author, Field, Section};
use cove_shared::{Clock, ManualClock};
use cove_tests::cli::{Cove, pair_couple, sqlite_relay};
use cove_tests::devices::{couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;

async fn add(device: &mut Device, section: Section, fields: Vec<(&'static str, Field)>) -> String {
    let who = Author { partner: device.partner(), now_ms: device.now_ms() };
    let doc = section.doc(device.partner());
    device.edit(doc, |tx| write::add(tx, who, section, fields).map_err(Into::into)).await.unwrap()
}

#[tokio::test]
async fn check_ins_and_reviews_come_due_once_each() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("reminders");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let clock = ManualClock::now();
    a.set_clock(Arc::new(clock.clone()));
    b.set_clock(Arc::new(clock.clone()));
    assert!(a.due_reminders().await.unwrap().is_empty(), "nothing is due yet");

    let later = vec![
        ("when", Field::Str("the next morning".into())),
        ("note", Field::Str("ask how the night was".into())),
        ("after_hours", Field::Int(10)),
    ];
    add(&mut a, Section::Later, later).await;
    let day = format_day(today(clock.now_ms()));
    add(&mut a, Section::Sessions, vec![("date", Field::Str(day.clone()))]).await;
    assert!(a.due_reminders().await.unwrap().is_empty(), "not due before its hours");
    clock.advance(10 * HOUR);
    let due = a.due_reminders().await.unwrap();
    assert_eq!(
        due,
        [Reminder::Checkin {
            session_day: day,
            when: "the next morning".into(),
            note: Some("ask how the night was".into())
        }]
    );
    assert_eq!(due[0].discreet(), "Cove: a check-in is due");
    assert!(a.due_reminders().await.unwrap().is_empty(), "given once");

    // A review on its day; the partner's confirmation when it arrives.
    let due_day = format_day(today(clock.now_ms()));
    a.edit(cove_shared::DocId::Shared, |tx| {
        write::set_setting(
            tx,
            cove_client::plan::schema::shared::REVIEWS,
            "next_due",
            Field::Str(due_day.clone()),
        )
        .map_err(Into::into)
    })
    .await
    .unwrap();
    assert_eq!(a.due_reminders().await.unwrap(), [Reminder::ReviewDue { day: due_day.clone() }]);
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    // B's first look: what is due now is brought up.
    assert!(
        b.due_reminders().await.unwrap().contains(&Reminder::ReviewDue { day: due_day.clone() })
    );
    cove_client::plan::review::record(&mut b, Some("it went well".into()), None, None)
        .await
        .unwrap();
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let due = a.due_reminders().await.unwrap();
    // B recorded it (which confirms it for B): A is told it is A's to confirm.
    let told = due.iter().find(|r| matches!(r, Reminder::ReviewConfirmed { recorded: true, .. }));
    let told = told.unwrap_or_else(|| panic!("{due:?}"));
    assert!(told.detailed().contains("it waits for you to confirm it"), "{told:?}");
    assert!(!told.detailed().contains("`cove"), "each face names its own next step");
}

/// `cove daemon --exec`: the command runs for a signal and for a review
/// that is due, with words that give nothing of the plan away.
#[tokio::test]
async fn the_daemon_runs_its_exec_command_for_signals_and_reminders() {
    let root = TempDir::new("reminders-exec");
    let relay = sqlite_relay(&root).await;
    let (mut alex, mut sam) =
        (Cove::new(root.path().join("alex")), Cove::new(root.path().join("sam")));
    pair_couple(&mut alex, &mut sam, &relay.url);
    let today = cove_tests::cli::today();
    sam.json(&["review", "next", &today]);
    alex.json(&["sync"]);
    let log = root.path().join("events.log");
    let command =
        format!("printf '%s|%s\\n' \"$COVE_EVENT\" \"$COVE_TEXT\" >> '{}'", log.display());
    let mut daemon = alex
        .command(&["daemon", "--exec", &command])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !read().contains("review-due|") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    sam.json(&["signal", "pause"]);
    while !read().contains("signal|") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.kill().unwrap();
    let _ = daemon.wait();
    let events = read();
    assert!(events.contains("review-due|Cove: a review is due\n"), "{events}");
    assert!(events.contains("signal|Cove: a signal from your partner\n"), "{events}");
    assert!(!events.contains("pause"), "no plan content without --notify-content: {events}");
}
