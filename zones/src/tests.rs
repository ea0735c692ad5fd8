use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use std::sync::Arc;

use crate::*;

/// Signs nothing: the chain and lookup logic do not depend on signatures.
struct NoSigner;
impl RrsetSigner for NoSigner {
    fn sign(&self, _: &Rrset) -> Result<Vec<Record>, String> {
        Ok(Vec::new())
    }
}

fn n(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn soa(serial: u32) -> SOA {
    SOA::new(
        n("ns1.mx.example."),
        n("hostmaster.mx.example."),
        serial,
        3600,
        600,
        1209600,
        300,
    )
}

fn a(name: &str) -> Change {
    Change::Put(Rrset::new(n(name), 300, vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))]).unwrap())
}

fn zone() -> Zone {
    Zone::new(n("mx.example."), 3600, soa(1), &NoSigner).unwrap()
}

/// The NSEC chain is one closed loop over exactly the names in `nodes`, and each NSEC lists the
/// types present.
fn check_chain(z: &Zone) {
    let names: Vec<Name> = z.nodes().map(|(n, _)| n).collect();
    // one node per name in the chain, each with its one NSEC, in canonical order
    assert_eq!(
        z.records().filter(|r| r.rtype == RecordType::NSEC).count(),
        names.len()
    );
    let mut prev: Option<Vec<u8>> = None;
    for (i, (name, node)) in z.nodes().enumerate() {
        let key = key(&name);
        let by_key = z.node_by_key(&key).expect("indexed");
        assert!(Arc::ptr_eq(by_key, node));
        assert!(Arc::ptr_eq(z.node(&name).unwrap(), node));
        for r in node.rrsets.iter().chain(node.nsec.iter()) {
            assert_eq!(r.name(), name, "owner of {name}");
        }
        assert!(
            prev.as_ref().is_none_or(|p| *p < key),
            "key order of {name}"
        );
        assert!(i == 0 || names[i - 1] < name, "canonical order of {name}");
        prev = Some(key);
    }
    for (i, name) in names.iter().enumerate() {
        let node = z.node(name).unwrap();
        let nsec = node.nsec.as_ref().expect("every name has an NSEC");
        assert_eq!(nsec.ttl, 300, "NSEC TTL = min(SOA TTL, minimum)");
        let Some(RData::DNSSEC(DNSSECRData::NSEC(rd))) = nsec.first_data() else {
            panic!()
        };
        let want_next = names.get(i + 1).unwrap_or(&names[0]);
        assert_eq!(rd.next_domain_name(), want_next, "next of {name}");
        let mut types: Vec<RecordType> = rd.type_bit_maps().collect();
        types.sort_by_key(|t| u16::from(*t));
        let mut want: Vec<RecordType> = node.rrsets.iter().map(|r| r.rtype).collect();
        want.push(RecordType::NSEC);
        want.push(RecordType::RRSIG);
        want.sort_by_key(|t| u16::from(*t));
        assert_eq!(types, want, "types at {name}");
    }
}

#[test]
fn chain_follows_adds_and_removes() {
    let z = zone();
    check_chain(&z);
    let z = z
        .apply(
            vec![a("b.mx.example."), a("a.mx.example."), a("x.y.mx.example.")],
            &NoSigner,
        )
        .unwrap();
    check_chain(&z);
    assert!(
        z.name_exists(&n("y.mx.example.")),
        "empty non-terminal exists"
    );
    let z = z
        .apply(vec![Change::DeleteName(n("b.mx.example."))], &NoSigner)
        .unwrap();
    check_chain(&z);
    let z = z
        .apply(
            vec![Change::Delete(n("x.y.mx.example."), RecordType::A)],
            &NoSigner,
        )
        .unwrap();
    check_chain(&z);
    assert!(!z.name_exists(&n("y.mx.example.")));
    assert_eq!(z.len(), 2);
}

#[test]
fn lookups() {
    let z = zone()
        .apply(
            vec![
                a("h.mx.example."),
                a("_25._tcp.h.mx.example."),
                Change::Put(
                    Rrset::new(
                        n("p.mx.example."),
                        300,
                        vec![RData::NS(NS(n("ns1.p.mx.example.")))],
                    )
                    .unwrap(),
                ),
                a("ns1.p.mx.example."),
            ],
            &NoSigner,
        )
        .unwrap();
    check_chain(&z);
    assert!(
        z.glue.contains_key(&n("ns1.p.mx.example.")),
        "below a cut is glue"
    );
    assert!(matches!(
        z.lookup(&n("h.mx.example."), RecordType::A),
        Lookup::Answer { .. }
    ));
    assert!(
        matches!(z.lookup(&n("h.mx.example."), RecordType::MX), Lookup::NoData { nsecs } if nsecs.len() == 1)
    );
    // empty non-terminal
    match z.lookup(&n("_tcp.h.mx.example."), RecordType::A) {
        Lookup::NoData { nsecs } => assert_eq!(nsecs[0].name(), n("h.mx.example.")),
        other => panic!("{other:?}"),
    }
    match z.lookup(&n("nope.mx.example."), RecordType::A) {
        Lookup::NxDomain { nsecs } => assert_eq!(nsecs.len(), 2),
        other => panic!("{other:?}"),
    }
    match z.lookup(&n("www.p.mx.example."), RecordType::A) {
        Lookup::Referral { glue, ds, nsec, .. } => {
            assert_eq!(glue.len(), 1);
            assert!(
                ds.is_none() && nsec.is_some(),
                "insecure delegation proven by NSEC"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        z.lookup(&n("p.mx.example."), RecordType::DS),
        Lookup::NoData { .. }
    ));
}

fn key(name: &Name) -> Vec<u8> {
    let mut k = [0u8; zone::KEY_MAX];
    let len = zone::canonical_key(name, &mut k);
    k[..len].to_vec()
}

proptest! {
    /// Canonical keys sort as names do (RFC 4034 6.1), ancestors' keys are prefixes, and the
    /// key of a query for the name is the same.
    #[test]
    fn canonical_keys_sort_as_names(
        a in proptest::collection::vec(proptest::collection::vec(prop::sample::select(vec![0u8, 1, 2, b'-', b'*', b'A', b'a', b'b', b'Z', b'z', b'_', 0xff]), 1..4), 0..4),
        b in proptest::collection::vec(proptest::collection::vec(prop::sample::select(vec![0u8, 1, 2, b'-', b'*', b'A', b'a', b'b', b'Z', b'z', b'_', 0xff]), 1..4), 0..4),
    ) {
        let mk = |labels: &Vec<Vec<u8>>| {
            let mut name = Name::from_labels(labels.iter().map(|l| l.as_slice())).unwrap();
            name.set_fqdn(true);
            name
        };
        let (na, nb) = (mk(&a), mk(&b));
        prop_assert_eq!(key(&na).cmp(&key(&nb)), na.cmp(&nb));
        if na.zone_of(&nb) {
            prop_assert!(key(&nb).starts_with(&key(&na)));
        }
        // the same key from a query for it (any case)
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in &a {
            msg.push(l.len() as u8);
            msg.extend_from_slice(l);
        }
        msg.extend_from_slice(&[0, 0, 1, 0, 1]);
        let q = wire::parse_query(&msg).unwrap();
        let mut k = [0u8; zone::KEY_MAX];
        let len = q.canonical_key(&mut k);
        prop_assert_eq!(k[..len].to_vec(), key(&na));
    }

    #[test]
    fn chain_is_one_loop_over_existing_names(ops in proptest::collection::vec((0u8..3, "[a-c]{1,2}(\\.[a-c]{1,2})?"), 1..40)) {
        let mut z = zone();
        for (op, label) in ops {
            let name = format!("{label}.mx.example.");
            let change = match op {
                0 | 1 => a(&name),
                _ => Change::DeleteName(n(&name)),
            };
            z = z.apply(vec![change], &NoSigner).unwrap();
            check_chain(&z);
        }
    }
}

/// Counts signatures asked for.
struct CountingSigner(std::sync::atomic::AtomicUsize);
impl RrsetSigner for CountingSigner {
    fn sign(&self, _: &Rrset) -> Result<Vec<Record>, String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Vec::new())
    }
}

#[test]
fn one_change_costs_the_same_at_any_zone_size() {
    for size in [10usize, 10_000] {
        let counter = CountingSigner(Default::default());
        let z = zone();
        let changes: Vec<Change> = (0..size).map(|i| a(&format!("h{i}.mx.example."))).collect();
        let z = z.apply(changes, &counter).unwrap();
        counter.0.store(0, std::sync::atomic::Ordering::Relaxed);
        let z2 = z
            .apply(
                vec![
                    a("h5x.mx.example."),
                    Change::Put(
                        Rrset::new(n("mx.example."), 3600, vec![RData::SOA(soa(2))]).unwrap(),
                    ),
                ],
                &counter,
            )
            .unwrap();
        // the new A, its NSEC, the predecessor's NSEC, the SOA
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::Relaxed),
            4,
            "zone of {size}"
        );
        check_chain(&z2);
        // the old snapshot is untouched (readers holding it see the zone before the change)
        assert!(z.node(&n("h5x.mx.example.")).is_none());
        assert_eq!(z.len() + 1, z2.len());
    }
}

proptest! {
    /// The index's word-wise key order is the byte order of canonical keys (labels with the
    /// escaped bytes 0x00 and 0x01, short and long names, prefixes of each other).
    #[test]
    fn index_key_order_is_byte_order(
        a in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(b'z'), any::<u8>()], 1..12), 0..5),
        b in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(b'z'), any::<u8>()], 1..12), 0..5),
        share in 0usize..4,
    ) {
        use crate::zone::{canonical_key, IndexKey, KEY_MAX};
        let name = |labels: &[Vec<u8>]| {
            let mut n = Name::root();
            // labels[0] next to the root: shared first labels make one key a prefix of another
            for l in labels {
                n = Name::from_labels(vec![l.clone()]).unwrap().append_domain(&n).unwrap();
            }
            n
        };
        // b shares a's first labels (from the root) so that prefixes are common
        let mut b2: Vec<Vec<u8>> = a.iter().take(share).cloned().collect();
        b2.extend(b);
        let (x, y) = (name(&a), name(&b2));
        let (mut kx, mut ky) = ([0u8; KEY_MAX], [0u8; KEY_MAX]);
        let (lx, ly) = (canonical_key(&x, &mut kx), canonical_key(&y, &mut ky));
        let (ix, iy) = (IndexKey::new(&kx[..lx]), IndexKey::new(&ky[..ly]));
        prop_assert_eq!(ix.cmp(&iy), kx[..lx].cmp(&ky[..ly]));
        prop_assert_eq!(ix == iy, kx[..lx] == ky[..ly]);
    }
}

/// Every record of a zone as (owner, rest of the record) wire bytes, RRSIGs included, SOA
/// records left out (as an IXFR's markers stand for them).
fn all_rrs(z: &Zone) -> std::collections::HashSet<(Vec<u8>, Vec<u8>)> {
    let mut out = std::collections::HashSet::new();
    for r in z.records() {
        let owner = r.owner_wire().to_vec();
        if r.rtype != RecordType::SOA {
            r.wire().each_record(
                false,
                |rr| assert!(out.insert((owner.clone(), rr.to_vec()))),
            );
        }
        r.wire()
            .each_record(true, |rr| assert!(out.insert((owner.clone(), rr.to_vec()))));
    }
    out
}

proptest! {
    /// The difference of two snapshots, applied to the older one's records, gives the newer
    /// one's; each deletion is in the older, each addition is not; and only the names that
    /// changed are visited (O(change), whatever the zone's size).
    #[test]
    fn diff_turns_one_snapshot_into_the_other(
        adds in proptest::collection::vec(0u32..400, 0..30),
        dels in proptest::collection::vec(0u32..400, 0..30),
        steps in 1usize..4,
    ) {
        let mut base = zone();
        let init: Vec<Change> = (0..400).filter(|i| i % 2 == 0).map(|i| a(&format!("h{i}.mx.example."))).collect();
        base = base.apply(init, &NoSigner).unwrap();
        let mut cur = base.clone();
        for s in 0..steps {
            let serial = 2 + s as u32;
            let mut changes: Vec<Change> = Vec::new();
            for i in adds.iter().skip(s).step_by(steps) {
                changes.push(Change::Put(Rrset::new(n(&format!("h{i}.mx.example.")), 300 + s as u32, vec![RData::A(A(Ipv4Addr::new(192, 0, 2, (i % 250) as u8)))]).unwrap()));
            }
            for i in dels.iter().skip(s).step_by(steps) {
                changes.push(Change::DeleteName(n(&format!("h{i}.mx.example."))));
            }
            changes.push(Change::Put(Rrset::new(n("mx.example."), 3600, vec![RData::SOA(soa(serial))]).unwrap()));
            cur = cur.apply(changes, &NoSigner).unwrap();
        }
        let (old, new) = (all_rrs(&base), all_rrs(&cur));
        let mut deleted = std::collections::HashSet::new();
        let mut added = std::collections::HashSet::new();
        let mut visited = 0;
        for (o, nw) in base.changed_nodes(&cur) {
            visited += 1;
            crate::diff::records_not_in(o, nw, |owner, rr| { deleted.insert((owner.to_vec(), rr.to_vec())); });
            crate::diff::records_not_in(nw, o, |owner, rr| { added.insert((owner.to_vec(), rr.to_vec())); });
            prop_assert!(crate::diff::change_size(o, nw) > 0);
        }
        prop_assert!(deleted.is_subset(&old));
        prop_assert!(added.is_disjoint(&old));
        let mut applied: std::collections::HashSet<_> = old.difference(&deleted).cloned().collect();
        applied.extend(added);
        prop_assert_eq!(applied, new);
        // each touched name, its NSEC predecessor, the apex
        prop_assert!(visited <= 2 * (adds.len() + dels.len()) + 1, "{} visited", visited);
    }
}

#[test]
fn diff_of_a_big_zone_visits_only_what_changed() {
    let mut z = zone();
    let init: Vec<Change> = (0..20_000)
        .map(|i| a(&format!("h{i}.mx.example.")))
        .collect();
    z = z.apply(init, &NoSigner).unwrap();
    let next = z.apply(vec![a("new.mx.example.")], &NoSigner).unwrap();
    // the new name and its NSEC predecessor
    assert_eq!(z.changed_nodes(&next).count(), 2);
    assert_eq!(z.changed_nodes(&z.clone()).count(), 0);
}

#[test]
fn memory_breakdown_counts_every_name_and_rrset() {
    let z = zone()
        .apply(
            vec![
                a("h1.mx.example."),
                a("h2.mx.example."),
                a("h3.mx.example."),
            ],
            &NoSigner,
        )
        .unwrap();
    let m = z.memory();
    assert_eq!(m.names, 4);
    // SOA + NSEC at the apex, A + NSEC at each host
    assert_eq!(m.rrsets, 8);
    // NoSigner: no RRSIG bytes
    assert_eq!(m.signatures, 0);
    let blocks: usize = z
        .nodes()
        .flat_map(|(_, n)| {
            n.rrsets
                .iter()
                .chain(n.nsec.iter())
                .cloned()
                .collect::<Vec<_>>()
        })
        .map(|r| crate::memory::chunk(r.wire().block_len()))
        .sum();
    assert_eq!(m.rrset_blocks, blocks);
    assert!(m.nodes >= 4 * 32 && m.index > 0);
    assert_eq!(m.total(), m.index + m.nodes + m.rrset_blocks + m.signatures);
    assert_eq!(crate::memory::chunk(0), 0);
    assert_eq!(crate::memory::chunk(1), 32);
    assert_eq!(crate::memory::chunk(40), 48);
}

#[test]
fn wire_keys_fold_case_and_escape_like_canonical_keys() {
    for name in ["H1.Mx.Example.", "_25._TCP.c1-Example.o-v1.mx.example."] {
        let name = Name::from_str(name).unwrap();
        let mut wire = Vec::new();
        for l in name.iter() {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l);
        }
        wire.push(0);
        let mut k1 = [0u8; crate::zone::KEY_MAX];
        let mut k2 = [0u8; crate::zone::KEY_MAX];
        let l1 = crate::zone::canonical_key(&name.to_lowercase(), &mut k1);
        let l2 = crate::wire::wire_canonical_key(&wire, &mut k2).unwrap();
        assert_eq!(k1[..l1], k2[..l2], "{name}");
    }
    // bytes 0x00 and 0x01 inside labels are escaped, upper case folded, on the slow path
    let wire = b"\x03a\x00B\x01\x01\x02MX\x07example\x00";
    let mut k = [0u8; crate::zone::KEY_MAX];
    let l = crate::wire::wire_canonical_key(wire, &mut k).unwrap();
    assert_eq!(&k[..l], b"example\x00mx\x00\x01\x02\x00a\x01\x01b\x00");
}

#[test]
fn rrset_lists_hold_at_most_list_max() {
    let r = Rrset::new(
        n("h.mx.example."),
        300,
        vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))],
    )
    .unwrap();
    let mut l = RrsetList::new();
    for _ in 0..crate::lookup::LIST_MAX {
        assert!(l.push(&r));
    }
    assert!(!l.push(&r));
    assert_eq!(l.len(), crate::lookup::LIST_MAX);
    assert_eq!(l.iter().count(), crate::lookup::LIST_MAX);
    assert_eq!(l.into_iter().count(), crate::lookup::LIST_MAX);
}
