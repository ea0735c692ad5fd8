//! The audit trail: every use case that changes something writes who did what to what, in the
//! transaction of the change ([`record`]); the admin reads it page by page ([`Provisioner::audit`]).

use serde_json::Value;

use super::{now, Actor, ApiError, Provisioner};
use crate::store::audit::{self, AuditRow};
use crate::store::{StoreError, Transaction};

/// Writes one entry for a change made by `actor`, inside the change's own transaction.
pub fn record(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), StoreError> {
    audit::insert(
        tx,
        &AuditRow {
            seq: 0,
            at: now(),
            actor: actor.kind().into(),
            tenant_id: actor.tenant().map(String::from),
            token_id: actor.token_id.clone(),
            action: action.into(),
            target: target.into(),
            detail,
        },
    )?;
    Ok(())
}

/// One page of the trail, oldest first; `next` is the `after` of the following page (None at
/// the end).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<AuditRow>,
    pub next: Option<i64>,
}

/// Entries per page at most.
pub const MAX_PAGE: usize = 1000;

impl Provisioner {
    /// The entries after `after` (admin only), at most `limit` (1 to 1000).
    pub fn audit(&self, actor: &Actor, after: i64, limit: usize) -> Result<AuditPage, ApiError> {
        actor.require_admin()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let entries = audit::page(self.lock_store().conn(), after, limit)
            .map_err(|e| ApiError::storage("AuditReadFailed", "Reading the audit trail", e))?;
        let next = if entries.len() == limit {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }
}
