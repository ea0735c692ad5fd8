//! `mxdns tsig new` and `mxdns secondary config`: what an operator needs to add a secondary
//! (NSD or Knot DNS) in minutes. Both print the TSIG secret: that is their purpose (it goes
//! into the secondary's configuration); nothing else ever prints or logs it.

use std::net::SocketAddr;

use anyhow::{bail, Context};

use super::{SecondaryCmd, TsigCmd};
use crate::config::Config;
use crate::tsig::{self, Algorithm, Key};

pub fn tsig_cmd(config: Config, cmd: TsigCmd, algorithm: Option<String>) -> anyhow::Result<()> {
    match cmd {
        TsigCmd::New { name } => {
            // a DNSSEC algorithm number (e.g. MXDNS_ALGORITHM=13 in the environment) is not
            // a MAC algorithm: the default then
            let mac = algorithm
                .as_deref()
                .filter(|a| a.parse::<u8>().is_err())
                .unwrap_or("hmac-sha256");
            let algorithm = Algorithm::parse(mac)?;
            let key = tsig::create(&config.data_dir, &name, algorithm)?;
            eprintln!(
                "TSIG key {} written to {} (mode 0600).",
                key.config_name(),
                tsig::dir(&config.data_dir).display()
            );
            print!(
                "# NSD (nsd.conf)\n{}\n# Knot DNS (knot.conf)\n{}",
                nsd_key(&key),
                knot_key(&key)
            );
            Ok(())
        }
    }
}

fn nsd_key(k: &Key) -> String {
    format!(
        "key:\n\tname: \"{}\"\n\talgorithm: {}\n\tsecret: \"{}\"\n",
        k.config_name(),
        k.algorithm.as_str(),
        k.secret_base64()
    )
}

fn knot_key(k: &Key) -> String {
    format!(
        "key:\n  - id: {}\n    algorithm: {}\n    secret: {}\n",
        k.config_name(),
        k.algorithm.as_str(),
        k.secret_base64()
    )
}

/// `ADDR@PORT` as NSD and Knot write addresses.
fn at(a: SocketAddr) -> String {
    format!("{}@{}", a.ip(), a.port())
}

pub fn secondary_cmd(config: Config, cmd: SecondaryCmd) -> anyhow::Result<()> {
    let SecondaryCmd::Config {
        name,
        nsd,
        knot: _,
        primary,
    } = cmd;
    let list = config.secondary_list()?;
    let Some(sec) = list.iter().find(|s| s.name == name) else {
        bail!(
            "no secondary named {name:?} in the configuration (add a [[secondaries]] block; configured: {})",
            list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    };
    let key = tsig::load(&config.data_dir, &sec.key.to_ascii())
        .with_context(|| format!("secondary {name:?}"))?;
    let primary = match primary.or_else(|| config.dns_listen.first().copied()) {
        Some(p) if !p.ip().is_unspecified() => p,
        _ => bail!("give the address the secondary reaches this server at: --primary ADDR:PORT"),
    };
    let zones = config.all_zones()?;
    let k = key.config_name();
    let mut out = format!(
        "# mxdns primary {primary}: secondary {name:?}, TSIG key {k} (the key also authenticates NOTIFY)\n"
    );
    if nsd {
        out.push_str(&nsd_key(&key));
        for z in &zones {
            let zone = z.to_ascii();
            out.push_str(&format!(
                "\nzone:\n\tname: \"{zone}\"\n\tzonefile: \"{file}zone\"\n\trequest-xfr: {} {k}\n\tallow-notify: {} {k}\n",
                at(primary),
                primary.ip(),
                file = zone,
            ));
        }
    } else {
        out.push_str(&knot_key(&key));
        out.push_str(&format!(
            "\nremote:\n  - id: mxdns-primary\n    address: {}\n    key: {k}\n\nacl:\n  - id: mxdns-notify\n    address: {}\n    key: {k}\n    action: notify\n\nzone:\n",
            at(primary),
            primary.ip()
        ));
        for z in &zones {
            out.push_str(&format!(
                "  - domain: {}\n    master: mxdns-primary\n    acl: mxdns-notify\n",
                z.to_ascii()
            ));
        }
    }
    print!("{out}");
    Ok(())
}
