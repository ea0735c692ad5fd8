//! `mxdns keys`: DS, the key list, rollover steps (cron-safe) and the parent's DS confirmation.

use anyhow::bail;
use provisioner::service::Actor;

use super::{parse_name, KeysCmd};
use crate::config::Config;
use crate::lifecycle;
use crate::zonemgr::{self, Clock, SystemClock};

pub fn keys_cmd(config: Config, cmd: KeysCmd) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let mut store = zonemgr::init_data(&config, now)?;
    let now = now as u64;
    let print_done = |done: &[lifecycle::Done]| {
        for d in done {
            println!("{} {} {} {}", d.zone, d.role, d.key_tag, d.step);
        }
    };
    let refused = |e: lifecycle::LifecycleError| -> anyhow::Result<()> {
        eprintln!("mxdns: {e}");
        std::process::exit(2);
    };
    match cmd {
        KeysCmd::Ds { for_zone } => {
            let zone = match for_zone {
                Some(z) => parse_name(&z)?,
                None => config.zone_name()?,
            };
            let zones = match lifecycle::status(&config, &store, Some(&zone), now) {
                Ok(z) => z,
                Err(e) => return refused(e),
            };
            for k in zones.iter().flat_map(|z| &z.keys) {
                if let (true, Some(ds)) = (k.in_dnskey, &k.ds) {
                    println!("{ds}");
                }
            }
        }
        KeysCmd::List { for_zone, json } => {
            let zone = for_zone.as_deref().map(parse_name).transpose()?;
            let zones = match lifecycle::status(&config, &store, zone.as_ref(), now) {
                Ok(z) => z,
                Err(e) => return refused(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&zones)?);
            } else {
                lifecycle::print_table(&zones);
            }
        }
        KeysCmd::Roll(args) => {
            let done = if args.check {
                lifecycle::check_all_as(&config, &mut store, now, &Actor::cli())?
            } else {
                let (Some(z), true) = (args.for_zone, args.now) else {
                    bail!("use `keys roll --check` or `keys roll --zone Z --zsk|--ksk --now`");
                };
                let role = match (args.zsk, args.ksk) {
                    (true, false) => keys::rollover::KeyRole::Zsk,
                    (false, true) => keys::rollover::KeyRole::Ksk,
                    _ => bail!("say which key rolls: --zsk or --ksk"),
                };
                let zone = parse_name(&z)?;
                match lifecycle::roll_zone_as(
                    &config,
                    &mut store,
                    &zone,
                    now,
                    Some(lifecycle::Request::Roll(role)),
                    &Actor::cli(),
                ) {
                    Ok(d) => d,
                    Err(e) => return refused(e),
                }
            };
            print_done(&done);
        }
        KeysCmd::DsSeen { for_zone } => {
            let zone = parse_name(&for_zone)?;
            match lifecycle::roll_zone_as(
                &config,
                &mut store,
                &zone,
                now,
                Some(lifecycle::Request::DsSeen),
                &Actor::cli(),
            ) {
                Ok(d) => print_done(&d),
                Err(e) => return refused(e),
            }
        }
    }
    Ok(())
}
