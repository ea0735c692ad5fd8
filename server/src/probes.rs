//! Probes of the provider's own SMTP endpoints (`[dane.endpoints]`), like a DANE sender: every
//! `[dane] probe_interval` seconds, on the control plane's blocking pool (never a DNS thread),
//! each endpoint of each partition gets an SMTP STARTTLS session; the presented chain is
//! checked against the partition's TLSA RRset as stored now. Per endpoint: the certificate
//! presented, whether it matches the published TLSA, days to expiry.
//!
//! Findings go to `/metrics` (`mxdns_dane_endpoint_up`, `_tlsa_match`, `_cert_not_after_seconds`), to the log (a warning for a mismatch or an endpoint that cannot be probed), to
//! `GET /v1/partitions/{p}/lifecycle` (`endpoints`), and to health: an endpoint presenting a
//! certificate that no published TLSA record authenticates is a problem (503: DANE senders
//! defer its mail); one that cannot be probed or expires within `expiry_warning_days` is a
//! warning in the report.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFinding {
    pub partition: String,
    pub endpoint: String,
    /// Unix seconds of the probe.
    pub checked_at: i64,
    /// The leaf presented: subject, SPKI SHA-256, notAfter and days left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_to_expiry: Option<i64>,
    /// notAfter of the presented leaf, unix seconds (for metrics).
    #[serde(skip)]
    pub not_after_unix: Option<i64>,
    /// A TLSA record published now authenticates the chain (the record, when one does).
    pub matches_tlsa: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// Why the endpoint could not be probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last findings per partition.
#[derive(Debug, Default)]
pub struct Probes {
    last: Mutex<BTreeMap<String, Vec<EndpointFinding>>>,
}

impl Probes {
    pub fn findings(&self, partition: &str) -> Vec<EndpointFinding> {
        self.last
            .lock()
            .map(|l| l.get(partition).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<EndpointFinding> {
        self.last
            .lock()
            .map(|l| l.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    fn store(&self, partition: &str, f: Vec<EndpointFinding>) {
        if let Ok(mut l) = self.last.lock() {
            l.insert(partition.to_string(), f);
        }
    }

    /// (problems, warnings) for health.
    pub fn health(&self, warn_days: u32) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for f in self.all() {
            if let Some(e) = &f.error {
                warnings.push(format!(
                    "endpoint {} of {} could not be probed: {e}",
                    f.endpoint, f.partition
                ));
            } else if !f.matches_tlsa {
                problems.push(format!(
                    "endpoint {} of {} presents a certificate (SPKI SHA-256 {}) that no published TLSA record authenticates: DANE senders defer its mail",
                    f.endpoint,
                    f.partition,
                    f.spki_sha256.as_deref().unwrap_or("?")
                ));
            }
            if let Some(d) = f.days_to_expiry.filter(|d| *d < i64::from(warn_days)) {
                warnings.push(format!(
                    "endpoint {} of {} presents a certificate that expires in {d} days",
                    f.endpoint, f.partition
                ));
            }
        }
        (problems, warnings)
    }
}

/// Probes every configured endpoint once; blocking. Returns how many endpoints were probed.
pub fn probe_all(
    config: &Config,
    prov: &provisioner::service::Provisioner,
    probes: &Probes,
) -> anyhow::Result<usize> {
    let s = config.dane_settings(false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut n = 0;
    for (partition, endpoints) in &config.dane.endpoints {
        let zone = format!("{partition}.{}", config.zone.trim_end_matches('.'));
        let tlsa = match prov.partition_tlsa(partition) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(partition, error = %e.details, "endpoint probes: no TLSA records to check against");
                Vec::new()
            }
        };
        let mut out = Vec::new();
        for e in endpoints {
            n += 1;
            let session = provisioner::dane::smtp::probe(*e, &zone, &s.helo, s.timeout);
            let mut f = EndpointFinding {
                partition: partition.clone(),
                endpoint: e.to_string(),
                checked_at: now,
                subject: None,
                spki_sha256: None,
                not_after: None,
                days_to_expiry: None,
                not_after_unix: None,
                matches_tlsa: false,
                matched: None,
                error: session.failure.clone(),
            };
            if f.error.is_none() {
                // the DANE-TA name check needs a name under the partition (the fleet's
                // certificates carry the hosts' names or a wildcard of the partition)
                let names = vec![format!("probe.{zone}"), zone.clone()];
                let c = provisioner::dane::verify::check(&tlsa, &session.chain, &names, now);
                if let Some(leaf) = c.chain.first() {
                    f.subject = Some(leaf.subject.clone());
                    f.spki_sha256 = Some(leaf.spki_sha256.clone());
                    f.not_after = Some(leaf.not_after.clone());
                }
                if let Some(der) = session.chain.first() {
                    if let Ok(i) = provisioner::certs::describe_der(der) {
                        f.days_to_expiry = Some((i.not_after - now).div_euclid(86400));
                        f.not_after_unix = Some(i.not_after);
                    }
                }
                if let provisioner::dane::verify::Outcome::Match { record } = &c.outcome {
                    f.matches_tlsa = true;
                    f.matched = Some(record.clone());
                }
            }
            match (&f.error, f.matches_tlsa) {
                (Some(err), _) => {
                    tracing::warn!(partition, endpoint = %e, error = %err, "endpoint probe failed")
                }
                (None, false) => {
                    tracing::warn!(partition, endpoint = %e, spki = f.spki_sha256.as_deref().unwrap_or(""), "endpoint presents a certificate no published TLSA record authenticates")
                }
                (None, true) => {
                    tracing::debug!(partition, endpoint = %e, days = f.days_to_expiry, "endpoint probe: TLSA matches")
                }
            }
            out.push(f);
        }
        probes.store(partition, out);
    }
    Ok(n)
}
