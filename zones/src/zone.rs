//! The immutable signed zone snapshot and incremental changes to it.
//!
//! A [`Zone`] is a persistent (structurally shared) ordered map from owner name, in canonical
//! order (RFC 4034 6.1), to a [`Node`]. Cloning it is O(1); [`Zone::apply`] makes a new
//! snapshot that shares everything it did not touch with the old one, so one change costs
//! O(k log n) for k touched names, never O(n). Readers hold an `Arc<Zone>` and never wait.
//!
//! Denial of existence is NSEC (RFC 4034 4, RFC 4035 2.3): every authoritative name (and every
//! delegation point) owns one NSEC whose next name is its successor in canonical order, the last
//! one pointing back at the apex. Names below a zone cut (glue) are kept apart in `glue`: not in
//! the NSEC chain and never signed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use imbl::OrdMap;

use crate::rrset::Rrset;

/// Produces RRSIG records over an RRset. The implementation decides which keys sign which type
/// (KSK for DNSKEY/CDS/CDNSKEY, ZSK otherwise) and the validity window (its own `now`).
pub trait RrsetSigner: Sync {
    fn sign(&self, rrset: &Rrset) -> Result<Vec<Record>, String>;
}

/// Everything at one owner name.
///
/// `Eq` lets `Arc<Node>` compare by pointer first, so that diffing two snapshots
/// ([`Zone::changed_nodes`](crate::diff)) skips shared nodes without reading them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Sorted by type code; never empty inside a zone (except transiently in `apply`). A boxed
    /// slice, not a `Vec`: no spare capacity and 8 bytes less in every node (two million nodes
    /// at a million hosts).
    pub rrsets: Box<[Rrset]>,
    /// The NSEC RRset of this name (signed); `None` only in glue or before the chain is built.
    pub nsec: Option<Rrset>,
    /// The type codes of the first `TYPES` RRsets, kept by `put` and `remove`, so that `get`
    /// reads the node's own memory instead of each RRset's (a cache miss each in big zones).
    types: [u16; TYPES],
}

/// How many type codes a [`Node`] keeps inline.
const TYPES: usize = 6;

impl Node {
    /// A node of these RRsets (sorted by type code) and NSEC.
    pub(crate) fn from_parts(rrsets: Vec<Rrset>, nsec: Option<Rrset>) -> Self {
        let mut n = Node {
            rrsets: rrsets.into_boxed_slice(),
            nsec,
            types: [0; TYPES],
        };
        n.sync_types();
        n
    }

    pub fn get(&self, rtype: RecordType) -> Option<&Rrset> {
        let t = u16::from(rtype);
        let n = self.rrsets.len();
        debug_assert!(self.types_consistent());
        if n <= TYPES {
            return self.types[..n]
                .iter()
                .position(|&x| x == t)
                .map(|i| &self.rrsets[i]);
        }
        self.rrsets
            .binary_search_by_key(&t, |r| u16::from(r.rtype))
            .ok()
            .map(|i| &self.rrsets[i])
    }

    /// The inline type codes match `rrsets` (`rrsets` is changed only by `put` and `remove`).
    fn types_consistent(&self) -> bool {
        self.rrsets
            .iter()
            .zip(self.types.iter())
            .all(|(r, &t)| u16::from(r.rtype) == t)
    }

    fn sync_types(&mut self) {
        self.types = [0; TYPES];
        for (t, r) in self.types.iter_mut().zip(self.rrsets.iter()) {
            *t = u16::from(r.rtype);
        }
    }

    fn put(&mut self, rrset: Rrset) {
        match self
            .rrsets
            .binary_search_by_key(&u16::from(rrset.rtype), |r| u16::from(r.rtype))
        {
            Ok(i) => self.rrsets[i] = rrset,
            Err(i) => {
                let mut v = std::mem::take(&mut self.rrsets).into_vec();
                v.insert(i, rrset);
                self.rrsets = v.into_boxed_slice();
            }
        }
        self.sync_types();
    }

    fn remove(&mut self, rtype: RecordType) {
        if let Ok(i) = self
            .rrsets
            .binary_search_by_key(&u16::from(rtype), |r| u16::from(r.rtype))
        {
            let mut v = std::mem::take(&mut self.rrsets).into_vec();
            v.remove(i);
            self.rrsets = v.into_boxed_slice();
        }
        self.sync_types();
    }

    /// The types an NSEC at this name lists.
    fn nsec_types(&self) -> Vec<RecordType> {
        let mut t: Vec<RecordType> = self.rrsets.iter().map(|r| r.rtype).collect();
        t.push(RecordType::NSEC);
        t.push(RecordType::RRSIG);
        t
    }

    /// A delegation point: has NS and is not the apex.
    pub fn is_cut(&self, is_apex: bool) -> bool {
        !is_apex && self.get(RecordType::NS).is_some()
    }
}

/// One change to a zone's content.
#[derive(Debug, Clone)]
pub enum Change {
    /// Replace the RRset of this type at this name (create the name if needed).
    Put(Rrset),
    /// Remove the RRset of this type at this name (the name goes when it has nothing left).
    Delete(Name, RecordType),
    /// Remove every RRset at this name.
    DeleteName(Name),
    /// Sign the RRset again (fresh validity window, current keys). NSEC is accepted too.
    Resign(Name, RecordType),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZoneError {
    #[error("{0} is not inside zone {1}")]
    OutOfZone(String, String),
    #[error("wildcard owner names are not served: {0}")]
    Wildcard(String),
    #[error("{0} is not allowed here: {1}")]
    NotAllowed(String, &'static str),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// An immutable, signed zone snapshot.
#[derive(Debug, Clone)]
pub struct Zone {
    pub origin: Name,
    /// Names below zone cuts (glue addresses): unsigned, not in the NSEC chain.
    pub glue: OrdMap<Name, Arc<Node>>,
    /// Delegation points (names with NS other than the apex).
    pub cuts: OrdMap<Name, ()>,
    /// TTL of NSEC records: min(SOA TTL, SOA minimum) (RFC 9077).
    pub nsec_ttl: u32,
    /// The apex SOA RRset (every negative answer carries it), kept by `apply`.
    pub(crate) soa: Option<Rrset>,
    /// The [`canonical_key`] of `origin`.
    origin_key: Box<[u8]>,
    /// Authoritative names and delegation points keyed by [`canonical_key`] without the
    /// origin's: canonical order, compared as bytes (comparing `Name`s label by label from the
    /// root cost most of a query, and a `Name` per node cost memory).
    pub(crate) index: OrdMap<IndexKey, Arc<Node>>,
}

/// A name's key in `Zone::index`: its [`canonical_key`] without the origin's (which every key
/// of the zone starts with), stored inline when short so that a lookup reads the B-tree's own
/// memory instead of one heap block per comparison (at 100 000 hosts each was a cache miss).
#[derive(Clone)]
pub(crate) enum IndexKey {
    Inline { len: u8, bytes: [u8; 30] },
    Heap(Box<[u8]>),
}

impl IndexKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        if key.len() <= 30 {
            let mut bytes = [0u8; 30];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            IndexKey::Heap(key.into())
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..*len as usize],
            IndexKey::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    /// The byte order of the keys. Two inline keys compare as four big-endian words of their
    /// zero-padded bytes (no `memcmp` call: the B-tree compares keys a dozen times per lookup):
    /// that is the byte order because a key never has a 0x00 right after another or at its start
    /// (each label is non-empty, escaped so that no byte in it is 0x00, and ends with 0x00), so
    /// where a shorter key ends the longer one has a non-zero byte.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (IndexKey::Inline { len: la, bytes: a }, IndexKey::Inline { len: lb, bytes: b }) => {
                let w = |x: &[u8; 30], i: usize| {
                    let mut v = [0u8; 8];
                    let end = (i + 8).min(30);
                    v[..end - i].copy_from_slice(&x[i..end]);
                    u64::from_be_bytes(v)
                };
                for i in [0, 8, 16, 24] {
                    match w(a, i).cmp(&w(b, i)) {
                        std::cmp::Ordering::Equal => {}
                        o => return o,
                    }
                }
                la.cmp(lb)
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

impl std::hash::Hash for IndexKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_slice())
    }
}

/// Longest [`canonical_key`] (255-octet name, every octet escaped).
pub const KEY_MAX: usize = 512;

/// Writes the canonical-order key of `name` into `out` and returns its length: the labels from
/// the root, lower case, each followed by 0x00 (0x00 and 0x01 inside a label are written as
/// 0x01 0x01 and 0x01 0x02). Byte order of keys is the canonical order of RFC 4034 6.1, and an
/// ancestor's key is a prefix of its descendants' keys, ending at a label boundary.
pub fn canonical_key(name: &Name, out: &mut [u8; KEY_MAX]) -> usize {
    let mut n = 0;
    for label in name.iter().rev() {
        for &b in label {
            match b {
                0 | 1 => {
                    out[n] = 1;
                    out[n + 1] = b + 1;
                    n += 2;
                }
                _ => {
                    out[n] = b.to_ascii_lowercase();
                    n += 1;
                }
            }
        }
        out[n] = 0;
        n += 1;
    }
    n
}

impl Zone {
    /// A zone holding only its SOA, signed, with a one-name NSEC chain.
    pub fn new(
        origin: Name,
        soa_ttl: u32,
        soa: SOA,
        signer: &dyn RrsetSigner,
    ) -> Result<Self, ZoneError> {
        let zone = Zone::empty(origin);
        let soa =
            Rrset::new(zone.origin.clone(), soa_ttl, vec![RData::SOA(soa)]).expect("one record");
        zone.apply(vec![Change::Put(soa)], signer)
    }

    /// A zone with no name at all (not servable: no SOA).
    pub(crate) fn empty(origin: Name) -> Self {
        let origin = origin.to_lowercase();
        let mut k = [0u8; KEY_MAX];
        let len = canonical_key(&origin, &mut k);
        Zone {
            origin,
            glue: OrdMap::new(),
            cuts: OrdMap::new(),
            nsec_ttl: 0,
            soa: None,
            origin_key: k[..len].into(),
            index: OrdMap::new(),
        }
    }

    /// Takes the SOA from the apex.
    pub(crate) fn set_soa(&mut self) {
        self.soa = self.apex().and_then(|n| n.get(RecordType::SOA)).cloned();
    }

    /// The node at `name` (an authoritative name or a delegation point).
    pub fn node(&self, name: &Name) -> Option<&Arc<Node>> {
        let mut k = [0u8; KEY_MAX];
        let n = canonical_key(name, &mut k);
        self.node_by_key(&k[..n])
    }

    /// Number of authoritative names and delegation points.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the zone has no name (never, once built).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The names and nodes in canonical order.
    pub fn nodes(&self) -> impl Iterator<Item = (Name, &Arc<Node>)> {
        self.index
            .iter()
            .map(|(k, v)| (self.name_of(k.as_slice()), v))
    }

    /// The name whose key (relative to the origin's) is `rel`.
    pub(crate) fn name_of(&self, rel: &[u8]) -> Name {
        let mut labels: Vec<Vec<u8>> = Vec::new();
        let mut cur = Vec::new();
        let mut i = 0;
        while i < rel.len() {
            match rel[i] {
                0 => labels.push(std::mem::take(&mut cur)),
                1 if i + 1 < rel.len() => {
                    cur.push(rel[i + 1] - 1);
                    i += 1;
                }
                b => cur.push(b),
            }
            i += 1;
        }
        labels.reverse();
        if labels.is_empty() {
            return self.origin.clone();
        }
        Name::from_labels(labels)
            .and_then(|n| n.append_domain(&self.origin))
            .unwrap_or_else(|_| self.origin.clone())
    }

    /// The [`canonical_key`] of the origin: the zone holds the names whose keys start with it.
    pub fn origin_key(&self) -> &[u8] {
        &self.origin_key
    }

    /// The part of a key (of a name in this zone) the index is keyed by.
    fn relative<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        debug_assert!(key.starts_with(&self.origin_key));
        key.get(self.origin_key.len()..).unwrap_or_default()
    }

    /// The node at the name with this canonical key.
    pub fn node_by_key(&self, key: &[u8]) -> Option<&Arc<Node>> {
        if !key.starts_with(&self.origin_key) {
            return None;
        }
        self.index.get(&IndexKey::new(self.relative(key)))
    }

    /// The node whose NSEC covers the name with this key, which is in the zone but not a node
    /// (the greatest name before it, wrapping).
    pub(crate) fn covering_key(&self, key: &[u8]) -> Option<&Arc<Node>> {
        use std::ops::Bound;
        let key = self.relative(key);
        let max = || self.index.get_max().map(|(_, v)| v);
        match self.index.get_prev(&IndexKey::new(key)) {
            Some((k, v)) if k.as_slice() != key => Some(v),
            Some(_) => self
                .index
                .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(key)))
                .next_back()
                .map(|(_, v)| v)
                .or_else(max),
            None => max(),
        }
    }

    /// True when the name with this key (in the zone) owns data or is an empty non-terminal.
    pub(crate) fn key_exists(&self, key: &[u8]) -> bool {
        let key = self.relative(key);
        self.index
            .get_next(&IndexKey::new(key))
            .is_some_and(|(k, _)| k.as_slice().starts_with(key))
    }

    pub fn apex(&self) -> Option<&Arc<Node>> {
        self.index.get(&[][..])
    }

    pub fn soa(&self) -> Option<&Rrset> {
        self.soa.as_ref()
    }

    pub fn serial(&self) -> u32 {
        match self.soa().and_then(|s| s.first_data()) {
            Some(RData::SOA(soa)) => soa.serial,
            _ => 0,
        }
    }

    /// The deepest delegation point at or above `name` (strictly below the apex), if any.
    pub fn cut_above(&self, name: &Name) -> Option<Name> {
        if self.cuts.is_empty() {
            return None;
        }
        let apex_labels = self.origin.num_labels() as usize;
        let labels = name.num_labels() as usize;
        // from just below the apex down to the name: the highest cut wins (it occludes the rest)
        for n in apex_labels + 1..=labels {
            let anc = name.trim_to(n);
            if self.cuts.contains_key(&anc) {
                return Some(anc);
            }
        }
        None
    }

    /// Applies changes and returns the new snapshot. The SOA serial must be changed by the
    /// caller (a `Put` of the SOA) when the content changes; NSEC records are kept in step and
    /// only what was touched is signed again.
    pub fn apply(&self, changes: Vec<Change>, signer: &dyn RrsetSigner) -> Result<Zone, ZoneError> {
        let mut z = self.clone();
        // Bookkeeping by index key (comparing `Name`s label by label was a tenth of a bulk
        // change's time): names whose NSEC must be recomputed (and signed if it differs or is
        // asked for), names that disappeared (their predecessor's NSEC must change), and the
        // RRsets to sign with the key and name of their node.
        let mut nsec_dirty: BTreeMap<IndexKey, Name> = BTreeMap::new();
        let mut nsec_force: BTreeSet<IndexKey> = BTreeSet::new();
        let mut removed: Vec<IndexKey> = Vec::new();
        let mut to_sign: Vec<Rrset> = Vec::new();
        let mut to_sign_at: Vec<(IndexKey, Name)> = Vec::new();

        for change in changes {
            let name = match &change {
                Change::Put(r) => r.name(),
                Change::Delete(n, _) | Change::DeleteName(n) | Change::Resign(n, _) => n.clone(),
            };
            if !z.origin.zone_of(&name) {
                return Err(ZoneError::OutOfZone(name.to_ascii(), z.origin.to_ascii()));
            }
            if name.is_wildcard() {
                return Err(ZoneError::Wildcard(name.to_ascii()));
            }
            let below_cut = z.cut_above(&name).filter(|c| *c != name).is_some();
            if below_cut {
                // glue: unsigned, outside the chain
                match change {
                    Change::Put(r) => {
                        if !matches!(r.rtype, RecordType::A | RecordType::AAAA) {
                            return Err(ZoneError::NotAllowed(
                                name.to_ascii(),
                                "only A/AAAA glue below a zone cut",
                            ));
                        }
                        let mut node = z.glue.get(&name).map(|n| (**n).clone()).unwrap_or_default();
                        node.put(r);
                        z.glue.insert(name, Arc::new(node));
                    }
                    Change::Delete(_, t) => {
                        if let Some(n) = z.glue.get(&name) {
                            let mut node = (**n).clone();
                            node.remove(t);
                            if node.rrsets.is_empty() {
                                z.glue.remove(&name);
                            } else {
                                z.glue.insert(name, Arc::new(node));
                            }
                        }
                    }
                    Change::DeleteName(_) => {
                        z.glue.remove(&name);
                    }
                    Change::Resign(..) => {}
                }
                continue;
            }
            let is_apex = name == z.origin;
            let key = z.rel_key(&name);
            match change {
                Change::Put(r) => {
                    let rtype = r.rtype;
                    if rtype == RecordType::NS && !is_apex {
                        z.cuts.insert(name.clone(), ());
                    }
                    if matches!(rtype, RecordType::NSEC | RecordType::RRSIG) {
                        return Err(ZoneError::NotAllowed(
                            name.to_ascii(),
                            "NSEC and RRSIG are made by the signer",
                        ));
                    }
                    let mut node = z.index.get(&key).map(|n| (**n).clone()).unwrap_or_default();
                    let was_new = node.rrsets.is_empty();
                    let had_type = node.get(rtype).is_some();
                    node.put(r.clone());
                    let cut = node.is_cut(is_apex);
                    if !cut || rtype == RecordType::DS {
                        to_sign.push(r);
                        to_sign_at.push((key.clone(), name.clone()));
                    }
                    if was_new || !had_type {
                        nsec_dirty.insert(key.clone(), name);
                    }
                    z.index.insert(key, Arc::new(node));
                }
                Change::Delete(_, rtype) => {
                    if let Some(n) = z.index.get(&key) {
                        if n.get(rtype).is_none() {
                            continue;
                        }
                        let mut node = (**n).clone();
                        node.remove(rtype);
                        if rtype == RecordType::NS && !is_apex {
                            z.cuts.remove(&name);
                        }
                        if node.rrsets.is_empty() {
                            z.index.remove(&key);
                            removed.push(key);
                        } else {
                            z.index.insert(key.clone(), Arc::new(node));
                            nsec_dirty.insert(key, name);
                        }
                    }
                }
                Change::DeleteName(_) => {
                    if z.index.remove(&key).is_some() {
                        z.cuts.remove(&name);
                        removed.push(key);
                    }
                }
                Change::Resign(_, rtype) => {
                    if rtype == RecordType::NSEC {
                        nsec_force.insert(key.clone());
                        nsec_dirty.insert(key, name);
                    } else if let Some(n) = z.index.get(&key) {
                        if let Some(r) = n.get(rtype) {
                            if !n.is_cut(is_apex) || rtype == RecordType::DS {
                                to_sign.push(r.clone());
                                to_sign_at.push((key, name));
                            }
                        }
                    }
                }
            }
        }

        // SOA minimum / TTL decide the NSEC TTL (RFC 9077)
        z.soa = z.apex().and_then(|n| n.get(RecordType::SOA)).cloned();
        if let Some(soa) = z.soa() {
            if let Some(RData::SOA(s)) = soa.first_data() {
                let ttl = soa.ttl.min(s.minimum);
                if ttl != z.nsec_ttl {
                    z.nsec_ttl = ttl;
                    let all: Vec<(IndexKey, Name)> = z
                        .index
                        .keys()
                        .map(|k| (k.clone(), z.name_of(k.as_slice())))
                        .collect();
                    nsec_force.extend(all.iter().map(|(k, _)| k.clone()));
                    nsec_dirty.extend(all);
                }
            }
        }

        // The predecessor (in the chain after the changes) of a removed name now points
        // elsewhere, and that of a new name must point at it.
        let mut preds: Vec<IndexKey> = Vec::with_capacity(removed.len() + nsec_dirty.len());
        for key in &removed {
            nsec_dirty.remove(key);
        }
        for key in removed.iter().chain(nsec_dirty.keys()) {
            if let Some(p) = z.pred_key(key) {
                preds.push(p);
            }
        }
        for p in preds {
            if let std::collections::btree_map::Entry::Vacant(e) = nsec_dirty.entry(p) {
                let name = z.name_of(e.key().as_slice());
                e.insert(name);
            }
        }

        // Compute the NSEC RRsets that differ from what is there.
        let mut nsec_to_sign: Vec<Rrset> = Vec::new();
        for (key, name) in &nsec_dirty {
            let Some(node) = z.index.get(key) else {
                continue;
            };
            let next = z.succ_name(key).unwrap_or_else(|| z.origin.clone());
            let rdata = RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, node.nsec_types())));
            let rrset = Rrset::new(name.clone(), z.nsec_ttl, vec![rdata]).expect("one record");
            let unchanged = node.nsec.as_ref().is_some_and(|n| n.same_data(&rrset));
            if unchanged && !nsec_force.contains(key) {
                continue;
            }
            nsec_to_sign.push(rrset);
            to_sign_at.push((key.clone(), name.clone()));
        }

        // Sign everything (in parallel when there is a lot), then put the results in place.
        let mut all = to_sign;
        all.extend(nsec_to_sign);
        let signed = sign_all(&all, signer)?;
        debug_assert_eq!(signed.len(), to_sign_at.len());
        // one node update per name (a new host brings several RRsets and an NSEC)
        let mut by_key: BTreeMap<IndexKey, Vec<Rrset>> = BTreeMap::new();
        for (rrset, (key, _)) in signed.into_iter().zip(to_sign_at) {
            by_key.entry(key).or_default().push(rrset);
        }
        for (key, rrsets) in by_key {
            let Some(n) = z.index.get(&key) else {
                continue;
            };
            let mut node = (**n).clone();
            for rrset in rrsets {
                if rrset.rtype == RecordType::NSEC {
                    node.nsec = Some(rrset);
                } else if node
                    .get(rrset.rtype)
                    .is_some_and(|cur| cur.same_data(&rrset))
                {
                    node.put(rrset);
                }
            }
            z.index.insert(key, Arc::new(node));
        }
        z.soa = z.apex().and_then(|n| n.get(RecordType::SOA)).cloned();
        Ok(z)
    }

    /// The relative key of `name` (which must be in the zone).
    fn rel_key(&self, name: &Name) -> IndexKey {
        let mut k = [0u8; KEY_MAX];
        let n = canonical_key(name, &mut k);
        IndexKey::new(k.get(self.origin_key.len()..n).unwrap_or_default())
    }

    /// The key of the greatest name strictly before the one with key `key` (wrapping to the
    /// last), unless that is `key` itself.
    fn pred_key(&self, key: &IndexKey) -> Option<IndexKey> {
        self.index
            .range(..key.clone())
            .next_back()
            .or_else(|| self.index.get_max().map(|(k, v)| (k, v)))
            .filter(|(k, _)| *k != key)
            .map(|(k, _)| k.clone())
    }

    /// The name after the one with key `key`, or `None` when it is the last.
    fn succ_name(&self, key: &IndexKey) -> Option<Name> {
        use std::ops::Bound;
        self.index
            .range((Bound::Excluded(key.clone()), Bound::Unbounded))
            .next()
            .map(|(k, _)| self.name_of(k.as_slice()))
    }

    /// True when `name` owns data or is an empty non-terminal (some name below it exists).
    pub fn name_exists(&self, name: &Name) -> bool {
        let mut k = [0u8; KEY_MAX];
        let n = canonical_key(name, &mut k);
        k[..n].starts_with(&self.origin_key) && self.key_exists(&k[..n])
    }

    /// All RRsets with their signatures, in canonical order, SOA first: the content of an AXFR
    /// between the two SOA copies. Glue follows the authoritative data.
    pub fn records(&self) -> impl Iterator<Item = &Rrset> {
        self.index
            .values()
            .flat_map(|n| n.rrsets.iter().chain(n.nsec.iter()))
            .chain(self.glue.values().flat_map(|n| n.rrsets.iter()))
    }

    /// The (name, type) of every RRset that is unsigned, whose earliest RRSIG expires before
    /// `t`, or that is not signed by exactly the keys with tags `ksk` (DNSKEY, CDS, CDNSKEY) or
    /// `zsk` (the rest): what is to be signed again, e.g. everything after a ZSK switch.
    pub fn due(&self, t: u32, ksk: &[u16], zsk: &[u16]) -> Vec<(Name, RecordType)> {
        let mut out = Vec::new();
        let mut tags: Vec<u16> = Vec::with_capacity(4);
        for (key, node) in self.index.iter() {
            let cut = node.is_cut(key.as_slice().is_empty());
            for r in node.rrsets.iter().chain(node.nsec.iter()) {
                if cut && !matches!(r.rtype, RecordType::DS | RecordType::NSEC) {
                    continue;
                }
                let mut stale = r.earliest_expiration().is_none_or(|e| e < t);
                if !stale {
                    let want = match r.rtype {
                        RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY => ksk,
                        _ => zsk,
                    };
                    tags.clear();
                    r.wire().rrsig_key_tags(|k| tags.push(k));
                    stale = tags.len() != want.len() || !want.iter().all(|w| tags.contains(w));
                }
                if stale {
                    out.push((self.name_of(key.as_slice()), r.rtype));
                }
            }
        }
        out
    }
}

fn sign_all(rrsets: &[Rrset], signer: &dyn RrsetSigner) -> Result<Vec<Rrset>, ZoneError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if rrsets.len() < 2048 || threads == 1 {
        return rrsets
            .iter()
            .map(|r| {
                signer
                    .sign(r)
                    .map(|s| r.with_rrsigs(s))
                    .map_err(ZoneError::Signing)
            })
            .collect();
    }
    let chunk = rrsets.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = rrsets
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| {
                            signer
                                .sign(r)
                                .map(|s| r.with_rrsigs(s))
                                .map_err(ZoneError::Signing)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(rrsets.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| ZoneError::Signing("signer thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}
