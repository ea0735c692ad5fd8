//! Wire forms for the UDP fast path (no hickory message objects, no per-query allocation).
//!
//! Every [`Rrset`](crate::Rrset) carries its records and RRSIGs pre-encoded once, when it is
//! built ([`RrsetWire`]). An answer is then the header, the question copied as received, those
//! bytes with the owner name (and the names inside NS, CNAME, PTR, MX and SOA data, which
//! RFC 1035 allows to compress) replaced by a compression pointer into the question where they
//! share a suffix with it, and OPT. [`parse_query`] reads the common query shape (one question,
//! at most an OPT without options) straight from the datagram; anything else is left to the
//! general path.

use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// One piece of a pre-encoded RRset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// One record: the owner name, then `bytes[start..end]` (type, class, TTL, RDLENGTH, RDATA).
    Rr { start: u32, end: u32 },
    /// A record whose RDATA holds compressible names: the owner, then `bytes[start..start + 8]`
    /// (type, class, TTL); RDLENGTH is written when `RdEnd` is reached.
    RrBegin { start: u32 },
    /// Literal RDATA bytes.
    Lit { start: u32, end: u32 },
    /// An uncompressed name in RDATA (`bytes[start..end]`, ends with the root label).
    Name { start: u32, end: u32 },
    /// End of the RDATA begun by the last `RrBegin`.
    RdEnd,
}

/// The records and RRSIGs of one RRset, pre-encoded for answers.
///
/// One heap block and nothing else (a million hosts are five million of these): a header of
/// `HDR` bytes (little-endian u16s: owner length, ops, first RRSIG op, records, RRSIGs,
/// uncompressed length of the records and of the RRSIGs; then the earliest RRSIG expiration,
/// u32), the ops (`OP_LEN` bytes each), the owner name (lower case, uncompressed), then the
/// bytes the ops refer to (offsets from the start of the block).
#[derive(Clone, PartialEq, Eq)]
pub struct RrsetWire {
    data: Box<[u8]>,
}

/// Length of the header of an [`RrsetWire`] block.
const HDR: usize = 20;

impl Default for RrsetWire {
    fn default() -> Self {
        Self {
            data: vec![0u8; HDR].into_boxed_slice(),
        }
    }
}

/// Encoded length of one op: tag, start, end.
const OP_LEN: usize = 9;

impl Op {
    fn encode(self, shift: u32, out: &mut Vec<u8>) {
        let (tag, a, b) = match self {
            Op::Rr { start, end } => (0u8, start + shift, end + shift),
            Op::RrBegin { start } => (1, start + shift, 0),
            Op::Lit { start, end } => (2, start + shift, end + shift),
            Op::Name { start, end } => (3, start + shift, end + shift),
            Op::RdEnd => (4, 0, 0),
        };
        out.push(tag);
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Op {
        let a = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
        let e = u32::from_le_bytes([b[5], b[6], b[7], b[8]]);
        match b[0] {
            0 => Op::Rr { start: a, end: e },
            1 => Op::RrBegin { start: a },
            2 => Op::Lit { start: a, end: e },
            3 => Op::Name { start: a, end: e },
            _ => Op::RdEnd,
        }
    }
}

impl std::fmt::Debug for RrsetWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RrsetWire")
            .field("bytes", &self.data.len())
            .field("records", &self.records())
            .field("rrsigs", &self.rrsigs())
            .finish()
    }
}

/// Length of the uncompressed name at the start of `b` (including the root label), if valid.
fn name_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let l = *b.get(i)? as usize;
        if l & 0xC0 != 0 {
            return None;
        }
        i += 1 + l;
        if l == 0 {
            return Some(i);
        }
    }
}

impl RrsetWire {
    /// Encodes `records` then `rrsigs` (all with the same owner `owner`).
    pub fn build(owner: &Name, records: &[Record], rrsigs: &[Record]) -> Self {
        let mut bytes: Vec<u8> = Vec::new();
        {
            let mut enc = BinEncoder::new(&mut bytes);
            enc.set_name_encoding(NameEncoding::UncompressedLowercase);
            if owner.emit(&mut enc).is_err() {
                return Self::default();
            }
        }
        let owner_len = bytes.len();
        let mut ops = Vec::with_capacity(records.len() + rrsigs.len());
        let mut scratch = Vec::with_capacity(256);
        let mut sig_op = 0;
        for (i, r) in records.iter().chain(rrsigs).enumerate() {
            if i == records.len() {
                sig_op = ops.len();
            }
            scratch.clear();
            let mut enc = BinEncoder::new(&mut scratch);
            enc.set_name_encoding(NameEncoding::Uncompressed);
            if r.emit(&mut enc).is_err() {
                return Self::default();
            }
            let Some(own) = name_len(&scratch) else {
                return Self::default();
            };
            let tail = &scratch[own..];
            let rdata = &tail[10..];
            // offsets of compressible names inside RDATA (RFC 3597 4: the RFC 1035 types)
            let names: &[usize] = match &r.data {
                RData::NS(_) | RData::CNAME(_) | RData::PTR(_) => &[0],
                RData::MX(_) => &[2],
                RData::SOA(_) => &[0, usize::MAX],
                _ => &[],
            };
            let base = bytes.len() as u32;
            if names.is_empty() {
                bytes.extend_from_slice(tail);
                ops.push(Op::Rr {
                    start: base,
                    end: bytes.len() as u32,
                });
                continue;
            }
            bytes.extend_from_slice(&tail[..8]);
            ops.push(Op::RrBegin { start: base });
            let mut at = 0usize;
            for &n in names {
                // usize::MAX: the name right after the previous one
                let n = if n == usize::MAX { at } else { n };
                if n > at {
                    let s = bytes.len() as u32;
                    bytes.extend_from_slice(&rdata[at..n]);
                    ops.push(Op::Lit {
                        start: s,
                        end: bytes.len() as u32,
                    });
                }
                let Some(len) = rdata.get(n..).and_then(name_len) else {
                    return Self::default();
                };
                let s = bytes.len() as u32;
                bytes.extend_from_slice(&rdata[n..n + len]);
                ops.push(Op::Name {
                    start: s,
                    end: bytes.len() as u32,
                });
                at = n + len;
            }
            if at < rdata.len() {
                let s = bytes.len() as u32;
                bytes.extend_from_slice(&rdata[at..]);
                ops.push(Op::Lit {
                    start: s,
                    end: bytes.len() as u32,
                });
            }
            ops.push(Op::RdEnd);
        }
        if rrsigs.is_empty() {
            sig_op = ops.len();
        }
        Self::assemble(
            &ops,
            &bytes,
            owner_len as u16,
            sig_op,
            records.len() as u16,
            rrsigs.len(),
        )
    }

    /// This RRset's records with `rrsigs` (replacing any it had), without decoding the records.
    pub fn with_rrsigs(&self, rrsigs: &[Record]) -> Self {
        let old_shift = HDR + self.ops() as usize * OP_LEN;
        let b: &[u8] = &self.data;
        // record ops and their bytes (owner included), offsets relative to the owner's start
        let rec_ops: Vec<Op> = (0..self.sig_op() as usize).map(|i| self.op(i)).collect();
        let rec_end = rec_ops
            .iter()
            .filter_map(|op| match *op {
                Op::Rr { end, .. } | Op::Lit { end, .. } | Op::Name { end, .. } => Some(end),
                Op::RrBegin { start } => Some(start + 8),
                Op::RdEnd => None,
            })
            .max()
            .map_or(old_shift + self.owner_len() as usize, |e| e as usize);
        let mut bytes: Vec<u8> = b[old_shift..rec_end].to_vec();
        let unshift = |v: u32| v - old_shift as u32;
        let mut ops: Vec<Op> = rec_ops
            .into_iter()
            .map(|op| match op {
                Op::Rr { start, end } => Op::Rr {
                    start: unshift(start),
                    end: unshift(end),
                },
                Op::RrBegin { start } => Op::RrBegin {
                    start: unshift(start),
                },
                Op::Lit { start, end } => Op::Lit {
                    start: unshift(start),
                    end: unshift(end),
                },
                Op::Name { start, end } => Op::Name {
                    start: unshift(start),
                    end: unshift(end),
                },
                Op::RdEnd => Op::RdEnd,
            })
            .collect();
        let sig_op = ops.len();
        let mut scratch = Vec::with_capacity(256);
        for r in rrsigs {
            scratch.clear();
            let mut enc = BinEncoder::new(&mut scratch);
            enc.set_name_encoding(NameEncoding::Uncompressed);
            if r.emit(&mut enc).is_err() {
                return self.clone();
            }
            let Some(own) = name_len(&scratch) else {
                return self.clone();
            };
            let start = bytes.len() as u32;
            bytes.extend_from_slice(&scratch[own..]);
            ops.push(Op::Rr {
                start,
                end: bytes.len() as u32,
            });
        }
        Self::assemble(
            &ops,
            &bytes,
            self.owner_len(),
            sig_op,
            self.records(),
            rrsigs.len(),
        )
    }

    fn assemble(
        ops: &[Op],
        bytes: &[u8],
        owner_len: u16,
        sig_op: usize,
        records: u16,
        rrsigs: usize,
    ) -> Self {
        if ops.len() > u16::MAX as usize || rrsigs > u16::MAX as usize {
            return Self::default();
        }
        let shift = (HDR + ops.len() * OP_LEN) as u32;
        let mut data = Vec::with_capacity(shift as usize + bytes.len());
        data.resize(HDR, 0);
        for op in ops {
            op.encode(shift, &mut data);
        }
        data.extend_from_slice(bytes);
        let mut w = Self {
            data: data.into_boxed_slice(),
        };
        w.put16(0, owner_len);
        w.put16(2, ops.len() as u16);
        w.put16(4, sig_op as u16);
        w.put16(6, records);
        w.put16(8, rrsigs as u16);
        let owner = owner_len as usize;
        for (at, sigs) in [(10, false), (12, true)] {
            let mut total = 0usize;
            w.each_record(sigs, |r| total += owner + r.len());
            w.put16(at, total.min(u16::MAX as usize) as u16);
        }
        w
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.data[at], self.data[at + 1]])
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.data[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn owner_len(&self) -> u16 {
        self.get16(0)
    }

    fn ops(&self) -> u32 {
        u32::from(self.get16(2))
    }

    /// Ops `..sig_op` are the records, `sig_op..` the RRSIGs.
    fn sig_op(&self) -> u32 {
        u32::from(self.get16(4))
    }

    fn records(&self) -> u16 {
        self.get16(6)
    }

    fn rrsigs(&self) -> u16 {
        self.get16(8)
    }

    /// Uncompressed wire length of the records (owner included; an upper bound in a message).
    pub fn records_len(&self) -> u16 {
        self.get16(10)
    }

    /// Uncompressed wire length of the RRSIGs.
    pub fn rrsigs_len(&self) -> u16 {
        self.get16(12)
    }

    /// The earliest RRSIG expiration, 0 when unsigned.
    pub fn expiration(&self) -> u32 {
        u32::from_le_bytes([self.data[16], self.data[17], self.data[18], self.data[19]])
    }

    pub(crate) fn set_expiration(&mut self, t: u32) {
        self.data[16..20].copy_from_slice(&t.to_le_bytes());
    }

    fn op(&self, i: usize) -> Op {
        Op::decode(&self.data[HDR + i * OP_LEN..HDR + (i + 1) * OP_LEN])
    }

    /// Number of resource records written with or without the RRSIGs.
    pub fn count(&self, dnssec: bool) -> u16 {
        self.records() + if dnssec { self.rrsigs() } else { 0 }
    }

    /// Length of the heap block.
    pub fn block_len(&self) -> usize {
        self.data.len()
    }

    /// Bytes of the block that hold the RRSIGs: their ops and what those refer to.
    pub fn rrsig_bytes(&self) -> usize {
        let mut n = 0;
        self.each_record(true, |r| n += r.len());
        n + (self.ops() - self.sig_op()) as usize * OP_LEN
    }

    /// The whole block, for writing a snapshot.
    pub(crate) fn block(&self) -> &[u8] {
        &self.data
    }

    /// The RRset wire form read back from a snapshot, if the header is consistent, every op
    /// stays inside the block and the owner is a valid uncompressed name.
    pub(crate) fn from_block(data: Box<[u8]>) -> Option<Self> {
        if data.len() < HDR {
            return None;
        }
        let w = Self { data };
        let data = &w.data;
        let (ops, sig_op) = (w.ops(), w.sig_op());
        let ops_len = HDR + ops as usize * OP_LEN;
        let owner_end = ops_len + w.owner_len() as usize;
        if sig_op > ops || owner_end > data.len() {
            return None;
        }
        if name_len(&data[ops_len..owner_end])? != w.owner_len() as usize {
            return None;
        }
        let mut open = false;
        let (mut recs, mut sigs) = (0u32, 0u32);
        for i in 0..ops as usize {
            let op = w.op(i);
            if matches!(op, Op::Rr { .. } | Op::RrBegin { .. }) {
                if i < sig_op as usize {
                    recs += 1
                } else {
                    sigs += 1
                }
            }
            let ok = match op {
                Op::Rr { start, end } => {
                    !open
                        && start as usize >= owner_end
                        && start.checked_add(10).is_some_and(|s| s <= end)
                        && end as usize <= data.len()
                }
                Op::RrBegin { start } => {
                    let ok =
                        !open && start as usize >= owner_end && start as usize + 8 <= data.len();
                    open = true;
                    ok
                }
                Op::Lit { start, end } => {
                    open && start as usize >= owner_end
                        && start <= end
                        && end as usize <= data.len()
                }
                Op::Name { start, end } => {
                    open && start as usize >= owner_end
                        && start < end
                        && end as usize <= data.len()
                        && name_len(&data[start as usize..end as usize])
                            == Some((end - start) as usize)
                }
                Op::RdEnd => std::mem::replace(&mut open, false),
            };
            if !ok {
                return None;
            }
        }
        if open || recs != u32::from(w.records()) || sigs != u32::from(w.rrsigs()) {
            return None;
        }
        Some(w)
    }

    /// The owner name (lower case, uncompressed wire form).
    pub fn owner(&self) -> &[u8] {
        let ops_len = HDR + self.ops() as usize * OP_LEN;
        &self.data[ops_len..ops_len + self.owner_len() as usize]
    }

    /// Each record (`sigs` false) or RRSIG (`sigs` true) without its owner, uncompressed:
    /// type, class, TTL, RDLENGTH, RDATA. Calls `f` once per record.
    pub fn each_record(&self, sigs: bool, mut f: impl FnMut(&[u8])) {
        let b: &[u8] = &self.data;
        let range = if sigs {
            self.sig_op() as usize..self.ops() as usize
        } else {
            0..self.sig_op() as usize
        };
        let mut rec: Vec<u8> = Vec::new();
        for i in range {
            match self.op(i) {
                Op::Rr { start, end } => f(&b[start as usize..end as usize]),
                Op::RrBegin { start } => {
                    rec.clear();
                    rec.extend_from_slice(&b[start as usize..start as usize + 8]);
                    rec.extend_from_slice(&[0, 0]);
                }
                Op::Lit { start, end } | Op::Name { start, end } => {
                    rec.extend_from_slice(&b[start as usize..end as usize]);
                }
                Op::RdEnd => {
                    let len = (rec.len() - 10) as u16;
                    rec[8..10].copy_from_slice(&len.to_be_bytes());
                    f(&rec);
                }
            }
        }
    }

    /// The first name inside the first record's RDATA (the target of a CNAME, NS, PTR), in
    /// uncompressed wire form as stored, without decoding anything.
    pub fn first_rdata_name(&self) -> Option<&[u8]> {
        (0..self.sig_op() as usize).find_map(|i| match self.op(i) {
            Op::Name { start, end } => Some(&self.data[start as usize..end as usize]),
            _ => None,
        })
    }

    /// Calls `f` with the key tag of each RRSIG.
    pub fn rrsig_key_tags(&self, mut f: impl FnMut(u16)) {
        // type, class, TTL, RDLENGTH; then RRSIG RDATA: type covered, algorithm, labels,
        // original TTL, expiration, inception, key tag
        self.each_record(true, |r| {
            if let Some(t) = r.get(26..28) {
                f(u16::from_be_bytes([t[0], t[1]]));
            }
        });
    }

    /// The records (`sigs` false) or RRSIGs (`sigs` true) decoded into hickory records (for
    /// the general path, transfers and tests; the fast path never decodes).
    pub fn decode(&self, sigs: bool) -> Vec<Record> {
        let owner = self.owner().to_vec();
        let mut out =
            Vec::with_capacity(if sigs { self.rrsigs() } else { self.records() } as usize);
        let mut buf = Vec::with_capacity(256);
        self.each_record(sigs, |r| {
            buf.clear();
            buf.extend_from_slice(&owner);
            buf.extend_from_slice(r);
            let mut d = hickory_proto::serialize::binary::BinDecoder::new(&buf);
            if let Ok(rec) =
                <Record as hickory_proto::serialize::binary::BinDecodable>::read(&mut d)
            {
                out.push(rec);
            }
        });
        out
    }
}

/// EDNS of a query (RFC 6891 6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryEdns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query of the common shape, read straight from a datagram.
pub struct Query<'m> {
    /// The whole message.
    pub msg: &'m [u8],
    pub id: u16,
    /// Flags word of the query (bytes 2–3).
    pub flags: u16,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<QueryEdns>,
    /// End of the question (12 + name + type + class).
    question_end: usize,
    /// The question name in lower case, uncompressed.
    lower: [u8; 255],
    name_len: usize,
    /// Start of each label in `lower` (the root label excluded).
    starts: [u8; 128],
    labels: usize,
}

impl Query<'_> {
    /// The question name in lower case, uncompressed wire form.
    pub fn name_wire(&self) -> &[u8] {
        &self.lower[..self.name_len]
    }

    /// The question name (lower case).
    pub fn name(&self) -> Option<Name> {
        let mut d = hickory_proto::serialize::binary::BinDecoder::new(self.name_wire());
        <Name as hickory_proto::serialize::binary::BinDecodable>::read(&mut d).ok()
    }

    /// Writes the [`canonical_key`](crate::zone::canonical_key) of the question name into
    /// `out` and returns its length.
    pub fn canonical_key(&self, out: &mut [u8; crate::zone::KEY_MAX]) -> usize {
        key_from_labels(self.name_wire(), &self.starts[..self.labels], out)
    }

    /// The question section as received (letter case kept).
    pub fn question(&self) -> &[u8] {
        &self.msg[12..self.question_end]
    }
}

/// Reads a query of the common shape: QUERY opcode, QR clear, one question with an
/// uncompressed name, no answer or authority records, at most one additional record which is an
/// OPT at the root without options, and nothing after it. `None`: use the general path.
pub fn parse_query(msg: &[u8]) -> Option<Query<'_>> {
    if msg.len() < 12 + 1 + 4 {
        return None;
    }
    let be16 = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let flags = be16(2);
    // QR clear, opcode QUERY
    if flags & 0xF800 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(4), be16(6), be16(8), be16(10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut q = Query {
        msg,
        id: be16(0),
        flags,
        qtype: 0,
        qclass: 0,
        edns: None,
        question_end: 0,
        lower: [0; 255],
        name_len: 0,
        starts: [0; 128],
        labels: 0,
    };
    let mut i = 12;
    let mut o = 0;
    loop {
        let l = *msg.get(i)? as usize;
        if l == 0 {
            break;
        }
        if l > 63 || o + 1 + l + 1 > 255 || q.labels == 127 {
            return None;
        }
        let label = msg.get(i + 1..i + 1 + l)?;
        q.starts[q.labels] = o as u8;
        q.labels += 1;
        q.lower[o] = l as u8;
        for (d, s) in q.lower[o + 1..o + 1 + l].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        o += 1 + l;
        i += 1 + l;
    }
    q.lower[o] = 0;
    q.name_len = o + 1;
    i += 1;
    if msg.len() < i + 4 {
        return None;
    }
    q.qtype = be16(i);
    q.qclass = be16(i + 2);
    i += 4;
    q.question_end = i;
    if ar == 1 {
        // OPT: root name, type 41, class = payload, TTL = ext. rcode, version, flags; no RDATA
        if msg.len() != i + 11 || msg[i] != 0 || be16(i + 1) != 41 || be16(i + 9) != 0 {
            return None;
        }
        q.edns = Some(QueryEdns {
            payload: be16(i + 3),
            version: msg[i + 6],
            dnssec_ok: msg[i + 7] & 0x80 != 0,
        });
        i += 11;
    }
    (i == msg.len()).then_some(q)
}

/// Writes the [`canonical_key`](crate::zone::canonical_key) of an uncompressed wire name (any
/// letter case) into `out` and returns its length; `None` if `name` is not a valid name.
pub fn wire_canonical_key(name: &[u8], out: &mut [u8; crate::zone::KEY_MAX]) -> Option<usize> {
    if name_len(name)? != name.len() || name.len() > 255 {
        return None;
    }
    let mut starts = [0u8; 128];
    let labels = label_starts(name, &mut starts);
    // (a CNAME target is stored as written: letter case is folded while the key is made)
    Some(key_from_labels(name, &starts[..labels], out))
}

/// The canonical key of the uncompressed name `name` (any letter case) whose labels start at
/// `starts`: labels from the root, lower case, 0x00 and 0x01 escaped, each followed by 0x00.
/// A label with neither those bytes nor upper-case letters (nearly all) is copied whole.
fn key_from_labels(name: &[u8], starts: &[u8], out: &mut [u8; crate::zone::KEY_MAX]) -> usize {
    let mut n = 0;
    for &s in starts.iter().rev() {
        let s = s as usize;
        let label = &name[s + 1..s + 1 + name[s] as usize];
        // no early exit: the check runs over the whole label without a branch per byte
        let plain = !label
            .iter()
            .fold(false, |any, &b| any | (b <= 1) | b.is_ascii_uppercase());
        if plain {
            out[n..n + label.len()].copy_from_slice(label);
            n += label.len();
        } else {
            for &b in label {
                if b <= 1 {
                    out[n] = 1;
                    out[n + 1] = b + 1;
                    n += 2;
                } else {
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

/// Start of each label of an uncompressed name (the root label excluded), and their number.
fn label_starts(name: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < name.len() && name[i] != 0 && n < 128 {
        starts[n] = i as u8;
        n += 1;
        i += 1 + name[i] as usize;
    }
    n
}

/// A name written earlier in the message that later names may point into: its first `lit`
/// labels are written at `off`, the rest is a pointer into the question.
#[derive(Clone, Copy)]
struct Written<'w> {
    off: u16,
    name: &'w [u8],
    lit: u8,
}

/// Names (other than the question's) that later names are compressed against.
const WRITTEN_MAX: usize = 16;

/// Writes one response into a caller-owned buffer (cleared first, reused across queries).
///
/// Name compression: each owner name, and each name inside NS, CNAME, PTR, MX and SOA data, is
/// written as its labels up to the longest suffix it shares with the question name or with an
/// owner or such name written before, then a pointer to that suffix (the question wins ties).
/// The records of an RRset after the first point at the first one's owner.
pub struct ResponseWriter<'o, 'q, 'm, 'w> {
    out: &'o mut Vec<u8>,
    q: &'q Query<'m>,
    /// Maximum length of the message without the OPT record.
    limit: usize,
    /// OPT to append: (payload size to advertise, DO).
    opt: Option<(u16, bool)>,
    counts: [u16; 3],
    /// Where the additional section starts in `out`, and how many written names it had then.
    additional_start: Option<(usize, usize)>,
    written: [Written<'w>; WRITTEN_MAX],
    nwritten: usize,
}

impl<'o, 'q, 'm, 'w> ResponseWriter<'o, 'q, 'm, 'w> {
    /// Starts a response of at most `limit` bytes (OPT included) to `q`; `opt` is the payload
    /// size to advertise and the DO bit, when the response carries an OPT.
    pub fn new(
        out: &'o mut Vec<u8>,
        q: &'q Query<'m>,
        limit: usize,
        opt: Option<(u16, bool)>,
    ) -> Self {
        out.clear();
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(q.question());
        let limit = limit.saturating_sub(if opt.is_some() { 11 } else { 0 });
        Self {
            out,
            q,
            limit,
            opt,
            counts: [0; 3],
            additional_start: None,
            written: [Written {
                off: 0,
                name: &[],
                lit: 0,
            }; WRITTEN_MAX],
            nwritten: 0,
        }
    }

    /// Writes `name` (uncompressed, lower case when `lower_case`) compressed; returns where its
    /// first literal label was written and how many literal labels it has.
    fn name(&mut self, name: &'w [u8], lower_case: bool) -> (usize, usize) {
        let eq = |a: &[u8], b: &[u8]| {
            if lower_case {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let mut starts = [0u8; 128];
        let n = label_starts(name, &mut starts);
        // the question
        let q = self.q.name_wire();
        let mut best = 0;
        let mut target = 0;
        let mut k = n.min(self.q.labels);
        while k > 0 {
            let qs = self.q.starts[self.q.labels - k] as usize;
            if eq(&name[starts[n - k] as usize..], &q[qs..]) {
                best = k;
                target = 12 + qs;
                break;
            }
            k -= 1;
        }
        // names written before: only a longer match counts
        if best < n {
            let mut cs = [0u8; 128];
            for w in &self.written[..self.nwritten] {
                let m = label_starts(w.name, &mut cs);
                let mut k = n.min(m);
                // a match must start within the candidate's literal labels
                while k > best && m - k < w.lit as usize {
                    if eq(
                        &name[starts[n - k] as usize..],
                        &w.name[cs[m - k] as usize..],
                    ) {
                        best = k;
                        target = w.off as usize + cs[m - k] as usize;
                        break;
                    }
                    k -= 1;
                }
                if best == n {
                    break;
                }
            }
        }
        let at = self.out.len();
        let lit = n - best;
        if best == 0 {
            self.out.extend_from_slice(name);
        } else {
            self.out.extend_from_slice(&name[..starts[lit] as usize]);
            self.out
                .extend_from_slice(&(0xC000u16 | target as u16).to_be_bytes());
        }
        if lit > 0 && at < 0x3FFF && self.nwritten < WRITTEN_MAX {
            self.written[self.nwritten] = Written {
                off: at as u16,
                name,
                lit: lit as u8,
            };
            self.nwritten += 1;
        }
        (at, lit)
    }

    /// Appends a whole RRset (with its RRSIGs if `dnssec`) to `section` (0 answer,
    /// 1 authority, 2 additional; sections must be written in order). False, and nothing
    /// written, when it does not fit.
    pub fn rrset(&mut self, w: &'w RrsetWire, dnssec: bool, section: usize) -> bool {
        debug_assert!(section < 3);
        let start = self.out.len();
        let nwritten = self.nwritten;
        if section == 2 && self.additional_start.is_none() {
            self.additional_start = Some((start, nwritten));
        }
        let b: &'w [u8] = &w.data;
        let ops_len = HDR + w.ops() as usize * OP_LEN;
        let owner = &b[ops_len..ops_len + w.owner_len() as usize];
        // the first record's owner; the others point at it (or repeat its pointer)
        let mut owner_ptr: Option<[u8; 2]> = None;
        let nops = if dnssec { w.ops() } else { w.sig_op() } as usize;
        let ops = b[HDR..HDR + nops * OP_LEN]
            .chunks_exact(OP_LEN)
            .map(Op::decode);
        let mut rd_start = 0usize;
        for op in ops {
            match op {
                Op::Rr { .. } | Op::RrBegin { .. } => {
                    match owner_ptr {
                        Some(p) => self.out.extend_from_slice(&p),
                        None => {
                            let (at, lit) = self.name(owner, true);
                            owner_ptr = if lit == 0 {
                                // a pointer only (or the root name)
                                let end = self.out.len();
                                (end - at == 2).then(|| [self.out[at], self.out[at + 1]])
                            } else if at < 0x3FFF {
                                Some((0xC000u16 | at as u16).to_be_bytes())
                            } else {
                                None
                            };
                            if owner_ptr.is_none() {
                                // no pointer possible: write the owner again each time
                                self.out.truncate(at);
                                self.out.extend_from_slice(owner);
                            }
                        }
                    }
                    match op {
                        Op::Rr { start, end } => {
                            self.out.extend_from_slice(&b[start as usize..end as usize]);
                        }
                        Op::RrBegin { start } => {
                            self.out
                                .extend_from_slice(&b[start as usize..start as usize + 8]);
                            self.out.extend_from_slice(&[0, 0]);
                            rd_start = self.out.len();
                        }
                        _ => {}
                    }
                }
                Op::Lit { start, end } => {
                    self.out.extend_from_slice(&b[start as usize..end as usize]);
                }
                Op::Name { start, end } => {
                    self.name(&b[start as usize..end as usize], false);
                }
                Op::RdEnd => {
                    let len = (self.out.len() - rd_start) as u16;
                    self.out[rd_start - 2..rd_start].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        if self.out.len() > self.limit {
            self.out.truncate(start);
            self.nwritten = nwritten;
            return false;
        }
        self.counts[section] += w.count(dnssec);
        true
    }

    /// Drops everything written to the additional section.
    pub fn clear_additional(&mut self) {
        if let Some((start, nwritten)) = self.additional_start {
            self.out.truncate(start);
            self.nwritten = nwritten;
            self.counts[2] = 0;
        }
    }

    /// Appends the OPT and writes the header (id, opcode, RD, CD of the query; QR; `aa`, `tc`,
    /// `rcode`). Returns the message.
    pub fn finish(self, rcode: u16, aa: bool, tc: bool) -> &'o [u8] {
        let mut additional = self.counts[2];
        if let Some((payload, dnssec_ok)) = self.opt {
            let flags: u16 = if dnssec_ok { 0x8000 } else { 0 };
            let ttl = (u32::from(rcode >> 4) << 24) | u32::from(flags);
            self.out.push(0);
            self.out.extend_from_slice(&41u16.to_be_bytes());
            self.out.extend_from_slice(&payload.max(512).to_be_bytes());
            self.out.extend_from_slice(&ttl.to_be_bytes());
            self.out.extend_from_slice(&[0, 0]);
            additional += 1;
        }
        // QR, opcode (0 here), AA, TC, RD; RA 0; Z 0; AD 0; CD; RCODE
        let qf = self.q.flags;
        let mut flags = 0x8000 | (qf & 0x7800) | (qf & 0x0100) | (qf & 0x0010) | (rcode & 0xF);
        if aa {
            flags |= 0x0400;
        }
        if tc {
            flags |= 0x0200;
        }
        let h = &mut self.out[..12];
        h[0..2].copy_from_slice(&self.q.id.to_be_bytes());
        h[2..4].copy_from_slice(&flags.to_be_bytes());
        h[4..6].copy_from_slice(&1u16.to_be_bytes());
        h[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        h[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        h[10..12].copy_from_slice(&additional.to_be_bytes());
        &self.out[..]
    }
}
