//! Supervised tasks: a task that panics (or ends while the server runs) is logged and started
//! again after a backoff, never silently gone; the board says which tasks run, for health and
//! readiness.
//!
//! Backoff: 100 ms after the first failure, doubled after each failure that follows within
//! [`STABLE`] of the start, up to 5 s; a run longer than [`STABLE`] starts from 100 ms again.
//! Three failures in a row that short mark the task as failing (a crash loop) until it runs
//! [`STABLE`] again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::zonemgr::mono_ms;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A run this long counts as healthy: the backoff starts again from the minimum.
const STABLE: Duration = Duration::from_secs(30);
/// Failures in a row, each within [`STABLE`] of its start, that mark a task as failing.
const LOOPING: u32 = 3;

/// One supervised task, as health sees it.
#[derive(Debug)]
pub struct TaskState {
    pub name: String,
    /// "dns" or "control".
    pub plane: &'static str,
    running: AtomicBool,
    restarts: AtomicU64,
    /// `mono_ms()` of the last failure (0: none).
    last_failure: AtomicU64,
    /// Crash loop: [`LOOPING`] short runs in a row.
    failing: AtomicBool,
}

impl TaskState {
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }
    /// In a crash loop: [`LOOPING`] short runs in a row, and not running stably since.
    pub fn failing(&self) -> bool {
        let stable_since = self.running()
            && self
                .since_failure_ms()
                .is_some_and(|ms| ms > (STABLE + BACKOFF_MAX).as_millis() as u64);
        self.failing.load(Ordering::Relaxed) && !stable_since
    }
    /// Milliseconds since the last failure, if any.
    pub fn since_failure_ms(&self) -> Option<u64> {
        match self.last_failure.load(Ordering::Relaxed) {
            0 => None,
            t => Some(mono_ms().saturating_sub(t)),
        }
    }
}

/// Every supervised task (registered at start; read without a lock).
#[derive(Debug, Default)]
pub struct Board {
    tasks: ArcSwap<Vec<Arc<TaskState>>>,
}

impl Board {
    pub fn tasks(&self) -> Arc<Vec<Arc<TaskState>>> {
        self.tasks.load_full()
    }

    fn register(&self, name: String, plane: &'static str) -> Arc<TaskState> {
        let t = Arc::new(TaskState {
            name,
            plane,
            running: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        });
        self.tasks.rcu(|old| {
            let mut v = Vec::clone(old);
            v.push(t.clone());
            v
        });
        t
    }
}

/// The text of a panic's payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Spawns `make()` on `rt` and starts it again whenever it panics or ends before `stop`
/// changes. Returns the supervisor's handle (it ends once `stop` changed and the task ended).
pub fn spawn<F, Fut>(
    rt: &tokio::runtime::Handle,
    board: &Board,
    name: String,
    plane: &'static str,
    mut stop: watch::Receiver<bool>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = board.register(name, plane);
    let spawn_on = rt.clone();
    rt.spawn(async move {
        let mut backoff = BACKOFF_MIN;
        let mut short_runs = 0u32;
        loop {
            let started = std::time::Instant::now();
            state.running.store(true, Ordering::Release);
            let result = spawn_on.spawn(make()).await;
            state.running.store(false, Ordering::Release);
            let stopping = *stop.borrow() || stop.has_changed().unwrap_or(true);
            match result {
                Ok(()) if stopping => return,
                Err(e) if e.is_cancelled() => return,
                Ok(()) => {
                    tracing::error!(task = %state.name, "task ended while the server runs; starting it again")
                }
                Err(e) => {
                    let what = panic_text(e.into_panic().as_ref());
                    tracing::error!(task = %state.name, panic = %what, "task panicked; starting it again");
                }
            }
            if stopping {
                return;
            }
            state.last_failure.store(mono_ms(), Ordering::Relaxed);
            if started.elapsed() >= STABLE {
                backoff = BACKOFF_MIN;
                short_runs = 0;
                state.failing.store(false, Ordering::Relaxed);
            } else {
                short_runs += 1;
                if short_runs >= LOOPING {
                    state.failing.store(true, Ordering::Relaxed);
                }
            }
            // counted last: whoever sees the count sees the failing flag that goes with it
            state.restarts.fetch_add(1, Ordering::Release);
            tracing::warn!(task = %state.name, backoff_ms = backoff.as_millis() as u64, restarts = state.restarts(), "restarting after backoff");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_panicking_task_is_started_again_and_stops_with_the_server() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let board = Board::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let sup = spawn(
            rt.handle(),
            &board,
            "test".into(),
            "control",
            stop_rx.clone(),
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let mut stop = stop_rx.clone();
                async move {
                    if n < 2 {
                        panic!("run {n} fails");
                    }
                    let _ = stop.changed().await;
                }
            },
        );
        // runs 0 and 1 panic (100 ms + 200 ms of backoff); run 2 stays up
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(runs.load(Ordering::SeqCst) == 3 && board.tasks()[0].running()) {
            assert!(std::time::Instant::now() < deadline, "not restarted");
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = board.tasks()[0].clone();
        assert_eq!(t.restarts(), 2);
        assert!(!t.failing(), "two short runs are not yet a crash loop");
        stop_tx.send(true).unwrap();
        rt.block_on(sup).unwrap();
        assert!(!t.running());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "not started again after stop"
        );
    }
}
