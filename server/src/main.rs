//! `mxdns`: the daemon (`serve`) and the operator commands.
#![recursion_limit = "256"]

mod api;
mod cli;
mod config;
mod dns;
mod export;
mod fleet;
mod health;
mod lifecycle;
mod logging;
mod metrics;
mod probes;
mod reload;
mod sdnotify;
mod serve;
mod supervise;
mod testhooks;
mod tsig;
mod xfr;
mod zonemgr;

use clap::Parser;

use cli::provision::{provision_cmd, Provision};
use cli::{Cli, Command, Common};
use config::Config;

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut c = Config::load(common.config.as_deref())?;
    if let Some(d) = &common.data_dir {
        c.data_dir = d.clone();
    }
    if let Some(z) = &common.zone {
        c.zone = z.clone();
    }
    if !common.partitions.is_empty() {
        c.partitions = common.partitions.clone();
    }
    if let Some(a) = &common.algorithm {
        c.algorithm = a.parse().map_err(|_| {
            anyhow::anyhow!("bad --algorithm {a:?}: 13 (ECDSA P-256) or 15 (Ed25519)")
        })?;
    }
    c.validate()?;
    Ok(c)
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // `tsig new --algorithm` names a MAC algorithm, not a DNSSEC one
    let tsig_algorithm = match cli.command {
        Command::Tsig { .. } => cli.common.algorithm.take(),
        _ => None,
    };
    let mut config = load_config(&cli.common)?;
    logging::init(
        config.log_level.as_deref(),
        config.log_format == config::LogFormat::Json,
    );
    match cli.command {
        Command::Serve(args) => {
            if !args.dns_listen.is_empty() {
                config.dns_listen = args.dns_listen;
            }
            if let Some(a) = args.api_listen {
                config.api_listen = a;
            }
            if let Some(w) = args.workers {
                config.workers = w;
            }
            serve::serve(config, cli.common.config.clone())
        }
        Command::Keys { cmd } => cli::keys::keys_cmd(config, cmd),
        Command::Host { cmd } => cli::host::host_cmd(config, cmd),
        Command::Tenant { cmd } => provision_cmd(config, Provision::Tenant(cmd)),
        Command::Domain { cmd } => provision_cmd(config, Provision::Domain(cmd)),
        Command::Dnssec { cmd } => provision_cmd(config, Provision::Dnssec(cmd)),
        Command::Dane { cmd } => provision_cmd(config, Provision::Dane(cmd)),
        Command::Partition { cmd } => provision_cmd(config, Provision::Partition(cmd)),
        Command::Token { cmd } => provision_cmd(config, Provision::Token(cmd)),
        Command::Audit { after, limit } => provision_cmd(config, Provision::Audit { after, limit }),
        Command::Tsig { cmd } => cli::secondary::tsig_cmd(config, cmd, tsig_algorithm),
        Command::Secondary { cmd } => cli::secondary::secondary_cmd(config, cmd),
        Command::Zone {
            cmd: cli::ZoneCmd::Export { zone, output, api },
        } => cli::ops::zone_export(&config, &zone, api, output.as_deref()),
        Command::Backup { dest } => cli::ops::backup(&config, &dest),
        Command::Restore { src, force } => cli::ops::restore(&config, &src, force),
        Command::Check { cmd } => cli::check::check_cmd(config, cmd),
    }
}
