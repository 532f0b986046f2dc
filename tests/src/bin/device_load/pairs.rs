//! The pairs phase of `cove-device-load`: many couples at once, each a
//! real device pair with its own state directories, through one relay.

use cove_client::device::Device;
use cove_client::sync::{self, Event};
use cove_shared::DocId;
use cove_tests::devices::{heads, new_device, pair, put};
use cove_tests::harness::{RelayProcess, TempDir, cpu_seconds};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One couple's counters, shared with its two tasks.
#[derive(Default)]
struct Counts {
    /// A's edits the relay acknowledged.
    acknowledged: AtomicU64,
    /// Changes B applied.
    applied: AtomicU64,
}

/// Runs `couples` pairs for `seconds`, and prints what they reached.
pub(crate) async fn run(
    couples: usize,
    seconds: u64,
    dir: &TempDir,
    relay: &RelayProcess,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(couples);
    for i in 0..couples {
        let mut a = new_device(dir, &format!("pairs-{i}-a"), &relay.url).await;
        let (b, _, _) = pair(&mut a, dir, &format!("pairs-{i}-b"), &relay.url, false).await;
        pairs.push((a, b));
    }
    println!(
        "pairs: {couples} couples paired in {:.1} s; each A edits for {seconds} s",
        started.elapsed().as_secs_f64()
    );

    let editing = Arc::new(AtomicBool::new(true));
    let mut daemons = Vec::new();
    let mut editors = Vec::new();
    let mut counts = Vec::new();
    let mut ready = Vec::new();
    for (a, mut b) in pairs {
        let count = Arc::new(Counts::default());
        counts.push(count.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let applied = count.clone();
        daemons.push((
            stop_tx,
            tokio::spawn(async move {
                let mut ready_tx = Some(ready_tx);
                let events = |event: &Event| {
                    let n = match event {
                        Event::Synced(report) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                            report.applied.iter().sum::<usize>()
                        }
                        Event::Applied(received) => received.applied.iter().sum::<usize>(),
                        _ => 0,
                    };
                    applied.applied.fetch_add(n as u64, Ordering::Relaxed);
                };
                let stop = Box::pin(async {
                    let _ = stop_rx.await;
                });
                let result = sync::run_daemon(&mut b, events, stop).await;
                (b, result)
            }),
        ));
        ready.push(ready_rx);
        editors.push((a, count));
    }
    for ready in ready {
        ready.await?;
    }

    // What B applied before the edits start (pairing's own changes).
    let before: Vec<u64> = counts.iter().map(|c| c.applied.load(Ordering::Relaxed)).collect();
    let applied = |c: &Counts, before: u64| c.applied.load(Ordering::Relaxed) - before;
    let relay_cpu = relay.cpu_seconds().unwrap_or(f64::NAN);
    let counters = metrics(relay).await;
    let own_cpu = cpu_seconds(std::process::id()).unwrap_or(f64::NAN);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (a, count) in editors {
        let editing = editing.clone();
        tasks.push(tokio::spawn(edit_until_stopped(a, count, editing)));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let window = start.elapsed().as_secs_f64();
    let seen: u64 = counts.iter().zip(&before).map(|(c, b)| applied(c, *b)).sum();
    let relay_cpu = relay.cpu_seconds().unwrap_or(f64::NAN) - relay_cpu;
    let counters: Vec<(String, f64)> = metrics(relay)
        .await
        .into_iter()
        .map(|(name, after)| {
            let before = counters.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, v)| *v);
            (name, after - before)
        })
        .collect();
    let own_cpu = cpu_seconds(std::process::id()).unwrap_or(f64::NAN) - own_cpu;
    editing.store(false, Ordering::Relaxed);
    let mut editors = Vec::new();
    for task in tasks {
        editors.push(task.await??);
    }
    let acknowledged: u64 = counts.iter().map(|c| c.acknowledged.load(Ordering::Relaxed)).sum();

    // Every acknowledged edit must reach its B: wait for the last ones.
    let drained = Instant::now();
    while counts
        .iter()
        .zip(&before)
        .any(|(c, b)| applied(c, *b) < c.acknowledged.load(Ordering::Relaxed))
        && drained.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss = relay.rss_kib().unwrap_or(0);
    let mut lost = 0;
    let mut differ = 0;
    for (((stop, daemon), a), (count, before)) in
        daemons.into_iter().zip(&editors).zip(counts.iter().zip(&before))
    {
        let _ = stop.send(());
        let (b, result) = daemon.await?;
        result?;
        lost += count.acknowledged.load(Ordering::Relaxed).saturating_sub(applied(count, *before));
        if heads(a, DocId::Shared) != heads(&b, DocId::Shared) {
            differ += 1;
        }
    }

    println!(
        "pairs: {couples} couples, {window:.1} s: {:.0} edits/s seen by the Bs ({seen} edits)",
        seen as f64 / window
    );
    println!(
        "pairs: relay CPU {:.3} ms per edit ({relay_cpu:.2} s), relay RSS at the end {:.1} MiB",
        relay_cpu * 1000.0 / seen.max(1) as f64,
        rss as f64 / 1024.0
    );
    println!(
        "pairs: load generator CPU {:.3} ms per edit ({own_cpu:.2} s, both devices of every couple)",
        own_cpu * 1000.0 / seen.max(1) as f64
    );
    let per_edit: Vec<String> =
        counters.iter().map(|(name, n)| format!("{name} {:.2}", n / seen.max(1) as f64)).collect();
    println!("pairs: at the relay, per edit: {}", per_edit.join(", "));
    println!(
        "pairs: {acknowledged} edits acknowledged by the relay, {lost} of them not applied by a B, {differ} couples whose documents differ"
    );
    anyhow::ensure!(lost == 0 && differ == 0, "an acknowledged edit was lost");
    Ok(())
}

/// The relay's counters that say what each edit cost it: envelopes stored
/// and forwarded, group commits, and calls into the store.
async fn metrics(relay: &RelayProcess) -> Vec<(String, f64)> {
    let addr = relay.url.trim_start_matches("ws://").trim_end_matches('/');
    let page = cove_tests::web::http(addr, "GET", "/metrics", &[], "").await.body;
    let wanted = [
        "cove_envelopes_stored_total",
        "cove_envelopes_forwarded_total",
        "cove_append_batches_total",
        "cove_store_seconds_count",
    ];
    wanted
        .iter()
        .map(|name| {
            let total = page
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (name.trim_start_matches("cove_").to_owned(), total)
        })
        .collect()
}

/// A's loop: one edit (a durable local commit, sealed into the outbox),
/// then the outbox pushed and the relay's answer awaited, as `cove` does
/// after each change, until `editing` turns false.
async fn edit_until_stopped(
    mut a: Device,
    count: Arc<Counts>,
    editing: Arc<AtomicBool>,
) -> anyhow::Result<Device> {
    let (conn, _pushes) = sync::connect(&a).await?;
    let mut i = 0u64;
    while editing.load(Ordering::Relaxed) {
        put(&mut a, DocId::Shared, "field", &format!("value {i}")).await;
        let sent = sync::send_outbox(&mut a, &conn).await?;
        count.acknowledged.fetch_add(sent as u64, Ordering::Relaxed);
        i += 1;
    }
    Ok(a)
}
