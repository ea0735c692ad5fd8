//! mxdns as the hidden primary of real secondaries: NSD and Knot DNS started here on loopback
//! ports, configured with what `mxdns secondary config` prints, TSIG on (Knot also validates
//! every transfer's DNSSEC: `dnssec-validation: on`). Judges: the secondaries themselves,
//! ldns-verify-zone on what they serve, Unbound that only knows the secondaries, kdig, and
//! hickory-proto's TSIG verifier for the signatures of every message.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use serde_json::json;

const ZONES: [&str; 2] = ["mx.example.", "o-v1.mx.example."];
const MX: &str = "contoso-com.o-v1.mx.example.";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Nsd,
    Knot,
}

/// A secondary (NSD or Knot) in its own directory on a free loopback port.
struct Secondary {
    kind: Kind,
    name: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Secondary {
    /// Configures `name` from `mxdns secondary config` (plus: AXFR out to loopback without a
    /// key, so that the tests can read what it serves) and starts it. `edit` may change the
    /// printed block (wrong keys).
    fn start(
        primary: &Server,
        kind: Kind,
        name: &str,
        addr: SocketAddr,
        edit: impl Fn(String) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let p = primary.dns.to_string();
        let conf = match kind {
            Kind::Nsd => {
                let block = primary.cmd(&["secondary", "config", "--nsd", name, "--primary", &p]);
                let block = block.replace(
                    "\trequest-xfr:",
                    "\tprovide-xfr: 127.0.0.0/8 NOKEY\n\trequest-xfr:",
                );
                format!(
                    "server:\n\tip-address: {}@{}\n\tusername: \"\"\n\tchroot: \"\"\n\tzonesdir: \"{d}\"\n\t\
                     database: \"\"\n\tzonelistfile: \"{d}/zone.list\"\n\txfrdfile: \"{d}/xfrd.state\"\n\t\
                     xfrdir: \"{d}\"\n\tpidfile: \"{d}/nsd.pid\"\n\tlogfile: \"{d}/nsd.log\"\n\tverbosity: 2\n\t\
                     xfrd-reload-timeout: 0\n\tserver-count: 1\n\tdo-ip6: no\n\
                     remote-control:\n\tcontrol-enable: no\n{}",
                    addr.ip(),
                    addr.port(),
                    edit(block)
                )
            }
            Kind::Knot => {
                let block = primary.cmd(&["secondary", "config", "--knot", name, "--primary", &p]);
                let block = block
                    .replace(
                        "acl:\n",
                        "acl:\n  - id: tests-axfr\n    address: 127.0.0.0/8\n    action: transfer\n",
                    )
                    .replace("acl: mxdns-notify", "acl: [mxdns-notify, tests-axfr]");
                format!(
                    "server:\n  listen: {}@{}\n  rundir: {d}\n  user: root\n  udp-workers: 1\n  tcp-workers: 1\n  \
                     background-workers: 1\nlog:\n  - target: {d}/knot.log\n    any: info\n\
                     database:\n  storage: {d}\n\
                     template:\n  - id: default\n    storage: {d}\n    dnssec-validation: on\n    \
                     zonefile-sync: -1\n    zonefile-load: none\n    journal-content: all\n{}",
                    addr.ip(),
                    addr.port(),
                    edit(block)
                )
            }
        };
        std::fs::write(dir.path().join("secondary.conf"), conf).unwrap();
        let mut s = Secondary {
            kind,
            name: name.to_string(),
            child: None,
            dir,
            addr,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("secondary.conf");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .unwrap();
        let child = match self.kind {
            Kind::Nsd => Command::new(which("nsd"))
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(out)
                .spawn()
                .unwrap(),
            Kind::Knot => Command::new(which("knotd"))
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(out)
                .spawn()
                .unwrap(),
        };
        self.child = Some(child);
        // listening: any answer at all (the zones may not be there yet)
        let deadline = Instant::now() + Duration::from_secs(20);
        while query_udp(self.addr, "mx.example.", RecordType::SOA, false, 1232).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and a bounded wait (NSD's helper processes stop with it).
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        // the port is free again once the old process is gone
        std::thread::sleep(Duration::from_millis(100));
    }

    fn log(&self) -> String {
        let f = match self.kind {
            Kind::Nsd => "nsd.log",
            Kind::Knot => "knot.log",
        };
        let mut s = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        s.push_str(
            &std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default(),
        );
        s
    }

    fn serial(&self, zone: &str) -> Option<u32> {
        let m = query_udp(self.addr, zone, RecordType::SOA, false, 1232).ok()?;
        m.answers.iter().find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
    }

    /// Waits (bounded) until it serves `zone` at `serial` or later.
    fn wait_serial(&self, zone: &str, serial: u32, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.serial(zone);
            if got.is_some_and(|s| s.wrapping_sub(serial) as i32 >= 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} serves {zone} at {got:?}, not {serial}: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it serves, by AXFR (kdig), checked by ldns-verify-zone.
    fn verify_zones(&self) {
        let dir = tempfile::tempdir().unwrap();
        for zone in ZONES {
            let text = kdig_axfr(self.addr, zone, None);
            let file = dir.path().join(format!("{zone}zone"));
            std::fs::write(&file, &text).unwrap();
            let (ok, out) = run(Command::new(which("ldns-verify-zone")).arg(&file));
            assert!(
                ok && out.contains("Zone is verified and complete"),
                "ldns-verify-zone of {zone} from {}: {out}",
                self.name
            );
        }
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A zone by AXFR with kdig (`key`: "name:secret" for hmac-sha256), records only.
fn kdig_axfr(server: SocketAddr, zone: &str, key: Option<&str>) -> String {
    let mut cmd = Command::new(which("kdig"));
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string());
    if let Some(k) = key {
        cmd.arg("-y").arg(format!("hmac-sha256:{k}"));
    }
    let (ok, text) = run(cmd.arg("AXFR").arg(zone).arg("+nocomments").arg("+nostats"));
    assert!(
        ok && !text.contains(";; ERROR"),
        "AXFR {zone} from {server}: {text}"
    );
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn secret(s: &Server, key: &str) -> String {
    let text = std::fs::read_to_string(s.data_dir().join(format!("tsig/{key}.key"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_string()
}

/// A primary whose transfers need TSIG (`axfr_allow = []`) with the secondaries nsd1 and
/// knot1 configured (their keys made by `mxdns tsig new`), and `hosts` tenant hosts.
fn primary(hosts: u32, extra: &str) -> (Server, SocketAddr, SocketAddr) {
    let nsd = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let knot = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut s = Server::prepare(&format!(
        "axfr_allow = []\nfollow_interval_ms = 50\n{extra}\n\
         [[secondaries]]\nname = \"nsd1\"\naddress = \"{nsd}\"\ntsig = \"nsd1\"\n\
         [[secondaries]]\nname = \"knot1\"\naddress = \"{knot}\"\nallow = [\"127.0.0.1/32\"]\ntsig = \"knot1\"\n"
    ));
    // the server does not start without the keys its configuration names
    std::fs::write(s.config_path(), &s.extra_config).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data_dir())
        .arg("--config")
        .arg(s.config_path())
        .arg("serve")
        .output();
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("mxdns tsig new"),
        "{err}"
    );
    for k in ["nsd1", "knot1"] {
        let printed = s.cmd(&["tsig", "new", k]);
        assert!(
            printed.contains("secret: \"") && printed.contains("  - id: "),
            "{printed}"
        );
    }
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(s.data_dir().join("tsig/nsd1.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);
    s.spawn();
    if hosts > 0 {
        s.cmd(&["host", "bulk-add", "--count", &hosts.to_string()]);
        s.wait_for(
            &format!("t{hosts}.o-v1.mx.example."),
            RecordType::A,
            30,
            |m| !m.answers.is_empty(),
        );
    }
    (s, nsd, knot)
}

fn serial_of(s: &Server, zone: &str) -> u32 {
    let m = query_udp(s.dns, zone, RecordType::SOA, false, 1232).unwrap();
    match &m.answers[0].data {
        RData::SOA(soa) => soa.serial,
        _ => panic!(),
    }
}

/// The primary's "zone transfer" log lines for `zone` and `key`, as (kind, from_serial,
/// serial, records).
fn transfers(s: &Server, zone: &str, key: &str) -> Vec<(String, Option<u32>, u32, usize)> {
    let field = |line: &str, k: &str| -> Option<String> {
        let at = line.find(&format!(" {k}="))? + k.len() + 2;
        let rest = &line[at..];
        Some(if let Some(q) = rest.strip_prefix('"') {
            q[..q.find('"').unwrap_or(q.len())].to_string()
        } else {
            rest.split_whitespace().next().unwrap_or("").to_string()
        })
    };
    s.log()
        .lines()
        .filter(|l| l.contains("zone transfer zone="))
        .filter(|l| field(l, "zone").as_deref() == Some(zone))
        .filter(|l| field(l, "key").as_deref() == Some(key))
        .map(|l| {
            (
                field(l, "kind").unwrap(),
                field(l, "from_serial").and_then(|v| v.parse().ok()),
                field(l, "serial").unwrap().parse().unwrap(),
                field(l, "records").unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn nsd_and_knot_serve_the_zones_signed_and_follow_changes_by_ixfr() {
    let (s, nsd_addr, knot_addr) = primary(300, "");
    let nsd = Secondary::start(&s, Kind::Nsd, "nsd1", nsd_addr, |b| b);
    let knot = Secondary::start(&s, Kind::Knot, "knot1", knot_addr, |b| b);
    for z in ZONES {
        let serial = serial_of(&s, z);
        nsd.wait_serial(z, serial, 30);
        knot.wait_serial(z, serial, 30);
    }
    // what they serve is what we serve, and it verifies
    let key = format!("knot1:{}", secret(&s, "knot1"));
    for z in ZONES {
        let mut ours: Vec<&str> = Vec::new();
        let text = kdig_axfr(s.dns, z, Some(&key));
        ours.extend(text.lines());
        ours.sort();
        for sec in [&nsd, &knot] {
            let t = kdig_axfr(sec.addr, z, None);
            let mut theirs: Vec<&str> = t.lines().collect();
            theirs.sort();
            assert_eq!(ours, theirs, "{z} as {} serves it", sec.name);
        }
    }
    nsd.verify_zones();
    knot.verify_zones();
    assert!(
        knot.log().contains("DNSSEC, validation successful"),
        "{}",
        knot.log()
    );

    // a tenant enables DNSSEC and DANE through the API
    let admin = s.admin_token();
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "contoso"})),
    );
    assert_eq!(st, 201, "{v}");
    let (tenant, token) = (
        v["tenantId"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    );
    let (st, v) = http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&admin),
        Some(&json!({"domain": "contoso.com", "verified": true})),
    );
    assert_eq!(st, 201, "{v}");
    let certs = tempfile::tempdir().unwrap();
    let (cur, cur_spki) = make_cert(certs.path(), "current", 30);
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": cur})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/domains/contoso.com/dnssec/enable",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{v}");
    // Unbounds that know only one secondary each (and our trust anchor)
    let ds = s.cmd(&["keys", "ds"]);
    let no_neg = "  aggressive-nsec: no\n  cache-max-negative-ttl: 1\n";
    let u_nsd = Unbound::start_stubs(&ds, &[nsd.addr], no_neg, free_port());
    let u_knot = Unbound::start_stubs(&ds, &[knot.addr], no_neg, free_port());
    let before = serial_of(&s, "o-v1.mx.example.");

    // Enable-SmtpDaneInbound: served signed by both secondaries and validated through them
    // within a second of the API's answer (a bound the issue sets, polled, not a speed test)
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/domains/contoso.com/smtp-dane/enable",
        Some(&token),
        None,
    );
    let t0 = Instant::now();
    assert_eq!(st, 200, "{v}");
    let tlsa = format!("_25._tcp.{MX}");
    let deadline = t0 + Duration::from_secs(1);
    for sec in [&nsd, &knot] {
        loop {
            let m = query_udp(sec.addr, &tlsa, RecordType::TLSA, true, 1232).unwrap();
            let signed = m
                .answers
                .iter()
                .any(|r| r.record_type() == RecordType::CNAME)
                && m.answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::RRSIG);
            if signed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not serve {tlsa} signed within 1 s of the API answer: {m:?}\n{}\n{}",
                sec.name,
                sec.log(),
                s.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for (u, via) in [(&u_nsd, "NSD"), (&u_knot, "Knot")] {
        let m = query_udp(u.addr, &tlsa, RecordType::TLSA, true, 1232).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "via {via}: {}",
            u.log()
        );
        assert!(
            m.metadata.authentic_data,
            "validated via {via}: {}",
            u.log()
        );
        assert_eq!(tlsa_data(&m), vec![cur_spki.clone()], "via {via}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "validated through both secondaries within 1 s of the API answer: {:?}",
        t0.elapsed()
    );

    // the change went by IXFR, carrying O(change) records, not the zone's thousands
    let after = serial_of(&s, "o-v1.mx.example.");
    for k in ["nsd1.", "knot1."] {
        let t = transfers(&s, "o-v1.mx.example.", k);
        let last = t
            .last()
            .unwrap_or_else(|| panic!("no transfer to {k}: {}", s.log()));
        assert_eq!(last.0, "IXFR", "{k}: {t:?}");
        assert_eq!(last.2, after);
        assert!(last.1.is_some_and(|f| f >= before), "{k}: {t:?}");
        assert!(last.3 <= 40, "{k}: {} records for one change", last.3);
    }
    let zone_records = kdig_axfr(s.dns, "o-v1.mx.example.", Some(&key))
        .lines()
        .count();
    assert!(zone_records > 2000, "{zone_records}");
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());
    assert!(
        knot.log().contains("incremental validation successful"),
        "{}",
        knot.log()
    );
    nsd.verify_zones();
    knot.verify_zones();
    for k in ["nsd1", "knot1"] {
        assert!(
            !s.log().contains(&secret(&s, k)),
            "a TSIG secret in the log"
        );
    }
}

#[test]
fn a_stopped_secondary_catches_up_by_ixfr_or_by_axfr_when_the_journal_lost_its_serial() {
    let (mut s, nsd_addr, knot_addr) = primary(50, "");
    let mut nsd = Secondary::start(&s, Kind::Nsd, "nsd1", nsd_addr, |b| b);
    let mut knot = Secondary::start(&s, Kind::Knot, "knot1", knot_addr, |b| b);
    let p = "o-v1.mx.example.";
    for z in ZONES {
        let serial = serial_of(&s, z);
        nsd.wait_serial(z, serial, 30);
        knot.wait_serial(z, serial, 30);
    }
    let stopped_at = serial_of(&s, p);
    knot.stop();
    nsd.stop();
    // changes while they are down (NOTIFY goes unanswered and is retried)
    s.cmd(&["host", "add", "late1.o-v1.mx.example.", "--a", "192.0.2.71"]);
    s.wait_for("late1.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    s.cmd(&["host", "remove", "t7.o-v1.mx.example."]);
    s.wait_for("t7.o-v1.mx.example.", RecordType::A, 10, |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    });
    let serial = serial_of(&s, p);
    assert!(serial >= stopped_at + 2);
    knot.spawn();
    nsd.spawn();
    knot.wait_serial(p, serial, 90);
    nsd.wait_serial(p, serial, 90);
    // Knot kept its copy: the difference from its serial; NSD kept none: the whole zone
    let t = transfers(&s, p, "knot1.");
    assert_eq!(t.last().unwrap().0, "IXFR", "{t:?}");
    assert_eq!(t.last().unwrap().1, Some(stopped_at), "{t:?}");
    let m = query_udp(
        knot.addr,
        "late1.o-v1.mx.example.",
        RecordType::A,
        true,
        1232,
    )
    .unwrap();
    assert_eq!(m.answers.len(), 2, "A + RRSIG from Knot: {m:?}");
    let m = query_udp(nsd.addr, "t7.o-v1.mx.example.", RecordType::A, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    knot.verify_zones();
    nsd.verify_zones();

    // the journal lives in memory: after a restart of the primary, a secondary's older serial
    // is not in it, and it gets the whole zone
    let stopped_at = serial_of(&s, p);
    knot.stop();
    s.cmd(&["host", "add", "late2.o-v1.mx.example.", "--a", "192.0.2.72"]);
    assert!(s.stop().success());
    s.spawn();
    let serial = serial_of(&s, p);
    assert!(serial > stopped_at);
    knot.spawn();
    knot.wait_serial(p, serial, 90);
    let t = transfers(&s, p, "knot1.");
    assert_eq!(t.last().unwrap().0, "AXFR (IXFR fallback)", "{t:?}");
    assert!(s.log().contains("IXFR: the serial is not in the journal"));
    let m = query_udp(
        knot.addr,
        "late2.o-v1.mx.example.",
        RecordType::A,
        true,
        1232,
    )
    .unwrap();
    assert_eq!(m.answers.len(), 2, "{m:?}");
    knot.verify_zones();
    nsd.wait_serial(p, serial, 90);
    nsd.verify_zones();
}

/// A TCP connection from `src` (any loopback address) speaking framed DNS.
fn tcp_from(src: [u8; 4], server: SocketAddr) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    sock.connect(&server.into()).unwrap();
    let s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn send_framed(c: &mut std::net::TcpStream, msg: &[u8]) {
    use std::io::Write;
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    c.write_all(&framed).unwrap();
}

fn recv_framed(c: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut len = [0u8; 2];
    c.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn signer(name: &str, secret_b64: &str) -> TSigner {
    use std::str::FromStr;
    TSigner::new(
        data_encoding_decode(secret_b64),
        TsigAlgorithm::HmacSha256,
        Name::from_str(name).unwrap(),
        300,
    )
    .unwrap()
}

/// base64 without a crate: the tests read the secret the way a secondary's configuration has
/// it (`openssl base64 -d`, a tool nobody here wrote).
fn data_encoding_decode(b64: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(which("openssl"))
        .args(["base64", "-d", "-A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b64.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.stdout.is_empty());
    out.stdout
}

/// An AXFR or IXFR request (IXFR: `serial` in the authority section).
fn xfr_query(zone: &str, qtype: RecordType, serial: Option<u32>) -> Message {
    use std::str::FromStr;
    let origin = Name::from_str(zone).unwrap();
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(origin.clone(), qtype));
    if let Some(s) = serial {
        m.add_authority(Record::from_rdata(
            origin.clone(),
            0,
            RData::SOA(SOA::new(origin.clone(), origin, s, 0, 0, 0, 0)),
        ));
    }
    m
}

/// A transfer over TCP, every message's TSIG verified by hickory (chained MACs); returns the
/// records (answer sections) and the number of messages.
fn signed_transfer(
    server: SocketAddr,
    key: &TSigner,
    zone: &str,
    qtype: RecordType,
    serial: Option<u32>,
) -> (Vec<Record>, usize) {
    let mut q = xfr_query(zone, qtype, serial);
    let mut verifier = q.finalize(key, now()).unwrap().unwrap();
    let mut c = tcp_from([127, 0, 0, 1], server);
    send_framed(&mut c, &q.to_vec().unwrap());
    let mut out = Vec::new();
    let mut messages = 0;
    let mut soas = 0;
    loop {
        let raw = recv_framed(&mut c).expect("transfer ended early");
        let m = verifier
            .verify(&raw)
            .unwrap_or_else(|e| panic!("message {messages} of {zone} {qtype}: TSIG {e}"));
        let m: Message = m.into_message();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        messages += 1;
        for r in m.answers {
            if r.record_type() == RecordType::SOA {
                soas += 1;
            }
            out.push(r);
        }
        // the end: AXFR's second SOA; IXFR's single SOA (up to date), or its last one
        let ended = match qtype {
            RecordType::AXFR => soas == 2,
            _ => (messages == 1 && out.len() == 1) || (out.len() > 1 && ixfr_complete(&out)),
        };
        if ended {
            return (out, messages);
        }
        assert!(messages < 10_000);
    }
}

/// An IXFR answer is complete when it ends with the current SOA and, if it is incremental
/// (second record an SOA), the sequences are closed: the current serial appears 3 times; if it
/// is AXFR-style, twice.
fn ixfr_complete(out: &[Record]) -> bool {
    let serial = |r: &Record| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    };
    let cur = serial(&out[0]).unwrap();
    if serial(out.last().unwrap()) != Some(cur) {
        return false;
    }
    let n = out.iter().filter(|r| serial(r) == Some(cur)).count();
    if out[1].record_type() == RecordType::SOA {
        n == 3
    } else {
        n == 2
    }
}

/// Records as comparable text, SOA left out (an IXFR's markers stand for it).
fn as_set(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(|r| r.to_string().to_lowercase())
        .collect()
}

#[test]
fn transfers_need_the_right_key_from_the_right_address_and_every_message_is_signed() {
    let (s, nsd_addr, knot_addr) = primary(300, "");
    let good = signer("knot1.", &secret(&s, "knot1"));
    let p = "o-v1.mx.example.";

    // a signed AXFR in many messages, each one's TSIG chained to the previous (RFC 8945 5.3.1)
    let (a1, messages) = signed_transfer(s.dns, &good, p, RecordType::AXFR, None);
    assert!(messages > 5, "{messages} messages");
    let s1 = serial_of(&s, p);

    // a small change: IXFR from s1 turns our old copy into the new zone, condensed
    s.cmd(&["host", "add", "new1.o-v1.mx.example.", "--a", "192.0.2.81"]);
    s.cmd(&["host", "remove", "t9.o-v1.mx.example."]);
    s.wait_for("t9.o-v1.mx.example.", RecordType::A, 10, |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    });
    s.wait_for("new1.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    let s2 = serial_of(&s, p);
    let (a2, _) = signed_transfer(s.dns, &good, p, RecordType::AXFR, None);
    let (ixfr, _) = signed_transfer(s.dns, &good, p, RecordType::IXFR, Some(s1));
    let soa_serial = |r: &Record| match &r.data {
        RData::SOA(x) => Some(x.serial),
        _ => None,
    };
    assert_eq!(soa_serial(&ixfr[0]), Some(s2));
    assert_eq!(soa_serial(&ixfr[1]), Some(s1));
    let mid = ixfr
        .iter()
        .skip(2)
        .position(|r| soa_serial(r) == Some(s2))
        .unwrap()
        + 2;
    let deleted = as_set(&ixfr[2..mid]);
    let added = as_set(&ixfr[mid + 1..ixfr.len() - 1]);
    let (old, new) = (as_set(&a1), as_set(&a2));
    assert!(deleted.is_subset(&old), "deletions are in the old zone");
    assert!(added.is_disjoint(&old), "additions are new");
    let mut applied: HashSet<String> = old.difference(&deleted).cloned().collect();
    applied.extend(added.iter().cloned());
    assert_eq!(applied, new, "old - deletions + additions = new");
    assert!(
        ixfr.len() < 60,
        "{} records in the IXFR of two changes",
        ixfr.len()
    );
    assert!(added
        .iter()
        .any(|r| r.contains("new1.o-v1.mx.example.") && r.contains("rrsig")));
    // up to date: the SOA alone; unknown (older than the journal): the whole zone
    let (same, _) = signed_transfer(s.dns, &good, p, RecordType::IXFR, Some(s2));
    assert_eq!(same.len(), 1);
    let (full, _) = signed_transfer(
        s.dns,
        &good,
        p,
        RecordType::IXFR,
        Some(s1.wrapping_sub(1000)),
    );
    assert_eq!(as_set(&full), new, "AXFR-style answer");
    // IXFR over UDP: the current SOA only, signed
    let mut q = xfr_query(p, RecordType::IXFR, Some(s1));
    let mut v = q.finalize(&good, now()).unwrap().unwrap();
    let raw = udp_raw(s.dns, &q.to_vec().unwrap()).unwrap();
    let m = v.verify(&raw).unwrap().into_message();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(soa_serial(&m.answers[0]), Some(s2));

    // refusals, and what the answer says (RFC 8945 5.2)
    let ask = |src: [u8; 4], key: Option<(&TSigner, u64)>| -> Message {
        let mut q = xfr_query(p, RecordType::AXFR, None);
        let verifier = key.map(|(k, t)| q.finalize(k, t).unwrap().unwrap());
        let mut c = tcp_from(src, s.dns);
        send_framed(&mut c, &q.to_vec().unwrap());
        let raw = recv_framed(&mut c).expect("an answer");
        if let Some(mut v) = verifier {
            // the answer is signed when the key was right
            if let Ok(m) = v.verify(&raw) {
                return m.into_message();
            }
        }
        Message::from_vec(&raw).unwrap()
    };
    let tsig_error = |m: &Message| m.signature().and_then(|t| t.data.error).map(u16::from);
    let no_key = ask([127, 0, 0, 1], None);
    assert_eq!(no_key.metadata.response_code, ResponseCode::Refused);
    assert!(no_key.answers.is_empty());
    let other_addr = ask([127, 0, 0, 2], Some((&good, now())));
    assert_eq!(other_addr.metadata.response_code, ResponseCode::Refused);
    assert!(
        other_addr
            .signature()
            .is_some_and(|t| !t.data.mac.is_empty()),
        "signed: the key was good"
    );
    let unknown = signer("stranger.", &secret(&s, "knot1"));
    let m = ask([127, 0, 0, 1], Some((&unknown, now())));
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&m), Some(17), "BADKEY");
    assert!(m.signature().unwrap().data.mac.is_empty(), "unsigned");
    let wrong = signer("knot1.", &secret(&s, "nsd1"));
    let m = ask([127, 0, 0, 1], Some((&wrong, now())));
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&m), Some(16), "BADSIG");
    assert!(m.signature().unwrap().data.mac.is_empty(), "unsigned");
    let late = now() - 3600;
    let mut q = xfr_query(p, RecordType::AXFR, None);
    q.finalize(&good, late).unwrap();
    let req_mac = q.signature().unwrap().data.mac.clone();
    let mut c = tcp_from([127, 0, 0, 1], s.dns);
    send_framed(&mut c, &q.to_vec().unwrap());
    let raw = recv_framed(&mut c).unwrap();
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&m), Some(18), "BADTIME");
    let t = &m.signature().unwrap().data;
    assert_eq!(t.time, late, "time signed: the request's");
    assert_eq!(t.other.len(), 6, "other data: our time");
    let ours = t.other.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    assert!(ours.abs_diff(now()) < 60);
    good.verify_message_byte(&raw, Some(&req_mac), true)
        .expect("a BADTIME answer is signed");
    assert!(s.log().contains("zone transfer refused"), "logged");

    // real secondaries without the right key get nothing: NSD asking without TSIG, Knot with
    // a wrong secret
    let before = (transfers(&s, p, "knot1.").len(), transfers(&s, p, "").len());
    let nsd = Secondary::start(&s, Kind::Nsd, "nsd1", nsd_addr, |b| {
        b.replace(" nsd1\n", " NOKEY\n")
    });
    let knot = Secondary::start(&s, Kind::Knot, "knot1", knot_addr, |b| {
        let real = b
            .lines()
            .find_map(|l| l.trim().strip_prefix("secret: "))
            .unwrap()
            .to_string();
        b.replace(&real, &secret(&s, "nsd1"))
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = s.log();
        let knot_refused =
            log.contains("TSIG refused") && log.contains("key=\"knot1.\" error=\"BADSIG\"");
        let nsd_refused = log.contains("reason=\"no TSIG (secondaries must sign)\"");
        if knot_refused && nsd_refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not logged: {log}\n{}\n{}",
            nsd.log(),
            knot.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for sec in [&nsd, &knot] {
        for z in ZONES {
            assert_eq!(sec.serial(z), None, "{} has {z}: {}", sec.name, sec.log());
        }
    }
    let after = (transfers(&s, p, "knot1.").len(), transfers(&s, p, "").len());
    assert_eq!(before, after, "nothing transferred: {}", s.log());
}

#[test]
fn the_start_refuses_soa_timers_that_outlive_signatures_and_bad_secondaries() {
    let dir = tempfile::tempdir().unwrap();
    let attempt = |config: &str| -> String {
        let path = dir.path().join("mxdns.toml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&path)
            .args(["keys", "ds"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config} accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // the old default: 14 days against the 7-day refresh window
    let e = attempt("[soa]\nexpire = 1209600\n");
    assert!(
        e.contains("[soa] expire = 1209600 s is too long") && e.contains("<= 601140 s"),
        "{e}"
    );
    let e = attempt("[soa]\nrefresh = 600\nretry = 3600\n");
    assert!(e.contains("retry <= refresh"), "{e}");
    let e = attempt("[[secondaries]]\nname = \"n\"\naddress = \"ns.example:53\"\ntsig = \"n\"\n");
    assert!(e.contains("bad address") && e.contains("\"n\""), "{e}");
}

/// TTLs of 2 s and safety margins of 1 s; the server's own scheduler runs every second and a
/// key step that waits for a secondary more than 6 s is an alarm.
const FAST_KEYS: &str = "host_ttl = 2
[ttl]
soa = 2
negative = 2
ns = 2
dnskey = 2
ds = 2
[keys]
check_interval = 1
fleet_wait_alarm = 6
fleet_timeout_ms = 500
[keys.timing]
propagation_delay = 1
publish_safety = 1
retire_safety = 1
parent_ds_ttl = 2
parent_propagation_delay = 1
";

fn keys_json(s: &Server, zone: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&s.cmd(&["keys", "list", "--zone", zone, "--json"])).unwrap();
    v[0].clone()
}

/// The key tags of a zone's keys of `role` in `state`.
fn key_tags(z: &serde_json::Value, role: &str, state: &str) -> Vec<u64> {
    z["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["role"] == role && k["state"] == state)
        .map(|k| k["key_tag"].as_u64().unwrap())
        .collect()
}

/// Waits (bounded) until the zone's `keys list` satisfies `pred`.
fn wait_keys_list(
    s: &Server,
    zone: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let z = keys_json(s, zone);
        if pred(&z) {
            return z;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {z:#}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Rolls `role` of `zone` now and waits until the old key is removed and a new one active.
fn roll_through(s: &Server, zone: &str, role: &str, secs: u64) -> (u64, u64) {
    let before = keys_json(s, zone);
    let old = key_tags(&before, role, "active");
    assert_eq!(old.len(), 1, "{before:#}");
    s.cmd(&[
        "keys",
        "roll",
        "--zone",
        zone,
        &format!("--{role}"),
        "--now",
    ]);
    let z = wait_keys_list(s, zone, secs, &format!("the {role} roll of {zone}"), |z| {
        key_tags(z, role, "removed").contains(&old[0])
            && key_tags(z, role, "active").len() == 1
            && key_tags(z, role, "active") != old
    });
    (old[0], key_tags(&z, role, "active")[0])
}

/// Unbound validating continuously through the secondaries: host A, TLSA, an NXDOMAIN name
/// and both DNSKEY sets; a query Unbound first sent to the stopped secondary may outlast our
/// wait, so it is asked again once.
fn validate_continuously(resolver: SocketAddr) -> Validator {
    let cases = vec![
        (
            "h1.o-v1.mx.example.".to_string(),
            RecordType::A,
            ResponseCode::NoError,
        ),
        (
            "_25._tcp.h1.o-v1.mx.example.".to_string(),
            RecordType::TLSA,
            ResponseCode::NoError,
        ),
        (
            "nx-fleet.o-v1.mx.example.".to_string(),
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "o-v1.mx.example.".to_string(),
            RecordType::DNSKEY,
            ResponseCode::NoError,
        ),
        (
            "mx.example.".to_string(),
            RecordType::DNSKEY,
            ResponseCode::NoError,
        ),
    ];
    Validator::start(resolver, cases, 1, Duration::from_secs(300))
}

/// Item 5 of issue 11: with NSD and Knot as the only servers Unbound knows, a ZSK roll and a
/// partition KSK roll go through without a SERVFAIL, each step counted from when both
/// secondaries serve it; with Knot stopped the next roll waits, says why (keys list, the keys
/// API, the log, and health once past `fleet_wait_alarm`), and goes on when Knot is back.
#[test]
fn rollovers_wait_for_every_secondary_and_unbound_validates_through_them() {
    let (s, nsd_addr, knot_addr) = primary(0, FAST_KEYS);
    s.cmd(&[
        "host",
        "add",
        "h1.o-v1.mx.example.",
        "--a",
        "192.0.2.25",
        "--tlsa",
        &format!("3 1 1 {}", "ab".repeat(32)),
        "--ttl",
        "2",
    ]);
    let nsd = Secondary::start(&s, Kind::Nsd, "nsd1", nsd_addr, |b| b);
    let mut knot = Secondary::start(&s, Kind::Knot, "knot1", knot_addr, |b| b);
    for z in ZONES {
        let serial = serial_of(&s, z);
        nsd.wait_serial(z, serial, 30);
        knot.wait_serial(z, serial, 30);
    }
    let p = "o-v1.mx.example.";
    // the first keys are seen on the fleet: nothing waits
    wait_keys_list(&s, p, 20, "the first keys seen on the fleet", |z| {
        z["waiting_for_fleet"].is_null()
    });
    let ds = s.cmd(&["keys", "ds"]);
    let u = Unbound::start_stubs(
        &ds,
        &[nsd.addr, knot.addr],
        "  aggressive-nsec: no\n  cache-max-negative-ttl: 1\n",
        free_port(),
    );
    let q = validate_continuously(u.addr);
    std::thread::sleep(Duration::from_secs(1));

    // a ZSK roll and a partition KSK roll, every step after both secondaries serve it
    let t0 = Instant::now();
    let (old_zsk, new_zsk) = roll_through(&s, p, "zsk", 40);
    let (old_ksk, new_ksk) = roll_through(&s, p, "ksk", 40);
    let rolls = t0.elapsed();
    let z = keys_json(&s, p);
    let by_tag = |tag: u64| {
        z["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_tag"] == tag)
            .unwrap()
            .clone()
    };
    let unix = |k: &serde_json::Value, f: &str| k[f]["unix"].as_u64();
    // the fleet's moments are stored with the steps and the waits count from them
    let (oz, nz) = (by_tag(old_zsk), by_tag(new_zsk));
    let switched = unix(&nz, "active").unwrap();
    let seen = unix(&nz, "published_fleet").expect("publication seen on the fleet");
    assert!(seen >= unix(&nz, "published").unwrap());
    assert!(switched >= seen + 3, "{z:#}");
    let retired_seen = unix(&oz, "retired_fleet").expect("switch seen on the fleet");
    assert!(retired_seen >= switched);
    assert!(unix(&oz, "removed").unwrap() >= retired_seen + 3, "{z:#}");
    let (ok, nk) = (by_tag(old_ksk), by_tag(new_ksk));
    assert!(unix(&nk, "ds_submitted").unwrap() >= unix(&nk, "published_fleet").unwrap() + 3);
    let ds_seen = unix(&nk, "ds_fleet").expect("the parent's DS seen on the fleet");
    assert!(ds_seen >= unix(&nk, "ds_submitted").unwrap());
    assert!(unix(&ok, "removed").unwrap() >= ds_seen + 3, "{z:#}");
    let log = s.log();
    assert!(
        log.contains("every secondary serves the key steps stored so far"),
        "{log}"
    );
    // both secondaries serve the new keys only
    std::thread::sleep(Duration::from_millis(500));
    for z in ZONES {
        let serial = serial_of(&s, z);
        nsd.wait_serial(z, serial, 10);
        knot.wait_serial(z, serial, 10);
    }
    for sec in [&nsd, &knot] {
        let m = query_udp(sec.addr, p, RecordType::DNSKEY, true, 1232).unwrap();
        let tags: Vec<u16> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DNSKEY(k)) => {
                    k.calculate_key_tag().ok()
                }
                _ => None,
            })
            .collect();
        assert!(
            tags.contains(&(new_zsk as u16)) && tags.contains(&(new_ksk as u16)),
            "{} serves {tags:?}",
            sec.name
        );
        assert!(!tags.contains(&(old_zsk as u16)) && !tags.contains(&(old_ksk as u16)));
    }

    // Knot stops: the next ZSK roll publishes its key and then waits for Knot, saying so
    knot.stop();
    let before = keys_json(&s, p);
    let old = key_tags(&before, "zsk", "active");
    s.cmd(&["keys", "roll", "--zone", p, "--zsk", "--now"]);
    let z = wait_keys_list(&s, p, 20, "the roll to wait for knot1", |z| {
        z["waiting_for_fleet"]["lagging"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["secondary"] == "knot1"))
    });
    let lagging = &z["waiting_for_fleet"]["lagging"];
    assert!(
        lagging
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["secondary"] == "knot1"),
        "only Knot lags: {z:#}"
    );
    let table = s.cmd(&["keys", "list", "--zone", p]);
    assert!(
        table.contains("WAITING for the fleet") && table.contains("knot1"),
        "{table}"
    );
    let admin = s.admin_token();
    let (st, v) = http(
        s.api,
        "GET",
        &format!("/v1/zones/{p}/keys"),
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        v.to_string().contains("knot1"),
        "the keys API names it: {v}"
    );
    // past the alarm: health says it, loudly, naming Knot; the roll has not moved
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let (st, v) = http(s.api, "GET", "/v1/health", None, None);
        if st == 503 && v.to_string().contains("knot1") {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "health never named knot1: {st} {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(health.to_string().contains("fleet_wait_alarm"), "{health}");
    let z = keys_json(&s, p);
    assert_eq!(
        key_tags(&z, "zsk", "active"),
        old,
        "the switch waits: {z:#}"
    );
    assert_eq!(key_tags(&z, "zsk", "published").len(), 1, "{z:#}");
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("key rollover waits for the fleet") && l.contains("knot1")),
        "warned: {log}"
    );
    // the scheduler's next check (every second) logs the error
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .log()
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("keys.fleet_wait_alarm") && l.contains("knot1"))
    {
        assert!(
            Instant::now() < deadline,
            "no error past the alarm: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Knot is back: it catches up, the roll goes on, health is fine again
    knot.spawn();
    wait_keys_list(&s, p, 40, "the roll to go on once Knot is back", |z| {
        key_tags(z, "zsk", "removed").contains(&old[0]) && key_tags(z, "zsk", "active") != old
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, v) = http(s.api, "GET", "/v1/health", None, None);
        if st == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "health stays unhealthy: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }

    let (n, errors) = q.finish();
    assert!(n > 100, "only {n} answers");
    assert!(
        errors.is_empty(),
        "{} of {n} answers failed validation (rolls took {rolls:?}): {errors:#?}\n{}",
        errors.len(),
        u.log()
    );
}
