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
use keys::rollover::{key_sets, KeySets, KeyTimes, Parent};
use keys::{KeyPair, ZoneSigner};
use provisioner::{KeyRow, Store};
use zones::{Change, Rrset, Zone};

use crate::config::Config;
use crate::{checkpoint, lifecycle};

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
        Ok(mgr)
    }

    /// The parts of the configuration that shape the zones and their signatures (and the binary
    /// and format versions): a checkpoint made under another fingerprint is not used.
    fn fingerprint(&self) -> String {
        let c = &self.config;
        format!(
            "mxdns {} snapshot {} zone {:?} partitions {:?} algorithm {} ns {:?} ttl {:?} signatures {:?} keys {:?}",
            env!("CARGO_PKG_VERSION"),
            zones::snapshot::FORMAT,
            c.zone,
            c.partitions,
            c.algorithm,
            c.ns_addresses,
            c.ttl,
            c.signatures,
            c.keys
        )
    }

    /// Starts from the checkpoint when it is usable: publishes its zones, applies the change
    /// log since its position, brings the server's own records (NS, DNSKEY, DS, ...) up to date
    /// with a new serial, and signs again whatever is due. `Ok(false)`: there is none.
    fn resume(&self) -> anyhow::Result<bool> {
        let t0 = std::time::Instant::now();
        let fingerprint = self.fingerprint();
        {
            let mut guard = self.inner.lock().expect("zone manager lock");
            let inner = &mut *guard;
            let expect: Vec<(Name, i64)> = inner
                .zones
                .iter()
                .map(|z| (z.origin.clone(), z.key_version))
                .collect();
            let last_change = inner.store.last_change()?;
            let store = &inner.store;
            let read = checkpoint::read(&self.config.data_dir, |h| {
                if h.fingerprint != fingerprint {
                    anyhow::bail!("made by another version or configuration");
                }
                if h.zones != expect {
                    anyhow::bail!("zones or keys changed since");
                }
                if h.last_seq > last_change {
                    anyhow::bail!("the store is older than the checkpoint");
                }
                // the log must hold every change after the checkpoint's position
                if let Some((first, _, _)) = store.changes_since(h.last_seq, 1)?.first() {
                    if *first != h.last_seq + 1 {
                        anyhow::bail!("the change log was pruned past the checkpoint");
                    }
                }
                Ok(())
            })?;
            let Some((header, zones)) = read else {
                return Ok(false);
            };
            let serials: Vec<u32> = zones.iter().map(|z| z.serial()).collect();
            let mut zones: Vec<Arc<Zone>> = zones.into_iter().map(Arc::new).collect();
            zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
            self.catalog.store(Arc::new(Catalog { zones }));
            inner.last_seq = header.last_seq;
            *self.checkpointed.lock().expect("checkpoint lock") = Some(serials);
            tracing::info!(
                ms = t0.elapsed().as_millis() as u64,
                last_seq = header.last_seq,
                "checkpoint read"
            );
        }
        let changed = self.sync()?;
        {
            let mut guard = self.inner.lock().expect("zone manager lock");
            let inner = &mut *guard;
            for idx in 0..inner.zones.len() {
                self.update_system(inner, idx)?;
            }
        }
        let resigned = self.refresh_signatures()?;
        tracing::info!(owners = changed, resigned, "checkpoint brought up to date");
        release_free_memory();
        Ok(true)
    }

    /// Writes the checkpoint if the zones changed since the last one (or `force`). Returns the
    /// bytes written (0: nothing to do). The zone manager is not held while writing.
    pub fn write_checkpoint(&self, force: bool) -> anyhow::Result<u64> {
        if self.config.checkpoint_interval == 0 && !force {
            return Ok(0);
        }
        let mut done = self.checkpointed.lock().expect("checkpoint lock");
        let (catalog, header) = {
            let inner = self.inner.lock().expect("zone manager lock");
            let catalog = self.catalog.load_full();
            let header = checkpoint::Header {
                fingerprint: self.fingerprint(),
                last_seq: inner.last_seq,
                zones: inner
                    .zones
                    .iter()
                    .map(|z| (z.origin.clone(), z.key_version))
                    .collect(),
            };
            (catalog, header)
        };
        let mut zones = Vec::new();
        for (origin, _) in &header.zones {
            zones.push(
                catalog
                    .get(origin)
                    .ok_or_else(|| anyhow!("zone {origin} not built"))?
                    .as_ref(),
            );
        }
        let serials: Vec<u32> = zones.iter().map(|z| z.serial()).collect();
        if !force && done.as_ref() == Some(&serials) {
            return Ok(0);
        }
        let t0 = std::time::Instant::now();
        let bytes = checkpoint::write(&self.config.data_dir, &header, &zones)?;
        tracing::info!(
            bytes,
            ms = t0.elapsed().as_millis() as u64,
            last_seq = header.last_seq,
            "checkpoint written"
        );
        *done = Some(serials);
        Ok(bytes)
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
            let changes = self.system_rrsets(&inner.zones, i, now)?;
            let mut n = changes.len();
            let mut zone = zone.apply(changes, &signer)?;
            // stored content page by page: what is in flight stays bounded, whatever the size
            let mut after = String::new();
            loop {
                let (page, next) = inner.store.zone_rrsets_page(&st.origin, &after, 100_000)?;
                let changes: Vec<Change> = page
                    .into_iter()
                    .filter_map(|r| Rrset::new(r.owner.to_lowercase(), r.ttl, r.data))
                    .map(Change::Put)
                    .collect();
                n += changes.len();
                zone = zone.apply(changes, &signer)?;
                match next {
                    Some(a) => after = a,
                    None => break,
                }
            }
            inner.store.set_serial(&st.origin, serial)?;
            tracing::info!(zone = %st.origin, serial, rrsets = n, names = zone.len(), ms = t0.elapsed().as_millis() as u64, "zone built and signed");
            built.push(Arc::new(zone));
        }
        built.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        self.catalog.store(Arc::new(Catalog { zones: built }));
        release_free_memory();
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

    /// The records the server itself owns in zone `i` at `now`: NS and their addresses,
    /// DNSKEY (and CDS/CDNSKEY while the apex's new KSK waits for the parent), and for each
    /// child zone its delegation (NS, glue, DS).
    fn system_rrsets(
        &self,
        zones: &[ZoneState],
        i: usize,
        now: u32,
    ) -> anyhow::Result<Vec<Change>> {
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
        let sets = st.sets(now);
        let dnskeys: Vec<RData> = st
            .pairs(&sets.dnskey)
            .into_iter()
            .map(|k| RData::DNSSEC(DNSSECRData::DNSKEY(k.dnskey.clone())))
            .collect();
        out.push(Change::Put(
            Rrset::new(st.origin.clone(), ttl.dnskey, dnskeys).ok_or_else(|| anyhow!("no keys"))?,
        ));
        let cds: Vec<RData> = st
            .pairs(&sets.cds)
            .into_iter()
            .map(|k| RData::DNSSEC(DNSSECRData::CDS(k.cds(&st.origin))))
            .collect();
        let cdnskey: Vec<RData> = st
            .pairs(&sets.cds)
            .into_iter()
            .map(|k| RData::DNSSEC(DNSSECRData::CDNSKEY(k.cdnskey())))
            .collect();
        for (rtype, data) in [(RecordType::CDS, cds), (RecordType::CDNSKEY, cdnskey)] {
            match Rrset::new(st.origin.clone(), ttl.dnskey, data) {
                Some(r) => out.push(Change::Put(r)),
                None => out.push(Change::Delete(st.origin.clone(), rtype)),
            }
        }
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
                .pairs(&child.sets(now).parent_ds)
                .into_iter()
                .map(|k| RData::DNSSEC(DNSSECRData::DS(k.ds(&child.origin))))
                .collect();
            if let Some(r) = Rrset::new(child.origin.clone(), ttl.ds, ds) {
                out.push(Change::Put(r));
            }
        }
        Ok(out)
    }

    /// Names the server owns in a zone (`ns`: its name servers' names); stored content never
    /// overrides them.
    fn is_system_name(zones: &[ZoneState], zone: &Name, ns: &[Name], owner: &Name) -> bool {
        owner == zone
            || ns.contains(owner)
            || zones
                .iter()
                .any(|c| c.parent.as_ref() == Some(zone) && c.origin.zone_of(owner))
    }

    /// Applies every change logged in the store since the last call. Returns how many owners
    /// were brought up to date.
    pub fn sync(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        // one batch of the log at a time, the zone manager released between them (a bulk
        // import's backlog does not hold back the other writers' turns)
        loop {
            let mut guard = self.inner.lock().expect("zone manager lock");
            let inner = &mut *guard;
            let batch = inner.store.changes_since(inner.last_seq, SYNC_BATCH)?;
            let Some(last) = batch.last().map(|c| c.0) else {
                break;
            };
            let mut touched: BTreeMap<Name, BTreeSet<Name>> = BTreeMap::new();
            for (_, zone, owner) in batch {
                touched.entry(zone).or_default().insert(owner);
            }
            let after = inner.last_seq;
            for (zone, owners) in touched {
                total += owners.len();
                self.apply_owners(inner, &zone, owners, (after, last))?;
            }
            inner.last_seq = last;
        }
        let (zones, resign) = {
            let mut guard = self.inner.lock().expect("zone manager lock");
            self.follow_keys(&mut guard)?
        };
        total += zones;
        if resign {
            // a new ZSK signs: everything signed by the old one is signed again, in chunks
            total += self.refresh_signatures()?;
        }
        if total >= 10_000 {
            // a bulk change (an import) leaves freed build memory behind; give it back
            release_free_memory();
        }
        Ok(total)
    }

    /// Reloads the keys of every zone whose `key_version` moved (a rollover step, by this
    /// process or another) and publishes what changed: DNSKEY, CDS/CDNSKEY, the DS in the
    /// parent. Returns how many zones, and whether a zone's signing ZSK changed (then
    /// [`ZoneManager::refresh_signatures`] signs what the old one signed).
    fn follow_keys(&self, inner: &mut Inner) -> anyhow::Result<(usize, bool)> {
        let now = self.clock.now();
        let mut dirty: BTreeMap<usize, bool> = BTreeMap::new(); // zone index -> re-sign all
        for (zone, version) in inner.store.key_versions()? {
            let Some(idx) = inner.zones.iter().position(|z| z.origin == zone) else {
                continue;
            };
            if inner.zones[idx].key_version == version {
                continue;
            }
            let rows = inner.store.keys(&zone)?;
            let st = &mut inner.zones[idx];
            let before = st.sets(now);
            st.keys = load_keys(&self.config, &rows)?;
            st.key_version = version;
            let after = st.sets(now);
            tracing::info!(zone = %zone, key_version = version, dnskey = ?after.dnskey.len(), "keys changed");
            let resign = before.zsk_signers != after.zsk_signers;
            *dirty.entry(idx).or_default() |= resign;
            if let Some(p) = st.parent.clone() {
                if let Some(pi) = inner.zones.iter().position(|z| z.origin == p) {
                    dirty.entry(pi).or_default();
                }
            }
        }
        let n = dirty.len();
        let mut resign = false;
        for (idx, resign_all) in dirty {
            self.update_system(inner, idx)?;
            resign |= resign_all;
        }
        Ok((n, resign))
    }

    /// Brings the records the server owns in zone `idx` (NS, addresses, DNSKEY, CDS/CDNSKEY,
    /// child delegations) up to date and signs the DNSKEY RRset again; commits with a new serial.
    fn update_system(&self, inner: &mut Inner, idx: usize) -> anyhow::Result<()> {
        let now = self.clock.now();
        let origin = inner.zones[idx].origin.clone();
        let current = self
            .catalog
            .load()
            .get(&origin)
            .cloned()
            .ok_or_else(|| anyhow!("zone {origin} not built"))?;
        let mut changes = Vec::new();
        for c in self.system_rrsets(&inner.zones, idx, now)? {
            let keep = match &c {
                Change::Put(r) => current
                    .node(&r.name())
                    .and_then(|n| n.get(r.rtype))
                    .is_none_or(|cur| !cur.same_data(r)),
                Change::Delete(name, t) => current.node(name).and_then(|n| n.get(*t)).is_some(),
                _ => true,
            };
            if keep {
                changes.push(c);
            }
        }
        // the DNSKEY RRset is signed again whenever keys changed (its signers may have)
        changes.push(Change::Resign(origin.clone(), RecordType::DNSKEY));
        self.commit(inner, idx, &current, changes)
    }

    /// Brings `owners` (logged in `zone_name` in the change log's range `seqs`) in step with the
    /// store.
    fn apply_owners(
        &self,
        inner: &mut Inner,
        zone_name: &Name,
        owners: BTreeSet<Name>,
        seqs: (i64, i64),
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
        let ns = Self::ns_names(zone_name);
        // what the store holds now at every owner of the range, in one query
        let mut stored_at: std::collections::HashMap<Name, Vec<provisioner::StoredRrset>> =
            std::collections::HashMap::with_capacity(owners.len());
        for r in inner.store.rrsets_changed(zone_name, seqs.0, seqs.1)? {
            stored_at.entry(r.owner.clone()).or_default().push(r);
        }
        for owner in owners {
            if !zone_name.zone_of(&owner)
                || Self::is_system_name(&inner.zones, zone_name, &ns, &owner)
            {
                tracing::warn!(zone = %zone_name, owner = %owner, "stored records at a name the server owns; ignored");
                continue;
            }
            let stored = stored_at.remove(&owner).unwrap_or_default();
            let node = current.node(&owner);
            let mut types = BTreeSet::new();
            for r in stored {
                types.insert(u16::from(r.rtype));
                let Some(new) = Rrset::new(owner.clone(), r.ttl, r.data) else {
                    continue;
                };
                let same = node
                    .and_then(|n| n.get(new.rtype))
                    .is_some_and(|cur| cur.same_data(&new));
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
        // never below what was served before (a checkpoint may be older than the last serial)
        let serial = next_serial(current.serial().max(inner.store.serial(&st.origin)?));
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

    /// Signs again every RRset whose signatures expire within the refresh window, that lacks
    /// them, or that is not signed by exactly the keys that sign now (after a ZSK switch: the
    /// old key's signatures stay valid while it is published, `keys.timing` Iret after the
    /// switch, and this finishes within minutes). What is due is found once per zone, then
    /// signed in chunks of `RESIGN_CHUNK` RRsets, each its own snapshot, with the zone manager
    /// released in between so that provisioning changes keep their latency. Returns how many
    /// RRsets were signed.
    pub fn refresh_signatures(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut total = 0;
        let zones = self.inner.lock().expect("zone manager lock").zones.len();
        for idx in 0..zones {
            let (origin, due) = {
                let guard = self.inner.lock().expect("zone manager lock");
                let st = &guard.zones[idx];
                let horizon = now.saturating_add(self.config.signature_policy(&st.origin).refresh);
                let sets = st.sets(now);
                let tags =
                    |ids: &[i64]| -> Vec<u16> { st.pairs(ids).iter().map(|k| k.key_tag).collect() };
                let (ksk, zsk) = (tags(&sets.ksk_signers), tags(&sets.zsk_signers));
                let Some(current) = self.catalog.load().get(&st.origin).cloned() else {
                    continue;
                };
                (st.origin.clone(), current.due(horizon, &ksk, &zsk))
            };
            if due.is_empty() {
                continue;
            }
            total += due.len();
            tracing::info!(zone = %origin, rrsets = due.len(), "signing again: expiring, or not signed by the current keys");
            for chunk in due.chunks(RESIGN_CHUNK) {
                let mut guard = self.inner.lock().expect("zone manager lock");
                let Some(current) = self.catalog.load().get(&origin).cloned() else {
                    break;
                };
                let changes = chunk
                    .iter()
                    .map(|(n, t)| Change::Resign(n.clone(), *t))
                    .collect();
                self.commit(&mut guard, idx, &current, changes)?;
            }
        }
        Ok(total)
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
                for s in &r.rrsigs() {
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

    /// Every RRSIG of every zone verifies at `now` with the zone's DNSKEY RRset; DNSKEY is
    /// signed by KSKs only, everything else by one ZSK; each partition's DS in the apex matches
    /// a KSK that signs the partition's DNSKEY RRset. Returns the key tags in DNSKEY per zone.
    fn assert_valid(cat: &Catalog, now: u32) -> BTreeMap<Name, Vec<u16>> {
        use hickory_proto::dnssec::rdata::DNSKEY;
        let mut tags = BTreeMap::new();
        let mut ksk_signers: BTreeMap<Name, BTreeSet<u16>> = BTreeMap::new();
        for z in &cat.zones {
            let apex = z.apex().unwrap();
            let keys: Vec<DNSKEY> = apex
                .get(RecordType::DNSKEY)
                .unwrap()
                .records()
                .iter()
                .filter_map(|r| keys::verify::as_dnskey(r).cloned())
                .collect();
            let mut zsk_tags = BTreeSet::new();
            for r in z.records() {
                for s in &r.rrsigs() {
                    let sig = keys::verify::as_rrsig(s).unwrap();
                    let key = keys::verify::verify_rrsig(&z.origin, &r.records(), sig, &keys, now)
                        .unwrap_or_else(|e| {
                            panic!("{} {} in {}: {e}", r.name(), r.rtype, z.origin)
                        });
                    if matches!(r.rtype, RecordType::CDS | RecordType::CDNSKEY) {
                        // RFC 7344 4.1: signed by a key of the current DS (a KSK)
                        assert_eq!(key.flags(), 257, "{} signed by a KSK", r.rtype);
                    } else if r.rtype == RecordType::DNSKEY {
                        assert_eq!(key.flags(), 257, "DNSKEY signed by a KSK");
                        ksk_signers
                            .entry(z.origin.clone())
                            .or_default()
                            .insert(sig.input().key_tag);
                    } else {
                        assert_eq!(key.flags(), 256, "{} {} signed by a ZSK", r.name(), r.rtype);
                        zsk_tags.insert(sig.input().key_tag);
                    }
                }
            }
            assert_eq!(
                zsk_tags.len(),
                1,
                "one ZSK signs {}: {zsk_tags:?}",
                z.origin
            );
            for t in [RecordType::SOA, RecordType::DNSKEY] {
                assert!(apex.get(t).is_some_and(|r| r.is_signed()), "{t} signed");
            }
            tags.insert(
                z.origin.clone(),
                keys.iter()
                    .map(|k| k.calculate_key_tag().unwrap())
                    .collect(),
            );
        }
        let apex = cat
            .zones
            .iter()
            .find(|z| z.origin.num_labels() == 2)
            .unwrap();
        for child in cat.zones.iter().filter(|z| z.origin.num_labels() == 3) {
            let ds = apex
                .node(&child.origin)
                .unwrap()
                .get(RecordType::DS)
                .unwrap();
            for d in &ds.records() {
                let RData::DNSSEC(DNSSECRData::DS(d)) = &d.data else {
                    panic!()
                };
                assert!(
                    ksk_signers[&child.origin].contains(&d.key_tag()),
                    "DS {} of {} without a signing KSK",
                    d.key_tag(),
                    child.origin
                );
            }
        }
        tags
    }

    #[test]
    fn rollovers_with_a_clock_keep_every_zone_valid() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.keys.timing.zsk_lifetime = 5 * 86400;
        config.keys.timing.ksk_lifetime = 12 * 86400;
        config.keys.retention = 2 * 86400;
        let t0 = 1_800_000_000u32;
        let clock = Arc::new(TestClock(AtomicU32::new(t0)));
        let mut mgr = ZoneManager::open(config.clone(), clock.clone()).unwrap();
        let mut store = Store::open(&db_path(dir.path())).unwrap();
        let first = assert_valid(&mgr.catalog.load(), t0);
        let mut restarts = 0;
        let apex = config.zone_name().unwrap();
        let mut seen: BTreeMap<Name, BTreeSet<u16>> = BTreeMap::new();
        let mut confirmed = 0;
        let mut t = t0;
        while t < t0 + 30 * 86400 {
            t += 1800;
            clock.0.store(t, Ordering::SeqCst);
            if (t - t0).is_multiple_of(61 * 3600) {
                // a restart in the middle of whatever is under way resumes it from the store
                drop(mgr);
                mgr = ZoneManager::open(config.clone(), clock.clone()).unwrap();
                let tags = assert_valid(&mgr.catalog.load(), t);
                if tags.values().any(|k| k.len() > 2) {
                    restarts += 1; // in the middle of a rollover
                }
            }
            lifecycle::check_all(&config, &mut store, t as u64).unwrap();
            mgr.sync().unwrap();
            // the operator confirms the apex's new DS a day after the CDS appeared
            let status = lifecycle::status(&config, &store, Some(&apex), t as u64).unwrap();
            if let Some(w) = &status[0].waiting_for_parent {
                let cds = mgr
                    .catalog
                    .load()
                    .get(&apex)
                    .unwrap()
                    .apex()
                    .unwrap()
                    .get(RecordType::CDS)
                    .cloned();
                assert!(
                    cds.is_some_and(|c| c.is_signed()),
                    "signed CDS while waiting"
                );
                if t as u64 >= w.since.unwrap().unix + 86400 {
                    lifecycle::roll_zone(
                        &config,
                        &mut store,
                        &apex,
                        t as u64,
                        Some(lifecycle::Request::DsSeen),
                    )
                    .unwrap();
                    confirmed += 1;
                }
            }
            mgr.sync().unwrap();
            mgr.refresh_signatures().unwrap();
            for (z, tags) in assert_valid(&mgr.catalog.load(), t) {
                seen.entry(z).or_default().extend(tags);
            }
        }
        assert_eq!(confirmed, 2, "two apex KSK rollovers confirmed in 30 days");
        assert!(restarts >= 3, "restarts during rollovers: {restarts}");
        let last = assert_valid(&mgr.catalog.load(), t);
        for (z, tags) in &last {
            assert!(
                seen[z].len() >= 2 + 5,
                "{z}: ZSKs and KSKs rolled: {:?}",
                seen[z]
            );
            assert!(
                first[z].iter().all(|k| !tags.contains(k)),
                "{z}: the first keys are gone: {:?} -> {tags:?}",
                first[z]
            );
        }
        // removed keys keep their rows; files go after the retention time
        let rows = store.keys(&apex).unwrap();
        assert!(rows.iter().any(|r| r.purged_at.is_some()));
        for r in &rows {
            let exists = key_dir(dir.path()).join(&r.file).exists();
            assert_eq!(exists, r.purged_at.is_none(), "{}", r.file);
        }
    }

    #[test]
    fn per_zone_policy_algorithm_and_signature_validity() {
        let dir = tempfile::tempdir().unwrap();
        let config: Config = toml::from_str(&format!(
            "data_dir = \"{}\"\n[keys.zone.\"o-v1.mx.example.\"]\nalgorithm = 15\nsignature_validity = 864000\nsignature_refresh = 172800\nzsk_lifetime = 86400\n",
            dir.path().display()
        ))
        .unwrap();
        config.validate().unwrap();
        let t0 = 1_800_000_000;
        let mgr =
            ZoneManager::open(config.clone(), Arc::new(TestClock(AtomicU32::new(t0)))).unwrap();
        assert_valid(&mgr.catalog.load(), t0);
        let partition = Name::from_ascii("o-v1.mx.example.").unwrap();
        let apex = config.zone_name().unwrap();
        for z in &mgr.catalog.load().zones {
            let dnskey = z.apex().unwrap().get(RecordType::DNSKEY).unwrap();
            for r in dnskey.records().iter().chain(&dnskey.rrsigs()) {
                let alg = match keys::verify::as_dnskey(r) {
                    Some(k) => {
                        u8::from(hickory_proto::dnssec::PublicKey::algorithm(k.public_key()))
                    }
                    None => u8::from(keys::verify::as_rrsig(r).unwrap().input().algorithm),
                };
                assert_eq!(alg, if z.origin == partition { 15 } else { 13 });
            }
            let soa = z.soa().unwrap();
            let exp = keys::verify::as_rrsig(&soa.rrsigs()[0])
                .unwrap()
                .input()
                .sig_expiration
                .get();
            let validity = if z.origin == partition { 10 } else { 14 } * 86400;
            assert!(
                exp <= t0 + validity && exp > t0 + validity - 86400,
                "{}",
                z.origin
            );
        }
        assert_eq!(config.key_policy(&partition, 0).zsk_lifetime, 86400);
        assert_eq!(config.key_policy(&apex, 0).zsk_lifetime, 30 * 86400);
        assert_eq!(
            config.key_policy(&apex, 0).parent_ds_ttl,
            86400,
            "apex: the registry's TTL"
        );
        assert_eq!(
            config.key_policy(&partition, 0).parent_ds_ttl,
            3600,
            "partitions: our ttl.ds"
        );
        assert_eq!(
            config.key_policy(&partition, 90_000).max_zone_ttl,
            90_000,
            "stored TTLs count"
        );
        // a zone that is not served, or a lifetime shorter than Ipub, is refused
        let bad: Config =
            toml::from_str("[keys.zone.\"example.org.\"]\nzsk_lifetime = 86400\n").unwrap();
        assert!(bad.validate().is_err());
        let bad: Config = toml::from_str("[keys.timing]\nzsk_lifetime = 600\n").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("publish interval"));
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

    /// Every RRset of `z` as (owner, type, TTL, records), the content a validator sees apart
    /// from signatures.
    fn content(cat: &Catalog) -> BTreeSet<(String, u16, u32, String)> {
        let mut out = BTreeSet::new();
        for z in &cat.zones {
            for r in z.records() {
                if r.rtype == RecordType::SOA {
                    continue;
                }
                let data: Vec<String> = r.data().iter().map(|d| d.to_string()).collect();
                out.insert((
                    r.name().to_ascii(),
                    u16::from(r.rtype),
                    r.ttl,
                    data.join(" "),
                ));
            }
        }
        out
    }

    fn put_host(dir: &Path, host: &str, addr: [u8; 4]) {
        use provisioner::store::{Batch, BatchOp};
        let mut store = Store::open(&db_path(dir)).unwrap();
        let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
        let owner = Name::from_ascii(host).unwrap();
        let batch = Batch {
            ops: vec![BatchOp::set(
                &zone,
                &owner,
                RecordType::A,
                300,
                vec![RData::A(A::from(std::net::Ipv4Addr::from(addr)))],
            )],
        };
        store.write(&batch, 0).unwrap();
    }

    #[test]
    fn a_start_resumes_from_the_checkpoint_and_applies_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_800_000_000;
        let clock = Arc::new(TestClock(AtomicU32::new(t0)));
        put_host(dir.path(), "a.o-v1.mx.example.", [192, 0, 2, 1]);
        let (serial, bytes) = {
            let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
            assert!(!mgr.resumed, "nothing to resume from at first");
            let serial = mgr
                .catalog
                .load()
                .zones
                .iter()
                .map(|z| z.serial())
                .max()
                .unwrap();
            (serial, mgr.write_checkpoint(false).unwrap())
        };
        assert!(bytes > 0);
        // changes after the checkpoint: a new host, a changed one
        put_host(dir.path(), "b.o-v1.mx.example.", [192, 0, 2, 2]);
        put_host(dir.path(), "a.o-v1.mx.example.", [192, 0, 2, 9]);
        clock.0.store(t0 + 3600, Ordering::SeqCst);
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        assert!(mgr.resumed, "resumed from the checkpoint");
        assert_valid(&mgr.catalog.load(), t0 + 3600);
        for z in &mgr.catalog.load().zones {
            assert!(z.serial() > serial, "serial moves forward: {}", z.serial());
        }
        // the same content as a full build from the store
        let resumed = content(&mgr.catalog.load());
        assert!(resumed
            .iter()
            .any(|c| c.0 == "b.o-v1.mx.example." && c.3 == "192.0.2.2"));
        assert!(resumed
            .iter()
            .any(|c| c.0 == "a.o-v1.mx.example." && c.3 == "192.0.2.9"));
        drop(mgr);
        std::fs::remove_file(checkpoint::path(dir.path())).unwrap();
        let built = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        assert!(!built.resumed);
        assert_eq!(content(&built.catalog.load()), resumed);

        // a damaged checkpoint is not used
        built.write_checkpoint(true).unwrap();
        drop(built);
        let p = checkpoint::path(dir.path());
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        assert!(!mgr.resumed, "damaged checkpoint refused");
        assert_valid(&mgr.catalog.load(), t0 + 3600);

        // 30 days later (longer than the validity): resumed, every signature fresh
        mgr.write_checkpoint(true).unwrap();
        drop(mgr);
        let t1 = t0 + 30 * 86400;
        clock.0.store(t1, Ordering::SeqCst);
        let mgr = ZoneManager::open(config(dir.path()), clock.clone()).unwrap();
        assert!(mgr.resumed);
        assert_valid(&mgr.catalog.load(), t1);
        for (inc, exp) in all_sig_windows(&mgr.catalog.load()) {
            assert!(inc <= t1 && t1 < exp, "window {inc}..{exp} at {t1}");
        }

        // keys changed since the checkpoint (a rollover step stored): full build
        mgr.write_checkpoint(true).unwrap();
        drop(mgr);
        let mut store = Store::open(&db_path(dir.path())).unwrap();
        let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
        lifecycle::roll_zone(
            &config(dir.path()),
            &mut store,
            &zone,
            t1 as u64,
            Some(lifecycle::Request::Roll(keys::rollover::KeyRole::Zsk)),
        )
        .unwrap();
        drop(store);
        let mgr = ZoneManager::open(config(dir.path()), clock).unwrap();
        assert!(!mgr.resumed, "key version moved: not resumed");
        assert_valid(&mgr.catalog.load(), t1);
    }
}
