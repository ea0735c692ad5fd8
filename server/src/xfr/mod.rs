//! Zone transfers out: mxdns as the (hidden) primary of standard secondaries.
//!
//! - `axfr`: the whole zone (RFC 5936), in messages of at most 16 KiB of records;
//! - `ixfr`: the difference from the secondary's serial (RFC 1995), condensed, from the
//!   `journal` of recent snapshots; a full transfer when the serial is not in it;
//! - `notify`: NOTIFY (RFC 1996) to every secondary on every new serial, coalesced;
//! - `message`: the messages of a transfer, each TSIG-signed when the request was.
//!
//! Who may transfer (checked before anything is sent): a request with a valid TSIG of a
//! configured secondary whose `allow` holds the source, or one without TSIG from `axfr_allow`
//! (operators' tools). Anything else is refused (REFUSED; a TSIG that does not verify gets
//! NOTAUTH with its TSIG error, see `dns`), logged, and nothing is transferred.

mod axfr;
mod ixfr;
pub mod journal;
mod message;
pub mod notify;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use tokio::sync::Semaphore;

use crate::config::{Cidr, Config};
use crate::dns::tcp::TcpReply;
use crate::dns::{DnsHandler, Sections};
use crate::tsig::wire::Verified;
use crate::tsig::{Key, KeyRing};

pub use journal::Journal;

/// A configured secondary with its key loaded.
#[derive(Debug, Clone)]
pub struct Secondary {
    pub name: String,
    pub address: SocketAddr,
    pub allow: Vec<Cidr>,
    pub key: Arc<Key>,
}

/// The transfer policy, the TSIG keys the server knows, and the transfer slots.
#[derive(Debug)]
pub struct Xfr {
    pub axfr_allow: Vec<Cidr>,
    pub secondaries: Vec<Secondary>,
    pub keys: KeyRing,
    slots: Arc<Semaphore>,
}

impl Xfr {
    /// Loads the secondaries' keys from `<data-dir>/tsig/`; a missing or unreadable key is an
    /// error naming the secondary and the command that makes it.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut keys: Vec<Arc<Key>> = Vec::new();
        let mut secondaries = Vec::new();
        for s in config.secondary_list()? {
            let key = match keys.iter().find(|k| k.name == s.key) {
                Some(k) => k.clone(),
                None => {
                    let k = crate::tsig::load(&config.data_dir, &s.key.to_ascii())
                        .with_context(|| format!("secondary {:?}", s.name))?;
                    let k = Arc::new(k);
                    keys.push(k.clone());
                    k
                }
            };
            secondaries.push(Secondary {
                name: s.name,
                address: s.address,
                allow: s.allow,
                key,
            });
        }
        Ok(Self {
            axfr_allow: config.axfr_networks()?,
            secondaries,
            keys: KeyRing::new(keys),
            slots: Arc::new(Semaphore::new(config.xfr_max_concurrent.max(1))),
        })
    }

    /// Whether `src` may transfer with this TSIG (or none): `Ok(who)` for the logs, or why not.
    fn allowed(&self, src: IpAddr, tsig: Option<&Verified>) -> Result<String, &'static str> {
        match tsig {
            Some(v) => {
                let mut of_key = self
                    .secondaries
                    .iter()
                    .filter(|s| Arc::ptr_eq(&s.key, &v.key))
                    .peekable();
                if of_key.peek().is_none() {
                    return Err("the key is not a secondary's");
                }
                of_key
                    .find(|s| s.allow.iter().any(|c| c.contains(src)))
                    .map(|s| s.name.clone())
                    .ok_or("the source is not in the allow list of the key's secondary")
            }
            None => {
                if self.axfr_allow.iter().any(|c| c.contains(src)) {
                    Ok("axfr_allow".into())
                } else if self
                    .secondaries
                    .iter()
                    .any(|s| s.allow.iter().any(|c| c.contains(src)))
                {
                    Err("no TSIG (secondaries must sign)")
                } else {
                    Err("no TSIG and the source is not in axfr_allow")
                }
            }
        }
    }
}

/// What a transfer sent, for the log.
#[derive(Debug, Default)]
struct Sent {
    kind: &'static str,
    from_serial: Option<u32>,
}

impl DnsHandler {
    /// AXFR and IXFR. Over UDP: IXFR gets the current SOA only (RFC 1995 2), AXFR NOTIMP
    /// (RFC 5936 4.2 permits TCP only). Over TCP: the transfer, in as many messages as needed.
    pub(crate) async fn transfer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        qname: &Name,
        qtype: RecordType,
        edns: Option<&Edns>,
        tsig: Option<&Verified>,
    ) -> ResponseInfo {
        let catalog = self.mgr.catalog.load();
        let Some(zone) = catalog.get(qname).cloned() else {
            let rcode = if catalog.find(qname, RecordType::SOA).is_some() {
                ResponseCode::NotAuth
            } else {
                ResponseCode::Refused
            };
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(rcode),
                    false,
                    edns,
                    tsig,
                )
                .await;
        };
        let src = request.src();
        let key = tsig.map(|v| v.key.name.to_ascii()).unwrap_or_default();
        let who = match self.xfr.allowed(src.ip(), tsig) {
            Ok(w) => w,
            Err(why) => {
                static LIMIT: crate::dns::LogLimit = crate::dns::LogLimit::new();
                if let Some(suppressed) = LIMIT.allow() {
                    tracing::warn!(zone = %zone.origin, %src, key, reason = why, kind = %qtype, suppressed, "zone transfer refused");
                }
                return self
                    .send(
                        request,
                        &mut handle,
                        Sections::empty(ResponseCode::Refused),
                        false,
                        edns,
                        tsig,
                    )
                    .await;
            }
        };
        let Some(soa) = zone.soa() else {
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::ServFail),
                    false,
                    edns,
                    tsig,
                )
                .await;
        };
        if request.protocol() == Protocol::Udp {
            if qtype == RecordType::IXFR {
                let mut s = Sections::empty(ResponseCode::NoError);
                s.aa = true;
                s.answer.push(soa);
                return self.send(request, &mut handle, s, false, edns, tsig).await;
            }
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::NotImp),
                    false,
                    edns,
                    tsig,
                )
                .await;
        }
        // the client's serial (RFC 1995 3: the SOA in the authority section)
        let client_serial = match qtype {
            RecordType::IXFR => {
                let serial = request.authorities.iter().find_map(|r| match &r.data {
                    hickory_proto::rr::RData::SOA(s) if r.name == zone.origin => Some(s.serial),
                    _ => None,
                });
                match serial {
                    Some(s) => Some(s),
                    None => {
                        return self
                            .send(
                                request,
                                &mut handle,
                                Sections::empty(ResponseCode::FormErr),
                                false,
                                edns,
                                tsig,
                            )
                            .await
                    }
                }
            }
            _ => None,
        };
        let Ok(_slot) = self.xfr.slots.clone().try_acquire_owned() else {
            tracing::warn!(zone = %zone.origin, %src, secondary = who, "zone transfer refused: xfr_max_concurrent transfers running");
            return self
                .send(
                    request,
                    &mut handle,
                    Sections::empty(ResponseCode::Refused),
                    false,
                    edns,
                    tsig,
                )
                .await;
        };
        let Some(tcp) = (&mut handle as &mut dyn std::any::Any)
            .downcast_mut::<TcpReply>()
            .cloned()
        else {
            return crate::dns::error_info(request, ResponseCode::ServFail);
        };
        let t0 = Instant::now();
        let mut out = message::Out::new(request, tcp, edns, tsig);
        let result = match client_serial {
            None => axfr::send(&mut out, &zone).await.map(|_| Sent {
                kind: "AXFR",
                ..Sent::default()
            }),
            Some(s) => ixfr::send(&mut out, &zone, &self.mgr.journal, s).await,
        };
        let (messages, records, bytes) = out.counts();
        if result.is_ok() && who != "axfr_allow" {
            crate::metrics::secondaries::transferred(
                &zone.origin.to_ascii(),
                &who,
                zone.serial(),
                client_serial,
                u64::from(self.mgr.now()),
            );
        }
        match result {
            Ok(sent) => tracing::info!(
                zone = %zone.origin,
                serial = zone.serial(),
                from_serial = sent.from_serial,
                kind = sent.kind,
                records,
                messages,
                bytes,
                ms = t0.elapsed().as_millis() as u64,
                %src,
                key,
                secondary = who,
                "zone transfer"
            ),
            Err(e) => {
                tracing::info!(zone = %zone.origin, %src, key, records, error = %e, "zone transfer aborted")
            }
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    }
}
