//! Answering one question from one zone snapshot (RFC 1034 4.3.2, RFC 4035 3.1).
//!
//! The result names RRsets by reference; the server decides what goes on the wire (RRSIGs when
//! the DO bit is set, truncation by whole RRsets).

use hickory_proto::rr::{Name, RData, RecordType};

use crate::rrset::Rrset;
use crate::zone::{canonical_key, Zone, KEY_MAX};

/// What a zone says about (qname, qtype).
#[derive(Debug)]
pub enum Lookup<'z> {
    /// Authoritative data: the answer RRsets (a CNAME and what it leads to inside the zone).
    Answer { answers: Vec<&'z Rrset> },
    /// The name exists without the type: SOA plus the NSEC records that prove it.
    NoData { nsecs: Vec<&'z Rrset> },
    /// The name does not exist: SOA plus the NSECs covering the name and the wildcard.
    NxDomain { nsecs: Vec<&'z Rrset> },
    /// The name is at or below a zone cut: NS, DS (or the NSEC proving there is none), glue.
    Referral {
        ns: &'z Rrset,
        ds: Option<&'z Rrset>,
        nsec: Option<&'z Rrset>,
        glue: Vec<&'z Rrset>,
    },
}

impl Zone {
    /// Looks up `qname` (lower case, inside this zone) and `qtype`. `RecordType::ANY` answers
    /// with one RRset of the name (RFC 8482 4.1).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup<'_> {
        // Delegations first: at or below a cut the parent is not authoritative, except for DS
        // at the cut itself (RFC 4035 3.1.4.1).
        if let Some(cut) = self.cut_above(qname) {
            if !(cut == *qname && qtype == RecordType::DS) {
                return self.referral(&cut);
            }
        }
        let mut kb = [0u8; KEY_MAX];
        let len = canonical_key(qname, &mut kb);
        self.lookup_below_cuts(&kb[..len], qtype)
    }

    /// [`Zone::lookup`] for a name given by its lower-case uncompressed wire form and its
    /// [`canonical_key`] (the UDP fast path's: no `Name` is built unless the zone has cuts).
    pub fn lookup_wire(&self, wire: &[u8], key: &[u8], qtype: RecordType) -> Lookup<'_> {
        if !self.cuts.is_empty() {
            let mut d = hickory_proto::serialize::binary::BinDecoder::new(wire);
            if let Ok(qname) =
                <Name as hickory_proto::serialize::binary::BinDecodable>::read(&mut d)
            {
                return self.lookup(&qname, qtype);
            }
        }
        self.lookup_below_cuts(key, qtype)
    }

    /// The lookup of a name that is not at or below a zone cut (DS at a cut excepted).
    fn lookup_below_cuts(&self, key: &[u8], qtype: RecordType) -> Lookup<'_> {
        if !key.starts_with(self.origin_key()) {
            // not in this zone (callers ask only for names inside it)
            return Lookup::NxDomain { nsecs: Vec::new() };
        }
        let Some(node) = self.node_by_key(key) else {
            if self.key_exists(key) {
                // empty non-terminal: the NSEC before it proves there is nothing here
                return Lookup::NoData {
                    nsecs: self
                        .covering_key(key)
                        .and_then(|n| n.nsec.as_ref())
                        .into_iter()
                        .collect(),
                };
            }
            return self.nxdomain(key);
        };
        if qtype == RecordType::ANY {
            if let Some(first) = node.rrsets.first() {
                return Lookup::Answer {
                    answers: vec![first],
                };
            }
        }
        if let Some(r) = node.get(qtype) {
            return Lookup::Answer { answers: vec![r] };
        }
        if let Some(cname) = node.get(RecordType::CNAME) {
            let mut answers = vec![cname];
            self.chase(cname, qtype, &mut answers);
            return Lookup::Answer { answers };
        }
        Lookup::NoData {
            nsecs: node.nsec.iter().collect(),
        }
    }

    /// Follows a CNAME chain inside the zone (bounded), adding what it finds.
    fn chase<'z>(&'z self, mut cname: &'z Rrset, qtype: RecordType, out: &mut Vec<&'z Rrset>) {
        let mut kb = [0u8; KEY_MAX];
        for _ in 0..8 {
            // the target's key straight from the pre-encoded RDATA (no decoding per query)
            let Some(target) = cname.wire().first_rdata_name() else {
                return;
            };
            let Some(len) = crate::wire::wire_canonical_key(target, &mut kb) else {
                return;
            };
            let key = &kb[..len];
            if !key.starts_with(self.origin_key()) {
                return;
            }
            if !self.cuts.is_empty() {
                let mut d = hickory_proto::serialize::binary::BinDecoder::new(target);
                let below_cut =
                    <Name as hickory_proto::serialize::binary::BinDecodable>::read(&mut d)
                        .map_or(true, |t| self.cut_above(&t).is_some());
                if below_cut {
                    return;
                }
            }
            let Some(node) = self.node_by_key(key) else {
                return;
            };
            if let Some(r) = node.get(qtype) {
                out.push(r);
                return;
            }
            match node.get(RecordType::CNAME) {
                Some(next) if !out.iter().any(|r| std::ptr::eq(*r, next)) => {
                    out.push(next);
                    cname = next;
                }
                _ => return,
            }
        }
    }

    fn referral(&self, cut: &Name) -> Lookup<'_> {
        let node = self.node(cut).expect("cuts are nodes");
        let ns = node.get(RecordType::NS).expect("cuts have NS");
        let ds = node.get(RecordType::DS);
        let nsec = if ds.is_none() {
            node.nsec.as_ref()
        } else {
            None
        };
        let mut glue = Vec::new();
        for d in ns.data() {
            if let RData::NS(target) = d {
                let target = target.0.to_lowercase();
                if let Some(g) = self.glue.get(&target).or_else(|| self.node(&target)) {
                    glue.extend(g.get(RecordType::A));
                    glue.extend(g.get(RecordType::AAAA));
                }
            }
        }
        Lookup::Referral { ns, ds, nsec, glue }
    }

    /// `key`: the canonical key of a name that does not exist.
    fn nxdomain(&self, key: &[u8]) -> Lookup<'_> {
        let mut nsecs: Vec<&Rrset> = Vec::with_capacity(2);
        if let Some(n) = self.covering_key(key) {
            nsecs.extend(n.nsec.as_ref());
        }
        // closest encloser: the longest existing ancestor; its wildcard must be denied too.
        // An ancestor's key is a prefix of the key ending after a 0x00 label end.
        let parent = |k: &[u8]| -> usize {
            k[..k.len().saturating_sub(1)]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |i| i + 1)
        };
        let origin_labels = self.origin.num_labels() as usize;
        let mut end = parent(key);
        let mut labels = key[..end].iter().filter(|&&b| b == 0).count();
        while labels > origin_labels && !self.key_exists(&key[..end]) {
            end = parent(&key[..end]);
            labels -= 1;
        }
        let mut wild = [0u8; KEY_MAX + 2];
        wild[..end].copy_from_slice(&key[..end]);
        wild[end] = b'*';
        wild[end + 1] = 0;
        if let Some(n) = self.covering_key(&wild[..end + 2]) {
            if let Some(w) = n.nsec.as_ref() {
                if !nsecs.iter().any(|x| std::ptr::eq(*x, w)) {
                    nsecs.push(w);
                }
            }
        }
        Lookup::NxDomain { nsecs }
    }
}
