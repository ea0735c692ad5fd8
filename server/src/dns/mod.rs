//! The query path: hickory-server hands us each request; we answer from the current catalog
//! snapshot (one atomic load, no lock, no database), choose whole RRsets that fit the size
//! limit, and let hickory-proto encode the message.
//!
//! RFCs: 1034 4.3.2 (lookup), 4035 3.1 (DNSSEC in answers), 6891 (EDNS, BADVERS), 8482 (ANY),
//! 2181 9 / 4035 3.1 (truncation), 5936 (AXFR), 1995 (IXFR: answered with the full zone).

mod encode;
mod fast;
#[cfg(test)]
mod tests;
mod transfer;
pub mod udp;

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use zones::{Lookup, Rrset, Zone};

use crate::config::Cidr;
use crate::zonemgr::ZoneManager;

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
