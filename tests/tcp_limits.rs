//! DNS over TCP cannot be exhausted by one client: connection caps in total and per source
//! address (over-cap connections are closed at once), the idle timeout, the bound on
//! concurrent zone transfers; UDP and other clients keep their answers.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// Raises this process's open-file soft limit (the default 1024 is below 2 000 sockets).
fn raise_nofile(want: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < want {
            rl.rlim_cur = want.min(rl.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
        }
    }
    assert!(
        rl.rlim_cur >= want,
        "open-file limit {} < {want}",
        rl.rlim_cur
    );
}

fn connect_from(src: [u8; 4], server: SocketAddr, rcvbuf: Option<usize>) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).unwrap();
    }
    sock.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    sock.connect(&server.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn framed(m: &Message) -> Vec<u8> {
    let b = m.to_vec().unwrap();
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend(b);
    out
}

fn tcp_query(c: &mut TcpStream, name: &str, rtype: RecordType) -> Option<Message> {
    c.write_all(&framed(&make_query(name, rtype, true, Some(1232))))
        .ok()?;
    let mut len = [0u8; 2];
    c.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).ok()?;
    Message::from_vec(&buf).ok()
}

/// True when the server has closed the connection (EOF or reset), false while it is open.
fn closed(mut c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    c.set_nonblocking(false).unwrap();
    r
}

fn udp_from(src: [u8; 4], server: SocketAddr) -> Message {
    let sock = UdpSocket::bind(SocketAddr::from((src, 0))).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let q = make_query("o-v1.mx.example.", RecordType::SOA, true, Some(1232));
    sock.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn two_thousand_idle_connections_from_one_address_stop_no_one_else() {
    raise_nofile(8192);
    let s = Server::start(
        "tcp_max_connections = 512\ntcp_max_per_source = 32\ntcp_idle_timeout = 60\n",
    );
    let mut conns: Vec<TcpStream> = (0..2000)
        .map(|_| connect_from([127, 0, 0, 1], s.dns, None))
        .collect();
    // the excess is closed at once, the first 32 stay open (bounded wait for the closes)
    let deadline = Instant::now() + Duration::from_secs(20);
    let open = loop {
        let open = conns.iter().filter(|c| !closed(c)).count();
        if open == 32 {
            break open;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(open, 32);
    // others are answered, over UDP and TCP, from another source address
    let m = udp_from([127, 0, 0, 2], s.dns);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.answers.is_empty());
    let mut other = connect_from([127, 0, 0, 2], s.dns, None);
    let m = tcp_query(&mut other, "o-v1.mx.example.", RecordType::SOA).expect("TCP answer");
    assert!(!m.answers.is_empty());
    // the client's open connections still work; one more from it is closed
    let first = conns.iter_mut().find(|c| !closed(c)).unwrap();
    assert!(tcp_query(first, "mx.example.", RecordType::SOA).is_some());
    let mut extra = connect_from([127, 0, 0, 1], s.dns, None);
    assert!(
        tcp_query(&mut extra, "mx.example.", RecordType::SOA).is_none(),
        "over the cap"
    );
    assert!(s.log().contains("TCP connections over the cap closed"));
    // when it lets go, it is served again
    conns.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = connect_from([127, 0, 0, 1], s.dns, None);
        if tcp_query(&mut c, "mx.example.", RecordType::SOA).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "slots not given back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn total_cap_and_idle_timeout() {
    let s =
        Server::start("tcp_max_connections = 40\ntcp_max_per_source = 32\ntcp_idle_timeout = 1\n");
    // 32 from one address and 8 from another fill the total; a third address is closed
    let mut a: Vec<TcpStream> = (0..32)
        .map(|_| connect_from([127, 0, 0, 1], s.dns, None))
        .collect();
    let mut b: Vec<TcpStream> = (0..8)
        .map(|_| connect_from([127, 0, 0, 2], s.dns, None))
        .collect();
    for c in a.iter_mut().take(1).chain(b.iter_mut().take(1)) {
        assert!(tcp_query(c, "mx.example.", RecordType::SOA).is_some());
    }
    let mut third = connect_from([127, 0, 0, 3], s.dns, None);
    assert!(
        tcp_query(&mut third, "mx.example.", RecordType::SOA).is_none(),
        "over the total"
    );
    // idle connections are closed after tcp_idle_timeout (1 s), also one that sent half a
    // length prefix
    b[0].write_all(&[0]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.iter().all(closed) && b.iter().all(closed)) {
        assert!(Instant::now() < deadline, "idle connections not closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = connect_from([127, 0, 0, 3], s.dns, None);
    assert!(tcp_query(&mut c, "mx.example.", RecordType::SOA).is_some());
    // UDP never waited
    assert_eq!(
        udp_from([127, 0, 0, 4], s.dns).metadata.response_code,
        ResponseCode::NoError
    );
}

#[test]
fn concurrent_transfers_are_bounded() {
    let s = Server::start("xfr_max_concurrent = 1\ntcp_idle_timeout = 30\n");
    s.cmd(&["host", "bulk-add", "--count", "6000"]);
    s.wait_for("t6000.o-v1.mx.example.", RecordType::A, 60, |m| {
        !m.answers.is_empty()
    });
    // a transfer whose client does not read holds the only slot
    let mut stalled = connect_from([127, 0, 0, 1], s.dns, Some(4096));
    stalled
        .write_all(&framed(&make_query(
            "o-v1.mx.example.",
            RecordType::AXFR,
            false,
            None,
        )))
        .unwrap();
    let mut len = [0u8; 2];
    stalled.read_exact(&mut len).unwrap(); // it has started
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = connect_from([127, 0, 0, 1], s.dns, None);
        c.write_all(&framed(&make_query(
            "mx.example.",
            RecordType::AXFR,
            false,
            None,
        )))
        .unwrap();
        c.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut buf).unwrap();
        let m = Message::from_vec(&buf).unwrap();
        if m.metadata.response_code == ResponseCode::Refused {
            break;
        }
        // the first transfer may still be filling the socket buffers: ask again
        assert!(
            Instant::now() < deadline,
            "a second transfer ran beside a stalled one"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.log().contains("xfr_max_concurrent transfers running"));
    // queries are still answered on TCP and UDP
    let mut q = connect_from([127, 0, 0, 2], s.dns, None);
    assert!(tcp_query(&mut q, "t1.o-v1.mx.example.", RecordType::A).is_some());
    assert!(
        !query_udp(s.dns, "t1.o-v1.mx.example.", RecordType::A, true, 1232)
            .unwrap()
            .answers
            .is_empty()
    );
    // the slot comes back when the stalled client goes
    drop(stalled);
    let (records, _) = wait_axfr(&s);
    assert!(records > 6000);
}

/// An AXFR of mx.example. once a slot is free (bounded).
fn wait_axfr(s: &Server) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = connect_from([127, 0, 0, 1], s.dns, None);
        c.write_all(&framed(&make_query(
            "o-v1.mx.example.",
            RecordType::AXFR,
            false,
            None,
        )))
        .unwrap();
        let mut out = 0;
        let mut messages = 0;
        let mut soas = 0;
        loop {
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                break;
            }
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut buf).unwrap();
            let m = Message::from_vec(&buf).unwrap();
            if m.metadata.response_code != ResponseCode::NoError {
                break;
            }
            messages += 1;
            soas += m
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::SOA)
                .count();
            out += m.answers.len();
            if soas == 2 {
                return (out, messages);
            }
        }
        assert!(Instant::now() < deadline, "no transfer slot came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}
