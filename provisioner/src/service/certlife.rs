//! The certificate lifecycle of a partition, so that the fleet's certificate change can't break
//! DANE mail: a sender holds the TLSA RRset it saw for up to its TTL, so a certificate must be
//! in the published RRset for at least TTL + propagation delay before the endpoints present it,
//! and the old one must stay in it until no endpoint presents it any more.
//!
//! ```text
//!             stage(next)                    promote (now ≥ published + TTL + delay, or force)
//!  current ───────────────► current + next ───────────────────────────► previous + current
//!     ▲     TLSA {cur, next}                  TLSA unchanged: {prev, cur}       │ retire (no probed
//!     └─────────────────────────────────────────────────────────────────────────┘ endpoint presents prev)
//!                                             TLSA {cur}
//! ```
//!
//! Issuers (DANE-TA, `2 1 1`) are kept through every step. Each step is one transaction with
//! its audit entry; the TLSA RRset is rewritten from the rows in the same transaction.

use hickory_proto::rr::{RData, RecordType};
use serde::Serialize;
use serde_json::json;

use super::{certs, fleet_tlsa_owner, now, tlsa, Actor, ApiError, Provisioner, TlsaView};
use crate::store::tenancy::{self, CertRow};
use crate::store::{write_batch, Batch, BatchOp, StoreError};

/// The lifecycle state of a partition's certificates, with what is possible when.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub partition: String,
    /// `current`, `staged` (a next certificate is published), `promoted` (the previous one is
    /// still published), or `none`.
    pub state: &'static str,
    /// The TLSA TTL (the partition's host TTL) and the propagation delay, seconds.
    pub tlsa_ttl: u32,
    pub propagation_delay: u64,
    pub certificates: Vec<CertState>,
    /// When the next certificate may be promoted (unix seconds), when one is staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotable_at: Option<i64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertState {
    #[serde(flatten)]
    pub tlsa: TlsaView,
    /// When its TLSA record was first published (unix seconds; 0: before the lifecycle).
    pub published_at: i64,
    pub days_to_expiry: i64,
}

/// What the lifecycle needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSettings {
    /// Seconds for a TLSA change to reach every name server (added to the TTL).
    pub propagation_delay: u64,
    /// Warn when the current certificate expires within this many days and none is staged.
    pub expiry_warning_days: u32,
}

fn rows_by(rows: &[CertRow], role: &str) -> Option<CertRow> {
    rows.iter().find(|r| r.role == role).cloned()
}

impl Provisioner {
    /// The lifecycle view of a partition (admin).
    pub fn certificate_lifecycle(
        &self,
        actor: &Actor,
        partition: &str,
        s: LifecycleSettings,
    ) -> Result<Lifecycle, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        let store = self.lock_store();
        let rows = tenancy::partition_certs(store.conn(), partition).map_err(|e| {
            ApiError::storage("DnssecOperationFailed", "Reading the certificates", e)
        })?;
        let ttl = tenancy::get_partition(store.conn(), partition)
            .ok()
            .flatten()
            .map_or(300, |p| p.host_ttl);
        Ok(view(partition, &rows, ttl, s, now()))
    }

    /// Stages `pem` as the next certificate: its `3 1 1` is published beside the current one.
    /// A next certificate staged before is replaced (its wait starts again).
    pub fn stage_certificate(
        &self,
        actor: &Actor,
        partition: &str,
        pem: &str,
        s: LifecycleSettings,
    ) -> Result<Lifecycle, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        let t = now();
        let info = certs::parse_for(pem, t, certs::CertUse::EndEntity).map_err(|e| {
            ApiError::invalid(
                "InvalidCertificate",
                format!("The next certificate is not usable: {e}."),
            )
        })?;
        self.lifecycle_step(actor, partition, s, "partition.certificate.stage", |rows| {
            if rows_by(rows, "current").is_none() {
                return Err(ApiError::new(
                    409,
                    "NoCurrentCertificate",
                    format!("Partition {partition} has no current certificate: set it first (PUT /v1/partitions/{partition}/certificates)."),
                ));
            }
            if rows_by(rows, "previous").is_some() {
                return Err(ApiError::new(
                    409,
                    "PreviousNotRetired",
                    format!("Partition {partition} still publishes its previous certificate: retire it first (POST /v1/partitions/{partition}/certificates/retire)."),
                ));
            }
            if rows
                .iter()
                .any(|r| r.role == "current" && r.data == info.spki_sha256.to_vec())
            {
                return Err(ApiError::invalid(
                    "SameCertificateKey",
                    "The next certificate has the same public key as the current one: its TLSA record (3 1 1) would not change.",
                ));
            }
            rows.retain(|r| r.role != "next");
            rows.push(CertRow {
                role: "next".into(),
                position: 0,
                pem: pem.into(),
                usage: 3,
                selector: 1,
                matching: 1,
                data: info.spki_sha256.to_vec(),
                not_after: info.not_after,
                published_at: t,
            });
            Ok(json!({"spkiSha256": hex(&info.spki_sha256)}))
        })
    }

    /// Promotes the next certificate to current (the current one becomes previous, still
    /// published). Refused (409 `PromotionTooEarly`, saying when it becomes possible) before
    /// its TLSA record has been published for TTL + propagation delay, unless `force`.
    pub fn promote_certificate(
        &self,
        actor: &Actor,
        partition: &str,
        force: bool,
        s: LifecycleSettings,
    ) -> Result<Lifecycle, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        let t = now();
        let ttl = self.partition_ttl(partition);
        self.lifecycle_step(actor, partition, s, "partition.certificate.promote", |rows| {
            let Some(next) = rows_by(rows, "next") else {
                return Err(ApiError::new(
                    409,
                    "NoNextCertificate",
                    format!("Partition {partition} has no next certificate to promote: stage one first (POST /v1/partitions/{partition}/certificates/next)."),
                ));
            };
            let ready = next.published_at + i64::from(ttl) + s.propagation_delay as i64;
            if t < ready && !force {
                return Err(ApiError::new(
                    409,
                    "PromotionTooEarly",
                    format!(
                        "The next certificate's TLSA record was published at {} and senders may hold the TLSA RRset without it until {} (TLSA TTL {ttl} s + propagation delay {} s): promote it from {} (in {} s), or force it.",
                        rfc3339(next.published_at),
                        rfc3339(ready),
                        s.propagation_delay,
                        rfc3339(ready),
                        ready - t
                    ),
                ));
            }
            for r in rows.iter_mut() {
                match r.role.as_str() {
                    "current" => r.role = "previous".into(),
                    "next" => r.role = "current".into(),
                    _ => {}
                }
            }
            Ok(json!({"forced": force && t < ready, "promotableAt": ready}))
        })
    }

    /// Retires the previous certificate: its TLSA record is removed. `still_presented`: what
    /// the endpoint probes saw (None: no probes configured); refused while an endpoint
    /// presents it, unless `force`.
    pub fn retire_certificate(
        &self,
        actor: &Actor,
        partition: &str,
        force: bool,
        still_presented: &dyn Fn(&[u8]) -> Option<Vec<String>>,
        s: LifecycleSettings,
    ) -> Result<Lifecycle, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        // the probes run before the transaction (no network under the store lock)
        let previous = {
            let store = self.lock_store();
            tenancy::partition_certs(store.conn(), partition)
                .ok()
                .and_then(|rows| rows_by(&rows, "previous"))
        };
        let presenting = match &previous {
            Some(p) if !force => still_presented(&p.data),
            _ => None,
        };
        self.lifecycle_step(actor, partition, s, "partition.certificate.retire", |rows| {
            let Some(prev) = rows_by(rows, "previous") else {
                return Err(ApiError::new(
                    409,
                    "NoPreviousCertificate",
                    format!("Partition {partition} has no previous certificate to retire."),
                ));
            };
            if let Some(endpoints) = presenting.as_ref().filter(|e| !e.is_empty()) {
                if previous.as_ref().map(|p| &p.data) == Some(&prev.data) {
                    return Err(ApiError::new(
                        409,
                        "CertificateStillPresented",
                        format!(
                            "The previous certificate is still presented by {}: switch those endpoints to the current certificate first (or force it).",
                            endpoints.join(", ")
                        ),
                    ));
                }
            }
            rows.retain(|r| r.role != "previous");
            Ok(json!({"retired": hex(&prev.data), "forced": force}))
        })
    }

    fn partition_ttl(&self, partition: &str) -> u32 {
        let store = self.lock_store();
        tenancy::get_partition(store.conn(), partition)
            .ok()
            .flatten()
            .map_or(300, |p| p.host_ttl)
    }

    /// One lifecycle step: `change` edits the rows (or refuses); the rows and the TLSA RRset
    /// they imply are written with the audit entry in one transaction.
    fn lifecycle_step(
        &self,
        actor: &Actor,
        partition: &str,
        s: LifecycleSettings,
        action: &str,
        change: impl FnOnce(&mut Vec<CertRow>) -> Result<serde_json::Value, ApiError>,
    ) -> Result<Lifecycle, ApiError> {
        let zone = self.partition_zone(partition);
        let t = now();
        let result: Result<Result<Lifecycle, ApiError>, StoreError> =
            self.lock_store().transaction(|tx| {
                let mut rows = tenancy::partition_certs(tx, partition)?;
                let detail = match change(&mut rows) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                };
                tenancy::replace_partition_certs(tx, partition, &rows)?;
                let ttl = tenancy::get_partition(tx, partition)?.map_or(300, |p| p.host_ttl);
                let data: Vec<RData> = rows.iter().map(|c| RData::TLSA(tlsa(c))).collect();
                write_batch(
                    tx,
                    &Batch {
                        ops: vec![BatchOp::set(
                            &zone,
                            &fleet_tlsa_owner(&zone),
                            RecordType::TLSA,
                            ttl,
                            data,
                        )],
                    },
                    t,
                )?;
                super::audit::record(tx, actor, action, partition, detail)?;
                Ok(Ok(view(partition, &rows, ttl, s, t)))
            });
        let out = result.map_err(|e| {
            ApiError::storage("DnssecOperationFailed", "Changing the certificates", e)
        })??;
        tracing::info!(
            partition,
            action,
            state = out.state,
            "certificate lifecycle step"
        );
        Ok(out)
    }
}

fn view(partition: &str, rows: &[CertRow], ttl: u32, s: LifecycleSettings, t: i64) -> Lifecycle {
    let has = |role: &str| rows.iter().any(|r| r.role == role);
    let state = if has("previous") {
        "promoted"
    } else if has("next") {
        "staged"
    } else if has("current") {
        "current"
    } else {
        "none"
    };
    let promotable_at =
        rows_by(rows, "next").map(|n| n.published_at + i64::from(ttl) + s.propagation_delay as i64);
    let mut warnings = Vec::new();
    if let Some(c) = rows_by(rows, "current") {
        let days = (c.not_after - t).div_euclid(86400);
        if c.not_after - t < i64::from(s.expiry_warning_days) * 86400 && !has("next") {
            warnings.push(format!(
                "The current certificate expires at {} (in {days} days) and no next certificate is staged: stage one now (its TLSA must be published for {} s before it can be used).",
                rfc3339(c.not_after),
                i64::from(ttl) + s.propagation_delay as i64
            ));
        }
    }
    Lifecycle {
        partition: partition.into(),
        state,
        tlsa_ttl: ttl,
        propagation_delay: s.propagation_delay,
        certificates: rows
            .iter()
            .map(|r| CertState {
                tlsa: TlsaView::of(r),
                published_at: r.published_at,
                days_to_expiry: (r.not_after - t).div_euclid(86400),
            })
            .collect(),
        promotable_at,
        warnings,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(t: i64) -> String {
    x509_cert::der::DateTime::from_unix_duration(std::time::Duration::from_secs(t.max(0) as u64))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| t.to_string())
}
