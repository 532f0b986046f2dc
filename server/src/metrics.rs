//! Prometheus metrics, in the text exposition format, served at `/metrics`.
//!
//! Counters only ever count events and bytes; nothing here can carry a key,
//! a plan id or any ciphertext.

use cove_shared::wire::ErrorCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the store latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0];

/// What a store call did, for its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// An append batch (group commit).
    Append,
    /// A page fetch.
    Fetch,
    /// An acknowledgement, with compaction.
    Ack,
    /// A membership read or append.
    Membership,
    /// A snapshot read or write.
    Snapshot,
    /// A pairing step.
    Pairing,
    /// Everything else (access checks, expiry, deletion).
    Other,
}

impl StoreOp {
    const ALL: [StoreOp; 7] = [
        Self::Append,
        Self::Fetch,
        Self::Ack,
        Self::Membership,
        Self::Snapshot,
        Self::Pairing,
        Self::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Fetch => "fetch",
            Self::Ack => "ack",
            Self::Membership => "membership",
            Self::Snapshot => "snapshot",
            Self::Pairing => "pairing",
            Self::Other => "other",
        }
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// All of the relay's metrics.
#[derive(Default)]
pub struct Metrics {
    connections: AtomicI64,
    connections_total: AtomicU64,
    envelopes_stored: AtomicU64,
    envelopes_forwarded: AtomicU64,
    bytes_stored: AtomicU64,
    envelopes_compacted: AtomicU64,
    signals_expired: AtomicU64,
    batches: AtomicU64,
    listener_gaps: AtomicU64,
    rejections: Mutex<Vec<(ErrorCode, u64)>>,
    latency: [Histogram; 7],
    /// The listener's socket counts, once it is listening.
    sockets: OnceLock<Arc<crate::tcp::Counts>>,
}

impl Metrics {
    /// A connection opened; returns a guard that closes it when dropped.
    pub fn connection(&self) -> ConnectionGauge<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(self)
    }

    /// Reports the listener's socket counts from now on.
    pub fn watch_sockets(&self, counts: Arc<crate::tcp::Counts>) {
        let _ = self.sockets.set(counts);
    }

    /// Connections open now.
    pub fn open_connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// An envelope of `bytes` was committed.
    pub fn stored(&self, bytes: usize) {
        self.envelopes_stored.fetch_add(1, Ordering::Relaxed);
        self.bytes_stored.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// An envelope was pushed live to `n` connections.
    pub fn forwarded(&self, n: usize) {
        self.envelopes_forwarded.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Compaction deleted `n` envelopes.
    pub fn compacted(&self, n: u64) {
        self.envelopes_compacted.fetch_add(n, Ordering::Relaxed);
    }

    /// Expiry dropped `n` signals.
    pub fn expired(&self, n: u64) {
        self.signals_expired.fetch_add(n, Ordering::Relaxed);
    }

    /// A group commit ran.
    pub fn batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// The listener for other relay processes lost its connection.
    pub fn listener_gap(&self) {
        self.listener_gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// A request or connection was refused with `code`.
    pub fn rejected(&self, code: ErrorCode) {
        let Ok(mut counts) = self.rejections.lock() else {
            return;
        };
        match counts.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }

    /// How many requests were refused with `code` so far.
    pub fn rejections(&self, code: ErrorCode) -> u64 {
        self.rejections
            .lock()
            .map(|c| c.iter().find(|(k, _)| *k == code).map_or(0, |(_, n)| *n))
            .unwrap_or(0)
    }

    /// Records how long a store call took.
    pub fn store_latency(&self, op: StoreOp, took: Duration) {
        let i = StoreOp::ALL.iter().position(|o| *o == op).unwrap_or(6);
        let h = &self.latency[i];
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("cove_connections_total", "Connections accepted.", load(&self.connections_total));
        counter(
            "cove_envelopes_stored_total",
            "Envelopes committed.",
            load(&self.envelopes_stored),
        );
        counter(
            "cove_envelopes_forwarded_total",
            "Envelopes pushed live to connections.",
            load(&self.envelopes_forwarded),
        );
        counter("cove_bytes_stored_total", "Envelope bytes committed.", load(&self.bytes_stored));
        counter(
            "cove_envelopes_compacted_total",
            "Envelopes deleted because snapshots cover them.",
            load(&self.envelopes_compacted),
        );
        counter(
            "cove_signals_expired_total",
            "Signals dropped after their time to live.",
            load(&self.signals_expired),
        );
        counter("cove_append_batches_total", "Group commits.", load(&self.batches));
        counter(
            "cove_notification_gaps_total",
            "Times the listener for other relay processes lost its connection, and connected devices were told to catch up.",
            load(&self.listener_gaps),
        );
        let _ = writeln!(
            out,
            "# HELP cove_connections Connections open now.\n# TYPE cove_connections gauge\ncove_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        if let Some(sockets) = self.sockets.get() {
            let _ = writeln!(
                out,
                "# HELP cove_sockets Sockets open now, WebSocket or not.\n# TYPE cove_sockets gauge\ncove_sockets {}\n\
                 # HELP cove_sockets_pending Sockets still in their HTTP handshake.\n# TYPE cove_sockets_pending gauge\ncove_sockets_pending {}",
                sockets.open(),
                sockets.pending()
            );
        }
        let _ = writeln!(
            out,
            "# HELP cove_rejections_total Requests and connections refused, by reason.\n# TYPE cove_rejections_total counter"
        );
        if let Ok(counts) = self.rejections.lock() {
            for (code, n) in counts.iter() {
                let _ = writeln!(out, "cove_rejections_total{{reason=\"{}\"}} {n}", code.name());
            }
        }
        let _ = writeln!(
            out,
            "# HELP cove_store_seconds Storage call latency.\n# TYPE cove_store_seconds histogram"
        );
        for (op, h) in StoreOp::ALL.iter().zip(&self.latency) {
            let op = op.name();
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "cove_store_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {}",
                    load(bucket)
                );
            }
            let count = load(&h.count);
            let _ = writeln!(out, "cove_store_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(
                out,
                "cove_store_seconds_sum{{op=\"{op}\"}} {}",
                load(&h.sum_micros) as f64 / 1e6
            );
            let _ = writeln!(out, "cove_store_seconds_count{{op=\"{op}\"}} {count}");
        }
        out
    }
}

/// Keeps the open-connections gauge right, however a connection ends.
pub struct ConnectionGauge<'a>(&'a Metrics);

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::default();
        let gauge = m.connection();
        m.stored(1024);
        m.rejected(ErrorCode::RateLimited);
        m.rejected(ErrorCode::RateLimited);
        m.store_latency(StoreOp::Append, Duration::from_micros(700));
        let text = m.render();
        assert!(text.contains("cove_connections 1\n"));
        assert!(text.contains("cove_bytes_stored_total 1024\n"));
        assert!(text.contains("cove_rejections_total{reason=\"rate_limited\"} 2\n"));
        assert!(text.contains("cove_store_seconds_bucket{op=\"append\",le=\"0.0005\"} 0\n"));
        assert!(text.contains("cove_store_seconds_bucket{op=\"append\",le=\"0.001\"} 1\n"));
        drop(gauge);
        assert!(m.render().contains("cove_connections 0\n"));
    }
}
