//! Supervision and health, end to end with the real binary (debug build: its test hooks).
//!
//! - A UDP loop that panics is started again and DNS answers again on UDP; three panics in a
//!   row are reported by health as a crash loop.
//! - `GET /v1/health` and `GET /v1/ready` answer 503 while the follower is stopped and changes
//!   written by another process wait, and 200 again once it has caught up.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;

/// Polls `GET path` until `pred(status, body)` holds (at most `secs`).
fn wait_http(
    s: &Server,
    path: &str,
    secs: u64,
    pred: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (st, v) = http(s.api, "GET", path, None, None);
        if pred(st, &v) {
            return (st, v);
        }
        assert!(Instant::now() < deadline, "{path}: {st} {v}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_panicking_udp_loop_is_restarted_and_answers_again() {
    // one UDP socket and one DNS thread: the answers after the panic come from the same loop
    let s = Server::start_with_env(
        "workers = 1\n",
        &[("MXDNS_TEST_PANIC_QNAME", "boom.mx.example")],
    );
    let (st, _) = wait_http(&s, "/v1/ready", 10, |st, _| st == 200);
    assert_eq!(st, 200);
    for round in 1..=3u64 {
        // the loop panics on this query: no answer
        assert!(
            query_udp(s.dns, "boom.mx.example.", RecordType::A, false, 1232).is_err(),
            "answered the panic name"
        );
        // started again after its backoff (100 ms, 200 ms, 400 ms): answers again
        s.wait_for("mx.example.", RecordType::SOA, 10, |m| {
            !m.answers.is_empty()
        });
        let (_, v) = wait_http(&s, "/v1/health", 10, |_, v| {
            v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == format!("udp {} #0", s.dns) && t["restarts"] == round)
        });
        if round < 3 {
            assert_eq!(v["status"], "ok", "a loop that runs again is healthy: {v}");
        } else {
            // three short runs in a row: a crash loop, reported (DNS still answers)
            assert_eq!(v["status"], "unhealthy", "{v}");
            assert!(
                v["problems"][0].as_str().unwrap().contains("keeps failing"),
                "{v}"
            );
        }
    }
    assert!(
        s.log().contains("task panicked; starting it again"),
        "{}",
        s.log()
    );
    // TCP was never affected
    let mut c = Tcp::connect(s.dns);
    c.send(&make_query("mx.example.", RecordType::SOA, false, None));
    assert!(!c.recv().answers.is_empty());
}

#[test]
fn health_is_503_while_the_follower_is_stopped_and_200_once_it_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let pause = dir.path().join("pause-follower");
    let s = Server::start_with_env(
        "[health]\nfollower_max_entries = 0\n",
        &[("MXDNS_TEST_PAUSE_FOLLOWER", pause.to_str().unwrap())],
    );
    let (_, v) = wait_http(&s, "/v1/health", 10, |st, _| st == 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["zones"].as_array().unwrap().len(), 2, "{v}");
    wait_http(&s, "/v1/ready", 10, |st, v| {
        st == 200 && v["status"] == "ready"
    });

    // the follower stops; another process writes a host
    std::fs::write(&pause, b"").unwrap();
    s.cmd(&["host", "add", "late.o-v1.mx.example", "--a", "192.0.2.77"]);
    let (st, v) = wait_http(&s, "/v1/health", 10, |st, _| st == 503);
    assert_eq!(v["status"], "unhealthy");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("change-log entries behind the store"),
        "{v}"
    );
    assert_eq!(st, 503);
    let (st, v) = http(s.api, "GET", "/v1/ready", None, None);
    assert_eq!((st, v["status"].as_str()), (503, Some("not ready")), "{v}");
    let m = query_udp(s.dns, "late.o-v1.mx.example.", RecordType::A, true, 1232).unwrap();
    assert!(
        m.answers.is_empty(),
        "not served while the follower is stopped"
    );

    // it runs again: the host is served and health is back
    std::fs::remove_file(&pause).unwrap();
    s.wait_for("late.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    let (_, v) = wait_http(&s, "/v1/health", 10, |st, _| st == 200);
    assert_eq!(v["follower"]["behindEntries"], 0, "{v}");
    wait_http(&s, "/v1/ready", 10, |st, _| st == 200);
}
