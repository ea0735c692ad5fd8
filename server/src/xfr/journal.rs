//! The IXFR journal: recent published snapshots of each zone, by serial.
//!
//! A snapshot is a persistent structure sharing everything a change did not touch with the
//! next one, so keeping an `Arc<Zone>` per serial costs only what differs (the old versions of
//! changed names, the B-tree nodes on their paths), and the difference to the current zone is
//! computed when a secondary asks (`zones::diff`: O(change)). The journal is bounded by an
//! estimate of those bytes (`[ixfr] max_bytes`) and by age (`[ixfr] max_age`, counted from
//! when a snapshot stopped being current); the current snapshot is always kept. It lives in
//! memory only: after a restart the serials the secondaries have are not in it and they get a
//! full transfer (RFC 1995 4).
//!
//! Cost on the commit path (`ZoneManager::publish` calls [`Journal::record`] under the zone
//! manager's lock): one diff of the previous snapshot against the new one, to count its bytes;
//! O(changed names), measured in `zones/examples/journal_cost.rs` (see ARCHITECTURE.md).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use tokio::sync::watch;
use zones::Zone;

/// Bytes an old snapshot keeps alive beside what changed: the B-tree nodes copied on the
/// paths to the changed names (an estimate: a few KiB per level).
const PATH_OVERHEAD: usize = 16 * 1024;

struct Entry {
    serial: u32,
    zone: Arc<Zone>,
    /// When it stopped being current (0 while it is).
    superseded: u32,
    /// What keeping it costs beside the next entry (0 for the current one).
    bytes: usize,
}

#[derive(Default)]
struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
}

pub struct Journal {
    zones: Mutex<HashMap<Name, History>>,
    max_bytes: usize,
    max_age: u32,
    /// Bumped on every new snapshot (the NOTIFY tasks wait on it).
    changed: watch::Sender<u64>,
}

/// What the journal holds for one zone (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub serials: Vec<u32>,
    pub bytes: usize,
}

impl Journal {
    pub fn new(max_bytes: usize, max_age: u32) -> Self {
        Self {
            zones: Mutex::new(HashMap::new()),
            max_bytes,
            max_age,
            changed: watch::channel(0).0,
        }
    }

    /// Adds a newly published snapshot at `now` and drops what the bounds no longer allow.
    pub fn record(&self, zone: &Arc<Zone>, now: u32) {
        let serial = zone.serial();
        {
            let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            let h = zones.entry(zone.origin.clone()).or_default();
            if let Some(last) = h.entries.back_mut() {
                if last.serial == serial {
                    // the same snapshot again (the start seeds the journal)
                    last.zone = zone.clone();
                    return;
                }
                let bytes = PATH_OVERHEAD
                    + last
                        .zone
                        .changed_nodes(zone)
                        .map(|(o, n)| zones::diff::change_size(o, n))
                        .sum::<usize>();
                last.bytes = bytes;
                last.superseded = now;
                h.bytes += bytes;
            }
            h.entries.push_back(Entry {
                serial,
                zone: zone.clone(),
                superseded: 0,
                bytes: 0,
            });
            while h.entries.len() > 1 {
                let front = &h.entries[0];
                let old = now.saturating_sub(front.superseded) > self.max_age;
                if h.bytes <= self.max_bytes && !old {
                    break;
                }
                h.bytes -= front.bytes;
                h.entries.pop_front();
            }
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// The snapshot of `origin` at `serial`, if the journal still has it.
    pub fn snapshot(&self, origin: &Name, serial: u32) -> Option<Arc<Zone>> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones
            .get(origin)?
            .entries
            .iter()
            .find(|e| e.serial == serial)
            .map(|e| e.zone.clone())
    }

    pub fn stats(&self, origin: &Name) -> Stats {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.get(origin).map_or(
            Stats {
                serials: vec![],
                bytes: 0,
            },
            |h| Stats {
                serials: h.entries.iter().map(|e| e.serial).collect(),
                bytes: h.bytes,
            },
        )
    }

    /// A receiver that sees every new snapshot (of any zone).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{RData, Record};
    use zones::{Change, Rrset, RrsetSigner};

    struct NoSigner;
    impl RrsetSigner for NoSigner {
        fn sign(&self, _: &Rrset) -> Result<Vec<Record>, String> {
            Ok(vec![])
        }
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn soa_data(serial: u32) -> SOA {
        SOA::new(
            n("ns1.mx.example."),
            n("hostmaster.mx.example."),
            serial,
            3600,
            600,
            86400,
            300,
        )
    }

    fn soa(serial: u32) -> Change {
        Change::Put(Rrset::new(n("mx.example."), 3600, vec![RData::SOA(soa_data(serial))]).unwrap())
    }

    /// Snapshots 1..=count, each adding `per` hosts.
    fn history(count: u32, per: u32) -> Vec<Arc<Zone>> {
        let mut z = Zone::new(n("mx.example."), 3600, soa_data(0), &NoSigner).unwrap();
        let mut out = Vec::new();
        for s in 1..=count {
            let mut changes: Vec<Change> = (0..per)
                .map(|i| {
                    Change::Put(
                        Rrset::new(
                            n(&format!("h{s}-{i}.mx.example.")),
                            300,
                            vec![RData::A(A::new(192, 0, 2, 1))],
                        )
                        .unwrap(),
                    )
                })
                .collect();
            changes.push(soa(s));
            z = z.apply(changes, &NoSigner).unwrap();
            out.push(Arc::new(z.clone()));
        }
        out
    }

    #[test]
    fn bounded_by_bytes_and_by_age_and_the_current_stays() {
        let zs = history(10, 20);
        let j = Journal::new(usize::MAX, 3600);
        for (i, z) in zs.iter().enumerate() {
            j.record(z, 1000 + i as u32);
        }
        let origin = n("mx.example.");
        assert_eq!(j.stats(&origin).serials, (1..=10).collect::<Vec<_>>());
        assert!(j.snapshot(&origin, 3).is_some_and(|z| z.serial() == 3));
        // the same snapshot again changes nothing
        j.record(&zs[9], 1010);
        assert_eq!(j.stats(&origin).serials.len(), 10);

        // by age: snapshots superseded more than max_age ago go, the current never
        let j = Journal::new(usize::MAX, 100);
        j.record(&zs[0], 1000);
        j.record(&zs[1], 1050); // 1 superseded at 1050
        j.record(&zs[2], 1200); // 2 superseded at 1200; 1 is 150 s old: gone
        assert_eq!(j.stats(&origin).serials, vec![2, 3]);
        // a snapshot that was current for a long time is kept after it is superseded
        j.record(&zs[3], 5000);
        assert_eq!(j.stats(&origin).serials, vec![3, 4]);

        // by bytes: the oldest go first; a bound below one change keeps the current only
        let one = {
            let j = Journal::new(usize::MAX, u32::MAX);
            j.record(&zs[0], 1);
            j.record(&zs[1], 2);
            j.stats(&origin).bytes
        };
        assert!(one > PATH_OVERHEAD);
        let j = Journal::new(3 * one + one / 2, u32::MAX);
        for z in &zs {
            j.record(z, 1);
        }
        let st = j.stats(&origin);
        assert_eq!(st.serials, vec![7, 8, 9, 10], "{st:?}");
        assert!(st.bytes <= 3 * one + one / 2);
        let j = Journal::new(1, u32::MAX);
        for z in &zs {
            j.record(z, 1);
        }
        assert_eq!(j.stats(&origin).serials, vec![10]);
    }

    #[test]
    fn every_snapshot_wakes_the_subscribers() {
        let zs = history(2, 1);
        let j = Journal::new(usize::MAX, u32::MAX);
        let mut rx = j.subscribe();
        assert!(!rx.has_changed().unwrap());
        j.record(&zs[0], 1);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        j.record(&zs[1], 1);
        assert!(rx.has_changed().unwrap());
    }
}
