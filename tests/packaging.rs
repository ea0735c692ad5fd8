//! Packaging and day-two: the systemd unit judged by `systemd-analyze` (verify, and the
//! offline security exposure), readiness and reload notifications over a real NOTIFY_SOCKET,
//! SIGHUP (log level applied, other changes reported as needing a restart, a broken file
//! refused), JSON logs.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;

fn unit_with_binary(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/mxdns.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/mxdns "), "{unit}");
    // verify checks that the binary exists: point it at the one under test
    let p = dir.join("mxdns.service");
    std::fs::write(&p, unit.replace("/usr/bin/mxdns", BIN)).unwrap();
    p
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_binary(dir.path());
    let out = Command::new(which("systemd-analyze"))
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // unknown keys and bad values are only warnings: none is accepted
    assert!(
        out.status.success() && !text.contains("mxdns.service"),
        "{text}"
    );
    // the exposure score systemd computes from the sandboxing (0 best, 10 worst): under 2.5
    let out = Command::new(which("systemd-analyze"))
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in ["PrivateTmp=", "ProtectSystem=", "User=/DynamicUser="] {
        assert!(
            text.lines().any(|l| l.contains(line) && l.contains('✓')),
            "{line}: {text}"
        );
    }
}

/// Receives notifications until one equals `want` (bounded).
fn expect_notify(sock: &UnixDatagram, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 512];
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                if msg == want {
                    return;
                }
                seen.push(msg);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no {want} notification; saw {seen:?}");
}

fn wait_log(s: &Server, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log().contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readiness_sighup_reload_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut s = Server::prepare("log_format = \"json\"\nlog_level = \"info\"\n");
    s.env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        // the configured level, not the harness's MXDNS_LOG, decides
        ("MXDNS_LOG".into(), String::new()),
    ];
    s.spawn();
    expect_notify(&sock, "READY=1");
    // JSON lines
    wait_log(&s, "DNS listening");
    for line in s.log().lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(!s.log().contains("\"DEBUG\""));

    // SIGHUP: a new log level applies at once; another change is reported, not applied
    std::fs::write(
        s.config_path(),
        "log_format = \"json\"\nlog_level = \"debug\"\ntcp_max_connections = 7\n",
    )
    .unwrap();
    let pid = s.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    expect_notify(&sock, "RELOADING=1");
    expect_notify(&sock, "READY=1");
    wait_log(&s, "configuration reloaded");
    wait_log(&s, "need a restart");
    let log = s.log();
    let warn = log.lines().find(|l| l.contains("need a restart")).unwrap();
    assert!(
        warn.contains("tcp_max_connections") && !warn.contains("log_level"),
        "{warn}"
    );
    // the new filter lets debug lines through
    wait_log(&s, "log filter replaced");
    assert!(s.log().contains("\"DEBUG\""));

    // a broken file is refused whole
    std::fs::write(s.config_path(), "log_level = [\n").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_log(&s, "configuration reload refused");
    // still serving
    s.wait_for("mx.example.", RecordType::SOA, 5, |m| !m.answers.is_empty());
    assert!(s.stop().success());
    expect_notify(&sock, "STOPPING=1");
}
