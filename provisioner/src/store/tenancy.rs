//! SQL for tenants, accepted domains and partitions (part of the store module).
//!
//! A `domains` row is the owner of an accepted domain and exists only once the domain is
//! verified (its `verified` column is 1 on every row since migration 4); unverified claims are
//! in `domain_claims` (`claims`).

use rusqlite::{params, Connection, OptionalExtension};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    pub domain: String,
    pub tenant_id: String,
    pub mx_token: Option<String>,
    pub partition: Option<String>,
    pub dnssec: bool,
    pub dane: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    pub name: String,
    /// Inbound addresses, comma separated in the table.
    pub addresses: Vec<String>,
    pub host_ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    pub role: String,
    pub position: u32,
    pub pem: String,
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
    pub not_after: i64,
    /// When its TLSA record was first published (unix seconds; 0 for rows older than the
    /// lifecycle).
    pub published_at: i64,
}

pub fn insert_tenant(c: &Connection, id: &str, name: &str, now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO tenants(id, name, created_at) VALUES(?1, ?2, ?3)",
        params![id, name, now],
    )?;
    Ok(())
}

pub fn tenant_exists(c: &Connection, id: &str) -> Result<bool> {
    Ok(
        c.query_row("SELECT 1 FROM tenants WHERE id=?1", [id], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

fn domain_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DomainRow> {
    Ok(DomainRow {
        domain: r.get(0)?,
        tenant_id: r.get(1)?,
        mx_token: r.get(2)?,
        partition: r.get(3)?,
        dnssec: r.get(4)?,
        dane: r.get(5)?,
    })
}

const DOMAIN_COLS: &str = "domain, tenant_id, mx_token, partition, dnssec, dane";

pub fn get_domain(c: &Connection, domain: &str) -> Result<Option<DomainRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {DOMAIN_COLS} FROM domains WHERE domain=?1"
    ))?
    .query_row([domain], domain_from_row)
    .optional()?)
}

/// Owned domains in name order: of one tenant or all, whose name contains `search`, after
/// `after` (paging), at most `limit`.
pub fn list_domains(
    c: &Connection,
    tenant: Option<&str>,
    search: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<DomainRow>> {
    let like = format!(
        "%{}%",
        search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut st = c.prepare_cached(&format!(
        "SELECT {DOMAIN_COLS} FROM domains WHERE (?1 IS NULL OR tenant_id=?1) \
         AND domain LIKE ?2 ESCAPE '\\' AND domain > ?3 ORDER BY domain LIMIT ?4"
    ))?;
    let rows = st.query_map(params![tenant, like, after, limit as i64], domain_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Makes `tenant` the owner of `domain` (verified, nothing enabled yet). Fails when the domain
/// has an owner already (UNIQUE constraint).
pub fn insert_owner(c: &Connection, domain: &str, tenant: &str, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO domains(domain, tenant_id, verified, added_at, updated_at) VALUES(?1, ?2, 1, ?3, ?3)",
    )?
    .execute(params![domain, tenant, now])?;
    Ok(())
}

/// Forgets the owner of `domain` (its MX token with it); returns whether there was one.
pub fn delete_domain(c: &Connection, domain: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM domains WHERE domain=?1", [domain])? > 0)
}

/// Adds a verified domain with its whole state at once (the bulk import's new domains).
/// Fails on a domain or MX token that exists already (UNIQUE constraints).
pub fn insert_domain(c: &Connection, d: &DomainRow, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO domains(domain, tenant_id, verified, added_at, updated_at, mx_token, partition, dnssec, dane)
         VALUES(?1, ?2, 1, ?3, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        d.domain,
        d.tenant_id,
        now,
        d.mx_token,
        d.partition,
        d.dnssec,
        d.dane
    ])?;
    Ok(())
}

pub fn update_domain_state(c: &Connection, d: &DomainRow, now: i64) -> Result<()> {
    c.execute(
        "UPDATE domains SET mx_token=?2, partition=?3, dnssec=?4, dane=?5, updated_at=?6 WHERE domain=?1",
        params![d.domain, d.mx_token, d.partition, d.dnssec, d.dane, now],
    )?;
    Ok(())
}

/// True when `token` is assigned to a domain other than `domain`.
pub fn token_taken(c: &Connection, token: &str, domain: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM domains WHERE mx_token=?1 AND domain<>?2",
        [token, domain],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Domains with DNSSEC enabled in a partition (only those with DANE when `dane_only`).
pub fn enabled_domains(c: &Connection, partition: &str, dane_only: bool) -> Result<Vec<DomainRow>> {
    let sql = format!(
        "SELECT {DOMAIN_COLS} FROM domains WHERE partition=?1 AND dnssec=1 {}",
        if dane_only { "AND dane=1" } else { "" }
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([partition], domain_from_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Number of DNSSEC-enabled domains per partition name.
pub fn partition_load(c: &Connection, partition: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM domains WHERE partition=?1 AND dnssec=1",
        [partition],
        |r| r.get(0),
    )?)
}

pub fn get_partition(c: &Connection, name: &str) -> Result<Option<PartitionRow>> {
    Ok(c.query_row(
        "SELECT name, addresses, host_ttl FROM partitions WHERE name=?1",
        [name],
        |r| {
            let addrs: String = r.get(1)?;
            Ok(PartitionRow {
                name: r.get(0)?,
                addresses: addrs
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                host_ttl: r.get(2)?,
            })
        },
    )
    .optional()?)
}

/// Creates the partition if it does not exist (configuration seeds; the database wins after).
pub fn seed_partition(c: &Connection, p: &PartitionRow) -> Result<()> {
    c.execute(
        "INSERT INTO partitions(name, addresses, host_ttl) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
        params![p.name, p.addresses.join(","), p.host_ttl],
    )?;
    Ok(())
}

pub fn set_partition(c: &Connection, p: &PartitionRow) -> Result<()> {
    c.execute(
        "INSERT INTO partitions(name, addresses, host_ttl) VALUES(?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET addresses=excluded.addresses, host_ttl=excluded.host_ttl",
        params![p.name, p.addresses.join(","), p.host_ttl],
    )?;
    Ok(())
}

pub fn partition_certs(c: &Connection, partition: &str) -> Result<Vec<CertRow>> {
    let mut st = c.prepare(
        "SELECT role, position, pem, usage, selector, matching, data, not_after, published_at FROM partition_certs
         WHERE partition=?1 ORDER BY CASE role WHEN 'current' THEN 0 WHEN 'next' THEN 1 WHEN 'previous' THEN 2 ELSE 3 END, position",
    )?;
    let rows = st.query_map([partition], |r| {
        Ok(CertRow {
            role: r.get(0)?,
            position: r.get(1)?,
            pem: r.get(2)?,
            usage: r.get(3)?,
            selector: r.get(4)?,
            matching: r.get(5)?,
            data: r.get(6)?,
            not_after: r.get(7)?,
            published_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn replace_partition_certs(c: &Connection, partition: &str, certs: &[CertRow]) -> Result<()> {
    c.execute(
        "DELETE FROM partition_certs WHERE partition=?1",
        [partition],
    )?;
    for k in certs {
        c.execute(
            "INSERT INTO partition_certs(partition, role, position, pem, usage, selector, matching, data, not_after, published_at)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![partition, k.role, k.position, k.pem, k.usage, k.selector, k.matching, k.data, k.not_after, k.published_at],
        )?;
    }
    Ok(())
}
