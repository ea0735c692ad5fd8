//! Token buckets: per caller (a tenant, the admin tokens) for requests, and per source address
//! for failed authentications. Time is passed in (`Instant`), so the arithmetic is tested
//! without waiting.
//!
//! Memory is bounded: at most [`MAX_KEYS`] buckets; full (idle) buckets are dropped first, and
//! when every bucket is in use a new key is refused until some refill (a flood from very many
//! addresses cannot grow the map).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most per limiter.
pub const MAX_KEYS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Buckets<K> {
    /// Tokens per second; 0: no limit.
    rate: f64,
    burst: f64,
    max_keys: usize,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self::with_capacity(rate, burst, MAX_KEYS)
    }

    fn with_capacity(rate: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            max_keys,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * self.rate).min(self.burst);
        b.at = now;
    }

    /// How long until one token is there again.
    fn wait(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) / self.rate).max(0.0))
    }

    /// Runs `f` on the key's bucket (refilled to `now`); None when the map is full of buckets
    /// in use and the key is new.
    fn with<T>(&self, key: &K, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> Option<T> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| {
                let dt = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens + dt * rate < burst
            });
            if map.len() >= self.max_keys {
                return None;
            }
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(b, now);
        Some(f(b))
    }

    /// Takes one token: Err(how long to wait) when there is none.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        self.with(key, now, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.wait(b.tokens))
            }
        })
        .unwrap_or(Err(Duration::from_secs(1)))
    }

    /// Whether a token is there, without taking it.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if !map.contains_key(key) {
                return Ok(());
            }
        }
        self.with(key, now, |b| {
            if b.tokens >= 1.0 {
                Ok(())
            } else {
                Err(self.wait(b.tokens))
            }
        })
        .unwrap_or(Ok(()))
    }
}

/// The key of a source address: IPv4 as it is, IPv6 by its /64 (one subscriber's prefix).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

/// Seconds for Retry-After: whole seconds, at least one.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let b = Buckets::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(&"t", t0).is_ok());
        }
        let wait = b.take(&"t", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // another key is not affected
        assert!(b.take(&"u", t0).is_ok());
        // half a second later one token is back, not two
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(&"t", t1).is_ok());
        assert!(b.take(&"t", t1).is_err());
        // a long pause refills to the burst, not beyond
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(&"t", t2).is_ok());
        }
        assert!(b.take(&"t", t2).is_err());
    }

    #[test]
    fn check_does_not_take() {
        let b = Buckets::new(1.0, 2.0);
        let t0 = Instant::now();
        assert!(b.check(&1, t0).is_ok());
        b.take(&1, t0).unwrap();
        b.take(&1, t0).unwrap();
        assert!(b.check(&1, t0).is_err());
        assert!(b.check(&1, t0 + Duration::from_secs(1)).is_ok());
        assert!(b.check(&1, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let b = Buckets::new(0.0, 1.0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(b.take(&"t", t0).is_ok());
        }
    }

    #[test]
    fn the_map_is_bounded() {
        let b = Buckets::with_capacity(1.0, 1.0, 2);
        let t0 = Instant::now();
        b.take(&1, t0).unwrap();
        b.take(&2, t0).unwrap();
        // both in use: a third key is refused, not added
        assert!(b.take(&3, t0).is_err());
        // once they refilled (idle), they make room
        assert!(b.take(&3, t0 + Duration::from_secs(2)).is_ok());
        assert!(b.map.lock().unwrap().len() <= 2);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(source_key(m), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
