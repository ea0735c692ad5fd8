//! The provisioner's store, taken by one use case at a time.

use std::sync::MutexGuard;

use super::Provisioner;
use crate::store::Store;

impl Provisioner {
    /// Takes the store. A use case that panicked while holding it poisoned the mutex; the
    /// store is still sound: each use case writes in one transaction, which a panic drops
    /// (rolls back) while unwinding, and the store keeps no other state. So the poison is
    /// cleared instead of failing every later call.
    pub(super) fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|poisoned| {
            tracing::error!(
                "a use case panicked while holding the store; its transaction was rolled back"
            );
            self.store.clear_poison();
            poisoned.into_inner()
        })
    }
}
