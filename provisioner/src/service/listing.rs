//! Listing owned domains (the dashboard): a tenant sees its own, the admin every one.

use serde::Serialize;

use super::{Actor, ApiError, Provisioner};
use crate::store::tenancy;

/// One owned domain and what is enabled for it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainSummary {
    pub domain: String,
    /// The owner (the admin's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub partition: Option<String>,
    pub dnssec_enabled: bool,
    pub smtp_dane_enabled: bool,
    /// "dane" (DNSSEC and DANE), "dnssec" (DNSSEC only) or "verified" (nothing enabled).
    pub state: &'static str,
}

impl Provisioner {
    /// Owned domains in name order whose name contains `search`, after `after`, at most
    /// `limit` (1 to 1000).
    pub fn list_domains(
        &self,
        actor: &Actor,
        search: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DomainSummary>, ApiError> {
        let limit = limit.clamp(1, 1000);
        let search = search.trim().to_ascii_lowercase();
        let store = self.lock_store();
        let rows = tenancy::list_domains(store.conn(), actor.tenant(), &search, after, limit)
            .map_err(|e| {
                tracing::warn!(error = %e, "listing domains failed");
                ApiError::new(
                    503,
                    "StoreBusy",
                    "The domains could not be read; retry the request later.",
                )
            })?;
        Ok(rows
            .into_iter()
            .map(|r| DomainSummary {
                state: match (r.dnssec, r.dane) {
                    (true, true) => "dane",
                    (true, false) => "dnssec",
                    _ => "verified",
                },
                tenant_id: actor.is_admin().then_some(r.tenant_id),
                domain: r.domain,
                partition: r.partition,
                dnssec_enabled: r.dnssec,
                smtp_dane_enabled: r.dane,
            })
            .collect())
    }
}
