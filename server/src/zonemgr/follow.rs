//! Following the store: the change log (writes of this process or another) and the zones' key
//! versions (rollover steps) become new signed snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::anyhow;
use hickory_proto::rr::{Name, RData, RecordType};
use zones::{Change, Rrset, Zone};

use crate::metrics::{CountingSigner, SignReason};

use super::{
    load_keys, release_free_memory, Inner, ZoneManager, SYNC_BATCH_MAX, SYNC_BATCH_MIN, SYNC_STEP,
};

impl ZoneManager {
    /// Applies every change logged in the store since the last call. Returns how many owners
    /// were brought up to date.
    pub fn sync(&self) -> anyhow::Result<usize> {
        self.reap();
        let mut total = 0;
        // one batch of the log at a time, the zone manager released between them (a bulk
        // import's backlog does not hold back an API change: it goes first at the next step)
        loop {
            let mut held = self.hold("applying the change log");
            let t0 = std::time::Instant::now();
            let inner = &mut *held;
            let batch = inner
                .store
                .changes_since(inner.last_seq, inner.sync_batch)?;
            let full = batch.len() == inner.sync_batch;
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
                // what the store holds now at every owner of the range, in one query
                let stored = inner.store.rrsets_changed(&zone, after, last)?;
                self.apply_owners(inner, &zone, owners, stored)?;
            }
            inner.last_seq = last;
            self.progress.set_applied_seq(last);
            // the next step's size: a step takes about SYNC_STEP, whatever an entry costs
            let took = t0.elapsed();
            if took > SYNC_STEP {
                inner.sync_batch = (inner.sync_batch / 2).max(SYNC_BATCH_MIN);
            } else if full && took < SYNC_STEP / 2 {
                inner.sync_batch = (inner.sync_batch * 2).min(SYNC_BATCH_MAX);
            }
        }
        let (zones, resign) = {
            let mut held = self.hold("following key changes");
            self.follow_keys(&mut held)?
        };
        total += zones;
        if resign {
            // a new ZSK signs: everything signed by the old one is signed again, in chunks
            total += self.refresh_signatures_for(SignReason::Rollover)?;
        }
        self.record_served_keys()?;
        self.trim_after_bulk(total);
        Ok(total)
    }

    /// Writes to the store the serial that carries each zone's current key version (and its
    /// parent's serial, which carries the zone's DS), once the version is published and, after
    /// a ZSK switch, the zone signed again: what the rollover's fleet check asks every
    /// secondary to serve (`lifecycle`).
    fn record_served_keys(&self) -> anyhow::Result<()> {
        let mut held = self.hold("recording served key versions");
        let inner = &mut *held;
        let catalog = self.catalog.load();
        for idx in 0..inner.zones.len() {
            let st = &inner.zones[idx];
            if st.resign_pending || st.served_recorded == Some(st.key_version) {
                continue;
            }
            let Some(serial) = catalog.get(&st.origin).map(|z| z.serial()) else {
                continue;
            };
            let parent_serial = st
                .parent
                .as_ref()
                .and_then(|p| catalog.get(p))
                .map(|z| z.serial());
            let (origin, version) = (st.origin.clone(), st.key_version);
            inner
                .store
                .set_served_keys(&origin, version, serial, parent_serial)?;
            inner.zones[idx].served_recorded = Some(version);
        }
        Ok(())
    }

    /// A bulk change (an import) leaves freed build memory behind: once 10 000 owners were
    /// applied since the last time, it is given back, at most every 30 s (`malloc_trim` walks
    /// the whole heap and holds each allocator arena while it does; during an import the
    /// follower catches up many times a minute).
    fn trim_after_bulk(&self, applied: usize) {
        use std::sync::atomic::Ordering;
        let pending = self.untrimmed.fetch_add(applied, Ordering::Relaxed) + applied;
        let last = self.trimmed_at.load(Ordering::Relaxed);
        let now = super::mono_ms();
        if pending >= 10_000 && (last == 0 || now.saturating_sub(last) >= 30_000) {
            self.untrimmed.store(0, Ordering::Relaxed);
            self.trimmed_at.store(now, Ordering::Relaxed);
            release_free_memory();
        }
    }

    /// Serves the stored state of `touched` (zone, owner) pairs now, ahead of the change log's
    /// backlog: the way an API call serves its own change, signed, before it answers, while a
    /// bulk import's backlog is still being applied. Waits for at most one step of background
    /// work. Applying an owner's stored state is idempotent, so the follower finds nothing left
    /// to do when the log reaches these entries. Returns how many owners were looked at.
    pub fn serve_now(&self, touched: &[(Name, Name)]) -> anyhow::Result<usize> {
        let mut by_zone: BTreeMap<Name, BTreeSet<Name>> = BTreeMap::new();
        for (zone, owner) in touched {
            by_zone
                .entry(zone.to_lowercase())
                .or_default()
                .insert(owner.to_lowercase());
        }
        let mut held = self.hold_urgent("serving an API change");
        let inner = &mut *held;
        let mut n = 0;
        for (zone, owners) in by_zone {
            n += owners.len();
            let mut stored = Vec::new();
            for owner in &owners {
                stored.extend(inner.store.rrsets_at(&zone, owner)?);
            }
            self.apply_owners(inner, &zone, owners, stored)?;
        }
        Ok(n)
    }

    /// Reloads the keys of every zone whose `key_version` moved (a rollover step, by this
    /// process or another) and publishes what changed: DNSKEY, CDS/CDNSKEY, the DS in the
    /// parent. Returns how many zones, and whether a zone's signing ZSK changed (then
    /// [`ZoneManager::refresh_signatures`] signs what the old one signed).
    pub(super) fn follow_keys(&self, inner: &mut Inner) -> anyhow::Result<(usize, bool)> {
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
            st.resign_pending |= resign;
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
    pub(super) fn update_system(&self, inner: &mut Inner, idx: usize) -> anyhow::Result<()> {
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
        self.commit(inner, idx, &current, changes, SignReason::Rollover)
    }

    /// Brings `owners` of `zone_name` in step with `stored`, what the store holds at them.
    pub(super) fn apply_owners(
        &self,
        inner: &mut Inner,
        zone_name: &Name,
        owners: BTreeSet<Name>,
        stored: Vec<provisioner::StoredRrset>,
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
        let mut stored_at: std::collections::HashMap<Name, Vec<provisioner::StoredRrset>> =
            std::collections::HashMap::with_capacity(owners.len());
        for r in stored {
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
        self.commit(inner, idx, &current, changes, SignReason::Change)
    }

    /// Applies changes plus a new SOA to zone `idx`, stores the serial, publishes the snapshot.
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        idx: usize,
        current: &Zone,
        mut changes: Vec<Change>,
        reason: SignReason,
    ) -> anyhow::Result<()> {
        // never below what was served before (a checkpoint may be older than the last serial)
        let serial = self.take_serial(inner, idx, current.serial())?;
        let st = &inner.zones[idx];
        changes.push(Change::Put(
            Rrset::new(
                st.origin.clone(),
                self.config.ttl.soa,
                vec![RData::SOA(self.soa(&st.origin, serial))],
            )
            .expect("soa"),
        ));
        let keys = self.signer(st, self.clock.now());
        let signer = CountingSigner {
            inner: &keys,
            reason,
        };
        let new = current.apply(changes, &signer)?;
        self.publish(Arc::new(new));
        Ok(())
    }
}
