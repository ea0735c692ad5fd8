//! Crash safety: requests in flight, the server killed with SIGKILL, restarted. Every change
//! the API acknowledged is served afterwards, and nothing is served that the store does not
//! hold as enabled.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::json;

#[test]
fn acknowledged_changes_survive_sigkill() {
    // many enables at once: the tenant rate limit is not what this test is about
    let mut s = Server::start("[api]\ntenant_rate = 0\n");
    let admin = s.admin_token();
    let (_, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "crash"})),
    );
    let tenant = v["tenantId"].as_str().unwrap().to_string();
    let token = v["token"].as_str().unwrap().to_string();
    let n = 200;
    for i in 0..n {
        let (st, _) = http(
            s.api,
            "POST",
            &format!("/v1/tenants/{tenant}/domains"),
            Some(&admin),
            Some(&json!({"domain": format!("d{i}.example"), "verified": true})),
        );
        assert_eq!(st, 201);
    }
    // four clients enable DNSSEC as fast as they can; the server is killed in the middle
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let api = s.api;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
            std::thread::spawn(move || {
                for i in (w..n).step_by(4) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let r = std::panic::catch_unwind(|| {
                        http(
                            api,
                            "POST",
                            &format!("/v1/domains/d{i}.example/dnssec/enable"),
                            Some(&token),
                            None,
                        )
                    });
                    match r {
                        Ok((200, _)) => acked.lock().unwrap().push(i),
                        _ => return, // connection refused or cut: the server is gone
                    }
                }
            })
        })
        .collect();
    // kill after some acknowledgements, while requests are in flight
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 40 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut child = s.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 40,
        "only {} acknowledged before the kill",
        acked.len()
    );
    assert!(
        acked.len() < n,
        "the kill came after everything was done; the test proves nothing"
    );

    s.spawn();
    // every acknowledged change is served
    for i in &acked {
        let m = query_udp(
            s.dns,
            &format!("d{i}-example.o-v1.mx.example."),
            RecordType::A,
            true,
            1232,
        )
        .unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "acknowledged d{i} lost"
        );
        assert!(!m.answers.is_empty());
    }
    // nothing else: every served host is enabled in the store, and vice versa
    for i in 0..n {
        let served = query_udp(
            s.dns,
            &format!("d{i}-example.o-v1.mx.example."),
            RecordType::A,
            true,
            1232,
        )
        .unwrap()
        .metadata
        .response_code
            == ResponseCode::NoError;
        let (_, v) = http(
            s.api,
            "GET",
            &format!("/v1/domains/d{i}.example/dnssec"),
            Some(&token),
            None,
        );
        assert_eq!(
            served,
            v["status"]["dnssecEnabled"] == true,
            "d{i}: served={served} but store says {v}"
        );
    }
}
