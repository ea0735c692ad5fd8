//! The store of record: SQLite. All SQL of mxdns lives in this module.
//!
//! Tables (schema version in `meta`, migrations numbered in [`MIGRATIONS`]):
//! - `zones`: served zones, their parent and current SOA serial;
//! - `keys`: key metadata (the private key itself is a 0600 file next to the database);
//! - `records`: zone content written by provisioning (owner, type, TTL, RDATA in wire form);
//! - `changes`: an append-only log of touched (zone, owner) pairs, which the running server
//!   follows so that writes made by another process (a command, the API) are served;
//! - `tenants`, `tokens`, `domains` (verified owners), `domain_claims` (unverified claims),
//!   `partitions`, `partition_certs`, `audit` (`tenancy`, `claims`, `tokens`, `audit`).
//!
//! The database file and its -wal/-shm files have mode 0600.
//!
//! Every write is one transaction: it is either all in the database or not at all, and it is
//! durable (`synchronous=FULL`) when the call returns.

use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};
use rusqlite::{params, Connection, OptionalExtension};

pub mod audit;
pub mod claims;
pub mod tenancy;
pub mod tokens;

pub use rusqlite::Transaction;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this program ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("bad record data in the database: {0}")]
    Data(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

const MIGRATIONS: &[&str] = &[
    // 1: zones, keys, records, change log
    "CREATE TABLE zones (
        name TEXT PRIMARY KEY,
        parent TEXT,
        serial INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE keys (
        id INTEGER PRIMARY KEY,
        zone TEXT NOT NULL REFERENCES zones(name),
        role TEXT NOT NULL CHECK (role IN ('ksk','zsk')),
        algorithm INTEGER NOT NULL,
        key_tag INTEGER NOT NULL,
        file TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        published_at INTEGER,
        active_at INTEGER,
        retired_at INTEGER,
        removed_at INTEGER
     );
     CREATE INDEX keys_zone ON keys(zone);
     CREATE TABLE records (
        zone TEXT NOT NULL,
        owner TEXT NOT NULL,
        rtype INTEGER NOT NULL,
        ttl INTEGER NOT NULL,
        rdata BLOB NOT NULL,
        PRIMARY KEY (zone, owner, rtype, rdata)
     ) WITHOUT ROWID;
     CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        zone TEXT NOT NULL,
        owner TEXT NOT NULL,
        at INTEGER NOT NULL
     );",
    // 2: tenants, accepted domains, partitions and their fleet certificates
    "CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_sha256 BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE domains (
        domain TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        verified INTEGER NOT NULL,
        added_at INTEGER NOT NULL,
        mx_token TEXT UNIQUE,
        partition TEXT,
        dnssec INTEGER NOT NULL DEFAULT 0,
        dane INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
     );
     CREATE INDEX domains_tenant ON domains(tenant_id);
     CREATE INDEX domains_partition ON domains(partition, dane);
     CREATE TABLE partitions (
        name TEXT PRIMARY KEY,
        addresses TEXT NOT NULL,
        host_ttl INTEGER NOT NULL
     );
     CREATE TABLE partition_certs (
        partition TEXT NOT NULL REFERENCES partitions(name),
        role TEXT NOT NULL CHECK (role IN ('current', 'next', 'issuer')),
        position INTEGER NOT NULL,
        pem TEXT NOT NULL,
        usage INTEGER NOT NULL,
        selector INTEGER NOT NULL,
        matching INTEGER NOT NULL,
        data BLOB NOT NULL,
        not_after INTEGER NOT NULL,
        PRIMARY KEY (partition, role, position)
     );",
    // 3: key rollovers: the DS steps, unscheduled rolls, deleted key files; a per-zone counter
    // that every key change bumps, which the running server follows
    "ALTER TABLE keys ADD COLUMN ds_submitted_at INTEGER;
     ALTER TABLE keys ADD COLUMN ds_seen_at INTEGER;
     ALTER TABLE keys ADD COLUMN roll_requested_at INTEGER;
     ALTER TABLE keys ADD COLUMN purged_at INTEGER;
     UPDATE keys SET ds_submitted_at = published_at, ds_seen_at = published_at WHERE role = 'ksk';
     ALTER TABLE zones ADD COLUMN key_version INTEGER NOT NULL DEFAULT 0;",
    // 4: tenancy by proof. Tokens get a table of their own (several per tenant, an id to revoke
    // them by, admin tokens too); the tenants table is rebuilt without its one token column.
    // Unverified claims move to `domain_claims` (any number of tenants per name, each with its
    // own TXT value); a `domains` row is the owner and exists only once verified. `audit` is
    // the trail of every change.
    "CREATE TABLE tenants_v4 (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     INSERT INTO tenants_v4(id, name, created_at) SELECT id, name, created_at FROM tenants;
     CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id),
        token_sha256 BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
     );
     INSERT INTO tokens(id, tenant_id, token_sha256, label, created_at)
        SELECT 'tk' || lower(hex(randomblob(8))), id, token_sha256, 'created with the tenant', created_at
        FROM tenants;
     DROP TABLE tenants;
     ALTER TABLE tenants_v4 RENAME TO tenants;
     CREATE INDEX tokens_tenant ON tokens(tenant_id);
     CREATE TABLE domain_claims (
        domain TEXT NOT NULL,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        value TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (domain, tenant_id)
     ) WITHOUT ROWID;
     CREATE INDEX domain_claims_tenant ON domain_claims(tenant_id);
     INSERT INTO domain_claims(domain, tenant_id, value, added_at)
        SELECT domain, tenant_id, 'mxdns-verify=' || lower(hex(randomblob(16))), added_at
        FROM domains WHERE verified = 0 AND mx_token IS NULL;
     DELETE FROM domains WHERE verified = 0 AND mx_token IS NULL;
     UPDATE domains SET verified = 1 WHERE verified = 0;
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        tenant_id TEXT,
        token_id TEXT,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
     );",
    // 5: rollovers wait for the fleet: when every secondary was first seen serving the serial
    // that carries a key's publication, its retirement (ZSK switch), its DS in our parent zone;
    // and the serial that carries a zone's key version (with its parent's), as the server
    // served it
    "ALTER TABLE keys ADD COLUMN published_fleet_at INTEGER;
     ALTER TABLE keys ADD COLUMN retired_fleet_at INTEGER;
     ALTER TABLE keys ADD COLUMN ds_fleet_at INTEGER;
     ALTER TABLE zones ADD COLUMN served_key_version INTEGER;
     ALTER TABLE zones ADD COLUMN served_serial INTEGER;
     ALTER TABLE zones ADD COLUMN served_parent_serial INTEGER;",
    // 6: the certificate lifecycle. A fleet
    // certificate may be `previous` (promoted away from, still published until retired), and
    // each row knows when its TLSA record was first published (the promotion wait).
    "CREATE TABLE partition_certs_v6 (
        partition TEXT NOT NULL REFERENCES partitions(name),
        role TEXT NOT NULL CHECK (role IN ('current', 'next', 'previous', 'issuer')),
        position INTEGER NOT NULL,
        pem TEXT NOT NULL,
        usage INTEGER NOT NULL,
        selector INTEGER NOT NULL,
        matching INTEGER NOT NULL,
        data BLOB NOT NULL,
        not_after INTEGER NOT NULL,
        published_at INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (partition, role, position)
     );
     INSERT INTO partition_certs_v6(partition, role, position, pem, usage, selector, matching, data, not_after)
        SELECT partition, role, position, pem, usage, selector, matching, data, not_after FROM partition_certs;
     DROP TABLE partition_certs;
     ALTER TABLE partition_certs_v6 RENAME TO partition_certs;",
];

/// The serials that carry a zone's key version, as the server published them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedKeys {
    /// The zone's `key_version` now.
    pub key_version: i64,
    /// The version the server last published, with the zone's serial then and its parent's
    /// (partitions: the parent holds the DS).
    pub served_version: Option<i64>,
    pub serial: Option<u32>,
    pub parent_serial: Option<u32>,
}

/// A stored key's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: i64,
    pub zone: String,
    pub role: String,
    pub algorithm: u8,
    pub key_tag: u16,
    pub file: String,
    pub created_at: i64,
    pub published_at: Option<i64>,
    pub active_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub removed_at: Option<i64>,
    pub ds_submitted_at: Option<i64>,
    pub ds_seen_at: Option<i64>,
    pub roll_requested_at: Option<i64>,
    /// When the key file was deleted (some time after removal).
    pub purged_at: Option<i64>,
    /// When every secondary was first seen serving its publication, retirement, DS.
    pub published_fleet_at: Option<i64>,
    pub retired_fleet_at: Option<i64>,
    pub ds_fleet_at: Option<i64>,
}

/// One RRset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRrset {
    pub owner: Name,
    pub rtype: RecordType,
    pub ttl: u32,
    pub data: Vec<RData>,
}

/// A change to the content of one zone, as a list of RRset replacements and deletions.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub ops: Vec<BatchOp>,
}

#[derive(Debug, Clone)]
pub enum BatchOp {
    /// Replace the RRset (owner, type) with these records.
    Put { zone: Name, rrset: StoredRrset },
    /// Delete the RRset (owner, type).
    Delete {
        zone: Name,
        owner: Name,
        rtype: RecordType,
    },
    /// Delete everything at the owner.
    DeleteName { zone: Name, owner: Name },
}

impl BatchOp {
    /// Replaces the RRset (owner, type) with `data`, or deletes it when `data` is empty.
    pub fn set(zone: &Name, owner: &Name, rtype: RecordType, ttl: u32, data: Vec<RData>) -> Self {
        if data.is_empty() {
            BatchOp::Delete {
                zone: zone.clone(),
                owner: owner.clone(),
                rtype,
            }
        } else {
            BatchOp::Put {
                zone: zone.clone(),
                rrset: StoredRrset {
                    owner: owner.clone(),
                    rtype,
                    ttl,
                    data,
                },
            }
        }
    }
}

pub struct Store {
    conn: Connection,
}

fn key(name: &Name) -> String {
    name.to_lowercase().to_ascii()
}

fn encode_rdata(data: &RData) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut enc)
        .map_err(|e| StoreError::Data(e.to_string()))?;
    Ok(buf)
}

fn decode_rdata(rtype: RecordType, bytes: &[u8]) -> Result<RData> {
    let mut dec = BinDecoder::new(bytes);
    RData::read(&mut dec, rtype, Restrict::new(bytes.len() as u16))
        .map_err(|e| StoreError::Data(e.to_string()))
}

fn parse_name(s: &str) -> Result<Name> {
    Name::from_ascii(s).map_err(|e| StoreError::Data(format!("{s}: {e}")))
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_timeout(path, Duration::from_secs(10))
    }

    /// A consistent copy of the whole database at `dest` (mode 0600), made while other
    /// connections (a running server) read and write: SQLite's online backup, all pages in one
    /// step, so the copy is one read transaction's snapshot (WAL: writers go on meanwhile).
    /// `dest` must not exist.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Data(format!(
                "{} exists already",
                dest.display()
            )));
        }
        create_private(dest)?;
        let mut dst = Connection::open(dest)?;
        {
            let b = rusqlite::backup::Backup::new(&self.conn, &mut dst)?;
            match b.step(-1)? {
                rusqlite::backup::StepResult::Done => {}
                other => {
                    return Err(StoreError::Data(format!(
                        "the backup did not complete ({other:?}); try again"
                    )))
                }
            }
        }
        // a self-contained file: no -wal beside it
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        drop(dst);
        make_private(dest)?;
        Ok(())
    }

    /// Opens with a given busy timeout (how long a write waits for another writer).
    pub fn open_with_timeout(path: &Path, busy: Duration) -> Result<Self> {
        create_private(path)?;
        let mut conn = Connection::open(path)?;
        // SQLite's own busy handler sleeps longer and longer (up to 100 ms between tries): a
        // writer waiting for a bulk import's transaction would mostly miss the short gaps
        // between them. This one tries again every millisecond until `busy` has passed.
        let mut since = std::time::Instant::now();
        conn.busy_handler(Some(move |count: i32| {
            if count == 0 {
                since = std::time::Instant::now();
            }
            if since.elapsed() >= busy {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
            true
        }))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut store = Self { conn };
        store.migrate()?;
        store.conn.pragma_update(None, "foreign_keys", "ON")?;
        make_private(path)?;
        Ok(store)
    }

    /// Brings the schema up to date in one transaction. Foreign keys are off meanwhile (a
    /// migration may rebuild a table others refer to: SQLite's documented procedure) and
    /// checked before the commit.
    fn migrate(&mut self) -> Result<()> {
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        )?;
        let version: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [i as i64 + 1],
            )?;
        }
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Data(format!(
                "the migration left a dangling reference in {table}"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    /// The connection, for the SQL of the sibling modules of the store.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Registers a zone if it is not known yet.
    pub fn ensure_zone(&mut self, zone: &Name, parent: Option<&Name>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO zones(name, parent, serial) VALUES(?1, ?2, 0) ON CONFLICT(name) DO NOTHING",
            params![key(zone), parent.map(key)],
        )?;
        Ok(())
    }

    pub fn serial(&self, zone: &Name) -> Result<u32> {
        let s: Option<i64> = self
            .conn
            .query_row("SELECT serial FROM zones WHERE name=?1", [key(zone)], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(s.unwrap_or(0) as u32)
    }

    pub fn set_serial(&mut self, zone: &Name, serial: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE zones SET serial=?2 WHERE name=?1",
            params![key(zone), serial as i64],
        )?;
        Ok(())
    }

    pub fn keys(&self, zone: &Name) -> Result<Vec<KeyRow>> {
        keys_in(&self.conn, zone)
    }

    /// The largest TTL of the zone's stored records (0 when it has none).
    pub fn max_ttl(&self, zone: &Name) -> Result<u32> {
        max_ttl(&self.conn, zone)
    }

    /// The server published key version `version` of `zone` at `serial` (and its parent at
    /// `parent_serial`): the serials a secondary must serve for the rollover to go on.
    pub fn set_served_keys(
        &mut self,
        zone: &Name,
        version: i64,
        serial: u32,
        parent_serial: Option<u32>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE zones SET served_key_version=?2, served_serial=?3, served_parent_serial=?4
             WHERE name=?1",
            params![
                key(zone),
                version,
                serial as i64,
                parent_serial.map(|s| s as i64)
            ],
        )?;
        Ok(())
    }

    /// See [`served_keys`].
    pub fn served_keys(&self, zone: &Name) -> Result<ServedKeys> {
        served_keys(&self.conn, zone)
    }

    /// The key version of every zone (bumped by every key change).
    pub fn key_versions(&self) -> Result<Vec<(Name, i64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name, key_version FROM zones ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (z, v) = row?;
            out.push((parse_name(&z)?, v));
        }
        Ok(out)
    }

    /// All RRsets of a zone, grouped, in no particular order.
    pub fn zone_rrsets(&self, zone: &Name) -> Result<Vec<StoredRrset>> {
        self.select_rrsets(
            "SELECT owner, rtype, ttl, rdata FROM records WHERE zone=?1 ORDER BY owner, rtype",
            &[&key(zone)],
        )
    }

    /// A page of a zone's RRsets: owners after `after` (in the store's text order), about
    /// `max_rows` records, never splitting an owner. Returns the page and the owner to continue
    /// after (None at the end).
    pub fn zone_rrsets_page(
        &self,
        zone: &Name,
        after: &str,
        max_rows: usize,
    ) -> Result<(Vec<StoredRrset>, Option<String>)> {
        let mut st = self.conn.prepare_cached(
            "SELECT owner, rtype, ttl, rdata FROM records WHERE zone=?1 AND owner > ?2
             ORDER BY owner, rtype LIMIT ?3",
        )?;
        let rows: Vec<(String, u16, u32, Vec<u8>)> = st
            .query_map(params![key(zone), after, max_rows as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<std::result::Result<_, _>>()?;
        if rows.len() < max_rows {
            return Ok((group(rows.into_iter().map(Ok))?, None));
        }
        // the last owner may go on past the limit: leave it to the next page
        let last = rows.last().map(|r| r.0.clone()).unwrap_or_default();
        let keep: Vec<_> = rows.into_iter().filter(|r| r.0 != last).collect();
        if keep.is_empty() {
            // one owner with more than max_rows records: take it whole
            let all = self.select_rrsets(
                "SELECT owner, rtype, ttl, rdata FROM records WHERE zone=?1 AND owner=?2 ORDER BY rtype",
                &[&key(zone), &last],
            )?;
            return Ok((all, Some(last)));
        }
        let next = keep.last().map(|r| r.0.clone());
        Ok((group(keep.into_iter().map(Ok))?, next))
    }

    /// The RRsets of every owner of `zone` in the change log's entries `after < seq <= upto`, in
    /// one query, ordered by owner (the follower's bulk read: a query per owner cost more).
    pub fn rrsets_changed(&self, zone: &Name, after: i64, upto: i64) -> Result<Vec<StoredRrset>> {
        self.select_rrsets(
            // CROSS JOIN keeps the logged owners as the outer loop (a primary-key lookup in
            // `records` each); with a plain JOIN the planner may scan all of `records`
            "SELECT r.owner, r.rtype, r.ttl, r.rdata
             FROM (SELECT DISTINCT owner FROM changes WHERE seq > ?2 AND seq <= ?3 AND zone = ?1) c
             CROSS JOIN records r ON r.zone = ?1 AND r.owner = c.owner
             ORDER BY r.owner, r.rtype",
            &[&key(zone), &after, &upto],
        )
    }

    /// The RRsets at one owner.
    pub fn rrsets_at(&self, zone: &Name, owner: &Name) -> Result<Vec<StoredRrset>> {
        self.select_rrsets(
            "SELECT owner, rtype, ttl, rdata FROM records WHERE zone=?1 AND owner=?2 ORDER BY rtype",
            &[&key(zone), &key(owner)],
        )
    }

    fn select_rrsets(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<StoredRrset>> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        group(rows)
    }

    /// Applies a batch in one transaction and logs every touched owner. Returns the last
    /// change sequence number written.
    pub fn write(&mut self, batch: &Batch, now: i64) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq = write_batch(&tx, batch, now)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Runs `f` inside one write transaction (for use cases that combine their own tables with
    /// zone content).
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.transaction_with(f)
    }

    /// [`Store::transaction`] for callers with their own error type: nothing is written unless
    /// `f` returns `Ok`.
    pub fn transaction_with<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// The highest change sequence number ever written (0 when none). Read from
    /// `sqlite_sequence` too, so that it stays right after the log was pruned.
    pub fn last_change(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='changes'), 0),
                        COALESCE((SELECT MAX(seq) FROM changes), 0))",
            [],
            |r| r.get(0),
        )?)
    }

    /// The first change after `seq`: its sequence number and when it was written (seconds).
    pub fn first_change_after(&self, seq: i64) -> Result<Option<(i64, i64)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT seq, at FROM changes WHERE seq > ?1 ORDER BY seq LIMIT 1")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// How many entries the change log holds.
    pub fn change_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))?)
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub fn changes_since(&self, seq: i64, limit: usize) -> Result<Vec<(i64, Name, Name)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, zone, owner FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![seq, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (s, z, o) = row?;
            out.push((s, parse_name(&z)?, parse_name(&o)?));
        }
        Ok(out)
    }

    /// Deletes the change-log entries up to `upto` (a checkpoint covers them), at most `chunk`
    /// per transaction so that other writers are held back by one short transaction at a time.
    /// Returns how many went in this call; call again until it returns less than `chunk`.
    /// [`Store::last_change`] stays right (it also reads `sqlite_sequence`).
    pub fn prune_changes(&mut self, upto: i64, chunk: usize) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM changes WHERE seq IN
               (SELECT seq FROM changes WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
            params![upto, chunk as i64],
        )?)
    }
}

thread_local! {
    /// The (zone, owner) pairs [`write_batch`] logged on this thread while [`collect_touched`]
    /// runs; `None` when nobody collects or more than [`TOUCHED_MAX`] were written.
    static TOUCHED: std::cell::RefCell<Option<Vec<(Name, Name)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Owners collected by [`collect_touched`] at most (a bulk change collects nothing).
pub const TOUCHED_MAX: usize = 4096;

/// Runs `f` and returns, besides its result, the (zone, owner) pairs that the zone-content
/// writes made by `f` on this thread logged (committed or not: a caller re-reads their stored
/// state, which is right either way), or `None` when there were more than [`TOUCHED_MAX`].
/// The running server uses it to serve one API change right away, ahead of the change log's
/// backlog.
pub fn collect_touched<T>(f: impl FnOnce() -> T) -> (T, Option<Vec<(Name, Name)>>) {
    let outer = TOUCHED.with(|t| t.borrow_mut().replace(Vec::new()));
    let out = f();
    let touched = TOUCHED.with(|t| std::mem::replace(&mut *t.borrow_mut(), outer));
    (out, touched)
}

fn note_touched(zone: &Name, owner: &Name) {
    TOUCHED.with(|t| {
        let mut t = t.borrow_mut();
        if let Some(v) = t.as_mut() {
            if v.len() >= TOUCHED_MAX {
                *t = None;
            } else {
                v.push((zone.to_lowercase(), owner.to_lowercase()));
            }
        }
    });
}

/// Creates the database file with mode 0600 if it does not exist yet (SQLite gives its -wal and
/// -shm files the mode of the database file).
fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map(drop)
        .map_err(|e| StoreError::Data(format!("creating {}: {e}", path.display())))
}

/// Mode 0600 for the database and its -wal and -shm files (a database made by an earlier
/// version may have had the umask's mode).
fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_path_buf()];
        for ext in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(ext);
            files.push(p.into());
        }
        for f in files {
            match std::fs::metadata(&f) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).map_err(
                        |e| StoreError::Data(format!("making {} private: {e}", f.display())),
                    )?
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Writes a batch inside an open transaction; see [`Store::write`].
pub fn write_batch(tx: &Transaction<'_>, batch: &Batch, now: i64) -> Result<i64> {
    let mut del_type =
        tx.prepare_cached("DELETE FROM records WHERE zone=?1 AND owner=?2 AND rtype=?3")?;
    let mut del_name = tx.prepare_cached("DELETE FROM records WHERE zone=?1 AND owner=?2")?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO records(zone, owner, rtype, ttl, rdata) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?;
    let mut log = tx.prepare_cached("INSERT INTO changes(zone, owner, at) VALUES(?1, ?2, ?3)")?;
    for op in &batch.ops {
        let (zone, owner) = match op {
            BatchOp::Put { zone, rrset } => {
                note_touched(zone, &rrset.owner);
                let (z, o) = (key(zone), key(&rrset.owner));
                let t = u16::from(rrset.rtype);
                del_type.execute(params![z, o, t])?;
                for d in &rrset.data {
                    ins.execute(params![z, o, t, rrset.ttl, encode_rdata(d)?])?;
                }
                (z, o)
            }
            BatchOp::Delete { zone, owner, rtype } => {
                note_touched(zone, owner);
                let (z, o) = (key(zone), key(owner));
                del_type.execute(params![z, o, u16::from(*rtype)])?;
                (z, o)
            }
            BatchOp::DeleteName { zone, owner } => {
                note_touched(zone, owner);
                let (z, o) = (key(zone), key(owner));
                del_name.execute(params![z, o])?;
                (z, o)
            }
        };
        log.execute(params![zone, owner, now])?;
    }
    Ok(tx.last_insert_rowid())
}

fn keys_in(conn: &Connection, zone: &Name) -> Result<Vec<KeyRow>> {
    let mut st = conn.prepare_cached(
        "SELECT id, zone, role, algorithm, key_tag, file, created_at, published_at, active_at,
                retired_at, removed_at, ds_submitted_at, ds_seen_at, roll_requested_at, purged_at,
                published_fleet_at, retired_fleet_at, ds_fleet_at
         FROM keys WHERE zone=?1 ORDER BY id",
    )?;
    let rows = st.query_map([key(zone)], |r| {
        Ok(KeyRow {
            id: r.get(0)?,
            zone: r.get(1)?,
            role: r.get(2)?,
            algorithm: r.get(3)?,
            key_tag: r.get(4)?,
            file: r.get(5)?,
            created_at: r.get(6)?,
            published_at: r.get(7)?,
            active_at: r.get(8)?,
            retired_at: r.get(9)?,
            removed_at: r.get(10)?,
            ds_submitted_at: r.get(11)?,
            ds_seen_at: r.get(12)?,
            roll_requested_at: r.get(13)?,
            purged_at: r.get(14)?,
            published_fleet_at: r.get(15)?,
            retired_fleet_at: r.get(16)?,
            ds_fleet_at: r.get(17)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// A zone's keys, oldest first (inside a transaction or not).
pub fn keys_in_zone(conn: &Connection, zone: &Name) -> Result<Vec<KeyRow>> {
    keys_in(conn, zone)
}

/// Stores a new key; returns its id.
pub fn insert_key(conn: &Connection, k: &KeyRow) -> Result<i64> {
    conn.execute(
        "INSERT INTO keys(zone, role, algorithm, key_tag, file, created_at, published_at, active_at,
                          retired_at, removed_at, ds_submitted_at, ds_seen_at, roll_requested_at,
                          purged_at, published_fleet_at, retired_fleet_at, ds_fleet_at)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            k.zone,
            k.role,
            k.algorithm,
            k.key_tag,
            k.file,
            k.created_at,
            k.published_at,
            k.active_at,
            k.retired_at,
            k.removed_at,
            k.ds_submitted_at,
            k.ds_seen_at,
            k.roll_requested_at,
            k.purged_at,
            k.published_fleet_at,
            k.retired_fleet_at,
            k.ds_fleet_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes the timestamps of a stored key (its identity and file never change).
pub fn update_key_times(conn: &Connection, k: &KeyRow) -> Result<()> {
    let n = conn.execute(
        "UPDATE keys SET published_at=?2, active_at=?3, retired_at=?4, removed_at=?5,
                ds_submitted_at=?6, ds_seen_at=?7, roll_requested_at=?8, purged_at=?9,
                published_fleet_at=?10, retired_fleet_at=?11, ds_fleet_at=?12
         WHERE id=?1",
        params![
            k.id,
            k.published_at,
            k.active_at,
            k.retired_at,
            k.removed_at,
            k.ds_submitted_at,
            k.ds_seen_at,
            k.roll_requested_at,
            k.purged_at,
            k.published_fleet_at,
            k.retired_fleet_at,
            k.ds_fleet_at
        ],
    )?;
    if n != 1 {
        return Err(StoreError::Data(format!("no key with id {}", k.id)));
    }
    Ok(())
}

/// The largest TTL of the zone's stored records (0 when it has none).
pub fn max_ttl(conn: &Connection, zone: &Name) -> Result<u32> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(ttl), 0) FROM records WHERE zone=?1",
        [key(zone)],
        |r| r.get(0),
    )?)
}

/// A zone's key version and the serials the server published it at (inside a transaction or
/// not).
pub fn served_keys(conn: &Connection, zone: &Name) -> Result<ServedKeys> {
    let row = conn
        .query_row(
            "SELECT key_version, served_key_version, served_serial, served_parent_serial
             FROM zones WHERE name=?1",
            [key(zone)],
            |r| {
                Ok(ServedKeys {
                    key_version: r.get(0)?,
                    served_version: r.get(1)?,
                    serial: r.get::<_, Option<i64>>(2)?.map(|s| s as u32),
                    parent_serial: r.get::<_, Option<i64>>(3)?.map(|s| s as u32),
                })
            },
        )
        .optional()?;
    row.ok_or_else(|| StoreError::Data(format!("no zone {zone}")))
}

/// Marks the keys of `zone` changed, so that a running server reloads them.
pub fn bump_key_version(conn: &Connection, zone: &Name) -> Result<()> {
    conn.execute(
        "UPDATE zones SET key_version = key_version + 1 WHERE name=?1",
        [key(zone)],
    )?;
    Ok(())
}

fn group(
    rows: impl Iterator<Item = rusqlite::Result<(String, u16, u32, Vec<u8>)>>,
) -> Result<Vec<StoredRrset>> {
    let mut out: Vec<StoredRrset> = Vec::new();
    let mut last: Option<(String, u16)> = None;
    for row in rows {
        let (owner, t, ttl, rdata) = row?;
        let rtype = RecordType::from(t);
        let data = decode_rdata(rtype, &rdata)?;
        if last.as_ref().is_some_and(|(o, lt)| *o == owner && *lt == t) {
            let cur = out.last_mut().expect("grouped");
            cur.data.push(data);
            cur.ttl = cur.ttl.min(ttl);
        } else {
            out.push(StoredRrset {
                owner: parse_name(&owner)?,
                rtype,
                ttl,
                data: vec![data],
            });
            last = Some((owner, t));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
    use hickory_proto::rr::rdata::{A, TLSA};
    use std::str::FromStr;

    #[test]
    fn roundtrip_and_change_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let z = Name::from_str("o-v1.mx.example.").unwrap();
        s.ensure_zone(&z, None).unwrap();
        let owner = Name::from_str("H.o-v1.mx.example.").unwrap();
        let tlsa_owner = Name::from_str("_25._tcp.h.o-v1.mx.example.").unwrap();
        let batch = Batch {
            ops: vec![
                BatchOp::Put {
                    zone: z.clone(),
                    rrset: StoredRrset {
                        owner: owner.clone(),
                        rtype: RecordType::A,
                        ttl: 300,
                        data: vec![RData::A(A::new(192, 0, 2, 25))],
                    },
                },
                BatchOp::Put {
                    zone: z.clone(),
                    rrset: StoredRrset {
                        owner: tlsa_owner.clone(),
                        rtype: RecordType::TLSA,
                        ttl: 300,
                        data: vec![RData::TLSA(TLSA::new(
                            CertUsage::DaneEe,
                            Selector::Spki,
                            Matching::Sha256,
                            vec![1; 32],
                        ))],
                    },
                },
            ],
        };
        let seq = s.write(&batch, 1).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(s.zone_rrsets(&z).unwrap().len(), 2);
        assert_eq!(
            s.rrsets_at(&z, &owner).unwrap()[0].data,
            vec![RData::A(A::new(192, 0, 2, 25))]
        );
        let ch = s.changes_since(0, 10).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(
            ch[0].2,
            Name::from_str("h.o-v1.mx.example.").unwrap(),
            "owners are stored lower case"
        );
        s.write(
            &Batch {
                ops: vec![BatchOp::DeleteName {
                    zone: z.clone(),
                    owner,
                }],
            },
            2,
        )
        .unwrap();
        assert_eq!(s.zone_rrsets(&z).unwrap().len(), 1);
        drop(s);
        // reopening keeps everything and does not migrate twice
        let s = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(s.last_change().unwrap(), 3);
    }

    #[test]
    fn pruning_keeps_the_log_after_the_position_and_the_last_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let z = Name::from_str("o-v1.mx.example.").unwrap();
        for i in 0..10u8 {
            let owner = Name::from_str(&format!("h{i}.o-v1.mx.example.")).unwrap();
            let data = vec![RData::A(A::new(192, 0, 2, i))];
            s.write(
                &Batch {
                    ops: vec![BatchOp::set(&z, &owner, RecordType::A, 300, data)],
                },
                i as i64,
            )
            .unwrap();
        }
        // in chunks of 3: 3, 3, 1 (less than a chunk: done)
        assert_eq!(s.prune_changes(7, 3).unwrap(), 3);
        assert_eq!(s.prune_changes(7, 3).unwrap(), 3);
        assert_eq!(s.prune_changes(7, 3).unwrap(), 1);
        assert_eq!(s.prune_changes(7, 3).unwrap(), 0);
        let left: Vec<i64> = s
            .changes_since(0, 100)
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(left, vec![8, 9, 10]);
        assert_eq!(s.first_change_after(0).unwrap(), Some((8, 7)));
        // everything pruned: the last sequence number is still known, and the next follows it
        s.prune_changes(10, 100).unwrap();
        assert_eq!(s.change_count().unwrap(), 0);
        assert_eq!(s.last_change().unwrap(), 10);
        let owner = Name::from_str("h0.o-v1.mx.example.").unwrap();
        let seq = s
            .write(
                &Batch {
                    ops: vec![BatchOp::set(&z, &owner, RecordType::A, 300, vec![])],
                },
                11,
            )
            .unwrap();
        assert_eq!(seq, 11);
    }

    #[test]
    fn writes_on_this_thread_are_collected_until_too_many() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let z = Name::from_str("o-v1.mx.example.").unwrap();
        let op = |i: usize| {
            let owner = Name::from_str(&format!("H{i}.o-v1.mx.example.")).unwrap();
            BatchOp::DeleteName {
                zone: z.clone(),
                owner,
            }
        };
        let ((), touched) = collect_touched(|| {
            s.write(
                &Batch {
                    ops: vec![op(1), op(2)],
                },
                1,
            )
            .unwrap();
        });
        let want: Vec<(Name, Name)> = [1, 2]
            .iter()
            .map(|i| {
                (
                    z.clone(),
                    Name::from_str(&format!("h{i}.o-v1.mx.example.")).unwrap(),
                )
            })
            .collect();
        assert_eq!(touched, Some(want), "lower-cased, in order");
        let ((), touched) = collect_touched(|| {
            let ops = (0..=TOUCHED_MAX).map(op).collect();
            s.write(&Batch { ops }, 2).unwrap();
        });
        assert_eq!(touched, None, "a bulk change is not listed");
        // nothing is collected outside
        s.write(&Batch { ops: vec![op(3)] }, 3).unwrap();
        assert!(TOUCHED.with(|t| t.borrow().is_none()));
    }

    #[test]
    fn migration_4_moves_tokens_and_unverified_domains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // a version-3 database with a tenant, a verified and an unverified domain
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
                .unwrap();
            for sql in &MIGRATIONS[..3] {
                c.execute_batch(sql).unwrap();
            }
            c.execute_batch(
                "INSERT INTO meta VALUES('schema_version', 3);
                 INSERT INTO tenants VALUES('t-1', 'contoso', x'0102', 7);
                 INSERT INTO domains(domain, tenant_id, verified, added_at, updated_at, mx_token, partition, dnssec)
                     VALUES('a.example', 't-1', 1, 7, 7, 'a-example', 'o-v1', 1);
                 INSERT INTO domains(domain, tenant_id, verified, added_at, updated_at)
                     VALUES('b.example', 't-1', 0, 8, 8);",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let c = s.conn();
        let tok = tokens::by_hash(c, &[1, 2]).unwrap().unwrap();
        assert_eq!(tok.tenant_id.as_deref(), Some("t-1"));
        assert!(tok.id.starts_with("tk") && tok.revoked_at.is_none());
        let cols: Vec<String> = c
            .prepare("SELECT name FROM pragma_table_info('tenants')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(cols, ["id", "name", "created_at"], "no token column left");
        assert!(tenancy::get_domain(c, "a.example").unwrap().unwrap().dnssec);
        assert!(tenancy::get_domain(c, "b.example").unwrap().is_none());
        let claim = claims::get(c, "b.example", "t-1").unwrap().unwrap();
        assert!(claim.value.starts_with("mxdns-verify=") && claim.value.len() == 45);
        // the references hold: a domain of an unknown tenant is refused
        assert!(tenancy::insert_owner(c, "c.example", "t-9", 9).is_err());
        tenancy::insert_owner(c, "c.example", "t-1", 9).unwrap();
        drop(s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "an older database is made private");
        }
    }

    #[test]
    fn pages_cover_the_zone_and_never_split_an_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let z = Name::from_str("o-v1.mx.example.").unwrap();
        let mut ops = Vec::new();
        for i in 0..7u8 {
            let owner = Name::from_str(&format!("h{i}.o-v1.mx.example.")).unwrap();
            // owner i has i+1 A records (h6: 7, more than a page)
            let data = (0..=i).map(|j| RData::A(A::new(192, 0, 2, j))).collect();
            ops.push(BatchOp::set(&z, &owner, RecordType::A, 300, data));
        }
        s.write(&Batch { ops }, 1).unwrap();
        let all = s.zone_rrsets(&z).unwrap();
        let mut got = Vec::new();
        let mut after = String::new();
        for _ in 0..20 {
            let (page, next) = s.zone_rrsets_page(&z, &after, 4).unwrap();
            got.extend(page);
            match next {
                Some(a) => after = a,
                None => break,
            }
        }
        assert_eq!(got, all, "every RRset once, whole, in order");
    }
}
