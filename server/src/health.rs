//! Whether the store is taking reads and writes, as the relay's own calls
//! show it.
//!
//! A full disk, or a database that has gone away, fails every request that
//! touches it. Logging each failure would bury the one line that matters,
//! so each [`Condition`] logs when it starts failing (with the first error)
//! and when it recovers, and counts what lies between. `/healthz` and the
//! `cove_store_writable` metric read the same state.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One kind of store access (reads, or writes), healthy or failing.
#[derive(Debug)]
pub struct Condition {
    what: &'static str,
    /// Set while failing: lets the common, healthy case skip the lock.
    failing: AtomicBool,
    since: Mutex<Option<(Instant, String)>>,
    failures: AtomicU64,
}

impl Condition {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            failing: AtomicBool::new(false),
            since: Mutex::new(None),
            failures: AtomicU64::new(0),
        }
    }

    /// A call of this kind failed in the store.
    pub fn failed(&self, error: &dyn Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if since.is_none() {
            let reason = error.to_string();
            tracing::error!(
                error = %reason,
                "the store stopped accepting {}; requests that need them are refused as unavailable until one succeeds",
                self.what
            );
            *since = Some((Instant::now(), reason));
            self.failing.store(true, Ordering::Release);
        } else {
            tracing::debug!(%error, "store {} still failing", self.what);
        }
    }

    /// A call of this kind succeeded.
    pub fn succeeded(&self) {
        if !self.failing.load(Ordering::Acquire) {
            return;
        }
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, _)) = since.take() {
            tracing::info!(
                after_secs = at.elapsed().as_secs(),
                failures = self.failures.load(Ordering::Relaxed),
                "the store accepts {} again",
                self.what
            );
        }
        self.failing.store(false, Ordering::Release);
    }

    /// Why it is failing, if it is.
    pub fn failing(&self) -> Option<String> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        let since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        since.as_ref().map(|(_, reason)| reason.clone())
    }

    /// Calls of this kind that failed, ever.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// The store's reads and writes.
#[derive(Debug)]
pub struct StoreHealth {
    /// Reads: the database answers.
    pub reads: Condition,
    /// Writes: commits succeed.
    pub writes: Condition,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self { reads: Condition::new("reads"), writes: Condition::new("writes") }
    }
}

impl StoreHealth {
    /// One sentence on what is wrong, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Some(reason) = self.writes.failing() {
            return Some(format!("the store is not accepting writes: {reason}"));
        }
        self.reads.failing().map(|reason| format!("the store cannot be read: {reason}"))
    }
}

impl StoreHealth {
    /// Appends the health metrics in the text exposition format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, condition) in [("readable", &self.reads), ("writable", &self.writes)] {
            let _ = writeln!(
                out,
                "# HELP cove_store_{name} 1 while the store's {what} succeed, 0 while they fail.\n\
                 # TYPE cove_store_{name} gauge\ncove_store_{name} {up}\n\
                 # HELP cove_store_{what}_failed_total Store {what} that failed.\n\
                 # TYPE cove_store_{what}_failed_total counter\ncove_store_{what}_failed_total {failed}",
                what = condition.what,
                up = u8::from(condition.failing().is_none()),
                failed = condition.failures(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_fails_once_and_recovers_once() {
        let health = StoreHealth::default();
        assert_eq!(health.problem(), None);
        health.writes.failed(&"disk full");
        health.writes.failed(&"disk still full");
        assert_eq!(health.writes.failures(), 2);
        // The first reason is kept: it is the one that explains the rest.
        assert_eq!(health.writes.failing().as_deref(), Some("disk full"));
        assert_eq!(
            health.problem().as_deref(),
            Some("the store is not accepting writes: disk full")
        );
        health.reads.succeeded();
        assert!(health.problem().is_some(), "a read says nothing about writes");
        health.writes.succeeded();
        assert_eq!(health.problem(), None);
        assert_eq!(health.writes.failures(), 2);
        let mut text = String::new();
        health.render(&mut text);
        assert!(text.contains("cove_store_writable 1\n"), "{text}");
        assert!(text.contains("cove_store_writes_failed_total 2\n"), "{text}");
        health.writes.failed(&"full again");
        let mut text = String::new();
        health.render(&mut text);
        assert!(text.contains("cove_store_writable 0\n"), "{text}");
        assert!(text.contains("cove_store_readable 1\n"), "{text}");
    }
}
