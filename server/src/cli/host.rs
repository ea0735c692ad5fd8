//! `mxdns host`: tenant hosts written straight to the store (tests, benchmarks, operators).

use anyhow::{bail, Context};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, TLSA};
use hickory_proto::rr::{Name, RData, RecordType};
use provisioner::service::{record_audit, tlsa_owner, Actor};
use provisioner::{Batch, BatchOp, Store};
use serde_json::json;

use super::{parse_name, zone_for, HostCmd};
use crate::config::Config;
use crate::zonemgr::{self, Clock, SystemClock};

fn parse_tlsa(s: &str) -> anyhow::Result<TLSA> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() < 4 {
        bail!("TLSA must be \"usage selector matching hex\": {s}");
    }
    let hex: String = f[3..].concat();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("TLSA data must be hex: {s}");
    }
    let data = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(TLSA::new(
        CertUsage::from(f[0].parse::<u8>()?),
        Selector::from(f[1].parse::<u8>()?),
        Matching::from(f[2].parse::<u8>()?),
        data,
    ))
}

/// Writes `batch` with its audit entry (the operator's command line) in one transaction.
fn write(
    store: &mut Store,
    batch: &Batch,
    now: i64,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    store.transaction(|tx| {
        provisioner::store::write_batch(tx, batch, now)?;
        record_audit(tx, &Actor::cli(), action, target, detail)
    })?;
    Ok(())
}

pub fn host_cmd(config: Config, cmd: HostCmd) -> anyhow::Result<()> {
    let mut store: Store = zonemgr::init_data(&config, SystemClock.now())?;
    let now = SystemClock.now() as i64;
    match cmd {
        HostCmd::Add {
            name,
            a,
            aaaa,
            tlsa,
            ttl,
        } => {
            let host = parse_name(&name)?;
            let zone = zone_for(&config, &host)?;
            let av: Vec<RData> = a.into_iter().map(|x| RData::A(A(x))).collect();
            let v6: Vec<RData> = aaaa.into_iter().map(|x| RData::AAAA(AAAA(x))).collect();
            let t: Vec<RData> = tlsa
                .iter()
                .map(|s| parse_tlsa(s).map(RData::TLSA))
                .collect::<anyhow::Result<_>>()?;
            let ops = vec![
                BatchOp::set(&zone, &host, RecordType::A, ttl, av),
                BatchOp::set(&zone, &host, RecordType::AAAA, ttl, v6),
                BatchOp::set(&zone, &tlsa_owner(&host), RecordType::TLSA, ttl, t),
            ];
            let target = host.to_ascii();
            write(
                &mut store,
                &Batch { ops },
                now,
                "host.add",
                &target,
                json!({"zone": zone.to_ascii()}),
            )?;
            println!("{host} published in {zone}");
        }
        HostCmd::Remove { name } => {
            let host = parse_name(&name)?;
            let zone = zone_for(&config, &host)?;
            let ops = vec![
                BatchOp::DeleteName {
                    zone: zone.clone(),
                    owner: host.clone(),
                },
                BatchOp::DeleteName {
                    zone: zone.clone(),
                    owner: tlsa_owner(&host),
                },
            ];
            let target = host.to_ascii();
            write(
                &mut store,
                &Batch { ops },
                now,
                "host.remove",
                &target,
                json!({"zone": zone.to_ascii()}),
            )?;
            println!("{host} removed from {zone}");
        }
        HostCmd::BulkAdd {
            in_zone,
            count,
            ttl,
        } => {
            let zone = match in_zone {
                Some(z) => parse_name(&z)?,
                None => config
                    .partition_names()?
                    .into_iter()
                    .next()
                    .context("no partition configured")?,
            };
            let t0 = std::time::Instant::now();
            for chunk_start in (1..=count).step_by(10_000) {
                let mut ops = Vec::new();
                for i in chunk_start..=(chunk_start + 9_999).min(count) {
                    let host = Name::from_ascii(format!("t{i}"))?.append_domain(&zone)?;
                    let put =
                        |owner: &Name, rtype, data| BatchOp::set(&zone, owner, rtype, ttl, data);
                    ops.push(put(
                        &host,
                        RecordType::A,
                        vec![RData::A(A::new(192, 0, 2, (i % 256) as u8))],
                    ));
                    let v6 = std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | i as u128);
                    ops.push(put(&host, RecordType::AAAA, vec![RData::AAAA(AAAA(v6))]));
                    let d = |tag: &str| {
                        ring::digest::digest(
                            &ring::digest::SHA256,
                            format!("tlsa-{tag}-{i}").as_bytes(),
                        )
                        .as_ref()
                        .to_vec()
                    };
                    let tl = |d| {
                        RData::TLSA(TLSA::new(
                            CertUsage::DaneEe,
                            Selector::Spki,
                            Matching::Sha256,
                            d,
                        ))
                    };
                    ops.push(put(
                        &tlsa_owner(&host),
                        RecordType::TLSA,
                        vec![tl(d("1")), tl(d("2"))],
                    ));
                }
                let last = (chunk_start + 9_999).min(count);
                let detail = json!({"from": format!("t{chunk_start}"), "to": format!("t{last}")});
                write(
                    &mut store,
                    &Batch { ops },
                    now,
                    "host.bulk_add",
                    &zone.to_ascii(),
                    detail,
                )?;
            }
            println!(
                "{count} hosts added to {zone} in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
