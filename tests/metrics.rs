//! Prometheus metrics, judged by a real Prometheus (Debian's `prometheus`) and `promtool`.
//!
//! The server serves `/metrics` on `[metrics] listen` (no token) and on the API (admin token
//! only). A Prometheus on a free loopback port scrapes both every second; the test moves the
//! query counters (NS queries over UDP, one over TCP) and asks Prometheus, over its HTTP API,
//! for the counters it scraped: the values must follow what the test sent.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// `GET path` with an optional bearer token: (status, body as text).
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // hyper may send the body chunked
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(metrics: SocketAddr, api: SocketAddr, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n\
             - job_name: mxdns\n  static_configs:\n  - targets: ['{metrics}']\n\
             - job_name: mxdns-api\n  authorization:\n    credentials_file: {}\n  static_configs:\n  - targets: ['{api}']\n",
            token_file.display()
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let out = Command::new(which("promtool"))
            .args(["check", "config"])
            .arg(&config_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check config: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(which("prometheus"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(addr).is_ok() && get(addr, "/-/ready", None).0 == 200 {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant PromQL query with one result (None: no result yet).
    fn value(&self, promql: &str) -> Option<f64> {
        let (st, body) = get(
            self.addr,
            &format!("/api/v1/query?query={}", urlencode(promql)),
            None,
        );
        assert_eq!(st, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        let r = v["data"]["result"].as_array()?;
        let first = r.first()?;
        first["value"][1].as_str()?.parse().ok()
    }

    /// Waits (bounded) until `promql` gives `want`.
    fn wait_value(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.value(promql);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: {got:?}, expected {want}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn prometheus_scrapes_the_counters_the_test_moves() {
    let mport = free_port();
    let metrics = SocketAddr::from(([127, 0, 0, 1], mport));
    let s = Server::start(&format!("[metrics]\nlisten = \"{metrics}\"\n"));
    let token = s.admin_token();

    // the API's /metrics takes the admin token; the metrics listener none
    assert_eq!(get(s.api, "/metrics", None).0, 401);
    let (st, api_text) = get(s.api, "/metrics", Some(&token));
    assert_eq!(st, 200, "{api_text}");
    let (st, text) = get(metrics, "/metrics", None);
    assert_eq!(st, 200, "{text}");
    // promtool judges the exposition (syntax and the naming rules)
    let mut check = Command::new(which("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for family in [
        "mxdns_zone_serial{zone=\"mx.example.\"}",
        "mxdns_zone_names{zone=\"o-v1.mx.example.\"}",
        "mxdns_zone_signature_expiry_earliest_timestamp_seconds{zone=\"mx.example.\"}",
        "mxdns_zone_keys{zone=\"mx.example.\",role=\"ksk\",state=\"active\"} 1",
        "mxdns_zone_next_key_event_seconds{zone=\"mx.example.\"}",
        "mxdns_signatures_total{reason=\"build\"}",
        "mxdns_follower_lag_entries 0",
        "mxdns_healthy",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }

    let p = Prometheus::start(metrics, s.api, &token);
    p.wait_value("up{job=\"mxdns\"}", 1.0);
    p.wait_value("up{job=\"mxdns-api\"}", 1.0);
    let ns =
        "mxdns_dns_queries_total{job=\"mxdns\",transport=\"udp\",rcode=\"NOERROR\",qtype=\"NS\"}";
    let nx =
        "mxdns_dns_queries_total{job=\"mxdns\",transport=\"udp\",rcode=\"NXDOMAIN\",qtype=\"A\"}";
    let tcp = "mxdns_dns_queries_total{job=\"mxdns\",transport=\"tcp\",qtype=\"MX\"}";
    // nothing asked NS yet: no series
    assert_eq!(p.value(ns), None);
    for _ in 0..5 {
        let m = query_udp(s.dns, "mx.example.", RecordType::NS, true, 1232).unwrap();
        assert!(!m.answers.is_empty());
    }
    p.wait_value(ns, 5.0);
    for _ in 0..3 {
        query_udp(s.dns, "mx.example.", RecordType::NS, false, 1232).unwrap();
    }
    query_udp(s.dns, "nothing-here.mx.example.", RecordType::A, true, 1232).unwrap();
    p.wait_value(ns, 8.0);
    p.wait_value(nx, 1.0);
    let mut c = Tcp::connect(s.dns);
    c.send(&make_query("mx.example.", RecordType::MX, false, None));
    c.recv();
    p.wait_value(tcp, 1.0);
    // a truncated answer: a TLSA RRset too large for 512 bytes, asked without EDNS
    s.add_big_tlsa_host("big.o-v1.mx.example.", 14);
    let q = make_query(
        "_25._tcp.big.o-v1.mx.example.",
        RecordType::TLSA,
        false,
        None,
    );
    let m = Message::from_vec(&udp_raw(s.dns, &q.to_vec().unwrap()).unwrap()).unwrap();
    assert!(m.metadata.truncation, "{m:?}");
    p.wait_value(
        "mxdns_dns_truncated_total{job=\"mxdns\",transport=\"udp\"}",
        1.0,
    );
    // the change was signed (reason change) and the serial moved
    assert!(
        p.value("mxdns_signatures_total{job=\"mxdns\",reason=\"change\"}")
            .unwrap_or(0.0)
            > 0.0
    );
    // API requests by matched route and status, through the token scrape
    p.wait_value(
        "sum(mxdns_api_requests_total{job=\"mxdns-api\",route=\"/metrics\",status=\"401\"})",
        1.0,
    );
    let scraped = p
        .value("mxdns_api_request_duration_seconds_count{job=\"mxdns-api\",route=\"/metrics\"}")
        .unwrap();
    assert!(scraped >= 2.0, "{scraped}");
}
