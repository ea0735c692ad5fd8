//! The general path's answer: whole RRsets chosen to fit the size limit, then encoded by our
//! encoder (it compresses owner names against the question) and TSIG-signed when the request
//! was; hickory's encoder only for other reply handles (none in the server).

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use zones::Rrset;

use super::{error_info, DnsHandler, Sections};
use crate::tsig::wire::{Signer, Verified};
use crate::zonemgr::{Clock, SystemClock};

impl DnsHandler {
    /// Size-limits the sections by whole RRsets and sends the response, signed with the
    /// request's TSIG key when it had one.
    pub(crate) async fn send<R: ResponseHandler>(
        &self,
        request: &Request,
        handle: &mut R,
        s: Sections<'_>,
        dnssec: bool,
        edns: Option<&Edns>,
        tsig: Option<&Verified>,
    ) -> ResponseInfo {
        let mut signer = tsig.map(Signer::response);
        let room = signer.as_ref().map_or(0, |s| s.rr_len());
        let limit = match request.protocol() {
            Protocol::Udp => match request.edns.as_ref() {
                Some(e) => e.max_payload().clamp(512, self.udp_max_payload),
                None => 512,
            },
            _ => u16::MAX,
        } as usize
            - room;
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
        let (answer, authority) = (s.answer.to_vec(), s.authority.to_vec());
        let sections = [&answer, &authority, &s.additional];
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
        // our own encoder (it also compresses owner names against the question, which
        // hickory's response encoder does not), then the TSIG
        let ours = {
            let any = handle as &mut dyn std::any::Any;
            any.is::<super::udp::UdpReply>() || any.is::<super::tcp::TcpReply>()
        };
        if ours {
            return match encode(request, metadata, &chosen, dnssec, edns) {
                Ok(mut bytes) => {
                    if let Some(s) = signer.as_mut() {
                        s.sign(&mut bytes, u64::from(SystemClock.now()));
                    }
                    super::send_raw(handle, &bytes).await;
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
