//! `mxdns check dane DOMAIN`: the DANE validation test of `provisioner::dane` from the command
//! line, as a sender sees the domain (any domain, any address: the operator's tool). Exit 0
//! when every MX host passes, 1 when any fails.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use crate::config::Config;

#[derive(Subcommand)]
pub enum CheckCmd {
    /// What a DANE sender (RFC 7672) sees of DOMAIN: MX, addresses, TLSA with their DNSSEC
    /// status, then SMTP STARTTLS to every address and the chain against the TLSA records;
    /// per MX host and address the code a sender would give (4.7.321 starttls-not-supported,
    /// 4.7.322 certificate-expired, 4.7.323 tlsa-invalid, 4.7.324 dnssec-invalid, 4.4.312 DNS
    /// query failed) or success, with the evidence and the action to take.
    Dane(DaneArgs),
}

#[derive(Args)]
pub struct DaneArgs {
    pub domain: String,
    /// Test this MX host directly (as a sender does once it has a secure MX RRset).
    #[arg(long)]
    pub mx: Option<String>,
    /// The validating resolver (default: `status_resolver`).
    #[arg(long)]
    pub resolver: Option<SocketAddr>,
    /// SMTP port to connect to (default `[dane] smtp_port`, 25; for tests). TLSA is still
    /// looked up at _25._tcp.
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// Print the report as JSON (the API's answer).
    #[arg(long)]
    pub json: bool,
}

pub fn check_cmd(config: Config, cmd: CheckCmd) -> anyhow::Result<()> {
    match cmd {
        CheckCmd::Dane(a) => {
            let mut s = config.dane_settings(false);
            if let Some(r) = a.resolver {
                s.resolver = r;
            }
            if let Some(p) = a.smtp_port {
                s.smtp_port = p;
            }
            let report = provisioner::dane::check(
                &s,
                &a.domain,
                a.mx.as_deref(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            if !report.pass {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
