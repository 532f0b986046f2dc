//! The `cove` binary as a person at a terminal runs it: commands for one
//! state directory, and a couple paired through it.

use crate::devices::PASSPHRASE;
use crate::harness::{RelayProcess, TempDir, free_port, workspace_binary};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// Runs `cove` commands for one state directory and keeps what they print.
pub struct Cove {
    /// Its state directory.
    pub home: PathBuf,
    /// Everything the commands wrote to stderr (their debug logs).
    pub log: Vec<u8>,
}

impl Cove {
    /// Commands for the state directory `home`.
    pub fn new(home: PathBuf) -> Self {
        Self { home, log: Vec::new() }
    }

    /// A `cove` command for this state directory, with the test passphrase.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(workspace_binary("cove-cli", "cove"));
        command
            .args(args)
            .env("COVE_HOME", &self.home)
            .env("COVE_PASSPHRASE", PASSPHRASE)
            // No notifications on the desktop of whoever runs the tests.
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null());
        command
    }

    /// Runs a command and keeps its stderr in the log.
    pub fn output(&mut self, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut command = self.command(args);
        if let Some(p) = passphrase {
            command.env("COVE_PASSPHRASE", p);
        }
        let output = command.output().unwrap_or_else(|e| panic!("cannot run cove: {e}"));
        // What a person asked to see goes to stdout; logs and errors to
        // stderr, which must never carry the plan.
        self.log.extend_from_slice(&output.stderr);
        output
    }

    /// Runs a command that must succeed and print one JSON value.
    pub fn json(&mut self, args: &[&str]) -> Value {
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
    pub fn fails(&mut self, args: &[&str], passphrase: Option<&str>) -> String {
        let output = self.output(args, passphrase);
        assert!(!output.status.success(), "cove {args:?} should have failed");
        said(&output)
    }

    /// Runs a command whose files may not grow past `bytes`, as on a disk
    /// with that much room left (see `RelayProcess::limit_file_size`).
    pub fn output_on_full_disk(&mut self, args: &[&str], bytes: u64) -> Output {
        let plain = self.command(args);
        let mut command = Command::new("sh");
        command
            .args(["-c", "trap '' XFSZ; exec prlimit --fsize=\"$0\": -- \"$@\""])
            .arg(bytes.to_string())
            .arg(plain.get_program())
            .args(plain.get_args());
        for (key, value) in plain.get_envs() {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cove: {e}"));
        self.log.extend_from_slice(&output.stderr);
        output
    }

    /// Starts `cove pair` with its output piped.
    pub fn spawn_pair(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run cove pair: {e}"))
    }
}

/// Today, as `cove` reads it (UTC, `YYYY-MM-DD`): for commands that take a
/// day, such as `cove review next`.
pub fn today() -> String {
    let now_ms = cove_shared::clock::system().now_ms();
    cove_client::plan::calendar::format_day(cove_client::plan::calendar::today(now_ms))
}

/// The error a failed command gave, as a person reads it: its `cove: `
/// lines on stderr, or (with `--json`) its `{"error", "next"}` line on
/// stdout, in the same words.
pub fn said(output: &Output) -> String {
    said_in(&output.stderr, &String::from_utf8_lossy(&output.stdout))
}

/// As [`said`], from a command's stderr and what was read of its stdout.
pub fn said_in(stderr: &[u8], stdout: &str) -> String {
    let mut lines: Vec<String> = String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("cove: "))
        .map(str::to_owned)
        .collect();
    for line in stdout.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
        let Some(error) = value["error"].as_str() else { continue };
        match value["next"].as_str() {
            Some(next) => lines.push(format!("cove: {error}; {next}")),
            None => lines.push(format!("cove: {error}")),
        }
    }
    lines.join("\n")
}

/// Reads one JSON line from a running `cove pair --json`.
pub fn next_json(lines: &mut impl BufRead) -> Value {
    let mut line = String::new();
    lines.read_line(&mut line).unwrap_or_else(|e| panic!("read cove pair: {e}"));
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// A relay on a free port, with its SQLite database in `root`.
pub async fn sqlite_relay(root: &TempDir) -> RelayProcess {
    let database = format!("sqlite://{}", root.path().join("r.db").display());
    RelayProcess::start(free_port(), &database, &[]).await
}

/// `cove init` on Alex's device and `cove pair` / `cove join` with Sam's,
/// through the binary; returns what `join` printed.
pub fn pair_couple(alex: &mut Cove, sam: &mut Cove, relay: &str) -> Value {
    pair_couple_with(alex, sam, relay, &["init", "--relay", relay, "--name", "Alex"], "Sam")
}

/// As [`pair_couple`], with Alex's device made by `first` (`init` or
/// `import`) and Sam's name `joiner`.
pub fn pair_couple_with(
    alex: &mut Cove,
    sam: &mut Cove,
    relay: &str,
    first: &[&str],
    joiner: &str,
) -> Value {
    let init = alex.json(first);
    assert!(init["registered"] == true || init["sent"] == true, "{init}");

    // Pairing: the inviter prints the code, then the safety code (which
    // `--yes` takes as compared), then that the device was added.
    let mut pairing = alex.spawn_pair(&["pair", "--json", "--yes"]);
    let mut lines = BufReader::new(pairing.stdout.take().unwrap());
    let offer = next_json(&mut lines);
    let code = offer["code"].as_str().unwrap().to_owned();
    assert!(offer["qr"].as_str().unwrap().starts_with("cove-join:"));
    let joined = sam.json(&["join", relay, &code, "--name", joiner]);
    let paired = next_json(&mut lines);
    assert_eq!(paired["confirmed"], false, "{paired}");
    assert_eq!(joined["safety_code"], paired["safety_code"]);
    assert_eq!(next_json(&mut lines)["confirmed"], true);
    assert_eq!(joined["synced"], true, "{joined}");
    let pair_output = pairing.wait_with_output().unwrap();
    assert!(pair_output.status.success(), "{}", String::from_utf8_lossy(&pair_output.stderr));
    alex.log.extend_from_slice(&pair_output.stderr);
    joined
}
