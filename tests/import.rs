//! The bulk path (`mxdns domain import`, `POST /v1/import`): all-or-nothing per batch,
//! resumable after an error or a kill; and a fleet certificate change over many DANE hosts
//! while Unbound validates.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{json, Value};

struct Setup {
    s: Server,
    admin: String,
    tenant: String,
    certs: tempfile::TempDir,
}

fn setup() -> Setup {
    let s = Server::start("");
    let admin = s.admin_token();
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "bulk"})),
    );
    assert_eq!(st, 201, "{v}");
    let tenant = v["tenantId"].as_str().unwrap().to_string();
    let certs = tempfile::tempdir().unwrap();
    let (cur, _) = make_cert(certs.path(), "current", 30);
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": cur})),
    );
    assert_eq!(st, 200, "{v}");
    Setup {
        s,
        admin,
        tenant,
        certs,
    }
}

fn mx(domain: &str) -> String {
    format!("{}.o-v1.mx.example.", domain.replace('.', "-"))
}

/// Runs `mxdns domain import` on `domains`; returns (exit code, stdout JSON).
fn import(s: &Server, domains: &[String], args: &[&str]) -> (i32, Value) {
    let file = s.dir.path().join("import.txt");
    std::fs::write(&file, domains.join("\n")).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data_dir())
        .args(["domain", "import"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

fn served(s: &Server, domain: &str) -> bool {
    let m = query_udp(s.dns, &mx(domain), RecordType::A, true, 1232).unwrap();
    m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
}

#[test]
fn a_failing_batch_changes_nothing_and_the_import_resumes() {
    let Setup {
        s, admin, tenant, ..
    } = setup();
    // d17.example belongs to another tenant: the batch holding it (11..20) must roll back
    let (_, other) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "other"})),
    );
    let other = other["tenantId"].as_str().unwrap();
    let (st, _) = http(
        s.api,
        "POST",
        &format!("/v1/tenants/{other}/domains"),
        Some(&admin),
        Some(&json!({"domain": "d17.example", "verified": true})),
    );
    assert_eq!(st, 201);
    let domains: Vec<String> = (1..=25).map(|i| format!("d{i}.example")).collect();
    let (code, v) = import(&s, &domains, &["--tenant", &tenant, "--batch", "10"]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["errorData"]["errorCode"], "ImportFailed");
    let why = v["errorData"]["errorDetails"].as_str().unwrap();
    assert!(
        why.contains("Batch 2 (domains 11..20)") && why.contains("d17.example"),
        "{why}"
    );
    // the server follows the store: wait (bounded) until the first batch is served
    s.wait_for(&mx("d10.example"), RecordType::A, 30, |m| {
        !m.answers.is_empty()
    });
    for (i, d) in domains.iter().enumerate() {
        assert_eq!(served(&s, d), i < 10, "{d}: only the first batch is in");
    }
    let (st, v) = http(
        s.api,
        "GET",
        "/v1/domains/d11.example/dnssec",
        Some(&admin),
        None,
    );
    assert_eq!(st, 404, "d11 was not even added: {v}");

    // without the bad line, the same import resumes: 10 skipped, 14 enabled
    let fixed: Vec<String> = domains
        .iter()
        .filter(|d| *d != "d17.example")
        .cloned()
        .collect();
    let (code, v) = import(&s, &fixed, &["--tenant", &tenant, "--batch", "10"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["import"],
        json!({"total": 24, "enabled": 14, "already": 10, "batches": 3})
    );
    s.wait_for(&mx("d25.example"), RecordType::A, 5, |m| {
        !m.answers.is_empty()
    });
    for d in &fixed {
        assert!(served(&s, d), "{d}");
        let m = query_udp(
            s.dns,
            &format!("_25._tcp.{}", mx(d)),
            RecordType::TLSA,
            true,
            1232,
        )
        .unwrap();
        assert_eq!(tlsa_data(&m).len(), 1, "{d}: DANE too");
    }
    assert!(!served(&s, "d17.example"));

    // a bad name anywhere: nothing at all is imported, every bad line is named
    let (code, v) = import(
        &s,
        &["ok.example".into(), "not a name".into(), "x..y".into()],
        &["--tenant", &tenant],
    );
    assert_eq!(code, 2);
    let why = v["errorData"]["errorDetails"].as_str().unwrap();
    assert!(why.contains("line 2") && why.contains("line 3"), "{why}");
    std::thread::sleep(Duration::from_millis(600));
    assert!(!served(&s, "ok.example"));

    // the API does the same (admin only)
    let (st, _) = http(
        s.api,
        "POST",
        "/v1/import",
        None,
        Some(&json!({"domains": "a.example"})),
    );
    assert_eq!(st, 401);
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/import",
        Some(&admin),
        Some(&json!({"domains": "api1.example\napi2.example", "tenant": tenant})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["import"]["enabled"], 2);
    assert!(
        served(&s, "api1.example") && served(&s, "api2.example"),
        "served when the API answers"
    );
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/import",
        Some(&admin),
        Some(&json!({"domains": "unknown.example"})),
    );
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (409, Some("ImportFailed")),
        "{v}"
    );
}

#[test]
fn an_import_killed_midway_resumes_and_every_domain_is_served() {
    let Setup { s, tenant, .. } = setup();
    let n = 60_000;
    let domains: Vec<String> = (0..n).map(|i| format!("k{i}.example")).collect();
    let file = s.dir.path().join("big.txt");
    std::fs::write(&file, domains.join("\n")).unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data_dir())
        .args(["domain", "import"])
        .arg(&file)
        // batches of exactly 500 (no cut by time), so the boundary is known
        .args([
            "--tenant",
            &tenant,
            "--batch",
            "500",
            "--max-hold-ms",
            "600000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kill it once a few batches are in: it prints a line per batch when not on a terminal
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = 0;
    while lines < 4 {
        let mut l = String::new();
        assert!(
            std::io::BufRead::read_line(&mut err, &mut l).unwrap() > 0,
            "import ended early"
        );
        if l.starts_with("import: ") {
            lines += 1;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed before the end");
    // what the store holds (the API reads it): whole batches only; the first domain it lacks
    let admin = s.admin_token();
    let stored = |d: &String| {
        let (st, v) = http(
            s.api,
            "GET",
            &format!("/v1/domains/{d}/dnssec"),
            Some(&admin),
            None,
        );
        st == 200 && v["status"]["dnssecEnabled"] == true
    };
    let (mut lo, mut hi) = (0, n); // stored(domains[i]) holds exactly for i < boundary
    while lo < hi {
        let mid = (lo + hi) / 2;
        if stored(&domains[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    assert!(lo > 0 && lo < n, "killed midway: {lo}");
    assert_eq!(lo % 500, 0, "a batch is in the store whole or not at all");
    // the server catches up with the store (bounded), then serves exactly that
    s.wait_for(&mx(&domains[lo - 1]), RecordType::A, 60, |m| {
        !m.answers.is_empty()
    });
    let first_missing = domains
        .iter()
        .position(|d| !served(&s, d))
        .expect("killed midway");
    assert_eq!(first_missing, lo, "served = stored");
    assert!(domains[first_missing..]
        .iter()
        .step_by(97)
        .all(|d| !served(&s, d)));

    let (code, v) = import(&s, &domains, &["--tenant", &tenant, "--batch", "500"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["import"]["already"].as_u64().unwrap(),
        first_missing as u64
    );
    assert_eq!(
        v["import"]["enabled"].as_u64().unwrap(),
        (n - first_missing) as u64
    );
    s.wait_for(&mx(&domains[n - 1]), RecordType::A, 30, |m| {
        !m.answers.is_empty()
    });
    for d in domains.iter().step_by(37) {
        assert!(served(&s, d), "{d}");
    }
}

#[test]
fn fleet_certificate_change_over_many_dane_hosts_keeps_unbound_validating() {
    let Setup {
        s,
        admin,
        tenant,
        certs,
    } = setup();
    let n = 3_000;
    let domains: Vec<String> = (0..n).map(|i| format!("f{i}.example")).collect();
    let (code, v) = import(&s, &domains, &["--tenant", &tenant]);
    assert_eq!(code, 0, "{v}");
    s.wait_for(&mx(&domains[n - 1]), RecordType::A, 30, |m| {
        !m.answers.is_empty()
    });
    let ds = s.cmd(&["keys", "ds"]);
    let u = Unbound::start(&s, &ds);
    // a querier asks Unbound for the TLSA of a spread of hosts throughout
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (addr, sample): (_, Vec<String>) = (
        u.addr,
        domains
            .iter()
            .step_by(150)
            .map(|d| format!("_25._tcp.{}", mx(d)))
            .collect(),
    );
    let q = std::thread::spawn(move || {
        let mut errors = Vec::new();
        let mut n = 0;
        let t0 = Instant::now();
        while !flag.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(120) {
            for name in &sample {
                match query_udp(addr, name, RecordType::TLSA, true, 1232) {
                    Ok(m)
                        if m.metadata.response_code == ResponseCode::NoError
                            && m.metadata.authentic_data
                            && !tlsa_data(&m).is_empty() =>
                    {
                        n += 1
                    }
                    other => errors.push(format!("{name}: {other:?}")),
                }
            }
        }
        (n, errors)
    });
    let mut last = Vec::new();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let (cur, spki) = make_cert(certs.path(), &format!("round{round}"), 30);
        let (st, v) = http(
            s.api,
            "PUT",
            "/v1/partitions/o-v1/certificates",
            Some(&admin),
            Some(&json!({"current": cur})),
        );
        assert_eq!(st, 200, "{v}");
        // every host serves the new TLSA as soon as the API answered (one shared RRset)
        for d in domains.iter().step_by(211) {
            let m = query_udp(
                s.dns,
                &format!("_25._tcp.{}", mx(d)),
                RecordType::TLSA,
                true,
                1232,
            )
            .unwrap();
            assert_eq!(tlsa_data(&m), vec![spki.clone()], "{d}");
        }
        last = vec![spki];
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let (answers, errors) = q.join().unwrap();
    assert!(errors.is_empty(), "{errors:#?}\n{}", u.log());
    assert!(answers > 100, "{answers}");
    // Unbound sees the last certificate once its cached TLSA RRset (host_ttl 300 s) is
    // refreshed; straight from the server, every host has it now
    let m = query_udp(
        s.dns,
        &format!("_25._tcp.{}", mx(&domains[0])),
        RecordType::TLSA,
        true,
        1232,
    )
    .unwrap();
    assert_eq!(tlsa_data(&m), last);
    assert!(m.answers.iter().any(|r| matches!(&r.data, RData::CNAME(_))));
}
