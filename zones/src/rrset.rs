//! RRsets as they are served: the records and their RRSIGs, pre-encoded once.
//!
//! An [`Rrset`] holds no hickory objects: its records and signatures live only as wire bytes
//! ([`RrsetWire`]), which is what the fast path writes. The general path, transfers and tests
//! decode them on demand ([`Rrset::records`], [`Rrset::rrsigs`]). A million hosts are five
//! million RRsets, and a hickory `Record` (owner `Name`, RDATA enum) costs several times the
//! bytes it stands for.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::wire::RrsetWire;

/// One RRset of a zone with the signatures that cover it.
///
/// Invariant: every record has the same owner, class IN, type and TTL; the RRSIGs were made over
/// exactly these records (the zone replaces the whole `Rrset` when either changes). Build one
/// with [`Rrset::new`], then [`Rrset::with_rrsigs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    pub rtype: RecordType,
    pub ttl: u32,
    /// Records and RRSIGs, pre-encoded for answers (with their lengths and the earliest RRSIG
    /// expiration: one heap block per RRset).
    wire: RrsetWire,
}

impl Rrset {
    /// Builds an unsigned RRset. `name` must be lower case and fully qualified.
    pub fn new(name: Name, ttl: u32, data: Vec<RData>) -> Option<Self> {
        let rtype = data.first()?.record_type();
        let mut records: Vec<Record> = data
            .into_iter()
            .map(|d| {
                let mut r = Record::from_rdata(name.clone(), ttl, d);
                r.dns_class = DNSClass::IN;
                r
            })
            .collect();
        records.sort_by(|a, b| a.data.cmp(&b.data));
        records.dedup_by(|a, b| a.data == b.data);
        let wire = RrsetWire::build(&name, &records, &[]);
        Some(Self { rtype, ttl, wire })
    }

    /// Returns a copy of this RRset carrying `rrsigs`.
    pub fn with_rrsigs(&self, rrsigs: Vec<Record>) -> Self {
        let mut wire = self.wire.with_rrsigs(&rrsigs);
        let expiration = rrsigs
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.input().sig_expiration.get()),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        wire.set_expiration(expiration);
        Self {
            rtype: self.rtype,
            ttl: self.ttl,
            wire,
        }
    }

    /// An RRset read back from a snapshot.
    pub(crate) fn from_parts(rtype: RecordType, ttl: u32, wire: RrsetWire) -> Self {
        Self { rtype, ttl, wire }
    }

    /// The owner name (lower case).
    pub fn name(&self) -> Name {
        let mut d = BinDecoder::new(self.wire.owner());
        Name::read(&mut d).unwrap_or_else(|_| Name::root())
    }

    /// The owner name in lower-case uncompressed wire form.
    pub fn owner_wire(&self) -> &[u8] {
        self.wire.owner()
    }

    /// The records, decoded (general path, transfers, tests).
    pub fn records(&self) -> Vec<Record> {
        self.wire.decode(false)
    }

    /// The RRSIG records, decoded.
    pub fn rrsigs(&self) -> Vec<Record> {
        self.wire.decode(true)
    }

    /// The records and RRSIGs, pre-encoded for answers.
    pub fn wire(&self) -> &RrsetWire {
        &self.wire
    }

    /// Wire length (uncompressed upper bound) of this RRset, with its RRSIGs if `dnssec`.
    pub fn len(&self, dnssec: bool) -> usize {
        self.wire.records_len() as usize
            + if dnssec {
                self.wire.rrsigs_len() as usize
            } else {
                0
            }
    }

    /// True if the RRset holds no record (never the case for RRsets inside a zone).
    pub fn is_empty(&self) -> bool {
        self.wire.count(false) == 0
    }

    /// Number of records (RRSIGs not counted).
    pub fn count(&self) -> usize {
        self.wire.count(false) as usize
    }

    /// True when this RRset has RRSIGs.
    pub fn is_signed(&self) -> bool {
        self.wire.count(true) > self.wire.count(false)
    }

    /// The RDATA of the records.
    pub fn data(&self) -> Vec<RData> {
        self.records().into_iter().map(|r| r.data).collect()
    }

    /// The first record's RDATA.
    pub fn first_data(&self) -> Option<RData> {
        self.records().into_iter().next().map(|r| r.data)
    }

    /// True when `other` has the same TTL and records (owner and type assumed equal).
    pub fn same_data(&self, other: &Rrset) -> bool {
        if self.ttl != other.ttl || self.rtype != other.rtype || self.count() != other.count() {
            return false;
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        self.wire.each_record(false, |r| a.extend_from_slice(r));
        other.wire.each_record(false, |r| b.extend_from_slice(r));
        a == b
    }

    /// The earliest expiration (RFC 4034 serial arithmetic ignored: times are < 2106) of the
    /// RRSIGs, or `None` when unsigned.
    pub fn earliest_expiration(&self) -> Option<u32> {
        let e = self.wire.expiration();
        (e != 0).then_some(e)
    }
}
