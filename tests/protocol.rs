//! The server's answers on the wire, over real UDP and TCP sockets: response codes for bad or
//! unsupported input, the DO bit, truncation by whole RRsets, ANY, letter case, TCP sessions.

mod common;

use common::*;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

const HOST: &str = "contoso-com.o-v1.mx.example.";
const TLSA_NAME: &str = "_25._tcp.contoso-com.o-v1.mx.example.";
const BIG: &str = "big.o-v1.mx.example.";

fn server() -> Server {
    let s = Server::start("");
    s.cmd(&[
        "host",
        "add",
        HOST,
        "--a",
        "192.0.2.25",
        "--aaaa",
        "2001:db8::25",
        "--tlsa",
        &format!("3 1 1 {}", "ab".repeat(32)),
    ]);
    // a TLSA RRset too large for 512 bytes, even without DNSSEC
    s.add_big_tlsa_host(BIG, 14);
    s.wait_for(TLSA_NAME, RecordType::TLSA, 10, |m| !m.answers.is_empty());
    s.wait_for(&format!("_25._tcp.{BIG}"), RecordType::TLSA, 10, |m| {
        m.metadata.truncation || !m.answers.is_empty()
    });
    s
}

fn types(records: &[hickory_proto::rr::Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

#[test]
fn answers_negative_answers_and_the_do_bit() {
    let s = server();
    // positive, with and without DO
    let m = query_udp(s.dns, HOST, RecordType::A, true, 1232).unwrap();
    assert!(m.metadata.authoritative);
    assert_eq!(types(&m.answers), vec![RecordType::A, RecordType::RRSIG]);
    let m = query_udp(s.dns, HOST, RecordType::A, false, 1232).unwrap();
    assert_eq!(types(&m.answers), vec![RecordType::A]);
    assert!(!m.metadata.recursion_available, "never recursion");

    // NODATA: SOA + NSEC at the name (+ RRSIGs)
    let m = query_udp(s.dns, HOST, RecordType::MX, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(
        types(&m.authorities),
        vec![
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::RRSIG
        ]
    );
    assert_eq!(m.authorities[2].name.to_ascii(), HOST);
    // without DO: SOA only
    let m = query_udp(s.dns, HOST, RecordType::MX, false, 1232).unwrap();
    assert_eq!(types(&m.authorities), vec![RecordType::SOA]);

    // empty non-terminal _tcp.<host>: NODATA
    let m = query_udp(s.dns, &format!("_tcp.{HOST}"), RecordType::TLSA, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(types(&m.authorities).contains(&RecordType::NSEC));

    // NXDOMAIN: SOA + NSECs for the name and the wildcard
    let m = query_udp(s.dns, "nothere.o-v1.mx.example.", RecordType::A, true, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    let nsecs = m
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NSEC)
        .count();
    assert!((1..=2).contains(&nsecs));
    assert_eq!(
        m.authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .count(),
        nsecs + 1
    );

    // DS of the partition comes from the parent, signed by the parent
    let m = query_udp(s.dns, "o-v1.mx.example.", RecordType::DS, true, 1232).unwrap();
    assert_eq!(types(&m.answers), vec![RecordType::DS, RecordType::RRSIG]);
    let sig = keys::verify::as_rrsig(&m.answers[1]).unwrap();
    assert_eq!(sig.input().signer_name.to_ascii(), "mx.example.");
}

#[test]
fn refused_formerr_notimp_badvers() {
    let s = server();
    // names in no zone of ours: REFUSED, never recursion
    let m = query_udp(s.dns, "www.example.com.", RecordType::A, false, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());

    // class CH: REFUSED
    let mut q = make_query("version.bind.", RecordType::TXT, false, Some(1232));
    q.queries[0].set_query_class(DNSClass::CH);
    let m = Message::from_vec(&udp_raw(s.dns, &q.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // two questions: FORMERR
    let mut q = make_query(HOST, RecordType::A, false, Some(1232));
    q.add_query(hickory_proto::op::Query::query(
        q.queries[0].name().clone(),
        RecordType::AAAA,
    ));
    let m = Message::from_vec(&udp_raw(s.dns, &q.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    // a question cut short: FORMERR
    let mut raw = make_query(HOST, RecordType::A, false, None)
        .to_vec()
        .unwrap();
    raw.truncate(raw.len() - 3);
    let m = Message::from_vec(&udp_raw(s.dns, &raw).unwrap()).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    // opcodes we do not serve: NOTIMP
    for op in [OpCode::Update, OpCode::Status, OpCode::Notify] {
        let mut q = make_query("o-v1.mx.example.", RecordType::SOA, false, Some(1232));
        q.metadata.op_code = op;
        let m = Message::from_vec(&udp_raw(s.dns, &q.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{op:?}");
    }

    // EDNS version 1: BADVERS, with our OPT at version 0
    let mut q = make_query(HOST, RecordType::A, true, Some(1232));
    let mut e = Edns::new();
    e.set_version(1);
    e.set_max_payload(1232);
    q.set_edns(e);
    let m = Message::from_vec(&udp_raw(s.dns, &q.to_vec().unwrap()).unwrap()).unwrap();
    // BADVERS and BADSIG share the value 16 (RFC 6891 9); hickory decodes it as BADSIG
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));

    // AXFR over UDP: NOTIMP; the server is still there afterwards
    let m = query_udp(s.dns, "o-v1.mx.example.", RecordType::AXFR, false, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    let m = query_udp(s.dns, HOST, RecordType::A, false, 1232).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn any_is_minimal_and_case_is_echoed() {
    let s = server();
    let m = query_udp(s.dns, HOST, RecordType::ANY, true, 1232).unwrap();
    let rrsets: std::collections::BTreeSet<_> = m
        .answers
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| r.record_type())
        .collect();
    assert_eq!(rrsets.len(), 1, "RFC 8482: one RRset for ANY");

    // built by hand: hickory's encoder would lower-case the name
    let wire: Vec<u8> = b"\x0bCoNtOsO-CoM\x04O-v1\x02Mx\x07ExAmPlE\x00".to_vec();
    let mut q = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend(&wire);
    q.extend([0, 1, 0, 1]);
    let raw = udp_raw(s.dns, &q).unwrap();
    assert_eq!(
        &raw[12..12 + wire.len()],
        &wire[..],
        "question echoed with its letter case"
    );
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn truncation_by_whole_rrsets_and_tcp_sessions() {
    let s = server();
    let name = format!("_25._tcp.{BIG}");
    // the whole answer, over TCP
    let mut tcp = Tcp::connect(s.dns);
    tcp.send(&make_query(&name, RecordType::TLSA, true, Some(1232)));
    let full = tcp.recv();
    assert!(!full.metadata.truncation);
    assert_eq!(
        full.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::TLSA)
            .count(),
        14
    );
    assert_eq!(
        full.answers
            .iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .count(),
        1
    );
    // several queries on one connection
    for _ in 0..3 {
        tcp.send(&make_query(HOST, RecordType::A, true, Some(1232)));
        assert_eq!(tcp.recv().answers.len(), 2);
    }

    for (bufsize, dnssec) in [(Some(512u16), true), (Some(1232), true), (None, false)] {
        let q = make_query(&name, RecordType::TLSA, dnssec, bufsize);
        let raw = udp_raw(s.dns, &q.to_vec().unwrap()).unwrap();
        let limit = bufsize.unwrap_or(512) as usize;
        assert!(raw.len() <= limit, "{} > {limit}", raw.len());
        let m = Message::from_vec(&raw).unwrap();
        let full_len = full.to_vec().unwrap().len();
        if full_len > limit || bufsize.is_none() {
            assert!(m.metadata.truncation, "TC at {limit}");
            // never part of an RRset: the answer is empty or the whole TLSA set
            let n = m
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::TLSA)
                .count();
            assert!(n == 0 || n == 14, "split RRset: {n} of 14");
        } else {
            assert!(!m.metadata.truncation);
            assert_eq!(m.answers.len(), full.answers.len());
        }
    }
    // the 1232-byte default cap holds even if the client offers more
    let q = make_query(&name, RecordType::TLSA, true, Some(4096));
    let raw = udp_raw(s.dns, &q.to_vec().unwrap()).unwrap();
    assert!(raw.len() <= 1232);
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Response);
}

#[test]
fn transfers_refused_outside_the_allowed_networks() {
    let s = Server::start("axfr_allow = [\"192.0.2.0/24\"]\n");
    let mut c = Tcp::connect(s.dns);
    c.send(&make_query(
        "o-v1.mx.example.",
        RecordType::AXFR,
        false,
        None,
    ));
    assert_eq!(c.recv().metadata.response_code, ResponseCode::Refused);
}

#[test]
fn data_survives_restart_and_sigterm_is_clean() {
    let mut s = server();
    let before = query_udp(s.dns, HOST, RecordType::AAAA, true, 1232).unwrap();
    let ds1 = s.cmd(&["keys", "ds"]);
    let status = s.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    s.spawn();
    let after = query_udp(s.dns, HOST, RecordType::AAAA, true, 1232).unwrap();
    assert_eq!(
        before.answers[0], after.answers[0],
        "same data after restart"
    );
    assert_eq!(ds1, s.cmd(&["keys", "ds"]), "same keys after restart");
    let list = s.cmd(&["keys", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.contains("active")).count(),
        4,
        "{list}"
    );
    // private keys are 0600
    use std::os::unix::fs::PermissionsExt;
    for f in std::fs::read_dir(s.data_dir().join("keys")).unwrap() {
        let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let token = std::fs::metadata(s.data_dir().join("admin-token")).unwrap();
    assert_eq!(
        token.permissions().mode() & 0o777,
        0o600,
        "the admin token is private too"
    );
    assert!(!s.log().contains("PRIVATE"), "no key material in the log");
    assert!(
        !s.log().contains(&s.admin_token()),
        "the admin token is never logged"
    );
}

#[test]
fn environment_ipv6_listeners_and_health() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let api = free_port();
    let mut child = std::process::Command::new(BIN)
        .arg("serve")
        .env("MXDNS_DATA_DIR", dir.path().join("d"))
        .env("MXDNS_DNS_LISTEN", format!("[::1]:{port},127.0.0.1:{port}"))
        .env("MXDNS_API_LISTEN", format!("127.0.0.1:{api}"))
        .env("MXDNS_PARTITIONS", "o-v1,o-v2")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let v4: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ok = false;
    for _ in 0..200 {
        if query_udp(v6, "o-v2.mx.example.", RecordType::SOA, false, 1232)
            .is_ok_and(|m| !m.answers.is_empty())
        {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let v4_answer = query_udp(v4, "o-v1.mx.example.", RecordType::SOA, false, 1232);
    let mut health = String::new();
    if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", api)) {
        let _ = c.write_all(b"GET /v1/health HTTP/1.0\r\nHost: x\r\n\r\n");
        let _ = c.read_to_string(&mut health);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "answers on [::1] for the second partition from MXDNS_PARTITIONS"
    );
    assert!(!v4_answer.unwrap().answers.is_empty());
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("\"o-v2.mx.example.\""), "{health}");
    assert!(dir.path().join("d/mxdns.sqlite3").exists());
}
