//! Rollovers wait for the fleet: before a key step's waiting time starts counting, every
//! configured secondary must serve the serial that carries it.
//!
//! The server writes, for each zone, the serial that carries its current key version (and its
//! parent's serial: the partition's DS lives there; `zonemgr::follow`). The rollover runner
//! (`lifecycle::check_all`, the server's scheduler or `mxdns keys roll --check`) asks each
//! secondary for the SOA of those zones, over TCP, TSIG-signed with that secondary's key, and
//! believes only an answer to its question whose TSIG verifies. When every secondary serves a
//! serial at or above them (RFC 1982), the moment is stored on the keys
//! (`keys::rollover::fleet_seen`) and the planner counts from it. Otherwise the roll waits; the
//! lagging or unreachable secondaries are named in the log (a warning per zone and secondary
//! at most every [`WARN_EVERY`] s; an error at every check once the wait is longer than
//! `keys.fleet_wait_alarm`), in `keys list` / `GET /v1/zones/{zone}/keys`, and in
//! `/v1/health` (503 past the alarm).
//!
//! ```text
//!  step stored (key_version V) ─► server publishes V at serial S (parent: P) ─► served_keys
//!        │ check: served_version == V ? ── no ─► wait "the primary has not served V yet"
//!        ▼ yes
//!  SOA of zone (and parent) from each secondary ── all >= S (P) ─► fleet_seen(now): steps count
//!        │ one lags / unreachable
//!        ▼
//!  wait: named (warn, rate-limited); waited > fleet_wait_alarm ─► error each check, health 503
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use provisioner::Store;
use serde::Serialize;

use crate::config::Config;
use crate::tsig::wire::{verify_response, Signer};
use crate::xfr::Secondary;

/// At most one warning per zone and secondary this often (seconds).
pub const WARN_EVERY: u64 = 60;

/// The configured secondaries with their keys (empty without `[[secondaries]]`).
pub fn secondaries(config: &Config) -> anyhow::Result<Vec<Secondary>> {
    if config.secondaries.is_empty() {
        return Ok(Vec::new());
    }
    Ok(crate::xfr::Xfr::from_config(config)?.secondaries)
}

/// `a` is at or after `b` in serial arithmetic (RFC 1982).
pub fn serial_ge(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 0x8000_0000
}

/// The SOA serial `sec` serves for `zone`: a TSIG-signed SOA query over TCP; only an answer
/// whose TSIG verifies with the secondary's key, with our ID, QR, opcode and question, NOERROR,
/// and an SOA of `zone` in the answer section counts.
pub fn soa_serial(
    sec: &Secondary,
    zone: &Name,
    timeout: Duration,
    now: u64,
) -> anyhow::Result<u32> {
    let id = {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 2];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        u16::from_be_bytes(b)
    };
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(zone.clone(), RecordType::SOA));
    let mut bytes = q.to_vec().context("encoding the SOA query")?;
    let mut signer = Signer::request(sec.key.clone());
    signer.sign(&mut bytes, now);
    let mut c = TcpStream::connect_timeout(&sec.address, timeout)
        .map_err(|e| anyhow!("cannot connect: {e}"))?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    c.write_all(&framed)
        .map_err(|e| anyhow!("send failed: {e}"))?;
    let mut len = [0u8; 2];
    c.read_exact(&mut len)
        .map_err(|e| anyhow!("no answer: {e}"))?;
    let mut raw = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut raw)
        .map_err(|e| anyhow!("short answer: {e}"))?;
    let a = Message::from_vec(&raw).map_err(|e| anyhow!("unreadable answer: {e}"))?;
    if a.metadata.id != id
        || a.metadata.message_type != MessageType::Response
        || a.metadata.op_code != OpCode::Query
        || a.queries.len() != 1
        || a.queries[0].name().to_lowercase() != zone.to_lowercase()
        || a.queries[0].query_type() != RecordType::SOA
    {
        bail!("the answer is not to our question");
    }
    verify_response(&sec.key, &raw, signer.last_mac(), now)
        .map_err(|e| anyhow!("the answer's TSIG does not verify: {e}"))?;
    if a.metadata.response_code != ResponseCode::NoError {
        bail!("answered {} for {zone}", a.metadata.response_code);
    }
    a.answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if r.name.to_lowercase() == zone.to_lowercase() => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| anyhow!("no SOA of {zone} in the answer (not serving the zone?)"))
}

/// A secondary that does not serve what the roll waits for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lag {
    pub secondary: String,
    pub address: String,
    pub zone: String,
    /// The serial it must serve (at least).
    pub needs_serial: u32,
    /// What it serves (None: no answer; see `error`).
    pub serves_serial: Option<u32>,
    pub error: Option<String>,
}

impl std::fmt::Display for Lag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secondary {} ({}) ", self.secondary, self.address)?;
        match (&self.error, self.serves_serial) {
            (Some(e), _) => write!(f, "unreachable for {} ({e})", self.zone),
            (None, Some(s)) => write!(
                f,
                "serves {} at serial {s}, needs {}",
                self.zone, self.needs_serial
            ),
            (None, None) => write!(f, "does not serve {}", self.zone),
        }
    }
}

/// A zone's roll waiting for the fleet.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Wait {
    pub zone: String,
    /// The oldest key step not yet seen on every secondary was stored then (unix seconds).
    pub since: u64,
    /// The key version the fleet must serve, and the serials that carry it.
    pub key_version: i64,
    pub serial: Option<u32>,
    pub parent_serial: Option<u32>,
    /// Set when the primary itself has not published the version yet (no server running?).
    pub primary_behind: Option<String>,
    /// The secondaries that do not serve it (empty: every one does).
    pub lagging: Vec<Lag>,
    /// When it was checked (unix seconds).
    pub checked: u64,
}

impl Wait {
    /// Every secondary serves the version: the steps may count from now.
    pub fn served(&self) -> bool {
        self.primary_behind.is_none() && self.lagging.is_empty()
    }

    /// Why the roll waits, in one sentence.
    pub fn reason(&self) -> String {
        if let Some(p) = &self.primary_behind {
            return p.clone();
        }
        self.lagging
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Asks the fleet whether it serves what `zone`'s keys wait for. None: nothing waits (no
/// secondaries, or every step was already seen on the fleet).
pub fn examine(
    config: &Config,
    secondaries: &[Secondary],
    store: &Store,
    zone: &Name,
    now: u64,
) -> anyhow::Result<Option<Wait>> {
    if secondaries.is_empty() {
        return Ok(None);
    }
    let rows = store.keys(zone)?;
    let times: Vec<_> = rows.iter().map(crate::lifecycle::times_of).collect();
    let parent = config.parent_kind(zone);
    let Some(since) = keys::rollover::fleet_pending(&times, now, parent) else {
        return Ok(None);
    };
    let served = store.served_keys(zone)?;
    let mut wait = Wait {
        zone: zone.to_ascii(),
        since,
        key_version: served.key_version,
        serial: served.serial,
        parent_serial: served.parent_serial,
        primary_behind: None,
        lagging: Vec::new(),
        checked: now,
    };
    let (Some(serial), true) = (
        served.serial,
        served.served_version == Some(served.key_version),
    ) else {
        wait.primary_behind = Some(format!(
            "the primary has not served key version {} of {zone} yet (is `mxdns serve` running?)",
            served.key_version
        ));
        return Ok(Some(wait));
    };
    let mut wanted = vec![(zone.clone(), serial)];
    if let (Some(p), Some(ps)) = (config.parent_of(zone), served.parent_serial) {
        wanted.push((p, ps));
    }
    let timeout = Duration::from_millis(config.keys.fleet_timeout_ms.max(1));
    for sec in secondaries {
        for (z, needs) in &wanted {
            let (serves, error) = match soa_serial(sec, z, timeout, now) {
                Ok(s) if serial_ge(s, *needs) => continue,
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            };
            wait.lagging.push(Lag {
                secondary: sec.name.clone(),
                address: sec.address.to_string(),
                zone: z.to_ascii(),
                needs_serial: *needs,
                serves_serial: serves,
                error,
            });
        }
    }
    Ok(Some(wait))
}

/// The waits the server's scheduler saw last, per zone, for health.
#[derive(Debug, Default)]
pub struct Board {
    waits: Mutex<BTreeMap<String, Wait>>,
    /// (zone, secondary) → when it was last warned about (unix seconds).
    warned: Mutex<BTreeMap<(String, String), u64>>,
}

impl Board {
    pub fn set(&self, zone: &Name, wait: Option<Wait>) {
        let mut w = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        match wait {
            Some(x) if !x.served() => {
                w.insert(zone.to_ascii(), x);
            }
            _ => {
                w.remove(&zone.to_ascii());
            }
        }
    }

    /// The current waits (none when the lock is busy: health never blocks on it).
    pub fn waits(&self) -> Vec<Wait> {
        self.waits
            .try_lock()
            .map(|w| w.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Logs a wait: a warning per zone and secondary at most every [`WARN_EVERY`] s; an error
    /// at every check past `alarm` seconds of waiting.
    pub fn log(&self, wait: &Wait, alarm: u64) {
        let waited = wait.checked.saturating_sub(wait.since);
        if waited > alarm {
            tracing::error!(zone = wait.zone, waited_s = waited, fleet_wait_alarm_s = alarm, reason = %wait.reason(),
                "key rollover held by the fleet for longer than keys.fleet_wait_alarm: bring the secondary back (or remove it from [[secondaries]]); the roll does not go on without it");
            return;
        }
        let who: Vec<String> = if wait.lagging.is_empty() {
            vec!["(primary)".into()]
        } else {
            wait.lagging.iter().map(|l| l.secondary.clone()).collect()
        };
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        let due = who.iter().any(|s| {
            warned
                .get(&(wait.zone.clone(), s.clone()))
                .is_none_or(|t| wait.checked >= t + WARN_EVERY)
        });
        if due {
            for s in who {
                warned.insert((wait.zone.clone(), s), wait.checked);
            }
            tracing::warn!(zone = wait.zone, waited_s = waited, reason = %wait.reason(), "key rollover waits for the fleet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsig::wire::verify_request;
    use crate::tsig::{Algorithm, Key, KeyRing};
    use std::net::SocketAddr;
    use std::sync::Arc;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_ge(5, 5));
        assert!(serial_ge(6, 5));
        assert!(!serial_ge(4, 5));
        assert!(serial_ge(2, u32::MAX - 3), "wrapped");
        assert!(!serial_ge(u32::MAX - 3, 2));
    }

    fn key(secret: &[u8]) -> Arc<Key> {
        Arc::new(Key::new(
            Name::from_ascii("nsd1.").unwrap(),
            Algorithm::HmacSha256,
            secret.to_vec(),
        ))
    }

    /// A secondary that answers one SOA query, signed with `answer_key`, after `edit`.
    fn secondary(answer_key: Arc<Key>, serial: u32, edit: fn(&mut Message)) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut raw = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut raw).unwrap();
            let ring = KeyRing::new(vec![key(b"0123456789abcdef0123456789abcdef")]);
            let now = crate::zonemgr::Clock::now(&crate::zonemgr::SystemClock) as u64;
            let v = verify_request(&ring, &raw, now).expect("the query is signed");
            let q = Message::from_vec(&raw).unwrap();
            let mut a = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            a.add_query(q.queries[0].clone());
            let zone = q.queries[0].name().clone();
            a.add_answer(hickory_proto::rr::Record::from_rdata(
                zone.clone(),
                60,
                RData::SOA(hickory_proto::rr::rdata::SOA::new(
                    zone.clone(),
                    zone,
                    serial,
                    60,
                    60,
                    600,
                    60,
                )),
            ));
            edit(&mut a);
            let mut b = a.to_vec().unwrap();
            Signer::response_to(answer_key, v.mac).sign(&mut b, now);
            let mut f = (b.len() as u16).to_be_bytes().to_vec();
            f.extend(b);
            c.write_all(&f).unwrap();
        });
        addr
    }

    #[test]
    fn only_a_signed_answer_to_our_question_counts() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
        let sec = |address| Secondary {
            name: "nsd1".into(),
            address,
            allow: vec![],
            key: k.clone(),
        };
        let now = crate::zonemgr::Clock::now(&crate::zonemgr::SystemClock) as u64;
        let t = Duration::from_secs(5);
        let ask = |addr| soa_serial(&sec(addr), &zone, t, now);
        assert_eq!(ask(secondary(k.clone(), 42, |_| {})).unwrap(), 42);
        // signed with another secret: not the secondary's word
        let e = ask(secondary(
            key(b"another secret, just as long..."),
            42,
            |_| {},
        ))
        .unwrap_err();
        assert!(e.to_string().contains("TSIG"), "{e}");
        assert!(ask(secondary(k.clone(), 42, |a| a.metadata.id ^= 1)).is_err());
        assert!(ask(secondary(k.clone(), 42, |a| {
            a.queries[0].set_name(Name::from_ascii("other.example.").unwrap());
        }))
        .is_err());
        let e = ask(secondary(k.clone(), 42, |a| {
            a.metadata.response_code = ResponseCode::Refused;
            a.answers.clear();
        }))
        .unwrap_err();
        assert!(e.to_string().contains("Refused"), "{e}");
        assert!(ask(secondary(k.clone(), 42, |a| a.answers.clear())).is_err());
        // nobody listening
        let gone = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(ask(gone).is_err());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let b = Board::default();
        let mut w = Wait {
            zone: "o-v1.mx.example.".into(),
            since: 1000,
            key_version: 3,
            serial: Some(7),
            parent_serial: None,
            primary_behind: None,
            lagging: vec![Lag {
                secondary: "nsd1".into(),
                address: "127.0.0.1:1".into(),
                zone: "o-v1.mx.example.".into(),
                needs_serial: 7,
                serves_serial: Some(6),
                error: None,
            }],
            checked: 1000,
        };
        b.log(&w, 3600);
        let first = b
            .warned
            .lock()
            .unwrap()
            .values()
            .copied()
            .collect::<Vec<_>>();
        w.checked = 1010;
        b.log(&w, 3600);
        assert_eq!(
            b.warned
                .lock()
                .unwrap()
                .values()
                .copied()
                .collect::<Vec<_>>(),
            first,
            "no second warning within WARN_EVERY"
        );
        w.checked = 1000 + WARN_EVERY;
        b.log(&w, 3600);
        assert_eq!(
            b.warned
                .lock()
                .unwrap()
                .values()
                .copied()
                .collect::<Vec<_>>(),
            vec![1000 + WARN_EVERY]
        );
        assert!(w.reason().contains("nsd1") && w.reason().contains("needs 7"));
        b.set(
            &Name::from_ascii("o-v1.mx.example.").unwrap(),
            Some(w.clone()),
        );
        assert_eq!(b.waits().len(), 1);
        w.lagging.clear();
        b.set(&Name::from_ascii("o-v1.mx.example.").unwrap(), Some(w));
        assert!(b.waits().is_empty(), "a served wait is no wait");
    }
}
