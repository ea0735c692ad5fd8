//! Health with a clock passed in: each check turns the report unhealthy and back.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use provisioner::store::{Batch, BatchOp};
use provisioner::Store;

use super::*;
use crate::config::Config;
use crate::zonemgr::{db_path, Clock};

struct TestClock(AtomicU32);
impl Clock for TestClock {
    fn now(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u32 = 1_800_000_000;

fn setup(config: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<TestClock>, Health) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config(&mut c);
    let clock = Arc::new(TestClock(AtomicU32::new(T0)));
    let mgr = Arc::new(ZoneManager::open(c, clock.clone()).unwrap());
    let health = Health::new(mgr, Arc::new(Board::default()));
    (dir, clock, health)
}

fn put_host(dir: &Path, host: &str, at: u32) {
    let mut store = Store::open(&db_path(dir)).unwrap();
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    let owner = Name::from_ascii(host).unwrap();
    let data = vec![RData::A(A::new(192, 0, 2, 1))];
    let batch = Batch {
        ops: vec![BatchOp::set(&zone, &owner, RecordType::A, 300, data)],
    };
    store.write(&batch, at as i64).unwrap();
}

/// The report after a fresh observation, and whether a problem contains `what`.
fn check(h: &Health, what: &str) -> (bool, bool) {
    h.observe(true).unwrap();
    let r = h.report();
    assert_eq!(r.ok, r.problems.is_empty());
    assert_eq!(
        r.body["status"],
        if r.ok { "ok" } else { "unhealthy" },
        "{}",
        r.body
    );
    (r.ok, r.problems.iter().any(|p| p.contains(what)))
}

#[test]
fn healthy_after_start() {
    let (_dir, _clock, h) = setup(|_| {});
    let (ok, _) = check(&h, "");
    assert!(ok, "{}", h.report().body);
    let body = h.report().body;
    assert_eq!(body["zones"].as_array().unwrap().len(), 2);
    assert!(
        body["zones"][0]["secondsToEarliestExpiry"]
            .as_i64()
            .unwrap()
            > 7 * 86400
    );
    // not ready before DNS listens
    assert!(!h.ready().ok);
    h.set_dns_listening();
    assert!(h.ready().ok, "{}", h.ready().body);
}

#[test]
fn signatures_about_to_expire_turn_health_503_until_refreshed() {
    let (_dir, clock, h) = setup(|_| {});
    assert_eq!(check(&h, "earliest signature"), (true, false));
    // ten days later without a refresh: the earliest signatures (14 d validity minus up to a
    // day of jitter) expire in less than the margin (half of the 7-day refresh window)
    clock.0.store(T0 + 10 * 86400, Ordering::SeqCst);
    assert_eq!(check(&h, "earliest signature"), (false, true));
    assert!(!h.ready().ok);
    h.mgr.refresh_signatures().unwrap();
    assert_eq!(check(&h, "earliest signature"), (true, false));
}

#[test]
fn a_follower_behind_the_store_turns_health_503_until_it_catches_up() {
    let (dir, clock, h) = setup(|_| {});
    // one change the follower has not applied: within the thresholds
    put_host(dir.path(), "a.o-v1.mx.example.", T0);
    let (ok, behind) = check(&h, "the oldest change not yet served");
    assert!(ok && !behind);
    assert_eq!(h.report().body["follower"]["behindEntries"], 1);
    // the follower stopped for longer than follower_max_age
    clock.0.store(T0 + 301, Ordering::SeqCst);
    assert_eq!(check(&h, "the oldest change not yet served"), (false, true));
    h.mgr.sync().unwrap();
    assert_eq!(check(&h, "the oldest change not yet served"), (true, false));
    assert_eq!(h.report().body["follower"]["behindEntries"], 0);
}

#[test]
fn the_age_stays_known_while_the_follower_moves_but_is_still_behind() {
    let (dir, clock, h) = setup(|_| {});
    for (i, host) in ["a", "b", "c"].iter().enumerate() {
        put_host(
            dir.path(),
            &format!("{host}.o-v1.mx.example."),
            T0 + i as u32,
        );
    }
    h.mgr.sync().unwrap();
    let applied = h.mgr.progress.applied_seq();
    assert_eq!(applied, 3);
    // what the observer saw a moment ago: the log two entries further, its first entry after
    // the follower's position then (seq 2, written at T0) already applied since
    h.observed.store_seq.store(5, Ordering::Release);
    h.observed.first_unapplied.store(2, Ordering::Release);
    h.observed
        .first_unapplied_at
        .store(T0 as i64, Ordering::Release);
    clock.0.store(T0 + 400, Ordering::SeqCst);
    let r = h.report();
    assert_eq!(r.body["follower"]["behindEntries"], 2);
    assert_eq!(r.body["follower"]["behindSeconds"], 400, "{}", r.body);
    assert!(!r.ok, "older than follower_max_age");
    // observed again: caught up
    h.observe(false).unwrap();
    assert_eq!(h.report().body["follower"]["behindSeconds"], 0);
}

#[test]
fn too_many_entries_behind_is_unhealthy_at_once() {
    let (dir, _clock, h) = setup(|c| c.health.follower_max_entries = 1);
    put_host(dir.path(), "a.o-v1.mx.example.", T0);
    assert_eq!(check(&h, "entries behind"), (true, false));
    put_host(dir.path(), "b.o-v1.mx.example.", T0);
    assert_eq!(check(&h, "entries behind"), (false, true));
    h.mgr.sync().unwrap();
    assert_eq!(check(&h, "entries behind"), (true, false));
}

#[test]
fn a_key_step_overdue_turns_health_503_until_it_is_done() {
    let (dir, clock, h) = setup(|_| {});
    assert_eq!(check(&h, "key rollover step"), (true, false));
    // 31 days later the ZSK's successor should have been published a day ago (30-day
    // lifetime); refresh first so that only the key step is wrong
    let t = T0 + 31 * 86400;
    clock.0.store(t, Ordering::SeqCst);
    h.mgr.refresh_signatures().unwrap();
    assert_eq!(check(&h, "key rollover step"), (false, true));
    let body = h.report().body;
    assert!(body["keys"]["dueSince"].is_string(), "{body}");
    // the scheduler (or cron) runs the step: healthy again
    let mut store = Store::open(&db_path(dir.path())).unwrap();
    crate::lifecycle::check_all(h.mgr.config(), &mut store, t as u64).unwrap();
    h.mgr.sync().unwrap();
    assert_eq!(check(&h, "key rollover step"), (true, false));
}

#[test]
fn a_long_hold_of_the_zone_manager_is_reported_without_waiting_for_it() {
    let (_dir, _clock, h) = setup(|c| c.health.zone_manager_stuck = 0);
    assert_eq!(check(&h, "zone manager held"), (true, false));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let mgr = h.mgr.clone();
        s.spawn(move || {
            mgr.hold_for_test(|| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        });
        held_rx.recv().unwrap();
        // held for more than 0 s after a millisecond: poll the report (it never blocks)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = h.report();
            if r.problems.iter().any(|p| p.contains("zone manager held")) {
                assert_eq!(r.body["zoneManager"]["heldFor"], "a test hold");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}", r.body);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        release_tx.send(()).unwrap();
    });
    assert_eq!(check(&h, "zone manager held"), (true, false));
}
