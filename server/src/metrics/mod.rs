//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4), written by hand: a few
//! counter families and gauges need no client library, and the query path must not pay for
//! one.
//!
//! Where the figures come from:
//! - `dns`: query counters of the DNS plane (per-thread shards of relaxed atomics);
//! - [`signed`]: RRSIGs made, by reason (one relaxed add per signed RRset, beside the signing);
//! - `http`: API requests by matched route, method and status, and their latency (a mutex on
//!   the API path only);
//! - [`secondaries`]: the last serial each configured secondary acknowledged (NOTIFY) and was
//!   sent (AXFR/IXFR), from the NOTIFY tasks and the transfer path;
//! - [`import`]: the bulk import's progress (the API's import; a `mxdns domain import` in
//!   another process shows as follower lag);
//! - `render`: per zone (serial, names, earliest signature expiry, key states and the next key
//!   event) and the follower's lag, read at scrape time from the published catalog and the
//!   health observer's figures: a scrape never touches SQLite nor waits for the zone manager.

pub mod dns;
pub mod http;
mod render;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

pub use render::render;

/// Why RRSIGs were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignReason {
    /// Building a zone from scratch (start without a usable checkpoint).
    Build = 0,
    /// A change of the zone's content (provisioning, the change log).
    Change = 1,
    /// Signatures made again before they expire, or after the signing ZSK changed.
    Refresh = 2,
    /// A key step: the DNSKEY/CDS/CDNSKEY RRsets and the server's own records.
    Rollover = 3,
}

const REASONS: [&str; 4] = ["build", "change", "refresh", "rollover"];
static SIGNATURES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Counts `n` RRSIGs made for `reason`.
pub fn signed(reason: SignReason, n: usize) {
    SIGNATURES[reason as usize].fetch_add(n as u64, Relaxed);
}

/// A signer that counts the RRSIGs the signer it wraps makes.
pub struct CountingSigner<'a> {
    pub inner: &'a dyn zones::RrsetSigner,
    pub reason: SignReason,
}

impl zones::RrsetSigner for CountingSigner<'_> {
    fn sign(&self, rrset: &zones::Rrset) -> Result<Vec<hickory_proto::rr::Record>, String> {
        let sigs = self.inner.sign(rrset)?;
        signed(self.reason, sigs.len());
        Ok(sigs)
    }
}

/// What is known of one secondary for one zone.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecondaryState {
    /// The last serial its NOTIFY answer acknowledged, and when (unix seconds).
    pub notified: Option<(u32, u64)>,
    /// The last serial a transfer sent it, and when.
    pub transferred: Option<(u32, u64)>,
    /// The serial it said it held when it last asked for an IXFR.
    pub reported: Option<u32>,
}

type SecondaryMap = BTreeMap<(String, String), SecondaryState>;
static SECONDARIES: Mutex<SecondaryMap> = Mutex::new(BTreeMap::new());

/// Secondaries' serials (zone, secondary name).
pub mod secondaries {
    use super::*;

    fn with(zone: &str, secondary: &str, f: impl FnOnce(&mut SecondaryState)) {
        let mut m = SECONDARIES.lock().unwrap_or_else(PoisonError::into_inner);
        f(m.entry((zone.to_string(), secondary.to_string()))
            .or_default());
    }

    /// Makes the pair known (its series exist from the start, empty).
    pub fn configured(zone: &str, secondary: &str) {
        with(zone, secondary, |_| {});
    }
    pub fn notified(zone: &str, secondary: &str, serial: u32, now: u64) {
        with(zone, secondary, |s| s.notified = Some((serial, now)));
    }
    pub fn transferred(zone: &str, secondary: &str, serial: u32, from: Option<u32>, now: u64) {
        with(zone, secondary, |s| {
            s.transferred = Some((serial, now));
            if from.is_some() {
                s.reported = from;
            }
        });
    }
    pub(super) fn all() -> SecondaryMap {
        SECONDARIES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The API's bulk import: domains done and in all of the running (or last) import.
pub mod import {
    use super::*;
    pub(super) static RUNNING: AtomicU64 = AtomicU64::new(0);
    pub(super) static DONE: AtomicU64 = AtomicU64::new(0);
    pub(super) static TOTAL: AtomicU64 = AtomicU64::new(0);
    pub(super) static FINISHED: AtomicU64 = AtomicU64::new(0);

    /// Marks an import running for as long as the guard lives.
    pub struct Running;
    pub fn start(total: usize) -> Running {
        RUNNING.fetch_add(1, Relaxed);
        DONE.store(0, Relaxed);
        TOTAL.store(total as u64, Relaxed);
        Running
    }
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.fetch_sub(1, Relaxed);
            FINISHED.fetch_add(1, Relaxed);
        }
    }
    pub fn progress(done: usize, total: usize) {
        DONE.store(done as u64, Relaxed);
        TOTAL.store(total as u64, Relaxed);
    }
}
