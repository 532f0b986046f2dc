//! `cove-load`: the relay under load, beside a bare WebSocket forwarder.
//!
//! ```text
//! cargo run --release -p cove-tests --bin cove-load
//! ```
//!
//! Starts the release `cove-server` as its own process on a temporary
//! SQLite database, then measures:
//! 1. throughput: N devices in N/2 plans push pre-sealed envelopes (1 KiB
//!    padding bucket) as fast as the relay takes them, each with a window of
//!    requests in flight; every envelope is delivered live to the partner;
//! 2. latency at a fixed rate (1,000 envelopes a second by default);
//! 3. the ceiling: a bare WebSocket forwarder (no authentication, no
//!    storage), run as its own process, with the same connections and sizes;
//! 4. the relay's resident memory per idle authenticated connection.
//!
//! Envelopes are sealed before timing starts, so the devices' signing does
//! not compete with the relay for the machine's cores.

use clap::{Parser, Subcommand};
use cove_client::transport::{Push, RelayConnection};
use cove_shared::{DeviceId, DeviceSecret, DocId, Header, Kind, OsEntropy};
use cove_tests::harness::{RelayProcess, TempDir, TestPlan, free_port, workspace_binary_in};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Payload that fills the 1 KiB padding bucket (1,024 − 4 length bytes).
const PAYLOAD: usize = 1020;

#[derive(Debug, Parser)]
#[command(name = "cove-load")]
struct Args {
    /// Devices (two per plan).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Envelopes each device pushes in the throughput run.
    #[arg(long, default_value_t = 500)]
    envelopes: usize,
    /// Pushes each device keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Total envelopes a second in the latency run.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Length of the latency run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Idle connections for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// SQLite durability for the relay: full or normal.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    /// Run only these phases: throughput, paced, forwarder, idle (repeatable).
    #[arg(long, value_name = "PHASE")]
    only: Vec<String>,
    /// Extra relay settings, as COVE_NAME=VALUE (repeatable).
    #[arg(long = "relay-env", value_name = "NAME=VALUE")]
    relay_env: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run only the bare WebSocket forwarder (used by the benchmark itself).
    Forwarder {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
    },
}

#[derive(Debug, Default)]
struct Latencies(Vec<u32>);

/// A receiver task: latencies in µs, the last delivery, and its push channel.
type Receiver = tokio::task::JoinHandle<(Vec<u32>, Instant, mpsc::Receiver<Push>)>;

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.0[i]) / 1000.0
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(Command::Forwarder { listen }) = &args.command {
        return runtime.block_on(forwarder(listen.clone()));
    }
    runtime.block_on(run(args))
}

/// A relay process on its own temporary SQLite database.
struct Relay {
    process: RelayProcess,
    dir: TempDir,
}

async fn relay(args: &Args) -> anyhow::Result<Relay> {
    let server = workspace_binary_in("cove-server", "cove-server", true);
    let dir = TempDir::new("load");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    // Measure capacity, not the per-device limits, nor the per-address
    // ones: every simulated device connects from 127.0.0.1.
    let mut env = vec![
        ("COVE_LIMIT_DEVICE_RATE_PER_SEC", "1000000"),
        ("COVE_LIMIT_DEVICE_RATE_BURST", "1000000"),
        ("COVE_LIMIT_MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
        ("COVE_LIMIT_MAX_PENDING_PER_ADDRESS", "1000000"),
        ("COVE_SQLITE_SYNCHRONOUS", args.sqlite_synchronous.as_str()),
    ];
    for pair in &args.relay_env {
        let (name, value) =
            pair.split_once('=').ok_or_else(|| anyhow::anyhow!("--relay-env wants NAME=VALUE"))?;
        env.push((name, value));
    }
    let process = RelayProcess::start_binary(&server, free_port(), &database, &env).await;
    Ok(Relay { process, dir })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let wants = |phase: &str| args.only.is_empty() || args.only.iter().any(|p| p == phase);
    println!(
        "relay: release cove-server, SQLite synchronous={}, {} devices in {} plans",
        args.sqlite_synchronous,
        args.devices,
        args.devices / 2
    );
    let mut stored = None;
    if wants("throughput") {
        stored = Some(throughput(&args).await?);
    }
    if wants("paced") {
        paced(&args).await?;
    }
    if wants("forwarder") {
        let bare = bare_forwarder(args.devices, args.envelopes).await?;
        match stored {
            Some(stored) => println!(
                "bare forwarder: {bare:.0} messages/s; the relay stores at {:.0}% of it",
                100.0 * stored / bare
            ),
            None => println!("bare forwarder: {bare:.0} messages/s"),
        }
    }
    if wants("idle") {
        let relay = relay(&args).await?;
        let (per_connection, total) = idle_memory(&relay.process, args.idle).await;
        println!(
            "idle: {} authenticated connections hold {:.1} MiB more relay RSS: {per_connection:.1} KiB each",
            args.idle,
            total as f64 / 1024.0
        );
    }
    Ok(())
}

/// Saturates a fresh relay; returns envelopes stored per second.
async fn throughput(args: &Args) -> anyhow::Result<f64> {
    let relay = relay(args).await?;
    let mut fleet = Fleet::connect(&relay.process.url, args.devices / 2).await;
    let (cpu_before, own_before) = (relay.process.cpu_seconds().unwrap_or(0.0), own_cpu());
    let (stored, forwarded, mut latency) = fleet.throughput(args.envelopes, args.window).await;
    let total = (args.envelopes * args.devices) as f64;
    let relay_cpu = relay.process.cpu_seconds().unwrap_or(0.0) - cpu_before;
    let own = own_cpu() - own_before;
    println!(
        "throughput: {total} envelopes; stored {stored:.0}/s; forwarded {forwarded:.0}/s; delivery latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latency.percentile(0.5),
        latency.percentile(0.99),
        latency.percentile(1.0),
    );
    println!(
        "cpu: relay {:.0} µs per envelope ({relay_cpu:.1} s), load generator {:.0} µs per envelope ({own:.1} s)",
        relay_cpu * 1e6 / total,
        own * 1e6 / total,
    );
    let metrics =
        cove_tests::harness::http_get(&relay.process.http, "/metrics").await.unwrap_or_default();
    let batches: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cove_append_batches_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "group commit: {batches} batches, {:.1} envelopes per batch on average",
        total / batches
    );
    println!("write-ahead log after the run: {:.1} MiB", wal_mib(&relay));
    Ok(stored)
}

/// A fresh relay at a fixed rate: delivery latency.
async fn paced(args: &Args) -> anyhow::Result<()> {
    let relay = relay(args).await?;
    let mut fleet = Fleet::connect(&relay.process.url, args.devices / 2).await;
    let mut latency = fleet.paced(args.rate, Duration::from_secs(args.seconds)).await;
    println!(
        "paced {} envelopes/s for {} s: delivery latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} delivered); write-ahead log {:.1} MiB",
        args.rate,
        args.seconds,
        latency.percentile(0.5),
        latency.percentile(0.99),
        latency.percentile(1.0),
        latency.0.len(),
        wal_mib(&relay),
    );
    Ok(())
}

fn wal_mib(relay: &Relay) -> f64 {
    let wal =
        std::fs::metadata(relay.dir.path().join("relay.db-wal")).map(|m| m.len()).unwrap_or(0);
    wal as f64 / (1024.0 * 1024.0)
}

/// Every device of the run, connected and subscribed.
struct Fleet {
    plans: Vec<TestPlan>,
    /// (connection, plan index, is partner A)
    devices: Vec<(RelayConnection, usize, DeviceId)>,
    pushes: Vec<mpsc::Receiver<Push>>,
    index: Arc<HashMap<DeviceId, usize>>,
}

impl Fleet {
    async fn connect(url: &str, plans: usize) -> Self {
        let mut fleet = Self {
            plans: Vec::new(),
            devices: Vec::new(),
            pushes: Vec::new(),
            index: Arc::default(),
        };
        let mut index = HashMap::new();
        for p in 0..plans {
            let plan = TestPlan::new();
            let (a, a_pushes) = RelayConnection::connect(url, &plan.a).await.expect("connect a");
            plan.register(&a).await;
            let (b, b_pushes) = RelayConnection::connect(url, &plan.b).await.expect("connect b");
            a.subscribe(plan.plan).await.expect("subscribe");
            b.subscribe(plan.plan).await.expect("subscribe");
            for (conn, pushes, id) in [(a, a_pushes, plan.a.id()), (b, b_pushes, plan.b.id())] {
                index.insert(id, fleet.devices.len());
                fleet.devices.push((conn, p, id));
                fleet.pushes.push(pushes);
            }
            fleet.plans.push(plan);
        }
        fleet.index = Arc::new(index);
        fleet
    }

    /// Seals `n` envelopes for each device, in device order.
    fn seal(&mut self, n: usize) -> Vec<Arc<Vec<Vec<u8>>>> {
        let payload = vec![0x5a; PAYLOAD];
        self.devices
            .iter()
            .map(|(_, p, id)| {
                let plan = &mut self.plans[*p];
                let device = if *id == plan.a.id() { copy(&plan.a) } else { copy(&plan.b) };
                Arc::new(
                    (0..n)
                        .map(|_| plan.seal(&device, Kind::Changes, DocId::Shared, &payload))
                        .collect(),
                )
            })
            .collect()
    }

    /// Starts one receiver per device that records delivery latency until it
    /// has seen `expected` envelopes from its partner.
    fn receivers(
        &mut self,
        expected: usize,
        sent: &Arc<Vec<Vec<AtomicU64>>>,
        t0: Instant,
    ) -> Vec<Receiver> {
        let mut out = Vec::new();
        for mut pushes in self.pushes.drain(..) {
            let (sent, index) = (sent.clone(), self.index.clone());
            out.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(expected);
                let mut last = Instant::now();
                while latencies.len() < expected {
                    let Some(push) = pushes.recv().await else { break };
                    let Push::Deliver { item, .. } = push else { continue };
                    let now = Instant::now();
                    let Ok(header) = Header::decode(&item.envelope.0) else { continue };
                    let Some(sender) = index.get(&header.sender) else { continue };
                    let at = sent[*sender][header.seq.0 as usize - 1].load(Ordering::Relaxed);
                    let sent_at = t0 + Duration::from_nanos(at);
                    latencies.push(now.saturating_duration_since(sent_at).as_micros() as u32);
                    last = now;
                }
                (latencies, last, pushes)
            }));
        }
        out
    }

    /// Collects the receivers' latencies, and takes their push channels back.
    async fn collect(&mut self, receivers: Vec<Receiver>, t0: Instant) -> (Latencies, Instant) {
        let mut all = Latencies::default();
        let mut last = t0;
        for r in receivers {
            let (l, at, pushes) = r.await.expect("receiver");
            all.0.extend(l);
            last = last.max(at);
            self.pushes.push(pushes);
        }
        (all, last)
    }

    /// Every device pushes `n` envelopes, `window` at a time.
    async fn throughput(&mut self, n: usize, window: usize) -> (f64, f64, Latencies) {
        let envelopes = self.seal(n);
        let sent: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
            (0..self.devices.len()).map(|_| (0..n).map(|_| AtomicU64::new(0)).collect()).collect(),
        );
        let t0 = Instant::now();
        let receivers = self.receivers(n, &sent, t0);
        let mut senders = Vec::new();
        for (d, (conn, p, _)) in self.devices.iter().enumerate() {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..window {
                let (conn, envelopes, sent, next) =
                    (conn.clone(), envelopes[d].clone(), sent.clone(), next.clone());
                let plan = self.plans[*p].plan;
                senders.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(envelope) = envelopes.get(i) else { return };
                        sent[d][i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        conn.push(plan, envelope).await.expect("push");
                    }
                }));
            }
        }
        for s in senders {
            s.await.expect("sender");
        }
        let stored_in = t0.elapsed();
        let (latencies, last) = self.collect(receivers, t0).await;
        let total = (n * self.devices.len()) as f64;
        let forwarded_in = last.duration_since(t0);
        (
            total / stored_in.as_secs_f64(),
            latencies.0.len() as f64 / forwarded_in.as_secs_f64(),
            latencies,
        )
    }

    /// All devices together push `rate` envelopes a second for `length`.
    async fn paced(&mut self, rate: u32, length: Duration) -> Latencies {
        let devices = self.devices.len();
        let per_device =
            ((f64::from(rate) * length.as_secs_f64()) / devices as f64).ceil() as usize;
        let envelopes = self.seal(per_device);
        // Sequence numbers continue from the throughput run; index by them.
        let offset: Vec<u64> = envelopes
            .iter()
            .map(|e| Header::decode(&e[0]).map(|h| h.seq.0 - 1).unwrap_or(0))
            .collect();
        let shifted: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
            (0..devices)
                .map(|d| (0..offset[d] as usize + per_device).map(|_| AtomicU64::new(0)).collect())
                .collect(),
        );
        let t0 = Instant::now();
        let receivers = self.receivers(per_device, &shifted, t0);
        let interval = Duration::from_secs_f64(devices as f64 / f64::from(rate));
        let mut senders = Vec::new();
        for (d, (conn, p, _)) in self.devices.iter().enumerate() {
            let (conn, envelopes, sent) = (conn.clone(), envelopes[d].clone(), shifted.clone());
            let plan = self.plans[*p].plan;
            let start = interval.mul_f64(d as f64 / devices as f64);
            let base = offset[d] as usize;
            senders.push(tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + start, interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for (i, envelope) in envelopes.iter().enumerate() {
                    tick.tick().await;
                    sent[d][base + i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    conn.push(plan, envelope).await.expect("push");
                }
            }));
        }
        for s in senders {
            s.await.expect("sender");
        }
        self.collect(receivers, t0).await.0
    }
}

/// This process's CPU seconds so far.
fn own_cpu() -> f64 {
    cove_tests::harness::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn copy(device: &DeviceSecret) -> DeviceSecret {
    DeviceSecret::from_secret_bytes(&device.to_secret_bytes()).expect("copy")
}

/// Opens `n` authenticated idle connections and reports the relay's RSS
/// growth: (KiB per connection, KiB in all).
async fn idle_memory(relay: &RelayProcess, n: usize) -> (f64, u64) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = relay.rss_kib().expect("rss");
    let devices: Vec<DeviceSecret> =
        (0..n).map(|_| DeviceSecret::generate(&mut OsEntropy)).collect();
    let mut connections = Vec::with_capacity(n);
    for chunk in devices.chunks(200) {
        let opened = futures_util::future::join_all(
            chunk.iter().map(|d| RelayConnection::connect(&relay.url, d)),
        )
        .await;
        for c in opened {
            connections.push(c.expect("idle connection"));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = relay.rss_kib().expect("rss");
    let total = after.saturating_sub(before);
    drop(connections);
    (total as f64 / n as f64, total)
}

/// The ceiling: the same devices and message sizes through a forwarder that
/// only copies each message to the partner connection. Returns messages/s.
async fn bare_forwarder(devices: usize, n: usize) -> anyhow::Result<f64> {
    let port = free_port();
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["forwarder", "--listen", &format!("127.0.0.1:{port}")])
        .spawn()?;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut sockets = Vec::new();
    for attempt in 0.. {
        match tokio_tungstenite::connect_async_with_config(&url, None, true).await {
            Ok((s, _)) => {
                sockets.push(s);
                break;
            }
            Err(_) if attempt < 200 => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(e) => anyhow::bail!("forwarder did not start: {e}"),
        }
    }
    while sockets.len() < devices {
        sockets.push(tokio_tungstenite::connect_async_with_config(&url, None, true).await?.0);
    }
    // Tell each connection its number; partners are 2k and 2k+1.
    for (i, s) in sockets.iter_mut().enumerate() {
        s.send(Message::Text(i.to_string().into())).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let message = vec![0x5au8; PAYLOAD + 4 + cove_shared::envelope::OVERHEAD];
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for socket in sockets {
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let writer = tokio::spawn(async move {
                for _ in 0..n {
                    if sink.send(Message::Binary(message.clone().into())).await.is_err() {
                        break;
                    }
                }
                sink
            });
            let mut received = 0;
            while received < n {
                match stream.next().await {
                    Some(Ok(Message::Binary(_))) => received += 1,
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            let _ = writer.await;
            received
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    let rate = total as f64 / t0.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Ok(rate)
}

/// Forwards every binary message to the partner connection (2k ↔ 2k+1).
async fn forwarder(listen: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let routes: Arc<std::sync::Mutex<HashMap<usize, mpsc::Sender<Message>>>> = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let routes = routes.clone();
        tokio::spawn(async move {
            let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
            let (mut sink, mut stream) = socket.split();
            let Some(Ok(Message::Text(id))) = stream.next().await else { return };
            let Ok(id) = id.as_str().parse::<usize>() else { return };
            let (tx, mut rx) = mpsc::channel::<Message>(1024);
            routes.lock().expect("routes").insert(id, tx);
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let mut partner = None;
            while let Some(Ok(message)) = stream.next().await {
                if !message.is_binary() {
                    continue;
                }
                if partner.is_none() {
                    partner = routes.lock().expect("routes").get(&(id ^ 1)).cloned();
                }
                if let Some(p) = &partner {
                    let _ = p.send(message).await;
                }
            }
        });
    }
}
