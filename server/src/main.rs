//! `mxdns`: the daemon (`serve`) and the operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, TLSA};
use hickory_proto::rr::{Name, RData, RecordType};
use provisioner::service::tlsa_owner;
use provisioner::{Batch, BatchOp, Store};

mod checkpoint;
mod config;
mod dns;
mod http;
mod lifecycle;
mod udp;
mod zonemgr;

use config::Config;
use zonemgr::{Clock, SystemClock, ZoneManager};

#[derive(Parser)]
#[command(
    name = "mxdns",
    version,
    about = "Signed authoritative DNS and provisioning for inbound SMTP DANE"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// TOML configuration file (flags and MXDNS_* variables override it).
    #[arg(long, global = true, env = "MXDNS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: SQLite database and key files.
    #[arg(long, global = true, env = "MXDNS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The service zone (default mx.example.).
    #[arg(long = "service-zone", global = true, env = "MXDNS_SERVICE_ZONE")]
    zone: Option<String>,
    /// Partition label (repeatable; default o-v1).
    #[arg(
        long = "partition",
        global = true,
        env = "MXDNS_PARTITIONS",
        value_delimiter = ','
    )]
    partitions: Vec<String>,
    /// DNSSEC algorithm for new keys: 13 (ECDSA P-256) or 15 (Ed25519).
    #[arg(long, global = true, env = "MXDNS_ALGORITHM")]
    algorithm: Option<u8>,
}

#[derive(Subcommand)]
enum Command {
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
    /// Add or remove tenant hosts directly in the store (tests, benchmarks, operators).
    Host {
        #[command(subcommand)]
        cmd: HostCmd,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// DNS listen address, UDP and TCP (repeatable; IPv6 as [::1]:5300).
    #[arg(long = "dns-listen", env = "MXDNS_DNS_LISTEN", value_delimiter = ',')]
    dns_listen: Vec<SocketAddr>,
    /// HTTP API listen address.
    #[arg(long, env = "MXDNS_API_LISTEN")]
    api_listen: Option<SocketAddr>,
    /// Worker threads (0: one per core).
    #[arg(long, env = "MXDNS_WORKERS")]
    workers: Option<usize>,
}

#[derive(Subcommand)]
enum KeysCmd {
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
struct RollArgs {
    /// Carry out every due step of every zone.
    #[arg(long, conflicts_with_all = ["for_zone", "zsk", "ksk", "now"])]
    check: bool,
    /// The zone of an unscheduled rollover.
    #[arg(long = "zone", requires = "now")]
    for_zone: Option<String>,
    #[arg(long, conflicts_with = "ksk")]
    zsk: bool,
    #[arg(long)]
    ksk: bool,
    /// Start the rollover now (the waiting times that keep validation working still apply).
    #[arg(long, requires = "for_zone")]
    now: bool,
}

#[derive(Subcommand)]
enum TenantCmd {
    Add { name: String },
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Add an accepted domain to a tenant.
    Add {
        #[arg(long)]
        tenant: String,
        domain: String,
        /// Add it as not (yet) verified.
        #[arg(long)]
        unverified: bool,
    },
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
        /// Domains per transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum DnssecCmd {
    Enable { domain: String },
    Disable { domain: String },
    Status { domain: String },
}

#[derive(Subcommand)]
enum DaneCmd {
    Enable { domain: String },
    Disable { domain: String },
}

#[derive(Subcommand)]
enum PartitionCmd {
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
    /// Set the inbound addresses of a partition.
    Addresses {
        partition: String,
        #[arg(required = true)]
        addresses: Vec<std::net::IpAddr>,
    },
}

#[derive(Subcommand)]
enum HostCmd {
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
    if let Some(a) = common.algorithm {
        c.algorithm = a;
    }
    c.validate()?;
    Ok(c)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MXDNS_LOG")
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = load_config(&cli.common)?;
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
            serve(config)
        }
        Command::Keys { cmd } => keys_cmd(config, cmd),
        Command::Host { cmd } => host_cmd(config, cmd),
        Command::Tenant { cmd } => provision_cmd(config, Provision::Tenant(cmd)),
        Command::Domain { cmd } => provision_cmd(config, Provision::Domain(cmd)),
        Command::Dnssec { cmd } => provision_cmd(config, Provision::Dnssec(cmd)),
        Command::Dane { cmd } => provision_cmd(config, Provision::Dane(cmd)),
        Command::Partition { cmd } => provision_cmd(config, Provision::Partition(cmd)),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if config.workers > 0 {
        rt.worker_threads(config.workers);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let cfg = config.clone();
        let mgr = tokio::task::spawn_blocking(move || ZoneManager::open(cfg, clock)).await??;
        let mgr = Arc::new(mgr);
        let handler = dns::DnsHandler {
            mgr: mgr.clone(),
            axfr_allow: config.axfr_networks()?,
            udp_max_payload: config.udp_max_payload,
        };
        let handler = Arc::new(handler);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut server = hickory_server::Server::new((*handler).clone());
        let mut udp_tasks = Vec::new();
        let sockets_per_addr = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for addr in &config.dns_listen {
            for sock in
                udp::bind(*addr, sockets_per_addr).with_context(|| format!("binding UDP {addr}"))?
            {
                udp_tasks.push(tokio::spawn(udp::serve(
                    sock,
                    handler.clone(),
                    stop_rx.clone(),
                )));
            }
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding TCP {addr}"))?;
            server.register_listener(tcp, Duration::from_secs(config.tcp_timeout), 64);
            tracing::info!(%addr, "DNS listening (UDP, TCP)");
        }
        let api = tokio::net::TcpListener::bind(config.api_listen)
            .await
            .with_context(|| format!("binding HTTP {}", config.api_listen))?;
        tracing::info!(addr = %config.api_listen, "HTTP API listening");
        let settings = config.provisioner_settings()?;
        let (db, dir) = (zonemgr::db_path(&config.data_dir), config.data_dir.clone());
        let prov = tokio::task::spawn_blocking(move || {
            provisioner::service::Provisioner::open(&db, &dir, settings)
        })
        .await??;
        let app = http::App {
            mgr: mgr.clone(),
            prov: Arc::new(prov),
            checks: config.check_settings(),
        };
        let http = tokio::spawn(http::serve(api, app, stop_rx.clone()));
        let follower = tokio::spawn(follow(mgr.clone(), stop_rx.clone()));
        let refresher = tokio::spawn(refresh(mgr.clone(), stop_rx.clone()));
        let roller = tokio::spawn(roll(mgr.clone(), stop_rx.clone()));
        let checkpointer = tokio::spawn(checkpoints(mgr.clone(), stop_rx));

        shutdown_signal().await;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
        let _ = server.shutdown_gracefully().await;
        let _ = tokio::join!(http, follower, refresher, roller, checkpointer);
        for t in udp_tasks {
            let _ = t.await;
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs `work` off the async threads every `period` until `stop` changes; logs what it did.
async fn periodically(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    what: &'static str,
    work: impl Fn() -> anyhow::Result<usize> + Clone + Send + 'static,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        match tokio::task::spawn_blocking(work.clone()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(count = n, "{what}"),
            Ok(Err(e)) => tracing::error!(error = %e, "{what} failed"),
            Err(e) => tracing::error!(error = %e, "{what} panicked"),
        }
    }
}

/// Follows the store's change log (writes from other processes).
async fn follow(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_millis(mgr.config().follow_interval_ms.max(10));
    periodically(period, stop, "applied stored changes", move || mgr.sync()).await
}

/// Writes the checkpoint right away (after a full build), then every `checkpoint_interval`
/// when the zones changed, and once more when the server stops.
async fn checkpoints(mgr: Arc<ZoneManager>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = mgr.config().checkpoint_interval;
    if every == 0 {
        return;
    }
    let write = |mgr: Arc<ZoneManager>| async move {
        match tokio::task::spawn_blocking(move || mgr.write_checkpoint(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing the checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "writing the checkpoint panicked"),
        }
    };
    loop {
        write(mgr.clone()).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = stop.changed() => break,
        }
    }
    write(mgr).await;
}

/// Refreshes signatures that approach expiry.
async fn refresh(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_secs(mgr.config().signatures.check_interval.max(1));
    periodically(period, stop, "refreshed signatures", move || {
        mgr.refresh_signatures()
    })
    .await
}

/// The server's own rollover scheduler: every `keys.check_interval` it carries out the due
/// steps (as `mxdns keys roll --check` does) and serves the result.
async fn roll(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let every = mgr.config().keys.check_interval;
    if every == 0 {
        tracing::info!("key rollover scheduler off (keys.check_interval = 0): run `mxdns keys roll --check` from cron");
        return;
    }
    let config = mgr.config().clone();
    periodically(
        Duration::from_secs(every),
        stop,
        "key rollover steps",
        move || {
            let mut store = Store::open(&zonemgr::db_path(&config.data_dir))?;
            let done = lifecycle::check_all(&config, &mut store, SystemClock.now() as u64)?;
            if !done.is_empty() {
                mgr.sync()?;
            }
            Ok(done.len())
        },
    )
    .await
}

fn keys_cmd(config: Config, cmd: KeysCmd) -> anyhow::Result<()> {
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
                lifecycle::check_all(&config, &mut store, now)?
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
                match lifecycle::roll_zone(
                    &config,
                    &mut store,
                    &zone,
                    now,
                    Some(lifecycle::Request::Roll(role)),
                ) {
                    Ok(d) => d,
                    Err(e) => return refused(e),
                }
            };
            print_done(&done);
        }
        KeysCmd::DsSeen { for_zone } => {
            let zone = parse_name(&for_zone)?;
            match lifecycle::roll_zone(
                &config,
                &mut store,
                &zone,
                now,
                Some(lifecycle::Request::DsSeen),
            ) {
                Ok(d) => print_done(&d),
                Err(e) => return refused(e),
            }
        }
    }
    Ok(())
}

enum Provision {
    Tenant(TenantCmd),
    Domain(DomainCmd),
    Dnssec(DnssecCmd),
    Dane(DaneCmd),
    Partition(PartitionCmd),
}

/// The provisioning commands: the same use cases and the same JSON as the HTTP API, acting as
/// the operator. A running server serves the result within `follow_interval_ms`.
fn provision_cmd(config: Config, cmd: Provision) -> anyhow::Result<()> {
    use provisioner::service::{Caller, Provisioner};
    use serde_json::json;
    zonemgr::init_data(&config, SystemClock.now())?;
    let prov = Provisioner::open(
        &zonemgr::db_path(&config.data_dir),
        &config.data_dir,
        config.provisioner_settings()?,
    )?;
    let admin = Caller::Admin;
    let ok = json!({"result": "Success", "errorData": null});
    let result = match cmd {
        Provision::Tenant(TenantCmd::Add { name }) => prov
            .create_tenant(&admin, &name)
            .map(|(id, token)| json!({"tenantId": id, "token": token})),
        Provision::Domain(DomainCmd::Import {
            file,
            tenant,
            no_dane,
            batch,
        }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let t0 = std::time::Instant::now();
            provisioner::service::parse_import(&text).and_then(|domains| {
                let opts = provisioner::service::ImportOptions {
                    tenant,
                    dane: !no_dane,
                    batch,
                };
                let mut bar = Progress::new(t0);
                let r = prov.import(&admin, &domains, &opts, &mut |done, total| {
                    bar.show(done, total)
                });
                bar.end();
                r.map(|r| json!({"result": "Success", "import": r, "seconds": t0.elapsed().as_secs_f64(), "errorData": null}))
            })
        }
        Provision::Domain(DomainCmd::Add {
            tenant,
            domain,
            unverified,
        }) => prov
            .add_domain(&admin, &tenant, &domain, !unverified)
            .map(|s| json!(s)),
        Provision::Dnssec(DnssecCmd::Enable { domain }) => prov
            .enable_dnssec(&admin, &domain)
            .map(|v| json!({"result": "Success", "dnssecMxValue": v, "errorData": null})),
        Provision::Dnssec(DnssecCmd::Disable { domain }) => {
            prov.disable_dnssec(&admin, &domain).map(|_| ok)
        }
        Provision::Dnssec(DnssecCmd::Status { domain }) => prov.state(&admin, &domain).map(|s| {
            let zone = config.zone_name().map(|z| z.to_ascii()).unwrap_or_default();
            let findings = provisioner::checks::check_domain(
                &config.check_settings(),
                &s.domain,
                s.dnssec_mx_value.as_deref(),
                &zone,
            );
            json!({"result": "Success", "status": s, "findings": findings, "errorData": null})
        }),
        Provision::Dane(DaneCmd::Enable { domain }) => {
            prov.set_dane(&admin, &domain, true).map(|_| ok)
        }
        Provision::Dane(DaneCmd::Disable { domain }) => {
            prov.set_dane(&admin, &domain, false).map(|_| ok)
        }
        Provision::Partition(PartitionCmd::Certificates {
            partition,
            current,
            next,
            issuers,
        }) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let current = read(&current)?;
            let next = next.as_ref().map(read).transpose()?;
            let issuers = issuers
                .iter()
                .map(read)
                .collect::<anyhow::Result<Vec<_>>>()?;
            prov.set_certificates(&admin, &partition, &current, next.as_deref(), &issuers)
                .map(|t| json!({"result": "Success", "tlsa": t, "errorData": null}))
        }
        Provision::Partition(PartitionCmd::Addresses {
            partition,
            addresses,
        }) => prov
            .set_partition(&admin, &partition, &addresses, None)
            .map(|p| json!({"partition": p.name, "addresses": p.addresses, "hostTtl": p.host_ttl})),
    };
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Err(e) => {
            let v = json!({"result": "Error", "errorData": {"errorCode": e.code, "errorDetails": e.details}});
            println!("{}", serde_json::to_string_pretty(&v)?);
            std::process::exit(2);
        }
    }
}

/// A progress bar on stderr when it is a terminal; a line per update otherwise (logs).
struct Progress {
    t0: std::time::Instant,
    tty: bool,
    shown: bool,
}

impl Progress {
    fn new(t0: std::time::Instant) -> Self {
        Self {
            t0,
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            shown: false,
        }
    }

    fn show(&mut self, done: usize, total: usize) {
        let secs = self.t0.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-3);
        let eta = (total - done) as f64 / rate.max(1e-3);
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if self.tty {
            let filled = pct * 30 / 100;
            eprint!(
                "\r[{}{}] {pct:>3}% {done}/{total} domains, {rate:.0}/s, {eta:.0} s left ",
                "#".repeat(filled),
                " ".repeat(30 - filled)
            );
            self.shown = true;
        } else {
            eprintln!("import: {done}/{total} domains ({pct}%), {rate:.0}/s");
        }
    }

    fn end(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// The served zone that holds `name` (deepest match).
fn zone_for(config: &Config, name: &Name) -> anyhow::Result<Name> {
    let mut zones = config.partition_names()?;
    zones.push(config.zone_name()?);
    zones
        .into_iter()
        .filter(|z| z.zone_of(name) && z != name)
        .max_by_key(|z| z.num_labels())
        .with_context(|| format!("{name} is not below a zone of this server"))
}

/// A host or zone name from the command line: absolute, lower case.
fn parse_name(s: &str) -> anyhow::Result<Name> {
    let mut n = Name::from_ascii(s).with_context(|| format!("bad name {s}"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

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

fn host_cmd(config: Config, cmd: HostCmd) -> anyhow::Result<()> {
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
            store.write(&Batch { ops }, now)?;
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
            store.write(&Batch { ops }, now)?;
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
                store.write(&Batch { ops }, now)?;
            }
            println!(
                "{count} hosts added to {zone} in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
