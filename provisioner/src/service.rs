//! The use cases of the provisioner, in the shape of Exchange Online's cmdlets
//! (`Enable-DnssecForVerifiedDomain`, `Enable-SmtpDaneInbound`, their `Disable-` twins,
//! `Get-DnssecStatusForVerifiedDomain`) plus tenants, accepted domains and partitions.
//!
//! Each use case is one SQLite transaction: the domain's state and the zone records it implies
//! are committed together or not at all. The caller (HTTP layer, command line) then asks the
//! zone manager to serve what was committed. Errors carry the reference's error codes and
//! sentences ([`ApiError`]); the HTTP layer maps them to status codes in one place.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TLSA};
use hickory_proto::rr::{Name, RData, RecordType};
use ring::rand::SecureRandom;
use serde_json::json;

use crate::store::tenancy::{self, CertRow, DomainRow, PartitionRow};
use crate::store::{write_batch, Batch, BatchOp, Store, StoreError};
use crate::{certs, mxtoken};

mod audit;
mod certlife;
mod import;
mod listing;
mod lock;
mod ownership;
mod tokens;
pub use audit::{record as record_audit, AuditPage};
pub use certlife::{rfc3339, CertState, Lifecycle, LifecycleSettings};
pub use import::{parse_import, ImportOptions, ImportReport};
pub use listing::DomainSummary;
pub use ownership::VERIFY_PREFIX;
pub use tokens::{admin_token, AuthError, Authenticator, TokenGrant};

/// Whose authority a call has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator (admin token, command line): every tenant, every domain, partitions.
    Admin,
    /// A tenant: only its own domains.
    Tenant(String),
}

/// How a call reached the provisioner (the audit trail's "who").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The HTTP API, with a token.
    Api,
    /// The operator's command line on the data directory.
    Cli,
    /// The server itself (its rollover scheduler, the bootstrap admin token).
    System,
}

/// Who makes a call: the authority, the token it came with, and how it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub caller: Caller,
    pub token_id: Option<String>,
    pub via: Via,
}

impl Actor {
    /// The operator's command line.
    pub fn cli() -> Self {
        Self {
            caller: Caller::Admin,
            token_id: None,
            via: Via::Cli,
        }
    }
    /// The server acting on its own.
    pub fn system() -> Self {
        Self {
            caller: Caller::Admin,
            token_id: None,
            via: Via::System,
        }
    }
    /// A caller of the API, authenticated by the token `token_id`.
    pub fn api(caller: Caller, token_id: &str) -> Self {
        Self {
            caller,
            token_id: Some(token_id.to_string()),
            via: Via::Api,
        }
    }
    pub fn is_admin(&self) -> bool {
        self.caller == Caller::Admin
    }
    pub fn tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Tenant(t) => Some(t),
            Caller::Admin => None,
        }
    }
    /// The audit trail's actor: `admin`, `tenant`, `cli` or `system`.
    pub fn kind(&self) -> &'static str {
        match (self.via, &self.caller) {
            (Via::Cli, _) => "cli",
            (Via::System, _) => "system",
            (Via::Api, Caller::Admin) => "admin",
            (Via::Api, Caller::Tenant(_)) => "tenant",
        }
    }
    fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// An error as the cmdlets report it: a code and a sentence, plus the HTTP status to use.
/// The sentence never carries the text of an internal error (that goes to the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub details: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, details: impl Into<String>) -> Self {
        Self {
            status,
            code,
            details: details.into(),
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "A valid bearer token is required.")
    }
    pub fn forbidden() -> Self {
        Self::new(403, "Forbidden", "This operation needs the admin token.")
    }
    fn invalid(code: &'static str, details: impl Into<String>) -> Self {
        Self::new(400, code, details)
    }
    fn tenant_not_found(tenant: &str) -> Self {
        Self::new(404, "TenantNotFound", format!("Tenant {tenant} not found."))
    }
    /// A failure of the store, logged with its cause; the caller is told only that nothing
    /// was changed.
    fn storage(code: &'static str, what: &str, e: StoreError) -> Self {
        tracing::warn!(error = %e, operation = what, "store operation failed");
        Self::new(
            409,
            code,
            format!("{what} failed due to a storage error; nothing was changed. Retry the operation at a later time."),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.details)
    }
}

/// The operation named in error sentences.
#[derive(Debug, Clone, Copy)]
enum Op {
    EnableDnssec,
    DisableDnssec,
    EnableDane,
    DisableDane,
    Verify,
    Remove,
}

impl Op {
    fn what(self) -> &'static str {
        match self {
            Op::EnableDnssec => "DNSSEC enabling",
            Op::DisableDnssec => "DNSSEC disabling",
            Op::EnableDane => "SMTP DANE enabling",
            Op::DisableDane => "SMTP DANE disabling",
            Op::Verify => "Domain verification",
            Op::Remove => "Domain removal",
        }
    }
    fn failed(self, why: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            409,
            "DnssecOperationFailed",
            format!(
                "{} failed due to {why}. Retry the operation at a later time.",
                self.what()
            ),
        )
    }
    fn not_found(self, domain: &str) -> ApiError {
        ApiError::new(
            404,
            "DomainNotFound",
            format!(
                "{} failed due to domain {domain} not found in the list of accepted domains.",
                self.what()
            ),
        )
    }
    fn not_verified(self, domain: &str) -> ApiError {
        ApiError::new(
            404,
            "DomainNotFound",
            format!(
                "{} failed due to domain {domain} not being a verified domain of the organization. Publish its verification TXT record and verify it (POST /v1/domains/{domain}/verify) first.",
                self.what()
            ),
        )
    }
}

/// Configuration of the provisioner.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service zone, e.g. `mx.example.`.
    pub zone: Name,
    /// Partition labels in configuration order (`o-v1`, ...).
    pub partitions: Vec<String>,
    /// Inbound addresses and host TTL per partition, to seed the database.
    pub seeds: Vec<PartitionRow>,
    /// Tenants' initial domains live under this suffix and are not supported (DomainNotSupported).
    pub initial_domain_suffix: Option<String>,
    /// How long a write waits for another writer before DnssecOperationFailed.
    pub busy_timeout: Duration,
    /// Unverified claims one tenant may hold at once (the admin's adds are not counted).
    pub max_claims_per_tenant: usize,
}

/// A domain's state, as `Get-DnssecStatusForVerifiedDomain` shows it, with its verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainState {
    pub domain: String,
    /// The owner (the admin's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub verified: bool,
    pub dnssec_enabled: bool,
    pub smtp_dane_enabled: bool,
    pub dnssec_mx_value: Option<String>,
    pub partition: Option<String>,
    pub tlsa_records: Vec<String>,
    /// What the tenant publishes to prove the domain (null once verified).
    pub verification: Option<Verification>,
    /// Every tenant's claim on a domain nobody has verified (the admin's view only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimView>,
}

/// The DNS record that proves a claim: `<domain> TXT "<value>"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    pub tenant_id: String,
    pub value: String,
    pub added_at: i64,
}

/// One published TLSA record in presentation form with the certificate it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsaView {
    pub role: String,
    pub record: String,
    /// Validity of the certificate: unix seconds and RFC 3339 UTC.
    pub not_before: i64,
    pub not_after: i64,
    pub not_before_utc: String,
    pub not_after_utc: String,
    pub subject: String,
    pub issuer: String,
}

impl TlsaView {
    /// The view of a stored certificate row; what the stored PEM no longer yields (it was
    /// checked when stored) is left empty.
    fn of(c: &CertRow) -> Self {
        let info = certs::describe(&c.pem);
        TlsaView {
            role: c.role.clone(),
            record: tlsa(c).to_string(),
            not_before: info.as_ref().map_or(0, |i| i.not_before),
            not_after: c.not_after,
            not_before_utc: info
                .as_ref()
                .map(|i| i.not_before_text.clone())
                .unwrap_or_default(),
            not_after_utc: info
                .as_ref()
                .map(|i| i.not_after_text.clone())
                .unwrap_or_default(),
            subject: info.as_ref().map(|i| i.subject.clone()).unwrap_or_default(),
            issuer: info.map(|i| i.issuer).unwrap_or_default(),
        }
    }
}

pub struct Provisioner {
    store: Mutex<Store>,
    settings: Settings,
    auth: Arc<Authenticator>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(s: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn db_err(op: Op) -> impl Fn(StoreError) -> ApiError {
    move |e| {
        tracing::warn!(error = %e, operation = op.what(), "store write failed");
        op.failed("a storage error (the change was not made)")
    }
}

fn normalize(domain: &str) -> Result<String, ApiError> {
    mxtoken::normalize_domain(domain)
        .map_err(|e| ApiError::invalid("InvalidDomainName", e.to_string()))
}

impl Provisioner {
    /// Opens the store (creating and migrating it), seeds the partitions and registers the
    /// bootstrap admin token of `<data_dir>/admin-token` (created on first use).
    pub fn open(db: &Path, data_dir: &Path, settings: Settings) -> Result<Self, StoreError> {
        let mut store = Store::open_with_timeout(db, settings.busy_timeout)?;
        store.transaction(|tx| {
            for p in &settings.seeds {
                tenancy::seed_partition(tx, p)?;
            }
            Ok(())
        })?;
        let bootstrap =
            admin_token(data_dir).map_err(|e| StoreError::Data(format!("admin token: {e}")))?;
        tokens::register_bootstrap(&mut store, &bootstrap, now())?;
        let auth = Arc::new(Authenticator::new(db, settings.busy_timeout));
        Ok(Self {
            store: Mutex::new(store),
            settings,
            auth,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Maps bearer tokens to callers, on connections of its own (never the store's lock).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.auth.clone()
    }

    /// Creates a tenant and its first token (shown once; only its hash is stored).
    pub fn create_tenant(&self, actor: &Actor, name: &str) -> Result<TokenGrant, ApiError> {
        actor.require_admin()?;
        let name = name.trim();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "InvalidTenantName",
                "A tenant name is 1 to 256 printable characters.",
            ));
        }
        let id = format!("t-{}", random_hex(8));
        let t = now();
        let (row, token) = tokens::new_token(Some(&id), "created with the tenant", t);
        self.lock_store()
            .transaction(|tx| {
                tenancy::insert_tenant(tx, &id, name, t)?;
                crate::store::tokens::insert(tx, &row)?;
                audit::record(
                    tx,
                    actor,
                    "tenant.create",
                    &id,
                    json!({"name": name, "tokenId": row.id}),
                )
            })
            .map_err(|e| ApiError::storage("TenantOperationFailed", "Creating the tenant", e))?;
        tracing::info!(tenant = %id, "tenant created");
        Ok(TokenGrant {
            token_id: row.id,
            token,
            tenant_id: Some(id),
        })
    }

    fn check_supported(&self, domain: &str) -> Result<(), ApiError> {
        if let Some(suffix) = &self.settings.initial_domain_suffix {
            let suffix = suffix.trim_end_matches('.').to_ascii_lowercase();
            if domain == suffix || domain.ends_with(&format!(".{suffix}")) {
                return Err(ApiError::invalid(
                    "DomainNotSupported",
                    format!("The specified domain is an initial domain: {domain}. Use a domain that does not end with '{suffix}'."),
                ));
            }
        }
        Ok(())
    }

    fn partition_zone(&self, partition: &str) -> Name {
        Name::from_ascii(partition)
            .expect("partition labels are validated")
            .append_domain(&self.settings.zone)
            .expect("short")
    }

    fn host(&self, token: &str, partition: &str) -> Name {
        Name::from_ascii(token)
            .expect("tokens are labels")
            .append_domain(&self.partition_zone(partition))
            .expect("short")
    }

    /// `Enable-DnssecForVerifiedDomain`: returns the MX value (`contoso-com.o-v1.mx.example`).
    pub fn enable_dnssec(&self, actor: &Actor, domain: &str) -> Result<String, ApiError> {
        let op = Op::EnableDnssec;
        let domain = normalize(domain)?;
        let mut store = self.lock_store();
        let mut row = self.owned(&store, actor, &domain, op)?;
        self.check_supported(&domain)?;
        let host = store
            .transaction(|tx| {
                // the token and partition are assigned once and never change
                if row.mx_token.is_none() {
                    let token = mxtoken::mx_token(&domain);
                    if tenancy::token_taken(tx, &token, &domain)? {
                        return Err(StoreError::Data(format!("MX token {token} is taken")));
                    }
                    let mut best: Option<(i64, &String)> = None;
                    for p in &self.settings.partitions {
                        // one partition: nothing to choose (counting its domains is a scan
                        // of the partition: 130 ms at a million)
                        let load = if self.settings.partitions.len() == 1 {
                            0
                        } else {
                            tenancy::partition_load(tx, p)?
                        };
                        if best.is_none_or(|(l, _)| load < l) {
                            best = Some((load, p));
                        }
                    }
                    row.mx_token = Some(token);
                    row.partition = best.map(|(_, p)| p.clone());
                }
                let (token, partition) = (
                    row.mx_token.clone().unwrap_or_default(),
                    row.partition.clone().unwrap_or_default(),
                );
                let p = tenancy::get_partition(tx, &partition)?.ok_or_else(|| {
                    StoreError::Data(format!("partition {partition} is not configured"))
                })?;
                row.dnssec = true;
                tenancy::update_domain_state(tx, &row, now())?;
                let host = self.host(&token, &partition);
                let mut ops = address_ops(&self.partition_zone(&partition), &host, &p);
                if row.dane {
                    ops.extend(self.tlsa_ops(tx, &partition, &host, p.host_ttl)?);
                }
                write_batch(tx, &Batch { ops }, now())?;
                let mx = host.to_ascii().trim_end_matches('.').to_string();
                audit::record(tx, actor, "dnssec.enable", &domain, json!({"mx": mx}))?;
                Ok(host)
            })
            .map_err(db_err(op))?;
        let value = host.to_ascii().trim_end_matches('.').to_string();
        tracing::info!(domain = %domain, mx = %value, "DNSSEC enabled");
        Ok(value)
    }

    /// `Disable-DnssecForVerifiedDomain`: removes the host and its TLSA; keeps the token.
    pub fn disable_dnssec(&self, actor: &Actor, domain: &str) -> Result<(), ApiError> {
        let op = Op::DisableDnssec;
        let domain = normalize(domain)?;
        let mut store = self.lock_store();
        let mut row = self.owned(&store, actor, &domain, op)?;
        self.check_supported(&domain)?;
        store
            .transaction(|tx| {
                let ops = self.unpublish_ops(&row);
                row.dnssec = false;
                row.dane = false;
                tenancy::update_domain_state(tx, &row, now())?;
                write_batch(tx, &Batch { ops }, now())?;
                audit::record(tx, actor, "dnssec.disable", &domain, json!({}))?;
                Ok(())
            })
            .map_err(db_err(op))?;
        tracing::info!(domain = %domain, "DNSSEC disabled");
        Ok(())
    }

    /// What takes a domain's host out of the served zone: its name and its TLSA name.
    fn unpublish_ops(&self, row: &DomainRow) -> Vec<BatchOp> {
        match (&row.mx_token, &row.partition) {
            (Some(t), Some(p)) => {
                let host = self.host(t, p);
                let zone = self.partition_zone(p);
                vec![
                    BatchOp::DeleteName {
                        zone: zone.clone(),
                        owner: host.clone(),
                    },
                    BatchOp::DeleteName {
                        zone,
                        owner: tlsa_owner(&host),
                    },
                ]
            }
            _ => Vec::new(),
        }
    }

    /// `Enable-SmtpDaneInbound` / `Disable-SmtpDaneInbound`.
    pub fn set_dane(&self, actor: &Actor, domain: &str, enable: bool) -> Result<(), ApiError> {
        let op = if enable {
            Op::EnableDane
        } else {
            Op::DisableDane
        };
        let domain = normalize(domain)?;
        let mut store = self.lock_store();
        let mut row = self.owned(&store, actor, &domain, op)?;
        self.check_supported(&domain)?;
        let (Some(token), Some(partition), true) =
            (row.mx_token.clone(), row.partition.clone(), row.dnssec)
        else {
            return Err(ApiError::new(
                409,
                "PartitionNotFound",
                format!("{} failed due to domain {domain} not having a partition (enable DNSSEC for it first).", op.what()),
            ));
        };
        let host = self.host(&token, &partition);
        let zone = self.partition_zone(&partition);
        let result = store.transaction(|tx| {
            let ops = if enable {
                let p = tenancy::get_partition(tx, &partition)?.ok_or_else(|| {
                    StoreError::Data(format!("partition {partition} is not configured"))
                })?;
                let ops = self.tlsa_ops(tx, &partition, &host, p.host_ttl)?;
                if ops.is_empty() {
                    return Ok(Err(op.failed(format!(
                        "no fleet certificate configured for partition {partition}"
                    ))));
                }
                ops
            } else {
                vec![BatchOp::DeleteName {
                    zone: zone.clone(),
                    owner: tlsa_owner(&host),
                }]
            };
            row.dane = enable;
            tenancy::update_domain_state(tx, &row, now())?;
            write_batch(tx, &Batch { ops }, now())?;
            let action = if enable {
                "dane.enable"
            } else {
                "dane.disable"
            };
            audit::record(tx, actor, action, &domain, json!({}))?;
            Ok(Ok(()))
        });
        result.map_err(db_err(op))??;
        tracing::info!(domain = %domain, enable, "SMTP DANE changed");
        Ok(())
    }

    /// The TLSA name of a DANE host: a CNAME to the partition's one shared TLSA RRset (empty:
    /// no fleet certificate configured).
    fn tlsa_ops(
        &self,
        tx: &rusqlite::Transaction<'_>,
        partition: &str,
        host: &Name,
        ttl: u32,
    ) -> Result<Vec<BatchOp>, StoreError> {
        if tenancy::partition_certs(tx, partition)?.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![dane_op(&self.partition_zone(partition), host, ttl)])
    }

    /// Sets a partition's fleet certificates and its one shared TLSA RRset, which every DANE
    /// host's TLSA name is a CNAME to: one RRset to change and sign, however many hosts.
    /// Input that is not a currently valid certificate changes nothing.
    pub fn set_certificates(
        &self,
        actor: &Actor,
        partition: &str,
        current: &str,
        next: Option<&str>,
        issuers: &[String],
    ) -> Result<Vec<TlsaView>, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        let t = now();
        let parse = |role: &str, pem: &str| {
            let used_as = if role.starts_with("issuer") {
                certs::CertUse::Issuer
            } else {
                certs::CertUse::EndEntity
            };
            certs::parse_for(pem, t, used_as).map_err(|e| {
                ApiError::invalid(
                    "InvalidCertificate",
                    format!("The {role} certificate is not usable: {e}."),
                )
            })
        };
        let mut rows = Vec::new();
        let mut push = |role: &str, position: u32, usage: u8, info: certs::CertInfo, pem: &str| {
            rows.push(CertRow {
                role: role.into(),
                position,
                pem: pem.into(),
                usage,
                selector: 1,
                matching: 1,
                data: info.spki_sha256.to_vec(),
                not_after: info.not_after,
                published_at: t,
            })
        };
        push("current", 0, 3, parse("current", current)?, current);
        if let Some(n) = next {
            push("next", 0, 3, parse("next", n)?, n);
        }
        for (i, pem) in issuers.iter().enumerate() {
            push(
                "issuer",
                i as u32,
                2,
                parse(&format!("issuer {}", i + 1), pem)?,
                pem,
            );
        }
        let zone = self.partition_zone(partition);
        self.lock_store()
            .transaction(|tx| {
                // a record that was published already keeps its publication time (the
                // lifecycle's promotion wait counts from it)
                let old = tenancy::partition_certs(tx, partition)?;
                let rows: Vec<CertRow> = rows
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        if let Some(o) = old.iter().find(|o| o.data == r.data && o.usage == r.usage)
                        {
                            r.published_at = o.published_at;
                        }
                        r
                    })
                    .collect();
                tenancy::replace_partition_certs(tx, partition, &rows)?;
                let ttl = tenancy::get_partition(tx, partition)?.map_or(300, |p| p.host_ttl);
                let data: Vec<RData> = rows.iter().map(|c| RData::TLSA(tlsa(c))).collect();
                let ops = vec![BatchOp::set(
                    &zone,
                    &fleet_tlsa_owner(&zone),
                    RecordType::TLSA,
                    ttl,
                    data,
                )];
                write_batch(tx, &Batch { ops }, t)?;
                let records: Vec<String> = rows.iter().map(|c| tlsa(c).to_string()).collect();
                audit::record(
                    tx,
                    actor,
                    "partition.certificates",
                    partition,
                    json!({"tlsa": records}),
                )?;
                Ok(())
            })
            .map_err(|e| {
                ApiError::storage("DnssecOperationFailed", "Storing the certificates", e)
            })?;
        tracing::info!(partition, records = rows.len(), "fleet certificates set");
        Ok(rows.iter().map(TlsaView::of).collect())
    }

    /// The TLSA records a partition publishes now (the server's own endpoint probes).
    pub fn partition_tlsa(&self, partition: &str) -> Result<Vec<TLSA>, ApiError> {
        self.known_partition(partition)?;
        let store = self.lock_store();
        tenancy::partition_certs(store.conn(), partition)
            .map(|rows| rows.iter().map(tlsa).collect())
            .map_err(|e| ApiError::storage("DnssecOperationFailed", "Reading the certificates", e))
    }

    fn known_partition(&self, partition: &str) -> Result<(), ApiError> {
        if self.settings.partitions.iter().any(|p| p == partition) {
            Ok(())
        } else {
            Err(ApiError::new(
                404,
                "PartitionNotFound",
                format!("Partition {partition} is not configured."),
            ))
        }
    }

    /// Sets a partition's inbound addresses (and host TTL) and rewrites A/AAAA of its hosts.
    pub fn set_partition(
        &self,
        actor: &Actor,
        partition: &str,
        addresses: &[std::net::IpAddr],
        host_ttl: Option<u32>,
    ) -> Result<PartitionRow, ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        if addresses.is_empty() {
            return Err(ApiError::invalid(
                "InvalidAddresses",
                "A partition needs at least one inbound address.",
            ));
        }
        let zone = self.partition_zone(partition);
        self.lock_store()
            .transaction(|tx| {
                let old = tenancy::get_partition(tx, partition)?;
                let p = PartitionRow {
                    name: partition.into(),
                    addresses: addresses.iter().map(|a| a.to_string()).collect(),
                    host_ttl: host_ttl.or(old.map(|o| o.host_ttl)).unwrap_or(300),
                };
                tenancy::set_partition(tx, &p)?;
                let mut ops = Vec::new();
                for d in tenancy::enabled_domains(tx, partition, false)? {
                    if let Some(token) = d.mx_token {
                        ops.extend(address_ops(&zone, &self.host(&token, partition), &p));
                    }
                }
                write_batch(tx, &Batch { ops }, now())?;
                audit::record(
                    tx,
                    actor,
                    "partition.addresses",
                    partition,
                    json!({"addresses": p.addresses, "hostTtl": p.host_ttl}),
                )?;
                Ok(p)
            })
            .map_err(|e| ApiError::storage("DnssecOperationFailed", "Changing the partition", e))
    }

    pub fn partition(
        &self,
        actor: &Actor,
        partition: &str,
    ) -> Result<(PartitionRow, Vec<TlsaView>), ApiError> {
        actor.require_admin()?;
        self.known_partition(partition)?;
        let store = self.lock_store();
        let p = tenancy::get_partition(store.conn(), partition)
            .ok()
            .flatten()
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "PartitionNotFound",
                    format!("Partition {partition} is not configured."),
                )
            })?;
        let certs = tenancy::partition_certs(store.conn(), partition).unwrap_or_default();
        Ok((p, certs.iter().map(TlsaView::of).collect()))
    }
}

/// `_25._tcp.<host>`: where the TLSA RRset of an MX host lives (RFC 7672 2.2).
pub fn tlsa_owner(host: &Name) -> Name {
    Name::from_ascii("_25._tcp")
        .expect("labels")
        .append_domain(host)
        .expect("short")
}

/// `_25._tcp._fleet.<partition zone>`: the partition's one TLSA RRset. The TLSA name of every
/// DANE host is a CNAME to it, which DANE clients follow (RFC 7671 section 7, RFC 7672
/// section 2.2.3; both links are validated), so a fleet certificate change is one RRset. No
/// MX token can start with `_`, so it never meets a tenant's name.
pub fn fleet_tlsa_owner(partition_zone: &Name) -> Name {
    Name::from_ascii("_25._tcp._fleet")
        .expect("labels")
        .append_domain(partition_zone)
        .expect("short")
}

/// The TLSA name of a DANE host: a CNAME to the partition's shared TLSA RRset.
fn dane_op(zone: &Name, host: &Name, ttl: u32) -> BatchOp {
    BatchOp::set(
        zone,
        &tlsa_owner(host),
        RecordType::CNAME,
        ttl,
        vec![RData::CNAME(CNAME(fleet_tlsa_owner(zone)))],
    )
}

fn tlsa(c: &CertRow) -> TLSA {
    TLSA::new(
        CertUsage::from(c.usage),
        Selector::from(c.selector),
        Matching::from(c.matching),
        c.data.clone(),
    )
}

/// A and AAAA of a host from the partition's inbound addresses (deleting a family it lacks).
fn address_ops(zone: &Name, host: &Name, p: &PartitionRow) -> Vec<BatchOp> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in &p.addresses {
        match a.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(x)) => v4.push(RData::A(A(x))),
            Ok(std::net::IpAddr::V6(x)) => v6.push(RData::AAAA(AAAA(x))),
            Err(_) => {}
        }
    }
    vec![
        BatchOp::set(zone, host, RecordType::A, p.host_ttl, v4),
        BatchOp::set(zone, host, RecordType::AAAA, p.host_ttl, v6),
    ]
}
