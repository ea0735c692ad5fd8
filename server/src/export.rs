//! The signed zone in RFC 1035 presentation format: what `mxdns zone export ZONE` writes and
//! `GET /v1/zones/{zone}/export` answers (admin), from the published snapshot (no lock, no
//! store): the SOA first, then every RRset with its RRSIGs and every NSEC in canonical order,
//! then the glue; one record per line, absolute names (what `ldns-verify-zone` and the
//! secondaries' zone file parsers read).

use std::fmt::Write;

use hickory_proto::rr::RecordType;
use zones::{Rrset, Zone};

pub fn presentation(zone: &Zone) -> String {
    let mut out = String::with_capacity(zone.len() * 256);
    let _ = writeln!(
        out,
        "; {} serial {} exported by mxdns {}",
        zone.origin,
        zone.serial(),
        env!("CARGO_PKG_VERSION")
    );
    let rrset = |out: &mut String, r: &Rrset| {
        for rec in r.records().iter().chain(r.rrsigs().iter()) {
            let _ = writeln!(out, "{rec}");
        }
    };
    if let Some(soa) = zone.soa() {
        rrset(&mut out, soa);
    }
    for r in zone.records() {
        if r.rtype == RecordType::SOA && r.name() == zone.origin {
            continue;
        }
        rrset(&mut out, r);
    }
    out
}
