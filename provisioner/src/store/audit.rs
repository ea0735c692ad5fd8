//! SQL for the audit trail (part of the store module): one row per change, written by the use
//! case in the transaction of the change itself, so that the trail and the state never
//! disagree.

use rusqlite::{params, Connection};

use super::Result;

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    /// Position in the trail (increasing; the paging key).
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// `admin` (an admin token), `tenant` (a tenant's token), `cli` (the operator's command
    /// line) or `scheduler` (the server's own key rollover steps).
    pub actor: String,
    pub tenant_id: Option<String>,
    pub token_id: Option<String>,
    /// What was done, e.g. `domain.verify`, `dnssec.enable`, `token.revoke`.
    pub action: String,
    /// What it was done to: a domain, a tenant, a token id, a partition, a zone.
    pub target: String,
    /// More about it (JSON).
    pub detail: serde_json::Value,
}

pub fn insert(c: &Connection, e: &AuditRow) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO audit(at, actor, tenant_id, token_id, action, target, detail)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at,
        e.actor,
        e.tenant_id,
        e.token_id,
        e.action,
        e.target,
        e.detail.to_string()
    ])?;
    Ok(c.last_insert_rowid())
}

/// Entries after `after`, oldest first, at most `limit`.
pub fn page(c: &Connection, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
    let mut st = c.prepare_cached(
        "SELECT seq, at, actor, tenant_id, token_id, action, target, detail FROM audit
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit as i64], |r| {
        let detail: String = r.get(7)?;
        Ok(AuditRow {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            tenant_id: r.get(3)?,
            token_id: r.get(4)?,
            action: r.get(5)?,
            target: r.get(6)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
