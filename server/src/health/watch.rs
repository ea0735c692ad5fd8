//! The observer: reads the store (on its own connection, in a blocking thread of the control
//! plane) so that a health report never has to.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use hickory_proto::rr::Name;
use keys::rollover::{self, KeyRole, KeyTimes};
use provisioner::Store;

use super::Health;
use crate::lifecycle;
use crate::zonemgr::{self, mono_ms};

/// How often the key schedule is looked at (it reads the largest TTL of each zone: a scan).
const KEYS_EVERY_MS: u64 = 60_000;

/// Per zone: the next scheduled key step seen while none was due, and since when one is due.
#[derive(Debug, Default, Clone, Copy)]
struct KeyWatch {
    scheduled: Option<u64>,
    due_since: Option<u64>,
}

#[derive(Default)]
pub(super) struct Watch {
    store: Option<Store>,
    keys: BTreeMap<Name, KeyWatch>,
}

impl Health {
    /// One observation: the change log's end and the oldest change the follower has not
    /// applied; the key schedule when a minute has passed (or `keys_now`). Blocking (SQLite).
    pub fn observe(&self, keys_now: bool) -> anyhow::Result<()> {
        let result = self.observe_inner(keys_now);
        let mut err = self
            .observed
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *err = result.as_ref().err().map(|e| e.to_string());
        result
    }

    fn observe_inner(&self, keys_now: bool) -> anyhow::Result<()> {
        // only the observer takes this; a panic in an earlier observation left at most a
        // connection or a key watch that the next one overwrites
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let watch = &mut *watch;
        if watch.store.is_none() {
            let config = self.mgr.config();
            watch.store = Some(Store::open(&zonemgr::db_path(&config.data_dir))?);
        }
        let store = watch.store.as_ref().expect("opened");
        let obs = &self.observed;
        // the follower's position first: a change applied after this read is not counted
        let applied = self.mgr.progress.applied_seq();
        let last = store.last_change()?;
        let first = store.first_change_after(applied)?;
        obs.store_seq.store(last, Ordering::Release);
        obs.first_unapplied
            .store(first.map_or(0, |f| f.0), Ordering::Release);
        obs.first_unapplied_at
            .store(first.map_or(0, |f| f.1), Ordering::Release);
        let keys_at = obs.keys_at.load(Ordering::Acquire);
        if keys_now || keys_at == 0 || mono_ms().saturating_sub(keys_at) >= KEYS_EVERY_MS {
            self.observe_keys(store, &mut watch.keys)?;
            obs.keys_at.store(mono_ms(), Ordering::Release);
        }
        obs.at.store(mono_ms(), Ordering::Release);
        Ok(())
    }

    /// The rollover planner at `now` for every zone: whether a step is due (and since when:
    /// its scheduled time if it was seen coming, else the first time it was seen due).
    fn observe_keys(
        &self,
        store: &Store,
        seen: &mut BTreeMap<Name, KeyWatch>,
    ) -> anyhow::Result<()> {
        let config = self.mgr.config();
        let now = self.mgr.now() as u64;
        let (mut next, mut due): (Option<u64>, Option<(u64, Name)>) = (None, None);
        let mut zone_keys = Vec::new();
        for zone in config.all_zones()? {
            let rows = store.keys(&zone)?;
            let policy = config.key_policy(&zone, store.max_ttl(&zone)?);
            let times: Vec<KeyTimes> = rows.iter().map(lifecycle::times_of).collect();
            let parent = config.parent_kind(&zone);
            let (mut is_due, mut zone_next) = (false, None::<u64>);
            for role in [KeyRole::Ksk, KeyRole::Zsk] {
                let plan = rollover::plan(role, &times, now, &policy, parent);
                // waiting for the parent's DS is the operator's (or the parent's) step
                // (the fleet's wait has its own check: `keys.fleet_wait_alarm`)
                is_due |= plan.actions.iter().any(|a| !a.is_wait());
                if let Some(t) = plan.next_event() {
                    zone_next = Some(zone_next.map_or(t, |n| n.min(t)));
                }
            }
            let w = seen.entry(zone.clone()).or_default();
            if is_due {
                let since = w
                    .due_since
                    .or(w.scheduled.filter(|t| *t <= now))
                    .unwrap_or(now);
                w.due_since = Some(since);
                if due.as_ref().is_none_or(|(d, _)| since < *d) {
                    due = Some((since, zone.clone()));
                }
            } else {
                w.due_since = None;
                w.scheduled = zone_next;
            }
            if let Some(t) = zone_next {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            zone_keys.push(super::ZoneKeys {
                zone: zone.to_ascii(),
                next: zone_next,
                keys: rows
                    .iter()
                    .zip(&times)
                    .map(|(r, t)| {
                        (
                            lifecycle::role_of(r).as_str(),
                            t.state(now, &policy).as_str(),
                        )
                    })
                    .collect(),
            });
        }
        let obs = &self.observed;
        *obs.zone_keys.lock().unwrap_or_else(PoisonError::into_inner) = zone_keys;
        obs.key_next.store(next.unwrap_or(0), Ordering::Release);
        if let Some((_, zone)) = &due {
            *obs.key_due_zone
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = zone.to_ascii();
        }
        obs.key_due_since
            .store(due.map_or(0, |d| d.0), Ordering::Release);
        Ok(())
    }
}
