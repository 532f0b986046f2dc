//! What `cove` says, checked against what a person was told before: each
//! message that was wrong, unkind or unusable now says what happened and
//! what to do, in the wording of the command line.

use cove_tests::cli::{Cove, pair_couple, sqlite_relay};
use cove_tests::harness::TempDir;
use serde_json::Value;
use std::process::Stdio;

/// `cove plan show | head -1`: the reader leaves early, and `cove` ends
/// quietly with success instead of panicking on the broken pipe.
#[tokio::test]
async fn a_reader_that_leaves_early_is_no_panic() {
    let root = TempDir::new("msg-pipe");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let mut show = alex
        .command(&["plan", "show"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before `cove` has unlocked the device, so its first write
    // finds no reader.
    drop(show.stdout.take());
    let output = show.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// With `--json`, an error is one JSON line on standard output.
#[tokio::test]
async fn json_errors_are_json() {
    let root = TempDir::new("msg-json");
    let mut nobody = Cove::new(root.path().join("nobody"));
    let output = nobody.output(&["status", "--json"], None);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let error: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(error["error"].as_str().unwrap().contains("no Cove device here"), "{error}");
    assert!(error["next"].as_str().unwrap().contains("cove init"), "{error}");
}

/// A signal keeps the name the couple wrote; any case finds it.
#[tokio::test]
async fn a_signal_keeps_its_name_as_written_and_any_case_sends_it() {
    let root = TempDir::new("msg-signal-name");
    let relay = sqlite_relay(&root).await;
    let (mut alex, mut sam) =
        (Cove::new(root.path().join("alex")), Cove::new(root.path().join("sam")));
    pair_couple(&mut alex, &mut sam, &relay.url);
    alex.json(&["plan", "signal", "add", "--name", "Tap Twice", "--meaning", "pause"]);
    let signals = alex.json(&["plan", "signal", "list"]);
    assert_eq!(signals[0]["name"], "Tap Twice", "{signals}");
    let sent = alex.json(&["signal", "tap twice"]);
    assert_eq!(sent["sent"], true, "{sent}");
    sam.json(&["sync"]);
    let received = sam.json(&["signals"]);
    assert_eq!(received["incoming"][0]["name"], "Tap Twice", "{received}");
    let listed = sam.output(&["signals"], None);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("Tap Twice (pause what is happening)"), "{listed}");
}

/// Times in `--json` are Unix milliseconds, `last_sync` and `last_heard`
/// included.
#[tokio::test]
async fn every_time_in_status_is_in_milliseconds() {
    let root = TempDir::new("msg-times");
    let relay = sqlite_relay(&root).await;
    let (mut alex, mut sam) =
        (Cove::new(root.path().join("alex")), Cove::new(root.path().join("sam")));
    pair_couple(&mut alex, &mut sam, &relay.url);
    sam.json(&["sync"]);
    alex.json(&["sync"]);
    let status = alex.json(&["status"]);
    let since_2020_ms = 1_577_836_800_000_i64;
    assert!(status["last_sync"].as_i64().unwrap() > since_2020_ms, "{status}");
    let heard = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["last_heard"].as_i64())
        .unwrap_or_else(|| panic!("nothing heard: {status}"));
    assert!(heard > since_2020_ms, "{status}");
}

/// A review cannot be planned for a day that has passed.
#[tokio::test]
async fn a_review_date_in_the_past_is_refused() {
    let root = TempDir::new("msg-review");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let error = alex.fails(&["review", "next", "2020-01-01"], None);
    assert!(error.contains("2020-01-01 is in the past"), "{error}");
    assert!(error.contains("YYYY-MM-DD"), "{error}");
    let next = alex.json(&["review", "next", "2999-01-01"]);
    assert_eq!(next["sent"], true, "{next}");
}

/// An unknown id points at the command that lists them, and that command
/// exists.
#[tokio::test]
async fn an_unknown_id_names_the_real_list_command() {
    let root = TempDir::new("msg-ids");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let error = alex.fails(&["plan", "boundary", "withdraw", "ZZZZZZ"], None);
    assert!(error.contains("`cove plan boundary list` shows the ids"), "{error}");
    alex.json(&["plan", "boundary", "list"]);
}

/// The three documents `cove export --format automerge` writes can start
/// a new plan, as a JSON export can.
#[tokio::test]
async fn a_raw_automerge_export_imports() {
    let root = TempDir::new("msg-raw");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    alex.json(&["plan", "boundary", "add", "--statement", "Lights stay low", "--firmness", "hard"]);
    let raw = root.path().join("raw");
    alex.json(&["export", "--format", "automerge", "--output", raw.to_str().unwrap()]);
    let mut carol = Cove::new(root.path().join("carol"));
    let imported =
        carol.json(&["import", raw.to_str().unwrap(), "--relay", &relay.url, "--name", "Carol"]);
    assert_eq!(imported["registered"], true, "{imported}");
    assert_eq!(imported["items"], 1, "{imported}");
    let plan = carol.json(&["plan", "show"]);
    assert_eq!(plan["a"]["boundaries"][0]["statement"], "Lights stay low", "{plan}");
    assert_eq!(plan["a"]["display_name"], "Carol");
    // A directory without the documents gets one sentence.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut erin = Cove::new(root.path().join("erin"));
    let error = erin
        .fails(&["import", empty.to_str().unwrap(), "--relay", &relay.url, "--name", "Erin"], None);
    assert!(error.contains("shared.automerge"), "{error}");
}

/// A menu option's title and the check-in window, changed on both devices
/// at once: both partners are told what was kept and what was replaced,
/// and the command shown puts the replaced value back.
#[tokio::test]
async fn a_value_replaced_at_the_same_time_is_shown_to_both_and_one_command_restores_it() {
    let root = TempDir::new("msg-replaced");
    let relay = sqlite_relay(&root).await;
    let (mut alex, mut sam) =
        (Cove::new(root.path().join("alex")), Cove::new(root.path().join("sam")));
    pair_couple(&mut alex, &mut sam, &relay.url);
    let added = alex.json(&["plan", "menu", "add", "--title", "Tea"]);
    let option = added["id"].as_str().unwrap().to_owned();
    sam.json(&["sync"]);
    // Neither device has the other's change when it makes its own.
    alex.json(&["plan", "menu", "edit", &option, "--title", "Warm tea"]);
    sam.json(&["plan", "menu", "edit", &option, "--title", "Green tea"]);
    alex.json(&["plan", "checkin", "window", "45"]);
    sam.json(&["plan", "checkin", "window", "20"]);
    alex.json(&["sync"]);
    sam.json(&["sync"]);
    alex.json(&["sync"]);

    let plan = sam.json(&["plan", "show"]);
    let kept = plan["menu"][0]["title"].as_str().unwrap().to_owned();
    let lost = if kept == "Warm tea" { "Green tea" } else { "Warm tea" };
    for device in [&mut alex, &mut sam] {
        let show = printed(&device.output(&["plan", "show"], None));
        assert!(show.contains("To resolve"), "{show}");
        let expected = format!(
            "Menu option \"{kept}\", Title: changed on both devices at once: kept \"{kept}\", replaced \"{lost}\". To restore \"{lost}\": `cove plan restore-replaced "
        );
        assert!(show.contains(&expected), "{show}");
        assert!(
            show.contains(
                "Check-in window after a session (minutes): changed on both devices at once: kept "
            ),
            "{show}"
        );
        let status = printed(&device.output(&["status"], None));
        assert!(
            status.contains(
                "To resolve: 2 fields were changed on both devices at once; `cove plan show` lists"
            ),
            "{status}"
        );
    }

    // Sam runs the command as shown.
    let show = printed(&sam.output(&["plan", "show"], None));
    let line = show.lines().find(|l| l.contains("Title: changed")).unwrap();
    let command = line.split('`').nth(1).unwrap();
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let restored = sam.json(&args);
    assert_eq!(restored["sent"], true, "{restored}");
    let text = printed(&sam.output(&["plan", "checkin", "window", "30"], None));
    assert!(text.starts_with("Check-in window: 30 minutes."), "{text}");
    alex.json(&["sync"]);
    let plan = alex.json(&["plan", "show"]);
    assert_eq!(plan["menu"][0]["title"], lost, "{plan}");
    assert_eq!(plan["replaced"].as_array().unwrap().len(), 0, "{plan}");
    // Once settled, there is nothing left to restore.
    let refused = sam.fails(&args, None);
    assert!(refused.contains("is waiting to be restored"), "{refused}");
}

fn printed(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
