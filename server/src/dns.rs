//! The query path: hickory-server hands us each request; we answer from the current catalog
//! snapshot (one atomic load, no lock, no database), choose whole RRsets that fit the size
//! limit, and let hickory-proto encode the message.
//!
//! RFCs: 1034 4.3.2 (lookup), 4035 3.1 (DNSSEC in answers), 6891 (EDNS, BADVERS), 8482 (ANY),
//! 2181 9 / 4035 3.1 (truncation), 5936 (AXFR), 1995 (IXFR: answered with the full zone).

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use zones::wire::{parse_query, ResponseWriter};
use zones::zone::KEY_MAX;
use zones::{Lookup, Rrset, Zone};

use crate::config::Cidr;
use crate::zonemgr::ZoneManager;

/// Budget of one AXFR message (bytes of records); well under 64 KiB.
const AXFR_MESSAGE_BUDGET: usize = 16 * 1024;

#[derive(Clone)]
pub struct DnsHandler {
    pub mgr: Arc<ZoneManager>,
    pub axfr_allow: Vec<Cidr>,
    pub udp_max_payload: u16,
}

/// What goes into a response, as whole RRsets.
struct Sections<'a> {
    rcode: ResponseCode,
    aa: bool,
    answer: Vec<&'a Rrset>,
    authority: Vec<&'a Rrset>,
    additional: Vec<&'a Rrset>,
    /// Additional RRsets without which the answer is not usable (glue): TC when they do not fit.
    additional_required: bool,
}

impl<'a> Sections<'a> {
    fn empty(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            aa: false,
            answer: vec![],
            authority: vec![],
            additional: vec![],
            additional_required: false,
        }
    }
}

fn error_info(request: &Request, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> ResponseInfo {
        let dnssec = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let mut resp_edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(self.udp_max_payload);
            e.set_version(0);
            e.set_dnssec_ok(dnssec);
            e
        });

        let rcode_only = |rcode| Sections::empty(rcode);
        let sections = if request.metadata.op_code != OpCode::Query {
            rcode_only(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            rcode_only(ResponseCode::BADVERS)
        } else if request.queries.len() != 1 || request.metadata.message_type != MessageType::Query
        {
            rcode_only(ResponseCode::FormErr)
        } else {
            let q = &request.queries.queries()[0];
            let qtype = q.query_type();
            let qname: Name = Name::from(q.name().clone());
            if q.query_class() != DNSClass::IN {
                rcode_only(ResponseCode::Refused)
            } else if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
                return self
                    .transfer(request, handle, &qname, qtype, resp_edns.as_ref())
                    .await;
            } else if matches!(qtype, RecordType::OPT) || u16::from(qtype) == 0 {
                rcode_only(ResponseCode::FormErr)
            } else if matches!(u16::from(qtype), 128..=254) {
                // meta types other than AXFR/IXFR/ANY (MAILA, MAILB, TKEY, TSIG)
                rcode_only(ResponseCode::NotImp)
            } else {
                let catalog = self.mgr.catalog.load();
                return self
                    .answer(
                        request,
                        handle,
                        &catalog,
                        &qname,
                        qtype,
                        dnssec,
                        resp_edns.as_ref(),
                    )
                    .await;
            }
        };
        if sections.rcode == ResponseCode::BADVERS && resp_edns.is_none() {
            resp_edns = Some(Edns::new());
        }
        self.send(request, &mut handle, sections, dnssec, resp_edns.as_ref())
            .await
    }
}

impl DnsHandler {
    /// The UDP fast path: answers a query of the common shape (see [`parse_query`]) straight
    /// from the datagram into `out`, with the RRsets' pre-encoded bytes and no hickory message
    /// in between. False when the general path ([`RequestHandler::handle_request`]) must answer:
    /// unusual messages, classes, types and EDNS versions, and zone transfers.
    pub(crate) fn answer_udp(&self, msg: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(q) = parse_query(msg) else {
            return false;
        };
        // class IN; not 0, OPT, or a meta type (AXFR/IXFR included), which ANY is not
        if q.qclass != 1 || matches!(q.qtype, 0 | 41 | 128..=254) {
            return false;
        }
        if q.edns.is_some_and(|e| e.version > 0) {
            return false;
        }
        let qtype = RecordType::from(q.qtype);
        let dnssec = q.edns.is_some_and(|e| e.dnssec_ok);
        let limit = match q.edns {
            Some(e) => e.payload.max(512).min(self.udp_max_payload.max(512)),
            None => 512,
        } as usize;
        let opt = q.edns.map(|_| (self.udp_max_payload, dnssec));
        let mut kb = [0u8; KEY_MAX];
        let klen = q.canonical_key(&mut kb);
        let key = &kb[..klen];
        let catalog = self.mgr.catalog.load();
        let mut w = ResponseWriter::new(out, &q, limit, opt);
        // the zone, as `Catalog::find` chooses it (deepest first; DS at an apex: the parent),
        // comparing canonical keys instead of names
        let mut containing = catalog
            .zones
            .iter()
            .filter(|z| key.starts_with(z.origin_key()));
        let zone = match containing.next() {
            Some(first) if qtype == RecordType::DS && first.origin_key() == key => {
                containing.next().unwrap_or(first)
            }
            Some(first) => first,
            None => {
                w.finish(u16::from(ResponseCode::Refused), false, false);
                return true;
            }
        };
        let s = build_sections(zone, zone.lookup_wire(q.name_wire(), key, qtype), dnssec);
        // whole RRsets, in order; the first that does not fit ends the message with TC=1
        // (optional additional RRsets are skipped instead), as in `send`
        let mut tc = false;
        'outer: for (i, list) in [&s.answer, &s.authority, &s.additional]
            .into_iter()
            .enumerate()
        {
            for r in list {
                if !w.rrset(r.wire(), dnssec, i) && (i < 2 || s.additional_required) {
                    tc = true;
                    break 'outer;
                }
            }
        }
        if tc {
            w.clear_additional();
        }
        w.finish(u16::from(s.rcode), s.aa, tc);
        true
    }

    #[allow(clippy::too_many_arguments)]
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        catalog: &crate::zonemgr::Catalog,
        qname: &Name,
        qtype: RecordType,
        dnssec: bool,
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let Some(zone) = catalog.find(qname, qtype) else {
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::Refused),
                    dnssec,
                    edns,
                )
                .await;
        };
        let sections = build_sections(zone, zone.lookup(qname, qtype), dnssec);
        self.send(request, &mut handle, sections, dnssec, edns)
            .await
    }

    /// Size-limits the sections by whole RRsets and sends the response.
    async fn send<R: ResponseHandler>(
        &self,
        request: &Request,
        handle: &mut R,
        s: Sections<'_>,
        dnssec: bool,
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let limit = match request.protocol() {
            Protocol::Udp => match request.edns.as_ref() {
                Some(e) => e.max_payload().clamp(512, self.udp_max_payload),
                None => 512,
            },
            _ => u16::MAX,
        } as usize;
        let question = request.queries.as_bytes().len();
        let opt = if edns.is_some() { 11 } else { 0 };
        let budget = limit.saturating_sub(12 + question + opt);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = s.rcode;
        metadata.authoritative = s.aa;

        // Whole RRsets, in order: answer, authority, additional. The uncompressed size is an
        // upper bound; only when it exceeds the limit is the exact (compressed) size measured.
        let mut chosen: [Vec<&Rrset>; 3] = Default::default();
        let mut upper = 0usize;
        let mut truncated = false;
        let sections = [&s.answer, &s.authority, &s.additional];
        'outer: for (i, list) in sections.iter().enumerate() {
            for r in list.iter() {
                let len = r.len(dnssec);
                chosen[i].push(r);
                if upper + len <= budget {
                    upper += len;
                    continue;
                }
                if limit < u16::MAX as usize
                    && exact_len(request, metadata, &chosen, dnssec, edns) <= limit
                {
                    upper += len;
                    continue;
                }
                chosen[i].pop();
                if i < 2 || s.additional_required {
                    truncated = true;
                    break 'outer;
                }
            }
        }
        if truncated {
            // RFC 2181 9: a truncated answer carries no partial sections after the cut
            chosen[2].clear();
        }
        metadata.truncation = truncated;
        // UDP: our own encoder (it also compresses owner names against the question, which
        // hickory's response encoder does not); TCP: hickory's.
        if let Some(udp) = (handle as &mut dyn std::any::Any).downcast_mut::<crate::udp::UdpReply>()
        {
            return match encode(request, metadata, &chosen, dnssec, edns) {
                Ok(bytes) => {
                    udp.send_raw(&bytes).await;
                    ResponseInfo::from(Header {
                        metadata,
                        counts: HeaderCounts::default(),
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "encoding a response failed");
                    error_info(request, ResponseCode::ServFail)
                }
            };
        }
        let [answers, authorities, additionals] = &chosen;
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = edns {
            builder.edns(e);
        }
        let (an, ns, ad) = (
            records(answers, dnssec),
            records(authorities, dnssec),
            records(additionals, dnssec),
        );
        let response = builder.build(
            metadata,
            an.iter(),
            ns.iter(),
            std::iter::empty(),
            ad.iter(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending response failed");
                error_info(request, ResponseCode::ServFail)
            }
        }
    }

    fn transfer_allowed(&self, request: &Request) -> bool {
        let ip = request.src().ip();
        self.axfr_allow.iter().any(|c| c.contains(ip))
    }

    /// AXFR (and IXFR, answered with the whole zone, RFC 1995 4) over TCP, in as many messages
    /// as needed (RFC 5936 2.2). Over UDP: IXFR gets the SOA only (RFC 1995 2), AXFR NOTIMP.
    async fn transfer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        qname: &Name,
        qtype: RecordType,
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let catalog = self.mgr.catalog.load();
        let zone = catalog.zones.iter().find(|z| z.origin == *qname).cloned();
        let Some(zone) = zone else {
            let rcode = if catalog.find(qname, RecordType::SOA).is_some() {
                ResponseCode::NotAuth
            } else {
                ResponseCode::Refused
            };
            return self
                .send(request, &mut handle, Sections::empty(rcode), false, edns)
                .await;
        };
        if !self.transfer_allowed(request) {
            tracing::info!(zone = %zone.origin, src = %request.src(), "zone transfer refused");
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::Refused),
                    false,
                    edns,
                )
                .await;
        }
        let Some(soa) = zone.soa().cloned() else {
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::ServFail),
                    false,
                    edns,
                )
                .await;
        };
        if request.protocol() == Protocol::Udp {
            if qtype == RecordType::IXFR {
                let mut s = Sections::empty(ResponseCode::NoError);
                s.aa = true;
                s.answer.push(&soa);
                return self.send(request, &mut handle, s, false, edns).await;
            }
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::NotImp),
                    false,
                    edns,
                )
                .await;
        }
        tracing::info!(zone = %zone.origin, serial = zone.serial(), src = %request.src(), "zone transfer");
        // hickory-server writes a TCP connection's queued messages only between requests, so the
        // transfer runs in its own task and the connection task keeps draining the queue.
        let raw = request.as_slice().to_vec();
        let edns = edns.cloned();
        let meta = request.metadata;
        tokio::spawn(async move {
            let mut decoder = BinDecoder::new(&raw);
            let Ok(header) = Header::read(&mut decoder) else {
                return;
            };
            let Ok(queries) = Queries::read(&mut decoder, header.counts.queries as usize) else {
                return;
            };
            let mut batch: Vec<Record> = Vec::with_capacity(256);
            let mut size = 0usize;
            // opening SOA with its RRSIG, the rest of the zone, closing SOA without RRSIG
            let body = zone
                .records()
                .filter(|r| !(r.rtype == RecordType::SOA && r.name() == zone.origin));
            let parts = std::iter::once((&soa, true))
                .chain(body.map(|r| (r, true)))
                .chain(std::iter::once((&soa, false)));
            for (r, with_sigs) in parts {
                let len = r.len(with_sigs);
                if size + len > AXFR_MESSAGE_BUDGET && !batch.is_empty() {
                    if !send_records(&meta, &queries, &mut handle, &batch, edns.as_ref()).await {
                        return;
                    }
                    batch.clear();
                    size = 0;
                }
                size += len;
                batch.extend(r.records());
                if with_sigs {
                    batch.extend(r.rrsigs());
                }
            }
            send_records(&meta, &queries, &mut handle, &batch, edns.as_ref()).await;
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    }
}

/// The records of whole RRsets (with their RRSIGs when `dnssec`), decoded from the snapshot's
/// wire form (the general path only).
fn records(list: &[&Rrset], dnssec: bool) -> Vec<Record> {
    let mut out = Vec::new();
    for r in list {
        out.extend(r.records());
        if dnssec {
            out.extend(r.rrsigs());
        }
    }
    out
}

/// The exact encoded size of a response made of these RRsets.
fn exact_len(
    request: &Request,
    metadata: Metadata,
    chosen: &[Vec<&Rrset>; 3],
    dnssec: bool,
    edns: Option<&Edns>,
) -> usize {
    encode(request, metadata, chosen, dnssec, edns).map_or(usize::MAX, |b| b.len())
}

/// Encodes a response: header, the question as received (letter case kept), the RRsets with
/// name compression (owner names point into the question), OPT.
fn encode(
    request: &Request,
    metadata: Metadata,
    chosen: &[Vec<&Rrset>; 3],
    dnssec: bool,
    edns: Option<&Edns>,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    let place = enc.place::<Header>()?;
    let question = request.queries.as_bytes();
    enc.emit_vec(question)?;
    // compression targets: every label suffix of the question name (which ends 4 bytes before
    // the end of the question: type and class); ranges exclude the final zero octet
    if request.queries.len() == 1 && question.len() > 5 {
        let name_end = 12 + question.len() - 4 - 1;
        let mut i = 12;
        while i < name_end {
            enc.store_label_pointer(i, name_end);
            i += 1 + question[i - 12] as usize;
        }
    }
    let mut counts = [0u16; 3];
    for (i, list) in chosen.iter().enumerate() {
        for r in &records(list, dnssec) {
            r.emit(&mut enc)?;
            counts[i] += 1;
        }
    }
    if let Some(e) = edns {
        let mut e = e.clone();
        e.set_rcode_high(metadata.response_code.high());
        Record::from(&e).emit(&mut enc)?;
        counts[2] += 1;
    }
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries: request.queries.len() as u16,
            answers: counts[0],
            authorities: counts[1],
            additionals: counts[2],
        },
    };
    place.replace(&mut enc, header)?;
    Ok(buf)
}

/// Sends one message of a zone transfer; false when the transfer must stop.
async fn send_records<R: ResponseHandler>(
    request: &Metadata,
    queries: &Queries,
    handle: &mut R,
    records: &[Record],
    edns: Option<&Edns>,
) -> bool {
    let mut metadata = Metadata::response_from_request(request);
    metadata.authoritative = true;
    // the connection's queue is bounded and refuses when full: wait for it to drain
    // (bounded: about a minute per message) instead of aborting.
    for _ in 0..60_000 {
        let mut builder = MessageResponseBuilder::new(queries, None);
        if let Some(e) = edns {
            builder.edns(e);
        }
        let response = builder.build(
            metadata,
            records.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match handle.send_response(response).await {
            Ok(_) => return true,
            Err(e) if e.to_string().contains("full") => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Err(e) => {
                tracing::info!(error = %e, "zone transfer aborted");
                return false;
            }
        }
    }
    tracing::warn!("zone transfer aborted: the client does not read");
    false
}

/// Turns a zone lookup into response sections.
/// Without the DO bit, NSEC and DS records are left out of negative answers and referrals
/// (RFC 4035 3.1.3, 3.1.4).
fn build_sections<'z>(zone: &'z Zone, lookup: Lookup<'z>, dnssec: bool) -> Sections<'z> {
    let soa = zone.soa();
    let mut s = Sections::empty(ResponseCode::NoError);
    s.aa = true;
    match lookup {
        Lookup::Answer { answers } => s.answer = answers,
        Lookup::NoData { nsecs } => {
            s.authority.extend(soa);
            if dnssec {
                s.authority.extend(nsecs);
            }
        }
        Lookup::NxDomain { nsecs } => {
            s.rcode = ResponseCode::NXDomain;
            s.authority.extend(soa);
            if dnssec {
                s.authority.extend(nsecs);
            }
        }
        Lookup::Referral { ns, ds, nsec, glue } => {
            s.aa = false;
            s.authority.push(ns);
            if dnssec {
                s.authority.extend(ds);
                s.authority.extend(nsec);
            }
            s.additional_required = !glue.is_empty();
            s.additional = glue;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    //! The UDP fast path (`answer_udp`) against the general path (hickory's `Request`,
    //! `handle_request`, `encode`) for many query shapes.
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, TLSA, TXT};
    use hickory_proto::rr::RData;
    use hickory_server::net::runtime::TokioTime;
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
        DnsHandler {
            mgr: Arc::new(mgr),
            axfr_allow: vec![],
            udp_max_payload: 1232,
        }
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
        let reply = crate::udp::UdpReply::new(server, src);
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
                    let f =
                        fast(&h, &msg).unwrap_or_else(|| panic!("fast path for {name} {qtype}"));
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
}
