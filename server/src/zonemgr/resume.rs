//! Starting from the checkpoint, and writing it.

use std::sync::Arc;

use anyhow::anyhow;
use hickory_proto::rr::Name;
use provisioner::Store;
use zones::Zone;

use super::{checkpoint, release_free_memory, Catalog, ZoneManager};

impl ZoneManager {
    /// The parts of the configuration that shape the zones and their signatures (and the binary
    /// and format versions): a checkpoint made under another fingerprint is not used.
    pub(super) fn fingerprint(&self) -> String {
        let c = &self.config;
        format!(
            "mxdns {} snapshot {} zone {:?} partitions {:?} algorithm {} ns {:?} ttl {:?} soa {:?} signatures {:?} keys {:?}",
            env!("CARGO_PKG_VERSION"),
            zones::snapshot::FORMAT,
            c.zone,
            c.partitions,
            c.algorithm,
            c.ns_addresses,
            c.ttl,
            c.soa,
            c.signatures,
            c.keys
        )
    }

    /// Starts from the checkpoint when it is usable: publishes its zones, applies the change
    /// log since its position, brings the server's own records (NS, DNSKEY, DS, ...) up to date
    /// with a new serial, and signs again whatever is due. `Ok(false)`: there is none.
    pub(super) fn resume(&self) -> anyhow::Result<bool> {
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
        // what the checkpoint covers is no longer needed: a start resumes from it (applying
        // the log after its position) or builds from the records; pruned on a connection of
        // its own, the zone manager not held
        let pruned = Store::open(&super::db_path(&self.config.data_dir))
            .and_then(|mut s| s.prune_changes_through(header.last_seq, 10_000));
        match pruned {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, through = header.last_seq, "change log pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the change log failed"),
        }
        Ok(bytes)
    }
}
