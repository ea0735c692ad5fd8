//! RRsets as they are served: the records, their RRSIGs, and their sizes on the wire.

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::wire::RrsetWire;

/// One RRset of a zone with the signatures that cover it.
///
/// Invariant: every record has the same owner, class IN, type and TTL; `rrsigs` were made over
/// exactly `records` (the zone replaces the whole `Rrset` when either changes). `wire` is
/// made from them by [`Rrset::new`] and [`Rrset::with_rrsigs`]: change the public fields of an
/// `Rrset` only through a new one (`Rrset::new`, then `with_rrsigs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rrset {
    pub name: Name,
    pub rtype: RecordType,
    pub ttl: u32,
    pub records: Vec<Record>,
    pub rrsigs: Vec<Record>,
    /// Uncompressed wire length of `records` (an upper bound of what they take in a message).
    pub records_len: u16,
    /// Uncompressed wire length of `rrsigs`.
    pub rrsigs_len: u16,
    /// `records` and `rrsigs` pre-encoded for answers.
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
        let records_len = wire_len(&records);
        let wire = RrsetWire::build(&name, &records, &[]);
        Some(Self {
            name,
            rtype,
            ttl,
            records,
            rrsigs: Vec::new(),
            records_len,
            rrsigs_len: 0,
            wire,
        })
    }

    /// Returns a copy of this RRset carrying `rrsigs`.
    pub fn with_rrsigs(&self, rrsigs: Vec<Record>) -> Self {
        let rrsigs_len = wire_len(&rrsigs);
        let wire = RrsetWire::build(&self.name, &self.records, &rrsigs);
        Self {
            name: self.name.clone(),
            rtype: self.rtype,
            ttl: self.ttl,
            records: self.records.clone(),
            rrsigs,
            records_len: self.records_len,
            rrsigs_len,
            wire,
        }
    }

    /// The records and RRSIGs, pre-encoded for answers.
    pub fn wire(&self) -> &RrsetWire {
        &self.wire
    }

    /// Wire length (uncompressed upper bound) of this RRset, with its RRSIGs if `dnssec`.
    pub fn len(&self, dnssec: bool) -> usize {
        self.records_len as usize + if dnssec { self.rrsigs_len as usize } else { 0 }
    }

    /// True if the RRset holds no record (never the case for RRsets inside a zone).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The RDATA of the records.
    pub fn data(&self) -> impl Iterator<Item = &RData> {
        self.records.iter().map(|r| &r.data)
    }

    /// The earliest expiration (RFC 4034 serial arithmetic ignored: times are < 2106) of the
    /// RRSIGs, or `None` when unsigned.
    pub fn earliest_expiration(&self) -> Option<u32> {
        self.rrsigs
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s)) => {
                    Some(s.input().sig_expiration.get())
                }
                _ => None,
            })
            .min()
    }
}

/// Uncompressed wire length of records, saturating at u16::MAX.
pub fn wire_len(records: &[Record]) -> u16 {
    let mut buf = Vec::with_capacity(256);
    let mut total = 0usize;
    for r in records {
        buf.clear();
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        if r.emit(&mut enc).is_err() {
            return u16::MAX;
        }
        total += buf.len();
    }
    total.min(u16::MAX as usize) as u16
}
