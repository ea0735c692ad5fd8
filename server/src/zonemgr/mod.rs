//! The writer side: builds the signed zones from the store and the keys, keeps them in step with
//! the store's change log, refreshes signatures, and publishes each new snapshot with one atomic
//! pointer swap. Readers (the DNS handler) only ever `load()` the [`Catalog`].
//!
//! Flow of a change: a writer (API, command) commits RRsets and a change-log row in one SQLite
//! transaction → [`ZoneManager::sync`] (called in-process right away, and by a poller every
//! `follow_interval_ms` for other processes) reads the log, compares the stored RRsets of each
//! touched owner with the snapshot, applies the difference with [`zones::Zone::apply`] (which
//! signs only the touched RRsets and NSECs and the new SOA) → the serial is stored → the new
//! snapshot is swapped in.
//!
//! Rooms: `catalog` (the published snapshot set), `build` (a zone from scratch, the server's own
//! records), `follow` (the change log and key versions → new snapshots), `refresh` (signatures
//! that approach expiry or were made by a key that no longer signs), `resume` (the checkpoint),
//! `hold` (taking the manager: hold times for health, urgent API changes first, recovery after
//! a panic).

mod build;
mod catalog;
pub mod checkpoint;
mod follow;
mod hold;
mod refresh;
mod resume;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{anyhow, Context};
use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use keys::rollover::{key_sets, KeySets, KeyTimes, Parent};
use keys::{KeyPair, ZoneSigner};
use provisioner::{KeyRow, Store};
use zones::Zone;

pub use catalog::Catalog;
pub use hold::{mono_ms, Progress};

use crate::config::Config;
use crate::lifecycle;

/// The clock, passed in so that expiry and refresh can be tested without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> u32;
}

pub struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0)
    }
}

/// A key of a served zone: the private key and the timestamps that say what it does.
struct ZoneKey {
    pair: KeyPair,
    times: KeyTimes,
}

struct ZoneState {
    origin: Name,
    parent: Option<Name>,
    kind: Parent,
    /// The zone's keys not yet removed (removed keys are never loaded).
    keys: Vec<ZoneKey>,
    /// The store's `key_version` these keys were loaded at.
    key_version: i64,
    /// The serial stored when this manager started: above every serial served before.
    serial_floor: u32,
    /// The serial stored now: serials up to it may be served without writing the store.
    serial_reserved: u32,
    /// The key version whose serials were last written to the store (`set_served_keys`).
    served_recorded: Option<i64>,
    /// The signing ZSK changed and the zone is not yet signed again by the new one: its
    /// serials do not carry the switch yet.
    resign_pending: bool,
}

impl ZoneState {
    fn sets(&self, now: u32) -> KeySets {
        let times: Vec<KeyTimes> = self.keys.iter().map(|k| k.times.clone()).collect();
        key_sets(&times, now as u64, self.kind)
    }

    fn pairs(&self, ids: &[i64]) -> Vec<&KeyPair> {
        self.keys
            .iter()
            .filter(|k| ids.contains(&k.times.id))
            .map(|k| &k.pair)
            .collect()
    }
}

struct Inner {
    store: Store,
    zones: Vec<ZoneState>,
    last_seq: i64,
    /// Change-log entries per step of [`ZoneManager::sync`]: halved after a step longer than
    /// [`SYNC_STEP`], doubled after one shorter than half of it.
    sync_batch: usize,
}

pub struct ZoneManager {
    pub catalog: ArcSwap<Catalog>,
    inner: Mutex<Inner>,
    config: Config,
    clock: Arc<dyn Clock>,
    /// The zones' serials in the checkpoint on disk (written or read), `None` before either;
    /// held while a checkpoint is written, so two writers take turns.
    checkpointed: Mutex<Option<Vec<u32>>>,
    /// How this manager started: from the checkpoint or by building every zone.
    pub resumed: bool,
    /// What the manager is doing, for health (atomics: read without taking the manager).
    pub progress: Progress,
    /// Catalogs replaced while a reader still held them: freed here, by the writer, once the
    /// readers are done, so that a DNS thread never frees a replaced zone version.
    retired: Mutex<Vec<Arc<Catalog>>>,
    /// Owners applied since freed memory was last given back, and when that was (`mono_ms`).
    untrimmed: std::sync::atomic::AtomicUsize,
    trimmed_at: std::sync::atomic::AtomicU64,
    /// Recent snapshots of every zone (IXFR) and the signal of a new one (NOTIFY).
    pub journal: crate::xfr::Journal,
    /// What the rollover scheduler last saw waiting for the secondaries (health).
    pub fleet: crate::fleet::Board,
}

/// Key files live here, one PKCS#8 file per key, mode 0600.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("mxdns.sqlite3")
}

/// Creates the data directory, the zones in the store and any missing key; returns the store.
/// Safe to run from several processes at once: key creation happens inside one write
/// transaction per zone.
pub fn init_data(config: &Config, now: u32) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let kd = key_dir(&config.data_dir);
    std::fs::create_dir_all(&kd)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kd, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut store = Store::open(&db_path(&config.data_dir))?;
    let zone = config.zone_name()?;
    let mut all = vec![(zone.clone(), None)];
    for p in config.partition_names()? {
        all.push((p, Some(zone.clone())));
    }
    for (z, parent) in all {
        store.ensure_zone(&z, parent.as_ref())?;
        // a zone without a live key of each role gets them from the rollover planner (one
        // transaction: concurrent processes do not both create keys)
        let rows = store.keys(&z)?;
        let has = |role: &str| {
            rows.iter()
                .any(|r| r.role == role && r.removed_at.is_none())
        };
        if !has("ksk") || !has("zsk") {
            lifecycle::roll_zone(config, &mut store, &z, now as u64, None)
                .map_err(|e| anyhow!("creating the keys of {z}: {e}"))?;
        }
    }
    Ok(store)
}

/// Loads the keys of a zone that are not removed: rows and key files.
fn load_keys(config: &Config, rows: &[KeyRow]) -> anyhow::Result<Vec<ZoneKey>> {
    rows.iter()
        .filter(|r| r.removed_at.is_none())
        .map(|row| {
            Ok(ZoneKey {
                pair: lifecycle::load_pair(config, row)?,
                times: lifecycle::times_of(row),
            })
        })
        .collect()
}

impl ZoneManager {
    /// Opens the store (creating keys as needed) and builds every zone, signed, from it.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let now = clock.now();
        let store = init_data(&config, now)?;
        let zone = config.zone_name()?;
        let mut states = Vec::new();
        let versions = store.key_versions()?;
        for z in config.all_zones()? {
            let parent = (z != zone).then(|| zone.clone());
            let stored_serial = store.serial(&z)?;
            states.push(ZoneState {
                serial_floor: stored_serial,
                serial_reserved: stored_serial,
                kind: config.parent_kind(&z),
                keys: load_keys(&config, &store.keys(&z)?)?,
                key_version: versions
                    .iter()
                    .find(|(n, _)| *n == z)
                    .map_or(0, |(_, v)| *v),
                origin: z,
                parent,
                served_recorded: None,
                resign_pending: false,
            });
        }
        let last_seq = store.last_change()?;
        let zone_count = states.len();
        let config_ixfr = config.ixfr;
        let mgr = Self {
            catalog: ArcSwap::from_pointee(Catalog::default()),
            inner: Mutex::new(Inner {
                store,
                zones: states,
                last_seq,
                sync_batch: 1_000,
            }),
            config,
            clock,
            checkpointed: Mutex::new(None),
            resumed: false,
            progress: Progress::new(zone_count, last_seq),
            retired: Mutex::new(Vec::new()),
            untrimmed: Default::default(),
            trimmed_at: Default::default(),
            journal: crate::xfr::Journal::new(config_ixfr.max_bytes, config_ixfr.max_age),
            fleet: crate::fleet::Board::default(),
        };
        let t0 = std::time::Instant::now();
        let mut mgr = mgr;
        match mgr.resume() {
            Ok(true) => {
                mgr.resumed = true;
                tracing::info!(
                    ms = t0.elapsed().as_millis() as u64,
                    "zones resumed from the checkpoint and brought up to date"
                );
            }
            Ok(false) => mgr.rebuild()?,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint not used; building every zone from the store");
                mgr.rebuild()?;
            }
        }
        // the zones as they start: the first versions an IXFR can start from
        let now = mgr.clock.now();
        for z in mgr.catalog.load().zones.iter() {
            mgr.journal.record(z, now);
        }
        mgr.note_expiries();
        mgr.progress.set_built();
        log_memory(mgr.catalog.load_full());
        Ok(mgr)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The manager's clock (unix seconds).
    pub fn now(&self) -> u32 {
        self.clock.now()
    }

    /// Signs with the keys that sign at `now`: the active KSKs the DNSKEY RRset (and CDS,
    /// CDNSKEY), the one active ZSK everything else.
    fn signer<'k>(&self, st: &'k ZoneState, now: u32) -> ZoneSigner<'k> {
        let sets = st.sets(now);
        ZoneSigner {
            zone: st.origin.clone(),
            ksks: st.pairs(&sets.ksk_signers),
            zsks: st.pairs(&sets.zsk_signers),
            now,
            policy: self.config.signature_policy(&st.origin),
        }
    }
    fn publish(&self, zone: Arc<Zone>) {
        let old = self.catalog.load();
        let zones = old
            .zones
            .iter()
            .map(|z| {
                if z.origin == zone.origin {
                    zone.clone()
                } else {
                    z.clone()
                }
            })
            .collect();
        drop(old);
        self.publish_catalog(Catalog { zones });
        self.journal.record(&zone, self.clock.now());
    }

    /// Swaps in a new catalog. The old one is freed here (the writer's thread) or, if a reader
    /// still holds it, kept until it is done and freed by a later writer ([`Self::reap`]):
    /// freeing a replaced zone version can take milliseconds, never on a DNS thread.
    fn publish_catalog(&self, catalog: Catalog) {
        let old = self.catalog.swap(Arc::new(catalog));
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|c| Arc::strong_count(c) > 1);
        if Arc::strong_count(&old) > 1 {
            retired.push(old);
        }
    }

    /// Frees the replaced catalogs no reader holds any more.
    fn reap(&self) {
        // a list of Arcs: a panic cannot leave it half-changed
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|c| Arc::strong_count(c) > 1);
    }

    /// The serial of zone `idx`'s next snapshot after `current`: one more than `current`, and
    /// above every serial served before this start. Serials are reserved in the store
    /// [`SERIAL_RESERVE`] at a time (a write per that many snapshots, not one per snapshot: a
    /// store write waits for any bulk import's transaction), and a start continues above the
    /// reservation, so a serial never goes back, whatever stops the server.
    fn take_serial(&self, inner: &mut Inner, idx: usize, current: u32) -> anyhow::Result<u32> {
        let st = &mut inner.zones[idx];
        let serial = next_serial(current.max(st.serial_floor));
        if st.serial_reserved.wrapping_sub(serial) > SERIAL_RESERVE {
            let mark = serial.wrapping_add(SERIAL_RESERVE).max(1);
            inner.store.set_serial(&st.origin, mark)?;
            st.serial_reserved = mark;
        }
        Ok(serial)
    }

    /// Looks up the earliest RRSIG expiration of every published zone (a scan of the snapshot,
    /// without holding the manager) for health.
    fn note_expiries(&self) {
        let origins: Vec<Name> = {
            let held = self.hold("listing the zones");
            held.zones.iter().map(|z| z.origin.clone()).collect()
        };
        for (idx, origin) in origins.iter().enumerate() {
            self.note_expiry(idx, origin);
        }
        self.progress.set_refreshed();
    }
}

/// How long one step of applying the change log should hold the zone manager: an API change
/// waits for at most one step. The entries per step adapt to it (see [`Inner::sync_batch`]).
const SYNC_STEP: std::time::Duration = std::time::Duration::from_millis(40);
/// Bounds of the entries per step.
const SYNC_BATCH_MIN: usize = 200;
const SYNC_BATCH_MAX: usize = 20_000;

/// RRsets signed again per snapshot by [`ZoneManager::refresh_signatures`] (about 30 ms of
/// ECDSA signing on one core).
const RESIGN_CHUNK: usize = 2_000;

/// Serials reserved in the store per write (see [`ZoneManager::take_serial`]).
const SERIAL_RESERVE: u32 = 1_000;

/// Gives the memory freed by a build back to the system (glibc keeps it otherwise, and the
/// build's transient peak would stay as resident memory).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap memory to the kernel; no pointer is
        // touched and it is safe to call at any time from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Logs what the zones hold in memory, by kind, beside the process's resident memory (on its own
/// thread: walking a million names takes a fraction of a second the start does not wait for).
fn log_memory(catalog: Arc<Catalog>) {
    let spawned = std::thread::Builder::new()
        .name("memory-report".into())
        .spawn(move || {
            let mut m = zones::MemoryUse::default();
            for z in &catalog.zones {
                m.add(&z.memory());
            }
            let mib = |b: usize| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
            let rss_mib = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                })
                .map_or(-1.0, |kib| (kib / 1024.0).round());
            tracing::info!(
                names = m.names,
                rrsets = m.rrsets,
                index_mib = mib(m.index),
                nodes_mib = mib(m.nodes),
                rrset_blocks_mib = mib(m.rrset_blocks),
                signatures_mib = mib(m.signatures),
                zones_mib = mib(m.total()),
                rss_mib,
                "zone memory"
            );
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no memory report");
    }
}

/// The next SOA serial (RFC 1982 arithmetic: adding 1 always moves forward).
fn next_serial(s: u32) -> u32 {
    s.wrapping_add(1).max(1)
}
