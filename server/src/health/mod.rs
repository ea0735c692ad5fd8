//! Health and readiness: what `GET /v1/health` and `GET /v1/ready` report.
//!
//! A report is cheap and never blocks: it reads atomics kept by the zone manager
//! ([`crate::zonemgr::Progress`]: the current hold and since when, the follower's position, the
//! earliest signature expiry per zone), by the supervisor ([`crate::supervise::Board`]) and by
//! the observer (`watch`: a control-plane task that reads the store once a second on its own
//! connection, off the async threads: the log's end, the oldest change not yet served, and the
//! key rollover schedule once a minute). No SQLite call and no lock the report checks.
//!
//! Unhealthy (503) when: one hold of the zone manager has lasted longer than
//! `health.zone_manager_stuck`; the follower is more than `follower_max_entries` entries or
//! `follower_max_age` seconds behind the store; a zone's earliest RRSIG expires within its
//! signature margin; a key step is due for longer than `key_step_overdue`; a key step has waited
//! for a secondary for longer than `keys.fleet_wait_alarm` (the check names it, from what the
//! rollover scheduler last saw: `fleet::Board`); a supervised task is
//! in a crash loop or not running; the observer has not run for [`OBSERVER_STALE_MS`].
//! Not ready (503) also while the zones are not built or DNS is not listening.

#[cfg(test)]
mod tests;
mod watch;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::supervise::Board;
use crate::zonemgr::{mono_ms, ZoneManager};

/// The observer runs every second; older than this, its figures are not trusted.
pub const OBSERVER_STALE_MS: u64 = 10_000;
/// A supervised task down (between restarts) for longer than this is a problem.
const TASK_DOWN_MS: u64 = 10_000;

/// What the observer last saw in the store.
#[derive(Debug, Default)]
struct Observed {
    /// `mono_ms()` of the last observation (0: never).
    at: AtomicU64,
    /// The store's last change-log sequence number.
    store_seq: AtomicI64,
    /// The first change after the follower's position then (0: none) and when it was written.
    first_unapplied: AtomicI64,
    first_unapplied_at: AtomicI64,
    /// `mono_ms()` of the last look at the key schedule (0: never).
    keys_at: AtomicU64,
    /// The earliest next scheduled key step of any zone (unix seconds, 0: none).
    key_next: AtomicU64,
    /// Since when a key step has been due (unix seconds, 0: none due), and in which zone.
    key_due_since: AtomicU64,
    key_due_zone: Mutex<String>,
    /// The last observation failed (its error).
    error: Mutex<Option<String>>,
    /// Per zone, at the last look at the key schedule: its keys and next step (metrics).
    zone_keys: Mutex<Vec<ZoneKeys>>,
}

/// A zone's keys as the observer last saw them (once a minute).
#[derive(Debug, Clone, Default)]
pub struct ZoneKeys {
    pub zone: String,
    /// The next scheduled key step (unix seconds).
    pub next: Option<u64>,
    /// (role, state) of each key.
    pub keys: Vec<(&'static str, &'static str)>,
}

/// Health of one server: the zone manager, the supervised tasks and what the observer saw.
pub struct Health {
    pub mgr: Arc<ZoneManager>,
    pub board: Arc<Board>,
    observed: Observed,
    /// Set once every DNS listener was started.
    dns_listening: AtomicBool,
    /// The observer's own state and store connection (only the observer takes it).
    watch: Mutex<watch::Watch>,
    /// The last findings of the endpoint probes (`probes`).
    pub probes: crate::probes::Probes,
}

/// A report: healthy or not, why not, and the figures as JSON.
pub struct Report {
    pub ok: bool,
    pub problems: Vec<String>,
    pub body: Value,
}

impl Health {
    pub fn new(mgr: Arc<ZoneManager>, board: Arc<Board>) -> Self {
        Self {
            mgr,
            board,
            observed: Observed::default(),
            dns_listening: AtomicBool::new(false),
            watch: Mutex::new(watch::Watch::default()),
            probes: crate::probes::Probes::default(),
        }
    }

    /// Per zone, its keys and next key step at the observer's last look (metrics).
    pub fn zone_keys(&self) -> Vec<ZoneKeys> {
        self.observed
            .zone_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_dns_listening(&self) {
        self.dns_listening.store(true, Ordering::Release);
    }

    /// `GET /v1/health`.
    pub fn report(&self) -> Report {
        let now = self.mgr.now();
        let config = self.mgr.config();
        let th = &config.health;
        let progress = &self.mgr.progress;
        let obs = &self.observed;
        let mut problems = Vec::new();

        let holding = progress.holding();
        if let Some((ms, what)) = holding {
            if ms > th.zone_manager_stuck * 1000 {
                problems.push(format!(
                    "zone manager held for {} s ({what}), more than {} s",
                    ms / 1000,
                    th.zone_manager_stuck
                ));
            }
        }

        let observed_at = obs.at.load(Ordering::Acquire);
        let observed_ago = (observed_at != 0).then(|| mono_ms().saturating_sub(observed_at));
        match observed_ago {
            None => problems.push("the store has not been observed yet".into()),
            Some(ms) if ms > OBSERVER_STALE_MS => problems.push(format!(
                "the health observer has not run for {} s",
                ms / 1000
            )),
            _ => {}
        }
        if let Some(e) = obs.error.try_lock().ok().and_then(|e| e.clone()) {
            problems.push(format!("the store could not be read: {e}"));
        }

        let applied = progress.applied_seq();
        let store_seq = obs.store_seq.load(Ordering::Acquire);
        let behind = (store_seq - applied).max(0) as u64;
        // the oldest change not yet served: the observed first entry after the follower's
        // position then, while the follower is still behind (it may have moved past that entry
        // since: the age is then high by what it applied within the last observation period)
        let first = obs.first_unapplied.load(Ordering::Acquire);
        let behind_s = if first != 0 && applied < store_seq {
            (now as i64 - obs.first_unapplied_at.load(Ordering::Acquire)).max(0) as u64
        } else {
            0
        };
        if behind > th.follower_max_entries {
            problems.push(format!(
                "the follower is {behind} change-log entries behind the store (more than {})",
                th.follower_max_entries
            ));
        }
        if behind_s > th.follower_max_age {
            problems.push(format!(
                "the oldest change not yet served was written {behind_s} s ago (more than {} s)",
                th.follower_max_age
            ));
        }

        let catalog = self.mgr.catalog.load();
        let expiries = progress.earliest_expiry();
        let mut zones = Vec::new();
        for (idx, origin) in config.all_zones().unwrap_or_default().iter().enumerate() {
            let earliest = expiries.get(idx).copied().unwrap_or(0);
            let margin = config.signature_margin(origin);
            let left = earliest as i64 - now as i64;
            if earliest != 0 && left < margin as i64 {
                problems.push(format!(
                    "the earliest signature of {origin} expires in {} h (margin {} h)",
                    left / 3600,
                    margin / 3600
                ));
            }
            let z = catalog.get(origin);
            zones.push(json!({
                "zone": origin.to_ascii(),
                "serial": z.map(|z| z.serial()),
                "names": z.map(|z| z.len()),
                "earliestSignatureExpiry": (earliest != 0).then(|| crate::lifecycle::utc(earliest as u64)),
                "secondsToEarliestExpiry": (earliest != 0).then_some(left),
            }));
        }
        drop(catalog);

        let due_since = obs.key_due_since.load(Ordering::Acquire);
        let overdue = if due_since != 0 {
            (now as u64).saturating_sub(due_since)
        } else {
            0
        };
        if due_since != 0 && overdue > th.key_step_overdue {
            let zone = obs
                .key_due_zone
                .try_lock()
                .map(|z| z.clone())
                .unwrap_or_default();
            problems.push(format!(
                "a key rollover step of {zone} has been due for {overdue} s (more than {} s)",
                th.key_step_overdue
            ));
        }

        // a key step held by the fleet for longer than `keys.fleet_wait_alarm`
        let mut fleet = Vec::new();
        for w in self.mgr.fleet.waits() {
            let waited = (now as u64).saturating_sub(w.since);
            if waited > config.keys.fleet_wait_alarm {
                problems.push(format!(
                    "the key rollover of {} has waited {waited} s for the fleet (more than keys.fleet_wait_alarm = {} s): {}",
                    w.zone,
                    config.keys.fleet_wait_alarm,
                    w.reason()
                ));
            }
            fleet.push(json!({
                "zone": w.zone,
                "since": crate::lifecycle::utc(w.since),
                "waitedSeconds": waited,
                "keyVersion": w.key_version,
                "reason": w.reason(),
                "lagging": w.lagging,
            }));
        }

        let mut tasks = Vec::new();
        for t in self.board.tasks().iter() {
            let down_ms = (!t.running()).then(|| t.since_failure_ms().unwrap_or(u64::MAX));
            if t.failing() {
                problems.push(format!(
                    "task {} keeps failing ({} restarts)",
                    t.name,
                    t.restarts()
                ));
            } else if down_ms.is_some_and(|ms| ms > TASK_DOWN_MS) {
                problems.push(format!("task {} is not running", t.name));
            }
            tasks.push(json!({
                "name": t.name, "plane": t.plane, "running": t.running(),
                "restarts": t.restarts(), "failing": t.failing(),
            }));
        }

        let (endpoint_problems, endpoint_warnings) =
            self.probes.health(config.dane.expiry_warning_days);
        problems.extend(endpoint_problems);

        let key_next = obs.key_next.load(Ordering::Acquire);
        let ok = problems.is_empty();
        let body = json!({
            "status": if ok { "ok" } else { "unhealthy" },
            "problems": problems,
            "zones": zones,
            "zoneManager": {
                "heldMs": holding.map(|h| h.0),
                "heldFor": holding.map(|h| h.1),
                "longestHoldMs": progress.longest_hold_ms(),
                "recentLongestHoldMs": progress.recent_longest_hold_ms(),
                "holds": progress.holds(),
                "recoveredPanics": progress.recovered_panics(),
                "lastRefreshMsAgo": match progress.refreshed_at() {
                    0 => None,
                    t => Some(mono_ms().saturating_sub(t)),
                },
            },
            "follower": {
                "storeSeq": store_seq,
                "appliedSeq": applied,
                "behindEntries": behind,
                "behindSeconds": behind_s,
            },
            "keys": {
                "nextStep": (key_next != 0).then(|| crate::lifecycle::utc(key_next)),
                "dueSince": (due_since != 0).then(|| crate::lifecycle::utc(due_since)),
                "waitingForFleet": fleet,
            },
            "tasks": tasks,
            "observedMsAgo": observed_ago,
            "daneEndpoints": self.probes.all(),
            "warnings": endpoint_warnings,
        });
        Report { ok, problems, body }
    }

    /// `GET /v1/ready`: healthy, every zone built and published, DNS listening on every
    /// socket.
    pub fn ready(&self) -> Report {
        let health = self.report();
        let mut problems = health.problems;
        if !self.mgr.progress.built() {
            problems.push("the zones are not built yet".into());
        }
        if !self.dns_listening.load(Ordering::Acquire) {
            problems.push("DNS is not listening yet".into());
        }
        for t in self.board.tasks().iter() {
            if t.plane == "dns" && !t.running() {
                problems.push(format!("DNS task {} is not running", t.name));
            }
        }
        problems.dedup();
        let ok = problems.is_empty();
        Report {
            ok,
            body: json!({"status": if ok { "ready" } else { "not ready" }, "problems": problems}),
            problems,
        }
    }
}
