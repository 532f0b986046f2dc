//! Time, as the device and the relay read it: the system's clock in use,
//! and a clock a test sets by hand, so that nothing that depends on time
//! (an expiry, a time to live, an alarm's age) needs a test to sleep.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the time comes from.
pub trait Clock: Debug + Send + Sync {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Now, in Unix seconds.
    fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that moves only when told to; clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `ms` (Unix milliseconds).
    pub fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }

    /// A clock that reads what the system's clock reads now.
    pub fn now() -> Self {
        Self::at(SystemClock.now_ms())
    }

    /// Moves the time on by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The clock shared by a device or a relay.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_agree() {
        let clock = ManualClock::at(5_999);
        let shared: SharedClock = Arc::new(clock.clone());
        assert_eq!((shared.now_ms(), shared.now_s()), (5_999, 5));
        clock.advance(1);
        assert_eq!((shared.now_ms(), shared.now_s()), (6_000, 6));
        clock.set(-1);
        assert_eq!(shared.now_s(), -1, "seconds round down");
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
