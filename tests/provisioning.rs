//! The provisioner end to end: the real HTTP API of the real server, the real DNS answers, and
//! Unbound (with our trust anchor) as the judge of what a sender would see.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{json, Value};

const MX: &str = "contoso-com.o-v1.mx.example";

struct Setup {
    s: Server,
    admin: String,
    tenant: String,
    tenant_token: String,
    spki: Vec<String>,
    certs: tempfile::TempDir,
}

fn setup(config: &str) -> Setup {
    let s = Server::start(config);
    let admin = s.admin_token();
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "contoso"})),
    );
    assert_eq!(st, 201, "{v}");
    let tenant = v["tenantId"].as_str().unwrap().to_string();
    let tenant_token = v["token"].as_str().unwrap().to_string();
    // the operator vouches for the domain (a tenant proves it in DNS: tests/tenancy.rs)
    let (st, v) = http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&admin),
        Some(&json!({"domain": "Contoso.COM.", "verified": true})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["domain"], "contoso.com");
    let certs = tempfile::tempdir().unwrap();
    let (cur, cur_spki) = make_cert(certs.path(), "current", 30);
    let (next, next_spki) = make_cert(certs.path(), "next", 60);
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": cur, "next": next})),
    );
    assert_eq!(st, 200, "{v}");
    let mut spki = vec![cur_spki, next_spki];
    spki.sort();
    Setup {
        s,
        admin,
        tenant,
        tenant_token,
        spki,
        certs,
    }
}

fn post(s: &Server, path: &str, token: &str) -> (u16, Value) {
    http(s.api, "POST", path, Some(token), None)
}

#[test]
fn enable_dnssec_and_dane_then_disable_validated_by_unbound() {
    let Setup {
        s,
        tenant_token: t,
        spki,
        ..
    } = setup("");
    // Enable-DnssecForVerifiedDomain
    let (st, v) = post(&s, "/v1/domains/contoso.com/dnssec/enable", &t);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"result": "Success", "dnssecMxValue": MX, "errorData": null})
    );
    // served, signed, as soon as the API has answered
    let m = query_udp(s.dns, &format!("{MX}."), RecordType::A, true, 1232).unwrap();
    assert_eq!(
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .count(),
        1,
        "{m:?}"
    );
    // calling it again gives the same value
    let (_, v2) = post(&s, "/v1/domains/CONTOSO.com./dnssec/enable", &t);
    assert_eq!(v2["dnssecMxValue"], MX);

    // Enable-SmtpDaneInbound
    let t0 = Instant::now();
    let (st, v) = post(&s, "/v1/domains/contoso.com/smtp-dane/enable", &t);
    assert_eq!(
        (st, v),
        (200, json!({"result": "Success", "errorData": null}))
    );
    let m = query_udp(
        s.dns,
        &format!("_25._tcp.{MX}."),
        RecordType::TLSA,
        true,
        1232,
    )
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(
        tlsa_data(&m),
        spki,
        "TLSA 3 1 1 of the current and next fleet certificates"
    );

    // Get-DnssecStatusForVerifiedDomain
    let (st, v) = http(
        s.api,
        "GET",
        "/v1/domains/contoso.com/dnssec",
        Some(&t),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"]["dnssecMxValue"], MX);
    assert_eq!(v["status"]["smtpDaneEnabled"], true);
    assert_eq!(v["status"]["tlsaRecords"].as_array().unwrap().len(), 2);

    // Unbound with our trust anchor validates what a sender asks
    let ds = s.cmd(&["keys", "ds"]);
    {
        let u = Unbound::start(&s, &ds);
        for (name, rtype) in [
            (format!("{MX}."), RecordType::A),
            (format!("{MX}."), RecordType::AAAA),
            (format!("_25._tcp.{MX}."), RecordType::TLSA),
        ] {
            let m = query_udp(u.addr, &name, rtype, true, 1232).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.metadata.authentic_data, "{name} {rtype}: {}", u.log());
            assert!(!m.answers.is_empty());
        }
        let m = query_udp(u.addr, &format!("{MX}."), RecordType::A, true, 1232).unwrap();
        assert!(m
            .answers
            .iter()
            .any(|r| r.data == RData::A("192.0.2.25".parse().unwrap())));
        let m = query_udp(u.addr, &format!("{MX}."), RecordType::AAAA, true, 1232).unwrap();
        assert!(m
            .answers
            .iter()
            .any(|r| r.data == RData::AAAA("2001:db8::25".parse().unwrap())));
        assert_eq!(
            tlsa_data(
                &query_udp(
                    u.addr,
                    &format!("_25._tcp.{MX}."),
                    RecordType::TLSA,
                    true,
                    1232
                )
                .unwrap()
            ),
            spki
        );
    }

    // Disable-SmtpDaneInbound, then Disable-DnssecForVerifiedDomain
    assert_eq!(
        post(&s, "/v1/domains/contoso.com/smtp-dane/disable", &t).0,
        200
    );
    let m = query_udp(
        s.dns,
        &format!("_25._tcp.{MX}."),
        RecordType::TLSA,
        true,
        1232,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        post(&s, "/v1/domains/contoso.com/dnssec/disable", &t).0,
        200
    );
    let u = Unbound::start(&s, &ds);
    for (name, rtype) in [
        (format!("{MX}."), RecordType::A),
        (format!("_25._tcp.{MX}."), RecordType::TLSA),
    ] {
        let m = query_udp(u.addr, &name, rtype, true, 1232).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(
            m.metadata.authentic_data,
            "validated NXDOMAIN for {name}: {}",
            u.log()
        );
    }
    // the token stays reserved: enabling again gives the same host
    let (_, v) = post(&s, "/v1/domains/contoso.com/dnssec/enable", &t);
    assert_eq!(v["dnssecMxValue"], MX);
}

#[test]
fn every_error_code() {
    let Setup {
        s,
        admin,
        tenant,
        tenant_token: t,
        certs,
        ..
    } = setup("store_busy_timeout_ms = 200\n");
    let err = |v: &Value| {
        v["errorData"]["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // 401: no token, bad token
    assert_eq!(
        http(
            s.api,
            "POST",
            "/v1/domains/contoso.com/dnssec/enable",
            None,
            None
        )
        .0,
        401
    );
    assert_eq!(
        post(&s, "/v1/domains/contoso.com/dnssec/enable", "not-a-token").0,
        401
    );

    // DomainNotFound: not an accepted domain; another tenant's domain looks the same
    let (st, v) = post(&s, "/v1/domains/fabrikam.com/dnssec/enable", &t);
    assert_eq!((st, err(&v).as_str()), (404, "DomainNotFound"), "{v}");
    assert!(v["errorData"]["errorDetails"]
        .as_str()
        .unwrap()
        .contains("fabrikam.com"));
    assert_eq!(v["dnssecMxValue"], Value::Null);
    let (_, other) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "fabrikam"})),
    );
    let other_token = other["token"].as_str().unwrap();
    let (st, v) = post(&s, "/v1/domains/contoso.com/dnssec/enable", other_token);
    assert_eq!((st, err(&v).as_str()), (404, "DomainNotFound"));
    let (st, v) = http(
        s.api,
        "GET",
        "/v1/domains/contoso.com/dnssec",
        Some(other_token),
        None,
    );
    assert_eq!((st, err(&v).as_str()), (404, "EG001"));
    // a tenant cannot add domains to another tenant
    let (st, _) = http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(other_token),
        Some(&json!({"domain": "x.example"})),
    );
    assert_eq!(st, 404);
    // an unverified domain is not enabled
    http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&t),
        Some(&json!({"domain": "unverified.example", "verified": false})),
    );
    let (st, v) = post(&s, "/v1/domains/unverified.example/dnssec/enable", &t);
    assert_eq!((st, err(&v).as_str()), (404, "DomainNotFound"));

    // DomainNotSupported: the tenant's initial domain
    http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&admin),
        Some(&json!({"domain": "contoso.onmxdns.example", "verified": true})),
    );
    let (st, v) = post(&s, "/v1/domains/contoso.onmxdns.example/dnssec/enable", &t);
    assert_eq!((st, err(&v).as_str()), (400, "DomainNotSupported"), "{v}");
    let (st, v) = post(
        &s,
        "/v1/domains/contoso.onmxdns.example/smtp-dane/enable",
        &t,
    );
    assert_eq!((st, err(&v).as_str()), (400, "DomainNotSupported"));

    // PartitionNotFound: DANE before DNSSEC
    let (st, v) = post(&s, "/v1/domains/contoso.com/smtp-dane/enable", &t);
    assert_eq!((st, err(&v).as_str()), (409, "PartitionNotFound"), "{v}");

    // invalid input: bad names, bad bodies, bad certificates (nothing changes)
    let (st, v) = post(&s, "/v1/domains/bad_name..com/dnssec/enable", &t);
    assert_eq!((st, err(&v).as_str()), (400, "InvalidDomainName"), "{v}");
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"nom": 1})),
    );
    assert_eq!((st, err(&v).as_str()), (400, "InvalidRequest"));
    let (st, _) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&t),
        Some(&json!({"name": "x"})),
    );
    assert_eq!(st, 403, "tenants cannot create tenants");
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})),
    );
    assert_eq!((st, err(&v).as_str()), (400, "InvalidCertificate"), "{v}");
    let key = std::fs::read_to_string(certs.path().join("current.key")).unwrap();
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": key})),
    );
    assert_eq!(
        (st, err(&v).as_str()),
        (400, "InvalidCertificate"),
        "a private key is not a certificate: {v}"
    );
    // issuers must be CA certificates, current/next must not be (each with its own sentence)
    let (ca, _) = make_ca_cert(certs.path(), "a-ca", 30);
    let (leaf, _) = make_cert(certs.path(), "a-leaf", 30);
    let cur = std::fs::read_to_string(certs.path().join("current.pem")).unwrap();
    for (body, role, says) in [
        (json!({"current": ca}), "current", "is a CA certificate"),
        (
            json!({"current": cur, "next": ca}),
            "next",
            "is a CA certificate",
        ),
        (
            json!({"current": cur, "issuers": [ca, leaf]}),
            "issuer 2",
            "is not a CA certificate",
        ),
    ] {
        let (st, v) = http(
            s.api,
            "PUT",
            "/v1/partitions/o-v1/certificates",
            Some(&admin),
            Some(&body),
        );
        assert_eq!((st, err(&v).as_str()), (400, "InvalidCertificate"), "{v}");
        let details = v["errorData"]["errorDetails"].as_str().unwrap();
        assert!(
            details.starts_with(&format!("The {role} certificate is not usable"))
                && details.contains(says),
            "{details}"
        );
    }
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v9/certificates",
        Some(&admin),
        Some(&json!({"current": "x"})),
    );
    assert_eq!((st, err(&v).as_str()), (404, "PartitionNotFound"));
    let (_, p) = http(s.api, "GET", "/v1/partitions/o-v1", Some(&admin), None);
    assert_eq!(
        p["tlsa"].as_array().unwrap().len(),
        2,
        "rejected certificates changed nothing: {p}"
    );
    let big = "x".repeat(300 * 1024);
    let (st, _) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": big})),
    );
    assert_eq!(st, 413, "bodies are bounded");

    // DnssecOperationFailed: the store is locked by another writer; nothing is half-applied,
    // and the retry works
    let db = rusqlite::Connection::open(s.data_dir().join("mxdns.sqlite3")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (st, v) = post(&s, "/v1/domains/contoso.com/dnssec/enable", &t);
    assert_eq!(
        (st, err(&v).as_str()),
        (409, "DnssecOperationFailed"),
        "{v}"
    );
    db.execute_batch("ROLLBACK").unwrap();
    let m = query_udp(s.dns, &format!("{MX}."), RecordType::A, true, 1232).unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "nothing was published"
    );
    let (st, v) = post(&s, "/v1/domains/contoso.com/dnssec/enable", &t);
    assert_eq!((st, &v["dnssecMxValue"]), (200, &json!(MX)), "{v}");

    // OpenAPI description
    let (st, v) = http(s.api, "GET", "/v1/openapi.json", None, None);
    assert_eq!(st, 200);
    assert!(v["paths"]["/v1/domains/{domain}/dnssec/enable"]["post"].is_object());
}

#[test]
fn fleet_certificate_change_updates_every_dane_host() {
    let Setup {
        s,
        admin,
        tenant,
        tenant_token: t,
        certs,
        ..
    } = setup("");
    let domains = ["a.example", "b.example", "c.example"];
    for d in domains {
        http(
            s.api,
            "POST",
            &format!("/v1/tenants/{tenant}/domains"),
            Some(&admin),
            Some(&json!({"domain": d, "verified": true})),
        );
        assert_eq!(
            post(&s, &format!("/v1/domains/{d}/dnssec/enable"), &t).0,
            200
        );
        assert_eq!(
            post(&s, &format!("/v1/domains/{d}/smtp-dane/enable"), &t).0,
            200
        );
    }
    let (cur, cur_spki) = make_cert(certs.path(), "rolled", 30);
    let (ca, ca_spki) = make_ca_cert(certs.path(), "issuer", 365);
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": cur, "issuers": [ca]})),
    );
    assert_eq!(st, 200, "{v}");
    let mut want = vec![cur_spki, ca_spki];
    want.sort();
    for d in domains {
        let host = format!("_25._tcp.{}.o-v1.mx.example.", d.replace('.', "-"));
        let m = query_udp(s.dns, &host, RecordType::TLSA, true, 1232).unwrap();
        assert_eq!(tlsa_data(&m), want, "{host}");
        assert!(
            m.answers.iter().any(|r| matches!(&r.data, RData::CNAME(c)
                if c.0.to_ascii() == "_25._tcp._fleet.o-v1.mx.example.")),
            "one shared TLSA RRset, reached by CNAME: {m:?}"
        );
        assert!(
            m.answers
                .iter()
                .any(|r| matches!(&r.data, RData::TLSA(t) if u8::from(t.cert_usage) == 2)),
            "2 1 1 for the issuer"
        );
    }
    // the partition shows each certificate's validity as openssl reads it
    let (st, p) = http(s.api, "GET", "/v1/partitions/o-v1", Some(&admin), None);
    assert_eq!(st, 200, "{p}");
    let tlsa = p["tlsa"].as_array().unwrap();
    assert_eq!(tlsa.len(), 2, "{p}");
    for (role, file, cn) in [
        ("current", "rolled.pem", "CN=rolled"),
        ("issuer", "issuer.pem", "CN=issuer"),
    ] {
        let c = tlsa.iter().find(|c| c["role"] == role).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-dateopt", "iso_8601", "-enddate", "-in"])
            .arg(certs.path().join(file))
            .output()
            .unwrap();
        // notAfter=2027-01-01 10:00:00Z
        let end = String::from_utf8_lossy(&out.stdout)
            .trim()
            .replacen("notAfter=", "", 1)
            .replacen(' ', "T", 1);
        assert_eq!(c["notAfterUtc"], json!(end), "{c}");
        assert_eq!(c["subject"], json!(cn), "{c}");
        let (nb, na) = (
            c["notBefore"].as_i64().unwrap(),
            c["notAfter"].as_i64().unwrap(),
        );
        let days = if role == "issuer" { 365 } else { 30 };
        assert_eq!((na - nb) / 86400, days, "{c}");
    }
}

#[test]
fn command_line_does_the_same() {
    let Setup { s, tenant, .. } = setup("");
    let out = s.cmd(&["domain", "add", "--tenant", &tenant, "fabrikam.com"]);
    assert!(out.contains("\"fabrikam.com\""), "{out}");
    let out = s.cmd(&["dnssec", "enable", "fabrikam.com"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dnssecMxValue"], "fabrikam-com.o-v1.mx.example");
    s.wait_for("fabrikam-com.o-v1.mx.example.", RecordType::A, 5, |m| {
        !m.answers.is_empty()
    });
    let v: Value = serde_json::from_str(&s.cmd(&["dane", "enable", "fabrikam.com"])).unwrap();
    assert_eq!(v["result"], "Success");
    s.wait_for(
        "_25._tcp.fabrikam-com.o-v1.mx.example.",
        RecordType::TLSA,
        5,
        |m| !m.answers.is_empty(),
    );
    let v: Value = serde_json::from_str(&s.cmd(&["dnssec", "status", "fabrikam.com"])).unwrap();
    assert_eq!(v["status"]["smtpDaneEnabled"], true);
    // errors print the same error data and exit non-zero
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data_dir())
        .args(["dane", "enable", "nope.example"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errorData"]["errorCode"], "DomainNotFound");
}
