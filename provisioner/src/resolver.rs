//! Every outbound DNS lookup of mxdns goes through here: the status checks (MX, A/AAAA with the
//! AD bit, `_mta-sts` TXT, the MTA-STS host's addresses), the key lifecycle's parent DS check, and
//! TXT lookups (domain verification).
//!
//! Built on hickory-net's client (the layer below hickory-resolver, already in the build through
//! hickory-server): the whole answer is kept, header included, because the status checks decide
//! ED003 by the AD bit of the configured validating resolver, and the REFUSED / SERVFAIL /
//! NXDOMAIN distinction is a finding of its own. The resolver crate would add a cache we do
//! not want (a status check must see the live answer) and hide both behind its errors.
//!
//! - [`Resolver::query`]: UDP from a random source port with a random ID (hickory-net checks
//!   source address and port, ID and question), retried within the timeout; a truncated answer
//!   (TC) is asked again over TCP. The UDP socket is connected to the server (as Unbound's
//!   `udp-connect`): the kernel drops datagrams from anyone else, and a server that is down
//!   (ICMP port unreachable) is an error at once instead of a wait for the timeout.
//! - [`Resolver::query_tcp`]: TCP only, for answers that must not be spoofable by someone off
//!   the path (the parent DS check: an off-path attacker cannot complete a TCP handshake).
//! - Every answer is checked here again, whatever the transport: QR set, opcode QUERY, the ID
//!   and the question equal to what was asked; only answer-section records of the asked name
//!   (or the CNAME chain from it inside the answer) and class count.
//!
//! The API is synchronous (the callers run on blocking threads or in the command line); each
//! call drives its own small current-thread runtime, on a scoped thread when the caller is
//! inside a tokio runtime already.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

pub use hickory_proto::op::ResponseCode;

/// The EDNS payload size we offer (DNS flag day 2020 / RFC 9715).
const PAYLOAD: u16 = 1232;
/// Longest CNAME chain followed inside one answer.
const MAX_CHAIN: usize = 8;

/// A client of one server (a validating resolver, or a parent zone's server).
#[derive(Debug, Clone)]
pub struct Resolver {
    server: SocketAddr,
    timeout: Duration,
}

/// How to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// RD: a recursive resolver (true) or an authoritative server (false).
    pub recursion_desired: bool,
    /// EDNS DO: ask for DNSSEC records (and so the AD bit of a validating resolver).
    pub dnssec_ok: bool,
    /// CD: a validating resolver answers without validating (RFC 4035 3.2.2). A SERVFAIL
    /// that becomes an answer with CD set was a validation failure (bogus), not a DNS one.
    pub checking_disabled: bool,
}

impl Ask {
    /// A validating recursive resolver: RD and DO.
    pub const RECURSIVE: Ask = Ask {
        recursion_desired: true,
        dnssec_ok: true,
        checking_disabled: false,
    };
    /// [`Ask::RECURSIVE`] with CD: what the data is, valid or not.
    pub const UNCHECKED: Ask = Ask {
        recursion_desired: true,
        dnssec_ok: true,
        checking_disabled: true,
    };
    /// An authoritative server: no RD, DO.
    pub const AUTHORITATIVE: Ask = Ask {
        recursion_desired: false,
        dnssec_ok: true,
        checking_disabled: false,
    };
}

/// An answer that matched the question.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// The AD bit: the (validating) resolver found the answer DNSSEC-authentic.
    pub authentic: bool,
    /// The AA bit.
    pub authoritative: bool,
    /// Whether it came over TCP (asked so, or after a truncated UDP answer).
    pub over_tcp: bool,
    /// The records of the asked type in the answer section, owned by the asked name or by a
    /// name the CNAME chain from it (inside this answer) leads to; class IN.
    pub records: Vec<Record>,
}

impl Answer {
    /// The record data of `records`.
    pub fn data(&self) -> impl Iterator<Item = &RData> {
        self.records.iter().map(|r| &r.data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0} is not a domain name")]
    BadName(String),
    #[error("no answer from {server} within {timeout_ms} ms")]
    Timeout {
        server: SocketAddr,
        timeout_ms: u128,
    },
    #[error("the answer from {server} does not match the question ({why})")]
    Mismatch {
        server: SocketAddr,
        why: &'static str,
    },
    #[error("{server} answered {rcode}")]
    Rcode {
        server: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("DNS exchange with {server} failed: {detail}")]
    Net { server: SocketAddr, detail: String },
}

impl Resolver {
    pub fn new(server: SocketAddr, timeout: Duration) -> Self {
        Self { server, timeout }
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// `name`/`rtype` over UDP, again over TCP when the UDP answer is truncated.
    pub fn query(&self, name: &Name, rtype: RecordType, ask: Ask) -> Result<Answer, ResolveError> {
        block_on(self.exchange(name, rtype, ask, false), self)
    }

    /// `name`/`rtype` over TCP only.
    pub fn query_tcp(
        &self,
        name: &Name,
        rtype: RecordType,
        ask: Ask,
    ) -> Result<Answer, ResolveError> {
        block_on(self.exchange(name, rtype, ask, true), self)
    }

    /// [`Resolver::query`] of a name in text (absolute or not: it is made absolute).
    pub fn query_str(
        &self,
        name: &str,
        rtype: RecordType,
        ask: Ask,
    ) -> Result<Answer, ResolveError> {
        self.query(&parse_name(name)?, rtype, ask)
    }

    /// The TXT records of `name` from a recursive resolver, each record's strings joined (RFC
    /// 7208 3.3). NXDOMAIN and NODATA are an empty list; SERVFAIL, REFUSED and the other error
    /// codes are [`ResolveError::Rcode`].
    pub fn txt(&self, name: &str) -> Result<Vec<String>, ResolveError> {
        let a = self.query_str(name, RecordType::TXT, Ask::RECURSIVE)?;
        self.no_error(&a)?;
        Ok(a.data()
            .filter_map(|d| match d {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The A and AAAA addresses of `name` from a recursive resolver (both asked; an error only
    /// when neither answers cleanly).
    pub fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let name = parse_name(name)?;
        let mut out = Vec::new();
        let mut first_error = None;
        for t in [RecordType::A, RecordType::AAAA] {
            match self
                .query(&name, t, Ask::RECURSIVE)
                .and_then(|a| self.no_error(&a).map(|_| a))
            {
                Ok(a) => out.extend(a.data().filter_map(|d| match d {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// NOERROR and NXDOMAIN are answers; the other codes are errors.
    fn no_error(&self, a: &Answer) -> Result<(), ResolveError> {
        match a.rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(()),
            rcode => Err(ResolveError::Rcode {
                server: self.server,
                rcode,
            }),
        }
    }

    async fn exchange(
        &self,
        name: &Name,
        rtype: RecordType,
        ask: Ask,
        tcp_only: bool,
    ) -> Result<Answer, ResolveError> {
        let query = Query::query(name.clone(), rtype);
        let options = {
            let mut o = DnsRequestOptions::default();
            o.use_edns = true;
            o.edns_payload_len = PAYLOAD;
            o.edns_set_dnssec_ok = ask.dnssec_ok;
            o.recursion_desired = ask.recursion_desired;
            o
        };
        let mut request = DnsRequest::from_query(query.clone(), options);
        request.metadata.checking_disabled = ask.checking_disabled;
        if !tcp_only {
            let udp = UdpClientStream::builder(self.server, Connected::default())
                .with_timeout(Some(self.timeout))
                .build();
            let (client, bg) = Client::<Connected>::from_sender(udp);
            let bg = tokio::spawn(bg);
            let got = self.first(client.send(request.clone())).await;
            bg.abort();
            let m = self.check(got?, &query, Some(request.metadata.id))?;
            if !m.metadata.truncation {
                return Ok(answer(m, &query, false));
            }
            tracing::debug!(server = %self.server, name = %name, ?rtype, "truncated over UDP: asking again over TCP");
        }
        let provider = TokioRuntimeProvider::new();
        let (connect, handle) =
            TcpClientStream::new(self.server, None, Some(self.timeout), provider);
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.net(e))?;
        let (client, bg) =
            Client::<TokioRuntimeProvider>::with_timeout(stream, handle, self.timeout);
        let bg = tokio::spawn(bg);
        let got = self.first(client.send(request)).await;
        bg.abort();
        // the multiplexer gives the request a random ID of its own and matches the answer by it
        let m = self.check(got?, &query, None)?;
        if m.metadata.truncation {
            return Err(ResolveError::Mismatch {
                server: self.server,
                why: "truncated over TCP",
            });
        }
        Ok(answer(m, &query, true))
    }

    async fn first<S>(&self, mut responses: S) -> Result<Message, ResolveError>
    where
        S: futures_util::Stream<
                Item = Result<hickory_proto::op::DnsResponse, hickory_net::NetError>,
            > + Unpin,
    {
        match tokio::time::timeout(self.timeout, responses.next()).await {
            Err(_) => Err(self.timed_out()),
            // hickory-net ends the response stream without an item when its timeout fired
            Ok(None) => Err(self.timed_out()),
            Ok(Some(Err(hickory_net::NetError::Timeout))) => Err(self.timed_out()),
            Ok(Some(Err(hickory_net::NetError::Io(e))))
                if e.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Err(self.net("nothing listens there (connection refused)"))
            }
            Ok(Some(Err(e))) => Err(self.net(e)),
            Ok(Some(Ok(r))) => Ok(r.into_message()),
        }
    }

    /// The header and question of an answer against the query: a response, to QUERY, with the
    /// ID sent (when the caller knows it), exactly our one question (name compared without
    /// case, type and class).
    fn check(&self, m: Message, query: &Query, id: Option<u16>) -> Result<Message, ResolveError> {
        let why = if m.metadata.message_type != MessageType::Response {
            Some("not a response")
        } else if m.metadata.op_code != OpCode::Query {
            Some("not a QUERY answer")
        } else if id.is_some_and(|id| m.metadata.id != id) {
            Some("another ID")
        } else if m.queries.len() != 1 {
            Some("not one question")
        } else {
            let q = &m.queries[0];
            (q.name() != query.name()
                || q.query_type() != query.query_type()
                || q.query_class() != query.query_class())
            .then_some("another question")
        };
        match why {
            Some(why) => Err(ResolveError::Mismatch {
                server: self.server,
                why,
            }),
            None => Ok(m),
        }
    }

    fn timed_out(&self) -> ResolveError {
        ResolveError::Timeout {
            server: self.server,
            timeout_ms: self.timeout.as_millis(),
        }
    }

    fn net(&self, e: impl std::fmt::Display) -> ResolveError {
        ResolveError::Net {
            server: self.server,
            detail: e.to_string(),
        }
    }
}

/// hickory-net's tokio runtime, with UDP sockets connected to the server they are for.
#[derive(Clone, Default)]
struct Connected(TokioRuntimeProvider);

impl RuntimeProvider for Connected {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = ConnectedUdp;
    type Tcp = AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> std::pin::Pin<Box<dyn Send + Future<Output = std::io::Result<Self::Tcp>>>> {
        self.0.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> std::pin::Pin<Box<dyn Send + Future<Output = std::io::Result<Self::Udp>>>> {
        Box::pin(async move {
            let socket = tokio::net::UdpSocket::bind(local_addr).await?;
            socket.connect(server_addr).await?;
            Ok(ConnectedUdp {
                socket: Arc::new(socket),
                peer: server_addr,
                readiness: std::sync::Mutex::new(None),
            })
        })
    }
}

/// A UDP socket connected to `peer`: sends only there, receives only from there. Receiving
/// also waits for error readiness, so that an ICMP port unreachable (ECONNREFUSED) ends the
/// wait at once: tokio's plain `poll_recv` waits for readability only and would sleep through
/// it until the timeout.
struct ConnectedUdp {
    socket: Arc<tokio::net::UdpSocket>,
    peer: SocketAddr,
    readiness: std::sync::Mutex<Option<ReadyFuture>>,
}

type ReadyFuture =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<tokio::io::Ready>> + Send>>;

impl DnsUdpSocket for ConnectedUdp {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<(usize, SocketAddr)>> {
        use std::task::Poll;
        let Ok(mut pending) = self.readiness.lock() else {
            return Poll::Ready(Err(std::io::Error::other("socket state poisoned")));
        };
        loop {
            match self.socket.try_recv(buf) {
                Ok(n) => return Poll::Ready(Ok((n, self.peer))),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let wait = pending.get_or_insert_with(|| {
                let socket = self.socket.clone();
                Box::pin(async move {
                    socket
                        .ready(tokio::io::Interest::READABLE | tokio::io::Interest::ERROR)
                        .await
                })
            });
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    *pending = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(ready)) => {
                    *pending = None;
                    if ready.is_error() {
                        // tokio's try_recv gates on readability and would not see the error:
                        // take it from the socket (SO_ERROR), e.g. ECONNREFUSED
                        return Poll::Ready(Err(self
                            .socket
                            .take_error()
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| std::io::Error::other("UDP socket error"))));
                    }
                    // readable: try again (a spurious wake-up finds WouldBlock, which clears
                    // tokio's readiness, and waits anew)
                }
            }
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> std::task::Poll<std::io::Result<usize>> {
        if target != self.peer {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "a connected UDP socket sends to its peer only",
            )));
        }
        self.socket.poll_send(cx, buf)
    }
}

fn parse_name(name: &str) -> Result<Name, ResolveError> {
    let mut n = Name::from_ascii(name).map_err(|_| ResolveError::BadName(name.into()))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The records of the asked type in the answer section that belong to the asked name, or to
/// the names a CNAME chain from it leads to inside the same answer.
fn answer(m: Message, query: &Query, over_tcp: bool) -> Answer {
    let rtype = query.query_type();
    let mut owner = query.name().clone();
    if rtype != RecordType::CNAME {
        for _ in 0..MAX_CHAIN {
            let next = m.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(c) if r.dns_class == DNSClass::IN && r.name == owner => {
                    Some(c.0.clone())
                }
                _ => None,
            });
            match next {
                Some(n) => owner = n,
                None => break,
            }
        }
    }
    let records = m
        .answers
        .iter()
        .filter(|r| {
            r.record_type() == rtype
                && r.dns_class == DNSClass::IN
                && (r.name == *query.name() || r.name == owner)
        })
        .cloned()
        .collect();
    Answer {
        rcode: m.metadata.response_code,
        authentic: m.metadata.authentic_data,
        authoritative: m.metadata.authoritative,
        over_tcp,
        records,
    }
}

/// Runs `f` to completion on a current-thread runtime of its own (on a scoped thread when
/// called from inside a tokio runtime, where a second one cannot be entered).
fn block_on<F>(f: F, r: &Resolver) -> Result<Answer, ResolveError>
where
    F: Future<Output = Result<Answer, ResolveError>> + Send,
{
    let run = move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| r.net(format!("no runtime: {e}")))?
            .block_on(f)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run)
                .join()
                .unwrap_or_else(|_| Err(r.net("resolver thread panicked")))
        })
    } else {
        run()
    }
}

#[cfg(test)]
mod tests {
    //! A scripted server on loopback plays what no real server does on purpose: forged IDs and
    //! questions, truncation, records of other names. Real resolvers (Unbound) are exercised by
    //! the status and rollover tests.
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, UdpSocket};
    use std::sync::mpsc;

    /// What the scripted server does with one query.
    type Script = Box<dyn Fn(&Message) -> Vec<Message> + Send + Sync>;

    struct Fake {
        addr: SocketAddr,
        /// Transport of every query seen ("udp" / "tcp").
        seen: mpsc::Receiver<&'static str>,
    }

    /// A UDP socket and a TCP listener on the same loopback port. The UDP port comes from the
    /// ephemeral range, where an outgoing TCP connection of a parallel test may hold the same
    /// number: try again with another port rather than fail.
    fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
        for _ in 0..100 {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(t) = TcpListener::bind(u.local_addr().unwrap()) {
                return (u, t);
            }
        }
        panic!("no loopback port free for both UDP and TCP after 100 tries");
    }

    /// UDP and TCP on one loopback port; `udp` and `tcp` give the answers to send, in order.
    fn serve(udp: Script, tcp: Script) -> Fake {
        let (u, t) = udp_and_tcp_on_one_port();
        let addr = u.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if tx.send("udp").is_err() {
                    return;
                }
                for m in udp(&q) {
                    let _ = u.send_to(&m.to_vec().unwrap(), from);
                }
            }
        });
        std::thread::spawn(move || {
            for c in t.incoming() {
                let Ok(mut c) = c else { return };
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                let q = Message::from_vec(&q).unwrap();
                if tx2.send("tcp").is_err() {
                    return;
                }
                for m in tcp(&q) {
                    let b = m.to_vec().unwrap();
                    let _ = c.write_all(&(b.len() as u16).to_be_bytes());
                    let _ = c.write_all(&b);
                }
            }
        });
        Fake { addr, seen }
    }

    fn reply(q: &Message) -> Message {
        let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        m.queries = q.queries.clone();
        m.metadata.recursion_desired = q.metadata.recursion_desired;
        m
    }

    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(A(Ipv4Addr::from(ip))),
        )
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn resolver(f: &Fake) -> Resolver {
        Resolver::new(f.addr, Duration::from_millis(1500))
    }

    fn seen(f: &Fake) -> Vec<&'static str> {
        f.seen.try_iter().collect()
    }

    fn none() -> Script {
        Box::new(|_| vec![])
    }

    #[test]
    fn truncated_over_udp_is_asked_again_over_tcp() {
        let f = serve(
            Box::new(|q| {
                let mut m = reply(q);
                m.metadata.truncation = true;
                vec![m]
            }),
            Box::new(|q| {
                let mut m = reply(q);
                m.metadata.authentic_data = true;
                m.answers.push(a("big.test.", [192, 0, 2, 7]));
                vec![m]
            }),
        );
        let got = resolver(&f)
            .query(&name("big.test."), RecordType::A, Ask::RECURSIVE)
            .unwrap();
        assert!(got.over_tcp && got.authentic);
        assert_eq!(got.records, vec![a("big.test.", [192, 0, 2, 7])]);
        assert_eq!(seen(&f), ["udp", "tcp"]);
    }

    #[test]
    fn forged_ids_and_questions_are_not_taken() {
        // over UDP: a wrong ID and a wrong question first, then the real answer
        let f = serve(
            Box::new(|q| {
                let mut wrong_id = reply(q);
                wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
                wrong_id.answers.push(a("x.test.", [6, 6, 6, 6]));
                let mut wrong_q = reply(q);
                wrong_q.queries = vec![Query::query(name("y.test."), RecordType::A)];
                wrong_q.answers.push(a("y.test.", [6, 6, 6, 6]));
                let mut right = reply(q);
                right.answers.push(a("x.test.", [192, 0, 2, 1]));
                vec![wrong_id, wrong_q, right]
            }),
            none(),
        );
        let got = resolver(&f)
            .query(&name("x.test."), RecordType::A, Ask::RECURSIVE)
            .unwrap();
        assert_eq!(got.records, vec![a("x.test.", [192, 0, 2, 1])]);

        // over TCP: an answer to another question is an error, not an answer
        let f = serve(
            none(),
            Box::new(|q| {
                let mut m = reply(q);
                m.queries = vec![Query::query(name("other.test."), RecordType::DS)];
                vec![m]
            }),
        );
        let e = resolver(&f)
            .query_tcp(&name("zone.test."), RecordType::DS, Ask::AUTHORITATIVE)
            .unwrap_err();
        assert!(
            matches!(
                e,
                ResolveError::Mismatch {
                    why: "another question",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(seen(&f), ["tcp"], "query_tcp never uses UDP");
    }

    #[test]
    fn only_records_of_the_asked_name_and_its_cname_chain_count() {
        let f = serve(
            Box::new(|q| {
                let mut m = reply(q);
                m.answers.push(Record::from_rdata(
                    name("www.test."),
                    60,
                    RData::CNAME(CNAME(name("host.test."))),
                ));
                m.answers.push(a("host.test.", [192, 0, 2, 2]));
                m.answers.push(a("elsewhere.test.", [6, 6, 6, 6]));
                m.additionals.push(a("www.test.", [6, 6, 6, 7]));
                vec![m]
            }),
            none(),
        );
        let r = resolver(&f);
        let got = r
            .query_str("www.test", RecordType::A, Ask::RECURSIVE)
            .unwrap();
        assert_eq!(got.records, vec![a("host.test.", [192, 0, 2, 2])]);
        assert_eq!(
            r.addresses("www.test").unwrap(),
            vec![IpAddr::from([192, 0, 2, 2])]
        );
    }

    #[test]
    fn txt_joins_strings_and_error_codes_are_errors() {
        let f = serve(
            Box::new(|q| {
                let mut m = reply(q);
                let n = q.queries[0].name().to_ascii();
                if n.starts_with("refused") {
                    m.metadata.response_code = ResponseCode::Refused;
                } else if n.starts_with("nx") {
                    m.metadata.response_code = ResponseCode::NXDomain;
                } else {
                    m.answers.push(Record::from_rdata(
                        q.queries[0].name().clone(),
                        60,
                        RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
                            "v=spf1 ".into(),
                            "-all".into(),
                        ])),
                    ));
                }
                vec![m]
            }),
            none(),
        );
        let r = resolver(&f);
        assert_eq!(r.txt("ok.test").unwrap(), vec!["v=spf1 -all".to_string()]);
        assert_eq!(r.txt("nx.test").unwrap(), Vec::<String>::new());
        assert!(matches!(
            r.txt("refused.test"),
            Err(ResolveError::Rcode {
                rcode: ResponseCode::Refused,
                ..
            })
        ));
        assert!(matches!(r.txt("bad..name"), Err(ResolveError::BadName(_))));
    }

    #[test]
    fn a_server_that_is_down_is_an_error_at_once() {
        // a port nobody listens on: ICMP port unreachable reaches the connected socket
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Resolver::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            // long: without the ICMP error the query would end as a Timeout, not Net
            Duration::from_secs(10),
        );
        let got = r.query(&name("down.test."), RecordType::A, Ask::RECURSIVE);
        assert!(
            matches!(&got, Err(ResolveError::Net { detail, .. }) if detail.contains("refused")),
            "{got:?}"
        );
    }

    #[test]
    fn silence_is_a_timeout_and_works_inside_a_runtime() {
        let f = serve(none(), none());
        let r = Resolver::new(f.addr, Duration::from_millis(300));
        let got = r.query(&name("quiet.test."), RecordType::A, Ask::RECURSIVE);
        assert!(matches!(got, Err(ResolveError::Timeout { .. })), "{got:?}");
        // called from a thread that is inside a tokio runtime
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got =
            rt.block_on(async { r.query(&name("quiet.test."), RecordType::A, Ask::RECURSIVE) });
        assert!(matches!(got, Err(ResolveError::Timeout { .. })));
    }
}
