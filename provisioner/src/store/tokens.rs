//! SQL for API tokens (part of the store module), and [`TokenReader`]: the read-only
//! connections authentication uses, apart from the writers' connection.
//!
//! A token is stored as the SHA-256 of its text; the text is shown once, when it is made.
//! Revoking sets `revoked_at`; the row (and its hash) stays, so a revoked token can never be
//! registered again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    pub id: String,
    /// None: an admin token.
    pub tenant_id: Option<String>,
    #[serde(skip)]
    pub token_sha256: Vec<u8>,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLS: &str = "id, tenant_id, token_sha256, label, created_at, revoked_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        token_sha256: r.get(2)?,
        label: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

pub fn insert(c: &Connection, t: &TokenRow) -> Result<()> {
    c.execute(
        &format!("INSERT INTO tokens({COLS}) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            t.id,
            t.tenant_id,
            t.token_sha256,
            t.label,
            t.created_at,
            t.revoked_at
        ],
    )?;
    Ok(())
}

/// Registers a token unless its hash is known already (live or revoked). Returns whether it
/// was added.
pub fn insert_if_new(c: &Connection, t: &TokenRow) -> Result<bool> {
    let n = c.execute(
        &format!(
            "INSERT INTO tokens({COLS}) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING"
        ),
        params![
            t.id,
            t.tenant_id,
            t.token_sha256,
            t.label,
            t.created_at,
            t.revoked_at
        ],
    )?;
    Ok(n == 1)
}

pub fn get(c: &Connection, id: &str) -> Result<Option<TokenRow>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM tokens WHERE id=?1"))?
            .query_row([id], from_row)
            .optional()?,
    )
}

pub fn by_hash(c: &Connection, sha256: &[u8]) -> Result<Option<TokenRow>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM tokens WHERE token_sha256=?1"))?
            .query_row([sha256], from_row)
            .optional()?,
    )
}

/// Which tokens [`list`] shows.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    All,
    Admin,
    Tenant(&'a str),
}

/// Tokens, oldest first.
pub fn list(c: &Connection, filter: Filter<'_>) -> Result<Vec<TokenRow>> {
    let (cond, arg) = match filter {
        Filter::All => ("1", None),
        Filter::Admin => ("tenant_id IS NULL", None),
        Filter::Tenant(t) => ("tenant_id = ?1", Some(t)),
    };
    let sql = format!("SELECT {COLS} FROM tokens WHERE {cond} ORDER BY created_at, id");
    let mut st = c.prepare_cached(&sql)?;
    let rows = match arg {
        Some(t) => st
            .query_map([t], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>(),
        None => st.query_map([], from_row)?.collect(),
    };
    Ok(rows?)
}

/// Marks a live token revoked. Returns false when it is unknown or already revoked.
pub fn revoke(c: &Connection, id: &str, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE tokens SET revoked_at=?2 WHERE id=?1 AND revoked_at IS NULL",
        params![id, now],
    )? == 1)
}

/// Read-only connections for authentication. They never take the writers' connection (or its
/// lock): in WAL mode a read runs beside a writer's open transaction and sees the last commit,
/// so a revocation committed by any process counts from the next request on. A connection is
/// taken from the pool for one lookup and put back; the pool's lock is held only for that.
pub struct TokenReader {
    path: PathBuf,
    busy: Duration,
    pool: Mutex<Vec<Connection>>,
}

/// Connections kept for reuse.
const POOL: usize = 8;

impl TokenReader {
    pub fn new(path: &Path, busy: Duration) -> Self {
        Self {
            path: path.to_path_buf(),
            busy,
            pool: Mutex::new(Vec::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(self.busy)?;
                c
            }
        };
        let out = f(&conn);
        if out.is_ok() {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL {
                pool.push(conn);
            }
        }
        out
    }

    pub fn get(&self, id: &str) -> Result<Option<TokenRow>> {
        self.with(|c| get(c, id))
    }

    pub fn by_hash(&self, sha256: &[u8]) -> Result<Option<TokenRow>> {
        self.with(|c| by_hash(c, sha256))
    }
}
