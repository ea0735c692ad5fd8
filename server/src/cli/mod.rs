//! The command line: the `mxdns` commands and their arguments (clap), and the operator
//! commands, which act on the data directory with the same use cases as the HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hickory_proto::rr::Name;

use crate::config::Config;

pub mod check;
pub mod host;
pub mod keys;
pub mod ops;
pub mod provision;
pub mod secondary;

#[derive(Parser)]
#[command(
    name = "mxdns",
    version,
    about = "Signed authoritative DNS and provisioning for inbound SMTP DANE"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Common {
    /// TOML configuration file (flags and MXDNS_* variables override it).
    #[arg(long, global = true, env = "MXDNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database and key files.
    #[arg(long, global = true, env = "MXDNS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The service zone (default mx.example.).
    #[arg(long = "service-zone", global = true, env = "MXDNS_SERVICE_ZONE")]
    pub zone: Option<String>,
    /// Partition label (repeatable; default o-v1).
    #[arg(
        long = "partition",
        global = true,
        env = "MXDNS_PARTITIONS",
        value_delimiter = ','
    )]
    pub partitions: Vec<String>,
    /// DNSSEC algorithm for new keys: 13 (ECDSA P-256) or 15 (Ed25519). For `tsig new`: the
    /// MAC algorithm, hmac-sha256 (default), hmac-sha384 or hmac-sha512.
    #[arg(long, global = true, env = "MXDNS_ALGORITHM")]
    pub algorithm: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the DNS server and the HTTP API.
    Serve(ServeArgs),
    /// Keys: DS for the registrar, list with states, rollovers.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Tenants (New-Tenant): `tenant add NAME` prints the tenant id and its token.
    Tenant {
        #[command(subcommand)]
        cmd: TenantCmd,
    },
    /// Accepted domains of tenants.
    Domain {
        #[command(subcommand)]
        cmd: DomainCmd,
    },
    /// Enable-/Disable-DnssecForVerifiedDomain, Get-DnssecStatusForVerifiedDomain.
    Dnssec {
        #[command(subcommand)]
        cmd: DnssecCmd,
    },
    /// Enable-/Disable-SmtpDaneInbound.
    Dane {
        #[command(subcommand)]
        cmd: DaneCmd,
    },
    /// Partitions: inbound addresses and fleet certificates.
    Partition {
        #[command(subcommand)]
        cmd: PartitionCmd,
    },
    /// API tokens: make (rotate), list, revoke.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// The audit trail of every change, oldest first (JSON).
    Audit {
        /// Entries after this position (the `next` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Entries at most (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Add or remove tenant hosts directly in the store (tests, benchmarks, operators).
    Host {
        #[command(subcommand)]
        cmd: HostCmd,
    },
    /// TSIG keys (RFC 8945) for the secondaries: `tsig new NAME`.
    Tsig {
        #[command(subcommand)]
        cmd: TsigCmd,
    },
    /// Secondaries: `secondary config --nsd|--knot NAME` prints their configuration.
    Secondary {
        #[command(subcommand)]
        cmd: SecondaryCmd,
    },
    /// Zones as served: `zone export ZONE` writes the signed zone (RFC 1035 presentation).
    Zone {
        #[command(subcommand)]
        cmd: ZoneCmd,
    },
    /// A consistent copy of the data directory (database, keys, TSIG keys, admin token) into
    /// the new directory DEST, while the server runs; every file mode 0600.
    Backup { dest: PathBuf },
    /// Restore a backup into the data directory (the server stopped).
    Restore {
        src: PathBuf,
        /// Replace the database (and keys) the data directory holds.
        #[arg(long)]
        force: bool,
    },
    /// Tests as a sender: `check dane DOMAIN` (the DANE validation test).
    Check {
        #[command(subcommand)]
        cmd: check::CheckCmd,
    },
}

#[derive(Subcommand)]
pub enum ZoneCmd {
    /// Write the signed zone as the running server serves it, in RFC 1035 presentation format
    /// (asks the API with the admin token: MXDNS_TOKEN or <data-dir>/admin-token).
    Export {
        zone: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The server's API address (default: api_listen of the configuration).
        #[arg(long)]
        api: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
pub enum TsigCmd {
    /// Create a key in <data-dir>/tsig/NAME.key (mode 0600) and print it as NSD's and Knot's
    /// configurations take it.
    /// (`--algorithm hmac-sha256|hmac-sha384|hmac-sha512`, default hmac-sha256.)
    New { name: String },
}

#[derive(Subcommand)]
pub enum SecondaryCmd {
    /// Print the key, zones and ACL a configured secondary needs (all served zones).
    Config {
        /// The `name` of its `[[secondaries]]` entry.
        name: String,
        #[arg(long, conflicts_with = "knot", required_unless_present = "knot")]
        nsd: bool,
        #[arg(long)]
        knot: bool,
        /// The address the secondary transfers from (default: the first dns_listen).
        #[arg(long)]
        primary: Option<SocketAddr>,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// DNS listen address, UDP and TCP (repeatable; IPv6 as [::1]:5300).
    #[arg(long = "dns-listen", env = "MXDNS_DNS_LISTEN", value_delimiter = ',')]
    pub dns_listen: Vec<SocketAddr>,
    /// HTTP API listen address.
    #[arg(long, env = "MXDNS_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// Worker threads (0: one per core).
    #[arg(long, env = "MXDNS_WORKERS")]
    pub workers: Option<usize>,
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Print the DS RRset of a zone apex (default: the service zone) in presentation format:
    /// one DS per KSK in its DNSKEY RRset (the trust anchor; what the parent should serve).
    Ds {
        #[arg(long = "zone")]
        for_zone: Option<String>,
    },
    /// List every key with its state, what it does now and the next scheduled step.
    List {
        #[arg(long = "zone")]
        for_zone: Option<String>,
        /// Print JSON (the admin API's answer) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rollovers: `--check` carries out every step that is due (safe from cron, while the
    /// server runs or not, twice at once); `--zone Z --zsk|--ksk --now` starts one now.
    Roll(RollArgs),
    /// The parent of a zone (the apex) serves the DS of its incoming KSK: go on.
    DsSeen {
        #[arg(long = "zone")]
        for_zone: String,
    },
}

#[derive(Args)]
pub struct RollArgs {
    /// Carry out every due step of every zone.
    #[arg(long, conflicts_with_all = ["for_zone", "zsk", "ksk", "now"])]
    pub check: bool,
    /// The zone of an unscheduled rollover.
    #[arg(long = "zone", requires = "now")]
    pub for_zone: Option<String>,
    #[arg(long, conflicts_with = "ksk")]
    pub zsk: bool,
    #[arg(long)]
    pub ksk: bool,
    /// Start the rollover now (the waiting times that keep validation working still apply).
    #[arg(long, requires = "for_zone")]
    pub now: bool,
}

#[derive(Subcommand)]
pub enum TenantCmd {
    Add { name: String },
}

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add an accepted domain to a tenant, verified (the operator vouches for it; migrations).
    Add {
        #[arg(long)]
        tenant: String,
        domain: String,
        /// Add a claim to prove in DNS instead (prints the TXT record to publish).
        #[arg(long)]
        unverified: bool,
    },
    /// Look the domain's TXT records up and mark it verified for the tenant whose claim's
    /// value is published.
    Verify {
        domain: String,
        /// Whose claim (when several tenants' values are published).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove an accepted domain (DANE and DNSSEC disabled first, in the same transaction) and
    /// every claim on it.
    Remove { domain: String },
    /// Enable DNSSEC and DANE for every domain of FILE (one per line), batch by batch. Run it
    /// again after an interruption: what is done is skipped.
    Import {
        file: PathBuf,
        /// Add domains that are not accepted yet, verified, to this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Enable DNSSEC only (leave DANE as it is).
        #[arg(long)]
        no_dane: bool,
        /// Domains per transaction at most (a transaction also ends after about 50 ms of work,
        /// so that API calls get in between).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// A transaction takes no more domains after this much work (ms).
        #[arg(long, default_value_t = 50)]
        max_hold_ms: u64,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make a token for a tenant (`--tenant ID`) or an admin token (`--admin`); printed once.
    Add {
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        tenant: Option<String>,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (ids, owners, when made and revoked; never the tokens themselves).
    List {
        /// One tenant's tokens, or `admin`.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a token by its id: refused from the next request on, also by a running server.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum DnssecCmd {
    Enable { domain: String },
    Disable { domain: String },
    Status { domain: String },
}

#[derive(Subcommand)]
pub enum DaneCmd {
    Enable { domain: String },
    Disable { domain: String },
}

#[derive(Subcommand)]
pub enum PartitionCmd {
    /// Set the fleet certificates of a partition from PEM files.
    Certificates {
        partition: String,
        #[arg(long)]
        current: PathBuf,
        #[arg(long)]
        next: Option<PathBuf>,
        #[arg(long = "issuer")]
        issuers: Vec<PathBuf>,
    },
    /// The certificate lifecycle: state, TLSA records, when a promotion becomes possible,
    /// expiry warnings.
    Lifecycle { partition: String },
    /// Stage the next certificate (PEM file): its TLSA (3 1 1) is published beside the
    /// current one.
    Stage {
        partition: String,
        #[arg(long)]
        cert: PathBuf,
    },
    /// Promote the next certificate to current (after its TLSA has been published for TLSA
    /// TTL + `[dane] propagation_delay`; switch the endpoints to it after this).
    Promote {
        partition: String,
        /// Promote before the wait is over (senders may still miss its TLSA record).
        #[arg(long)]
        force: bool,
    },
    /// Retire the previous certificate (its TLSA removed), once no configured endpoint
    /// presents it.
    Retire {
        partition: String,
        /// Retire even though an endpoint still presents it (or could not be probed).
        #[arg(long)]
        force: bool,
    },
    /// Set the inbound addresses of a partition.
    Addresses {
        partition: String,
        #[arg(required = true)]
        addresses: Vec<std::net::IpAddr>,
    },
}

#[derive(Subcommand)]
pub enum HostCmd {
    /// Publish A/AAAA at NAME and TLSA at _25._tcp.NAME (replacing what was there).
    Add {
        name: String,
        #[arg(long = "a")]
        a: Vec<std::net::Ipv4Addr>,
        #[arg(long = "aaaa")]
        aaaa: Vec<std::net::Ipv6Addr>,
        /// TLSA record data, e.g. "3 1 1 <sha256 hex>" (repeatable).
        #[arg(long = "tlsa")]
        tlsa: Vec<String>,
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Remove NAME and its TLSA name.
    Remove { name: String },
    /// Add COUNT synthetic hosts t1..tCOUNT (the benchmark zone of shared/bench/gen-zone.py).
    BulkAdd {
        /// Zone to add them to (default: the first partition).
        #[arg(long = "in-zone")]
        in_zone: Option<String>,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
}

/// The served zone that holds `name` (deepest match).
pub fn zone_for(config: &Config, name: &Name) -> anyhow::Result<Name> {
    let mut zones = config.partition_names()?;
    zones.push(config.zone_name()?);
    zones
        .into_iter()
        .filter(|z| z.zone_of(name) && z != name)
        .max_by_key(|z| z.num_labels())
        .with_context(|| format!("{name} is not below a zone of this server"))
}

/// A host or zone name from the command line: absolute, lower case.
pub fn parse_name(s: &str) -> anyhow::Result<Name> {
    let mut n = Name::from_ascii(s).with_context(|| format!("bad name {s}"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}
