//! A zone snapshot written to a file and read back: the signed content exactly as it is served,
//! so a restart does not sign a million RRsets again.
//!
//! The format is private to this crate and versioned ([`FORMAT`]); the caller frames it (its own
//! header, a checksum over the whole stream) and decides whether what it read may be served.
//! Reading checks every length and offset, so a damaged file is an error, never a panic later on
//! the query path.

use std::io::{self, Read, Write};
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use imbl::OrdMap;

use crate::rrset::Rrset;
use crate::wire::RrsetWire;
use crate::zone::{IndexKey, Node, Zone};

/// Version of the encoding below; a reader refuses any other.
pub const FORMAT: u32 = 2;

/// Largest RRset blob accepted when reading (a sanity bound, far above any real RRset).
const MAX_BLOB: usize = 1 << 20;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
}

fn w16(w: &mut dyn Write, v: u16) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn w32(w: &mut dyn Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn w64(w: &mut dyn Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn r8(r: &mut dyn Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}
fn r16(r: &mut dyn Read) -> io::Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_le_bytes(b))
}
fn r32(r: &mut dyn Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}
fn r64(r: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
fn rbytes(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn write_name(w: &mut dyn Write, name: &Name) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    name.emit(&mut enc).map_err(|e| bad(&e.to_string()))?;
    w16(w, buf.len() as u16)?;
    w.write_all(&buf)
}

fn read_name(r: &mut dyn Read) -> io::Result<Name> {
    let n = r16(r)? as usize;
    if n > 255 {
        return Err(bad("name too long"));
    }
    let b = rbytes(r, n)?;
    let mut d = BinDecoder::new(&b);
    Name::read(&mut d).map_err(|e| bad(&e.to_string()))
}

fn write_rrset(w: &mut dyn Write, r: &Rrset) -> io::Result<()> {
    w16(w, u16::from(r.rtype))?;
    w32(w, r.ttl)?;
    let b = r.wire().block();
    w32(w, b.len() as u32)?;
    w.write_all(b)
}

fn read_rrset(r: &mut dyn Read) -> io::Result<Rrset> {
    let rtype = RecordType::from(r16(r)?);
    let ttl = r32(r)?;
    let len = r32(r)? as usize;
    if len > MAX_BLOB {
        return Err(bad("RRset too large"));
    }
    let data = rbytes(r, len)?;
    let wire =
        RrsetWire::from_block(data.into_boxed_slice()).ok_or_else(|| bad("malformed RRset"))?;
    Ok(Rrset::from_parts(rtype, ttl, wire))
}

fn write_node(w: &mut dyn Write, node: &Node) -> io::Result<()> {
    if node.rrsets.len() > u8::MAX as usize {
        return Err(bad("too many RRsets at one name"));
    }
    w.write_all(&[node.rrsets.len() as u8, u8::from(node.nsec.is_some())])?;
    for r in node.rrsets.iter().chain(node.nsec.iter()) {
        write_rrset(w, r)?;
    }
    Ok(())
}

fn read_node(r: &mut dyn Read) -> io::Result<Node> {
    let n = r8(r)? as usize;
    let has_nsec = r8(r)? != 0;
    let mut rrsets = Vec::with_capacity(n);
    for _ in 0..n {
        rrsets.push(read_rrset(r)?);
    }
    let nsec = if has_nsec { Some(read_rrset(r)?) } else { None };
    if rrsets
        .windows(2)
        .any(|w: &[Rrset]| u16::from(w[0].rtype) >= u16::from(w[1].rtype))
    {
        return Err(bad("RRsets out of order"));
    }
    Ok(Node::from_parts(rrsets, nsec))
}

impl Zone {
    /// Writes this snapshot (format [`FORMAT`]).
    pub fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        w32(w, FORMAT)?;
        write_name(w, &self.origin)?;
        w32(w, self.nsec_ttl)?;
        w64(w, self.index.len() as u64)?;
        for (k, node) in self.index.iter() {
            let k = k.as_slice();
            w16(w, k.len() as u16)?;
            w.write_all(k)?;
            write_node(w, node)?;
        }
        w64(w, self.glue.len() as u64)?;
        for (name, node) in self.glue.iter() {
            write_name(w, name)?;
            write_node(w, node)?;
        }
        Ok(())
    }

    /// Reads a snapshot written by [`Zone::write_snapshot`].
    pub fn read_snapshot(r: &mut dyn Read) -> io::Result<Zone> {
        if r32(r)? != FORMAT {
            return Err(bad("unknown format"));
        }
        let origin = read_name(r)?;
        let nsec_ttl = r32(r)?;
        let mut zone = Zone::empty(origin);
        zone.nsec_ttl = nsec_ttl;
        let n = r64(r)?;
        let mut index = OrdMap::new();
        let mut cuts = OrdMap::new();
        let mut prev: Option<IndexKey> = None;
        for _ in 0..n {
            let kl = r16(r)? as usize;
            if kl > crate::zone::KEY_MAX {
                return Err(bad("key too long"));
            }
            let key = IndexKey::new(&rbytes(r, kl)?);
            if prev.as_ref().is_some_and(|p| *p >= key) {
                return Err(bad("names out of order"));
            }
            let node = Arc::new(read_node(r)?);
            if node.get(RecordType::NS).is_some() && !key.as_slice().is_empty() {
                cuts.insert(zone.name_of(key.as_slice()), ());
            }
            index.insert(key.clone(), node);
            prev = Some(key);
        }
        let g = r64(r)?;
        let mut glue = OrdMap::new();
        for _ in 0..g {
            let name = read_name(r)?;
            glue.insert(name, Arc::new(read_node(r)?));
        }
        zone.index = index;
        zone.cuts = cuts;
        zone.glue = glue;
        zone.set_soa();
        if zone.soa().is_none() {
            return Err(bad("no SOA at the apex"));
        }
        Ok(zone)
    }
}
