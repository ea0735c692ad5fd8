//! The dashboard (`GET /`) in a real headless Chromium: the page and its script load without
//! console errors and show the data of a server the test set up (DOM checks on the rendered
//! page): zones with serials, the key timeline during a ZSK roll, a partition's certificates,
//! domains by state, recent changes; a tenant token sees its own domains only. Chromium is
//! driven by chromedriver (W3C WebDriver); its browser log judges console errors. A screenshot of
//! the key timeline during the roll is written to `$MXDNS_SCREENSHOT` when set (docs/).

mod common;

use std::process::Command;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::json;

fn chromium() -> std::path::PathBuf {
    which("chromium")
}

/// Chromium driven through chromedriver (W3C WebDriver over HTTP): pages, scripts, the
/// browser's console log, screenshots.
struct Browser {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

/// One WebDriver request (chromedriver keeps connections open: the body is read by its
/// Content-Length): (status, JSON).
fn wd(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).unwrap();
    (
        status,
        serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null),
    )
}

impl Browser {
    fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(which("chromedriver"))
            .arg(format!("--port={}", addr.port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Browser {
            child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(addr).is_ok() {
                let (st, v) = wd(addr, "GET", "/status", None);
                if st == 200 && v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver not ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--window-size=1200,1400",
                         format!("--user-data-dir={}", b._profile.path().display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (st, v) = wd(addr, "POST", "/session", Some(&caps));
        assert_eq!(st, 200, "{v}");
        b.session = v["value"]["sessionId"].as_str().unwrap().to_string();
        b
    }

    fn cmd(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let (st, v) = wd(
            self.addr,
            method,
            &format!("/session/{}/{path}", self.session),
            body.as_ref(),
        );
        assert_eq!(st, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn script(&self, js: &str) -> serde_json::Value {
        self.cmd(
            "POST",
            "execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// Opens `url` and waits (bounded) until the page says it has loaded; returns what it says
    /// (admin, tenant or error).
    fn open(&self, url: &str) -> String {
        self.cmd("POST", "url", Some(json!({"url": "about:blank"})));
        self.cmd("POST", "url", Some(json!({"url": url})));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let v = self.script("return (document.body && document.body.dataset.loaded) || ''");
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                return s.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page did not load"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn dom(&self) -> String {
        self.script("return document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The console's warnings and errors since the last call (uncaught exceptions, failed
    /// loads, console.error).
    fn console_problems(&self) -> Vec<String> {
        let v = self.cmd("POST", "se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG")
            .map(|e| e.to_string())
            .collect()
    }

    /// A PNG of the element `css`.
    fn screenshot(&self, css: &str) -> Vec<u8> {
        let e = self.cmd(
            "POST",
            "element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();
        let b64 = self.cmd("GET", &format!("element/{id}/screenshot"), None);
        data_encoding::BASE64
            .decode(b64.as_str().unwrap().as_bytes())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = wd(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_check_sees_errors() {
    // the judge of "no console errors" below must be able to fail
    let b = Browser::start();
    let html = "<body data-loaded=x><script>console.error('boom'); undefinedFn()</script></body>";
    b.open(&format!("data:text/html,{html}"));
    let problems = b.console_problems();
    assert!(
        problems.iter().any(|p| p.contains("boom"))
            && problems.iter().any(|p| p.contains("undefinedFn")),
        "{problems:?}"
    );
}

#[test]
fn the_dashboard_shows_zones_keys_partitions_domains_and_changes() {
    let s = Server::start("");
    let admin = s.admin_token();
    let tenant = |name: &str| {
        let (st, v) = http(
            s.api,
            "POST",
            "/v1/tenants",
            Some(&admin),
            Some(&json!({"name": name})),
        );
        assert_eq!(st, 201, "{v}");
        (
            v["tenantId"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    };
    let (contoso, contoso_token) = tenant("contoso");
    let (fabrikam, _) = tenant("fabrikam");
    for (t, d) in [
        (&contoso, "contoso.com"),
        (&contoso, "contoso.net"),
        (&fabrikam, "fabrikam.org"),
    ] {
        let (st, v) = http(
            s.api,
            "POST",
            &format!("/v1/tenants/{t}/domains"),
            Some(&admin),
            Some(&json!({"domain": d, "verified": true})),
        );
        assert_eq!(st, 201, "{v}");
    }
    let certs = tempfile::tempdir().unwrap();
    let (cur, _) = make_cert(certs.path(), "fleet-current", 30);
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
        Some(&contoso_token),
        None,
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/domains/contoso.com/smtp-dane/enable",
        Some(&contoso_token),
        None,
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/domains/fabrikam.org/dnssec/enable",
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    // a ZSK roll of the partition in progress: two ZSKs published
    s.cmd(&[
        "keys",
        "roll",
        "--zone",
        "o-v1.mx.example.",
        "--zsk",
        "--now",
    ]);
    s.wait_for("o-v1.mx.example.", RecordType::DNSKEY, 10, |m| {
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .count()
            == 3
    });
    let serial = |zone: &str| {
        let m = query_udp(s.dns, zone, RecordType::SOA, false, 1232).unwrap();
        match &m.answers[0].data {
            hickory_proto::rr::RData::SOA(x) => x.serial,
            _ => unreachable!(),
        }
    };

    // the page itself holds no data and needs no token
    let (st, page) = http(s.api, "GET", "/", None, None);
    assert_eq!(st, 200);
    assert!(page.as_str().unwrap().contains("dashboard.js"));

    let b = Browser::start();
    let url = format!("http://{}/#token={admin}", s.api);
    assert_eq!(b.open(&url), "admin");
    let dom = b.dom();
    let problems = b.console_problems();
    assert!(problems.is_empty(), "console: {problems:?}");
    assert!(dom.contains("data-loaded=\"admin\""), "{dom}");
    for zone in ["mx.example.", "o-v1.mx.example."] {
        let row = dom
            .split(&format!("<tr data-zone=\"{zone}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no row for {zone}: {dom}"));
        let row = row.split("</tr>").next().unwrap();
        assert!(row.contains(&format!("<td>{}</td>", serial(zone))), "{row}");
        assert!(row.contains(" days</td>"), "signature horizon: {row}");
    }
    // the timeline of the partition: its KSK and both ZSKs, a now line, the roll and next steps
    let tl = dom
        .split("<div class=\"timeline\" data-zone=\"o-v1.mx.example.\">")
        .nth(1)
        .expect("timeline of o-v1");
    let tl = tl.split("<div class=\"timeline\"").next().unwrap();
    assert_eq!(tl.matches("<g class=\"key\"").count(), 3, "{tl}");
    assert!(tl.contains("class=\"now\""), "{tl}");
    assert!(
        tl.contains("seg-active") && tl.contains("seg-published"),
        "{tl}"
    );
    assert!(tl.contains("ZSK roll in progress"), "{tl}");
    assert!(tl.contains("next: zsk"), "{tl}");
    // partitions with the fleet certificate
    assert!(dom.contains("data-partition=\"o-v1\""), "{dom}");
    assert!(dom.contains("CN=fleet-current"), "{dom}");
    // domains by state, every tenant's (admin)
    for (d, state) in [
        ("contoso.com", "dane"),
        ("contoso.net", "verified"),
        ("fabrikam.org", "dnssec"),
    ] {
        let row = dom
            .split(&format!("<tr data-domain=\"{d}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {d}: {dom}"));
        let row = row.split("</tr>").next().unwrap();
        assert!(row.contains(&format!("<td>{state}</td>")), "{row}");
    }
    assert!(
        dom.contains("dane: 1") && dom.contains("dnssec: 1") && dom.contains("verified: 1"),
        "{dom}"
    );
    // recent changes, newest first
    assert!(dom.contains("<td>dnssec.enable</td>"), "{dom}");

    // a tenant: its own domains, no keys, partitions or changes
    let url = format!("http://{}/#token={contoso_token}", s.api);
    assert_eq!(b.open(&url), "tenant");
    let dom = b.dom();
    let problems = b.console_problems();
    assert!(problems.is_empty(), "console: {problems:?}");
    assert!(dom.contains("data-loaded=\"tenant\""), "{dom}");
    assert!(
        dom.contains("data-domain=\"contoso.com\"") && dom.contains("data-domain=\"contoso.net\"")
    );
    assert!(!dom.contains("fabrikam"), "{dom}");
    assert!(!dom.contains("<g class=\"key\""), "{dom}");

    // the screenshot of the key timeline during the roll
    assert_eq!(b.open(&format!("http://{}/#token={admin}", s.api)), "admin");
    let png = b.screenshot("#keys-section");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(out) = std::env::var("MXDNS_SCREENSHOT") {
        std::fs::write(out, &png).unwrap();
    }
}
