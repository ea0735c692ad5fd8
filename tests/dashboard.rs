//! The dashboard (`GET /`) in a real headless Chromium: the page and its script load without
//! console errors and show the data of a server the test set up (DOM checks on the rendered
//! page): zones with serials, the key timeline during a ZSK roll, a partition's certificates,
//! domains by state, recent changes; a tenant token sees its own domains only. A screenshot of
//! the key timeline during the roll is written to `$MXDNS_SCREENSHOT` when set (docs/).

mod common;

use std::process::Command;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::json;

fn chromium() -> std::path::PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| std::path::Path::new(d).join(c).exists())
        {
            return which(c);
        }
    }
    which("chromium")
}

/// Renders `url` headless: (DOM after the script ran, chromium's log with console messages).
fn render(url: &str, profile: &std::path::Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
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

    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/#token={admin}", s.api);
    let (dom, log) = render(&url, &dir.path().join("p1"), &["--dump-dom"]);
    assert!(
        console_lines(&log).is_empty(),
        "console: {:?}",
        console_lines(&log)
    );
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
    let (dom, log) = render(&url, &dir.path().join("p2"), &["--dump-dom"]);
    assert!(
        console_lines(&log).is_empty(),
        "console: {:?}",
        console_lines(&log)
    );
    assert!(dom.contains("data-loaded=\"tenant\""), "{dom}");
    assert!(
        dom.contains("data-domain=\"contoso.com\"") && dom.contains("data-domain=\"contoso.net\"")
    );
    assert!(!dom.contains("fabrikam"), "{dom}");
    assert!(!dom.contains("<g class=\"key\""), "{dom}");

    // the screenshot of the key timeline during the roll
    let shot = dir.path().join("timeline.png");
    let url = format!("http://{}/#token={admin}", s.api);
    let (_, log) = render(
        &url,
        &dir.path().join("p3"),
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(out) = std::env::var("MXDNS_SCREENSHOT") {
        std::fs::copy(&shot, out).unwrap();
    }
}
