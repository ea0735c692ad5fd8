//! Zone transfers: AXFR (and IXFR, answered with the whole zone, RFC 1995 4) over TCP.

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use super::{DnsHandler, Sections};

/// Budget of one AXFR message (bytes of records); well under 64 KiB.
const AXFR_MESSAGE_BUDGET: usize = 16 * 1024;

impl DnsHandler {
    fn transfer_allowed(&self, request: &Request) -> bool {
        let ip = request.src().ip();
        self.axfr_allow.iter().any(|c| c.contains(ip))
    }

    /// AXFR (and IXFR, answered with the whole zone, RFC 1995 4) over TCP, in as many messages
    /// as needed (RFC 5936 2.2). Over UDP: IXFR gets the SOA only (RFC 1995 2), AXFR NOTIMP.
    pub(super) async fn transfer<R: ResponseHandler>(
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
