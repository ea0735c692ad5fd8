//! SQL for unverified claims on accepted domains (part of the store module).
//!
//! Any number of tenants may claim one name, each with its own verification value; a claim
//! never blocks another tenant. The owner of a name is its `domains` row (see `tenancy`), which
//! exists only once a claim was proved (or the admin marked the domain verified).

use rusqlite::{params, Connection, OptionalExtension};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub domain: String,
    pub tenant_id: String,
    /// The TXT record to publish at the domain, e.g. `mxdns-verify=3f9a...`.
    pub value: String,
    pub added_at: i64,
}

const COLS: &str = "domain, tenant_id, value, added_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimRow> {
    Ok(ClaimRow {
        domain: r.get(0)?,
        tenant_id: r.get(1)?,
        value: r.get(2)?,
        added_at: r.get(3)?,
    })
}

pub fn get(c: &Connection, domain: &str, tenant: &str) -> Result<Option<ClaimRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM domain_claims WHERE domain=?1 AND tenant_id=?2"
    ))?
    .query_row([domain, tenant], from_row)
    .optional()?)
}

/// Every claim on `domain`, oldest first.
pub fn of_domain(c: &Connection, domain: &str) -> Result<Vec<ClaimRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM domain_claims WHERE domain=?1 ORDER BY added_at, tenant_id"
    ))?;
    let rows = st.query_map([domain], from_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn insert(c: &Connection, claim: &ClaimRow) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO domain_claims({COLS}) VALUES(?1, ?2, ?3, ?4)"
    ))?
    .execute(params![
        claim.domain,
        claim.tenant_id,
        claim.value,
        claim.added_at
    ])?;
    Ok(())
}

/// How many claims `tenant` holds.
pub fn count_of_tenant(c: &Connection, tenant: &str) -> Result<usize> {
    Ok(
        c.prepare_cached("SELECT COUNT(*) FROM domain_claims WHERE tenant_id=?1")?
            .query_row([tenant], |r| r.get::<_, i64>(0))? as usize,
    )
}

/// Removes one tenant's claim; returns whether there was one.
pub fn delete(c: &Connection, domain: &str, tenant: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM domain_claims WHERE domain=?1 AND tenant_id=?2")?
            .execute([domain, tenant])?
            > 0,
    )
}

/// Removes every claim on `domain`; returns how many there were.
pub fn delete_all(c: &Connection, domain: &str) -> Result<usize> {
    Ok(c.execute("DELETE FROM domain_claims WHERE domain=?1", [domain])?)
}
