//! Answering one question from one zone snapshot (RFC 1034 4.3.2, RFC 4035 3.1).
//!
//! The result names RRsets by reference; the server decides what goes on the wire (RRSIGs when
//! the DO bit is set, truncation by whole RRsets).

use hickory_proto::rr::{Name, RData, RecordType};

use crate::rrset::Rrset;
use crate::zone::{canonical_key, Zone, KEY_MAX};

/// Most RRsets a [`RrsetList`] holds: a CNAME chain (at most 8 links are followed) and its
/// target, or the SOA and the NSECs of a denial.
pub const LIST_MAX: usize = 10;

/// A short list of RRsets kept inline (no heap block per query, as a `Vec` was: one or two
/// allocations of each answer, two for a CNAME chased to its target).
#[derive(Clone, Copy)]
pub struct RrsetList<'z> {
    len: u8,
    items: [Option<&'z Rrset>; LIST_MAX],
}

impl<'z> RrsetList<'z> {
    pub const fn new() -> Self {
        Self {
            len: 0,
            items: [None; LIST_MAX],
        }
    }

    /// A list of one RRset.
    pub fn one(r: &'z Rrset) -> Self {
        let mut l = Self::new();
        l.push(r);
        l
    }

    /// Appends `r`; false (and nothing changes) when the list is full.
    pub fn push(&mut self, r: &'z Rrset) -> bool {
        let Some(slot) = self.items.get_mut(self.len as usize) else {
            return false;
        };
        *slot = Some(r);
        self.len += 1;
        true
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&'z Rrset> {
        if i < self.len as usize {
            self.items[i]
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'z Rrset> + '_ {
        self.items[..self.len as usize].iter().flatten().copied()
    }

    pub fn contains(&self, r: &Rrset) -> bool {
        self.iter().any(|x| std::ptr::eq(x, r))
    }

    pub fn to_vec(&self) -> Vec<&'z Rrset> {
        self.iter().collect()
    }
}

impl Default for RrsetList<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'z> Extend<&'z Rrset> for RrsetList<'z> {
    fn extend<I: IntoIterator<Item = &'z Rrset>>(&mut self, it: I) {
        for r in it {
            if !self.push(r) {
                return;
            }
        }
    }
}

impl<'z> FromIterator<&'z Rrset> for RrsetList<'z> {
    fn from_iter<I: IntoIterator<Item = &'z Rrset>>(it: I) -> Self {
        let mut l = Self::new();
        l.extend(it);
        l
    }
}

impl<'z> IntoIterator for RrsetList<'z> {
    type Item = &'z Rrset;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<&'z Rrset>, LIST_MAX>>;
    /// The RRsets in order (the slots after the last are empty).
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().flatten()
    }
}

impl std::ops::Index<usize> for RrsetList<'_> {
    type Output = Rrset;
    fn index(&self, i: usize) -> &Rrset {
        self.get(i).expect("index inside the list")
    }
}

impl std::fmt::Debug for RrsetList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What a zone says about (qname, qtype).
#[derive(Debug)]
pub enum Lookup<'z> {
    /// Authoritative data: the answer RRsets (a CNAME and what it leads to inside the zone).
    Answer { answers: RrsetList<'z> },
    /// The name exists without the type: SOA plus the NSEC records that prove it.
    NoData { nsecs: RrsetList<'z> },
    /// The name does not exist: SOA plus the NSECs covering the name and the wildcard.
    NxDomain { nsecs: RrsetList<'z> },
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
            return Lookup::NxDomain {
                nsecs: RrsetList::new(),
            };
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
                    answers: RrsetList::one(first),
                };
            }
        }
        if let Some(r) = node.get(qtype) {
            return Lookup::Answer {
                answers: RrsetList::one(r),
            };
        }
        if let Some(cname) = node.get(RecordType::CNAME) {
            let mut answers = RrsetList::one(cname);
            self.chase(cname, qtype, &mut answers);
            return Lookup::Answer { answers };
        }
        Lookup::NoData {
            nsecs: node.nsec.iter().collect(),
        }
    }

    /// Follows a CNAME chain inside the zone (bounded), adding what it finds.
    fn chase<'z>(&'z self, mut cname: &'z Rrset, qtype: RecordType, out: &mut RrsetList<'z>) {
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
                Some(next) if !out.contains(next) => {
                    if !out.push(next) {
                        return;
                    }
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
        let mut nsecs = RrsetList::new();
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
                if !nsecs.contains(w) {
                    nsecs.push(w);
                }
            }
        }
        Lookup::NxDomain { nsecs }
    }
}
