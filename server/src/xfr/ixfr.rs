//! IXFR (RFC 1995): the difference between the secondary's serial and the current one, as one
//! condensed sequence: current SOA, the secondary's SOA, every record it has that the current
//! zone has not (RRSIGs and NSEC included), the current SOA, every record the current zone has
//! that it has not, the current SOA. The secondary's version comes from the journal and the
//! difference from `zones::diff`, which visits only the names that changed. A serial not in the
//! journal (too old, or from before a restart) gets the whole zone, as RFC 1995 4 allows; a
//! serial equal to (or, by RFC 1982, after) the current one gets the current SOA alone.

use std::io;

use zones::{Rrset, Zone};

use super::axfr;
use super::journal::Journal;
use super::message::{Out, Raw};
use super::Sent;

/// RFC 1982: `a` is `b` or after it.
fn serial_at_or_after(a: u32, b: u32) -> bool {
    a == b || (a.wrapping_sub(b) as i32) > 0
}

/// The SOA record (without its RRSIG) of an RRset, as (owner, rest of the record).
fn soa_record(soa: &Rrset) -> (Vec<u8>, Vec<u8>) {
    let mut rr = Vec::new();
    soa.wire().each_record(false, |r| rr = r.to_vec());
    (soa.owner_wire().to_vec(), rr)
}

async fn push(m: &mut Raw, out: &mut Out, owner: &[u8], rr: &[u8]) -> io::Result<()> {
    if !m.push(owner, rr) {
        m.flush(out).await?;
        m.push(owner, rr);
    }
    Ok(())
}

pub async fn send(
    out: &mut Out,
    current: &std::sync::Arc<Zone>,
    journal: &Journal,
    client: u32,
) -> io::Result<Sent> {
    let bad = |w: &str| io::Error::new(io::ErrorKind::InvalidData, w.to_string());
    let cur_soa = current.soa().ok_or_else(|| bad("zone without SOA"))?;
    let (apex, cur) = soa_record(cur_soa);
    let serial = current.serial();
    let mut m = Raw::new(out);
    if serial_at_or_after(client, serial) {
        m.push(&apex, &cur);
        m.flush(out).await?;
        return Ok(Sent {
            kind: "IXFR (up to date)",
            from_serial: Some(client),
        });
    }
    let Some(old) = journal.snapshot(&current.origin, client) else {
        let held = journal.stats(&current.origin);
        tracing::info!(
            zone = %current.origin,
            from_serial = client,
            serial,
            journal_from = held.serials.first().copied(),
            journal_bytes = held.bytes,
            "IXFR: the serial is not in the journal; sending the whole zone"
        );
        axfr::send(out, current).await?;
        return Ok(Sent {
            kind: "AXFR (IXFR fallback)",
            from_serial: Some(client),
        });
    };
    let (_, old_soa) = soa_record(old.soa().ok_or_else(|| bad("zone without SOA"))?);
    push(&mut m, out, &apex, &cur).await?;
    push(&mut m, out, &apex, &old_soa).await?;
    // deletions, then additions: each name's records collected first (the diff is
    // synchronous), then written, flushing full messages on the way
    for deleting in [true, false] {
        let mut recs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (o, n) in old.changed_nodes(current) {
            let (from, to) = if deleting { (o, n) } else { (n, o) };
            zones::diff::records_not_in(from, to, |owner, rr| {
                recs.push((owner.to_vec(), rr.to_vec()))
            });
            if recs.len() >= 1024 {
                for (owner, rr) in recs.drain(..) {
                    push(&mut m, out, &owner, &rr).await?;
                }
            }
        }
        for (owner, rr) in recs.drain(..) {
            push(&mut m, out, &owner, &rr).await?;
        }
        push(&mut m, out, &apex, &cur).await?;
    }
    m.flush(out).await?;
    Ok(Sent {
        kind: "IXFR",
        from_serial: Some(client),
    })
}

#[cfg(test)]
mod tests {
    use super::serial_at_or_after;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_at_or_after(5, 5));
        assert!(serial_at_or_after(6, 5));
        assert!(!serial_at_or_after(4, 5));
        assert!(serial_at_or_after(1, u32::MAX), "wraps");
        assert!(!serial_at_or_after(u32::MAX, 1));
    }
}
