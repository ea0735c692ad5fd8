//! The provisioner's store, taken by one use case at a time; a bulk import lets waiting callers
//! go first between its batches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::Provisioner;
use crate::store::Store;

/// Callers waiting for a provisioner's store in this process. std's mutex is not fair: a bulk
/// import that releases the store and takes it again at once would mostly win against a
/// caller that was woken up, so the import waits (see [`Provisioner::let_waiting_in`]) while
/// this is not zero.
static WAITING: AtomicUsize = AtomicUsize::new(0);

impl Provisioner {
    /// Takes the store. A use case that panicked while holding it poisoned the mutex; the
    /// store is still sound: each use case writes in one transaction, which a panic drops
    /// (rolls back) while unwinding, and the store keeps no other state. So the poison is
    /// cleared instead of failing every later call.
    pub(super) fn lock_store(&self) -> MutexGuard<'_, Store> {
        WAITING.fetch_add(1, Ordering::AcqRel);
        let guard = self.store.lock().unwrap_or_else(|poisoned| {
            tracing::error!(
                "a use case panicked while holding the store; its transaction was rolled back"
            );
            self.store.clear_poison();
            poisoned.into_inner()
        });
        WAITING.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// Between two batches of a bulk import: waits (at most `max`) while other callers wait
    /// for the store, so that they take it before the next batch.
    pub(super) fn let_waiting_in(&self, max: Duration) {
        let t0 = Instant::now();
        while WAITING.load(Ordering::Acquire) > 0 && t0.elapsed() < max {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
