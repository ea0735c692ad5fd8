//! Holding the zone manager: who holds it and since when (health reads that without taking
//! it), one API change served ahead of background work, and recovery from a panic while held.
//!
//! Every hold goes through [`ZoneManager::hold`] (background work: the follower, the refresher,
//! key changes, the checkpoint header, the build) or [`ZoneManager::hold_urgent`] (an API call
//! serving its own change). Background work releases the manager between steps and, before it
//! takes it again, lets every urgent caller that is waiting go first (std's mutex is not fair:
//! the releasing thread usually wins it back at once).
//!
//! A panic while the manager is held poisons the mutex. The state stays usable: `Inner` only
//! moves forward in steps that are whole (a new snapshot is published only after it is built
//! and signed; `last_seq` moves only after every zone of its batch was applied; reloaded keys
//! and their `key_version` are re-read when they disagree), and re-applying an owner's stored
//! state is idempotent. So the poison is cleared and the next holder carries on from there.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{Inner, ZoneManager};

/// Milliseconds on a monotonic clock since the first call in this process, plus 1 (0 means
/// "none" in the atomics below).
pub fn mono_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// A hold longer than this is logged (steps are sized to take about 40 ms).
const LOG_HOLD: Duration = Duration::from_millis(250);
/// Background work waits at most this long for urgent callers before it takes its turn.
const YIELD_MAX: Duration = Duration::from_secs(2);

/// What the zone manager is doing, readable without taking it (health).
#[derive(Debug)]
pub struct Progress {
    /// `mono_ms()` when the current hold began; 0 when the manager is free.
    hold_since: AtomicU64,
    /// What the current (or last) hold is for.
    hold_what: std::sync::Mutex<&'static str>,
    longest_hold_ms: AtomicU64,
    /// The longest hold that ended in the current minute (`window_start` in `mono_ms()`).
    window_start: AtomicU64,
    window_longest_ms: AtomicU64,
    holds: AtomicU64,
    /// Urgent callers waiting for the manager.
    urgent: AtomicUsize,
    /// Panics recovered from (the mutex was poisoned).
    recovered: AtomicU64,
    /// The last change-log sequence number the snapshots include (the follower's position).
    applied_seq: AtomicI64,
    /// Every zone is built (or resumed) and published.
    built: AtomicBool,
    /// Per zone (in `Inner::zones` order): the earliest RRSIG expiration in the snapshot
    /// after the last refresh pass (a lower bound: later changes only add fresher ones).
    earliest_expiry: Vec<AtomicU32>,
    /// `mono_ms()` at the end of the last refresh pass.
    refreshed_at: AtomicU64,
}

impl Progress {
    pub(super) fn new(zones: usize, applied_seq: i64) -> Self {
        Self {
            hold_since: AtomicU64::new(0),
            hold_what: std::sync::Mutex::new(""),
            longest_hold_ms: AtomicU64::new(0),
            window_start: AtomicU64::new(mono_ms()),
            window_longest_ms: AtomicU64::new(0),
            holds: AtomicU64::new(0),
            urgent: AtomicUsize::new(0),
            recovered: AtomicU64::new(0),
            applied_seq: AtomicI64::new(applied_seq),
            built: AtomicBool::new(false),
            earliest_expiry: (0..zones).map(|_| AtomicU32::new(0)).collect(),
            refreshed_at: AtomicU64::new(0),
        }
    }

    /// How long the current hold has lasted (ms) and what it is for; None when free.
    pub fn holding(&self) -> Option<(u64, &'static str)> {
        let since = self.hold_since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        // never wait for the label: health must not block (a contended label reads "busy")
        let what = self.hold_what.try_lock().map(|w| *w).unwrap_or("busy");
        Some((mono_ms().saturating_sub(since), what))
    }
    pub fn longest_hold_ms(&self) -> u64 {
        self.longest_hold_ms.load(Ordering::Relaxed)
    }
    /// The longest hold that ended in the last one to two minutes.
    pub fn recent_longest_hold_ms(&self) -> u64 {
        self.window_longest_ms.load(Ordering::Relaxed)
    }
    pub fn holds(&self) -> u64 {
        self.holds.load(Ordering::Relaxed)
    }
    pub fn recovered_panics(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }
    pub fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::Acquire)
    }
    pub(super) fn set_applied_seq(&self, seq: i64) {
        self.applied_seq.store(seq, Ordering::Release);
    }
    pub fn built(&self) -> bool {
        self.built.load(Ordering::Acquire)
    }
    pub(super) fn set_built(&self) {
        self.built.store(true, Ordering::Release);
    }
    /// The earliest RRSIG expiration of each zone (in configuration order: apex first), 0
    /// before the first look.
    pub fn earliest_expiry(&self) -> Vec<u32> {
        self.earliest_expiry
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .collect()
    }
    pub(super) fn set_earliest_expiry(&self, idx: usize, t: u32) {
        if let Some(e) = self.earliest_expiry.get(idx) {
            e.store(t, Ordering::Relaxed);
        }
    }
    /// `mono_ms()` at the end of the last refresh pass (0: none yet).
    pub fn refreshed_at(&self) -> u64 {
        self.refreshed_at.load(Ordering::Relaxed)
    }
    pub(super) fn set_refreshed(&self) {
        self.refreshed_at.store(mono_ms(), Ordering::Relaxed);
    }
}

/// The zone manager, held; released (and the hold recorded) on drop.
pub(super) struct Held<'a> {
    guard: MutexGuard<'a, Inner>,
    progress: &'a Progress,
    since: u64,
    what: &'static str,
}

impl std::ops::Deref for Held<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let ms = mono_ms().saturating_sub(self.since);
        self.progress.hold_since.store(0, Ordering::Release);
        let p = self.progress;
        p.longest_hold_ms.fetch_max(ms, Ordering::Relaxed);
        let now = mono_ms();
        if now.saturating_sub(p.window_start.load(Ordering::Relaxed)) > 60_000 {
            // a new minute: the longest of the last minute moves on (a race between two
            // holders ending at once loses at most one figure of the old minute)
            p.window_start.store(now, Ordering::Relaxed);
            p.window_longest_ms.store(ms, Ordering::Relaxed);
        } else {
            p.window_longest_ms.fetch_max(ms, Ordering::Relaxed);
        }
        if ms >= LOG_HOLD.as_millis() as u64 {
            tracing::info!(ms, what = self.what, "long hold of the zone manager");
        }
    }
}

impl ZoneManager {
    /// Takes the zone manager for background work, after any urgent caller that waits.
    pub(super) fn hold(&self, what: &'static str) -> Held<'_> {
        let t0 = Instant::now();
        while self.progress.urgent.load(Ordering::Acquire) > 0 && t0.elapsed() < YIELD_MAX {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.take(what)
    }

    /// Takes the zone manager for an API call serving its own change: background work lets it
    /// go first at its next step.
    pub(super) fn hold_urgent(&self, what: &'static str) -> Held<'_> {
        self.progress.urgent.fetch_add(1, Ordering::AcqRel);
        let held = self.take(what);
        self.progress.urgent.fetch_sub(1, Ordering::AcqRel);
        held
    }

    fn take(&self, what: &'static str) -> Held<'_> {
        let guard = self.inner.lock().unwrap_or_else(|poisoned| {
            // see the module documentation for why the state is still consistent
            self.progress.recovered.fetch_add(1, Ordering::Relaxed);
            tracing::error!(what, "the zone manager was held by a task that panicked; carrying on from its last whole step");
            self.inner.clear_poison();
            poisoned.into_inner()
        });
        let since = mono_ms();
        *self
            .progress
            .hold_what
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = what;
        self.progress.hold_since.store(since, Ordering::Release);
        self.progress.holds.fetch_add(1, Ordering::Relaxed);
        Held {
            guard,
            progress: &self.progress,
            since,
            what,
        }
    }

    /// Runs `f` while holding the zone manager (tests of health).
    #[cfg(test)]
    pub(crate) fn hold_for_test(&self, f: impl FnOnce()) {
        let _held = self.hold("a test hold");
        f()
    }

    /// Panics while holding the zone manager (tests of the recovery).
    #[cfg(test)]
    pub(super) fn panic_while_held(&self) {
        let _held = self.hold("a test panic");
        panic!("test: panic while the zone manager is held");
    }
}
