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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use arc_swap::ArcSwap;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{Name, RData, RecordType};
use keys::{KeyPair, Role, ZoneSigner};
use provisioner::{KeyRow, Store};
use zones::{Change, Rrset, Zone};

use crate::config::Config;

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

/// All served zones, deepest origin first. Immutable; replaced whole on every change.
#[derive(Debug, Default)]
pub struct Catalog {
    pub zones: Vec<Arc<Zone>>,
}

impl Catalog {
    /// The zone that answers `qname`: the deepest one containing it, except that DS at a zone
    /// apex is answered by the parent (RFC 4035 3.1.4.1).
    pub fn find(&self, qname: &Name, qtype: RecordType) -> Option<&Arc<Zone>> {
        let mut it = self.zones.iter().filter(|z| z.origin.zone_of(qname));
        let first = it.next()?;
        if qtype == RecordType::DS && first.origin == *qname {
            return it.next().or(Some(first));
        }
        Some(first)
    }

    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.iter().find(|z| z.origin == *origin)
    }
}

struct ZoneState {
    origin: Name,
    parent: Option<Name>,
    keys: Vec<KeyPair>,
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
    let algorithm = keys::algorithm_from_number(config.algorithm)?;
    let mut all = vec![(zone.clone(), None)];
    for p in config.partition_names()? {
        all.push((p, Some(zone.clone())));
    }
    for (z, parent) in all {
        store.ensure_zone(&z, parent.as_ref())?;
        store.add_keys_if_missing(&z, |existing| {
            let mut rows = Vec::new();
            for role in [Role::Ksk, Role::Zsk] {
                if existing.iter().any(|r| r.role == role.as_str() && r.removed_at.is_none()) {
                    continue;
                }
                let (der, pair) = KeyPair::generate(algorithm, role).map_err(|e| e.to_string())?;
                let file = format!("{}.{}.{}.pk8", z.to_ascii().trim_end_matches('.'), role, pair.key_tag);
                keys::write_private_key(&kd.join(&file), &der).map_err(|e| e.to_string())?;
                tracing::info!(zone = %z, role = %role, key_tag = pair.key_tag, algorithm = u8::from(algorithm), "generated key");
                rows.push(KeyRow {
                    id: 0,
                    zone: z.to_ascii(),
                    role: role.as_str().into(),
                    algorithm: u8::from(algorithm),
                    key_tag: pair.key_tag,
                    file,
                    created_at: now as i64,
                    published_at: Some(now as i64),
                    active_at: Some(now as i64),
                    retired_at: None,
                    removed_at: None,
                });
            }
            Ok(rows)
        })?;
    }
    Ok(store)
}

/// Loads the usable keys of a zone from the store rows and the key files.
pub fn load_keys(data_dir: &Path, rows: &[KeyRow]) -> anyhow::Result<Vec<KeyPair>> {
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| r.removed_at.is_none()) {
        let role = Role::parse(&row.role).ok_or_else(|| anyhow!("bad role {}", row.role))?;
        let alg = keys::algorithm_from_number(row.algorithm)?;
        let pair = KeyPair::load(&key_dir(data_dir).join(&row.file), alg, role)?;
        if pair.key_tag != row.key_tag {
            return Err(anyhow!(
                "key file {} has key tag {}, expected {}",
                row.file,
                pair.key_tag,
                row.key_tag
            ));
        }
        out.push(pair);
    }
    Ok(out)
}

impl ZoneManager {
    /// Opens the store (creating keys as needed) and builds every zone, signed, from it.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let now = clock.now();
        let store = init_data(&config, now)?;
        let zone = config.zone_name()?;
        let mut states = vec![ZoneState {
            origin: zone.clone(),
            parent: None,
            keys: Vec::new(),
        }];
        for p in config.partition_names()? {
            states.push(ZoneState {
                origin: p,
                parent: Some(zone.clone()),
                keys: Vec::new(),
            });
        }
        for st in &mut states {
            st.keys = load_keys(&config.data_dir, &store.keys(&st.origin)?)?;
        }
        let last_seq = store.last_change()?;
        let mgr = Self {
            catalog: ArcSwap::from_pointee(Catalog::default()),
            inner: Mutex::new(Inner {
                store,
                zones: states,
                last_seq,
            }),
            config,
            clock,
        };
        mgr.rebuild()?;
        Ok(mgr)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn signer<'k>(&self, st: &'k ZoneState, now: u32) -> ZoneSigner<'k> {
        ZoneSigner {
            zone: st.origin.clone(),
            ksks: st.keys.iter().filter(|k| k.role == Role::Ksk).collect(),
            zsks: st.keys.iter().filter(|k| k.role == Role::Zsk).collect(),
            now,
            policy: self.config.signatures.policy(),
        }
    }

    /// Builds all zones from scratch (at start): system records, stored content, all signed now.
    fn rebuild(&self) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().expect("zone manager lock");
        let inner = &mut *inner;
        let now = self.clock.now();
        let mut built = Vec::new();
        for i in 0..inner.zones.len() {
            let st = &inner.zones[i];
            let serial = next_serial(inner.store.serial(&st.origin)?);
            let signer = self.signer(st, now);
            let t0 = std::time::Instant::now();
            let zone = Zone::new(
                st.origin.clone(),
                self.config.ttl.soa,
                self.soa(&st.origin, serial),
                &signer,
            )?;
            let mut changes = self.system_rrsets(&inner.zones, i)?;
            for r in inner.store.zone_rrsets(&st.origin)? {
                if let Some(rrset) = Rrset::new(r.owner.to_lowercase(), r.ttl, r.data) {
                    changes.push(Change::Put(rrset));
                }
            }
            let n = changes.len();
            let zone = zone.apply(changes, &signer)?;
            inner.store.set_serial(&st.origin, serial)?;
            tracing::info!(zone = %st.origin, serial, rrsets = n, names = zone.nodes.len(), ms = t0.elapsed().as_millis() as u64, "zone built and signed");
            built.push(Arc::new(zone));
        }
        built.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        self.catalog.store(Arc::new(Catalog { zones: built }));
        Ok(())
    }

    fn soa(&self, origin: &Name, serial: u32) -> SOA {
        let ns1 = Name::from_ascii("ns1")
            .expect("label")
            .append_domain(origin)
            .expect("short");
        let rname = Name::from_ascii("hostmaster")
            .expect("label")
            .append_domain(origin)
            .expect("short");
        SOA::new(
            ns1,
            rname,
            serial,
            3600,
            600,
            1_209_600,
            self.config.ttl.negative,
        )
    }

    fn ns_names(origin: &Name) -> Vec<Name> {
        ["ns1", "ns2"]
            .iter()
            .map(|l| {
                Name::from_ascii(l)
                    .expect("label")
                    .append_domain(origin)
                    .expect("short")
            })
            .collect()
    }

    fn address_rrsets(&self, owner: &Name) -> Vec<Change> {
        let ttl = self.config.ttl.ns;
        let v4: Vec<RData> = self
            .config
            .ns_addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(RData::A(A(*v))),
                _ => None,
            })
            .collect();
        let v6: Vec<RData> = self
            .config
            .ns_addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v) => Some(RData::AAAA(AAAA(*v))),
                _ => None,
            })
            .collect();
        [v4, v6]
            .into_iter()
            .filter_map(|d| Rrset::new(owner.clone(), ttl, d))
            .map(Change::Put)
            .collect()
    }

    /// The records the server itself owns in zone `i`: NS and their addresses, DNSKEY, and
    /// for each child zone its delegation (NS, glue, DS).
    fn system_rrsets(&self, zones: &[ZoneState], i: usize) -> anyhow::Result<Vec<Change>> {
        let st = &zones[i];
        let ttl = &self.config.ttl;
        let mut out = Vec::new();
        let ns = Self::ns_names(&st.origin);
        out.push(Change::Put(
            Rrset::new(
                st.origin.clone(),
                ttl.ns,
                ns.iter().map(|n| RData::NS(NS(n.clone()))).collect(),
            )
            .expect("ns"),
        ));
        for n in &ns {
            out.extend(self.address_rrsets(n));
        }
        let dnskeys: Vec<RData> = st
            .keys
            .iter()
            .map(|k| RData::DNSSEC(DNSSECRData::DNSKEY(k.dnskey.clone())))
            .collect();
        out.push(Change::Put(
            Rrset::new(st.origin.clone(), ttl.dnskey, dnskeys).ok_or_else(|| anyhow!("no keys"))?,
        ));
        for child in zones
            .iter()
            .filter(|c| c.parent.as_ref() == Some(&st.origin))
        {
            let cns = Self::ns_names(&child.origin);
            out.push(Change::Put(
                Rrset::new(
                    child.origin.clone(),
                    ttl.ns,
                    cns.iter().map(|n| RData::NS(NS(n.clone()))).collect(),
                )
                .expect("ns"),
            ));
            for n in &cns {
                out.extend(self.address_rrsets(n));
            }
            let ds: Vec<RData> = child
                .keys
                .iter()
                .filter(|k| k.role == Role::Ksk)
                .map(|k| RData::DNSSEC(DNSSECRData::DS(k.ds(&child.origin))))
                .collect();
            if let Some(r) = Rrset::new(child.origin.clone(), ttl.ds, ds) {
                out.push(Change::Put(r));
            }
        }
        Ok(out)
    }

    /// Names the server owns in a zone; stored content never overrides them.
    fn is_system_name(&self, zones: &[ZoneState], zone: &Name, owner: &Name) -> bool {
        owner == zone
            || Self::ns_names(zone).contains(owner)
            || zones
                .iter()
                .any(|c| c.parent.as_ref() == Some(zone) && c.origin.zone_of(owner))
    }

    /// Applies every change logged in the store since the last call. Returns how many owners
    /// were brought up to date.
    pub fn sync(&self) -> anyhow::Result<usize> {
        let mut guard = self.inner.lock().expect("zone manager lock");
        let inner = &mut *guard;
        let mut total = 0;
        loop {
            let batch = inner.store.changes_since(inner.last_seq, 50_000)?;
            let Some(last) = batch.last().map(|c| c.0) else {
                break;
            };
            let mut touched: BTreeMap<Name, BTreeSet<Name>> = BTreeMap::new();
            for (_, zone, owner) in batch {
                touched.entry(zone).or_default().insert(owner);
            }
            for (zone, owners) in touched {
                total += owners.len();
                self.apply_owners(inner, &zone, owners)?;
            }
            inner.last_seq = last;
        }
        Ok(total)
    }

    fn apply_owners(
        &self,
        inner: &mut Inner,
        zone_name: &Name,
        owners: BTreeSet<Name>,
    ) -> anyhow::Result<()> {
        let Some(idx) = inner.zones.iter().position(|z| z.origin == *zone_name) else {
            tracing::warn!(zone = %zone_name, "change for a zone that is not served; ignored");
            return Ok(());
        };
        let catalog = self.catalog.load();
        let current = catalog
            .get(zone_name)
            .ok_or_else(|| anyhow!("zone {zone_name} not built"))?
            .clone();
        let mut changes = Vec::new();
        for owner in owners {
            if !zone_name.zone_of(&owner) || self.is_system_name(&inner.zones, zone_name, &owner) {
                tracing::warn!(zone = %zone_name, owner = %owner, "stored records at a name the server owns; ignored");
                continue;
            }
            let stored = inner.store.rrsets_at(zone_name, &owner)?;
            let node = current.nodes.get(&owner);
            let mut types = BTreeSet::new();
            for r in stored {
                types.insert(u16::from(r.rtype));
                let Some(new) = Rrset::new(owner.clone(), r.ttl, r.data) else {
                    continue;
                };
                let same = node
                    .and_then(|n| n.get(new.rtype))
                    .is_some_and(|cur| cur.ttl == new.ttl && cur.records == new.records);
                if !same {
                    changes.push(Change::Put(new));
                }
            }
            if let Some(node) = node {
                for r in &node.rrsets {
                    if !types.contains(&u16::from(r.rtype)) {
                        changes.push(Change::Delete(owner.clone(), r.rtype));
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.commit(inner, idx, &current, changes)
    }

    /// Applies changes plus a new SOA to zone `idx`, stores the serial, publishes the snapshot.
    fn commit(
        &self,
        inner: &mut Inner,
        idx: usize,
        current: &Zone,
        mut changes: Vec<Change>,
    ) -> anyhow::Result<()> {
        let st = &inner.zones[idx];
        let serial = next_serial(current.serial());
        changes.push(Change::Put(
            Rrset::new(
                st.origin.clone(),
                self.config.ttl.soa,
                vec![RData::SOA(self.soa(&st.origin, serial))],
            )
            .expect("soa"),
        ));
        let signer = self.signer(st, self.clock.now());
        let new = current.apply(changes, &signer)?;
        inner.store.set_serial(&st.origin, serial)?;
        self.publish(Arc::new(new));
        Ok(())
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
    }

    /// Signs again every RRset whose signatures expire within the refresh window (or that
    /// lacks them). Returns how many RRsets were signed.
    pub fn refresh_signatures(&self) -> anyhow::Result<usize> {
        let mut guard = self.inner.lock().expect("zone manager lock");
        let inner = &mut *guard;
        let now = self.clock.now();
        let horizon = now.saturating_add(self.config.signatures.refresh);
        let mut total = 0;
        for idx in 0..inner.zones.len() {
            let current = self.catalog.load().get(&inner.zones[idx].origin).cloned();
            let Some(current) = current else { continue };
            let due = current.expiring_before(horizon);
            if due.is_empty() {
                continue;
            }
            total += due.len();
            tracing::info!(zone = %current.origin, rrsets = due.len(), "refreshing signatures");
            let changes = due.into_iter().map(|(n, t)| Change::Resign(n, t)).collect();
            self.commit(inner, idx, &current, changes)?;
        }
        Ok(total)
    }
}

/// The next SOA serial (RFC 1982 arithmetic: adding 1 always moves forward).
fn next_serial(s: u32) -> u32 {
    s.wrapping_add(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct TestClock(AtomicU32);
    impl Clock for TestClock {
        fn now(&self) -> u32 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    fn all_sig_windows(cat: &Catalog) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for z in &cat.zones {
            for r in z.records() {
                for s in &r.rrsigs {
                    let s = keys::verify::as_rrsig(s).unwrap();
                    out.push((
                        s.input().sig_inception.get(),
                        s.input().sig_expiration.get(),
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn signatures_are_refreshed_before_expiry_with_a_clock() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_800_000_000;
        let clock = Arc::new(TestClock(AtomicU32::new(t0)));
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        let serial0 = mgr.catalog.load().zones[0].serial();
        // nothing to do at t0
        assert_eq!(mgr.refresh_signatures().unwrap(), 0);
        // 8 days later every signature is within the 7-day refresh window of its expiry
        clock.0.store(t0 + 8 * 86400, Ordering::SeqCst);
        assert!(mgr.refresh_signatures().unwrap() > 0);
        for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
            assert!(
                inc <= t0 + 8 * 86400 && exp > t0 + 8 * 86400 + 7 * 86400,
                "fresh window {inc}..{exp}"
            );
        }
        assert!(
            mgr.catalog.load().zones[0].serial() > serial0,
            "serial moves with every change"
        );
    }

    #[test]
    fn restart_after_long_stop_never_serves_expired_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_800_000_000;
        let clock = Arc::new(TestClock(AtomicU32::new(t0)));
        let serial = {
            let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
            mgr.catalog.load().zones[0].serial()
        };
        // stopped for 30 days (longer than the validity)
        let t1 = t0 + 30 * 86400;
        clock.0.store(t1, Ordering::SeqCst);
        let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
        for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
            assert!(inc <= t1 && t1 < exp, "window {inc}..{exp} at {t1}");
        }
        assert!(
            mgr.catalog.load().zones[0].serial() > serial,
            "serial increases across restarts"
        );
    }
}
