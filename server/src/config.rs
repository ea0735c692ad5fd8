//! Configuration: embedded defaults, then a TOML file, then environment variables and flags
//! (clap merges the last two). Every field has a default, so `mxdns serve` needs nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context};
use hickory_proto::rr::Name;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database and the key files live.
    pub data_dir: PathBuf,
    /// DNS listen addresses (UDP and TCP on each).
    pub dns_listen: Vec<SocketAddr>,
    /// HTTP API listen address.
    pub api_listen: SocketAddr,
    /// The service zone.
    pub zone: String,
    /// Partition labels; each is a zone `<label>.<zone>` delegated from the service zone.
    pub partitions: Vec<String>,
    /// DNSSEC algorithm number: 13 (ECDSA P-256, default) or 15 (Ed25519).
    pub algorithm: u8,
    /// Addresses of the name servers `ns1`/`ns2` of every zone (A/AAAA and glue).
    pub ns_addresses: Vec<IpAddr>,
    /// Networks allowed to transfer zones (AXFR/IXFR), as CIDR.
    pub axfr_allow: Vec<String>,
    /// Largest UDP answer we send (RFC 9715 / DNS flag day 2020: 1232).
    pub udp_max_payload: u16,
    /// A TCP connection with no new query for this long is closed (seconds); a write that
    /// makes no progress for this long closes it too. (`tcp_timeout` is the old name.)
    #[serde(alias = "tcp_timeout")]
    pub tcp_idle_timeout: u64,
    /// Open TCP connections, in all: more are closed as soon as they are accepted.
    pub tcp_max_connections: usize,
    /// Open TCP connections from one source address: more are closed at once.
    pub tcp_max_per_source: usize,
    /// Zone transfers (AXFR, IXFR) running at once; more are refused (REFUSED) and retried by
    /// the secondary.
    pub xfr_max_concurrent: usize,
    /// The standard secondaries this server is the primary of (`[[secondaries]]`).
    pub secondaries: Vec<SecondaryConfig>,
    /// The IXFR journal (`[ixfr]`).
    pub ixfr: IxfrConfig,
    /// SOA timers of every zone (`[soa]`; MINIMUM is `ttl.negative`).
    pub soa: SoaTimers,
    /// Threads of the DNS runtime (UDP loops, TCP), and UDP sockets per address (0: one per
    /// core).
    pub workers: usize,
    /// Async threads of the control plane's runtime (HTTP API, follower, refresher, rollover
    /// scheduler, checkpoints, health); the store and signing work runs on its blocking pool.
    pub control_workers: usize,
    /// Niceness added to every thread of the control plane (its async and blocking threads and
    /// the signing threads they start), so that signing and imports yield the CPU to DNS
    /// (0: no change, the default; Linux only). Measured in bench/ISOLATION.md: no gain for
    /// DNS at 20 000 and 60 000 QPS on two cores, but API calls then lose to any other
    /// process of the machine.
    pub control_nice: i32,
    /// When `GET /v1/health` answers 503.
    pub health: HealthConfig,
    pub ttl: Ttls,
    pub signatures: Signatures,
    /// Key lifecycle: rollover timing, the scheduler, key file retention.
    pub keys: KeysConfig,
    /// How often the server looks for changes written by other processes (ms).
    pub follow_interval_ms: u64,
    /// How often the server writes the signed zones to `<data_dir>/zones.checkpoint` when they
    /// changed (seconds; also after a full build and at shutdown; 0: never). A start reads it
    /// back instead of signing everything again.
    pub checkpoint_interval: u64,
    /// Inbound addresses of every partition's MX hosts (A/AAAA), unless `inbound` names the
    /// partition. Seeds the database; the admin API changes them after.
    pub inbound_addresses: Vec<IpAddr>,
    /// Per-partition inbound addresses, e.g. `[inbound] o-v2 = ["192.0.2.26"]`.
    pub inbound: std::collections::BTreeMap<String, Vec<IpAddr>>,
    /// TTL of tenant MX host records (A, AAAA, TLSA).
    pub host_ttl: u32,
    /// Tenants' initial domains end with this suffix and are refused (DomainNotSupported).
    pub initial_domain_suffix: Option<String>,
    /// How long an API write waits for another writer before DnssecOperationFailed (ms).
    pub store_busy_timeout_ms: u64,
    /// The validating resolver the status checks ask about a domain's MX records.
    pub status_resolver: SocketAddr,
    /// Extra trusted roots (PEM) for MTA-STS policy servers (system roots are used too).
    pub status_ca_file: Option<PathBuf>,
    /// Port of MTA-STS policy servers (443; tests use another).
    pub mta_sts_port: u16,
    /// Timeout of each status check query (ms).
    pub status_timeout_ms: u64,
    /// Special-purpose addresses (loopback, private, link-local, ...: CIDR) that the status
    /// checks may connect to all the same; none by default.
    pub status_allow_addresses: Vec<String>,
    /// The HTTP API's limits (`[api]`).
    pub api: ApiConfig,
    /// Unverified domain claims one tenant may hold at once.
    pub max_claims_per_tenant: usize,
    /// Prometheus metrics (`[metrics]`).
    pub metrics: MetricsConfig,
    /// Log filter, e.g. "info" or "info,mxdns=debug" (tracing's EnvFilter syntax; `MXDNS_LOG`
    /// wins). SIGHUP applies a new value. Default "info,hickory_server=warn".
    pub log_level: Option<String>,
    /// "text" (default) or "json" (one JSON object per line).
    pub log_format: LogFormat,
    /// The DANE validation test (`[dane]`): `mxdns check dane`, `GET /v1/domains/{d}/dane-check`.
    pub dane: DaneConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[metrics]`: where Prometheus scrapes. `GET /metrics` on the API needs the admin token;
/// `listen` adds an address that serves `/metrics` alone with no token (bind it to loopback
/// or a monitoring network), so that the scraper never holds an admin token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

/// `[dane]`: how the DANE validation test connects. DNS goes through `status_resolver`; the
/// API connects only to addresses `status_allow_addresses` allows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DaneConfig {
    /// SMTP port connected to. Default 25 (TLSA is always looked up at `_25._tcp`).
    pub smtp_port: u16,
    /// Timeout of each DNS query and each SMTP step (ms). Default 5000.
    pub timeout_ms: u64,
    /// The EHLO name. Default `dane-check.<zone>`.
    pub helo_name: Option<String>,
    /// Certificate lifecycle: seconds for a TLSA change to reach every name server, added to
    /// the TLSA TTL before a staged certificate may be promoted. Default 300.
    pub propagation_delay: u64,
    /// Warn when a partition's current certificate expires within this many days and no
    /// next one is staged. Default 30.
    pub expiry_warning_days: u32,
    /// The SMTP endpoints that serve each partition (`[dane.endpoints] o-v1 =
    /// ["192.0.2.25:25"]`): what retiring a certificate checks no longer presents it.
    pub endpoints: std::collections::BTreeMap<String, Vec<SocketAddr>>,
    /// How often the server probes those endpoints (seconds; 0: never). Default 300.
    pub probe_interval: u64,
}

impl Default for DaneConfig {
    fn default() -> Self {
        Self {
            smtp_port: 25,
            timeout_ms: 5_000,
            helo_name: None,
            propagation_delay: 300,
            expiry_warning_days: 30,
            endpoints: Default::default(),
            probe_interval: 300,
        }
    }
}

/// Thresholds of `GET /v1/health` (seconds unless said otherwise).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// One hold of the zone manager longer than this: stuck. Default 30 (steps are sized to
    /// take well under a second).
    pub zone_manager_stuck: u64,
    /// The follower more than this many change-log entries behind the store. Default
    /// 5 000 000 (a million-domain import is 3 M entries and is caught up in minutes).
    pub follower_max_entries: u64,
    /// The oldest change not yet served older than this. Default 300.
    pub follower_max_age: u64,
    /// The earliest RRSIG expiration of a zone closer than this. Default: half of the zone's
    /// `signatures.refresh` (3.5 days with the defaults): the refresher keeps every expiry at
    /// least `refresh` ahead, so this fires once it has failed for that long, with that long
    /// left to repair it.
    pub signature_margin: Option<u32>,
    /// A key rollover step due for longer than this. Default 3600 (the scheduler runs every
    /// `keys.check_interval`, cron every minute).
    pub key_step_overdue: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            zone_manager_stuck: 30,
            follower_max_entries: 5_000_000,
            follower_max_age: 300,
            signature_margin: None,
            key_step_overdue: 3600,
        }
    }
}

/// Limits of the HTTP API (`[api]`). Rates are requests per second; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Connections served at once; more wait in the listen queue. Default 256.
    pub max_connections: usize,
    /// The request line and headers must arrive within this (seconds), also between requests
    /// on a kept-alive connection. Default 10.
    pub header_timeout: u64,
    /// A whole request, from its headers to the answer (seconds), on every route but the bulk
    /// import. Default 60.
    pub request_timeout: u64,
    /// The same for `POST /v1/import` (seconds). Default 3600.
    pub import_timeout: u64,
    /// Largest request body (bytes) on routes without their own limit. Default 64 KiB.
    pub body_limit: usize,
    /// Largest body of `PUT /v1/partitions/{p}/certificates` (PEM chains). Default 256 KiB.
    pub certificates_body_limit: usize,
    /// Largest body of `POST /v1/import`, read only after the admin token was checked.
    /// Default 64 MiB (about a million domain names).
    pub import_body_limit: usize,
    /// Sustained requests per second of one tenant (all its tokens together). Default 10.
    pub tenant_rate: f64,
    /// Requests a tenant may make at once above its rate. Default 100.
    pub tenant_burst: f64,
    /// The same for the admin tokens together. Default 0 (unlimited).
    pub admin_rate: f64,
    pub admin_burst: f64,
    /// Failed authentications per second of one source address (IPv6: its /64). Default 1.
    pub auth_failure_rate: f64,
    /// Failed authentications one source address may make at once. Default 20.
    pub auth_failure_burst: f64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: 10,
            request_timeout: 60,
            import_timeout: 3600,
            body_limit: 64 * 1024,
            certificates_body_limit: 256 * 1024,
            import_body_limit: 64 * 1024 * 1024,
            tenant_rate: 10.0,
            tenant_burst: 100.0,
            admin_rate: 0.0,
            admin_burst: 1000.0,
            auth_failure_rate: 1.0,
            auth_failure_burst: 20.0,
        }
    }
}

/// One standard secondary (NSD, Knot, BIND) fed by zone transfers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// A name for logs and `mxdns secondary config`.
    pub name: String,
    /// Where NOTIFY goes (`IP:PORT`, or `IP` for port 53).
    pub address: String,
    /// Who may transfer with this secondary's key (CIDR); default: the address's IP.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Its TSIG key, made by `mxdns tsig new NAME` (`<data-dir>/tsig/NAME.key`).
    pub tsig: String,
}

/// Bounds of the IXFR journal.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IxfrConfig {
    /// Estimated bytes of history kept per zone. Default 128 MiB.
    pub max_bytes: usize,
    /// A snapshot is kept this long after it stopped being current (seconds). Default 1 day.
    pub max_age: u32,
}

impl Default for IxfrConfig {
    fn default() -> Self {
        Self {
            max_bytes: 128 << 20,
            max_age: 86400,
        }
    }
}

/// SOA REFRESH, RETRY and EXPIRE (seconds; RFC 1035 3.3.13).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SoaTimers {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
}

impl Default for SoaTimers {
    fn default() -> Self {
        Self {
            refresh: 3600,
            retry: 600,
            expire: 5 * 86400,
        }
    }
}

/// What EXPIRE must leave free below the signature refresh window besides the refresher's
/// `check_interval` (seconds): the time to sign again in chunks (minutes at a million hosts)
/// and to transfer, and validators' clocks running ahead.
pub const EXPIRE_MARGIN: u32 = 3600;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ttls {
    pub soa: u32,
    /// SOA MINIMUM: the negative caching TTL (RFC 2308); NSEC TTL = min(soa, negative).
    pub negative: u32,
    pub ns: u32,
    pub dnskey: u32,
    pub ds: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Signatures {
    /// Validity of a fresh RRSIG (seconds). Default 14 days.
    pub validity: u32,
    /// Inception backdating (seconds). Default 1 hour, for validators with slow clocks.
    pub inception_offset: u32,
    /// Up to this much is taken off each RRSIG's validity (seconds), spreading expiries.
    pub jitter: u32,
    /// RRSIGs expiring within this (seconds) are refreshed. Default 7 days.
    pub refresh: u32,
    /// How often the refresher looks (seconds).
    pub check_interval: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("mxdns-data"),
            dns_listen: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            zone: "mx.example.".into(),
            partitions: vec!["o-v1".into()],
            algorithm: 13,
            ns_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            axfr_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            udp_max_payload: 1232,
            workers: 0,
            control_workers: 2,
            control_nice: 0,
            health: HealthConfig::default(),
            tcp_idle_timeout: 10,
            tcp_max_connections: 512,
            tcp_max_per_source: 32,
            xfr_max_concurrent: 8,
            secondaries: Vec::new(),
            ixfr: IxfrConfig::default(),
            soa: SoaTimers::default(),
            ttl: Ttls::default(),
            signatures: Signatures::default(),
            keys: KeysConfig::default(),
            follow_interval_ms: 200,
            checkpoint_interval: 300,
            inbound_addresses: vec![
                IpAddr::from([192, 0, 2, 25]),
                "2001:db8::25".parse().expect("address"),
            ],
            inbound: Default::default(),
            host_ttl: 300,
            initial_domain_suffix: Some("onmxdns.example".into()),
            store_busy_timeout_ms: 5000,
            status_resolver: SocketAddr::from(([127, 0, 0, 1], 53)),
            status_ca_file: None,
            mta_sts_port: 443,
            status_timeout_ms: 3000,
            status_allow_addresses: Vec::new(),
            api: ApiConfig::default(),
            max_claims_per_tenant: 1000,
            metrics: MetricsConfig::default(),
            log_level: None,
            log_format: LogFormat::Text,
            dane: DaneConfig::default(),
        }
    }
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            soa: 3600,
            negative: 300,
            ns: 3600,
            dnskey: 3600,
            ds: 3600,
        }
    }
}

impl Default for Signatures {
    fn default() -> Self {
        let d = keys::SignaturePolicy::default();
        Self {
            validity: d.validity,
            inception_offset: d.inception_offset,
            jitter: d.jitter,
            refresh: d.refresh,
            check_interval: 60,
        }
    }
}

impl Signatures {
    pub fn policy(&self) -> keys::SignaturePolicy {
        keys::SignaturePolicy {
            validity: self.validity,
            inception_offset: self.inception_offset,
            jitter: self.jitter,
            refresh: self.refresh,
        }
    }
}

/// Rollover timing (seconds; RFC 7583's names in brackets). The TTLs of the formulas are not
/// set here: they are read from the zone (`ttl.*`, the largest stored TTL), so they cannot
/// disagree with what is served.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// ZSK lifetime. Default 30 days: bounds what a leaked ZSK can sign; a ZSK roll needs no
    /// one outside.
    pub zsk_lifetime: u64,
    /// KSK lifetime. Default 365 days: a KSK roll of the apex needs the parent (registrar).
    pub ksk_lifetime: u64,
    /// [Dprp] time for a change to reach every server of the zone. Default 300 s.
    pub propagation_delay: u64,
    /// Added before a new key is used. Default 3600 s (clock skew, caches that stretch TTLs).
    pub publish_safety: u64,
    /// Added before an old key is removed. Default 3600 s.
    pub retire_safety: u64,
    /// [TTLds] TTL of the DS RRset at the parent. Partitions: ignored (our `ttl.ds`). Apex:
    /// default 86400 s, the TTL most TLDs use.
    pub parent_ds_ttl: u64,
    /// [DprpP] time for the parent's change to reach its servers. Partitions: ignored (our
    /// `propagation_delay`). Apex: default 3600 s.
    pub parent_propagation_delay: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            zsk_lifetime: 30 * 86400,
            ksk_lifetime: 365 * 86400,
            propagation_delay: 300,
            publish_safety: 3600,
            retire_safety: 3600,
            parent_ds_ttl: 86400,
            parent_propagation_delay: 3600,
        }
    }
}

/// Per-zone overrides of [`Timing`], of the algorithm of the zone's first keys and of the
/// signature validity and refresh (`[keys.zone."o-v1.mx.example."]`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimingOverride {
    pub algorithm: Option<u8>,
    pub signature_validity: Option<u32>,
    pub signature_refresh: Option<u32>,
    pub zsk_lifetime: Option<u64>,
    pub ksk_lifetime: Option<u64>,
    pub propagation_delay: Option<u64>,
    pub publish_safety: Option<u64>,
    pub retire_safety: Option<u64>,
    pub parent_ds_ttl: Option<u64>,
    pub parent_propagation_delay: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Rollover timing of every zone (`[keys.timing]`).
    pub timing: Timing,
    /// Overrides per zone (absolute name with the final dot).
    pub zone: std::collections::BTreeMap<String, TimingOverride>,
    /// How often the server runs the rollover steps that are due (seconds; 0: never, leave it
    /// to `mxdns keys roll --check` from cron). Default 60.
    pub check_interval: u64,
    /// Removed keys stay in the store, their files are deleted this long after removal
    /// (seconds). Default 30 days.
    pub retention: u64,
    /// Servers of the apex's parent (`host:port`). When every one of them serves the DS of
    /// the apex's incoming KSK, the rollover goes on without the operator's `keys ds-seen`.
    pub parent_servers: Vec<SocketAddr>,
    /// With `[[secondaries]]`: a key step that has waited this long for a secondary to serve
    /// it (seconds) is an error (logged at every check, `/v1/health` 503 naming the secondary);
    /// the roll still waits. Default 3600.
    pub fleet_wait_alarm: u64,
    /// How long the fleet check waits for each secondary's SOA answer (ms). Default 3000.
    pub fleet_timeout_ms: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            timing: Timing::default(),
            zone: Default::default(),
            check_interval: 60,
            retention: 30 * 86400,
            parent_servers: Vec::new(),
            fleet_wait_alarm: 3600,
            fleet_timeout_ms: 3000,
        }
    }
}

impl Config {
    /// The rollover policy of `zone`: timing (with its overrides) and the TTLs of the zone and
    /// its parent. `max_stored_ttl` is the largest TTL of the zone's stored records.
    pub fn key_policy(&self, zone: &Name, max_stored_ttl: u32) -> keys::rollover::Policy {
        let o = self.zone_override(zone);
        let t = &self.keys.timing;
        let ttl = &self.ttl;
        let zone_ttls = [
            ttl.soa,
            ttl.negative,
            ttl.ns,
            ttl.dnskey,
            ttl.ds,
            self.host_ttl,
        ];
        let max_zone_ttl = zone_ttls.into_iter().max().unwrap_or(0).max(max_stored_ttl);
        let propagation_delay = o.propagation_delay.unwrap_or(t.propagation_delay);
        let ours = self.zone_name().map(|apex| apex != *zone).unwrap_or(false);
        keys::rollover::Policy {
            zsk_lifetime: o.zsk_lifetime.unwrap_or(t.zsk_lifetime),
            ksk_lifetime: o.ksk_lifetime.unwrap_or(t.ksk_lifetime),
            propagation_delay,
            dnskey_ttl: ttl.dnskey as u64,
            max_zone_ttl: max_zone_ttl as u64,
            parent_ds_ttl: if ours {
                ttl.ds as u64
            } else {
                o.parent_ds_ttl.unwrap_or(t.parent_ds_ttl)
            },
            parent_propagation_delay: if ours {
                propagation_delay
            } else {
                o.parent_propagation_delay
                    .unwrap_or(t.parent_propagation_delay)
            },
            publish_safety: o.publish_safety.unwrap_or(t.publish_safety),
            retire_safety: o.retire_safety.unwrap_or(t.retire_safety),
            fleet: !self.secondaries.is_empty(),
        }
    }

    fn zone_override(&self, zone: &Name) -> TimingOverride {
        self.keys
            .zone
            .iter()
            .find(|(k, _)| {
                Name::from_ascii(k).is_ok_and(|n| n.to_lowercase() == *zone)
                    || Name::from_ascii(format!("{k}.")).is_ok_and(|n| n.to_lowercase() == *zone)
            })
            .map(|(_, o)| *o)
            .unwrap_or_default()
    }

    /// The algorithm of a zone's first keys (later keys keep the zone's algorithm).
    pub fn zone_algorithm(&self, zone: &Name) -> u8 {
        self.zone_override(zone).algorithm.unwrap_or(self.algorithm)
    }

    /// The signature timing of a zone.
    pub fn signature_policy(&self, zone: &Name) -> keys::SignaturePolicy {
        let o = self.zone_override(zone);
        let mut p = self.signatures.policy();
        p.validity = o.signature_validity.unwrap_or(p.validity);
        p.refresh = o.signature_refresh.unwrap_or(p.refresh);
        p
    }

    /// How close a zone's earliest RRSIG expiration may come before health answers 503.
    pub fn signature_margin(&self, zone: &Name) -> u32 {
        self.health
            .signature_margin
            .unwrap_or(self.signature_policy(zone).refresh / 2)
    }

    /// Whether we serve the parent of `zone` (partitions) or someone else does (the apex).
    pub fn parent_kind(&self, zone: &Name) -> keys::rollover::Parent {
        if self.zone_name().is_ok_and(|apex| apex == *zone) {
            keys::rollover::Parent::External
        } else {
            keys::rollover::Parent::Ours
        }
    }

    /// The parent of `zone` when we serve it (partitions: the apex).
    pub fn parent_of(&self, zone: &Name) -> Option<Name> {
        let apex = self.zone_name().ok()?;
        (apex != *zone && apex.zone_of(zone)).then_some(apex)
    }

    /// Every served zone: the apex first, then the partitions.
    pub fn all_zones(&self) -> anyhow::Result<Vec<Name>> {
        let mut zones = vec![self.zone_name()?];
        zones.extend(self.partition_names()?);
        Ok(zones)
    }
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().with_context(|| format!("bad address in {s}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse().with_context(|| format!("bad prefix in {s}"))?
        };
        if prefix > max {
            bail!("prefix too long in {s}");
        }
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Config {
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
            }
            None => Ok(Self::default()),
        }
    }

    pub fn zone_name(&self) -> anyhow::Result<Name> {
        let mut n =
            Name::from_ascii(&self.zone).with_context(|| format!("bad zone name {}", self.zone))?;
        n.set_fqdn(true);
        Ok(n.to_lowercase())
    }

    pub fn partition_names(&self) -> anyhow::Result<Vec<Name>> {
        let zone = self.zone_name()?;
        self.partitions
            .iter()
            .map(|p| {
                let label = Name::from_ascii(p.trim_end_matches('.'))
                    .with_context(|| format!("bad partition {p}"))?;
                Ok(label.append_domain(&zone)?.to_lowercase())
            })
            .collect()
    }

    pub fn axfr_networks(&self) -> anyhow::Result<Vec<Cidr>> {
        self.axfr_allow.iter().map(|s| s.parse()).collect()
    }

    /// The provisioner's settings derived from this configuration.
    pub fn provisioner_settings(&self) -> anyhow::Result<provisioner::service::Settings> {
        let seeds = self
            .partitions
            .iter()
            .map(|p| provisioner::store::tenancy::PartitionRow {
                name: p.trim_end_matches('.').to_ascii_lowercase(),
                addresses: self
                    .inbound
                    .get(p)
                    .unwrap_or(&self.inbound_addresses)
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                host_ttl: self.host_ttl,
            })
            .collect();
        Ok(provisioner::service::Settings {
            zone: self.zone_name()?,
            partitions: self
                .partitions
                .iter()
                .map(|p| p.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            seeds,
            initial_domain_suffix: self.initial_domain_suffix.clone(),
            busy_timeout: std::time::Duration::from_millis(self.store_busy_timeout_ms),
            max_claims_per_tenant: self.max_claims_per_tenant,
        })
    }

    pub fn check_settings(&self) -> provisioner::checks::CheckSettings {
        provisioner::checks::CheckSettings::new(
            self.status_resolver,
            std::time::Duration::from_millis(self.status_timeout_ms),
            self.status_ca_file.clone(),
            self.mta_sts_port,
            // checked by `validate`
            provisioner::outbound::AddressPolicy::new(&self.status_allow_addresses)
                .unwrap_or_default(),
        )
    }

    pub fn lifecycle_settings(&self) -> provisioner::service::LifecycleSettings {
        provisioner::service::LifecycleSettings {
            propagation_delay: self.dane.propagation_delay,
            expiry_warning_days: self.dane.expiry_warning_days,
        }
    }

    /// Which configured endpoints of `partition` present the certificate whose SPKI SHA-256
    /// is `spki` (or could not be probed: they count as presenting it); None without
    /// endpoints. Blocking (SMTP with the DANE test's timeouts).
    pub fn endpoints_presenting(&self, partition: &str, spki: &[u8]) -> Option<Vec<String>> {
        let endpoints = self
            .dane
            .endpoints
            .get(partition)
            .filter(|e| !e.is_empty())?;
        let s = self.dane_settings(false);
        let sni = format!("{partition}.{}", self.zone.trim_end_matches('.'));
        let mut out = Vec::new();
        for e in endpoints {
            let session = provisioner::dane::smtp::probe(*e, &sni, &s.helo, s.timeout);
            let leaf = session
                .chain
                .first()
                .and_then(|d| provisioner::certs::describe_der(d).ok());
            match leaf {
                Some(i) if i.spki_sha256[..] != *spki => {}
                Some(_) => out.push(format!("{e}")),
                None => out.push(format!(
                    "{e} (not probed: {})",
                    session.failure.unwrap_or_else(|| "no certificate".into())
                )),
            }
        }
        Some(out)
    }

    /// The DANE validation test's settings; `api`: only addresses the outbound policy allows.
    pub fn dane_settings(&self, api: bool) -> provisioner::dane::Settings {
        let zone = self.zone.trim_end_matches('.');
        provisioner::dane::Settings {
            resolver: self.status_resolver,
            timeout: std::time::Duration::from_millis(self.dane.timeout_ms.max(1)),
            smtp_port: self.dane.smtp_port,
            helo: self
                .dane
                .helo_name
                .clone()
                .unwrap_or_else(|| format!("dane-check.{zone}")),
            addresses: api.then(|| {
                // checked by `validate`
                provisioner::outbound::AddressPolicy::new(&self.status_allow_addresses)
                    .unwrap_or_default()
            }),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        keys::algorithm_from_number(self.algorithm)?;
        self.zone_name()?;
        self.partition_names()?;
        self.axfr_networks()?;
        provisioner::outbound::AddressPolicy::new(&self.status_allow_addresses)
            .map_err(|e| anyhow::anyhow!("status_allow_addresses: {e}"))?;
        if self.udp_max_payload < 512 {
            bail!("udp_max_payload must be at least 512");
        }
        for z in self.all_zones()? {
            let p = self.signature_policy(&z);
            if p.refresh >= p.validity.saturating_sub(p.jitter) {
                bail!("{z}: the signature refresh must be shorter than validity - jitter");
            }
            keys::algorithm_from_number(self.zone_algorithm(&z))?;
        }
        if !(0..=19).contains(&self.control_nice) {
            bail!("control_nice must be between 0 and 19");
        }
        if self.ns_addresses.is_empty() {
            bail!("ns_addresses must not be empty");
        }
        let a = &self.api;
        if a.max_connections == 0
            || a.header_timeout == 0
            || a.request_timeout == 0
            || a.import_timeout == 0
        {
            bail!("api: max_connections, header_timeout, request_timeout and import_timeout must be above 0");
        }
        if a.body_limit == 0 || a.certificates_body_limit == 0 || a.import_body_limit == 0 {
            bail!("api: body limits must be above 0");
        }
        for (k, v) in [
            ("tenant_rate", a.tenant_rate),
            ("tenant_burst", a.tenant_burst),
            ("admin_rate", a.admin_rate),
            ("admin_burst", a.admin_burst),
            ("auth_failure_rate", a.auth_failure_rate),
            ("auth_failure_burst", a.auth_failure_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("api.{k} must be a number of at least 0");
            }
        }
        for (rate, burst, k) in [
            (a.tenant_rate, a.tenant_burst, "tenant"),
            (a.admin_rate, a.admin_burst, "admin"),
            (a.auth_failure_rate, a.auth_failure_burst, "auth_failure"),
        ] {
            if rate > 0.0 && burst < 1.0 {
                bail!("api.{k}_burst must be at least 1 when api.{k}_rate is set");
            }
        }
        self.validate_soa()?;
        if self.tcp_max_connections == 0 || self.tcp_max_per_source == 0 {
            bail!("tcp_max_connections and tcp_max_per_source must be at least 1");
        }
        if self.xfr_max_concurrent == 0 {
            bail!("xfr_max_concurrent must be at least 1");
        }
        self.secondary_list()?;
        let zones = self.all_zones()?;
        for z in self.keys.zone.keys() {
            let n = Name::from_ascii(z).with_context(|| format!("bad zone name keys.zone.{z}"))?;
            let mut n = n.to_lowercase();
            n.set_fqdn(true);
            if !zones.contains(&n) {
                bail!("keys.zone.\"{z}\" is not a served zone");
            }
        }
        for z in &zones {
            let p = self.key_policy(z, 0);
            if p.zsk_lifetime <= p.publish_interval() || p.ksk_lifetime <= p.publish_interval() {
                bail!(
                    "keys: the lifetimes of {z} must be longer than the publish interval ({} s = propagation delay + DNSKEY TTL + publish safety)",
                    p.publish_interval()
                );
            }
        }
        Ok(())
    }
}

/// A `[[secondaries]]` entry, checked: its address, ACL and key name.
#[derive(Debug, Clone)]
pub struct Secondary {
    pub name: String,
    pub address: SocketAddr,
    pub allow: Vec<Cidr>,
    pub key: Name,
}

impl Config {
    /// The SOA timers cannot hurt validation: a secondary cut off from the primary stops
    /// serving (EXPIRE after its last refresh) before any signature it holds can expire. At a
    /// refresh every signature has at least `refresh - check_interval` left (the refresher
    /// signs again whatever expires within `refresh`, looking every `check_interval`), so
    /// EXPIRE + check_interval + EXPIRE_MARGIN must not exceed any zone's refresh window.
    pub fn validate_soa(&self) -> anyhow::Result<()> {
        let t = &self.soa;
        if t.retry == 0
            || t.retry > t.refresh
            || t.refresh >= t.expire
            || t.expire > i32::MAX as u32
        {
            bail!(
                "[soa]: need 0 < retry <= refresh < expire (retry {}, refresh {}, expire {})",
                t.retry,
                t.refresh,
                t.expire
            );
        }
        for z in self.all_zones()? {
            let refresh = self.signature_policy(&z).refresh as u64;
            let need = t.expire as u64 + self.signatures.check_interval + EXPIRE_MARGIN as u64;
            if need > refresh {
                bail!(
                    "[soa] expire = {} s is too long for {z}: a secondary cut off from the primary would serve \
                     signatures past their expiry. It must be at most the signature refresh window ({refresh} s) \
                     minus signatures.check_interval ({} s) minus a margin of {} s, i.e. <= {} s; lower \
                     [soa] expire or raise the refresh window",
                    t.expire,
                    self.signatures.check_interval,
                    EXPIRE_MARGIN,
                    refresh.saturating_sub(self.signatures.check_interval + EXPIRE_MARGIN as u64)
                );
            }
        }
        Ok(())
    }

    /// The configured secondaries, checked (names unique, addresses and networks readable, key
    /// names valid). Key files are read by the server and `mxdns secondary config`.
    pub fn secondary_list(&self) -> anyhow::Result<Vec<Secondary>> {
        let mut out: Vec<Secondary> = Vec::new();
        for s in &self.secondaries {
            let what = format!("secondaries: {:?}", s.name);
            if s.name.trim().is_empty() {
                bail!("secondaries: an entry has no name");
            }
            if out.iter().any(|o| o.name == s.name) {
                bail!("{what} is configured twice");
            }
            let address: SocketAddr = match s.address.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => match s.address.parse::<IpAddr>() {
                    Ok(ip) => SocketAddr::new(ip, 53),
                    Err(_) => bail!(
                        "{what}: bad address {:?} (want IP:PORT, [IPv6]:PORT or IP)",
                        s.address
                    ),
                },
            };
            let allow = if s.allow.is_empty() {
                vec![Cidr::from_str(&address.ip().to_string())?]
            } else {
                s.allow
                    .iter()
                    .map(|a| a.parse().with_context(|| format!("{what}: allow")))
                    .collect::<anyhow::Result<Vec<Cidr>>>()?
            };
            let key = crate::tsig::parse_name(&s.tsig).with_context(|| format!("{what}: tsig"))?;
            out.push(Secondary {
                name: s.name.clone(),
                address,
                allow,
                key,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soa_expire_must_end_before_signatures_can() {
        let c = Config::default();
        c.validate().unwrap();
        let mut bad = Config::default();
        bad.soa.expire = 14 * 86400;
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("[soa] expire") && e.contains("signatures past their expiry"),
            "{e}"
        );
        // the rule follows a zone's own refresh window
        let mut z = Config::default();
        z.keys.zone.insert(
            "o-v1.mx.example.".into(),
            TimingOverride {
                signature_refresh: Some(3 * 86400),
                ..Default::default()
            },
        );
        let e = z.validate().unwrap_err().to_string();
        assert!(e.contains("o-v1.mx.example."), "{e}");
        let mut r = Config::default();
        r.soa.retry = r.soa.refresh + 1;
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("retry <= refresh"));
    }

    #[test]
    fn secondaries_are_checked() {
        let parse = |t: &str| -> Config { toml::from_str(t).unwrap() };
        let c = parse(
            "[[secondaries]]\nname = \"nsd1\"\naddress = \"127.0.0.1:5301\"\ntsig = \"nsd1\"\n",
        );
        let s = c.secondary_list().unwrap();
        assert_eq!(s[0].address.port(), 5301);
        assert!(s[0].allow[0].contains("127.0.0.1".parse().unwrap()));
        assert!(!s[0].allow[0].contains("127.0.0.2".parse().unwrap()));
        let c = parse("[[secondaries]]\nname = \"k\"\naddress = \"192.0.2.1\"\nallow = [\"192.0.2.0/24\"]\ntsig = \"k\"\n");
        assert_eq!(c.secondary_list().unwrap()[0].address.port(), 53);
        let c = parse("[[secondaries]]\nname = \"k\"\naddress = \"nowhere:53\"\ntsig = \"k\"\n");
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("bad address") && e.contains("\"k\""), "{e}");
        let c = parse("[[secondaries]]\nname = \"k\"\naddress = \"192.0.2.1\"\ntsig = \"a b\"\n");
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("bad TSIG key name"));
    }
}
