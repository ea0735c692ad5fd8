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
//! that approach expiry or were made by a key that no longer signs), `resume` (the checkpoint).

mod build;
mod catalog;
pub mod checkpoint;
mod follow;
mod refresh;
mod resume;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use keys::rollover::{key_sets, KeySets, KeyTimes, Parent};
use keys::{KeyPair, ZoneSigner};
use provisioner::{KeyRow, Store};
use zones::Zone;

pub use catalog::Catalog;

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
    /// Recent snapshots of every zone (IXFR) and the signal of a new one (NOTIFY).
    pub journal: crate::xfr::Journal,
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
            states.push(ZoneState {
                kind: config.parent_kind(&z),
                keys: load_keys(&config, &store.keys(&z)?)?,
                key_version: versions
                    .iter()
                    .find(|(n, _)| *n == z)
                    .map_or(0, |(_, v)| *v),
                origin: z,
                parent,
            });
        }
        let last_seq = store.last_change()?;
        let config_ixfr = config.ixfr;
        let mgr = Self {
            catalog: ArcSwap::from_pointee(Catalog::default()),
            inner: Mutex::new(Inner {
                store,
                zones: states,
                last_seq,
            }),
            config,
            clock,
            checkpointed: Mutex::new(None),
            resumed: false,
            journal: crate::xfr::Journal::new(config_ixfr.max_bytes, config_ixfr.max_age),
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
        Ok(mgr)
    }

    pub fn config(&self) -> &Config {
        &self.config
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
        self.catalog.store(Arc::new(Catalog { zones }));
        self.journal.record(&zone, self.clock.now());
    }
}

/// Changes of the store's log applied per snapshot (and per hold of the zone manager).
const SYNC_BATCH: usize = 20_000;

/// RRsets signed again per snapshot by [`ZoneManager::refresh_signatures`] (about a quarter of
/// a second of ECDSA signing on one core).
const RESIGN_CHUNK: usize = 20_000;

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

/// The next SOA serial (RFC 1982 arithmetic: adding 1 always moves forward).
fn next_serial(s: u32) -> u32 {
    s.wrapping_add(1).max(1)
}
