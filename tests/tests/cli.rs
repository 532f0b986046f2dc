//! Whole scenarios through the `cove` binary, against a `cove-server`
//! process: what a person at a terminal does, and what stays private.

use cove_tests::cli::{
    Cove, next_json, pair_couple, pair_couple_with, said, said_in, sqlite_relay,
};
use cove_tests::devices::PASSPHRASE;
use cove_tests::harness::{RelayProcess, TempDir, free_port};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { out.extend(files(&path)) } else { out.push(path) }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn two_devices_through_the_cove_binary_and_the_plan_stays_private() {
    let root = TempDir::new("cli");
    let port = free_port();
    let database = root.path().join("relay.db");
    let relay_log = root.path().join("relay.log");
    let relay =
        RelayProcess::start_logged(port, &format!("sqlite://{}", database.display()), &relay_log)
            .await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));

    let joined = pair_couple(&mut alex, &mut sam, &relay.url);

    // A marker written into the plan with `cove plan`, in the shared and a
    // private document.
    const MARKER: &str = "MARKER-quiet-harbour-61f0c2";
    let added = alex.json(&["plan", "menu", "add", "--title", MARKER]);
    assert_eq!(added["sent"], true, "{added}");
    alex.json(&["plan", "need", "add", "--text", MARKER]);
    let received = sam.json(&["sync"]);
    assert!(received["received"].as_u64().unwrap() >= 2, "{received}");
    let plan = sam.json(&["plan", "show"]);
    assert_eq!(plan["menu"][0]["title"], MARKER, "{plan}");
    assert_eq!(plan["a"]["needs"][0]["text"], MARKER, "{plan}");

    // The journal stays on the device that wrote it.
    const JOURNAL: &str = "MARKER-journal-only-7d1e";
    alex.json(&["journal", "add", JOURNAL]);
    assert_eq!(alex.json(&["journal", "list"])[0]["text"], JOURNAL);
    alex.json(&["sync"]);
    sam.json(&["sync"]);
    assert_eq!(sam.json(&["journal", "list"]), serde_json::json!([]));

    let status = alex.json(&["status"]);
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["devices"].as_array().unwrap().len(), 2);
    assert_eq!(status["alarms"].as_array().unwrap().len(), 0, "{status}");
    assert_eq!(status["quarantined"].as_array().unwrap().len(), 0, "{status}");
    assert_eq!(status["quarantined_total"], 0);
    assert_eq!(status["unconfirmed"], 0, "{status}");
    let devices = sam.json(&["device", "list"]);
    let rows = devices.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&"Alex") && names.contains(&"Sam"), "{devices}");

    // A wrong passphrase gets one clear sentence.
    let error = alex.fails(&["status"], Some("not the passphrase"));
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("passphrase is not correct"), "{error}");

    // Revocation: the removed device is refused from then on.
    let sam_fingerprint = joined["fingerprint"].as_str().unwrap().to_owned();
    let revoked = alex.json(&["device", "revoke", &sam_fingerprint, "--yes"]);
    assert_eq!(revoked["fingerprint"], sam_fingerprint.as_str());
    let error = sam.fails(&["sync"], None);
    assert!(error.contains("Alex removed this device from the plan on "), "{error}");

    // Nowhere outside the devices' memory: not the relay's database, not a
    // state directory, not a log.
    let mut places: Vec<PathBuf> = files(root.path());
    places.retain(|p| p.exists());
    assert!(places.iter().any(|p| p.ends_with("relay.db")));
    assert!(places.iter().any(|p| p.ends_with("device.db")));
    for path in &places {
        let bytes = std::fs::read(path).unwrap_or_default();
        for marker in [MARKER, JOURNAL] {
            assert!(!contains(&bytes, marker.as_bytes()), "{marker} is in {}", path.display());
        }
    }
    for (who, log) in [("alex", &alex.log), ("sam", &sam.log)] {
        assert!(!log.is_empty());
        assert!(!contains(log, MARKER.as_bytes()), "the marker is in {who}'s logs");
    }
    assert!(std::fs::metadata(&relay_log).unwrap().len() > 0, "the relay logged at debug level");

    // Wiping removes this device's state, and says what it cannot reach.
    let wiped = sam.json(&["wipe", "--yes"]);
    assert!(!wiped["removed"].as_array().unwrap().is_empty());
    assert!(!sam.home.join("keystore.cove").exists());
    let error = sam.fails(&["status"], None);
    assert!(error.contains("cove init"), "{error}");
    drop(relay);
}

#[tokio::test]
async fn a_wrong_code_fails_in_both_terminals() {
    let root = TempDir::new("cli-wrong");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let mut pairing = alex.spawn_pair(&["pair", "--json"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let code = next_json(&mut lines)["code"].as_str().unwrap().to_owned();
    let (nameplate, _) = code.split_once('-').unwrap();
    let wrong = if code.ends_with("-amber") {
        format!("{nameplate}-amber-anchor")
    } else {
        format!("{nameplate}-anchor-amber")
    };
    let error = sam.fails(&["join", &relay.url, &wrong, "--name", "Sam"], None);
    assert!(error.contains("the code did not match"), "{error}");
    let output = pairing.wait_with_output().unwrap();
    assert!(!output.status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    let inviter_error = said_in(&output.stderr, &rest);
    assert!(inviter_error.contains("the code did not match"), "{inviter_error}");
    // The right code is burned too.
    let error = sam.fails(&["join", &relay.url, &code, "--name", "Sam"], None);
    assert!(
        error.contains("already been used") || error.contains("no pairing is waiting"),
        "{error}"
    );
    assert!(!sam.home.join("keystore.cove").exists());
}

/// The id a change command printed.
fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("no id in {value}")).to_owned()
}

#[tokio::test]
async fn every_plan_section_round_trips_through_the_cove_binary() {
    let root = TempDir::new("cli-plan");
    let port = free_port();
    let database = root.path().join("relay.db");
    let relay = RelayProcess::start(port, &format!("sqlite://{}", database.display()), &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    pair_couple(&mut alex, &mut sam, &relay.url);

    // Alex fills in every section; each change is sent as it is made.
    let need = alex.json(&[
        "plan",
        "need",
        "add",
        "--text",
        "Quiet and a blanket",
        "--domain",
        "physical",
        "--closeness",
        "3",
        "--environment",
        "dim light",
        "--communication",
        "few words",
    ]);
    assert_eq!(need["sent"], true, "{need}");
    let boundary = id_of(&alex.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "No talk about the session until morning",
        "--firmness",
        "hard",
        "--scope",
        "cooldown",
    ]));
    let water = id_of(&alex.json(&[
        "plan",
        "menu",
        "add",
        "--title",
        "Glass of water",
        "--category",
        "nourishment",
    ]));
    let music = id_of(&alex.json(&["plan", "menu", "add", "--title", "Soft music"]));
    let step = id_of(&alex.json(&["plan", "step", "add", "--option", &water[20..], "--for", "a"]));
    alex.json(&[
        "plan",
        "signal",
        "add",
        "--name",
        "Yellow",
        "--kind",
        "word",
        "--meaning",
        "pause",
        "--response",
        "stop and check in",
    ]);
    alex.json(&["plan", "term", "add", "--term", "drop", "--meaning", "a low mood a day later"]);
    alex.json(&["plan", "checkin", "window", "30"]);
    alex.json(&["plan", "checkin", "question", "add", "--text", "What helped you?"]);
    alex.json(&["plan", "checkin", "later", "add", "--when", "the next morning"]);
    alex.json(&["plan", "deescalation", "limit", "20"]);
    alex.json(&["plan", "deescalation", "technique", "add", "--title", "Box breathing"]);
    alex.json(&["plan", "deescalation", "space", "add", "--place", "the balcony", "--for", "a"]);

    // Sam receives it all, answers in their own document, and reorders the
    // sequence.
    sam.json(&["sync"]);
    sam.json(&["plan", "prefer", &water, "ask-me"]);
    sam.json(&["plan", "prefer", &music[22..], "no"]);
    sam.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "Ask before touching my face",
        "--firmness",
        "soft",
    ]);
    sam.json(&["plan", "step", "add", "--title", "Lie down together", "--first"]);
    sam.json(&["plan", "menu", "edit", &music, "--description", "the quiet playlist"]);
    // Sam cannot change Alex's boundary.
    let refused = sam.fails(&["plan", "boundary", "withdraw", &boundary], None);
    assert!(refused.contains("only Alex's own devices"), "{refused}");

    alex.json(&["sync"]);
    alex.json(&["plan", "menu", "archive", &music]);
    alex.json(&["plan", "menu", "restore", &music]);
    alex.json(&["plan", "boundary", "withdraw", &boundary]);
    sam.json(&["sync"]);

    let on_alex = alex.json(&["plan", "show"]);
    let on_sam = sam.json(&["plan", "show"]);
    assert_eq!(on_alex, on_sam, "both devices show the same plan");
    let plan = on_sam;
    assert_eq!(plan["a"]["needs"][0]["closeness"], 3);
    assert_eq!(plan["a"]["needs"][0]["environment"], "dim light");
    assert_eq!(plan["a"]["boundaries"][0]["status"], "withdrawn");
    assert_eq!(plan["b"]["boundaries"][0]["firmness"], "soft");
    assert_eq!(plan["b"]["preferences"][&water], "ask-me");
    assert_eq!(plan["b"]["preferences"][&music], "no");
    assert_eq!(plan["menu"][1]["description"], "the quiet playlist");
    assert_eq!(plan["menu"][1]["archived_at"], Value::Null);
    assert_eq!(plan["sequence"][0]["title"], "Lie down together");
    assert_eq!(plan["sequence"][1]["id"], step.as_str());
    assert_eq!(plan["sequence"][1]["title"], "Glass of water");
    assert_eq!(plan["sequence"][1]["for_whom"], "a");
    assert_eq!(plan["signals"][0]["name"], "Yellow", "kept as written");
    assert_eq!(plan["signals"][0]["meaning"], "pause");
    assert_eq!(plan["vocabulary"][0]["term"], "drop");
    assert_eq!(plan["checkin"]["window_minutes"], 30);
    assert_eq!(plan["checkin"]["questions"][0]["text"], "What helped you?");
    assert_eq!(plan["checkin"]["later"][0]["when"], "the next morning");
    assert_eq!(plan["deescalation"]["reflection_limit_minutes"], 20);
    assert_eq!(plan["deescalation"]["techniques"][0]["title"], "Box breathing");
    assert_eq!(plan["deescalation"]["spaces"][0]["place"], "the balcony");

    // Lists and views read the same data.
    let needs = sam.json(&["plan", "need", "list"]);
    assert_eq!(needs[0]["owner"], "A");
    let now = sam.json(&["now"]);
    assert_eq!(now["sequence"].as_array().unwrap().len(), 2);
    assert_eq!(now["b"]["ask_me"][0], "Glass of water");
    let text = sam.output(&["now"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1. Lie down together"), "{text}");
    // An id that matches nothing gets one sentence.
    let error = alex.fails(&["plan", "menu", "edit", "ZZZZZZ", "--title", "x"], None);
    assert!(error.contains("no menu option with the id"), "{error}");

    // Sessions: whose turn it is follows the log.
    let question = plan["checkin"]["questions"][0]["id"].as_str().unwrap().to_owned();
    let session = id_of(&alex.json(&[
        "session",
        "log",
        "--date",
        "2026-11-20",
        "--option",
        &water,
        "--step",
        &step,
        "--notes",
        "calm evening",
    ]));
    let listed = alex.json(&["session", "list"]);
    assert_eq!(listed["sessions"][0]["chosen_by"], "A", "A chooses first: {listed}");
    assert_eq!(listed["next_to_choose"], "B");
    let bad = alex.fails(&["session", "log", "--date", "2026-02-30"], None);
    assert!(bad.contains("not a day"), "{bad}");
    // Each partner answers in their own document.
    alex.json(&["debrief", &session, &question, "The water helped."]);
    sam.json(&["sync"]);
    sam.json(&["debrief", &session, &question, "Lying down helped."]);
    alex.json(&["sync"]);
    let debrief = alex.json(&["debrief", &session]);
    assert_eq!(debrief["a"][&question], "The water helped.");
    assert_eq!(debrief["b"][&question], "Lying down helped.");

    // Reviews: record, then what changed since, attributed; both confirm.
    alex.json(&["review", "cadence", "30"]);
    let review = id_of(&alex.json(&["review", "record", "--wins", "the sequence works"]));
    sam.json(&["sync"]);
    sam.json(&["plan", "prefer", &water, "yes"]);
    sam.json(&["review", "confirm"]);
    alex.json(&["sync"]);
    let shown = alex.json(&["review"]);
    let changes = shown["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["by"] == "B" && c["summary"].as_str().unwrap().contains("preference")),
        "{shown}"
    );
    let reviews = alex.json(&["review", "list"]);
    assert_eq!(reviews[0]["id"], review.as_str());
    let plan = alex.json(&["plan", "show"]);
    assert!(plan["a"]["confirmations"][&review].is_number(), "{plan}");
    assert!(plan["b"]["confirmations"][&review].is_number(), "{plan}");
    assert!(plan["reviews"]["next_due"].is_string());
    drop(relay);
}

#[tokio::test]
async fn a_cove_process_killed_between_its_commit_and_its_send_loses_and_duplicates_nothing() {
    let root = TempDir::new("cli-kill");
    let port = free_port();
    let database = format!("sqlite://{}", root.path().join("relay.db").display());
    let mut relay = RelayProcess::start(port, &database, &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    pair_couple(&mut alex, &mut sam, &relay.url);
    relay.kill();
    drop(relay);

    // In the relay's place, a listener that accepts and never answers: once
    // `cove` connects to it, its edit is committed and not yet sent.
    let blackhole = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut edit = alex
        .command(&["plan", "need", "add", "--text", "A glass of water within reach"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_held, _) = blackhole.accept().unwrap();
    edit.kill().unwrap();
    let status = edit.wait().unwrap();
    assert!(!status.success(), "the process was killed, not finished");
    drop(blackhole);

    let relay = RelayProcess::start(port, &database, &[]).await;
    let sent = alex.json(&["sync"]);
    assert_eq!(sent["sent"], 1, "the edit was kept in the outbox: {sent}");
    let again = alex.json(&["sync"]);
    assert_eq!(again["sent"], 0, "{again}");
    sam.json(&["sync"]);
    let plan = sam.json(&["plan", "show"]);
    let needs = plan["a"]["needs"].as_array().unwrap();
    assert_eq!(needs.len(), 1, "{plan}");
    assert_eq!(needs[0]["text"], "A glass of water within reach");
    drop(relay);
}

#[tokio::test]
async fn a_signal_reaches_the_partners_daemon_at_once_and_is_listed_until_it_expires() {
    let root = TempDir::new("cli-signal");
    let port = free_port();
    let database = format!("sqlite://{}", root.path().join("relay.db").display());
    let relay = RelayProcess::start(port, &database, &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    pair_couple(&mut alex, &mut sam, &relay.url);
    alex.json(&["plan", "signal", "add", "--name", "yellow", "--meaning", "pause"]);
    sam.json(&["sync"]);

    // Alex's daemon, printing JSON lines.
    let mut daemon = alex.spawn_pair(&["daemon", "--json"]);
    let stdout = daemon.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = lines_tx.send(value);
            }
        }
    });
    let wait_for = |event: &str| -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let value = lines.recv_timeout(left).unwrap_or_else(|_| panic!("no {event} event"));
            if value["event"] == event {
                return value;
            }
        }
    };
    wait_for("synced");

    let unknown = sam.fails(&["signal", "purple"], None);
    assert!(unknown.contains("not a signal you have agreed on"), "{unknown}");
    let sent = sam.json(&["signal", "yellow"]);
    assert_eq!(sent["sent"], true, "{sent}");
    let shown = wait_for("signal");
    assert_eq!(shown["signal"], "yellow");
    assert_eq!(shown["expired"], false);
    daemon.kill().unwrap();
    let _ = daemon.wait();

    let listed = alex.json(&["signals"]);
    assert_eq!(listed["incoming"][0]["name"], "yellow", "{listed}");
    assert_eq!(listed["incoming"][0]["meaning"], "pause what is happening");
    // The sender lists what it sent, as seen once Alex's device says, in
    // its own signed checkpoint, that it holds it; and the status says
    // what Alex's device holds of Sam's changes.
    let mine = sam.json(&["signals"]);
    assert_eq!(mine["outgoing"][0]["name"], "yellow", "{mine}");
    alex.json(&["sync"]);
    sam.json(&["sync"]);
    let mine = sam.json(&["signals"]);
    assert_eq!(mine["outgoing"][0]["progress"], "seen", "{mine}");
    let listed = sam.output(&["signals"], None);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("You sent yellow at") && listed.contains("seen: Alex's device has it"),
        "{listed}"
    );
    let status = sam.output(&["status"], None);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("Received, by each device's own signed word:"), "{status}");
    assert!(status.contains("has all your changes"), "{status}");
    drop(relay);
}

#[tokio::test]
async fn the_starter_template_exports_to_markdown_and_json_and_an_import_reproduces_the_plan() {
    let root = TempDir::new("cli-export");
    let port = free_port();
    let database = format!("sqlite://{}", root.path().join("relay.db").display());
    let relay = RelayProcess::start(port, &database, &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    let init = ["init", "--relay", relay.url.as_str(), "--name", "Alex", "--template", "starter"];
    pair_couple_with(&mut alex, &mut sam, &relay.url, &init, "Sam");

    // The template seeded every shared section.
    let plan = sam.json(&["plan", "show"]);
    for section in [
        &plan["menu"],
        &plan["sequence"],
        &plan["signals"],
        &plan["checkin"]["questions"],
        &plan["checkin"]["later"],
        &plan["deescalation"]["techniques"],
    ] {
        assert!(!section.as_array().unwrap().is_empty(), "{plan}");
    }
    assert_eq!(plan["reviews"]["cadence_days"], 30);
    assert!(plan["reviews"]["next_due"].is_string());
    let water =
        plan["menu"].as_array().unwrap().iter().find(|m| m["title"] == "A glass of water").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let question = plan["checkin"]["questions"][0]["id"].as_str().unwrap().to_owned();

    // Each partner personalises it.
    alex.json(&["plan", "need", "add", "--text", "Quiet for ten minutes", "--closeness", "2"]);
    alex.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "No questions until I have had water",
        "--scope",
        "cooldown",
    ]);
    alex.json(&["plan", "prefer", &water, "yes"]);
    alex.json(&["plan", "term", "add", "--term", "fog", "--meaning", "finding it hard to talk"]);
    alex.json(&[
        "plan",
        "deescalation",
        "space",
        "add",
        "--place",
        "the reading chair",
        "--for",
        "a",
    ]);
    sam.json(&["sync"]);
    sam.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "Please do not leave the room at once",
        "--firmness",
        "soft",
    ]);
    sam.json(&["plan", "prefer", &water, "ask-me"]);
    let session = id_of(&sam.json(&["session", "log", "--option", &water, "--notes", "gentle"]));
    sam.json(&["debrief", &session, &question, "The blanket helped."]);
    alex.json(&["sync"]);
    let review = id_of(&alex.json(&["review", "record", "--lessons", "more water"]));
    sam.json(&["sync"]);
    sam.json(&["review", "confirm", &review]);
    alex.json(&["sync"]);
    let original = alex.json(&["plan", "show"]);

    // Markdown: every section, printable.
    let md = alex.output(&["export", "--format", "md"], None);
    assert!(md.status.success());
    let md = String::from_utf8_lossy(&md.stdout);
    for heading in [
        "## Alex",
        "### Needs afterwards",
        "### Boundaries",
        "## Sam",
        "## Menu of aftercare options",
        "## Sequence",
        "## Signals",
        "## Our words",
        "## Check-in",
        "## De-escalation",
        "## Sessions",
        "## Reviews",
    ] {
        assert!(md.contains(heading), "{heading} missing from:\n{md}");
    }
    for text in [
        "Quiet for ten minutes",
        "Please do not leave the room at once",
        "| A glass of water |",
        "finding it hard to talk",
        "the reading chair",
        "more water",
        "ask-me",
        // A session's options, notes and each partner's debrief answers;
        // who confirmed a review.
        "Options used: A glass of water",
        "Notes: gentle",
        "The blanket helped.",
        "confirmed by Alex and Sam",
        "the reading chair (Alex)",
    ] {
        assert!(md.contains(text), "{text} missing from:\n{md}");
    }

    // JSON, and the raw documents.
    let json_path = root.path().join("plan.json");
    alex.json(&["export", "--format", "json", "--output", json_path.to_str().unwrap()]);
    let again =
        alex.fails(&["export", "--format", "json", "--output", json_path.to_str().unwrap()], None);
    assert!(again.contains("never overwritten"), "{again}");
    let raw = root.path().join("raw");
    alex.json(&["export", "--format", "automerge", "--output", raw.to_str().unwrap()]);
    for name in ["shared", "partner-a", "partner-b"] {
        let bytes = std::fs::read(raw.join(format!("{name}.automerge"))).unwrap();
        let doc = automerge::Automerge::load(&bytes).unwrap();
        assert!(!doc.get_heads().is_empty(), "{name}");
    }
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(exported["format"], "cove-plan");
    assert_eq!(exported["plan"], original);

    // A new couple starts from the export; each brings in their own part.
    let mut carol = Cove::new(root.path().join("carol"));
    let mut dana = Cove::new(root.path().join("dana"));
    let import =
        ["import", json_path.to_str().unwrap(), "--relay", relay.url.as_str(), "--name", "Carol"];
    pair_couple_with(&mut carol, &mut dana, &relay.url, &import, "Dana");
    dana.json(&["import", json_path.to_str().unwrap(), "--as", "b"]);
    carol.json(&["sync"]);
    dana.json(&["sync"]);
    let imported = carol.json(&["plan", "show"]);
    assert_eq!(imported, dana.json(&["plan", "show"]));
    for key in [
        "menu",
        "sequence",
        "signals",
        "vocabulary",
        "checkin",
        "deescalation",
        "sessions",
        "reviews",
    ] {
        assert_eq!(imported[key], original[key], "{key} differs");
    }
    for part in ["a", "b"] {
        for key in ["needs", "boundaries", "preferences", "debriefs", "confirmations"] {
            assert_eq!(imported[part][key], original[part][key], "{part}.{key} differs");
        }
    }
    assert_eq!(imported["a"]["display_name"], "Carol");
    // Each device brings in only its own part, and bringing it in again
    // never undoes a later choice.
    let wrong_part = dana.fails(&["import", json_path.to_str().unwrap(), "--as", "a"], None);
    assert!(wrong_part.contains("only part b"), "{wrong_part}");
    let fresh = Cove::new(root.path().join("erin"));
    let mut erin = fresh;
    let as_b = erin.fails(
        &[
            "import",
            json_path.to_str().unwrap(),
            "--relay",
            relay.url.as_str(),
            "--name",
            "Erin",
            "--as",
            "b",
        ],
        None,
    );
    assert!(as_b.contains("partner A"), "{as_b}");
    assert!(!erin.home.exists(), "nothing was made");
    dana.json(&["plan", "prefer", &water, "no"]);
    dana.json(&["import", json_path.to_str().unwrap(), "--as", "b"]);
    assert_eq!(dana.json(&["plan", "show"])["b"]["preferences"][&water], "no");
    // A file that is not an export gets one sentence.
    std::fs::write(root.path().join("not.json"), "{\"format\": \"other\", \"version\": 9}")
        .unwrap();
    let error = dana.fails(&["import", root.path().join("not.json").to_str().unwrap()], None);
    assert!(error.contains("this Cove reads 'cove-plan' version 1"), "{error}");
    drop(relay);
}

#[tokio::test]
async fn conflicts_reviews_leaving_and_deleting_through_the_cove_binary() {
    let root = TempDir::new("cli-uncouple");
    let port = free_port();
    let database = format!("sqlite://{}", root.path().join("relay.db").display());
    let relay = RelayProcess::start(port, &database, &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    pair_couple(&mut alex, &mut sam, &relay.url);

    // Alex's second device.
    let mut tablet = Cove::new(root.path().join("alex-tablet"));
    let mut pairing = alex.spawn_pair(&["pair", "--own-device", "--json", "--yes"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let code = next_json(&mut lines)["code"].as_str().unwrap().to_owned();
    let joined = tablet.json(&["join", &relay.url, &code]);
    assert_eq!(joined["safety_code"], next_json(&mut lines)["safety_code"]);
    assert!(pairing.wait().unwrap().success());

    // Alex's two devices, each offline from the other, disagree on how
    // firm a boundary is: the harder value holds, and only Alex is asked.
    let boundary = id_of(&alex.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "No tickling",
        "--firmness",
        "soft",
    ]));
    tablet.json(&["sync"]);
    alex.json(&["plan", "boundary", "edit", &boundary, "--firmness", "hard"]);
    tablet.json(&["plan", "boundary", "edit", &boundary, "--firmness", "hard"]);
    tablet.json(&["plan", "boundary", "edit", &boundary, "--firmness", "soft"]);
    for device in [&mut alex, &mut tablet, &mut sam] {
        device.json(&["sync"]);
    }
    let status = alex.json(&["status"]);
    assert_eq!(status["conflicts"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["conflicts"][0]["kept"], "hard");
    let text = alex.output(&["status"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("To resolve: 1 of your values"), "{text}");
    let show = alex.output(&["plan", "show"], None);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("To resolve") && show.contains("Your firmness for \"No tickling\" was set"),
        "{show}"
    );
    assert!(sam.json(&["status"])["conflicts"].as_array().unwrap().is_empty());
    // Alex settles it: the conflict is gone everywhere.
    alex.json(&["plan", "boundary", "edit", &boundary, "--firmness", "hard"]);
    tablet.json(&["sync"]);
    assert!(tablet.json(&["status"])["conflicts"].as_array().unwrap().is_empty());

    // A review set for today is due; a day that does not exist, or has
    // passed, is refused.
    assert!(sam.fails(&["review", "next", "2026-02-30"], None).contains("is not a day"));
    assert!(sam.fails(&["review", "next", "2026-01-05"], None).contains("is in the past"));
    let today = cove_tests::cli::today();
    sam.json(&["review", "next", &today]);
    alex.json(&["sync"]);
    assert_eq!(alex.json(&["status"])["review_due"], today.as_str());
    let text = alex.output(&["status"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("A review is due (since {today})")), "{text}");

    // Alex leaves from the tablet: both of Alex's devices are removed.
    let left = tablet.json(&["leave", "--yes"]);
    assert_eq!(left["devices_removed"], 2, "{left}");
    let refused = alex.fails(&["sync"], None);
    assert!(refused.contains("You removed this device from the plan on "), "{refused}");
    sam.json(&["sync"]);
    let alarms = sam.json(&["status"])["alarms"].to_string();
    assert!(alarms.contains("Alex left the plan"), "{alarms}");
    let devices = sam.json(&["device", "list"]);
    let active: Vec<&Value> =
        devices.as_array().unwrap().iter().filter(|d| d["active"] == true).collect();
    assert_eq!(active.len(), 1, "only Sam's device remains: {devices}");
    assert_eq!(active[0]["this_device"], true);

    // Sam deletes the plan from the relay: it is gone there, and says so.
    let deleted = sam.json(&["relay", "delete-plan", "--yes"]);
    assert!(deleted["deleted"].is_string(), "{deleted}");
    let gone = sam.fails(&["sync"], None);
    assert!(gone.contains("the relay no longer holds this plan"), "{gone}");
    // Sam's own copy stays on Sam's device until Sam wipes it.
    assert!(sam.json(&["plan", "show"])["a"]["boundaries"][0]["statement"] == "No tickling");
    let wiped = sam.json(&["wipe", "--yes"]);
    assert!(!wiped["removed"].as_array().unwrap().is_empty());
    assert!(!root.path().join("sam").join("keystore.cove").exists());
}

/// The device's disk fills up now and then: an edit that cannot be saved
/// says so in one sentence, and nothing saved before or after is lost.
#[tokio::test]
async fn a_full_disk_on_the_device_is_said_plainly_and_loses_nothing_saved() {
    let root = TempDir::new("cli-full");
    let mut alex = Cove::new(root.path().join("alex"));
    // No relay: everything stays on the device.
    alex.json(&["init", "--relay", &format!("ws://127.0.0.1:{}", free_port()), "--name", "Alex"]);
    let (mut saved, mut refused) = (Vec::new(), Vec::new());
    for i in 0..8 {
        let text = format!("A need written while the disk came and went, number {i}");
        let args = ["plan", "need", "add", "--text", text.as_str(), "--domain", "physical"];
        if i % 2 == 0 {
            alex.json(&args);
            saved.push(text);
            continue;
        }
        // No room at all.
        let output = alex.output_on_full_disk(&args, 0);
        assert!(!output.status.success(), "an edit was saved on a full disk");
        refused.push((text, String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    for (_, error) in &refused {
        let said: Vec<&str> = error.lines().filter(|l| l.starts_with("cove: ")).collect();
        assert_eq!(said.len(), 1, "one sentence: {error}");
        assert!(
            said[0].contains("this change was not saved, and everything saved before is intact"),
            "{error}"
        );
    }

    // With room again, every edit that said it was saved is there.
    let plan = alex.json(&["plan", "show"]);
    let needs = plan["a"]["needs"].to_string();
    for text in &saved {
        assert!(needs.contains(text.as_str()), "{text} was lost: {needs}");
    }
    for (text, _) in &refused {
        assert!(!needs.contains(text.as_str()), "{text} was refused, yet it is there: {needs}");
    }
    alex.json(&[
        "plan",
        "need",
        "add",
        "--text",
        "After the disk had room again",
        "--domain",
        "physical",
    ]);
}

/// `cove init` against a relay that expects another address says so, and
/// which, rather than that the relay could not be reached.
#[tokio::test]
async fn init_names_the_address_a_relay_expects() {
    let root = TempDir::new("cli-origin");
    let port = free_port();
    let database = format!("sqlite://{}", root.path().join("relay.db").display());
    let relay =
        RelayProcess::start(port, &database, &[("COVE_ORIGINS", "wss://relay.example.org")]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let output = alex.output(&["init", "--relay", &relay.url, "--name", "Alex"], None);
    assert!(output.status.success(), "the device is made anyway");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!(
            "the relay at {} expects to be reached as wss://relay.example.org",
            relay.url
        )),
        "{said}"
    );
    assert!(!said.contains("could not be reached"), "{said}");
}

/// Copies the relay's SQLite files from `from` to `to`.
fn copy_relay_database(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let source = PathBuf::from(format!("{}{suffix}", from.display()));
        let target = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&target);
        if source.exists() {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

/// An alarm through the binary: `cove status` names it with a number and
/// when it happened, `cove alarms ack` acknowledges it, and `cove alarms
/// list --history` still shows it.
#[tokio::test]
async fn an_alarm_is_listed_acknowledged_and_kept_in_the_history() {
    let root = TempDir::new("cli-alarms");
    let port = free_port();
    let path = root.path().join("relay.db");
    let backup = root.path().join("backup.db");
    let database = format!("sqlite://{}", path.display());
    let mut relay = RelayProcess::start(port, &database, &[]).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    pair_couple(&mut alex, &mut sam, &relay.url);
    alex.json(&["sync"]);
    relay.kill();
    copy_relay_database(&path, &backup);
    let mut relay = RelayProcess::start(port, &database, &[]).await;
    alex.json(&["plan", "need", "add", "--text", "A steady hand", "--domain", "physical"]);
    alex.json(&["sync"]);
    // The operator restores the backup: a rollback, as far as Alex can tell.
    relay.kill();
    copy_relay_database(&backup, &path);
    let _relay = RelayProcess::start(port, &database, &[]).await;
    alex.json(&["sync"]);

    let status = alex.json(&["status"]);
    let alarms = status["alarms"].as_array().unwrap();
    assert!(!alarms.is_empty(), "{status}");
    let id = alarms[0]["id"].as_u64().unwrap();
    assert!(alarms[0]["first_at"].as_i64().unwrap() > 0, "{status}");
    let text = String::from_utf8_lossy(&alex.output(&["status"], None).stdout).into_owned();
    assert!(text.contains(&format!("! [{id}] ")), "{text}");
    assert!(text.contains("cove alarms ack"), "{text}");

    let acked = alex.json(&["alarms", "ack", &id.to_string()]);
    assert_eq!(acked["acknowledged"], 1, "{acked}");
    let status = alex.json(&["status"]);
    assert!(
        status["alarms"].as_array().unwrap().iter().all(|a| a["id"].as_u64() != Some(id)),
        "{status}"
    );
    let listed = alex.json(&["alarms", "list", "--history"]);
    let past = listed["history"].as_array().unwrap();
    assert!(
        past.iter().any(|a| a["id"].as_u64() == Some(id) && a["acknowledged_at"].is_i64()),
        "{listed}"
    );
    let again = alex.fails(&["alarms", "ack", &id.to_string()], None);
    assert!(again.contains(&format!("no open alarm number {id}")), "{again}");
    alex.json(&["alarms", "ack", "--all"]);
    assert!(alex.json(&["alarms"])["alarms"].as_array().unwrap().is_empty());
}

/// `cove recover` on `cove`'s device with `phrase`; returns its output.
fn recover(cove: &mut Cove, relay: &str, phrase: &str) -> Output {
    let mut command = cove.command(&["recover", relay, "--json"]);
    command.env("COVE_RECOVERY_PHRASE", phrase);
    let output = command.output().unwrap_or_else(|e| panic!("cannot run cove: {e}"));
    cove.log.extend_from_slice(&output.stderr);
    output
}

/// The four steps: Alex revokes Sam's only device, then tries to
/// enrol a device as Sam and change Sam's boundaries. Before partner
/// identities, Alex's device joined as Sam and its edits were taken as
/// Sam's; now nothing Alex can make speaks for Sam, and Sam comes back
/// with the recovery phrase alone.
#[tokio::test]
async fn the_other_partner_cannot_enrol_a_device_as_you_and_you_recover_with_your_phrase() {
    let root = TempDir::new("cli-identity");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    let joined = pair_couple(&mut alex, &mut sam, &relay.url);
    let phrase = joined["recovery_phrase"].as_str().unwrap().to_owned();
    assert_eq!(phrase.split(' ').count(), 24, "{joined}");
    let boundary = id_of(&sam.json(&[
        "plan",
        "boundary",
        "add",
        "--statement",
        "Nothing new without asking first",
        "--firmness",
        "hard",
    ]));
    sam.json(&["sync"]);
    alex.json(&["sync"]);

    // 1. Alex revokes Sam's only device.
    let sam_fingerprint = joined["fingerprint"].as_str().unwrap().to_owned();
    alex.json(&["device", "revoke", &sam_fingerprint, "--yes"]);
    // 2. Alex cannot invite a device for Sam.
    let refused = alex.fails(&["pair"], None);
    assert!(refused.contains("only one of their own devices can add another"), "{refused}");
    // Nor can a device Alex controls bring an identity Alex made up: the
    // relay refuses the enrolment, so no such device ever writes.
    let forged = forged_enrolment(&alex.home).await;
    assert!(forged.contains("not certified by its partner's identity"), "{forged}");

    // 3 and 4. Sam, with no device left, recovers with the phrase alone.
    let mut phone = Cove::new(root.path().join("sam-phone"));
    let output = recover(&mut phone, &relay.url, &phrase);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}{stdout}", String::from_utf8_lossy(&output.stderr));
    let recovered: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (recovered["partner"].as_str(), &recovered["synced"]),
        (Some("B"), &Value::Bool(true))
    );
    // The whole plan is there, and Sam's boundary is exactly as Sam left it.
    let plan = phone.json(&["plan", "show"]);
    assert_eq!(plan["a"]["display_name"], "Alex", "{plan}");
    let theirs = &plan["b"]["boundaries"][0];
    assert_eq!(
        (theirs["firmness"].as_str(), theirs["status"].as_str()),
        (Some("hard"), Some("active")),
        "{plan}"
    );
    // Sam edits Sam's own boundaries from the new device; Alex's device
    // takes the edit as Sam's.
    phone.json(&["plan", "boundary", "withdraw", &boundary]);
    alex.json(&["sync"]);
    let on_alex = alex.json(&["plan", "show"]);
    assert_eq!(on_alex["b"]["boundaries"][0]["status"], "withdrawn", "{on_alex}");
    assert_eq!(alex.json(&["status"])["alarms"].as_array().unwrap().len(), 0);
    // The phrase is in no log and no file but the sealed keystores.
    for (who, log) in [("alex", &alex.log), ("sam", &sam.log), ("phone", &phone.log)] {
        assert!(!contains(log, phrase.as_bytes()), "the phrase is in {who}'s logs");
    }
    for path in files(root.path()) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(!contains(&bytes, phrase.as_bytes()), "the phrase is in {}", path.display());
    }
}

/// Alex's device makes an enrolment of a new device for partner B,
/// certified by an identity Alex made up, and offers it to the relay.
/// Returns the relay's answer.
async fn forged_enrolment(alex_home: &Path) -> String {
    let home = cove_client::home::Home::at(alex_home.to_path_buf());
    let alex = cove_client::device::Device::open(&home, PASSPHRASE).await.unwrap();
    let entry = cove_tests::devices::forged_enrolment(&alex);
    // The device's own checks refuse to make it at all.
    let cove_shared::EntryBody::AddDevice { partner, bundle, identity, certificate, .. } =
        entry.body()
    else {
        panic!("not an enrolment");
    };
    let made = alex.enrolment(*partner, bundle, identity, certificate);
    assert!(made.is_err(), "the device made an enrolment for the other partner");
    // Made by hand, with Alex's keys, it is refused by the relay.
    let (conn, _pushes) = cove_client::sync::connect(&alex).await.unwrap();
    match conn.append_membership(alex.plan(), entry.encode()).await {
        Ok(_) => panic!("the relay took an enrolment certified by the wrong partner"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_wrong_or_unknown_recovery_phrase_creates_nothing() {
    let root = TempDir::new("cli-phrase");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let init = alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let phrase = init["recovery_phrase"].as_str().unwrap().to_owned();
    let mut words: Vec<&str> = phrase.split(' ').collect();

    let mut other = Cove::new(root.path().join("other"));
    let cases = {
        let short = words[..23].join(" ");
        words.swap(0, 1);
        let swapped = words.join(" ");
        words.swap(0, 1);
        words[3] = "notaword";
        let misspelt = words.join(" ");
        let unknown = cove_shared::phrase::encode(&cove_shared::IdentitySeed::from_bytes(&[7; 32]));
        [
            (short, "has 24 words"),
            (swapped, "checksum does not match"),
            (misspelt, "is not a recovery phrase word"),
            (unknown.to_string(), "no plan on the relay"),
        ]
    };
    for (phrase, expected) in cases {
        let output = recover(&mut other, &relay.url, &phrase);
        assert!(!output.status.success());
        let error = said(&output);
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 1, "{error}");
        assert!(lines[0].contains(expected), "{error}");
        assert!(lines[0].contains("nothing was created"), "{error}");
        assert!(!other.home.join("keystore.cove").exists(), "{phrase:?} left a device behind");
    }
    // Alex's plan has one device still.
    assert_eq!(alex.json(&["device", "list"]).as_array().unwrap().len(), 1);
}

/// The inviting person says the safety codes differ: no key is wrapped for
/// the joiner, no device is added, and both sides are told.
#[tokio::test]
async fn a_safety_code_the_inviter_rejects_admits_nothing() {
    let root = TempDir::new("cli-safety");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let sam = Cove::new(root.path().join("sam"));
    alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    let mut pairing = alex
        .command(&["pair", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let code = next_json(&mut lines)["code"].as_str().unwrap().to_owned();
    let join = sam
        .command(&["join", &relay.url, &code, "--name", "Sam"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let met = next_json(&mut lines);
    assert_eq!(met["confirmed"], false, "{met}");
    std::io::Write::write_all(pairing.stdin.as_mut().unwrap(), b"no\n").unwrap();
    let inviter = pairing.wait_with_output().unwrap();
    assert!(!inviter.status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    let error = said_in(&inviter.stderr, &rest);
    assert!(error.contains("the device was not added and nothing was shared"), "{error}");
    // Both sides give the same next step, and neither a drastic one.
    assert!(error.contains("start again with `cove pair`"), "{error}");
    assert!(!error.contains("wipe") && !error.contains("revoke"), "{error}");
    let joiner = join.wait_with_output().unwrap();
    assert!(!joiner.status.success());
    let said = String::from_utf8_lossy(&joiner.stderr);
    assert!(said.contains("did not confirm the safety code"), "{said}");
    assert!(said.contains("start again with `cove pair`"), "{said}");
    assert!(!said.contains("wipe") && !said.contains("revoke"), "{said}");
    assert!(!sam.home.join("keystore.cove").exists());
    // The log holds the genesis alone: nothing was wrapped for the joiner.
    alex.json(&["sync"]);
    assert_eq!(alex.json(&["device", "list"]).as_array().unwrap().len(), 1);
    let home = cove_client::home::Home::at(alex.home.clone());
    let device = cove_client::device::Device::open(&home, PASSPHRASE).await.unwrap();
    assert_eq!(device.log().entries().len(), 1);
}

/// Devices are named, and a device that was removed, or whose partner
/// left, says so plainly instead of promising to send.
#[tokio::test]
async fn devices_have_names_and_say_where_they_stand() {
    let root = TempDir::new("cli-standing");
    let relay = sqlite_relay(&root).await;
    let mut alex = Cove::new(root.path().join("alex"));
    let mut sam = Cove::new(root.path().join("sam"));
    let init =
        alex.json(&["init", "--relay", &relay.url, "--name", "Alex", "--device", "Alex laptop"]);
    assert_eq!(init["device_name"], "Alex laptop");
    let mut pairing = alex.spawn_pair(&["pair", "--json", "--yes"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let code = next_json(&mut lines)["code"].as_str().unwrap().to_owned();
    let joined = sam.json(&["join", &relay.url, &code, "--name", "Sam", "--device", "Sam phone"]);
    assert!(pairing.wait().unwrap().success());
    let phrase = joined["recovery_phrase"].as_str().unwrap().to_owned();
    // Alex's own second device: `--name` names the device.
    let mut tablet = Cove::new(root.path().join("tablet"));
    let mut pairing = alex.spawn_pair(&["pair", "--own-device", "--json", "--yes"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let code = next_json(&mut lines)["code"].as_str().unwrap().to_owned();
    let tablet_joined = tablet.json(&["join", &relay.url, &code, "--name", "Alex tablet"]);
    assert!(pairing.wait().unwrap().success());
    assert_eq!(tablet_joined["device_name"], "Alex tablet");
    assert!(tablet_joined["recovery_phrase"].is_null(), "no new phrase for an own device");

    // Every device lists the others by name.
    alex.json(&["sync"]);
    sam.json(&["sync"]);
    let listed = sam.json(&["device", "list"]);
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().filter_map(|r| r["device_name"].as_str()).collect();
    assert_eq!(names.len(), 3, "{listed}");
    for name in ["Alex laptop", "Alex tablet", "Sam phone"] {
        assert!(names.contains(&name), "{name} missing from {listed}");
    }
    let text = String::from_utf8_lossy(&alex.output(&["device", "list"], None).stdout).into_owned();
    assert!(text.contains("Sam \"Sam phone\""), "{text}");
    tablet.json(&["device", "name", "Kitchen tablet"]);
    alex.json(&["sync"]);
    let text = String::from_utf8_lossy(&alex.output(&["device", "list"], None).stdout).into_owned();
    assert!(text.contains("\"Kitchen tablet\""), "{text}");

    // Alex removes the tablet; the tablet, not yet told, saves an edit and
    // does not promise to send it.
    let tablet_fp = tablet_joined["fingerprint"].as_str().unwrap().to_owned();
    alex.json(&["device", "revoke", &tablet_fp, "--yes"]);
    let output =
        tablet.output(&["plan", "term", "add", "--term", "rest", "--meaning", "quiet time"], None);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.contains("Saved on this device only; it will not be sent.")
            && said.contains("You removed this device from the plan on "),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = tablet.json(&["status"]);
    assert!(
        status["removal"]
            .as_str()
            .unwrap()
            .starts_with("You removed this device from the plan on "),
        "{status}"
    );

    // Sam leaves: Alex is told so, and Sam's phrase brings nobody back.
    sam.json(&["leave", "--yes"]);
    alex.json(&["sync"]);
    let alarms = alex.json(&["status"])["alarms"].clone();
    assert!(alarms.to_string().contains("Sam left the plan"), "{alarms}");
    let mut again = Cove::new(root.path().join("sam-again"));
    let output = recover(&mut again, &relay.url, &phrase);
    assert!(!output.status.success());
    let error = cove_tests::cli::said(&output);
    assert!(error.contains("no plan on the relay"), "{error}");
    let refused = alex.fails(&["pair"], None);
    assert!(refused.contains("has left this plan"), "{refused}");
}
