//! Bulk import: `Enable-DnssecForVerifiedDomain` and `Enable-SmtpDaneInbound` for a list of
//! domains in one go (`mxdns domain import FILE`, `POST /v1/import`).
//!
//! - The whole list is checked first (names); a bad line changes nothing.
//! - Domains go in batches, each one SQLite transaction: a batch is in the store whole or not
//!   at all, whatever stops the import (an error, a kill, a crash).
//! - A batch is short: at most `batch` domains and about `max_hold` of work (50 ms), so that
//!   other API calls, which need the same store and SQLite's one writer, get in between
//!   batches: after each one the import waits while callers of this process wait for the store
//!   (at most 100 ms), then pauses for `pause` (2 ms) for writers of other processes.
//! - Running the same import again resumes it: domains already enabled are skipped, so only
//!   what an interruption left undone is written.
//! - An import is the admin's: domains it adds are verified (an unverified claim of the same
//!   tenant is dropped, other tenants' claims stay); a domain another tenant owns stops it.
//!   Each transaction writes one audit entry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use serde_json::json;

use super::{address_ops, audit, dane_op, now, Actor, ApiError, Provisioner};
use crate::mxtoken;
use crate::store::claims;
use crate::store::tenancy::{self, DomainRow, PartitionRow};
use crate::store::{write_batch, Batch, StoreError};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Domains not yet verified are added, verified, to this tenant (an operator's import).
    /// Without it every domain must already be a verified domain.
    pub tenant: Option<String>,
    /// Enable SMTP DANE too (default); without it DANE is left as it is.
    pub dane: bool,
    /// Domains per transaction at most.
    pub batch: usize,
    /// A transaction takes no more domains once it has been open this long (it always takes
    /// one): the longest other API calls wait for the import.
    pub max_hold: Duration,
    /// Pause after each transaction, so that a caller waiting for the store (this process's
    /// lock, or SQLite's write lock from another process) takes it before the next batch.
    pub pause: Duration,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            tenant: None,
            dane: true,
            batch: 10_000,
            max_hold: Duration::from_millis(50),
            pause: Duration::from_millis(2),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub total: usize,
    /// Domains changed by this run.
    pub enabled: usize,
    /// Domains that were already as asked (done by an earlier, interrupted run).
    pub already: usize,
    pub batches: usize,
}

/// Parses an import file: one domain per line; blank lines and `#` comments are ignored.
/// Returns the normalized domains, or every bad line (up to 20) in one error.
pub fn parse_import(text: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match mxtoken::normalize_domain(line) {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    out.push(d);
                }
            }
            Err(e) => bad.push(format!("line {}: {line}: {e}", i + 1)),
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(20);
        return Err(ApiError::invalid(
            "InvalidDomainName",
            format!(
                "{n} line(s) are not domain names, nothing was imported: {}",
                bad.join("; ")
            ),
        ));
    }
    Ok(out)
}

/// Why a batch was rolled back.
enum Stop {
    Db(StoreError),
    Domain(ApiError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Db(e)
    }
}

impl Provisioner {
    /// Enables DNSSEC (and DANE) for `domains`, batch by batch; `progress(done, total)` after
    /// each committed batch. Admin only.
    pub fn import(
        &self,
        actor: &Actor,
        domains: &[String],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ImportReport, ApiError> {
        actor.require_admin()?;
        if let Some(t) = &opts.tenant {
            let exists = tenancy::tenant_exists(self.lock_store().conn(), t)
                .map_err(|e| ApiError::storage("ImportFailed", "Reading the store", e))?;
            if !exists {
                return Err(ApiError::new(
                    404,
                    "TenantNotFound",
                    format!("Tenant {t} not found."),
                ));
            }
        }
        let mut report = ImportReport {
            total: domains.len(),
            ..Default::default()
        };
        let batch = opts.batch.clamp(1, 100_000);
        let mut at = 0;
        while at < domains.len() {
            let chunk = &domains[at..(at + batch).min(domains.len())];
            let mut store = self.lock_store();
            let result = store.transaction_with(|tx| -> Result<(usize, usize, usize), Stop> {
                self.import_batch(tx, actor, report.batches + 1, chunk, opts)
            });
            drop(store);
            match result {
                Ok((taken, enabled, already)) => {
                    report.enabled += enabled;
                    report.already += already;
                    report.batches += 1;
                    at += taken;
                }
                Err(stop) => {
                    let why = match stop {
                        Stop::Domain(e) => format!("{}: {}", e.code, e.details),
                        Stop::Db(e) => {
                            tracing::warn!(error = %e, "import batch failed in the store");
                            "a storage error".to_string()
                        }
                    };
                    tracing::warn!(done = at, batch = report.batches + 1, reason = %why, "import stopped");
                    return Err(ApiError::new(
                        409,
                        "ImportFailed",
                        format!(
                            "Batch {} (domains {}..{}) was not imported: {why}. The {at} domains before it are done; fix the list and run the same import again: what is done is skipped.",
                            report.batches + 1,
                            at + 1,
                            at + chunk.len()
                        ),
                    ));
                }
            }
            progress(at, domains.len());
            if at < domains.len() {
                // other callers of this process first (bounded: a stream of callers slows the
                // import down, it does not stop it), then a pause for those of other processes
                // (SQLite's write lock; their busy handler tries every millisecond)
                self.let_waiting_in(Duration::from_millis(100));
                std::thread::sleep(opts.pause);
            }
        }
        tracing::info!(
            total = report.total,
            enabled = report.enabled,
            already = report.already,
            "import done"
        );
        Ok(report)
    }

    /// Imports the first domains of `chunk` in `tx`: all of them, or as many as fit in
    /// `opts.max_hold` (at least one). Returns how many were taken, enabled, already done.
    fn import_batch(
        &self,
        tx: &rusqlite::Transaction<'_>,
        actor: &Actor,
        number: usize,
        chunk: &[String],
        opts: &ImportOptions,
    ) -> Result<(usize, usize, usize), Stop> {
        let started = Instant::now();
        let t = now();
        // per partition: its row, whether it has fleet certificates, its load
        let mut parts: HashMap<String, (PartitionRow, bool, i64)> = HashMap::new();
        for p in &self.settings.partitions {
            let row = tenancy::get_partition(tx, p)?
                .ok_or_else(|| StoreError::Data(format!("partition {p} is not configured")))?;
            let certs = !tenancy::partition_certs(tx, p)?.is_empty();
            let load = if self.settings.partitions.len() == 1 {
                0 // nothing to choose; counting is a scan of the partition
            } else {
                tenancy::partition_load(tx, p)?
            };
            parts.insert(p.clone(), (row, certs, load));
        }
        let mut ops = Vec::with_capacity(chunk.len() * 3);
        let (mut enabled, mut already, mut taken) = (0, 0, 0usize);
        for domain in chunk {
            if taken > 0 && started.elapsed() >= opts.max_hold {
                break;
            }
            taken += 1;
            let fail = |code: &'static str, status: u16, details: String| {
                Stop::Domain(ApiError::new(status, code, format!("{domain}: {details}")))
            };
            let (mut row, new) = match (tenancy::get_domain(tx, domain)?, &opts.tenant) {
                (Some(r), Some(t)) if r.tenant_id != *t => {
                    return Err(fail(
                        "DomainAlreadyAccepted",
                        409,
                        format!("verified by tenant {}, not {t}", r.tenant_id),
                    ))
                }
                (Some(r), _) => (r, false),
                (None, Some(t)) => (
                    DomainRow {
                        domain: domain.clone(),
                        tenant_id: t.clone(),
                        mx_token: None,
                        partition: None,
                        dnssec: false,
                        dane: false,
                    },
                    true,
                ),
                (None, None) => {
                    return Err(fail(
                        "DomainNotFound",
                        404,
                        "not a verified domain (give --tenant to add it)".into(),
                    ))
                }
            };
            self.check_supported(domain).map_err(Stop::Domain)?;
            let dane = opts.dane || row.dane;
            if row.dnssec && row.dane == dane && row.mx_token.is_some() && row.partition.is_some() {
                already += 1;
                continue;
            }
            if row.mx_token.is_none() {
                let token = mxtoken::mx_token(domain);
                // a new domain's token is checked by the UNIQUE constraint on insert
                if !new && tenancy::token_taken(tx, &token, domain)? {
                    return Err(fail(
                        "DnssecOperationFailed",
                        409,
                        format!("MX token {token} is taken"),
                    ));
                }
                let least = self
                    .settings
                    .partitions
                    .iter()
                    .min_by_key(|p| parts.get(*p).map_or(i64::MAX, |x| x.2))
                    .cloned();
                row.mx_token = Some(token);
                row.partition = least;
            }
            let partition = row.partition.clone().unwrap_or_default();
            let Some((prow, certs, load)) = parts.get_mut(&partition) else {
                return Err(fail(
                    "PartitionNotFound",
                    409,
                    format!("partition {partition} is not configured"),
                ));
            };
            if dane && !*certs {
                return Err(fail(
                    "DnssecOperationFailed",
                    409,
                    format!("no fleet certificate configured for partition {partition}"),
                ));
            }
            if !row.dnssec {
                *load += 1;
            }
            row.dnssec = true;
            row.dane = dane;
            if new {
                tenancy::insert_domain(tx, &row, t)?;
                claims::delete(tx, domain, &row.tenant_id)?;
            } else {
                tenancy::update_domain_state(tx, &row, t)?;
            }
            let token = row.mx_token.clone().unwrap_or_default();
            let host = self.host(&token, &partition);
            let zone: Name = self.partition_zone(&partition);
            ops.extend(address_ops(&zone, &host, prow));
            if dane {
                ops.push(dane_op(&zone, &host, prow.host_ttl));
            }
            enabled += 1;
        }
        write_batch(tx, &Batch { ops }, t)?;
        audit::record(
            tx,
            actor,
            "import.batch",
            &format!("batch {number}"),
            json!({"domains": taken, "enabled": enabled, "already": already,
                   "first": chunk.first(), "last": chunk.get(taken.saturating_sub(1)),
                   "tenantId": opts.tenant, "dane": opts.dane}),
        )
        .map_err(Stop::Db)?;
        Ok((taken, enabled, already))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioner(dir: &std::path::Path) -> Provisioner {
        let settings = super::super::Settings {
            zone: Name::from_ascii("mx.example.").unwrap(),
            partitions: vec!["o-v1".into()],
            seeds: vec![PartitionRow {
                name: "o-v1".into(),
                addresses: vec!["192.0.2.25".into()],
                host_ttl: 300,
            }],
            initial_domain_suffix: None,
            busy_timeout: Duration::from_secs(5),
            max_claims_per_tenant: 1000,
        };
        Provisioner::open(&dir.join("db"), dir, settings).unwrap()
    }

    #[test]
    fn transactions_end_after_max_hold_and_every_domain_goes_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = provisioner(dir.path());
        let tenant = p
            .create_tenant(&Actor::cli(), "bulk")
            .unwrap()
            .tenant_id
            .unwrap();
        let domains: Vec<String> = (0..7).map(|i| format!("d{i}.example")).collect();
        let opts = ImportOptions {
            tenant: Some(tenant),
            dane: false,
            max_hold: Duration::ZERO,
            pause: Duration::ZERO,
            ..Default::default()
        };
        let mut seen = Vec::new();
        let r = p
            .import(&Actor::cli(), &domains, &opts, &mut |done, _| {
                seen.push(done)
            })
            .unwrap();
        // no time at all: one domain per transaction (each still takes at least one)
        assert_eq!(r.batches, 7);
        assert_eq!(r.enabled, 7);
        assert_eq!(seen, (1..=7).collect::<Vec<_>>(), "progress after each");
        // all again, with time to spare: one transaction, nothing left to do
        let opts = ImportOptions {
            max_hold: Duration::from_secs(60),
            ..opts
        };
        let r = p
            .import(&Actor::cli(), &domains, &opts, &mut |_, _| {})
            .unwrap();
        assert_eq!((r.batches, r.enabled, r.already), (1, 0, 7));
    }

    #[test]
    fn parse_reports_every_bad_line_and_skips_comments() {
        let ok = parse_import("contoso.com\n\n# comment\nFabrikam.COM.  # trailing\ncontoso.com\n")
            .unwrap();
        assert_eq!(
            ok,
            vec!["contoso.com", "fabrikam.com"],
            "normalized, deduplicated"
        );
        let e = parse_import("contoso.com\nbad domain\nx..y\n").unwrap_err();
        assert_eq!(e.code, "InvalidDomainName");
        assert!(
            e.details.contains("line 2") && e.details.contains("line 3"),
            "{}",
            e.details
        );
    }
}
