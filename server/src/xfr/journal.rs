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
//! manager's lock): a push and a wake-up, O(1). What keeping a snapshot costs (a diff of it
//! against the next one, O(changed names): 15 to 24 % of the same change's `Zone::apply`
//! *without* signing, `zones/examples/diff_cost.rs`) is counted on the journal's own thread,
//! which then applies the byte bound.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
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
    /// What keeping it costs beside the next entry; `None` until counted (and for the
    /// current one).
    bytes: Option<usize>,
}

#[derive(Default)]
struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl History {
    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.bytes.unwrap_or(0);
        }
    }
}

struct Inner {
    zones: Mutex<HashMap<Name, History>>,
    max_bytes: usize,
    max_age: u32,
    /// Bumped on every new snapshot (the NOTIFY tasks wait on it).
    changed: watch::Sender<u64>,
}

pub struct Journal {
    inner: Arc<Inner>,
    /// Wakes the thread that counts and bounds; dropping it ends the thread.
    wake: Mutex<mpsc::Sender<()>>,
}

/// What the journal holds for one zone (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub serials: Vec<u32>,
    pub bytes: usize,
}

impl Journal {
    pub fn new(max_bytes: usize, max_age: u32) -> Self {
        let inner = Arc::new(Inner {
            zones: Mutex::new(HashMap::new()),
            max_bytes,
            max_age,
            changed: watch::channel(0).0,
        });
        let (tx, rx) = mpsc::channel::<()>();
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("ixfr-journal".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    match weak.upgrade() {
                        Some(inner) => inner.maintain(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no journal thread: the IXFR journal is bounded by age only");
        }
        Self {
            inner,
            wake: Mutex::new(tx),
        }
    }

    /// Adds a newly published snapshot at `now` (O(1): counting its cost and the byte bound
    /// are left to the journal's thread; the age bound is applied here).
    pub fn record(&self, zone: &Arc<Zone>, now: u32) {
        let serial = zone.serial();
        {
            let mut zones = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
            let h = zones.entry(zone.origin.clone()).or_default();
            if let Some(last) = h.entries.back_mut() {
                if last.serial == serial {
                    // the same snapshot again (the start seeds the journal)
                    last.zone = zone.clone();
                    return;
                }
                last.superseded = now;
            }
            h.entries.push_back(Entry {
                serial,
                zone: zone.clone(),
                superseded: 0,
                bytes: None,
            });
            while h.entries.len() > 1
                && now.saturating_sub(h.entries[0].superseded) > self.inner.max_age
            {
                h.pop_front();
            }
        }
        self.inner.changed.send_modify(|g| *g += 1);
        let _ = self.wake.lock().unwrap_or_else(|e| e.into_inner()).send(());
    }

    /// Counts what the snapshots not yet counted cost and applies the byte bound (the
    /// journal's thread does this after every `record`; tests call it to be sure it is done).
    #[cfg(test)]
    pub fn maintain(&self) {
        self.inner.maintain()
    }

    /// The snapshot of `origin` at `serial`, if the journal still has it.
    pub fn snapshot(&self, origin: &Name, serial: u32) -> Option<Arc<Zone>> {
        let zones = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones
            .get(origin)?
            .entries
            .iter()
            .find(|e| e.serial == serial)
            .map(|e| e.zone.clone())
    }

    pub fn stats(&self, origin: &Name) -> Stats {
        let zones = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
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
        self.inner.changed.subscribe()
    }
}

impl Inner {
    fn maintain(&self) {
        // what to count, taken out under the lock, counted without it
        let work: Vec<(Name, u32, Arc<Zone>, Arc<Zone>)> = {
            let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            zones
                .iter()
                .flat_map(|(origin, h)| {
                    h.entries
                        .iter()
                        .zip(h.entries.iter().skip(1))
                        .filter(|(e, _)| e.bytes.is_none())
                        .map(|(e, next)| {
                            (origin.clone(), e.serial, e.zone.clone(), next.zone.clone())
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let counted: Vec<(Name, u32, usize)> = work
            .into_iter()
            .map(|(origin, serial, old, new)| {
                let bytes = PATH_OVERHEAD
                    + old
                        .changed_nodes(&new)
                        .map(|(o, n)| zones::diff::change_size(o, n))
                        .sum::<usize>();
                (origin, serial, bytes)
            })
            .collect();
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        for (origin, serial, bytes) in counted {
            if let Some(h) = zones.get_mut(&origin) {
                if let Some(e) = h
                    .entries
                    .iter_mut()
                    .find(|e| e.serial == serial && e.bytes.is_none())
                {
                    e.bytes = Some(bytes);
                    h.bytes += bytes;
                }
            }
        }
        for h in zones.values_mut() {
            while h.entries.len() > 1 && h.bytes > self.max_bytes {
                h.pop_front();
            }
        }
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
            j.maintain();
            j.stats(&origin).bytes
        };
        assert!(one > PATH_OVERHEAD);
        let j = Journal::new(3 * one + one / 2, u32::MAX);
        for z in &zs {
            j.record(z, 1);
        }
        j.maintain();
        let st = j.stats(&origin);
        assert_eq!(st.serials, vec![7, 8, 9, 10], "{st:?}");
        assert!(st.bytes <= 3 * one + one / 2);
        let j = Journal::new(1, u32::MAX);
        for z in &zs {
            j.record(z, 1);
        }
        j.maintain();
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
