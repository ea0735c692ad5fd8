//! Query counters of the DNS plane: by transport, RCODE and query type, and truncated answers.
//!
//! Cost on the query path: one relaxed `fetch_add` on a counter of the calling thread's own
//! shard (a cache line no other DNS thread writes, so it does not bounce between cores) and a
//! thread-local read; no lock, no allocation, no clock. A scrape sums the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The transports a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
}

pub(super) const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// RCODEs 0..=15 by name (the header's four bits; extended ones, e.g. BADVERS, BADSIG, count
/// as "other").
pub(super) const RCODES: [&str; 17] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
    "other",
];
/// The query types counted by name; every other type counts as "other" (bounded labels).
pub(super) const QTYPES: [(u16, &str); 23] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (52, "TLSA"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (251, "IXFR"),
    (252, "AXFR"),
    (255, "ANY"),
    (0, "other"),
];
const T: usize = TRANSPORTS.len();
const R: usize = RCODES.len();
const Q: usize = QTYPES.len();
const SHARDS: usize = 16;

/// Index into `QTYPES` of every type below 256 (the last entry, "other", for the rest).
static QTYPE_INDEX: [u8; 256] = {
    let mut t = [(Q - 1) as u8; 256];
    let mut i = 0;
    while i < Q - 1 {
        t[QTYPES[i].0 as usize] = i as u8;
        i += 1;
    }
    t
};

/// One thread's counters, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    queries: [[[AtomicU64; Q]; R]; T],
    truncated: [AtomicU64; T],
}

static COUNTS: [Shard; SHARDS] = [const {
    Shard {
        queries: [const { [const { [const { AtomicU64::new(0) }; Q] }; R] }; T],
        truncated: [const { AtomicU64::new(0) }; T],
    }
}; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn shard() -> &'static Shard {
    let i = MY_SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
            s.set(i);
        }
        i
    });
    &COUNTS[i]
}

/// Counts one answered query (its RCODE as sent, header bits only) and whether it was
/// truncated (TC=1).
#[inline]
pub fn query(transport: Transport, rcode: u16, qtype: u16, truncated: bool) {
    let s = shard();
    let r = (rcode as usize).min(R - 1);
    let q = if qtype < 256 {
        QTYPE_INDEX[qtype as usize] as usize
    } else {
        Q - 1
    };
    let t = transport as usize;
    s.queries[t][r][q].fetch_add(1, Relaxed);
    if truncated {
        s.truncated[t].fetch_add(1, Relaxed);
    }
}

/// The sums over every shard: `(transport, rcode, qtype, count)` of the non-zero counters.
pub(super) fn queries() -> Vec<(usize, usize, usize, u64)> {
    let mut out = Vec::new();
    for t in 0..T {
        for r in 0..R {
            for q in 0..Q {
                let n: u64 = COUNTS
                    .iter()
                    .map(|s| s.queries[t][r][q].load(Relaxed))
                    .sum();
                if n != 0 {
                    out.push((t, r, q, n));
                }
            }
        }
    }
    out
}

/// Truncated answers per transport.
pub(super) fn truncated() -> [u64; T] {
    let mut out = [0; T];
    for (t, o) in out.iter_mut().enumerate() {
        *o = COUNTS.iter().map(|s| s.truncated[t].load(Relaxed)).sum();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_labels() {
        let before = |t, r, q| {
            queries()
                .iter()
                .find(|c| (c.0, c.1, c.2) == (t, r, q))
                .map_or(0, |c| c.3)
        };
        let (a, tlsa, other) = (0, 14, Q - 1);
        let b1 = before(0, 0, a);
        let b2 = before(1, 3, tlsa);
        let b3 = before(0, R - 1, other);
        let tr = truncated()[0];
        query(Transport::Udp, 0, 1, false);
        query(Transport::Udp, 0, 1, true);
        query(Transport::Tcp, 3, 52, false);
        query(Transport::Udp, 16, 4000, false);
        std::thread::spawn(|| query(Transport::Udp, 0, 1, false))
            .join()
            .unwrap();
        assert_eq!(QTYPES[tlsa].1, "TLSA");
        assert_eq!(before(0, 0, a), b1 + 3);
        assert_eq!(before(1, 3, tlsa), b2 + 1);
        assert_eq!(before(0, R - 1, other), b3 + 1);
        assert_eq!(truncated()[0], tr + 1);
    }
}
