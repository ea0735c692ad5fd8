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
            crate::metrics::secondaries::configured(&z.to_ascii(), &s.name);
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
                if let Some(serial) = serial {
                    crate::metrics::secondaries::notified(
                        &zone.to_ascii(),
                        &sec.name,
                        serial,
                        u64::from(mgr.now()),
                    );
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tsig::wire::verify_request;
    use crate::tsig::{Algorithm, Key, KeyRing};
    use crate::zonemgr::db_path;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};
    use provisioner::store::{Batch, BatchOp};
    use provisioner::Store;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A burst of commits while the secondary is slow to answer: one NOTIFY in flight at a time,
    /// far fewer NOTIFYs than commits, and the last one carries the last serial.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bursts_are_coalesced_with_one_notify_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let mgr = Arc::new(ZoneManager::open(config, Arc::new(SystemClock)).unwrap());
        let zone = Name::from_ascii("o-v1.mx.example.").unwrap();
        let key = Arc::new(Key::new(
            Name::from_ascii("n1.").unwrap(),
            Algorithm::HmacSha256,
            b"0123456789abcdef0123456789abcdef".to_vec(),
        ));
        let responder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sec = Secondary {
            name: "n1".into(),
            address: responder.local_addr().unwrap(),
            allow: vec![],
            key: key.clone(),
        };
        let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
        let overlap = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        {
            let (seen, overlap, answered) = (seen.clone(), overlap.clone(), answered.clone());
            let ring = KeyRing::new(vec![key.clone()]);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let (n, from) = responder.recv_from(&mut buf).await.unwrap();
                    let raw = buf[..n].to_vec();
                    let v = verify_request(&ring, &raw, u64::from(SystemClock.now())).unwrap();
                    let m = Message::from_vec(&raw).unwrap();
                    assert_eq!(m.metadata.op_code, OpCode::Notify);
                    let RData::SOA(soa) = &m.answers[0].data else {
                        panic!("NOTIFY without SOA")
                    };
                    seen.lock().unwrap().push(soa.serial);
                    // a slow secondary: anything that arrives meanwhile was sent while this
                    // NOTIFY was unanswered
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let mut peek = [0u8; 1];
                    if responder.try_peek_from(&mut peek).is_ok() {
                        overlap.store(true, Ordering::SeqCst);
                    }
                    let mut a = Message::new(m.metadata.id, MessageType::Response, OpCode::Notify);
                    a.add_query(Query::query(m.queries[0].name().clone(), RecordType::SOA));
                    let mut bytes = a.to_vec().unwrap();
                    Signer::response(&v).sign(&mut bytes, u64::from(SystemClock.now()));
                    responder.send_to(&bytes, from).await.unwrap();
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(notify_loop(mgr.clone(), zone.clone(), sec, stop_rx));
        // the start's serial is announced
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while answered.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "no NOTIFY at start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 30 commits, each a new serial, as fast as the zone manager makes them
        let commits = 30;
        {
            let (mgr, zone) = (mgr.clone(), zone.clone());
            let dir = dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || {
                let mut store = Store::open(&db_path(&dir)).unwrap();
                for i in 0..commits {
                    let owner = Name::from_ascii(format!("h{i}.o-v1.mx.example.")).unwrap();
                    let batch = Batch {
                        ops: vec![BatchOp::set(
                            &zone,
                            &owner,
                            RecordType::A,
                            300,
                            vec![RData::A(A::new(192, 0, 2, 1))],
                        )],
                    };
                    store.write(&batch, 0).unwrap();
                    mgr.sync().unwrap();
                }
            })
            .await
            .unwrap();
        }
        let last = mgr.catalog.load().get(&zone).unwrap().serial();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().last() != Some(&last) {
            assert!(
                std::time::Instant::now() < deadline,
                "last serial {last} never announced: {:?}",
                seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
        let seen = seen.lock().unwrap().clone();
        assert!(
            !overlap.load(Ordering::SeqCst),
            "two NOTIFYs in flight: {seen:?}"
        );
        assert!(
            seen.len() < commits / 2,
            "{} NOTIFYs for {commits} commits: {seen:?}",
            seen.len()
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }
}
