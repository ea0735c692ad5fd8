//! Key lifecycle: carries out the rollover steps that [`keys::rollover`] plans, for every zone,
//! against the store. Used by the server's scheduler and by `mxdns keys roll|ds-seen|list`
//! (and the admin API), so a cron job and the server can run it at the same time.
//!
//! Invariants:
//! - a zone's steps run inside one `BEGIN IMMEDIATE` transaction: two runs at the same time are
//!   serialised, and the second finds nothing left to do (the planner is idempotent);
//! - every step is committed before anything acts on it: a new key's file is written (0600)
//!   before its row, and the zones change only when a running server sees the zone's
//!   `key_version` move (its follower, every `follow_interval_ms`) or at start;
//! - removed keys keep their row; their file is deleted `keys.retention` after removal.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::anyhow;
use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_proto::rr::{Name, RData, RecordType};
use keys::rollover::{self, Action, KeyRole, KeyTimes, Parent, Refusal, Step};
use keys::{KeyPair, Role};
use provisioner::resolver::{Ask, Resolver, ResponseCode};
use provisioner::service::{record_audit, Actor};
use provisioner::store::{self, StoreError, Transaction};
use provisioner::{KeyRow, Store};
use serde::Serialize;

use crate::config::Config;
use crate::zonemgr::key_dir;

/// What an operator asks for besides the scheduled steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `keys roll --zone Z --zsk|--ksk --now`: an unscheduled rollover.
    Roll(KeyRole),
    /// `keys ds-seen --zone Z`: the parent serves the DS of the incoming KSK.
    DsSeen,
    /// The parent check saw the DS of this key (by id). Unlike the operator's confirmation it
    /// is no error when the key no longer waits (a concurrent run confirmed it first).
    ParentShowsDs(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0} is not a zone of this server")]
    NoZone(String),
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> Self {
        LifecycleError::Other(e.into())
    }
}

/// One step carried out.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Done {
    pub zone: String,
    pub role: &'static str,
    pub key_tag: u16,
    pub step: &'static str,
}

pub fn role_of(row: &KeyRow) -> KeyRole {
    if row.role == "ksk" {
        KeyRole::Ksk
    } else {
        KeyRole::Zsk
    }
}

fn u(t: Option<i64>) -> Option<u64> {
    t.map(|t| t.max(0) as u64)
}

fn i(t: Option<u64>) -> Option<i64> {
    t.map(|t| t as i64)
}

/// The planner's view of a stored key.
pub fn times_of(row: &KeyRow) -> KeyTimes {
    KeyTimes {
        id: row.id,
        tag: row.key_tag,
        role: role_of(row),
        published: u(row.published_at),
        active: u(row.active_at),
        retired: u(row.retired_at),
        removed: u(row.removed_at),
        ds_submitted: u(row.ds_submitted_at),
        ds_seen: u(row.ds_seen_at),
        roll_requested: u(row.roll_requested_at),
        published_fleet: u(row.published_fleet_at),
        retired_fleet: u(row.retired_fleet_at),
        ds_fleet: u(row.ds_fleet_at),
    }
}

fn set_times(row: &mut KeyRow, t: &KeyTimes) {
    row.published_at = i(t.published);
    row.active_at = i(t.active);
    row.retired_at = i(t.retired);
    row.removed_at = i(t.removed);
    row.ds_submitted_at = i(t.ds_submitted);
    row.ds_seen_at = i(t.ds_seen);
    row.roll_requested_at = i(t.roll_requested);
    row.published_fleet_at = i(t.published_fleet);
    row.retired_fleet_at = i(t.retired_fleet);
    row.ds_fleet_at = i(t.ds_fleet);
}

fn zone_arg(config: &Config, zone: &Name) -> Result<Name, LifecycleError> {
    let z = zone.to_lowercase();
    if config.all_zones()?.contains(&z) {
        Ok(z)
    } else {
        Err(LifecycleError::NoZone(zone.to_ascii()))
    }
}

/// Runs every due step of every zone (the scheduler; `keys roll --check`). Zones are done one
/// by one, each in its own transaction; an error in one does not stop the others.
#[cfg(test)]
pub fn check_all(config: &Config, store: &mut Store, now: u64) -> anyhow::Result<Vec<Done>> {
    check_all_as(config, store, now, &Actor::system())
}

/// [`check_all`] on behalf of `actor` (the audit trail's who).
pub fn check_all_as(
    config: &Config,
    store: &mut Store,
    now: u64,
    actor: &Actor,
) -> anyhow::Result<Vec<Done>> {
    check_all_observed(config, store, now, actor, &crate::fleet::Board::default())
}

/// [`check_all_as`], keeping what waits for the fleet on `board` (the server's, for health).
/// With `[[secondaries]]`, each zone's fleet is asked first (outside any transaction) whether
/// it serves the steps stored so far; if it does, that moment is stored on the keys
/// ([`fleet_served`]) before the planner runs.
pub fn check_all_observed(
    config: &Config,
    store: &mut Store,
    now: u64,
    actor: &Actor,
    board: &crate::fleet::Board,
) -> anyhow::Result<Vec<Done>> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let secondaries = crate::fleet::secondaries(config)?;
    for zone in config.all_zones()? {
        match crate::fleet::examine(config, &secondaries, store, &zone, now) {
            Ok(Some(w)) if w.served() => {
                if let Err(e) = fleet_served(config, store, &zone, w.key_version, now) {
                    tracing::error!(zone = %zone, error = %e, "storing the fleet's progress failed");
                    failed.push(format!("{zone}: {e}"));
                }
                board.set(&zone, None);
            }
            Ok(Some(w)) => {
                board.log(&w, config.keys.fleet_wait_alarm);
                board.set(&zone, Some(w));
            }
            Ok(None) => board.set(&zone, None),
            Err(e) => {
                tracing::error!(zone = %zone, error = %e, "asking the fleet failed");
                failed.push(format!("{zone}: {e}"));
            }
        }
        let mut request = None;
        if config.parent_kind(&zone) == Parent::External && !config.keys.parent_servers.is_empty() {
            request = parent_check(config, store, &zone, now);
        }
        match roll_zone_as(config, store, &zone, now, request, actor) {
            Ok(d) => done.extend(d),
            Err(e) => {
                tracing::error!(zone = %zone, error = %e, "key rollover step failed");
                failed.push(format!("{zone}: {e}"));
            }
        }
    }
    if !failed.is_empty() {
        return Err(anyhow!("{}", failed.join("; ")));
    }
    Ok(done)
}

/// Every secondary serves key version `version` of `zone` (seen at `now`): the keys' steps
/// not yet seen on the fleet count from now. Nothing changes if a step was stored since the
/// check (the version moved). The fleet times change no published record, so the key version
/// is not bumped. Returns how many keys changed.
pub fn fleet_served(
    config: &Config,
    store: &mut Store,
    zone: &Name,
    version: i64,
    now: u64,
) -> Result<usize, LifecycleError> {
    let parent = config.parent_kind(zone);
    let zs = zone.to_ascii();
    store.transaction_with(|tx| {
        let served = store::served_keys(tx, zone)?;
        if served.key_version != version {
            return Ok(0);
        }
        let mut rows = store::keys_in_zone(tx, zone)?;
        let times: Vec<KeyTimes> = rows.iter().map(times_of).collect();
        let seen = rollover::fleet_seen(&times, now, parent);
        for k in &seen {
            if let Some(row) = rows.iter_mut().find(|r| r.id == k.id) {
                set_times(row, k);
                store::update_key_times(tx, row)?;
            }
        }
        if !seen.is_empty() {
            tracing::info!(zone = %zs, key_version = version, serial = served.serial, parent_serial = served.parent_serial, keys = seen.len(),
                "every secondary serves the key steps stored so far; their waiting times count from now");
        }
        Ok(seen.len())
    })
}

/// Runs the due steps of one zone, after the operator's request if any.
pub fn roll_zone(
    config: &Config,
    store: &mut Store,
    zone: &Name,
    now: u64,
    request: Option<Request>,
) -> Result<Vec<Done>, LifecycleError> {
    roll_zone_as(config, store, zone, now, request, &Actor::system())
}

/// [`roll_zone`] on behalf of `actor`: the steps done go into the audit trail, in their
/// transaction.
pub fn roll_zone_as(
    config: &Config,
    store: &mut Store,
    zone: &Name,
    now: u64,
    request: Option<Request>,
    actor: &Actor,
) -> Result<Vec<Done>, LifecycleError> {
    let zone = zone_arg(config, zone)?;
    let parent = config.parent_kind(&zone);
    let zs = zone.to_ascii();
    store.transaction_with(|tx| {
        let mut rows = store::keys_in_zone(tx, &zone)?;
        let policy = config.key_policy(&zone, store::max_ttl(tx, &zone)?);
        let mut done = Vec::new();
        if let Some(req) = request {
            let times: Vec<KeyTimes> = rows.iter().map(times_of).collect();
            let (k, step) = match req {
                Request::Roll(role) => (
                    rollover::request_roll(role, &times, now),
                    "unscheduled roll requested",
                ),
                Request::DsSeen | Request::ParentShowsDs(_) => (
                    rollover::confirm_ds_seen(&times, now),
                    Step::DsSeen.as_str(),
                ),
            };
            match (k, req) {
                (Ok(k), Request::ParentShowsDs(id)) if k.id != id => {}
                (Err(_), Request::ParentShowsDs(_)) => {}
                (Ok(k), _) => persist(tx, &zs, &mut rows, &mut done, &k, step)?,
                (Err(r), _) => {
                    tracing::warn!(zone = %zs, refusal = %r, "key rollover request refused");
                    return Err(LifecycleError::Refused(r));
                }
            }
        }
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            for _ in 0..8 {
                let times: Vec<KeyTimes> = rows.iter().map(times_of).collect();
                let plan = rollover::plan(role, &times, now, &policy, parent);
                let mut acted = false;
                for action in plan.actions {
                    match action {
                        Action::Generate(role) => {
                            let row = generate(config, tx, &zone, role, &rows, now)?;
                            tracing::info!(zone = %zs, role = role.as_str(), key_tag = row.key_tag, algorithm = row.algorithm, step = Step::PublishSuccessor.as_str(), "key rollover step: key generated and published");
                            done.push(Done {
                                zone: zs.clone(),
                                role: role.as_str(),
                                key_tag: row.key_tag,
                                step: Step::PublishSuccessor.as_str(),
                            });
                            rows.push(row);
                            acted = true;
                        }
                        Action::Update { key, step } => {
                            persist(tx, &zs, &mut rows, &mut done, &key, step.as_str())?;
                            acted = true;
                        }
                        Action::WaitForFleet { tag, step, .. } => {
                            tracing::debug!(zone = %zs, role = role.as_str(), key_tag = tag, step = step.as_str(), "key rollover waits for every secondary to serve this step");
                        }
                        Action::WaitForParentDs { tag, .. } => {
                            tracing::info!(zone = %zs, role = "ksk", key_tag = tag, step = "wait for the parent's DS",
                                "key rollover waits: once the parent serves the DS of this key (`mxdns keys ds --zone {zs}`), run `mxdns keys ds-seen --zone {zs}`");
                        }
                    }
                }
                if !acted {
                    break;
                }
            }
        }
        // files of keys removed long enough ago are deleted; their rows stay
        let purge_before = now.saturating_sub(config.keys.retention);
        let mut purged = Vec::new();
        for row in rows.iter_mut().filter(|r| {
            r.purged_at.is_none() && u(r.removed_at).is_some_and(|t| t <= purge_before)
        }) {
            match std::fs::remove_file(key_dir(&config.data_dir).join(&row.file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow!("deleting key file {}: {e}", row.file).into()),
            }
            row.purged_at = Some(now as i64);
            store::update_key_times(tx, row)?;
            tracing::info!(zone = %zs, role = %row.role, key_tag = row.key_tag, step = "delete the key file", "key rollover step");
            purged.push(Done {
                zone: zs.clone(),
                role: role_of(row).as_str(),
                key_tag: row.key_tag,
                step: "delete the key file",
            });
        }
        done.extend(purged);
        if !done.is_empty() {
            store::bump_key_version(tx, &zone)?;
            let steps: Vec<serde_json::Value> = done
                .iter()
                .map(|d| serde_json::json!({"role": d.role, "keyTag": d.key_tag, "step": d.step}))
                .collect();
            let action = match request {
                Some(Request::Roll(_)) => "keys.roll",
                Some(Request::DsSeen) => "keys.ds_seen",
                _ => "keys.steps",
            };
            record_audit(tx, actor, action, &zs, serde_json::json!({"steps": steps}))?;
        }
        Ok(done)
    })
}

/// Stores new timestamps of a key, logs the step.
fn persist(
    tx: &Transaction<'_>,
    zone: &str,
    rows: &mut [KeyRow],
    done: &mut Vec<Done>,
    k: &KeyTimes,
    step: &'static str,
) -> Result<(), LifecycleError> {
    let row = rows
        .iter_mut()
        .find(|r| r.id == k.id)
        .ok_or_else(|| anyhow!("key {} vanished", k.id))?;
    set_times(row, k);
    store::update_key_times(tx, row)?;
    tracing::info!(
        zone = %zone,
        role = k.role.as_str(),
        key_tag = k.tag,
        step,
        "key rollover step"
    );
    done.push(Done {
        zone: zone.to_string(),
        role: k.role.as_str(),
        key_tag: k.tag,
        step,
    });
    Ok(())
}

/// Generates a key (file first, 0600, then its row) with a key tag unused in the zone.
fn generate(
    config: &Config,
    tx: &Transaction<'_>,
    zone: &Name,
    role: KeyRole,
    rows: &[KeyRow],
    now: u64,
) -> Result<KeyRow, LifecycleError> {
    // the zone keeps its algorithm (changing it needs an algorithm rollover, RFC 6781 4.1.4)
    let algorithm = rows
        .iter()
        .find(|r| r.removed_at.is_none())
        .map_or(config.zone_algorithm(zone), |r| r.algorithm);
    if algorithm != config.zone_algorithm(zone) {
        tracing::warn!(zone = %zone, zone_algorithm = algorithm, configured = config.zone_algorithm(zone), "new keys keep the zone's algorithm; algorithm rollovers are not supported");
    }
    let alg = keys::algorithm_from_number(algorithm).map_err(anyhow::Error::from)?;
    let key_role = match role {
        KeyRole::Ksk => Role::Ksk,
        KeyRole::Zsk => Role::Zsk,
    };
    for _ in 0..16 {
        let (der, pair) = KeyPair::generate(alg, key_role).map_err(anyhow::Error::from)?;
        if rows.iter().any(|r| r.key_tag == pair.key_tag) {
            continue;
        }
        let file = format!(
            "{}.{}.{}.pk8",
            zone.to_ascii().trim_end_matches('.'),
            key_role,
            pair.key_tag
        );
        keys::write_private_key(&key_dir(&config.data_dir).join(&file), &der)
            .map_err(anyhow::Error::from)?;
        let mut row = KeyRow {
            id: 0,
            zone: zone.to_ascii(),
            role: key_role.as_str().into(),
            algorithm,
            key_tag: pair.key_tag,
            file,
            created_at: now as i64,
            published_at: Some(now as i64),
            active_at: (role == KeyRole::Ksk).then_some(now as i64),
            retired_at: None,
            removed_at: None,
            ds_submitted_at: None,
            ds_seen_at: None,
            roll_requested_at: None,
            purged_at: None,
            published_fleet_at: None,
            retired_fleet_at: None,
            ds_fleet_at: None,
        };
        row.id = store::insert_key(tx, &row)?;
        return Ok(row);
    }
    Err(anyhow!("no unused key tag after 16 keys").into())
}

/// The parent check of the apex: when a KSK waits for its DS and every configured server of
/// the parent serves that DS, the rollover goes on as if the operator had confirmed it.
fn parent_check(config: &Config, store: &Store, zone: &Name, now: u64) -> Option<Request> {
    let rows = store.keys(zone).ok()?;
    let times: Vec<KeyTimes> = rows.iter().map(times_of).collect();
    let waiting = rollover::confirm_ds_seen(&times, now).ok()?;
    let row = rows.iter().find(|r| r.id == waiting.id)?;
    let pair = load_pair(config, row).ok()?;
    let ds = pair.ds(zone);
    let timeout = Duration::from_millis(config.status_timeout_ms);
    for server in &config.keys.parent_servers {
        match parent_serves_ds(*server, zone, &ds, timeout) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(zone = %zone, key_tag = row.key_tag, %server, step = "wait for the parent's DS", "the parent does not serve the new DS yet");
                return None;
            }
            Err(e) => {
                tracing::warn!(zone = %zone, key_tag = row.key_tag, %server, error = %e, "parent DS check failed");
                return None;
            }
        }
    }
    tracing::info!(zone = %zone, key_tag = row.key_tag, "every parent server serves the new DS");
    Some(Request::ParentShowsDs(row.id))
}

/// Whether `server` serves `ds` for `zone`. Asked over TCP through `provisioner::resolver`
/// (an off-path attacker cannot answer on a connection it never saw the handshake of; the
/// answer's ID and question are checked), not recursive; only DS records of `zone` in the
/// answer section of a NOERROR answer count.
fn parent_serves_ds(
    server: SocketAddr,
    zone: &Name,
    ds: &DS,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let answer =
        Resolver::new(server, timeout).query_tcp(zone, RecordType::DS, Ask::AUTHORITATIVE)?;
    if answer.rcode != ResponseCode::NoError {
        return Err(anyhow!("the parent answered {}", answer.rcode));
    }
    let served = answer.data().any(|d| {
        matches!(d, RData::DNSSEC(DNSSECRData::DS(d))
            if d.key_tag() == ds.key_tag()
                && d.algorithm() == ds.algorithm()
                && d.digest_type() == ds.digest_type()
                && d.digest() == ds.digest())
    });
    Ok(served)
}

pub fn load_pair(config: &Config, row: &KeyRow) -> anyhow::Result<KeyPair> {
    let role = Role::parse(&row.role).ok_or_else(|| anyhow!("bad role {}", row.role))?;
    let alg = keys::algorithm_from_number(row.algorithm)?;
    let pair = KeyPair::load(&key_dir(&config.data_dir).join(&row.file), alg, role)?;
    if pair.key_tag != row.key_tag {
        return Err(anyhow!(
            "key file {} has key tag {}, expected {}",
            row.file,
            pair.key_tag,
            row.key_tag
        ));
    }
    Ok(pair)
}

/// One key as `keys list` and the API show it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub key_tag: u16,
    pub role: &'static str,
    pub algorithm: u8,
    pub state: &'static str,
    pub created: Stamp,
    pub published: Option<Stamp>,
    pub active: Option<Stamp>,
    pub retired: Option<Stamp>,
    pub removed: Option<Stamp>,
    pub ds_submitted: Option<Stamp>,
    pub ds_seen: Option<Stamp>,
    pub file_deleted: Option<Stamp>,
    /// With secondaries: when every one was first seen serving its publication, its
    /// retirement (ZSK switch), its DS in our parent zone.
    pub published_fleet: Option<Stamp>,
    pub retired_fleet: Option<Stamp>,
    pub ds_fleet: Option<Stamp>,
    /// What it does now: in the DNSKEY RRset, signing, its DS at the parent, as CDS.
    pub in_dnskey: bool,
    pub signs: bool,
    pub ds_at_parent: bool,
    pub cds: bool,
    /// Its DS in presentation format (KSKs whose file is still here).
    pub ds: Option<String>,
}

/// A time as unix seconds and as UTC text.
#[derive(Debug, Serialize, Clone, Copy)]
pub struct Stamp {
    pub unix: u64,
    #[serde(serialize_with = "ser_utc")]
    pub utc: u64,
}

fn ser_utc<S: serde::Serializer>(t: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&utc(*t))
}

fn stamp(t: Option<i64>) -> Option<Stamp> {
    u(t).map(|t| Stamp { unix: t, utc: t })
}

/// RFC 3339 UTC, e.g. 2026-12-01T20:53:31Z.
pub fn utc(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // civil from days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[derive(Debug, Serialize)]
pub struct NextStep {
    pub role: &'static str,
    pub step: &'static str,
    pub at: Stamp,
}

#[derive(Debug, Serialize)]
pub struct Waiting {
    pub key_tag: u16,
    pub since: Option<Stamp>,
    /// The DS the parent must serve.
    pub ds: Option<String>,
    pub action: String,
}

#[derive(Debug, Serialize)]
pub struct ZoneKeys {
    pub zone: String,
    /// "served here" (partitions: DS written by us) or "external" (the apex).
    pub parent: &'static str,
    pub policy: PolicyView,
    pub keys: Vec<KeyView>,
    /// The next scheduled step of each role (earliest first).
    pub next: Vec<NextStep>,
    /// The apex's KSK rollover waits for the parent to serve the new DS.
    pub waiting_for_parent: Option<Waiting>,
    /// A key step waits for every secondary to serve it (asked now): who lags and why.
    pub waiting_for_fleet: Option<crate::fleet::Wait>,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub zsk_lifetime: u64,
    pub ksk_lifetime: u64,
    pub propagation_delay: u64,
    pub dnskey_ttl: u64,
    pub max_zone_ttl: u64,
    pub parent_ds_ttl: u64,
    pub parent_propagation_delay: u64,
    pub publish_safety: u64,
    pub retire_safety: u64,
    pub publish_interval: u64,
    pub zsk_retire_interval: u64,
    pub ksk_retire_interval: u64,
}

/// The keys of every zone (or of one), their states at `now` and the next steps.
pub fn status(
    config: &Config,
    store: &Store,
    only: Option<&Name>,
    now: u64,
) -> Result<Vec<ZoneKeys>, LifecycleError> {
    let zones = match only {
        Some(z) => vec![zone_arg(config, z)?],
        None => config.all_zones()?,
    };
    let mut out = Vec::new();
    let secondaries = crate::fleet::secondaries(config)?;
    for zone in zones {
        let waiting_for_fleet = crate::fleet::examine(config, &secondaries, store, &zone, now)?;
        let rows = store.keys(&zone)?;
        let p = config.key_policy(&zone, store.max_ttl(&zone)?);
        let parent = config.parent_kind(&zone);
        let times: Vec<KeyTimes> = rows.iter().map(times_of).collect();
        let sets = rollover::key_sets(&times, now, parent);
        let mut next = Vec::new();
        let mut waiting = None;
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            let plan = rollover::plan(role, &times, now, &p, parent);
            if let Some((t, step)) = plan.next {
                next.push(NextStep {
                    role: role.as_str(),
                    step: step.as_str(),
                    at: Stamp { unix: t, utc: t },
                });
            }
            for a in &plan.actions {
                match a {
                    Action::WaitForParentDs { id, tag } => {
                        let row = rows.iter().find(|r| r.id == *id);
                        waiting = Some(Waiting {
                            key_tag: *tag,
                            since: row.and_then(|r| stamp(r.ds_submitted_at)),
                            ds: row.and_then(|r| ds_text(config, &zone, r)),
                            action: format!(
                                "publish this DS at the parent of {zone}, then run `mxdns keys ds-seen --zone {zone}` (or POST /v1/zones/{zone}/keys/ds-seen)"
                            ),
                        });
                    }
                    Action::WaitForFleet { .. } => {}
                    _ => next.push(NextStep {
                        role: role.as_str(),
                        step: "due now (run `mxdns keys roll --check`)",
                        at: Stamp {
                            unix: now,
                            utc: now,
                        },
                    }),
                }
            }
        }
        next.sort_by_key(|n| n.at.unix);
        let keys = rows
            .iter()
            .zip(&times)
            .map(|(r, t)| KeyView {
                key_tag: r.key_tag,
                role: role_of(r).as_str(),
                algorithm: r.algorithm,
                state: t.state(now, &p).as_str(),
                created: Stamp {
                    unix: r.created_at.max(0) as u64,
                    utc: r.created_at.max(0) as u64,
                },
                published: stamp(r.published_at),
                active: stamp(r.active_at),
                retired: stamp(r.retired_at),
                removed: stamp(r.removed_at),
                ds_submitted: stamp(r.ds_submitted_at),
                ds_seen: stamp(r.ds_seen_at),
                file_deleted: stamp(r.purged_at),
                published_fleet: stamp(r.published_fleet_at),
                retired_fleet: stamp(r.retired_fleet_at),
                ds_fleet: stamp(r.ds_fleet_at),
                in_dnskey: sets.dnskey.contains(&r.id),
                signs: sets.ksk_signers.contains(&r.id) || sets.zsk_signers.contains(&r.id),
                ds_at_parent: match parent {
                    Parent::Ours => sets.parent_ds.contains(&r.id),
                    Parent::External => {
                        r.role == "ksk" && t.ds_seen.is_some() && sets.dnskey.contains(&r.id)
                    }
                },
                cds: sets.cds.contains(&r.id),
                ds: (r.role == "ksk" && r.removed_at.is_none())
                    .then(|| ds_text(config, &zone, r))
                    .flatten(),
            })
            .collect();
        out.push(ZoneKeys {
            zone: zone.to_ascii(),
            parent: match parent {
                Parent::Ours => "served here",
                Parent::External => "external",
            },
            policy: PolicyView {
                zsk_lifetime: p.zsk_lifetime,
                ksk_lifetime: p.ksk_lifetime,
                propagation_delay: p.propagation_delay,
                dnskey_ttl: p.dnskey_ttl,
                max_zone_ttl: p.max_zone_ttl,
                parent_ds_ttl: p.parent_ds_ttl,
                parent_propagation_delay: p.parent_propagation_delay,
                publish_safety: p.publish_safety,
                retire_safety: p.retire_safety,
                publish_interval: p.publish_interval(),
                zsk_retire_interval: p.zsk_retire_interval(),
                ksk_retire_interval: p.ksk_retire_interval(),
            },
            keys,
            next,
            waiting_for_parent: waiting,
            waiting_for_fleet,
        });
    }
    Ok(out)
}

fn ds_text(config: &Config, zone: &Name, row: &KeyRow) -> Option<String> {
    let pair = load_pair(config, row).ok()?;
    let ds = RData::DNSSEC(DNSSECRData::DS(pair.ds(zone)));
    Some(format!("{} {} IN DS {}", zone, config.ttl.ds, ds))
}

/// `keys list` as a table.
pub fn print_table(zones: &[ZoneKeys]) {
    for z in zones {
        println!("zone {} (parent: {})", z.zone, z.parent);
        println!(
            "  {:<4} {:>6} {:>3}  {:<9} {:<20} {:<20} {:<20} {:<20}  NOW",
            "ROLE", "TAG", "ALG", "STATE", "PUBLISHED", "ACTIVE", "RETIRED", "REMOVED"
        );
        let t = |s: &Option<Stamp>| s.map_or("-".to_string(), |s| utc(s.unix));
        for k in &z.keys {
            let mut now = Vec::new();
            if k.in_dnskey {
                now.push("dnskey");
            }
            if k.signs {
                now.push("signs");
            }
            if k.ds_at_parent {
                now.push("ds-at-parent");
            }
            if k.cds {
                now.push("cds");
            }
            if k.file_deleted.is_some() {
                now.push("file-deleted");
            }
            println!(
                "  {:<4} {:>6} {:>3}  {:<9} {:<20} {:<20} {:<20} {:<20}  {}",
                k.role,
                k.key_tag,
                k.algorithm,
                k.state,
                t(&k.published),
                t(&k.active),
                t(&k.retired),
                t(&k.removed),
                now.join(",")
            );
        }
        for n in &z.next {
            println!("  next: {} {} at {}", n.role, n.step, utc(n.at.unix));
        }
        if let Some(w) = &z.waiting_for_fleet {
            if w.served() {
                println!(
                    "  fleet: every secondary serves key version {} (recorded at the next check)",
                    w.key_version
                );
            } else {
                println!(
                    "  WAITING for the fleet since {} (key version {}): {}",
                    utc(w.since),
                    w.key_version,
                    w.reason()
                );
            }
        }
        if let Some(w) = &z.waiting_for_parent {
            println!("  WAITING for the parent: KSK {}: {}", w.key_tag, w.action);
            if let Some(ds) = &w.ds {
                println!("    {ds}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    /// The parent check believes only an answer to its own question over its own connection.
    #[test]
    fn parent_ds_check_takes_only_the_answer_to_its_question() {
        use hickory_proto::dnssec::{Algorithm, DigestType};
        use hickory_proto::op::{Message, MessageType, OpCode};
        use std::io::{Read, Write};
        let zone = Name::from_ascii("mx.example.").unwrap();
        let ds = DS::new(
            4242,
            Algorithm::ECDSAP256SHA256,
            DigestType::SHA256,
            vec![7; 32],
        );
        // a parent that answers each query with `edit` applied to the right answer
        let serve = |edit: fn(&mut Message)| -> SocketAddr {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let (zone, ds) = (zone.clone(), ds.clone());
            std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let mut len = [0u8; 2];
                c.read_exact(&mut len).unwrap();
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                c.read_exact(&mut q).unwrap();
                let q = Message::from_vec(&q).unwrap();
                let mut a = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                a.add_query(q.queries[0].clone());
                a.add_answer(hickory_proto::rr::Record::from_rdata(
                    zone,
                    3600,
                    RData::DNSSEC(DNSSECRData::DS(ds)),
                ));
                edit(&mut a);
                let b = a.to_vec().unwrap();
                let mut f = (b.len() as u16).to_be_bytes().to_vec();
                f.extend(b);
                c.write_all(&f).unwrap();
            });
            addr
        };
        let t = Duration::from_secs(5);
        assert!(parent_serves_ds(serve(|_| {}), &zone, &ds, t).unwrap());
        assert!(parent_serves_ds(serve(|a| a.metadata.id ^= 1), &zone, &ds, t).is_err());
        assert!(parent_serves_ds(
            serve(|a| {
                a.queries[0].set_name(Name::from_ascii("evil.example.").unwrap());
            }),
            &zone,
            &ds,
            t
        )
        .is_err());
        assert!(parent_serves_ds(
            serve(|a| a.metadata.response_code = ResponseCode::ServFail),
            &zone,
            &ds,
            t
        )
        .is_err());
        assert!(!parent_serves_ds(
            serve(|a| a.answers[0].name = Name::from_ascii("other.mx.example.").unwrap()),
            &zone,
            &ds,
            t
        )
        .unwrap());
    }
}
