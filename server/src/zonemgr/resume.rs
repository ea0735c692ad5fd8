//! Starting from the checkpoint, and writing it.

use std::sync::{Arc, PoisonError};

use anyhow::anyhow;
use hickory_proto::rr::Name;
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
            let mut held = self.hold("reading the checkpoint");
            let inner = &mut *held;
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
            self.publish_catalog(Catalog { zones });
            inner.last_seq = header.last_seq;
            self.progress.set_applied_seq(header.last_seq);
            *self
                .checkpointed
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(serials);
            tracing::info!(
                ms = t0.elapsed().as_millis() as u64,
                last_seq = header.last_seq,
                "checkpoint read"
            );
        }
        let changed = self.sync()?;
        {
            let mut held = self.hold("updating the server's own records");
            let inner = &mut *held;
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
        // a panic while writing leaves the serials of the checkpoint before, which is on disk
        // whole (it is replaced by a rename): the next write just writes again
        let mut done = self
            .checkpointed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (catalog, header) = {
            let inner = self.hold("reading the checkpoint position");
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
        drop(done);
        match self.prune_log(header.last_seq) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                entries = n,
                upto = header.last_seq,
                "change log pruned (the checkpoint covers it)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "pruning the change log failed; next checkpoint tries again")
            }
        }
        Ok(bytes)
    }

    /// Deletes the change-log entries the checkpoint on disk covers (up to `upto`): a start
    /// needs the log after the checkpoint's position only. In short transactions on a
    /// connection of its own, so neither the zone manager nor other writers wait long.
    fn prune_log(&self, upto: i64) -> anyhow::Result<usize> {
        const CHUNK: usize = 5_000;
        let mut store = provisioner::Store::open(&super::db_path(&self.config.data_dir))?;
        let mut total = 0;
        loop {
            let n = store.prune_changes(upto, CHUNK)?;
            total += n;
            if n < CHUNK {
                return Ok(total);
            }
            // let a waiting writer in between (the store's busy handler tries every ms)
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
