//! NOTIFY (RFC 1996) to every configured secondary when a zone's serial moves.
//!
//! One task per (zone, secondary), apart from the DNS loops: it waits for a new snapshot (the
//! journal's signal), sends one TSIG-signed NOTIFY over UDP carrying the current SOA, and waits
//! for the answer, retrying with a doubled wait (1 s, 2 s, ... at most 60 s) until the
//! secondary answers. At most one NOTIFY per zone and secondary is in flight: serials that
//! come while it waits are announced by the next one, so a burst of commits (a bulk import)
//! costs a NOTIFY per round trip, not one per change. Each NOTIFY has a random ID and is sent
//! from a new socket (a random port), and only a TSIG-verified answer from the secondary's
//! address counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::Secondary;
use crate::tsig::wire::{verify_response, Signer};
use crate::zonemgr::{Clock, SystemClock, ZoneManager};

const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Spawns the NOTIFY tasks of every zone and secondary.
pub fn spawn(
    mgr: Arc<ZoneManager>,
    secondaries: &[Secondary],
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let zones: Vec<Name> = mgr
        .catalog
        .load()
        .zones
        .iter()
        .map(|z| z.origin.clone())
        .collect();
    let mut tasks = Vec::new();
    for s in secondaries {
        for z in &zones {
            tasks.push(tokio::spawn(notify_loop(
                mgr.clone(),
                z.clone(),
                s.clone(),
                stop.clone(),
            )));
        }
    }
    tasks
}

/// What one NOTIFY got.
enum Outcome {
    /// An answer with this RCODE (0: the secondary took it).
    Answered(u16),
    /// No (valid) answer within the wait.
    Silent(String),
}

async fn notify_loop(
    mgr: Arc<ZoneManager>,
    zone: Name,
    sec: Secondary,
    mut stop: watch::Receiver<bool>,
) {
    let mut changed = mgr.journal.subscribe();
    let mut acked: Option<u32> = None;
    let mut wait = FIRST_WAIT;
    let mut failing = false;
    loop {
        let current = mgr.catalog.load().get(&zone).cloned();
        let serial = current.as_ref().map(|z| z.serial());
        if serial.is_none() || serial == acked {
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
            continue;
        }
        let zone_now = current.expect("checked");
        let outcome = tokio::select! {
            o = notify_once(&zone_now, &sec, wait) => o,
            _ = stop.changed() => return,
        };
        match outcome {
            Outcome::Answered(0) => {
                if failing {
                    tracing::info!(zone = %zone, secondary = sec.name, serial, "NOTIFY answered again");
                }
                tracing::debug!(zone = %zone, secondary = sec.name, serial, "NOTIFY answered");
                acked = serial;
                wait = FIRST_WAIT;
                failing = false;
            }
            o => {
                let refused = matches!(o, Outcome::Answered(_));
                let why = match o {
                    Outcome::Answered(rcode) => format!("answered with RCODE {rcode}"),
                    Outcome::Silent(why) => why,
                };
                if !failing || wait == MAX_WAIT {
                    tracing::warn!(zone = %zone, secondary = sec.name, address = %sec.address, serial, reason = why, retry_s = wait.as_secs(), "NOTIFY not taken; retrying");
                }
                failing = true;
                if refused {
                    // a refusal comes at once: wait before the next try
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return,
                    }
                }
                wait = (wait * 2).min(MAX_WAIT);
            }
        }
    }
}

/// The NOTIFY message for `zone`'s current SOA, signed; returns it and the signer (whose MAC
/// the answer covers).
fn message(zone: &zones::Zone, sec: &Secondary, id: u16) -> Option<(Vec<u8>, Signer)> {
    let soa = zone.soa()?;
    let owner = soa.owner_wire();
    let mut rr = Vec::new();
    soa.wire().each_record(false, |r| rr = r.to_vec());
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    // opcode NOTIFY (4), AA (RFC 1996 3.7)
    m.extend_from_slice(&((4u16 << 11) | 0x0400).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(owner);
    m.extend_from_slice(&6u16.to_be_bytes()); // SOA
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    m.extend_from_slice(owner);
    m.extend_from_slice(&rr);
    let mut signer = Signer::request(sec.key.clone());
    signer.sign(&mut m, u64::from(SystemClock.now()));
    Some((m, signer))
}

fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u16::from_be_bytes(b)
}

/// Sends one NOTIFY and waits up to `wait` for its answer.
async fn notify_once(zone: &zones::Zone, sec: &Secondary, wait: Duration) -> Outcome {
    let id = random_id();
    let Some((msg, signer)) = message(zone, sec, id) else {
        return Outcome::Silent("zone without SOA".into());
    };
    let local: SocketAddr = if sec.address.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let sock = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return Outcome::Silent(format!("no socket: {e}")),
    };
    if let Err(e) = sock.send_to(&msg, sec.address).await {
        return Outcome::Silent(format!("send failed: {e}"));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 4096];
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
        let (len, from) = match got {
            Err(_) => return Outcome::Silent(format!("no answer within {} s", wait.as_secs())),
            Ok(Err(e)) => return Outcome::Silent(format!("receive failed: {e}")),
            Ok(Ok(x)) => x,
        };
        let a = &buf[..len];
        // the answer to this NOTIFY, from the secondary: same ID, QR, opcode NOTIFY
        if from != sec.address || len < 12 || a[0..2] != id.to_be_bytes() {
            continue;
        }
        let flags = u16::from_be_bytes([a[2], a[3]]);
        if flags & 0x8000 == 0 || (flags >> 11) & 0xF != 4 {
            continue;
        }
        let rcode = flags & 0xF;
        match verify_response(&sec.key, a, signer.last_mac(), u64::from(SystemClock.now())) {
            Ok(()) => return Outcome::Answered(rcode),
            // an unsigned refusal (e.g. BADKEY) is still the secondary's word
            Err(_) if rcode != 0 => return Outcome::Answered(rcode),
            Err(e) => tracing::debug!(
                secondary = sec.name,
                error = e,
                "NOTIFY answer ignored: TSIG"
            ),
        }
    }
}
