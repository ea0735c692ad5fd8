//! Signatures signed again before they expire, or when the keys that sign changed.

use zones::Change;

use super::{ZoneManager, RESIGN_CHUNK};
use crate::metrics::SignReason;

impl ZoneManager {
    /// Signs again every RRset whose signatures expire within the refresh window, that lacks
    /// them, or that is not signed by exactly the keys that sign now (after a ZSK switch: the
    /// old key's signatures stay valid while it is published, `keys.timing` Iret after the
    /// switch, and this finishes within minutes). What is due is found once per zone, then
    /// signed in chunks of `RESIGN_CHUNK` RRsets, each its own snapshot, with the zone manager
    /// released in between so that provisioning changes keep their latency. Returns how many
    /// RRsets were signed.
    pub fn refresh_signatures(&self) -> anyhow::Result<usize> {
        self.refresh_signatures_for(SignReason::Refresh)
    }

    /// [`Self::refresh_signatures`], counting the signatures under `reason` (metrics: after a
    /// ZSK switch the follower's pass counts as rollover).
    pub(super) fn refresh_signatures_for(&self, reason: SignReason) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut total = 0;
        // the zones waiting for a ZSK switch's re-signing when this pass starts: signed by
        // the new key once it ends
        let (zones, switched): (usize, Vec<usize>) = {
            let held = self.hold("listing the zones");
            let switched = (0..held.zones.len())
                .filter(|i| held.zones[*i].resign_pending)
                .collect();
            (held.zones.len(), switched)
        };
        for idx in 0..zones {
            let (origin, horizon, ksk, zsk) = {
                let held = self.hold("finding the signing keys");
                let st = &held.zones[idx];
                let horizon = now.saturating_add(self.config.signature_policy(&st.origin).refresh);
                let sets = st.sets(now);
                let tags =
                    |ids: &[i64]| -> Vec<u16> { st.pairs(ids).iter().map(|k| k.key_tag).collect() };
                let (ksk, zsk) = (tags(&sets.ksk_signers), tags(&sets.zsk_signers));
                (st.origin.clone(), horizon, ksk, zsk)
            };
            // the scan of the whole zone runs on the published snapshot, without the manager
            // (what changes meanwhile is signed by its change; signing it again is harmless,
            // and a name removed meanwhile is skipped by `Zone::apply`)
            let Some(current) = self.catalog.load_full().get(&origin).cloned() else {
                continue;
            };
            let due = current.due(horizon, &ksk, &zsk);
            drop(current);
            if due.is_empty() {
                self.note_expiry(idx, &origin);
                continue;
            }
            total += due.len();
            tracing::info!(zone = %origin, rrsets = due.len(), "signing again: expiring, or not signed by the current keys");
            for chunk in due.chunks(RESIGN_CHUNK) {
                let mut held = self.hold("signing again");
                let Some(current) = self.catalog.load().get(&origin).cloned() else {
                    break;
                };
                let changes = chunk
                    .iter()
                    .map(|(n, t)| Change::Resign(n.clone(), *t))
                    .collect();
                self.commit(&mut held, idx, &current, changes, reason)?;
            }
            self.note_expiry(idx, &origin);
        }
        {
            let mut held = self.hold("re-signing done");
            for idx in switched {
                held.zones[idx].resign_pending = false;
            }
        }
        self.progress.set_refreshed();
        Ok(total)
    }

    /// Records the earliest RRSIG expiration of zone `idx` as published now (health).
    pub(super) fn note_expiry(&self, idx: usize, origin: &hickory_proto::rr::Name) {
        if let Some(z) = self.catalog.load_full().get(origin) {
            let earliest = z.records().filter_map(|r| r.earliest_expiration()).min();
            self.progress
                .set_earliest_expiry(idx, earliest.unwrap_or(0));
        }
    }
}
