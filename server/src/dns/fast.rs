//! The UDP fast path: a query of the common shape is parsed straight from the datagram and
//! answered from the RRsets' pre-encoded bytes, with no hickory message in between.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use zones::wire::{parse_query, ResponseWriter};
use zones::zone::KEY_MAX;

use super::{build_sections, DnsHandler};
use crate::metrics::dns::Transport;

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
                let rcode = u16::from(ResponseCode::Refused);
                crate::metrics::dns::query(Transport::Udp, rcode, q.qtype, false);
                w.finish(rcode, false, false);
                return true;
            }
        };
        let s = build_sections(zone, zone.lookup_wire(q.name_wire(), key, qtype), dnssec);
        // whole RRsets, in order; the first that does not fit ends the message with TC=1
        // (optional additional RRsets are skipped instead), as in `send`
        let mut tc = false;
        let all = (s.answer.iter().map(|r| (0, r)))
            .chain(s.authority.iter().map(|r| (1, r)))
            .chain(s.additional.iter().map(|r| (2, *r)));
        for (i, r) in all {
            if !w.rrset(r.wire(), dnssec, i) && (i < 2 || s.additional_required) {
                tc = true;
                break;
            }
        }
        if tc {
            w.clear_additional();
        }
        let rcode = u16::from(s.rcode);
        crate::metrics::dns::query(Transport::Udp, rcode, q.qtype, tc);
        w.finish(rcode, s.aa, tc);
        true
    }
}
