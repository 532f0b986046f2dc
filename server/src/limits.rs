//! Rate limits: a token bucket per device, and a fixed window per source
//! address for pairing attempts.
//!
//! Both tables are pruned as they grow, so a flood of new devices or
//! addresses cannot grow them without bound.

use cove_shared::DeviceId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are pruned.
const PRUNE_AT: usize = 50_000;

/// A token bucket per key: `rate` tokens a second, at most `burst` saved.
#[derive(Debug)]
pub struct TokenBuckets<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Copy> TokenBuckets<K> {
    /// Buckets refilling at `rate` per second up to `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false if there is none.
    pub fn allow(&self, key: K, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() >= PRUNE_AT {
            // A bucket that has refilled completely carries no information.
            let full_after = Duration::from_secs_f64(self.burst / self.rate.max(1.0));
            buckets.retain(|_, (_, at)| now.duration_since(*at) < full_after);
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests per device.
pub type DeviceLimiter = TokenBuckets<DeviceId>;

/// At most `max` attempts per address per `window`.
#[derive(Debug)]
pub struct AddressWindows {
    max: u32,
    window: Duration,
    counts: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AddressWindows {
    /// `max` attempts per `window` per address.
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, counts: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt from `address`; false if it is over the limit.
    pub fn allow(&self, address: IpAddr, now: Instant) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return true;
        };
        if counts.len() >= PRUNE_AT {
            let window = self.window;
            counts.retain(|_, (_, start)| now.duration_since(*start) < window);
        }
        let (count, start) = counts.entry(address).or_insert((0, now));
        if now.duration_since(*start) >= self.window {
            *count = 0;
            *start = now;
        }
        *count += 1;
        *count <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = TokenBuckets::new(10, 5);
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| limiter.allow(1u8, t0)).count(), 5);
        assert!(limiter.allow(2u8, t0), "another key has its own bucket");
        assert!(!limiter.allow(1u8, t0 + Duration::from_millis(50)));
        assert!(limiter.allow(1u8, t0 + Duration::from_millis(150)));
    }

    #[test]
    fn an_address_window_resets() {
        let w = AddressWindows::new(2, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(w.allow(ip, t0) && w.allow(ip, t0));
        assert!(!w.allow(ip, t0 + Duration::from_secs(1)));
        assert!(w.allow(ip, t0 + Duration::from_secs(61)));
    }
}
