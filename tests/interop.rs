//! Judges nobody here wrote: Unbound (validating resolver with our trust anchor), BIND's delv,
//! ldns-verify-zone on the AXFR output, and kdig for truncation. The test command of README.md
//! installs them; a missing tool fails the test loudly.

mod common;

use std::process::Command;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const HOST: &str = "contoso-com.o-v1.mx.example.";
const TLSA_NAME: &str = "_25._tcp.contoso-com.o-v1.mx.example.";

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn start_with_host() -> (Server, String) {
    let s = Server::start("");
    s.cmd(&[
        "host",
        "add",
        HOST,
        "--a",
        "192.0.2.25",
        "--aaaa",
        "2001:db8::25",
        "--tlsa",
        &format!("3 1 1 {}", "ab".repeat(32)),
        "--tlsa",
        &format!("3 1 1 {}", "cd".repeat(32)),
    ]);
    s.wait_for(TLSA_NAME, RecordType::TLSA, 10, |m| m.answers.len() == 3);
    let ds = s.cmd(&["keys", "ds"]);
    (s, ds)
}

#[test]
fn unbound_validates_positive_nxdomain_and_nodata_answers() {
    let (s, ds) = start_with_host();
    let u = Unbound::start(&s, &ds);
    let cases: &[(&str, RecordType, ResponseCode, bool)] = &[
        (HOST, RecordType::A, ResponseCode::NoError, true),
        (HOST, RecordType::AAAA, ResponseCode::NoError, true),
        (TLSA_NAME, RecordType::TLSA, ResponseCode::NoError, true),
        (
            "nxdomain-test.o-v1.mx.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            false,
        ),
        (
            "_25._tcp.nothere.o-v1.mx.example.",
            RecordType::TLSA,
            ResponseCode::NXDomain,
            false,
        ),
        (HOST, RecordType::MX, ResponseCode::NoError, false),
        (
            &format!("_tcp.{HOST}"),
            RecordType::TLSA,
            ResponseCode::NoError,
            false,
        ),
        (
            "mx.example.",
            RecordType::DNSKEY,
            ResponseCode::NoError,
            true,
        ),
        (
            "o-v1.mx.example.",
            RecordType::DNSKEY,
            ResponseCode::NoError,
            true,
        ),
        (
            "zz.mx.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            false,
        ),
    ];
    for (name, rtype, rcode, positive) in cases {
        let m = query_udp(u.addr, name, *rtype, true, 1232).unwrap();
        assert_eq!(
            m.metadata.response_code,
            *rcode,
            "{name} {rtype}: {}",
            u.log()
        );
        assert!(
            m.metadata.authentic_data,
            "{name} {rtype}: no AD bit from Unbound\n{}",
            u.log()
        );
        assert_eq!(!m.answers.is_empty(), *positive, "{name} {rtype}");
    }
    // the TLSA data is what was published
    let m = query_udp(u.addr, TLSA_NAME, RecordType::TLSA, true, 1232).unwrap();
    assert_eq!(tlsa_data(&m), vec!["ab".repeat(32), "cd".repeat(32)]);
    assert!(!u.log().contains("validation failure"), "{}", u.log());
}

#[test]
fn delv_fully_validates() {
    let (s, ds) = start_with_host();
    let delv = which("delv");
    let f: Vec<&str> = ds.split_whitespace().collect();
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("anchors.conf");
    std::fs::write(
        &anchors,
        format!(
            "trust-anchors {{\n  {} static-ds {} {} {} \"{}\";\n}};\n",
            f[0],
            f[4],
            f[5],
            f[6],
            f[7..].concat()
        ),
    )
    .unwrap();
    let cases = [
        (HOST.to_string(), "A", "; fully validated"),
        (HOST.to_string(), "AAAA", "; fully validated"),
        (TLSA_NAME.to_string(), "TLSA", "; fully validated"),
        (
            "nope.o-v1.mx.example.".to_string(),
            "A",
            "; negative response, fully validated",
        ),
        (
            HOST.to_string(),
            "MX",
            "; negative response, fully validated",
        ),
        (
            format!("_tcp.{HOST}"),
            "TLSA",
            "; negative response, fully validated",
        ),
    ];
    for (name, t, want) in cases {
        let (_, out) = run(Command::new(&delv)
            .arg(format!("@{}", s.dns.ip()))
            .arg("-p")
            .arg(s.dns.port().to_string())
            .arg("-a")
            .arg(&anchors)
            .arg("+root=mx.example")
            .arg(t)
            .arg(&name));
        assert!(
            out.lines().any(|l| l.trim() == want),
            "delv {t} {name}: {out}"
        );
    }
}

/// Both zones pass ldns-verify-zone as built at start, and again after a restart that resumes
/// from the checkpoint written at shutdown with changes stored while the server was down.
#[test]
fn ldns_verify_zone_accepts_both_transfers() {
    let (mut s, _) = start_with_host();
    s.cmd(&["host", "bulk-add", "--count", "200"]);
    s.wait_for("t200.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    verify_transfers(&s);
    assert!(s.stop().success());
    // stored while the server is down: applied from the change log on top of the checkpoint
    s.cmd(&["host", "add", "late.o-v1.mx.example.", "--a", "192.0.2.77"]);
    s.cmd(&["host", "remove", "t7.o-v1.mx.example."]);
    s.spawn();
    assert!(
        s.log().contains("resumed from the checkpoint"),
        "restart resumes from the checkpoint: {}",
        s.log()
    );
    let m = query_udp(s.dns, "late.o-v1.mx.example.", RecordType::A, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = query_udp(s.dns, "t7.o-v1.mx.example.", RecordType::A, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    verify_transfers(&s);
}

fn verify_transfers(s: &Server) {
    let kdig = which("kdig");
    let verify = which("ldns-verify-zone");
    let dir = tempfile::tempdir().unwrap();
    for zone in ["mx.example.", "o-v1.mx.example."] {
        let (ok, text) = run(Command::new(&kdig)
            .arg(format!("@{}", s.dns.ip()))
            .arg("-p")
            .arg(s.dns.port().to_string())
            .arg("AXFR")
            .arg(zone)
            .arg("+nocomments")
            .arg("+nostats"));
        assert!(ok, "{text}");
        let file = dir.path().join(format!("{zone}zone"));
        std::fs::write(&file, &text).unwrap();
        let (ok, out) = run(Command::new(&verify).arg(&file));
        assert!(
            ok && out.contains("Zone is verified and complete"),
            "ldns-verify-zone {zone}: {out}"
        );
    }
}

fn kdig_out(s: &Server, args: &[&str]) -> String {
    let (ok, out) = run(Command::new(which("kdig"))
        .arg(format!("@{}", s.dns.ip()))
        .arg("-p")
        .arg(s.dns.port().to_string())
        .args(args));
    assert!(ok, "kdig {args:?}: {out}");
    out
}

fn flags(out: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.contains(";; Flags:"))
        .unwrap_or_else(|| panic!("no flags in {out}"));
    let f = line
        .split(";; Flags:")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    f.split_whitespace().map(String::from).collect()
}

#[test]
fn kdig_sees_truncation_over_udp_and_the_whole_answer_over_tcp() {
    let (s, _) = start_with_host();
    // DNSKEY with a 512-byte buffer: TC exactly when the signed RRset does not fit
    let tcp = kdig_out(&s, &["+dnssec", "+tcp", "DNSKEY", "mx.example."]);
    let full_size: usize = tcp
        .lines()
        .find_map(|l| {
            l.strip_prefix(";; Received ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap();
    let udp = kdig_out(
        &s,
        &[
            "+dnssec",
            "+bufsize=512",
            "+ignore",
            "DNSKEY",
            "mx.example.",
        ],
    );
    assert_eq!(
        flags(&udp).contains(&"tc".to_string()),
        full_size > 512,
        "{udp}"
    );
    assert!(!flags(&tcp).contains(&"tc".to_string()));
    assert!(
        tcp.contains("DNSKEY\t257") || tcp.contains("DNSKEY 257"),
        "{tcp}"
    );

    // a TLSA RRset of 14 records does not fit in 512 bytes: TC over UDP, whole over TCP
    s.add_big_tlsa_host("big.o-v1.mx.example.", 14);
    s.wait_for("big.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    let udp = kdig_out(
        &s,
        &[
            "+dnssec",
            "+bufsize=512",
            "+ignore",
            "TLSA",
            "_25._tcp.big.o-v1.mx.example.",
        ],
    );
    assert!(flags(&udp).contains(&"tc".to_string()), "{udp}");
    let tcp = kdig_out(
        &s,
        &["+dnssec", "+tcp", "TLSA", "_25._tcp.big.o-v1.mx.example."],
    );
    assert!(!flags(&tcp).contains(&"tc".to_string()));
    assert_eq!(
        tcp.lines().filter(|l| l.contains("\tTLSA\t")).count(),
        14,
        "{tcp}"
    );
}
