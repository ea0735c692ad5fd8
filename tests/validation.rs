//! Takes every served zone by AXFR and checks it as a validator would, with hickory-proto's
//! verifier for the cryptography and our own checks for what it does not look at: validity
//! windows, key tags, KSK/ZSK split, the NSEC chain as one closed loop over exactly the names
//! that exist, and the DS in the parent against the child's KSK.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use common::*;
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// Checks one transferred zone; returns its DNSKEYs.
fn check_zone(origin: &Name, records: &[Record]) -> Vec<DNSKEY> {
    assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
    let body = &records[..records.len() - 1];
    let dnskeys: Vec<DNSKEY> = body
        .iter()
        .filter_map(keys::verify::as_dnskey)
        .cloned()
        .collect();
    assert!(
        dnskeys.iter().any(|k| k.flags() == 257),
        "{origin}: a KSK is published"
    );
    assert!(
        dnskeys.iter().any(|k| k.flags() == 256),
        "{origin}: a ZSK is published"
    );

    // group RRsets and their signatures
    let mut rrsets: BTreeMap<(Name, u16), Vec<Record>> = BTreeMap::new();
    let mut sigs: BTreeMap<(Name, u16), Vec<Record>> = BTreeMap::new();
    for r in body {
        match keys::verify::as_rrsig(r) {
            Some(s) => sigs
                .entry((r.name.clone(), u16::from(s.input().type_covered)))
                .or_default()
                .push(r.clone()),
            None => rrsets
                .entry((r.name.clone(), u16::from(r.record_type())))
                .or_default()
                .push(r.clone()),
        }
    }
    // zone cuts and what is below them (glue: not signed, not in the chain)
    let cuts: BTreeSet<Name> = rrsets
        .keys()
        .filter(|(n, t)| *t == u16::from(RecordType::NS) && n != origin)
        .map(|(n, _)| n.clone())
        .collect();
    let below_cut = |n: &Name| cuts.iter().any(|c| c.zone_of(n) && c != n);
    let t = now();
    for ((name, rtype), recs) in &rrsets {
        let rtype = RecordType::from(*rtype);
        let s = sigs
            .get(&(name.clone(), u16::from(rtype)))
            .cloned()
            .unwrap_or_default();
        if below_cut(name) || (cuts.contains(name) && rtype == RecordType::NS) {
            assert!(
                s.is_empty(),
                "{name} {rtype}: glue and delegation NS are not signed"
            );
            continue;
        }
        assert!(!s.is_empty(), "{name} {rtype}: unsigned RRset");
        for sig in &s {
            let rrsig = keys::verify::as_rrsig(sig).unwrap();
            let key = keys::verify::verify_rrsig(origin, recs, rrsig, &dnskeys, t)
                .unwrap_or_else(|e| panic!("{name} {rtype}: {e}"));
            let want = if rtype == RecordType::DNSKEY {
                257
            } else {
                256
            };
            assert_eq!(
                key.flags(),
                want,
                "{name} {rtype}: signed by the wrong key role"
            );
            let (inc, exp) = (
                rrsig.input().sig_inception.get(),
                rrsig.input().sig_expiration.get(),
            );
            assert!(
                inc + 1800 <= t,
                "{name} {rtype}: inception backdated (inception {inc}, now {t})"
            );
            assert!(
                exp >= t + 12 * 86400 && exp <= t + 15 * 86400,
                "{name} {rtype}: about two weeks of validity"
            );
            assert_eq!(sig.ttl, recs[0].ttl, "RRSIG TTL = RRset TTL");
        }
    }
    // no signature without its RRset
    for k in sigs.keys() {
        assert!(rrsets.contains_key(k), "RRSIG without RRset at {:?}", k);
    }

    // NSEC: one closed loop over exactly the authoritative names, in canonical order
    let mut names: Vec<Name> = rrsets
        .keys()
        .map(|(n, _)| n.clone())
        .filter(|n| !below_cut(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort();
    let soa_min = match &records[0].data {
        RData::SOA(s) => s.minimum.min(records[0].ttl),
        _ => unreachable!(),
    };
    for (i, name) in names.iter().enumerate() {
        let nsec = rrsets
            .get(&(name.clone(), u16::from(RecordType::NSEC)))
            .unwrap_or_else(|| panic!("{name}: no NSEC"));
        assert_eq!(nsec.len(), 1);
        assert_eq!(
            nsec[0].ttl, soa_min,
            "NSEC TTL = min(SOA TTL, SOA minimum) (RFC 9077)"
        );
        let RData::DNSSEC(DNSSECRData::NSEC(rd)) = &nsec[0].data else {
            panic!()
        };
        let next = names.get(i + 1).unwrap_or(&names[0]);
        assert_eq!(rd.next_domain_name(), next, "{name}: NSEC next");
        let listed: BTreeSet<u16> = rd.type_bit_maps().map(u16::from).collect();
        let mut present: BTreeSet<u16> = rrsets
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .collect();
        present.insert(u16::from(RecordType::RRSIG));
        assert_eq!(listed, present, "{name}: NSEC type bitmap");
    }
    dnskeys
}

#[test]
fn every_served_zone_validates_from_axfr() {
    let server = Server::start("");
    let digest = "a".repeat(64);
    server.cmd(&[
        "host",
        "add",
        "contoso-com.o-v1.mx.example",
        "--a",
        "192.0.2.25",
        "--aaaa",
        "2001:db8::25",
        "--tlsa",
        &format!("3 1 1 {digest}"),
        "--tlsa",
        &format!("3 1 1 {}", "b".repeat(64)),
    ]);
    server.cmd(&[
        "host",
        "add",
        "fabrikam-com.o-v1.mx.example",
        "--a",
        "192.0.2.26",
    ]);
    server.wait_for(
        "_25._tcp.contoso-com.o-v1.mx.example.",
        RecordType::TLSA,
        10,
        |m| m.answers.len() == 3,
    );
    server.wait_for("fabrikam-com.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });

    let parent = Name::from_str("mx.example.").unwrap();
    let child = Name::from_str("o-v1.mx.example.").unwrap();
    let (precs, _) = axfr(server.dns, "mx.example.");
    let (crecs, _) = axfr(server.dns, "o-v1.mx.example.");
    check_zone(&parent, &precs);
    let child_keys = check_zone(&child, &crecs);

    // the parent's DS RRset matches the child's KSK, and only it
    let ds: Vec<_> = precs
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DS(ds)) if r.name == child => Some(ds.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ds.len(), 1);
    let ksk = child_keys.iter().find(|k| k.flags() == 257).unwrap();
    assert!(
        ds[0].covers(&child, ksk).unwrap(),
        "DS matches the child's KSK"
    );
    // glue for the partition's name servers is in the parent
    assert!(precs.iter().any(
        |r| r.name == Name::from_str("ns1.o-v1.mx.example.").unwrap()
            && r.record_type() == RecordType::A
    ));

    // `mxdns keys ds` prints the same DS as is served for the apex's KSK
    let out = server.cmd(&["keys", "ds"]);
    assert!(out.starts_with("mx.example. 3600 IN DS "), "{out}");
}

#[test]
fn large_zone_transfers_in_many_messages_and_changes_are_incremental() {
    let mut server = Server::start("");
    server.stop();
    server.cmd(&["host", "bulk-add", "--count", "3000"]);
    server.spawn();
    let (recs, messages) = axfr(server.dns, "o-v1.mx.example.");
    assert!(
        messages > 10,
        "a large zone goes out in several messages ({messages})"
    );
    let child = Name::from_str("o-v1.mx.example.").unwrap();
    check_zone(&child, &recs);
    // 3000 hosts: t<i> and _25._tcp.t<i> with A, AAAA, TLSA, NSEC
    let hosts = recs
        .iter()
        .filter(|r| r.record_type() == RecordType::A && r.name.to_ascii().starts_with('t'))
        .count();
    assert_eq!(hosts, 3000);

    // one change: the serial moves by one and only the touched RRsets get new signatures
    let sigs_before: BTreeSet<Vec<u8>> = recs
        .iter()
        .filter_map(keys::verify::as_rrsig)
        .map(|s| s.sig().to_vec())
        .collect();
    let serial_before = match &recs[0].data {
        RData::SOA(s) => s.serial,
        _ => unreachable!(),
    };
    server.cmd(&["host", "add", "t1500a.o-v1.mx.example", "--a", "192.0.2.99"]);
    server.wait_for("t1500a.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    let (recs2, _) = axfr(server.dns, "o-v1.mx.example.");
    check_zone(&child, &recs2);
    let serial_after = match &recs2[0].data {
        RData::SOA(s) => s.serial,
        _ => unreachable!(),
    };
    assert_eq!(serial_after, serial_before.wrapping_add(1));
    let new_sigs = recs2
        .iter()
        .filter_map(keys::verify::as_rrsig)
        .filter(|s| !sigs_before.contains(s.sig()))
        .count();
    // new A, its NSEC, the predecessor's NSEC, and the SOA
    assert_eq!(new_sigs, 4, "only the touched RRsets are signed again");
}

#[test]
fn ed25519_zones_validate_too() {
    let server = Server::start("algorithm = 15\n");
    server.cmd(&[
        "host",
        "add",
        "contoso-com.o-v1.mx.example",
        "--a",
        "192.0.2.25",
    ]);
    server.wait_for("contoso-com.o-v1.mx.example.", RecordType::A, 10, |m| {
        !m.answers.is_empty()
    });
    for zone in ["mx.example.", "o-v1.mx.example."] {
        let (recs, _) = axfr(server.dns, zone);
        let keys = check_zone(&Name::from_str(zone).unwrap(), &recs);
        assert!(keys
            .iter()
            .all(|k| u8::from(hickory_proto::dnssec::PublicKey::algorithm(k.public_key())) == 15));
    }
    let list: serde_json::Value =
        serde_json::from_str(&server.cmd(&["keys", "list", "--json"])).unwrap();
    let algs: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|z| z["keys"].as_array().unwrap())
        .map(|k| k["algorithm"].as_u64().unwrap())
        .collect();
    assert_eq!(algs, vec![15; 4], "{list}");
}
