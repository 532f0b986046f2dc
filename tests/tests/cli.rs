//! Whole scenarios through the `cove` binary, against a `cove-server`
//! process: what a person at a terminal does, and what stays private.

use cove_client::device::Device;
use cove_client::home::Home;
use cove_shared::DocId;
use cove_tests::devices::{PASSPHRASE, get, put};
use cove_tests::harness::{RelayProcess, TempDir, free_port, workspace_binary};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Runs `cove` commands for one state directory and keeps what they print.
struct Cove {
    home: PathBuf,
    log: Vec<u8>,
}

impl Cove {
    fn new(home: PathBuf) -> Self {
        Self { home, log: Vec::new() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(workspace_binary("cove-client", "cove"));
        command
            .args(args)
            .env("COVE_HOME", &self.home)
            .env("COVE_PASSPHRASE", PASSPHRASE)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null());
        command
    }

    fn output(&mut self, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut command = self.command(args);
        if let Some(p) = passphrase {
            command.env("COVE_PASSPHRASE", p);
        }
        let output = command.output().unwrap_or_else(|e| panic!("cannot run cove: {e}"));
        self.log.extend_from_slice(&output.stdout);
        self.log.extend_from_slice(&output.stderr);
        output
    }

    /// Runs a command that must succeed and print one JSON value.
    fn json(&mut self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = self.output(&with_json, None);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cove {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// Runs a command that must fail; returns what it printed on stderr,
    /// without the debug log lines.
    fn fails(&mut self, args: &[&str], passphrase: Option<&str>) -> String {
        let output = self.output(args, passphrase);
        assert!(!output.status.success(), "cove {args:?} should have failed");
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.starts_with("cove: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn_pair(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run cove pair: {e}"))
    }
}

/// Reads one JSON line from a running `cove pair --json`.
fn next_json(lines: &mut impl BufRead) -> Value {
    let mut line = String::new();
    lines.read_line(&mut line).unwrap_or_else(|e| panic!("read cove pair: {e}"));
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

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

    let init = alex.json(&["init", "--relay", &relay.url, "--name", "Alex"]);
    assert_eq!(init["registered"], true, "{init}");

    // Pairing: the inviter prints the code, then the safety code.
    let mut pairing = alex.spawn_pair(&["pair", "--json"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let offer = next_json(&mut lines);
    let code = offer["code"].as_str().unwrap().to_owned();
    assert!(offer["qr"].as_str().unwrap().starts_with("cove-join:"));
    let joined = sam.json(&["join", &relay.url, &code, "--name", "Sam"]);
    let paired = next_json(&mut lines);
    assert_eq!(joined["safety_code"], paired["safety_code"]);
    assert_eq!(joined["synced"], true, "{joined}");
    let pair_output = pairing.wait_with_output().unwrap();
    assert!(pair_output.status.success(), "{}", String::from_utf8_lossy(&pair_output.stderr));
    alex.log.extend_from_slice(&pair_output.stderr);

    // A marker written into the plan, in the shared and a private document.
    const MARKER: &str = "MARKER-quiet-harbour-61f0c2";
    {
        let mut device = Device::open(&Home::at(&alex.home), PASSPHRASE).await.unwrap();
        put(&mut device, DocId::Shared, "signal", MARKER).await;
        put(&mut device, DocId::PartnerA, "need", MARKER).await;
    }
    let sent = alex.json(&["sync"]);
    assert!(sent["sent"].as_u64().unwrap() >= 2, "{sent}");
    let received = sam.json(&["sync"]);
    assert!(received["received"].as_u64().unwrap() >= 2, "{received}");
    {
        let device = Device::open(&Home::at(&sam.home), PASSPHRASE).await.unwrap();
        assert_eq!(get(&device, DocId::Shared, "signal").as_deref(), Some(MARKER));
        assert_eq!(get(&device, DocId::PartnerA, "need").as_deref(), Some(MARKER));
    }

    let status = alex.json(&["status"]);
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["devices"].as_array().unwrap().len(), 2);
    assert_eq!(status["alarms"].as_array().unwrap().len(), 0, "{status}");
    assert_eq!(status["quarantined"], 0);
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
    assert!(error.contains("removed from the plan") || error.contains("refused"), "{error}");

    // Nowhere outside the devices' memory: not the relay's database, not a
    // state directory, not a log.
    let mut places: Vec<PathBuf> = files(root.path());
    places.retain(|p| p.exists());
    assert!(places.iter().any(|p| p.ends_with("relay.db")));
    assert!(places.iter().any(|p| p.ends_with("device.db")));
    for path in &places {
        let bytes = std::fs::read(path).unwrap_or_default();
        assert!(!contains(&bytes, MARKER.as_bytes()), "the marker is in {}", path.display());
    }
    for (who, log) in [("alex", &alex.log), ("sam", &sam.log)] {
        assert!(!log.is_empty());
        assert!(!contains(log, MARKER.as_bytes()), "the marker is in {who}'s output");
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
    let port = free_port();
    let relay =
        RelayProcess::start(port, &format!("sqlite://{}", root.path().join("r.db").display()), &[])
            .await;
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
    let inviter_error = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(inviter_error.contains("the code did not match"), "{inviter_error}");
    // The right code is burned too.
    let error = sam.fails(&["join", &relay.url, &code, "--name", "Sam"], None);
    assert!(
        error.contains("already been used") || error.contains("no pairing is waiting"),
        "{error}"
    );
    assert!(!sam.home.join("keystore.cove").exists());
}
