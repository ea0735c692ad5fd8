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
    answer: Vec<&'a Arc<Rrset>>,
    authority: Vec<&'a Arc<Rrset>>,
    additional: Vec<&'a Arc<Rrset>>,
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
        let sections = build_sections(zone, qname, qtype, dnssec);
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
        let mut chosen: [Vec<&Arc<Rrset>>; 3] = Default::default();
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
        let response = builder.build(
            metadata,
            records(answers, dnssec),
            records(authorities, dnssec),
            std::iter::empty(),
            records(additionals, dnssec),
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
                .filter(|r| !(r.rtype == RecordType::SOA && r.name == zone.origin));
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
                batch.extend(r.records.iter().cloned());
                if with_sigs {
                    batch.extend(r.rrsigs.iter().cloned());
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

/// The records of whole RRsets (with their RRSIGs when `dnssec`), borrowed from the snapshot.
fn records<'a>(
    list: &'a [&'a Arc<Rrset>],
    dnssec: bool,
) -> impl Iterator<Item = &'a Record> + Send + 'a {
    list.iter().flat_map(move |r| {
        let sigs: &[Record] = if dnssec { &r.rrsigs } else { &[] };
        r.records.iter().chain(sigs.iter())
    })
}

/// The exact encoded size of a response made of these RRsets.
fn exact_len(
    request: &Request,
    metadata: Metadata,
    chosen: &[Vec<&Arc<Rrset>>; 3],
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
    chosen: &[Vec<&Arc<Rrset>>; 3],
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
        for r in records(list, dnssec) {
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
fn build_sections<'z>(
    zone: &'z Zone,
    qname: &Name,
    qtype: RecordType,
    dnssec: bool,
) -> Sections<'z> {
    let soa = zone.soa();
    let mut s = Sections::empty(ResponseCode::NoError);
    s.aa = true;
    match zone.lookup(qname, qtype) {
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
