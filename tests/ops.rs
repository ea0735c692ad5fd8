//! Day-two operations with the real binary: `mxdns zone export` judged by `ldns-verify-zone`;
//! `mxdns backup` while the server runs and writes, `mxdns restore` into a new data directory,
//! and the restored server serving the same signed zones (same DNSKEY RRsets, validated by
//! Unbound with the original server's trust anchor).

mod common;

use std::process::Command;

use common::*;
use hickory_proto::rr::RecordType;

const HOST: &str = "mx1.o-v1.mx.example.";

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn add_host(s: &Server, host: &str, a: &str) {
    s.cmd(&[
        "host",
        "add",
        host,
        "--a",
        a,
        "--tlsa",
        &format!("3 1 1 {}", "ab".repeat(32)),
    ]);
}

/// The DNSKEY RRset of `zone` as served, sorted presentation lines.
fn dnskeys(s: &Server, zone: &str) -> Vec<String> {
    let m = query_udp(s.dns, zone, RecordType::DNSKEY, false, 1232).unwrap();
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no DNSKEY for {zone}");
    v
}

#[test]
fn zone_export_is_a_signed_zone_ldns_verify_zone_accepts() {
    let s = Server::start("");
    add_host(&s, HOST, "192.0.2.25");
    s.wait_for(HOST, RecordType::A, 10, |m| !m.answers.is_empty());
    let dir = tempfile::tempdir().unwrap();
    for zone in ["mx.example.", "o-v1.mx.example."] {
        let file = dir.path().join(format!("{zone}zone"));
        let api = s.api.to_string();
        s.cmd(&[
            "zone",
            "export",
            zone,
            "--api",
            &api,
            "--output",
            file.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&file).unwrap();
        // the SOA first, with the serial served now
        let soa = query_udp(s.dns, zone, RecordType::SOA, false, 1232).unwrap();
        let serial = match &soa.answers[0].data {
            hickory_proto::rr::RData::SOA(x) => x.serial,
            other => panic!("{other:?}"),
        };
        let first = text.lines().find(|l| !l.starts_with(';')).unwrap();
        assert!(
            first.starts_with(zone)
                && first.contains(" SOA ")
                && first.contains(&format!(" {serial} ")),
            "{first}"
        );
        if zone == "o-v1.mx.example." {
            assert!(text.contains("_25._tcp.mx1.o-v1.mx.example."), "{text}");
        }
        let (ok, out) = run(Command::new(which("ldns-verify-zone")).arg(&file));
        assert!(
            ok && out.contains("Zone is verified and complete"),
            "ldns-verify-zone {zone}: {out}\n{text}"
        );
    }
    // not a zone of the server: 404 with a code; no token: 401
    let token = s.admin_token();
    let (st, v) = http(
        s.api,
        "GET",
        "/v1/zones/example.org./export",
        Some(&token),
        None,
    );
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["errorData"]["errorCode"], "ZoneNotFound");
    let (st, _) = http(s.api, "GET", "/v1/zones/mx.example./export", None, None);
    assert_eq!(st, 401);
}

#[test]
fn a_backup_made_while_serving_restores_the_same_signed_zones() {
    let a = Server::start("");
    add_host(&a, HOST, "192.0.2.25");
    a.wait_for(HOST, RecordType::A, 10, |m| !m.answers.is_empty());
    let anchor = a.cmd(&["keys", "ds"]);
    // a roll in progress: the backup must carry the incoming key too
    a.cmd(&[
        "keys",
        "roll",
        "--zone",
        "o-v1.mx.example.",
        "--zsk",
        "--now",
    ]);
    a.wait_for("o-v1.mx.example.", RecordType::DNSKEY, 10, |m| {
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .count()
            == 3
    });
    let keys_a: Vec<_> = ["mx.example.", "o-v1.mx.example."]
        .iter()
        .map(|z| dnskeys(&a, z))
        .collect();

    // the backup while another process writes to the store
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("backup");
    let writer = {
        let (dir, cfg) = (a.data_dir(), a.config_path());
        std::thread::spawn(move || {
            for i in 0..20 {
                let st = Command::new(BIN)
                    .arg("--data-dir")
                    .arg(&dir)
                    .arg("--config")
                    .arg(&cfg)
                    .args([
                        "host",
                        "add",
                        &format!("w{i}.o-v1.mx.example."),
                        "--a",
                        "192.0.2.9",
                    ])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        })
    };
    let printed = a.cmd(&["backup", dest.to_str().unwrap()]);
    writer.join().unwrap();
    assert!(printed.contains("\"files\""), "{printed}");
    // private: the directory 0700, every file 0600
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dest), 0o700);
        let mut files = 0;
        let mut stack = vec![dest.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    assert_eq!(mode(&p), 0o700, "{}", p.display());
                    stack.push(p);
                } else if p.file_name().unwrap() != "BACKUP.json" {
                    assert_eq!(mode(&p), 0o600, "{}", p.display());
                    files += 1;
                }
            }
        }
        assert!(
            files >= 6,
            "database, admin token and four keys at least: {files}"
        );
        assert!(dest.join("mxdns.sqlite3").exists());
        assert!(!dest.join("mxdns.sqlite3-wal").exists());
    }
    // a second backup into the same place is refused
    let (ok, msg) = run(Command::new(BIN)
        .arg("--data-dir")
        .arg(a.data_dir())
        .args(["backup", dest.to_str().unwrap()]));
    assert!(!ok && msg.contains("exists"), "{msg}");
    let mut a = a;
    a.stop();

    // a new machine: restore, start, same keys, validates under the old trust anchor
    let mut b = Server::prepare("");
    b.cmd(&["restore", dest.to_str().unwrap()]);
    // restoring over a database needs --force
    let (ok, msg) = run(Command::new(BIN)
        .arg("--data-dir")
        .arg(b.data_dir())
        .args(["restore", dest.to_str().unwrap()]));
    assert!(!ok && msg.contains("--force"), "{msg}");
    b.spawn();
    let keys_b: Vec<_> = ["mx.example.", "o-v1.mx.example."]
        .iter()
        .map(|z| dnskeys(&b, z))
        .collect();
    assert_eq!(
        keys_a, keys_b,
        "the restored server publishes the same DNSKEYs"
    );
    assert_eq!(b.cmd(&["keys", "ds"]), anchor, "same trust anchor");
    b.wait_for(HOST, RecordType::A, 10, |m| !m.answers.is_empty());
    let u = Unbound::start(&b, &anchor);
    for (name, rtype) in [
        (HOST, RecordType::A),
        ("_25._tcp.mx1.o-v1.mx.example.", RecordType::TLSA),
        ("o-v1.mx.example.", RecordType::DNSKEY),
    ] {
        let m = query_udp(u.addr, name, rtype, true, 1232).unwrap();
        assert!(
            m.metadata.authentic_data && !m.answers.is_empty(),
            "{name} {rtype}: {m:?}\n{}",
            u.log()
        );
    }
}
