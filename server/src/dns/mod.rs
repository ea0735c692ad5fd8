//! The query path: hickory-server hands us each request; we answer from the current catalog
//! snapshot (one atomic load, no lock, no database), choose whole RRsets that fit the size
//! limit, and let hickory-proto encode the message.
//!
//! RFCs: 1034 4.3.2 (lookup), 4035 3.1 (DNSSEC in answers), 6891 (EDNS, BADVERS), 8482 (ANY),
//! 2181 9 / 4035 3.1 (truncation), 8945 (TSIG: a signed request is verified first and its
//! answer signed). Zone transfers (AXFR, IXFR) are dispatched to `crate::xfr`.

mod encode;
mod fast;
pub mod tcp;
#[cfg(test)]
mod tests;
pub mod udp;

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use zones::{Lookup, Rrset, RrsetList, Zone};

use crate::config::Config;
use crate::tsig::wire::{Refusal, Verified};
use crate::xfr::Xfr;
use crate::zonemgr::{Clock, SystemClock, ZoneManager};

#[derive(Clone)]
pub struct DnsHandler {
    pub mgr: Arc<ZoneManager>,
    /// Who may transfer what, the TSIG keys, the transfer slots.
    pub xfr: Arc<Xfr>,
    pub udp_max_payload: u16,
}

impl DnsHandler {
    /// The handler of a server: loads the secondaries' TSIG keys (a missing or bad key is an
    /// error that names it).
    pub fn new(mgr: Arc<ZoneManager>, config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            xfr: Arc::new(Xfr::from_config(config)?),
            mgr,
            udp_max_payload: config.udp_max_payload,
        })
    }
}

/// A bound on the log lines bad requests cause (anyone can send them): at most `BURST` per
/// 10 s window for each kind; the rest are counted and reported with the next line logged.
pub(crate) struct LogLimit {
    window: std::sync::atomic::AtomicU64,
    seen: std::sync::atomic::AtomicU64,
}

impl LogLimit {
    const BURST: u64 = 20;

    pub(crate) const fn new() -> Self {
        Self {
            window: std::sync::atomic::AtomicU64::new(0),
            seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(suppressed before)` when this one may be logged.
    pub(crate) fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let w = u64::from(SystemClock.now()) / 10;
        if self.window.swap(w, Relaxed) != w {
            let before = self.seen.swap(1, Relaxed);
            return Some(before.saturating_sub(Self::BURST));
        }
        let n = self.seen.fetch_add(1, Relaxed) + 1;
        (n <= Self::BURST).then_some(0)
    }
}

/// Sends an answer the handler encoded itself on one of our reply handles (UDP, TCP); false
/// when it could not be sent (another handle, or the connection failed).
pub(crate) async fn send_raw<R: ResponseHandler>(handle: &mut R, bytes: &[u8]) -> bool {
    let any = handle as &mut dyn std::any::Any;
    if let Some(udp) = any.downcast_mut::<udp::UdpReply>() {
        udp.send_raw(bytes).await;
        return true;
    }
    if let Some(tcp) = any.downcast_mut::<tcp::TcpReply>() {
        return tcp.send_raw(bytes).await.is_ok();
    }
    false
}

/// The header and question of a response to `request` with `rcode` and no records.
pub(crate) fn bare_response(request: &Request, rcode: ResponseCode) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries: request.queries.len() as u16,
            ..HeaderCounts::default()
        },
    };
    let mut out = Vec::with_capacity(64);
    {
        let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut out);
        let _ = hickory_proto::serialize::binary::BinEncodable::emit(&header, &mut enc);
    }
    out.extend_from_slice(request.queries.as_bytes());
    out
}

/// What goes into a response, as whole RRsets.
pub(crate) struct Sections<'a> {
    pub rcode: ResponseCode,
    pub aa: bool,
    /// Answer and authority are short lists kept inline: no heap block per query.
    pub answer: RrsetList<'a>,
    pub authority: RrsetList<'a>,
    pub additional: Vec<&'a Rrset>,
    /// Additional RRsets without which the answer is not usable (glue): TC when they do not fit.
    additional_required: bool,
}

impl<'a> Sections<'a> {
    pub fn empty(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            aa: false,
            answer: RrsetList::new(),
            authority: RrsetList::new(),
            additional: vec![],
            additional_required: false,
        }
    }
}

pub(crate) fn error_info(request: &Request, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    /// The general path (TCP, and UDP queries the fast path leaves): answers, then counts the
    /// answer (metrics).
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        let info = self.handle_general(request, handle).await;
        let transport = match request.protocol() {
            hickory_server::net::xfer::Protocol::Udp => crate::metrics::dns::Transport::Udp,
            _ => crate::metrics::dns::Transport::Tcp,
        };
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(0, |q| u16::from(q.query_type()));
        crate::metrics::dns::query(
            transport,
            u16::from(info.response_code),
            qtype,
            info.truncation,
        );
        info
    }
}

impl DnsHandler {
    async fn handle_general<R: ResponseHandler>(
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

        // a signed request is verified before anything else (RFC 8945 5.2)
        let tsig = if request.signature.is_some() {
            match crate::tsig::wire::verify_request(
                &self.xfr.keys,
                request.as_slice(),
                u64::from(SystemClock.now()),
            ) {
                Ok(v) => Some(v),
                Err(refusal) => return self.tsig_refusal(request, &mut handle, *refusal).await,
            }
        } else {
            None
        };
        let tsig = tsig.as_ref();
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
                    .transfer(request, handle, &qname, qtype, resp_edns.as_ref(), tsig)
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
                        tsig,
                    )
                    .await;
            }
        };
        if sections.rcode == ResponseCode::BADVERS && resp_edns.is_none() {
            resp_edns = Some(Edns::new());
        }
        self.send(
            request,
            &mut handle,
            sections,
            dnssec,
            resp_edns.as_ref(),
            tsig,
        )
        .await
    }
}

impl DnsHandler {
    /// The answer to a request whose TSIG does not verify: NOTAUTH with the TSIG error,
    /// unsigned for BADKEY and BADSIG, signed for BADTIME (with our time) and BADTRUNC
    /// (RFC 8945 5.2, 5.3.2); FORMERR for an unreadable TSIG.
    async fn tsig_refusal<R: ResponseHandler>(
        &self,
        request: &Request,
        handle: &mut R,
        refusal: Refusal,
    ) -> ResponseInfo {
        use crate::tsig::wire::{append_unsigned, Signer, BADKEY, BADSIG, BADTIME, BADTRUNC};
        let now = u64::from(SystemClock.now());
        let rcode = match refusal {
            Refusal::FormErr => ResponseCode::FormErr,
            _ => ResponseCode::NotAuth,
        };
        static LIMIT: LogLimit = LogLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            tracing::info!(
                src = %request.src(),
                key = refusal.key_name().unwrap_or_default(),
                error = refusal.code(),
                qname = request.queries.queries().first().map(|q| q.name().to_string()).unwrap_or_default(),
                suppressed,
                "TSIG refused"
            );
        }
        let mut out = bare_response(request, rcode);
        match refusal {
            Refusal::FormErr => {}
            Refusal::BadKey { name, algorithm } => {
                append_unsigned(&mut out, &name, &algorithm, now, BADKEY)
            }
            Refusal::BadSig { key } => {
                append_unsigned(&mut out, &key.name, &key.algorithm_name(), now, BADSIG)
            }
            Refusal::BadTime { key, mac, time } => {
                let mut ours = Vec::with_capacity(6);
                ours.extend_from_slice(&((now >> 32) as u16).to_be_bytes());
                ours.extend_from_slice(&(now as u32).to_be_bytes());
                Signer::response_to(key, mac).sign_with(&mut out, time, BADTIME, &ours);
            }
            Refusal::BadTrunc { key, mac } => {
                Signer::response_to(key, mac).sign_with(&mut out, now, BADTRUNC, &[]);
            }
        }
        send_raw(handle, &out).await;
        error_info(request, rcode)
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
        tsig: Option<&Verified>,
    ) -> ResponseInfo {
        let Some(zone) = catalog.find(qname, qtype) else {
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::Refused),
                    dnssec,
                    edns,
                    tsig,
                )
                .await;
        };
        let sections = build_sections(zone, zone.lookup(qname, qtype), dnssec);
        self.send(request, &mut handle, sections, dnssec, edns, tsig)
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
