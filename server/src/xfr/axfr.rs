//! AXFR (RFC 5936): the opening SOA with its RRSIG, every RRset with its signatures (NSEC
//! included), glue, and the closing SOA, in messages of whole RRsets written from their
//! pre-encoded bytes with name compression (`zones::wire::ResponseWriter`, as the UDP fast
//! path): nothing is decoded. The zone is one `Arc` snapshot: the zone manager is never held.

use std::io;

use hickory_proto::rr::RecordType;
use zones::wire::{parse_query, ResponseWriter};
use zones::{Rrset, Zone};

use super::message::{Out, BUDGET};

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Sends the whole zone.
pub async fn send(out: &mut Out, zone: &Zone) -> io::Result<()> {
    let query = out.query.clone();
    let q = parse_query(&query).ok_or_else(|| bad("unreadable question"))?;
    let soa = zone.soa().ok_or_else(|| bad("zone without SOA"))?;
    let mut parts = Parts {
        soa,
        body: Box::new(zone.records()),
        step: 0,
    }
    .peekable();
    let mut buf: Vec<u8> = Vec::with_capacity(BUDGET + 1024);
    while let Some(&(first, sigs)) = parts.peek() {
        let limit = out.limit(first.len(sigs) + q.question().len() + 64 > BUDGET);
        let records = write_message(&mut buf, &q, limit, out.opt, &mut parts);
        if records == 0 {
            return Err(bad("an RRset does not fit in a message"));
        }
        out.send(&mut buf, records).await?;
    }
    Ok(())
}

/// The RRsets of an AXFR and whether with signatures: the SOA, the rest, the SOA again
/// (the body behind a `dyn` so that the transfer's future is `Send`).
struct Parts<'z> {
    soa: &'z Rrset,
    body: Box<dyn Iterator<Item = &'z Rrset> + Send + 'z>,
    step: u8,
}

impl<'z> Iterator for Parts<'z> {
    type Item = (&'z Rrset, bool);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.step {
                0 => {
                    self.step = 1;
                    return Some((self.soa, true));
                }
                1 => match self.body.next() {
                    Some(r) if r.rtype == RecordType::SOA => continue,
                    Some(r) => return Some((r, true)),
                    None => self.step = 2,
                },
                2 => {
                    self.step = 3;
                    return Some((self.soa, false));
                }
                _ => return None,
            }
        }
    }
}

/// Writes as many whole RRsets as fit into one message; returns how many records.
fn write_message<'z, I: Iterator<Item = (&'z Rrset, bool)>>(
    buf: &mut Vec<u8>,
    q: &zones::wire::Query<'_>,
    limit: usize,
    opt: Option<(u16, bool)>,
    parts: &mut std::iter::Peekable<I>,
) -> usize {
    let mut w = ResponseWriter::new(buf, q, limit, opt);
    let mut records = 0;
    while let Some(&(r, sigs)) = parts.peek() {
        if !w.rrset(r.wire(), sigs, 0) {
            break;
        }
        records += r.wire().count(sigs) as usize;
        parts.next();
    }
    w.finish(0, true, false);
    records
}
