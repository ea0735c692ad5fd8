//! Building a zone from scratch (at start) and the records the server itself owns in every
//! zone: SOA, NS and their addresses, DNSKEY, CDS/CDNSKEY, child delegations with DS.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::anyhow;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{Name, RData, RecordType};
use zones::{Change, Rrset, Zone};

use crate::metrics::{CountingSigner, SignReason};

use super::{release_free_memory, Catalog, ZoneManager, ZoneState};

impl ZoneManager {
    /// Builds all zones from scratch (at start): system records, stored content, all signed now.
    pub(super) fn rebuild(&self) -> anyhow::Result<()> {
        let mut held = self.hold("building every zone");
        let inner = &mut *held;
        let now = self.clock.now();
        let mut built = Vec::new();
        for i in 0..inner.zones.len() {
            let serial = self.take_serial(inner, i, 0)?;
            let st = &inner.zones[i];
            let keys = self.signer(st, now);
            let signer = CountingSigner {
                inner: &keys,
                reason: SignReason::Build,
            };
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
            tracing::info!(zone = %st.origin, serial, rrsets = n, names = zone.len(), ms = t0.elapsed().as_millis() as u64, "zone built and signed");
            built.push(Arc::new(compacted(zone, &self.config.data_dir)?));
        }
        built.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        self.publish_catalog(Catalog { zones: built });
        release_free_memory();
        Ok(())
    }

    pub(super) fn soa(&self, origin: &Name, serial: u32) -> SOA {
        let ns1 = Name::from_ascii("ns1")
            .expect("label")
            .append_domain(origin)
            .expect("short");
        let rname = Name::from_ascii("hostmaster")
            .expect("label")
            .append_domain(origin)
            .expect("short");
        let t = &self.config.soa;
        SOA::new(
            ns1,
            rname,
            serial,
            t.refresh as i32,
            t.retry as i32,
            t.expire as i32,
            self.config.ttl.negative,
        )
    }

    pub(super) fn ns_names(origin: &Name) -> Vec<Name> {
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

    pub(super) fn address_rrsets(&self, owner: &Name) -> Vec<Change> {
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
    pub(super) fn system_rrsets(
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
    pub(super) fn is_system_name(
        zones: &[ZoneState],
        zone: &Name,
        ns: &[Name],
        owner: &Name,
    ) -> bool {
        owner == zone
            || ns.contains(owner)
            || zones
                .iter()
                .any(|c| c.parent.as_ref() == Some(zone) && c.origin.zone_of(owner))
    }
}

/// The zone copied into fresh heap blocks through its snapshot form (as a start from the
/// checkpoint reads it), the built one freed first. A build leaves its zone's blocks scattered
/// between the holes of what it freed (unsigned RRsets, replaced nodes, records decoded for
/// signing), which glibc cannot give back: at 100 000 provisioned hosts the process held
/// 253 MiB after a build against 177 MiB after a start from the checkpoint, for the same zone.
/// The copy goes through a file in the data directory (`zones.compact.tmp`, removed after),
/// not a buffer, so that it adds nothing to the build's peak; if it cannot be written the
/// zone is kept as built.
fn compacted(zone: Zone, data_dir: &std::path::Path) -> anyhow::Result<Zone> {
    use std::io::{BufReader, BufWriter, Write};
    let t0 = std::time::Instant::now();
    let path = data_dir.join("zones.compact.tmp");
    let written = std::fs::File::create(&path).and_then(|f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        zone.write_snapshot(&mut w)?;
        w.flush()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        tracing::warn!(zone = %zone.origin, error = %e, "the built zone is not compacted");
        return Ok(zone);
    }
    let origin = zone.origin.clone();
    drop(zone);
    release_free_memory();
    let read = std::fs::File::open(&path)
        .and_then(|f| Zone::read_snapshot(&mut BufReader::with_capacity(1 << 20, f)));
    let _ = std::fs::remove_file(&path);
    let zone = read.map_err(|e| anyhow!("reading the built zone {origin} back: {e}"))?;
    tracing::debug!(zone = %origin, ms = t0.elapsed().as_millis() as u64, "built zone compacted");
    Ok(zone)
}
