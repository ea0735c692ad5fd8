//! The UDP fast path (`answer_udp`) against the general path (hickory's `Request`,
//! `handle_request`, `encode`) for many query shapes.
use super::*;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, TLSA, TXT};
use hickory_proto::rr::RData;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use std::str::FromStr;
use zones::Change;

fn n(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn rrset(name: &str, data: Vec<RData>) -> Change {
    Change::Put(Rrset::new(n(name), 300, data).unwrap())
}

/// A handler over the default zones (mx.example. and o-v1.mx.example.) plus test data.
fn handler(dir: &std::path::Path) -> DnsHandler {
    let config = crate::config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    let mgr = ZoneManager::open(config, Arc::new(crate::zonemgr::SystemClock)).unwrap();
    let alg = keys::algorithm_from_number(13).unwrap();
    let (_, key) = keys::KeyPair::generate(alg, keys::Role::Zsk).unwrap();
    let catalog = mgr.catalog.load();
    let mut zones = Vec::new();
    for z in &catalog.zones {
        let signer = keys::ZoneSigner {
            zone: z.origin.clone(),
            ksks: vec![&key],
            zsks: vec![&key],
            now: 1_800_000_000,
            policy: Default::default(),
        };
        let o = z.origin.to_ascii();
        if !o.starts_with("o-v1.") {
            zones.push(z.clone());
            continue;
        }
        let tlsa = |b: u8| RData::TLSA(TLSA::new(3.into(), 1.into(), 1.into(), vec![b; 32]));
        let a = |i: u8| RData::A(A::new(192, 0, 2, i));
        let aaaa = |i: u16| RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i));
        let changes = vec![
            rrset(&format!("h1.{o}"), vec![a(1)]),
            rrset(&format!("h1.{o}"), vec![aaaa(1)]),
            rrset(&format!("_25._tcp.h1.{o}"), vec![tlsa(1), tlsa(2)]),
            rrset(&format!("h2.{o}"), vec![a(2)]),
            // DANE through the partition's shared TLSA RRset
            rrset(&format!("_25._tcp._fleet.{o}"), vec![tlsa(4), tlsa(5)]),
            rrset(
                &format!("_25._tcp.h3.{o}"),
                vec![RData::CNAME(CNAME(n(&format!("_25._tcp._fleet.{o}"))))],
            ),
            rrset(&format!("_25._tcp.h2.{o}"), vec![tlsa(3)]),
            // a bigger shared TLSA RRset (eight 3 1 2 digests, as during a certificate roll of
            // several fleets): the CNAME fits small buffers, the TLSA RRset after it does not
            rrset(
                &format!("_25._tcp._fleet2.{o}"),
                (1..=8)
                    .map(|b| RData::TLSA(TLSA::new(3.into(), 1.into(), 2.into(), vec![b; 64])))
                    .collect(),
            ),
            rrset(
                &format!("_25._tcp.h4.{o}"),
                vec![RData::CNAME(CNAME(n(&format!("_25._tcp._fleet2.{o}"))))],
            ),
            // 40 A: fits 1232 bytes, not 512
            rrset(&format!("big.{o}"), (1..=40).map(a).collect()),
            // 100 AAAA: fits no UDP answer
            rrset(&format!("huge.{o}"), (1..=100).map(aaaa).collect()),
            rrset(
                &format!("txt.{o}"),
                vec![RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))],
            ),
            rrset(
                &format!("alias.{o}"),
                vec![RData::CNAME(CNAME(n(&format!("h1.{o}"))))],
            ),
            rrset(
                &format!("ext.{o}"),
                vec![RData::CNAME(CNAME(n("mail.example.net.")))],
            ),
            // a delegation with DS and in-zone glue, and one without DS or glue
            rrset(
                &format!("child.{o}"),
                vec![
                    RData::NS(NS(n(&format!("ns1.child.{o}")))),
                    RData::NS(NS(n(&format!("ns2.child.{o}")))),
                ],
            ),
            rrset(&format!("ns1.child.{o}"), vec![a(53)]),
            rrset(&format!("ns2.child.{o}"), vec![aaaa(53)]),
            Change::Put(
                Rrset::new(
                    n(&format!("child.{o}")),
                    300,
                    vec![RData::DNSSEC(
                        hickory_proto::dnssec::rdata::DNSSECRData::DS(
                            key.ds(&n(&format!("child.{o}"))),
                        ),
                    )],
                )
                .unwrap(),
            ),
            rrset(
                &format!("nods.{o}"),
                vec![RData::NS(NS(n("ns.example.net.")))],
            ),
        ];
        zones.push(Arc::new(z.apply(changes, &signer).unwrap()));
    }
    mgr.catalog
        .store(Arc::new(crate::zonemgr::Catalog { zones }));
    let config = crate::config::Config {
        axfr_allow: vec![],
        ..crate::config::Config::default()
    };
    DnsHandler::new(Arc::new(mgr), &config).unwrap()
}

/// EDNS of a test query: (payload, version, DO, options).
type TestEdns<'a> = Option<(u16, u8, bool, &'a [u8])>;

fn query(id: u16, name: &str, qtype: u16, edns: TestEdns) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
    for l in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some((payload, version, dnssec, options)) = edns {
        m.push(0);
        m.extend_from_slice(&41u16.to_be_bytes());
        m.extend_from_slice(&payload.to_be_bytes());
        m.extend_from_slice(&[0, version, if dnssec { 0x80 } else { 0 }, 0]);
        m.extend_from_slice(&(options.len() as u16).to_be_bytes());
        m.extend_from_slice(options);
    }
    m
}

/// The general path's answer, through a real UDP socket.
async fn general(h: &DnsHandler, msg: &[u8]) -> Vec<u8> {
    let server = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let src = client.local_addr().unwrap();
    let request = Request::from_bytes(msg.to_vec(), src, Protocol::Udp).unwrap();
    let reply = super::udp::UdpReply::new(server, src);
    h.handle_request::<_, TokioTime>(&request, reply).await;
    let mut buf = vec![0u8; 65536];
    let len = client.recv(&mut buf).await.unwrap();
    buf.truncate(len);
    buf
}

fn fast(h: &DnsHandler, msg: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    h.answer_udp(msg, &mut out).then_some(out)
}

#[tokio::test]
async fn fast_path_answers_as_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(dir.path());
    let o = "o-v1.mx.example.";
    const A: u16 = 1;
    const NS_: u16 = 2;
    const SOA: u16 = 6;
    const MX: u16 = 15;
    const TXT_: u16 = 16;
    const AAAA_: u16 = 28;
    const DS: u16 = 43;
    const DNSKEY: u16 = 48;
    const TLSA_: u16 = 52;
    const ANY: u16 = 255;
    const CNAME_T: u16 = 5;
    // (name, type)
    let names: Vec<(String, u16)> = vec![
        (format!("_25._tcp.h1.{o}"), TLSA_),
        (format!("h1.{o}"), A),
        (format!("h1.{o}"), AAAA_),
        (format!("h1.{o}"), MX),         // NODATA
        (format!("h1-abc.{o}"), A),      // NXDOMAIN
        (format!("zzz.{o}"), A),         // NXDOMAIN after the last name
        (format!("x.y.h2.{o}"), A),      // NXDOMAIN below a host
        (format!("_tcp.h1.{o}"), TLSA_), // ENT NODATA
        (format!("_25._tcp.h2.{o}"), TLSA_),
        (format!("_25._tcp.h3.{o}"), TLSA_), // CNAME to the shared TLSA RRset
        (format!("big.{o}"), A),             // TC at 512, fits 1232
        (format!("huge.{o}"), AAAA_),        // TC always
        (format!("txt.{o}"), TXT_),
        (format!("alias.{o}"), A), // CNAME + in-zone target
        (format!("alias.{o}"), CNAME_T),
        (format!("ext.{o}"), A),   // CNAME out of zone
        (format!("child.{o}"), A), // referral with glue
        (format!("www.child.{o}"), TLSA_),
        (format!("child.{o}"), DS), // DS at the delegation
        (format!("nods.{o}"), A),   // referral, NSEC instead of DS
        (format!("nods.{o}"), DS),
        (o.to_string(), SOA),
        (o.to_string(), NS_),
        (o.to_string(), DNSKEY),
        (o.to_string(), ANY),
        (o.to_string(), DS), // answered by the parent zone
        (format!("h1.{o}"), ANY),
        ("mx.example.".to_string(), SOA),
        (format!("ns1.{o}"), A),
        ("ns1.mx.example.".to_string(), A),
        ("www.example.com.".to_string(), A), // REFUSED
        (".".to_string(), SOA),              // REFUSED
    ];
    let edns: Vec<TestEdns> = vec![
        None,
        Some((1232, 0, true, &[])),
        Some((1232, 0, false, &[])),
        Some((512, 0, true, &[])),
        Some((100, 0, true, &[])),
        Some((4096, 0, true, &[])),
    ];
    let mut checked = 0;
    for (i, (name, qtype)) in names.iter().enumerate() {
        for upper in [false, true] {
            let name = if upper {
                name.chars()
                    .enumerate()
                    .map(|(k, c)| {
                        if k % 2 == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            } else {
                name.clone()
            };
            for e in &edns {
                let msg = query(i as u16, &name, *qtype, *e);
                let f = fast(&h, &msg).unwrap_or_else(|| panic!("fast path for {name} {qtype}"));
                let g = general(&h, &msg).await;
                let what = format!("{name} type {qtype} edns {e:?}");
                let fm = Message::from_vec(&f).unwrap_or_else(|err| panic!("{what}: {err}"));
                let gm = Message::from_vec(&g).unwrap();
                assert_eq!(fm, gm, "{what}");
                let limit = match e {
                    Some((p, ..)) => (*p).clamp(512, 1232) as usize,
                    None => 512,
                };
                assert!(f.len() <= limit, "{what}: {} > {limit}", f.len());
                if !upper {
                    assert_eq!(f, g, "{what}: bytes");
                } else {
                    // owner names point at the question's letters instead of being written
                    // again in lower case
                    assert!(f.len() <= g.len(), "{what}: {} > {}", f.len(), g.len());
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, names.len() * 2 * edns.len());
    // the shapes above include truncation, REFUSED and NXDOMAIN
    let tc =
        Message::from_vec(&fast(&h, &query(1, &format!("big.{o}"), A, None)).unwrap()).unwrap();
    assert!(tc.metadata.truncation && tc.answers.is_empty());
    let ok = Message::from_vec(
        &fast(
            &h,
            &query(1, &format!("big.{o}"), A, Some((1232, 0, true, &[]))),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(!ok.metadata.truncation && ok.answers.len() == 41);
}

#[tokio::test]
async fn unusual_queries_take_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(dir.path());
    let name = "h1.o-v1.mx.example.";
    let ok = query(7, name, 1, Some((1232, 0, true, &[])));
    assert!(fast(&h, &ok).is_some());
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short header", vec![0; 11]),
        ("header only", ok[..12].to_vec()),
        ("truncated question", ok[..20].to_vec()),
        ("trailing byte", [ok.clone(), vec![0]].concat()),
        (
            "EDNS version 1",
            query(7, name, 1, Some((1232, 1, true, &[]))),
        ),
        (
            "EDNS option",
            query(
                7,
                name,
                1,
                Some((1232, 0, true, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])),
            ),
        ),
        ("AXFR", query(7, name, 252, None)),
        ("IXFR", query(7, name, 251, None)),
        ("OPT", query(7, name, 41, None)),
        ("type 0", query(7, name, 0, None)),
        ("MAILB", query(7, name, 253, None)),
    ];
    let mut response = ok.clone();
    response[2] |= 0x80;
    cases.push(("response", response));
    let mut notify = ok.clone();
    notify[2] |= 4 << 3;
    cases.push(("opcode NOTIFY", notify));
    let mut two = ok.clone();
    two[5] = 2;
    cases.push(("two questions", two));
    let mut answer = ok.clone();
    answer[7] = 1;
    cases.push(("answer record", answer));
    let mut chaos = query(7, name, 16, None);
    let l = chaos.len();
    chaos[l - 1] = 3;
    cases.push(("class CH", chaos));
    let mut pointer = query(7, name, 1, None);
    pointer[12] = 0xC0;
    cases.push(("compressed question", pointer));
    let mut long_label = query(7, name, 1, None);
    long_label[12] = 64;
    cases.push(("label of 64", long_label));
    for (what, msg) in cases {
        assert!(fast(&h, &msg).is_none(), "{what}");
    }
}

/// The provisioned shape: `_25._tcp.<host>` is a CNAME to the partition's shared TLSA RRset, so a
/// TLSA query answers two RRsets (two signed RRsets with DO). The fast path's bytes are the general
/// path's at every buffer size from 512 up (with and without DO, without EDNS, mixed-case
/// question), and a truncated answer holds whole RRsets only (the CNAME with its RRSIG, or
/// nothing) with TC set.
#[tokio::test]
async fn cname_to_shared_tlsa_answers_as_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(dir.path());
    let o = "o-v1.mx.example.";
    const TLSA_: u16 = 52;
    const CNAME_T: u16 = 5;
    let mut sizes: Vec<TestEdns> = vec![None];
    for dnssec in [false, true] {
        for p in [0u16, 100, 511, 512, 513]
            .into_iter()
            .chain((520..=1240).step_by(20))
            .chain([1231, 1232, 1233, 4096, 65535])
        {
            sizes.push(Some((p, 0, dnssec, &[])));
        }
    }
    let (mut full, mut cname_only, mut empty) = (0, 0, 0);
    for host in ["h3", "h4"] {
        for (qname, qtype) in [
            (format!("_25._tcp.{host}.{o}"), TLSA_),
            (format!("_25._TCP.{}.{o}", host.to_uppercase()), TLSA_),
            (format!("_25._tcp.{host}.{o}"), CNAME_T),
        ] {
            for e in &sizes {
                let what = format!("{qname} type {qtype} edns {e:?}");
                let msg = query(0x5a5a, &qname, qtype, *e);
                let f = fast(&h, &msg).unwrap_or_else(|| panic!("{what}: not on the fast path"));
                let g = general(&h, &msg).await;
                let fm = Message::from_vec(&f).unwrap_or_else(|err| panic!("{what}: {err}"));
                let gm = Message::from_vec(&g).unwrap();
                if qname.starts_with("_25._tcp.") {
                    assert_eq!(fm, gm, "{what}");
                    assert_eq!(f, g, "{what}: bytes");
                } else if fm != gm {
                    // a mixed-case question: the fast path's owner names point at the question's
                    // letters, the general path writes them again in lower case, so at the cut
                    // the fast path may fit the whole answer where the general path truncates
                    assert!(
                        gm.metadata.truncation && !fm.metadata.truncation,
                        "{what}: {fm:?} against {gm:?}"
                    );
                    assert_eq!(fm.answers[..gm.answers.len()], gm.answers[..], "{what}");
                } else {
                    assert!(f.len() <= g.len(), "{what}: {} > {}", f.len(), g.len());
                }
                let (limit, dnssec) = match e {
                    Some((p, _, d, _)) => ((*p).clamp(512, 1232) as usize, *d),
                    None => (512, false),
                };
                assert!(f.len() <= limit, "{what}: {} > {limit}", f.len());
                assert_eq!(fm.metadata.response_code, ResponseCode::NoError, "{what}");
                assert!(fm.metadata.authoritative, "{what}");
                let types: Vec<RecordType> = fm.answers.iter().map(|r| r.record_type()).collect();
                let count = |t| types.iter().filter(|&&x| x == t).count();
                let sigs = usize::from(dnssec);
                let tlsa_count = if host == "h3" { 2 } else { 8 };
                if qtype == CNAME_T {
                    assert!(!fm.metadata.truncation, "{what}");
                    assert_eq!(types.len(), 1 + sigs, "{what}: {types:?}");
                    continue;
                }
                if !fm.metadata.truncation {
                    full += 1;
                    assert_eq!(count(RecordType::CNAME), 1, "{what}");
                    assert_eq!(count(RecordType::TLSA), tlsa_count, "{what}");
                    assert_eq!(count(RecordType::RRSIG), 2 * sigs, "{what}");
                    assert_eq!(types.len(), 1 + tlsa_count + 2 * sigs, "{what}");
                } else if types.is_empty() {
                    empty += 1;
                } else {
                    // whole RRsets: the CNAME and (with DO) its RRSIG, no part of the TLSA RRset
                    cname_only += 1;
                    assert_eq!(
                        types,
                        [&[RecordType::CNAME][..], &vec![RecordType::RRSIG; sigs]].concat(),
                        "{what}"
                    );
                }
                if fm.metadata.truncation {
                    assert!(
                        fm.additionals
                            .iter()
                            .all(|r| r.record_type() == RecordType::OPT),
                        "{what}: additional data in a truncated answer"
                    );
                }
            }
        }
    }
    // the sizes above cross every cut: both RRsets, the CNAME alone, nothing
    assert!(
        full > 0 && cname_only > 0,
        "full {full} cname-only {cname_only} empty {empty}"
    );
}
