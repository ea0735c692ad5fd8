//! Tenants who can only touch what they proved, and an API that trusts nothing: the real server,
//! its real SQLite store, and Unbound serving the customer zones (the TXT records that prove a
//! domain) as the configured resolver.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};

fn req(s: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    http(s.api, method, path, Some(token), body.as_ref())
}

fn code(v: &Value) -> &str {
    v["errorData"]["errorCode"].as_str().unwrap_or_default()
}

/// A tenant: (id, token, token id).
fn tenant(s: &Server, admin: &str, name: &str) -> (String, String, String) {
    let (st, v) = req(s, "POST", "/v1/tenants", admin, Some(json!({"name": name})));
    assert_eq!(st, 201, "{v}");
    let f = |k: &str| v[k].as_str().unwrap().to_string();
    (f("tenantId"), f("token"), f("tokenId"))
}

/// Unbound on `port` serving `zones`: (domain, TXT values) as static local zones.
fn customer_dns(s: &Server, port: u16, zones: &[(&str, Vec<String>)]) -> Unbound {
    let mut extra = String::new();
    for (d, txts) in zones {
        extra += &format!("  local-zone: \"{d}.\" static\n");
        extra += &format!("  local-data: \"{d}. 60 IN SOA ns.{d}. h.{d}. 1 60 60 60 60\"\n");
        for t in txts {
            extra += &format!("  local-data: '{d}. 5 IN TXT \"{t}\"'\n");
        }
    }
    let ds = s.cmd(&["keys", "ds"]);
    Unbound::start_with(s, &ds, &extra, port)
}

fn host(domain: &str) -> String {
    format!("{}.o-v1.mx.example.", domain.replace('.', "-"))
}

fn served(s: &Server, domain: &str) -> bool {
    let m = query_udp(s.dns, &host(domain), RecordType::A, true, 1232).unwrap();
    m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
}

/// The body with `from` replaced by `to` everywhere (names, sentences).
fn renamed(v: &Value, from: &str, to: &str) -> String {
    v.to_string().replace(from, to)
}

#[test]
fn ownership_is_proved_in_dns_and_a_proved_domain_never_moves() {
    let dns_port = free_port();
    let s = Server::start(&format!(
        "status_resolver = \"127.0.0.1:{dns_port}\"\nstatus_timeout_ms = 1500\n"
    ));
    let admin = s.admin_token();
    let (a, a_tok, _) = tenant(&s, &admin, "contoso");
    let (b, b_tok, _) = tenant(&s, &admin, "fabrikam");
    let (c, c_tok, _) = tenant(&s, &admin, "mallory");
    let certs = tempfile::tempdir().unwrap();
    let (cur, _) = make_cert(certs.path(), "current", 30);
    let (st, v) = req(
        &s,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        &admin,
        Some(json!({"current": cur})),
    );
    assert_eq!(st, 200, "{v}");
    let d = "contoso.test";
    let add = |tenant: &str, token: &str, body: Value| {
        req(
            &s,
            "POST",
            &format!("/v1/tenants/{tenant}/domains"),
            token,
            Some(body),
        )
    };
    let post = |path: String, token: &str| req(&s, "POST", &path, token, None);

    // a tenant cannot mark a domain verified itself; nothing is created
    let (st, v) = add(&a, &a_tok, json!({"domain": d, "verified": true}));
    assert_eq!((st, code(&v)), (403, "VerificationRequired"), "{v}");
    let (st, _) = req(&s, "GET", &format!("/v1/domains/{d}/dnssec"), &a_tok, None);
    assert_eq!(st, 404, "the refused add left nothing behind");

    // adding is a claim with a value to publish; adding again gives the same value
    let (st, v) = add(&a, &a_tok, json!({"domain": d}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["verified"].clone(), v["domain"].clone()),
        (json!(false), json!(d))
    );
    assert_eq!(v["verification"]["name"], d);
    assert_eq!(v["verification"]["type"], "TXT");
    let a_value = v["verification"]["value"].as_str().unwrap().to_string();
    assert!(
        a_value.starts_with("mxdns-verify=") && a_value.len() == 45,
        "{a_value}"
    );
    let (st, v) = add(&a, &a_tok, json!({"domain": d}));
    assert_eq!(
        (st, v["verification"]["value"].as_str()),
        (200, Some(a_value.as_str()))
    );

    // an unproved claim enables nothing
    for path in ["dnssec/enable", "smtp-dane/enable"] {
        let (st, v) = post(format!("/v1/domains/{d}/{path}"), &a_tok);
        assert_eq!((st, code(&v)), (404, "DomainNotFound"), "{path}: {v}");
    }
    assert!(!served(&s, d));

    // another tenant's claim on the same name is not blocked and has its own value
    let (st, v) = add(&b, &b_tok, json!({"domain": d}));
    assert_eq!(st, 201, "{v}");
    let b_value = v["verification"]["value"].as_str().unwrap().to_string();
    assert_ne!(a_value, b_value);

    // the TXT record is not (yet) there: not verified, and the answer says what to publish
    let other = "mxdns-verify=00000000000000000000000000000000".to_string();
    let u = customer_dns(&s, dns_port, &[(d, vec!["v=spf1 -all".into(), other])]);
    let (st, v) = post(format!("/v1/domains/{d}/verify"), &a_tok);
    assert_eq!((st, code(&v)), (409, "DomainVerificationFailed"), "{v}");
    assert!(v["errorData"]["errorDetails"]
        .as_str()
        .unwrap()
        .contains(&a_value));
    drop(u);

    // both values published: A verifies first and owns the domain
    let both = vec![a_value.clone(), b_value.clone()];
    let u = customer_dns(&s, dns_port, &[(d, both.clone()), ("nowhere.test", vec![])]);
    let (st, v) = post(format!("/v1/domains/{d}/verify"), &a_tok);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"]["verified"], true);
    assert_eq!(v["status"]["verification"], Value::Null);
    let (st, v) = post(format!("/v1/domains/{d}/dnssec/enable"), &a_tok);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dnssecMxValue"], host(d).trim_end_matches('.'));
    assert_eq!(
        post(format!("/v1/domains/{d}/smtp-dane/enable"), &a_tok).0,
        200
    );
    assert!(served(&s, d), "served when the API answers");

    // B publishes its own value too: the proved domain does not move
    let (st, v) = post(format!("/v1/domains/{d}/verify"), &b_tok);
    assert_eq!((st, code(&v)), (409, "DomainVerifiedElsewhere"), "{v}");
    for path in ["dnssec/enable", "dnssec/disable", "smtp-dane/disable"] {
        let (st, v) = post(format!("/v1/domains/{d}/{path}"), &b_tok);
        assert_eq!((st, code(&v)), (404, "DomainNotFound"), "{path}: {v}");
    }
    let (st, v) = req(&s, "DELETE", &format!("/v1/domains/{d}"), &b_tok, None);
    assert_eq!(st, 200, "B removes its own claim only: {v}");
    let (st, _) = req(&s, "GET", &format!("/v1/domains/{d}/dnssec"), &b_tok, None);
    assert_eq!(st, 404, "B's claim is gone");
    let (_, v) = add(&b, &b_tok, json!({"domain": d}));
    let b_value = v["verification"]["value"].as_str().unwrap().to_string();
    // the operator does not move it silently either
    let (st, v) = add(&b, &admin, json!({"domain": d, "verified": true}));
    assert_eq!((st, code(&v)), (409, "DomainAlreadyAccepted"), "{v}");
    let (st, v) = req(&s, "GET", &format!("/v1/domains/{d}/dnssec"), &admin, None);
    assert_eq!(
        (st, v["status"]["tenantId"].as_str()),
        (200, Some(a.as_str())),
        "{v}"
    );
    assert_eq!(v["status"]["smtpDaneEnabled"], true);
    assert!(served(&s, d));
    drop(u);

    // no oracle: for C, A's domain and a name nobody has give the same answers on every route
    let n = "nowhere.test";
    let u = customer_dns(
        &s,
        dns_port,
        &[(d, vec![a_value.clone(), b_value.clone()]), (n, vec![])],
    );
    let routes: [(&str, &str); 7] = [
        ("POST", "/v1/domains/{d}/verify"),
        ("POST", "/v1/domains/{d}/dnssec/enable"),
        ("POST", "/v1/domains/{d}/dnssec/disable"),
        ("POST", "/v1/domains/{d}/smtp-dane/enable"),
        ("POST", "/v1/domains/{d}/smtp-dane/disable"),
        ("GET", "/v1/domains/{d}/dnssec"),
        ("DELETE", "/v1/domains/{d}"),
    ];
    let same_for_both = |stage: &str, values: Option<(&str, &str)>| {
        for (method, path) in routes {
            let theirs = req(&s, method, &path.replace("{d}", d), &c_tok, None);
            let nobody = req(&s, method, &path.replace("{d}", n), &c_tok, None);
            let mut t = renamed(&theirs.1, d, n);
            if let Some((vd, vn)) = values {
                t = t.replace(vd, vn);
            }
            assert_eq!(
                (theirs.0, t),
                (nobody.0, nobody.1.to_string()),
                "{stage}: {method} {path}"
            );
            assert!(
                !theirs.1.to_string().contains(&a),
                "{stage}: {method} {path}: {}",
                theirs.1
            );
        }
    };
    same_for_both("without a claim", None);
    let (st_d, vd) = add(&c, &c_tok, json!({"domain": d}));
    let (st_n, vn) = add(&c, &c_tok, json!({"domain": n}));
    let (cd, cn) = (
        vd["verification"]["value"].as_str().unwrap().to_string(),
        vn["verification"]["value"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        (st_d, renamed(&vd, d, n).replace(&cd, &cn)),
        (st_n, vn.to_string()),
        "adding"
    );
    // with a claim on each (the DELETE at the end removes both claims again)
    same_for_both("with a claim", Some((&cd, &cn)));
    same_for_both("after removing the claims", None);
    // and A's domain is untouched by all of it
    let (_, v) = req(&s, "GET", &format!("/v1/domains/{d}/dnssec"), &a_tok, None);
    assert_eq!(v["status"]["smtpDaneEnabled"], true, "{v}");
    assert!(served(&s, d));

    // removal: DANE and DNSSEC off and the host out of the zone in one go; then B's claim,
    // still published, proves it for B
    let (st, v) = req(&s, "DELETE", &format!("/v1/domains/{d}"), &a_tok, None);
    assert_eq!((st, &v["result"]), (200, &json!("Success")), "{v}");
    assert!(
        !served(&s, d),
        "the served zone lost the host when the API answered"
    );
    let m = query_udp(
        s.dns,
        &format!("_25._tcp.{}", host(d)),
        RecordType::TLSA,
        true,
        1232,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (st, _) = req(&s, "GET", &format!("/v1/domains/{d}/dnssec"), &a_tok, None);
    assert_eq!(st, 404, "A holds nothing any more");
    let (st, v) = post(format!("/v1/domains/{d}/verify"), &b_tok);
    assert_eq!((st, &v["status"]["verified"]), (200, &json!(true)), "{v}");
    let (st, v) = post(format!("/v1/domains/{d}/dnssec/enable"), &b_tok);
    assert_eq!(
        (st, v["dnssecMxValue"].as_str()),
        (200, Some(host(d).trim_end_matches('.')))
    );
    assert!(served(&s, d));
    drop(u);

    // the operator marks domains verified directly (migrations): API and command line
    let (st, v) = add(
        &c,
        &admin,
        json!({"domain": "migrated.test", "verified": true}),
    );
    assert_eq!((st, &v["verified"]), (201, &json!(true)), "{v}");
    let out = s.cmd(&["domain", "add", "--tenant", &c, "cli.test"]);
    assert!(out.contains("\"verified\": true"), "{out}");
    for x in ["migrated.test", "cli.test"] {
        let (st, v) = post(format!("/v1/domains/{x}/dnssec/enable"), &c_tok);
        assert_eq!(st, 200, "{x}: {v}");
    }
    // and verifies a claim by DNS from the command line
    let (_, v) = add(&c, &c_tok, json!({"domain": "proof.test"}));
    let value = v["verification"]["value"].as_str().unwrap().to_string();
    let _u = customer_dns(&s, dns_port, &[("proof.test", vec![value])]);
    let out: Value = serde_json::from_str(&s.cmd(&["domain", "verify", "proof.test"])).unwrap();
    assert_eq!(out["status"]["verified"], true, "{out}");
    let (_, v) = req(&s, "GET", "/v1/domains/proof.test/dnssec", &c_tok, None);
    assert_eq!(v["status"]["verified"], true, "C owns it now: {v}");
    let out: Value = serde_json::from_str(&s.cmd(&["domain", "remove", "proof.test"])).unwrap();
    assert_eq!(out["result"], "Success");
    let (st, _) = req(&s, "GET", "/v1/domains/proof.test/dnssec", &c_tok, None);
    assert_eq!(st, 404);

    // the refused take-over is in the audit trail
    let (_, v) = req(&s, "GET", "/v1/audit?limit=1000", &admin, None);
    let refused: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "domain.verify.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{v}");
    assert_eq!(refused[0]["tenantId"], b.as_str());
    assert_eq!(refused[0]["detail"]["owner"], a.as_str());
}

#[test]
fn tokens_rotate_and_a_revoked_token_is_refused_at_once() {
    let mut s = Server::start("");
    let admin = s.admin_token();
    let (t, t1, id1) = tenant(&s, &admin, "contoso");
    let (_, u_tok, _) = tenant(&s, &admin, "fabrikam");
    let works = |s: &Server, tok: &str| req(s, "GET", "/v1/tokens", tok, None).0 == 200;

    // rotation: a second token beside the first
    let (st, v) = req(&s, "POST", "/v1/tokens", &t1, None);
    assert_eq!((st, v["tenantId"].as_str()), (201, Some(t.as_str())), "{v}");
    let (t2, id2) = (
        v["token"].as_str().unwrap().to_string(),
        v["tokenId"].as_str().unwrap().to_string(),
    );
    assert!(works(&s, &t1) && works(&s, &t2));
    let (_, v) = req(&s, "GET", "/v1/tokens", &t2, None);
    let listed = v["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{v}");
    assert!(
        !v.to_string().contains(&t1[t1.len() - 20..]),
        "no secret is listed: {v}"
    );
    // revoked through the API: refused from the next request on
    let (st, v) = req(&s, "DELETE", &format!("/v1/tokens/{id1}"), &t2, None);
    assert_eq!(st, 200, "{v}");
    assert!(v["token"]["revokedAt"].is_i64());
    assert_eq!(req(&s, "GET", "/v1/tokens", &t1, None).0, 401);
    assert!(works(&s, &t2));

    // another tenant's token is a token that does not exist
    let (st_o, vo) = req(&s, "DELETE", &format!("/v1/tokens/{id2}"), &u_tok, None);
    let (st_n, vn) = req(&s, "DELETE", "/v1/tokens/tk0000000000000000", &u_tok, None);
    assert_eq!((st_o, code(&vo)), (404, "TokenNotFound"));
    assert_eq!(
        (st_o, renamed(&vo, &id2, "tk0000000000000000")),
        (st_n, vn.to_string())
    );
    assert!(works(&s, &t2), "still live");
    let (st, v) = req(&s, "POST", "/v1/tokens", &u_tok, Some(json!({"tenant": t})));
    assert_eq!((st, code(&v)), (404, "TenantNotFound"), "{v}");

    // made and revoked by the command line while the server runs: at once, no restart
    let v: Value = serde_json::from_str(&s.cmd(&["token", "add", "--tenant", &t])).unwrap();
    let t3 = v["token"].as_str().unwrap().to_string();
    assert!(works(&s, &t3));
    s.cmd(&["token", "revoke", &id2]);
    assert_eq!(req(&s, "GET", "/v1/tokens", &t2, None).0, 401);
    assert!(works(&s, &t3));
    let v: Value = serde_json::from_str(&s.cmd(&["token", "list", "--tenant", &t])).unwrap();
    let mut revoked: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revokedAt"].is_i64())
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    // tokens made in the same second are listed in id order
    revoked.sort();
    let mut want = [id1.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(revoked, want, "{v}");

    // the admin token rotates too; the bootstrap token, once revoked, stays revoked
    let (st, v) = req(
        &s,
        "POST",
        "/v1/tokens",
        &admin,
        Some(json!({"label": "ops"})),
    );
    assert_eq!((st, &v["tenantId"]), (201, &Value::Null), "{v}");
    let admin2 = v["token"].as_str().unwrap().to_string();
    let (_, v) = req(&s, "GET", "/v1/tokens?tenant=admin", &admin2, None);
    let boot = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"].as_str().unwrap().starts_with("bootstrap"))
        .expect("the bootstrap token is listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        req(&s, "DELETE", &format!("/v1/tokens/{boot}"), &admin2, None).0,
        200
    );
    assert_eq!(req(&s, "GET", "/v1/audit", &admin, None).0, 401);
    assert_eq!(req(&s, "GET", "/v1/audit", &admin2, None).0, 200);
    assert_eq!(req(&s, "GET", "/v1/audit", &t3, None).0, 403, "admin only");
    s.stop();
    s.spawn();
    assert_eq!(
        req(&s, "GET", "/v1/audit", &admin, None).0,
        401,
        "reading the file again does not bring it back"
    );
    assert!(
        works(&s, &admin2) && works(&s, &t3),
        "tokens survive a restart"
    );
    // recovery: remove the file; the next command makes and registers a new one
    std::fs::remove_file(s.data_dir().join("admin-token")).unwrap();
    s.cmd(&["token", "list"]);
    let fresh = s.admin_token();
    assert_ne!(fresh, admin);
    assert_eq!(req(&s, "GET", "/v1/audit", &fresh, None).0, 200);
}

#[test]
fn every_change_is_in_the_audit_trail_and_the_database_is_private() {
    let s = Server::start("");
    let admin = s.admin_token();
    let (t, tok, tok_id) = tenant(&s, &admin, "contoso");
    let (st, v) = req(
        &s,
        "POST",
        &format!("/v1/tenants/{t}/domains"),
        &admin,
        Some(json!({"domain": "contoso.com", "verified": true})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        req(
            &s,
            "POST",
            "/v1/domains/contoso.com/dnssec/enable",
            &tok,
            None
        )
        .0,
        200
    );
    // a refused change writes nothing
    let (_, before) = req(&s, "GET", "/v1/audit?limit=1000", &admin, None);
    let count = before["entries"].as_array().unwrap().len();
    assert_eq!(
        req(&s, "POST", "/v1/domains/nope.com/dnssec/enable", &tok, None).0,
        404
    );
    s.cmd(&["domain", "add", "--tenant", &t, "fabrikam.com"]);
    s.cmd(&["host", "add", "h.o-v1.mx.example", "--a", "192.0.2.9"]);
    assert_eq!(
        req(&s, "DELETE", "/v1/domains/contoso.com", &tok, None).0,
        200
    );

    // paging: three at a time until `next` is null
    let mut all = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let (st, v) = req(
            &s,
            "GET",
            &format!("/v1/audit?after={after}&limit=3"),
            &admin,
            None,
        );
        assert_eq!(st, 200, "{v}");
        let page = v["entries"].as_array().unwrap();
        assert!(page.len() <= 3);
        all.extend(page.iter().cloned());
        match v["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    // the first keys of each zone, made at the first start, are the server's own steps
    assert_eq!(actions[..2], ["keys.steps", "keys.steps"], "{all:?}");
    assert!(all[..2].iter().all(|e| e["actor"] == "system"));
    assert_eq!(
        actions[2..],
        [
            "token.bootstrap",
            "tenant.create",
            "domain.add",
            "dnssec.enable",
            "domain.add",
            "host.add",
            "domain.remove",
        ],
        "{all:?}"
    );
    assert_eq!(all.len(), count + 3, "the refused enable wrote nothing");
    let by = |action: &str| all.iter().find(|e| e["action"] == action).unwrap();
    let boot = by("token.bootstrap")["target"].as_str().unwrap();
    let e = by("tenant.create");
    assert_eq!(
        (
            e["actor"].as_str(),
            e["tokenId"].as_str(),
            e["target"].as_str()
        ),
        (Some("admin"), Some(boot), Some(t.as_str()))
    );
    let e = by("dnssec.enable");
    assert_eq!(
        (
            e["actor"].as_str(),
            e["tenantId"].as_str(),
            e["tokenId"].as_str()
        ),
        (Some("tenant"), Some(t.as_str()), Some(tok_id.as_str()))
    );
    assert_eq!(e["target"], "contoso.com");
    assert_eq!(e["detail"]["mx"], "contoso-com.o-v1.mx.example");
    assert!(e["at"].as_i64().unwrap() > 1_700_000_000);
    let e = all
        .iter()
        .filter(|e| e["action"] == "domain.add")
        .nth(1)
        .unwrap();
    assert_eq!(
        (e["actor"].as_str(), &e["tokenId"]),
        (Some("cli"), &Value::Null)
    );
    let e = by("domain.remove");
    assert_eq!(
        (e["detail"]["dnssec"].clone(), e["detail"]["dane"].clone()),
        (json!(true), json!(false))
    );
    // the command line reads the same trail
    let cli: Value = serde_json::from_str(&s.cmd(&["audit", "--limit", "1000"])).unwrap();
    assert_eq!(cli["entries"].as_array().unwrap(), &all);

    // the database and its -wal/-shm files are the owner's only
    use std::os::unix::fs::PermissionsExt;
    for f in ["mxdns.sqlite3", "mxdns.sqlite3-wal", "mxdns.sqlite3-shm"] {
        let m = std::fs::metadata(s.data_dir().join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
}

/// A raw HTTP exchange: writes `head` and `body`, reads what comes back within `wait`.
/// Returns the status (0: none), the response text and whether the server closed.
fn raw(addr: SocketAddr, head: &str, body: &[u8], wait: Duration) -> (u16, String, bool) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    if !body.is_empty() {
        c.write_all(body).unwrap();
    }
    read_answer(&mut c, wait)
}

fn read_answer(c: &mut TcpStream, wait: Duration) -> (u16, String, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match c.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text, closed)
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_api_checks_the_token_first_and_bounds_everything() {
    let s = Server::start(
        "[api]\nheader_timeout = 1\nrequest_timeout = 2\ntenant_rate = 1\ntenant_burst = 3\nauth_failure_rate = 0.2\nauth_failure_burst = 5\n",
    );
    let admin = s.admin_token();
    let (_, t_tok, _) = tenant(&s, &admin, "contoso");
    let (_, u_tok, _) = tenant(&s, &admin, "fabrikam");
    let big = |token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n",
            64 * 1024 * 1024
        )
    };
    // a 64 MiB body declared, 1 KiB sent: answered at once, the rest never needed
    let (st, text, closed) = raw(s.api, &big(None), &[b' '; 1024], Duration::from_secs(10));
    assert_eq!(st, 401, "{text}");
    assert_eq!(header(&text, "www-authenticate"), Some("Bearer"));
    assert!(
        closed,
        "the connection is closed instead of reading the rest"
    );
    // a tenant's token on the admin-only import: 403, unread
    let (st, text, closed) = raw(
        s.api,
        &big(Some(&t_tok)),
        &[b' '; 1024],
        Duration::from_secs(10),
    );
    assert_eq!(st, 403, "{text}");
    assert!(closed);

    // small bodies elsewhere
    let body = json!({"label": "x".repeat(100 * 1024)});
    let (st, v) = req(&s, "POST", "/v1/tokens", &admin, Some(body));
    assert_eq!((st, code(&v)), (413, "RequestTooLarge"), "{v}");

    // headers must come within header_timeout (1 s); idle connections are cut too
    let (st, _, closed) = raw(
        s.api,
        "GET /v1/health HTTP/1.1\r\nHost: x\r\n",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!((st, closed), (0, true), "a slow head is cut");
    let (_, _, closed) = raw(s.api, "", b"", Duration::from_secs(10));
    assert!(closed, "an idle connection is cut");
    // a whole request within request_timeout (2 s): a body that stops coming gets 408
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let (st, text, _) = raw(s.api, &head, b"{\"name\":", Duration::from_secs(10));
    assert_eq!(st, 408, "{text}");
    assert!(text.contains("RequestTimeout"), "{text}");

    // per tenant: 3 at once, then 429 with Retry-After; another tenant is not held back
    let get = |tok: &str| {
        raw(
            s.api,
            &format!("GET /v1/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\n\r\n"),
            b"",
            Duration::from_secs(10),
        )
    };
    let statuses: Vec<u16> = (0..4).map(|_| get(&t_tok).0).collect();
    assert_eq!(statuses[..3], [200, 200, 200]);
    let (st, text, _) = get(&t_tok);
    assert_eq!(st, 429, "{text}");
    let retry: u64 = header(&text, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{text}");
    assert!(text.contains("TooManyRequests"));
    assert_eq!(get(&u_tok).0, 200);

    // failed authentications per source address: then 429 without looking tokens up
    let mut seen = Vec::new();
    for _ in 0..10 {
        let st = get("not-a-token").0;
        seen.push(st);
        if st == 429 {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    assert!(seen.contains(&401), "{seen:?}");
    let (st, text, _) = get(&u_tok);
    assert_eq!(
        st, 429,
        "the address is held back, whatever its token: {text}"
    );
    assert!(header(&text, "retry-after").is_some());
    assert_eq!(
        http(s.api, "GET", "/v1/health", None, None).0,
        200,
        "health needs no token"
    );

    // the description knows the new routes and what the limits answer
    let (st, doc) = http(s.api, "GET", "/v1/openapi.json", None, None);
    assert_eq!(st, 200);
    for (path, method) in [
        ("/v1/domains/{domain}/verify", "post"),
        ("/v1/domains/{domain}", "delete"),
        ("/v1/tokens", "get"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/{id}", "delete"),
        ("/v1/audit", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op["responses"]["429"].is_object(), "{method} {path}: {op}");
    }
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let s = Server::start("[api]\nmax_connections = 3\nheader_timeout = 60\n");
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(s.api).unwrap()).collect();
    let mut fourth = TcpStream::connect(s.api).unwrap();
    fourth
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (st, _, _) = read_answer(&mut fourth, Duration::from_millis(500));
    assert_eq!(st, 0, "not served while every slot is taken");
    drop(idle);
    let (st, text, _) = read_answer(&mut fourth, Duration::from_secs(10));
    assert_eq!(st, 200, "served once a slot is free: {text}");
}
