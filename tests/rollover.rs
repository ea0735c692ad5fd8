//! Live key rollovers judged by Unbound: a validating resolver with our trust anchor and its
//! cache on queries the zones continuously while `mxdns keys roll --check`, run as cron would
//! (here every second, two at a time), carries a ZSK rollover, a partition KSK rollover and an
//! apex KSK rollover through. All TTLs and delays are a few seconds; every answer must carry
//! the AD bit and none may be SERVFAIL.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

const HOST: &str = "h1.o-v1.mx.example.";
const TLSA_NAME: &str = "_25._tcp.h1.o-v1.mx.example.";
const PARTITION: &str = "o-v1.mx.example.";
const APEX: &str = "mx.example.";

/// TTLs of 2 s, Dprp 1 s, safety margins 1 s: Ipub = Iret = 4 s. The server's own scheduler
/// is off: cron (`keys roll --check`) drives every step.
const CONFIG: &str = "host_ttl = 2
[ttl]
soa = 2
negative = 2
ns = 2
dnskey = 2
ds = 2
[keys]
check_interval = 0
[keys.timing]
propagation_delay = 1
publish_safety = 1
retire_safety = 1
parent_ds_ttl = 2
parent_propagation_delay = 1
";

fn start() -> Server {
    let s = Server::start(CONFIG);
    s.cmd(&[
        "host",
        "add",
        HOST,
        "--a",
        "192.0.2.25",
        "--tlsa",
        &format!("3 1 1 {}", "ab".repeat(32)),
        "--ttl",
        "2",
    ]);
    s.wait_for(TLSA_NAME, RecordType::TLSA, 10, |m| m.answers.len() == 2);
    s
}

/// Queries a resolver in a loop: host A, TLSA, an NXDOMAIN name and the DNSKEY sets; every
/// answer must be validated (AD) and none SERVFAIL.
struct Querier;

impl Querier {
    fn start(resolver: std::net::SocketAddr) -> Validator {
        let cases = vec![
            (HOST.to_string(), RecordType::A, ResponseCode::NoError),
            (
                TLSA_NAME.to_string(),
                RecordType::TLSA,
                ResponseCode::NoError,
            ),
            (
                "nx-rollover.o-v1.mx.example.".to_string(),
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            (
                PARTITION.to_string(),
                RecordType::DNSKEY,
                ResponseCode::NoError,
            ),
            (APEX.to_string(), RecordType::DNSKEY, ResponseCode::NoError),
        ];
        // bounded: 10 minutes at most
        Validator::start(resolver, cases, 0, Duration::from_secs(600))
    }
}

/// `mxdns keys roll --check` every second, two processes at a time, as overlapping cron jobs
/// would. Collects every step they report.
struct Cron {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    steps: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<String>>,
}

impl Cron {
    fn start(s: &Server) -> Self {
        std::fs::write(s.config_path(), &s.extra_config).unwrap();
        let (data, config) = (s.data_dir(), s.config_path());
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(Mutex::new(Vec::new()));
        let logs = Arc::new(Mutex::new(String::new()));
        let (flag, out, log) = (stop.clone(), steps.clone(), logs.clone());
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !flag.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(600) {
                let run = || {
                    Command::new(BIN)
                        .arg("--data-dir")
                        .arg(&data)
                        .arg("--config")
                        .arg(&config)
                        .args(["keys", "roll", "--check"])
                        .output()
                        .unwrap()
                };
                let (a, b) = std::thread::scope(|sc| {
                    let a = sc.spawn(run);
                    let b = sc.spawn(run);
                    (a.join().unwrap(), b.join().unwrap())
                });
                for o in [a, b] {
                    assert!(
                        o.status.success(),
                        "keys roll --check failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    out.lock()
                        .unwrap()
                        .extend(String::from_utf8_lossy(&o.stdout).lines().map(String::from));
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&o.stderr));
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        Cron {
            stop,
            handle: Some(handle),
            steps,
            logs,
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        let steps = self.steps.lock().unwrap().clone();
        // every step was carried out once, even with two runs at a time
        let mut count: BTreeMap<&String, usize> = BTreeMap::new();
        for s in &steps {
            *count.entry(s).or_default() += 1;
        }
        assert!(
            count.values().all(|n| *n == 1),
            "a step was carried out twice: {steps:#?}"
        );
        // and each is in the log with its zone, key tag and step
        let logs = self.logs.lock().unwrap().clone();
        for st in &steps {
            let f: Vec<&str> = st.splitn(4, ' ').collect();
            let (zone, tag, step) = (f[0], f[2], f[3]);
            assert!(
                logs.lines().any(|l| l.contains("key rollover step")
                    && l.contains(&format!("zone={zone}"))
                    && l.contains(&format!("key_tag={tag}"))
                    && l.contains(step)),
                "step {st:?} not logged: {logs}"
            );
        }
        steps
    }
}

fn keys_of(s: &Server, zone: &str) -> Value {
    let v: Value = serde_json::from_str(&s.cmd(&["keys", "list", "--zone", zone, "--json"]))
        .expect("keys list --json");
    v[0].clone()
}

fn tags(z: &Value, role: &str, state: &str) -> Vec<u64> {
    z["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["role"] == role && k["state"] == state)
        .map(|k| k["key_tag"].as_u64().unwrap())
        .collect()
}

/// Waits (bounded) until `pred` holds for the zone's `keys list`.
fn wait_keys(
    s: &Server,
    zone: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let z = keys_of(s, zone);
        if pred(&z) {
            return z;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {z:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The key tags of the DNSKEY RRset and the DS RRset served (over TCP, straight from mxdns).
fn served_tags(s: &Server, name: &str, rtype: RecordType) -> Vec<u16> {
    let (recs, _) = axfr(
        s.dns,
        if name == PARTITION && rtype == RecordType::DS {
            APEX
        } else {
            name
        },
    );
    let mut t: Vec<u16> = recs
        .iter()
        .filter(|r| r.name.to_ascii() == name && r.record_type() == rtype)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => k.calculate_key_tag().ok(),
            RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.key_tag()),
            RData::DNSSEC(DNSSECRData::CDS(d)) => Some(d.key_tag()),
            _ => None,
        })
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Waits (bounded) until the served key tags of (name, type) satisfy `pred`.
fn wait_served(
    s: &Server,
    name: &str,
    rtype: RecordType,
    what: &str,
    pred: impl Fn(&[u16]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = served_tags(s, name, rtype);
        if pred(&t) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn zsk_and_partition_ksk_rollovers_keep_unbound_validating() {
    let s = start();
    let anchor = s.cmd(&["keys", "ds"]);
    let u = Unbound::start(&s, &anchor);
    let q = Querier::start(u.addr);
    let cron = Cron::start(&s);
    std::thread::sleep(Duration::from_secs(2));

    // ZSK: pre-publication, switch, removal
    let before = keys_of(&s, PARTITION);
    let old_zsk = tags(&before, "zsk", "active");
    let old_ksk = tags(&before, "ksk", "active");
    assert_eq!((old_zsk.len(), old_ksk.len()), (1, 1), "{before:#}");
    s.cmd(&["keys", "roll", "--zone", PARTITION, "--zsk", "--now"]);
    let new_zsk = |z: &Value| -> Vec<u64> {
        z["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["role"] == "zsk" && !old_zsk.contains(&k["key_tag"].as_u64().unwrap()))
            .map(|k| k["key_tag"].as_u64().unwrap())
            .collect()
    };
    let z = wait_keys(&s, PARTITION, 20, "a new ZSK", |z| new_zsk(z).len() == 1);
    let new_zsk = new_zsk(&z)[0] as u16;
    wait_keys(&s, PARTITION, 30, "the old ZSK to be removed", |z| {
        tags(z, "zsk", "removed") == old_zsk && tags(z, "zsk", "active") == [new_zsk as u64]
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        served_tags(&s, PARTITION, RecordType::DNSKEY),
        {
            let mut v = vec![new_zsk, old_ksk[0] as u16];
            v.sort();
            v
        },
        "the old ZSK is gone from the zone"
    );

    // partition KSK: double signature, DS written in the parent, old DS withdrawn after
    // the parent's DS TTL and propagation delay
    s.cmd(&["keys", "roll", "--zone", PARTITION, "--ksk", "--now"]);
    let z = wait_keys(&s, PARTITION, 20, "the new KSK's DS in the parent", |z| {
        tags(z, "ksk", "active").len() == 2
            && z["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["ds_at_parent"] == true)
                .count()
                == 2
    });
    let new_ksk: Vec<u64> = tags(&z, "ksk", "active")
        .into_iter()
        .filter(|t| !old_ksk.contains(t))
        .collect();
    wait_served(
        &s,
        PARTITION,
        RecordType::DS,
        "both DS while both KSKs sign",
        |t| t.len() == 2,
    );
    wait_keys(&s, PARTITION, 30, "the old KSK to be removed", |z| {
        tags(z, "ksk", "removed") == old_ksk
    });
    // caches keep answers for up to 2 s: query through them for longer
    std::thread::sleep(Duration::from_secs(4));
    let steps = cron.finish();
    let (answers, errors) = q.finish();
    assert!(
        errors.is_empty(),
        "validation failures: {errors:#?}\n{}",
        u.log()
    );
    assert!(answers > 300, "only {answers} answers");

    let mut expect = vec![new_zsk, new_ksk[0] as u16];
    expect.sort();
    assert_eq!(served_tags(&s, PARTITION, RecordType::DNSKEY), expect);
    assert_eq!(
        served_tags(&s, PARTITION, RecordType::DS),
        vec![new_ksk[0] as u16],
        "the parent's DS matches only the new KSK"
    );
    let ds = s.cmd(&["keys", "ds", "--zone", PARTITION]);
    assert_eq!(ds.lines().count(), 1, "{ds}");
    for step in [
        "switch to the new ZSK",
        "remove the old ZSK",
        "submit the new DS",
        "remove the old KSK and its DS",
    ] {
        assert!(
            steps.iter().any(|l| l.contains(step)),
            "cron carried out {step:?}: {steps:#?}"
        );
    }
    // every step is in the log of the command with zone, key tag and step
    assert!(s.log().contains("keys changed"), "{}", s.log());
}

#[test]
fn apex_ksk_rollover_waits_for_the_parent_and_the_old_anchor_validates_until_replaced() {
    let s = start();
    let old_anchor = s.cmd(&["keys", "ds"]);
    assert_eq!(old_anchor.lines().count(), 1);
    let before = keys_of(&s, APEX);
    let old_ksk = tags(&before, "ksk", "active");
    let u_old = Unbound::start(&s, &old_anchor);
    let q_old = Querier::start(u_old.addr);
    let cron = Cron::start(&s);
    std::thread::sleep(Duration::from_secs(2));

    s.cmd(&["keys", "roll", "--zone", APEX, "--ksk", "--now"]);
    let z = wait_keys(&s, APEX, 20, "the new KSK to wait for the parent", |z| {
        !z["waiting_for_parent"].is_null()
    });
    let waiting = &z["waiting_for_parent"];
    let new_tag = waiting["key_tag"].as_u64().unwrap() as u16;
    let new_ds = waiting["ds"].as_str().unwrap().to_string();
    // CDS and CDNSKEY of the new key only, signed, at the apex
    let cds = s.wait_for(APEX, RecordType::CDS, 5, |m| !m.answers.is_empty());
    assert_eq!(served_tags(&s, APEX, RecordType::CDS), vec![new_tag]);
    assert!(cds
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::RRSIG));
    let cdnskey = s.wait_for(APEX, RecordType::CDNSKEY, 5, |m| !m.answers.is_empty());
    assert_eq!(
        cdnskey
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::CDNSKEY)
            .count(),
        1
    );
    let table = s.cmd(&["keys", "list", "--zone", APEX]);
    assert!(table.contains("WAITING for the parent"), "{table}");
    assert!(table.contains("keys ds-seen --zone mx.example."), "{table}");

    // without confirmation nothing moves, however long cron runs (here: 3 × the retire interval)
    std::thread::sleep(Duration::from_secs(12));
    let z = keys_of(&s, APEX);
    assert_eq!(tags(&z, "ksk", "active").len(), 2, "both KSKs stay: {z:#}");
    assert!(!z["waiting_for_parent"].is_null());

    // the parent now serves the new DS: validators get the new anchor (a second Unbound that
    // holds only the new DS), the operator confirms
    let u_new = Unbound::start(&s, &new_ds);
    let q_new = Querier::start(u_new.addr);
    std::thread::sleep(Duration::from_secs(2));
    let (answers_old, errors_old) = q_old.finish();
    s.cmd(&["keys", "ds-seen", "--zone", APEX]);
    let z = keys_of(&s, APEX);
    assert!(z["waiting_for_parent"].is_null(), "{z:#}");
    // a second confirmation is refused with a sentence, and changes nothing
    let again = Command::new(BIN)
        .arg("--data-dir")
        .arg(s.data_dir())
        .arg("--config")
        .arg(s.config_path())
        .args(["keys", "ds-seen", "--zone", APEX])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no KSK of this zone waits for its DS"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    wait_keys(&s, APEX, 30, "the old KSK to be removed", |z| {
        tags(z, "ksk", "removed") == old_ksk
    });
    std::thread::sleep(Duration::from_secs(4));
    cron.finish();
    let (answers_new, errors_new) = q_new.finish();
    assert!(
        errors_old.is_empty(),
        "the old anchor failed before it was replaced: {errors_old:#?}\n{}",
        u_old.log()
    );
    assert!(
        errors_new.is_empty(),
        "the new anchor failed: {errors_new:#?}\n{}",
        u_new.log()
    );
    assert!(
        answers_old > 200 && answers_new > 100,
        "{answers_old} {answers_new}"
    );

    // the old KSK is gone, CDS/CDNSKEY withdrawn, `keys ds` gives the new anchor only
    let dnskeys = served_tags(&s, APEX, RecordType::DNSKEY);
    assert!(dnskeys.contains(&new_tag) && !dnskeys.contains(&(old_ksk[0] as u16)));
    assert!(served_tags(&s, APEX, RecordType::CDS).is_empty());
    assert_eq!(s.cmd(&["keys", "ds"]).trim(), new_ds.trim());
}

#[test]
fn apex_rollover_goes_on_when_the_parent_servers_serve_the_new_ds() {
    let parent_port = free_port();
    let config = CONFIG.replace(
        "[keys]\ncheck_interval = 0\n",
        &format!("[keys]\ncheck_interval = 0\nparent_servers = [\"127.0.0.1:{parent_port}\"]\n"),
    );
    assert!(config.contains("parent_servers"));
    let s = Server::start(&config);
    let old_ds = s.cmd(&["keys", "ds"]);
    let old_ds = old_ds.trim().to_string();
    let parent = Unbound::start_parent(parent_port, &[&old_ds]);
    let old_ksk = tags(&keys_of(&s, APEX), "ksk", "active");
    s.cmd(&["keys", "roll", "--zone", APEX, "--ksk", "--now"]);
    let cron = Cron::start(&s);
    let z = wait_keys(&s, APEX, 20, "the new KSK to wait for the parent", |z| {
        !z["waiting_for_parent"].is_null()
    });
    let new_ds = z["waiting_for_parent"]["ds"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    // the parent serves only the old DS: the rollover waits, however long
    std::thread::sleep(Duration::from_secs(6));
    assert!(!keys_of(&s, APEX)["waiting_for_parent"].is_null());
    // the parent now serves the new DS: the next cron run sees it and goes on
    drop(parent);
    let _parent = Unbound::start_parent(parent_port, &[&old_ds, &new_ds]);
    wait_keys(&s, APEX, 30, "the old KSK to be removed", |z| {
        z["waiting_for_parent"].is_null() && tags(z, "ksk", "removed") == old_ksk
    });
    let steps = cron.finish();
    assert!(
        steps
            .iter()
            .any(|l| l.contains("new DS seen at the parent")),
        "{steps:#?}"
    );
    assert_eq!(s.cmd(&["keys", "ds"]).trim(), new_ds);
}

#[test]
fn admin_api_for_keys() {
    let s = Server::start(CONFIG);
    let admin = s.admin_token();
    let a = Some(admin.as_str());
    let (st, tenant) = http(
        s.api,
        "POST",
        "/v1/tenants",
        a,
        Some(&serde_json::json!({"name": "t"})),
    );
    assert_eq!(st, 201, "{tenant}");
    let tenant_token = tenant["token"].as_str().unwrap().to_string();

    let (st, v) = http(s.api, "GET", "/v1/keys", a, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["zones"].as_array().unwrap().len(), 2);
    let (st, v) = http(s.api, "GET", "/v1/zones/o-v1.mx.example./keys", a, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["parent"], "served here");
    assert_eq!(v["policy"]["publish_interval"], 4);
    assert!(v["next"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["step"] == "publish successor"));
    let old_zsk = tags(&v, "zsk", "active");

    // not for tenants, not without a token, not for unknown zones, not for unknown roles
    let (st, v) = http(s.api, "GET", "/v1/keys", Some(&tenant_token), None);
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (403, Some("Forbidden"))
    );
    let (st, _) = http(s.api, "POST", "/v1/keys/check", None, None);
    assert_eq!(st, 401);
    let (st, v) = http(s.api, "GET", "/v1/zones/example.org/keys", a, None);
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (404, Some("ZoneNotFound")),
        "{v}"
    );
    let (st, v) = http(s.api, "GET", "/v1/zones/a..b/keys", a, None);
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (400, Some("InvalidZoneName")),
        "{v}"
    );
    let roll = "/v1/zones/o-v1.mx.example./keys/roll";
    let (st, v) = http(
        s.api,
        "POST",
        roll,
        a,
        Some(&serde_json::json!({"role": "csk"})),
    );
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (400, Some("InvalidRequest")),
        "{v}"
    );

    // an unscheduled ZSK roll starts at once and is served when the API answers
    let (st, v) = http(
        s.api,
        "POST",
        roll,
        a,
        Some(&serde_json::json!({"role": "zsk"})),
    );
    assert_eq!(st, 200, "{v}");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["unscheduled roll requested", "publish successor"]);
    let m = query_udp(s.dns, PARTITION, RecordType::DNSKEY, true, 1232).unwrap();
    assert_eq!(
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .count(),
        3,
        "the new ZSK is published"
    );
    // a second one is refused while the first is under way; nothing changes
    let (st, v) = http(
        s.api,
        "POST",
        roll,
        a,
        Some(&serde_json::json!({"role": "zsk"})),
    );
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (409, Some("KeyOperationRefused")),
        "{v}"
    );
    assert!(v["errorData"]["errorDetails"]
        .as_str()
        .unwrap()
        .contains("already under way"));
    // nothing waits for a DS
    let (st, v) = http(s.api, "POST", "/v1/zones/mx.example./keys/ds-seen", a, None);
    assert_eq!(
        (st, v["errorData"]["errorCode"].as_str()),
        (409, Some("KeyOperationRefused")),
        "{v}"
    );
    // the due steps, by API, until the old ZSK is gone (Ipub + Iret = 8 s)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = http(s.api, "POST", "/v1/keys/check", a, None);
        assert_eq!(st, 200, "{v}");
        let z = keys_of(&s, PARTITION);
        if tags(&z, "zsk", "removed") == old_zsk {
            break;
        }
        assert!(Instant::now() < deadline, "{z:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = query_udp(s.dns, PARTITION, RecordType::DNSKEY, true, 1232).unwrap();
    assert_eq!(
        m.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY)
            .count(),
        2
    );
}
