use super::*;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

struct TestClock(AtomicU32);
impl Clock for TestClock {
    fn now(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    }
}

fn all_sig_windows(cat: &Catalog) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for z in &cat.zones {
        for r in z.records() {
            for s in &r.rrsigs() {
                let s = keys::verify::as_rrsig(s).unwrap();
                out.push((
                    s.input().sig_inception.get(),
                    s.input().sig_expiration.get(),
                ));
            }
        }
    }
    out
}

#[test]
fn signatures_are_refreshed_before_expiry_with_a_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000;
    let clock = Arc::new(TestClock(AtomicU32::new(t0)));
    let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    let serial0 = mgr.catalog.load().zones[0].serial();
    // nothing to do at t0
    assert_eq!(mgr.refresh_signatures().unwrap(), 0);
    // 8 days later every signature is within the 7-day refresh window of its expiry
    clock.0.store(t0 + 8 * 86400, Ordering::SeqCst);
    assert!(mgr.refresh_signatures().unwrap() > 0);
    for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
        assert!(
            inc <= t0 + 8 * 86400 && exp > t0 + 8 * 86400 + 7 * 86400,
            "fresh window {inc}..{exp}"
        );
    }
    assert!(
        mgr.catalog.load().zones[0].serial() > serial0,
        "serial moves with every change"
    );
}

/// Every RRSIG of every zone verifies at `now` with the zone's DNSKEY RRset; DNSKEY is
/// signed by KSKs only, everything else by one ZSK; each partition's DS in the apex matches
/// a KSK that signs the partition's DNSKEY RRset. Returns the key tags in DNSKEY per zone.
fn assert_valid(cat: &Catalog, now: u32) -> BTreeMap<Name, Vec<u16>> {
    use hickory_proto::dnssec::rdata::DNSKEY;
    let mut tags = BTreeMap::new();
    let mut ksk_signers: BTreeMap<Name, BTreeSet<u16>> = BTreeMap::new();
    for z in &cat.zones {
        let apex = z.apex().unwrap();
        let keys: Vec<DNSKEY> = apex
            .get(RecordType::DNSKEY)
            .unwrap()
            .records()
            .iter()
            .filter_map(|r| keys::verify::as_dnskey(r).cloned())
            .collect();
        let mut zsk_tags = BTreeSet::new();
        for r in z.records() {
            for s in &r.rrsigs() {
                let sig = keys::verify::as_rrsig(s).unwrap();
                let key = keys::verify::verify_rrsig(&z.origin, &r.records(), sig, &keys, now)
                    .unwrap_or_else(|e| panic!("{} {} in {}: {e}", r.name(), r.rtype, z.origin));
                if matches!(r.rtype, RecordType::CDS | RecordType::CDNSKEY) {
                    // RFC 7344 4.1: signed by a key of the current DS (a KSK)
                    assert_eq!(key.flags(), 257, "{} signed by a KSK", r.rtype);
                } else if r.rtype == RecordType::DNSKEY {
                    assert_eq!(key.flags(), 257, "DNSKEY signed by a KSK");
                    ksk_signers
                        .entry(z.origin.clone())
                        .or_default()
                        .insert(sig.input().key_tag);
                } else {
                    assert_eq!(key.flags(), 256, "{} {} signed by a ZSK", r.name(), r.rtype);
                    zsk_tags.insert(sig.input().key_tag);
                }
            }
        }
        assert_eq!(
            zsk_tags.len(),
            1,
            "one ZSK signs {}: {zsk_tags:?}",
            z.origin
        );
        for t in [RecordType::SOA, RecordType::DNSKEY] {
            assert!(apex.get(t).is_some_and(|r| r.is_signed()), "{t} signed");
        }
        tags.insert(
            z.origin.clone(),
            keys.iter()
                .map(|k| k.calculate_key_tag().unwrap())
                .collect(),
        );
    }
    let apex = cat
        .zones
        .iter()
        .find(|z| z.origin.num_labels() == 2)
        .unwrap();
    for child in cat.zones.iter().filter(|z| z.origin.num_labels() == 3) {
        let ds = apex
            .node(&child.origin)
            .unwrap()
            .get(RecordType::DS)
            .unwrap();
        for d in &ds.records() {
            let RData::DNSSEC(DNSSECRData::DS(d)) = &d.data else {
                panic!()
            };
            assert!(
                ksk_signers[&child.origin].contains(&d.key_tag()),
                "DS {} of {} without a signing KSK",
                d.key_tag(),
                child.origin
            );
        }
    }
    tags
}

#[test]
fn rollovers_with_a_clock_keep_every_zone_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.keys.timing.zsk_lifetime = 5 * 86400;
    config.keys.timing.ksk_lifetime = 12 * 86400;
    config.keys.retention = 2 * 86400;
    let t0 = 1_800_000_000u32;
    let clock = Arc::new(TestClock(AtomicU32::new(t0)));
    let mut mgr = ZoneManager::open(config.clone(), clock.clone()).unwrap();
    let mut store = Store::open(&db_path(dir.path())).unwrap();
    let first = assert_valid(&mgr.catalog.load(), t0);
    let mut restarts = 0;
    let apex = config.zone_name().unwrap();
    let mut seen: BTreeMap<Name, BTreeSet<u16>> = BTreeMap::new();
    let mut confirmed = 0;
    let mut t = t0;
    while t < t0 + 30 * 86400 {
        t += 1800;
        clock.0.store(t, Ordering::SeqCst);
        if (t - t0).is_multiple_of(61 * 3600) {
            // a restart in the middle of whatever is under way resumes it from the store
            drop(mgr);
            mgr = ZoneManager::open(config.clone(), clock.clone()).unwrap();
            let tags = assert_valid(&mgr.catalog.load(), t);
            if tags.values().any(|k| k.len() > 2) {
                restarts += 1; // in the middle of a rollover
            }
        }
        lifecycle::check_all(&config, &mut store, t as u64).unwrap();
        mgr.sync().unwrap();
        // the operator confirms the apex's new DS a day after the CDS appeared
        let status = lifecycle::status(&config, &store, Some(&apex), t as u64).unwrap();
        if let Some(w) = &status[0].waiting_for_parent {
            let cds = mgr
                .catalog
                .load()
                .get(&apex)
                .unwrap()
                .apex()
                .unwrap()
                .get(RecordType::CDS)
                .cloned();
            assert!(
                cds.is_some_and(|c| c.is_signed()),
                "signed CDS while waiting"
            );
            if t as u64 >= w.since.unwrap().unix + 86400 {
                lifecycle::roll_zone(
                    &config,
                    &mut store,
                    &apex,
                    t as u64,
                    Some(lifecycle::Request::DsSeen),
                )
                .unwrap();
                confirmed += 1;
            }
        }
        mgr.sync().unwrap();
        mgr.refresh_signatures().unwrap();
        for (z, tags) in assert_valid(&mgr.catalog.load(), t) {
            seen.entry(z).or_default().extend(tags);
        }
    }
    assert_eq!(confirmed, 2, "two apex KSK rollovers confirmed in 30 days");
    assert!(restarts >= 3, "restarts during rollovers: {restarts}");
    let last = assert_valid(&mgr.catalog.load(), t);
    for (z, tags) in &last {
        assert!(
            seen[z].len() >= 2 + 5,
            "{z}: ZSKs and KSKs rolled: {:?}",
            seen[z]
        );
        assert!(
            first[z].iter().all(|k| !tags.contains(k)),
            "{z}: the first keys are gone: {:?} -> {tags:?}",
            first[z]
        );
    }
    // removed keys keep their rows; files go after the retention time
    let rows = store.keys(&apex).unwrap();
    assert!(rows.iter().any(|r| r.purged_at.is_some()));
    for r in &rows {
        let exists = key_dir(dir.path()).join(&r.file).exists();
        assert_eq!(exists, r.purged_at.is_none(), "{}", r.file);
    }
}

#[test]
fn per_zone_policy_algorithm_and_signature_validity() {
    let dir = tempfile::tempdir().unwrap();
    let config: Config = toml::from_str(&format!(
        "data_dir = \"{}\"\n[soa]\nexpire = 86400\n[keys.zone.\"o-v1.mx.example.\"]\nalgorithm = 15\nsignature_validity = 864000\nsignature_refresh = 172800\nzsk_lifetime = 86400\n",
        dir.path().display()
    ))
    .unwrap();
    config.validate().unwrap();
    let t0 = 1_800_000_000;
    let mgr = ZoneManager::open(config.clone(), Arc::new(TestClock(AtomicU32::new(t0)))).unwrap();
    assert_valid(&mgr.catalog.load(), t0);
    let partition = Name::from_ascii("o-v1.mx.example.").unwrap();
    let apex = config.zone_name().unwrap();
    for z in &mgr.catalog.load().zones {
        let dnskey = z.apex().unwrap().get(RecordType::DNSKEY).unwrap();
        for r in dnskey.records().iter().chain(&dnskey.rrsigs()) {
            let alg = match keys::verify::as_dnskey(r) {
                Some(k) => u8::from(hickory_proto::dnssec::PublicKey::algorithm(k.public_key())),
                None => u8::from(keys::verify::as_rrsig(r).unwrap().input().algorithm),
            };
            assert_eq!(alg, if z.origin == partition { 15 } else { 13 });
        }
        let soa = z.soa().unwrap();
        let exp = keys::verify::as_rrsig(&soa.rrsigs()[0])
            .unwrap()
            .input()
            .sig_expiration
            .get();
        let validity = if z.origin == partition { 10 } else { 14 } * 86400;
        assert!(
            exp <= t0 + validity && exp > t0 + validity - 86400,
            "{}",
            z.origin
        );
    }
    assert_eq!(config.key_policy(&partition, 0).zsk_lifetime, 86400);
    assert_eq!(config.key_policy(&apex, 0).zsk_lifetime, 30 * 86400);
    assert_eq!(
        config.key_policy(&apex, 0).parent_ds_ttl,
        86400,
        "apex: the registry's TTL"
    );
    assert_eq!(
        config.key_policy(&partition, 0).parent_ds_ttl,
        3600,
        "partitions: our ttl.ds"
    );
    assert_eq!(
        config.key_policy(&partition, 90_000).max_zone_ttl,
        90_000,
        "stored TTLs count"
    );
    // a zone that is not served, or a lifetime shorter than Ipub, is refused
    let bad: Config =
        toml::from_str("[keys.zone.\"example.org.\"]\nzsk_lifetime = 86400\n").unwrap();
    assert!(bad.validate().is_err());
    let bad: Config = toml::from_str("[keys.timing]\nzsk_lifetime = 600\n").unwrap();
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("publish interval"));
}

#[test]
fn restart_after_long_stop_never_serves_expired_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000;
    let clock = Arc::new(TestClock(AtomicU32::new(t0)));
    let serial = {
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        mgr.catalog.load().zones[0].serial()
    };
    // stopped for 30 days (longer than the validity)
    let t1 = t0 + 30 * 86400;
    clock.0.store(t1, Ordering::SeqCst);
    let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
    for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
        assert!(inc <= t1 && t1 < exp, "window {inc}..{exp} at {t1}");
    }
    assert!(
        mgr.catalog.load().zones[0].serial() > serial,
        "serial increases across restarts"
    );
}

/// Every RRset of `z` as (owner, type, TTL, records), the content a validator sees apart
/// from signatures.
fn content(cat: &Catalog) -> BTreeSet<(String, u16, u32, String)> {
    let mut out = BTreeSet::new();
    for z in &cat.zones {
        for r in z.records() {
            if r.rtype == RecordType::SOA {
                continue;
            }
            let data: Vec<String> = r.data().iter().map(|d| d.to_string()).collect();
            out.insert((
                r.name().to_ascii(),
                u16::from(r.rtype),
                r.ttl,
                data.join(" "),
            ));
        }
    }
    out
}

fn put_host(dir: &Path, host: &str, addr: [u8; 4]) {
    use provisioner::store::{Batch, BatchOp};
    let mut store = Store::open(&db_path(dir)).unwrap();
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    let owner = Name::from_ascii(host).unwrap();
    let batch = Batch {
        ops: vec![BatchOp::set(
            &zone,
            &owner,
            RecordType::A,
            300,
            vec![RData::A(A::from(std::net::Ipv4Addr::from(addr)))],
        )],
    };
    store.write(&batch, 0).unwrap();
}

#[test]
fn a_start_resumes_from_the_checkpoint_and_applies_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000;
    let clock = Arc::new(TestClock(AtomicU32::new(t0)));
    put_host(dir.path(), "a.o-v1.mx.example.", [192, 0, 2, 1]);
    put_host(dir.path(), "c.o-v1.mx.example.", [192, 0, 2, 3]);
    put_host(dir.path(), "c.o-v1.mx.example.", [192, 0, 2, 4]);
    let (serial, bytes) = {
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        assert!(!mgr.resumed, "nothing to resume from at first");
        let serial = mgr
            .catalog
            .load()
            .zones
            .iter()
            .map(|z| z.serial())
            .max()
            .unwrap();
        (serial, mgr.write_checkpoint(false).unwrap())
    };
    assert!(bytes > 0);
    // the checkpoint covers the change log: pruned (the last sequence number stays known)
    let store = Store::open(&db_path(dir.path())).unwrap();
    let log = store.changes_since(0, 100).unwrap();
    assert_eq!(log.len(), 0, "{log:?}");
    assert!(store.last_change().unwrap() > 0);
    drop(store);
    // changes after the checkpoint: a new host, a changed one
    put_host(dir.path(), "b.o-v1.mx.example.", [192, 0, 2, 2]);
    put_host(dir.path(), "a.o-v1.mx.example.", [192, 0, 2, 9]);
    clock.0.store(t0 + 3600, Ordering::SeqCst);
    let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    assert!(mgr.resumed, "resumed from the checkpoint");
    assert_valid(&mgr.catalog.load(), t0 + 3600);
    for z in &mgr.catalog.load().zones {
        assert!(z.serial() > serial, "serial moves forward: {}", z.serial());
    }
    // the same content as a full build from the store
    let resumed = content(&mgr.catalog.load());
    assert!(resumed
        .iter()
        .any(|c| c.0 == "b.o-v1.mx.example." && c.3 == "192.0.2.2"));
    assert!(resumed
        .iter()
        .any(|c| c.0 == "a.o-v1.mx.example." && c.3 == "192.0.2.9"));
    drop(mgr);
    std::fs::remove_file(checkpoint::path(dir.path())).unwrap();
    let built = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    assert!(!built.resumed);
    assert_eq!(content(&built.catalog.load()), resumed);

    // a damaged checkpoint is not used
    built.write_checkpoint(true).unwrap();
    drop(built);
    let p = checkpoint::path(dir.path());
    let mut b = std::fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&p, &b).unwrap();
    let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    assert!(!mgr.resumed, "damaged checkpoint refused");
    assert_valid(&mgr.catalog.load(), t0 + 3600);

    // 30 days later (longer than the validity): resumed, every signature fresh
    mgr.write_checkpoint(true).unwrap();
    drop(mgr);
    let t1 = t0 + 30 * 86400;
    clock.0.store(t1, Ordering::SeqCst);
    let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    assert!(mgr.resumed);
    assert_valid(&mgr.catalog.load(), t1);
    for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
        assert!(inc <= t1 && t1 < exp, "window {inc}..{exp} at {t1}");
    }

    // keys changed since the checkpoint (a rollover step stored): full build
    mgr.write_checkpoint(true).unwrap();
    drop(mgr);
    let mut store = Store::open(&db_path(dir.path())).unwrap();
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    lifecycle::roll_zone(
        &config(dir.path()),
        &mut store,
        &zone,
        t1 as u64,
        Some(lifecycle::Request::Roll(keys::rollover::KeyRole::Zsk)),
    )
    .unwrap();
    drop(store);
    let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
    assert!(!mgr.resumed, "key version moved: not resumed");
    assert_valid(&mgr.catalog.load(), t1);
}

fn a_of(cat: &Catalog, host: &str) -> Option<String> {
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    let owner = Name::from_ascii(host).unwrap();
    let z = cat.get(&zone)?.clone();
    let r = z.node(&owner)?.get(RecordType::A)?.clone();
    assert!(r.is_signed(), "{host} A signed");
    Some(
        r.data()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn change_count(dir: &Path) -> i64 {
    Store::open(&db_path(dir)).unwrap().change_count().unwrap()
}

#[test]
fn a_checkpoint_prunes_the_log_it_covers_and_a_start_still_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000;
    let clock = Arc::new(TestClock(AtomicU32::new(t0)));
    for i in 0..5u8 {
        put_host(
            dir.path(),
            &format!("h{i}.o-v1.mx.example."),
            [192, 0, 2, i],
        );
    }
    {
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        // written after the build: the follower applies them, the checkpoint covers them
        put_host(dir.path(), "late.o-v1.mx.example.", [192, 0, 2, 50]);
        mgr.sync().unwrap();
        assert_eq!(change_count(dir.path()), 6);
        mgr.write_checkpoint(true).unwrap();
        assert_eq!(
            change_count(dir.path()),
            0,
            "the checkpoint covers the whole log"
        );
    }
    // while the server is down
    put_host(dir.path(), "down.o-v1.mx.example.", [192, 0, 2, 60]);
    assert_eq!(change_count(dir.path()), 1);
    let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
    assert!(
        mgr.resumed,
        "the pruned log is unbroken after the checkpoint's position"
    );
    let cat = mgr.catalog.load();
    assert_eq!(
        a_of(&cat, "late.o-v1.mx.example.").as_deref(),
        Some("192.0.2.50")
    );
    assert_eq!(
        a_of(&cat, "down.o-v1.mx.example.").as_deref(),
        Some("192.0.2.60")
    );
    assert_valid(&cat, t0);
    let resumed = content(&cat);
    drop(cat);
    drop(mgr);
    // a full build does not need the log at all
    std::fs::remove_file(checkpoint::path(dir.path())).unwrap();
    let built = ZoneManager::open(config(dir.path()), clock).unwrap();
    assert!(!built.resumed);
    assert_eq!(content(&built.catalog.load()), resumed);
}

#[test]
fn an_api_change_is_served_ahead_of_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU32::new(1_800_000_000)));
    let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
    // a backlog the follower has not applied yet, then "our" change
    for i in 0..20u8 {
        put_host(
            dir.path(),
            &format!("b{i}.o-v1.mx.example."),
            [192, 0, 2, i],
        );
    }
    put_host(dir.path(), "mine.o-v1.mx.example.", [192, 0, 2, 99]);
    let applied = mgr.progress.applied_seq();
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    let mine = Name::from_ascii("MINE.o-v1.mx.example.").unwrap();
    assert_eq!(mgr.serve_now(&[(zone, mine)]).unwrap(), 1);
    let cat = mgr.catalog.load();
    assert_eq!(
        a_of(&cat, "mine.o-v1.mx.example.").as_deref(),
        Some("192.0.2.99")
    );
    assert_eq!(
        a_of(&cat, "b0.o-v1.mx.example."),
        None,
        "the backlog is still behind"
    );
    assert_eq!(
        mgr.progress.applied_seq(),
        applied,
        "the follower's position did not move"
    );
    let serial = cat
        .get(&Name::from_ascii("o-v1.mx.example.").unwrap())
        .unwrap()
        .serial();
    drop(cat);
    // the follower then applies the backlog; "mine" again is a no-op
    mgr.sync().unwrap();
    let cat = mgr.catalog.load();
    assert_eq!(
        a_of(&cat, "b19.o-v1.mx.example.").as_deref(),
        Some("192.0.2.19")
    );
    assert_eq!(
        a_of(&cat, "mine.o-v1.mx.example.").as_deref(),
        Some("192.0.2.99")
    );
    let z = cat
        .get(&Name::from_ascii("o-v1.mx.example.").unwrap())
        .unwrap();
    // the backlog (20 entries) is one step: one new serial, none for "mine" again
    assert_eq!(z.serial(), serial + 1);
    assert_valid(&cat, 1_800_000_000);
}

#[test]
fn a_panic_while_the_manager_is_held_does_not_leave_it_dead() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU32::new(1_800_000_000)));
    let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mgr.panic_while_held()));
    assert!(r.is_err());
    assert!(
        mgr.progress.holding().is_none(),
        "the hold ended with the panic"
    );
    put_host(dir.path(), "after.o-v1.mx.example.", [192, 0, 2, 7]);
    mgr.sync().unwrap();
    assert_eq!(
        a_of(&mgr.catalog.load(), "after.o-v1.mx.example.").as_deref(),
        Some("192.0.2.7")
    );
    assert_eq!(mgr.progress.recovered_panics(), 1);
    mgr.sync().unwrap();
    assert_eq!(mgr.progress.recovered_panics(), 1, "the poison was cleared");
}

#[test]
fn serials_are_reserved_in_blocks_and_a_restart_goes_above_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU32::new(1_800_000_000)));
    let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
    let served = {
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        for i in 0..5u8 {
            put_host(
                dir.path(),
                &format!("s{i}.o-v1.mx.example."),
                [192, 0, 2, i],
            );
            mgr.sync().unwrap();
        }
        let s = mgr.catalog.load().get(&zone).unwrap().serial();
        let stored = Store::open(&db_path(dir.path()))
            .unwrap()
            .serial(&zone)
            .unwrap();
        assert!(
            stored >= s,
            "the store is ahead of what is served ({stored} < {s})"
        );
        assert!(stored <= s + SERIAL_RESERVE, "one write per block");
        s
    };
    let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
    let after = mgr.catalog.load().get(&zone).unwrap().serial();
    assert!(after > served, "{after} after {served}");
}
