//! The checkpoint: every served zone, signed, written to `<data_dir>/zones.checkpoint` with the
//! change-log position and key versions it reflects, so that a start reads it back and applies
//! what the log says since instead of signing a million RRsets again.
//!
//! The store stays the record: a checkpoint is only ever a cache of what the store implies. It
//! is used only when everything it depends on is unchanged (format, binary version, the
//! configuration that shapes zones and signatures, every zone's key version, an unbroken change
//! log since its position) and its SHA-256 matches; anything else means a full build.
//!
//! Layout: magic, then a length-prefixed header (fingerprint, log position, zones with their key
//! versions), the zones ([`zones::Zone::write_snapshot`]), and the SHA-256 of all the bytes before.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use hickory_proto::rr::Name;
use ring::digest;
use zones::Zone;

const MAGIC: &[u8; 8] = b"MXDNSCK1";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("zones.checkpoint")
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Binary version, formats and the configuration that shapes the zones.
    pub fingerprint: String,
    /// The last change-log sequence number the zones include.
    pub last_seq: i64,
    /// Each zone's origin and the key version its keys were loaded at, in write order.
    pub zones: Vec<(Name, i64)>,
}

struct HashWriter<W: Write> {
    inner: W,
    ctx: digest::Context,
    written: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashReader<R: Read> {
    inner: R,
    ctx: digest::Context,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        Ok(n)
    }
}

fn header_bytes(h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    put(&mut out, h.fingerprint.as_bytes());
    out.extend_from_slice(&h.last_seq.to_le_bytes());
    out.extend_from_slice(&(h.zones.len() as u32).to_le_bytes());
    for (z, v) in &h.zones {
        put(&mut out, z.to_ascii().as_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn parse_header(b: &[u8]) -> anyhow::Result<Header> {
    let mut i = 0usize;
    let mut take = |n: usize| -> anyhow::Result<&[u8]> {
        let s = b.get(i..i + n).ok_or_else(|| anyhow!("header cut short"))?;
        i += n;
        Ok(s)
    };
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes"));
    let i64_at = |s: &[u8]| i64::from_le_bytes(s.try_into().expect("8 bytes"));
    let n = u32_at(take(4)?) as usize;
    let fingerprint = String::from_utf8(take(n)?.to_vec())?;
    let last_seq = i64_at(take(8)?);
    let count = u32_at(take(4)?) as usize;
    let mut zones = Vec::new();
    for _ in 0..count.min(4096) {
        let n = u32_at(take(4)?) as usize;
        let name = Name::from_ascii(std::str::from_utf8(take(n)?)?)?;
        zones.push((name, i64_at(take(8)?)));
    }
    Ok(Header {
        fingerprint,
        last_seq,
        zones,
    })
}

/// Writes `zones` under `header` to a temporary file, syncs it and renames it over the
/// checkpoint (a crash leaves the old one or the new one whole). Returns the bytes written.
pub fn write(data_dir: &Path, header: &Header, zones: &[&Zone]) -> anyhow::Result<u64> {
    let dest = path(data_dir);
    let tmp = data_dir.join("zones.checkpoint.tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = HashWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        ctx: digest::Context::new(&digest::SHA256),
        written: 0,
    };
    w.write_all(MAGIC)?;
    let h = header_bytes(header);
    w.write_all(&(h.len() as u32).to_le_bytes())?;
    w.write_all(&h)?;
    for z in zones {
        z.write_snapshot(&mut w)?;
    }
    let sum = w.ctx.clone().finish();
    let written = w.written + sum.as_ref().len() as u64;
    let mut inner = w.inner;
    inner.write_all(sum.as_ref())?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &dest)?;
    if let Ok(dir) = File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(written)
}

/// Reads the checkpoint, if there is one: its header and zones, checked against its SHA-256.
/// `Ok(None)`: no checkpoint. `accept` sees the header before the zones are read and may refuse
/// it (the zones are then not read).
pub fn read(
    data_dir: &Path,
    accept: impl FnOnce(&Header) -> anyhow::Result<()>,
) -> anyhow::Result<Option<(Header, Vec<Zone>)>> {
    let file = match File::open(path(data_dir)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut r = HashReader {
        inner: BufReader::with_capacity(1 << 20, file),
        ctx: digest::Context::new(&digest::SHA256),
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        bail!("not a checkpoint of this format");
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 20 {
        bail!("header too large");
    }
    let mut h = vec![0u8; len];
    r.read_exact(&mut h)?;
    let header = parse_header(&h)?;
    accept(&header)?;
    let mut zones = Vec::with_capacity(header.zones.len());
    for (origin, _) in &header.zones {
        let z = Zone::read_snapshot(&mut r)?;
        if z.origin != *origin {
            bail!("zone {} where {origin} was expected", z.origin);
        }
        zones.push(z);
    }
    let want = r.ctx.clone().finish();
    let mut sum = vec![0u8; want.as_ref().len()];
    r.inner.read_exact(&mut sum)?;
    if sum != want.as_ref() {
        bail!("checksum mismatch");
    }
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest)? != 0 {
        bail!("trailing bytes");
    }
    Ok(Some((header, zones)))
}
