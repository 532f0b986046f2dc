//! `cove-device-load`: how fast the device is, through a real relay.
//!
//! ```text
//! cargo run --release -p cove-tests --bin cove-device-load
//! ```
//!
//! Starts the release `cove-server` as its own process on a temporary
//! SQLite database (on disk, `synchronous = full` unless
//! `--sqlite-synchronous normal`), then measures, with the real client
//! library:
//! 1. edit-to-partner latency: two paired devices, a plan with `--history`
//!    changes, then `--edits` one-field edits on A, `--pace-ms` apart (the
//!    relay's per-device rate limit is 200 envelopes a second), each sent at
//!    once, while B runs the daemon loop; the time from the start of A's
//!    edit until B has applied and committed it;
//! 2. a new device's first load of a plan with `--load-history` changes:
//!    the plan's device uploads snapshots as it goes (every 200 changes), a
//!    new device is paired (not timed), and its first sync is timed: fetch
//!    the snapshots and the tail, verify, decrypt, apply, commit;
//! 3. with `--pairs P`, P couples at once for `--seconds S`, on a relay of
//!    their own whose per-device and per-address limits are lifted (every
//!    device connects from 127.0.0.1): each A edits as fast as the real
//!    path allows (a durable local commit, sealed, pushed, the relay's
//!    answer awaited), each B runs the daemon loop. Reported: the edits
//!    per second the Bs applied, the relay's CPU per edit and its RSS at
//!    the end, the load generator's own CPU, and every edit the relay
//!    acknowledged that a B did not apply;
//! 4. with `--only floor`, the disk alone: one page written and synced,
//!    `--edits` times, `--pace-ms` apart (see `floor.rs`).
//!
//! Every device state directory is on the same disk as the relay's. Local
//! edits are synced to disk before they count as made; received changes
//! are committed without waiting for the disk (docs/device.md, "Durability").

#[path = "device_load/floor.rs"]
mod floor;
#[path = "device_load/pairs.rs"]
mod pairs;

use clap::Parser;
use cove_client::device::Device;
use cove_client::keystore::KdfParams;
use cove_client::pairing::{self, Invite};
use cove_client::sync::{self, Event};
use cove_shared::DocId;
use cove_tests::devices::{PASSPHRASE, heads, home, keys, new_device, pair, put, sync_now};
use cove_tests::harness::{RelayProcess, TempDir, cpu_ns, free_port, workspace_binary_in};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(name = "cove-device-load")]
struct Args {
    /// Changes in the plan before the latency run.
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Edits timed in the latency run.
    #[arg(long, default_value_t = 300)]
    edits: usize,
    /// Pause between two timed edits, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Changes in the plan a new device loads.
    #[arg(long, default_value_t = 10_000)]
    load_history: usize,
    /// Times the new-device load is repeated (each with a new device).
    #[arg(long, default_value_t = 5)]
    loads: usize,
    /// SQLite durability for the relay: full or normal.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    /// Run only these phases: latency, load, pairs, floor (repeatable).
    /// The pairs phase runs only when asked for, or with --pairs; the
    /// floor phase only when asked for.
    #[arg(long, value_name = "PHASE")]
    only: Vec<String>,
    /// Couples editing at once in the pairs phase.
    #[arg(long)]
    pairs: Option<usize>,
    /// How long the pairs phase edits, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

fn wants(args: &Args, phase: &str) -> bool {
    if phase == "floor" {
        return args.only.iter().any(|p| p == phase);
    }
    if phase == "pairs" {
        return args.pairs.is_some() || args.only.iter().any(|p| p == phase);
    }
    let only_pairs = args.only.is_empty() && args.pairs.is_some();
    !only_pairs && (args.only.is_empty() || args.only.iter().any(|p| p == phase))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = TempDir::new("device-load");
    if wants(&args, "floor") {
        floor::run(&args, &dir).await?;
    }
    let server = workspace_binary_in("cove-server", "cove-server", true);
    let database = database_in(&dir, "relay");
    let env = [("COVE_SQLITE_SYNCHRONOUS", args.sqlite_synchronous.as_str())];
    let relay = RelayProcess::start_binary(&server, free_port(), &database, &env).await;
    println!(
        "relay: release cove-server, SQLite synchronous={}, {}",
        args.sqlite_synchronous, relay.url
    );
    if wants(&args, "latency") {
        latency(&args, &dir, &relay.url).await?;
    }
    if wants(&args, "load") {
        load(&args, &dir, &relay).await?;
    }
    drop(relay);
    if wants(&args, "pairs") {
        let relay = RelayProcess::start_binary(
            &server,
            free_port(),
            &database_in(&dir, "pairs"),
            &[
                ("COVE_SQLITE_SYNCHRONOUS", args.sqlite_synchronous.as_str()),
                ("COVE_LIMIT_DEVICE_RATE_PER_SEC", "1000000"),
                ("COVE_LIMIT_DEVICE_RATE_BURST", "1000000"),
                ("COVE_LIMIT_MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
                ("COVE_LIMIT_MAX_PENDING_PER_ADDRESS", "1000000"),
                ("COVE_LIMIT_PAIRING_ATTEMPTS_PER_ADDRESS", "1000000"),
            ],
        )
        .await;
        pairs::run(args.pairs.unwrap_or(10), args.seconds, &dir, &relay).await?;
    }
    Ok(())
}

fn database_in(dir: &TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(format!("{name}.db")).display())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
    );
}

async fn latency(args: &Args, dir: &TempDir, relay: &str) -> anyhow::Result<()> {
    let mut a = new_device(dir, "latency-a", relay).await;
    let (mut b, _, _) = pair(&mut a, dir, "latency-b", relay, false).await;
    for i in 0..args.history {
        put(&mut a, DocId::Shared, &format!("h{i}"), "history").await;
    }
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    println!("latency: plan with {} changes of history in the shared document", args.history);

    // B stays connected, as `cove daemon` does, and reports each change it
    // has applied and committed.
    let (applied_tx, mut applied) = mpsc::unbounded_channel::<Instant>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let daemon = tokio::spawn(async move {
        // A change arrives live, or, when the live stream has a hole
        // (this device's own checkpoint, which the relay does not echo),
        // through a fetch: both count.
        let mut connected = false;
        let events = |event: &Event| match event {
            Event::Synced(report) => {
                if connected && report.applied.iter().sum::<usize>() > 0 {
                    let _ = applied_tx.send(Instant::now());
                }
                connected = true;
                let _ = ready_tx.send(());
            }
            Event::Applied(received) if received.applied.iter().sum::<usize>() > 0 => {
                let _ = applied_tx.send(Instant::now());
            }
            _ => {}
        };
        let stop = Box::pin(async {
            let _ = stop_rx.await;
        });
        let result = sync::run_daemon(&mut b, events, stop).await;
        (b, result)
    });
    ready.recv().await;
    // The history went out faster than the relay's rate limit allows a
    // device to go on: let A's allowance refill before timing.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (conn, _pushes) = sync::connect(&a).await?;
    let mut end_to_end = Vec::with_capacity(args.edits);
    let mut local = Vec::with_capacity(args.edits);
    let pace = Duration::from_millis(args.pace_ms);
    for i in 0..args.edits {
        tokio::time::sleep(pace).await;
        let start = Instant::now();
        put(&mut a, DocId::Shared, "field", &format!("value {i}")).await;
        local.push(start.elapsed());
        sync::send_outbox(&mut a, &conn).await?;
        let arrived = tokio::time::timeout(Duration::from_secs(10), applied.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the daemon stopped"))?;
        end_to_end.push(arrived.duration_since(start));
    }
    let _ = stop_tx.send(());
    let (b, result) = daemon.await?;
    result?;
    anyhow::ensure!(heads(&a, DocId::Shared) == heads(&b, DocId::Shared), "the devices differ");
    report("edit on A (one local commit)", local);
    report("edit to partner (A's edit until B has committed it)", end_to_end);
    Ok(())
}

async fn load(args: &Args, dir: &TempDir, relay_process: &RelayProcess) -> anyhow::Result<()> {
    let relay = relay_process.url.as_str();
    let mut a = new_device(dir, "load-a", relay).await;
    let started = Instant::now();
    for i in 0..args.load_history {
        put(&mut a, DocId::Shared, &format!("k{i}"), "a value of ordinary length").await;
        if (i + 1) % 500 == 0 {
            sync_now(&mut a).await;
        }
    }
    sync_now(&mut a).await;
    println!(
        "load: plan with {} changes built in {:.1} s",
        args.load_history,
        started.elapsed().as_secs_f64()
    );

    let mut first_sync = Vec::new();
    for round in 0..args.loads {
        let name = format!("load-new-{round}");
        let invite = Invite::open(&a, true).await?;
        let code = invite.code().to_owned();
        let target = home(dir, &name);
        let (inviter, joiner) = tokio::join!(
            invite.complete(&mut a),
            pairing::enrol(&target, PASSPHRASE, relay, &code, &name, KdfParams::default(), |_| {})
        );
        inviter?;
        let (mut device, _, conn): (Device, _, _) = joiner?;
        // CPU time on both sides, to tell work from waiting.
        let cpu = || (cpu_ns(std::process::id()), cpu_ns(relay_process.child.id()));
        let (device_cpu, relay_cpu) = cpu();
        let start = Instant::now();
        let report = sync::sync_once(&mut device, &conn).await?;
        let took = start.elapsed();
        let (device_cpu_after, relay_cpu_after) = cpu();
        anyhow::ensure!(keys(&device, DocId::Shared).len() == args.load_history, "incomplete load");
        anyhow::ensure!(
            heads(&device, DocId::Shared) == heads(&a, DocId::Shared),
            "the devices differ"
        );
        println!(
            "  new device {round}: {:.1} ms (CPU: this process {:.1} ms, relay {:.1} ms), \
             {} changes applied from the tail",
            took.as_secs_f64() * 1000.0,
            device_cpu_after.saturating_sub(device_cpu) as f64 / 1e6,
            relay_cpu_after.saturating_sub(relay_cpu) as f64 / 1e6,
            report.applied.iter().sum::<usize>()
        );
        first_sync.push(took);
        sync_now(&mut a).await;
    }
    report("new device's first sync (snapshot + tail)", first_sync);
    Ok(())
}
