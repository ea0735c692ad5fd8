//! Get-DnssecStatusForVerifiedDomain's live checks against real local servers: Unbound as the
//! validating resolver (our trust anchor, stub zones to our server, and local zones for the test
//! customer domains) and an HTTPS server (`openssl s_server`) with a test CA for MTA-STS, on
//! 127.0.0.2: the one special-purpose address the configuration allows the checks to connect to.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mx_and_mta_sts_findings() {
    let tls = tempfile::tempdir().unwrap();
    let t = tls.path();
    // a test CA and a policy server certificate signed by it
    openssl(
        t,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mxdns test CA",
        ],
    );
    openssl(
        t,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=mta-sts.sts.test",
        ],
    );
    std::fs::write(t.join("san.ext"), "subjectAltName=DNS:mta-sts.sts.test\n").unwrap();
    openssl(
        t,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::create_dir_all(t.join("www/.well-known")).unwrap();
    std::fs::write(
        t.join("www/.well-known/mta-sts.txt"),
        "version: STSv1\nmode: enforce\nmx: legacy.mail.example\nmax_age: 86400\n",
    )
    .unwrap();
    let https_port = free_port();
    let _https = Kill(
        Command::new(which("openssl"))
            .current_dir(t.join("www"))
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                &format!("127.0.0.2:{https_port}"),
                "-cert",
            ])
            .arg(t.join("srv.pem"))
            .arg("-key")
            .arg(t.join("srv.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // the same port on 127.0.0.1 records every connection attempt: the checks must make none
    let trap = std::net::TcpListener::bind(("127.0.0.1", https_port)).unwrap();
    trap.set_nonblocking(true).unwrap();

    let unbound_port = free_port();
    let config = format!(
        "status_resolver = \"127.0.0.1:{unbound_port}\"\nstatus_ca_file = \"{}\"\nmta_sts_port = {https_port}\nstatus_timeout_ms = 1500\nstatus_allow_addresses = [\"127.0.0.2/32\"]\n",
        t.join("ca.pem").display()
    );
    let s = Server::start(&config);
    let admin = s.admin_token();
    let (_, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "checks"})),
    );
    let (tenant, token) = (
        v["tenantId"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    );
    let mx = |d: &str| format!("{}.o-v1.mx.example.", d.replace('.', "-"));
    let domains = [
        "good.test",
        "prio.test",
        "legacy.test",
        "same.test",
        "lower.test",
        "wrong.test",
        "missing.test",
        "nomx.test",
        "nx.test",
        "refused.test",
        "nodnssec.test",
        "noauth.test",
        "sts.test",
        "stsnodnssec.test",
        "stsloop.test",
        "stsprivate.test",
    ];
    for d in domains {
        let (st, v) = http(
            s.api,
            "POST",
            &format!("/v1/tenants/{tenant}/domains"),
            Some(&admin),
            Some(&json!({"domain": d, "verified": true})),
        );
        assert_eq!(st, 201, "{v}");
        if !["nodnssec.test", "stsnodnssec.test"].contains(&d) {
            assert_eq!(
                http(
                    s.api,
                    "POST",
                    &format!("/v1/domains/{d}/dnssec/enable"),
                    Some(&token),
                    None
                )
                .0,
                200
            );
        }
    }
    // noauth: the expected host no longer exists (DNSSEC disabled; the token stays reserved)
    assert_eq!(
        http(
            s.api,
            "POST",
            "/v1/domains/noauth.test/dnssec/disable",
            Some(&token),
            None
        )
        .0,
        200
    );

    let zone = |d: &str, kind: &str, data: &[String]| {
        let mut z = format!("  local-zone: \"{d}.\" {kind}\n");
        for r in data {
            // single quotes outside when the record holds double quotes (TXT with ';')
            if r.contains('"') {
                z.push_str(&format!("  local-data: '{r}'\n"));
            } else {
                z.push_str(&format!("  local-data: \"{r}\"\n"));
            }
        }
        z
    };
    let mut extra = String::new();
    extra += &zone(
        "good.test",
        "static",
        &[format!("good.test. 60 IN MX 0 {}", mx("good.test"))],
    );
    extra += &zone(
        "prio.test",
        "static",
        &[format!("prio.test. 60 IN MX 10 {}", mx("prio.test"))],
    );
    extra += &zone(
        "legacy.test",
        "static",
        &[
            "legacy.test. 60 IN MX 0 legacy.mail.example.".into(),
            format!("legacy.test. 60 IN MX 20 {}", mx("legacy.test")),
        ],
    );
    extra += &zone(
        "same.test",
        "static",
        &[
            "same.test. 60 IN MX 0 legacy.mail.example.".into(),
            format!("same.test. 60 IN MX 0 {}", mx("same.test")),
        ],
    );
    extra += &zone(
        "lower.test",
        "static",
        &[
            "lower.test. 60 IN MX 30 legacy.mail.example.".into(),
            format!("lower.test. 60 IN MX 0 {}", mx("lower.test")),
        ],
    );
    extra += &zone(
        "wrong.test",
        "static",
        &["wrong.test. 60 IN MX 0 someone-else.o-v1.mx.example.".into()],
    );
    extra += &zone(
        "missing.test",
        "static",
        &["missing.test. 60 IN MX 0 mail.example.net.".into()],
    );
    extra += &zone(
        "nomx.test",
        "static",
        &["nomx.test. 60 IN A 192.0.2.1".into()],
    );
    extra += &zone("nx.test", "always_nxdomain", &[]);
    extra += &zone("refused.test", "always_refuse", &[]);
    extra += &zone(
        "nodnssec.test",
        "static",
        &["nodnssec.test. 60 IN MX 0 legacy.mail.example.".into()],
    );
    extra += &zone(
        "noauth.test",
        "static",
        &[format!("noauth.test. 60 IN MX 0 {}", mx("noauth.test"))],
    );
    extra += &zone(
        "sts.test",
        "static",
        &[
            format!("sts.test. 60 IN MX 0 {}", mx("sts.test")),
            "_mta-sts.sts.test. 60 IN TXT \"v=STSv1; id=20261123\"".into(),
            "mta-sts.sts.test. 60 IN A 127.0.0.2".into(),
        ],
    );
    // policy hosts at special-purpose addresses outside the allowance: never connected to
    for (d, ip) in [
        ("stsloop.test", "127.0.0.1"),
        ("stsprivate.test", "10.0.0.1"),
    ] {
        extra += &zone(
            d,
            "static",
            &[
                format!("{d}. 60 IN MX 0 {}", mx(d)),
                format!("_mta-sts.{d}. 60 IN TXT \"v=STSv1; id=1\""),
                format!("mta-sts.{d}. 60 IN A {ip}"),
            ],
        );
    }
    extra += &zone(
        "stsnodnssec.test",
        "static",
        &[
            "stsnodnssec.test. 60 IN MX 0 legacy.mail.example.".into(),
            "_mta-sts.stsnodnssec.test. 60 IN TXT \"v=STSv1; id=1\"".into(),
        ],
    );
    let ds = s.cmd(&["keys", "ds"]);
    let _u = Unbound::start_with(&s, &ds, &extra, unbound_port);

    let want: &[(&str, &[&str])] = &[
        ("good.test", &[]),
        ("prio.test", &["EX003"]),
        ("legacy.test", &["EX003", "EX006", "EX008"]),
        ("same.test", &["EX004"]),
        ("lower.test", &["EX005"]),
        ("wrong.test", &["EX002"]),
        ("missing.test", &["EX007"]),
        ("nomx.test", &["EX012"]),
        ("nx.test", &["DomainNotFound"]),
        ("refused.test", &["DNSQueryError"]),
        ("nodnssec.test", &["EX013"]),
        ("noauth.test", &["ED003"]),
        ("sts.test", &["ES001"]),
        ("stsnodnssec.test", &["EX013", "ES002"]),
        ("stsloop.test", &["ES000"]),
        ("stsprivate.test", &["ES000"]),
    ];
    let t0 = Instant::now();
    for (d, codes) in want {
        let (st, v) = http(
            s.api,
            "GET",
            &format!("/v1/domains/{d}/dnssec"),
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{v}");
        let got: BTreeSet<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            got,
            want,
            "{d}: {}",
            serde_json::to_string_pretty(&v["findings"]).unwrap()
        );
        for f in v["findings"].as_array().unwrap() {
            assert!(
                !f["message"].as_str().unwrap().is_empty()
                    && !f["action"].as_str().unwrap().is_empty()
            );
        }
        if d.starts_with("stsloop") || d.starts_with("stsprivate") {
            // a code and a sentence; the reason (which address, which range) only in the log
            assert_eq!(
                v["findings"][0]["message"],
                json!(format!(
                    "The MTA-STS policy host mta-sts.{d} has no public address to fetch the policy from."
                ))
            );
        }
        if *d == "good.test" {
            assert_eq!(
                v["status"]["dnssecMxValue"],
                Value::String(mx(d).trim_end_matches('.').to_string())
            );
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(60));
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a status check connected to 127.0.0.1: {other:?}"),
    }
    let log = s.log();
    for refused in [
        "mta-sts.stsloop.test: 127.0.0.1 (loopback)",
        "mta-sts.stsprivate.test: 10.0.0.1 (private use)",
    ] {
        assert!(
            log.contains(refused),
            "refused before any connection: {refused}\n{log}"
        );
    }
    // the command line reports the same findings
    let out = s.cmd(&["dnssec", "status", "legacy.test"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 3, "{out}");
}
