//! The provisioning commands (tenants, domains, the cmdlets, partitions, the bulk import).

use std::path::PathBuf;

use anyhow::Context;

use super::{DaneCmd, DnssecCmd, DomainCmd, PartitionCmd, TenantCmd, TokenCmd};
use crate::config::Config;
use crate::zonemgr::{self, Clock, SystemClock};

pub enum Provision {
    Tenant(TenantCmd),
    Domain(DomainCmd),
    Dnssec(DnssecCmd),
    Dane(DaneCmd),
    Partition(PartitionCmd),
    Token(TokenCmd),
    Audit { after: i64, limit: usize },
}

/// The provisioning commands: the same use cases and the same JSON as the HTTP API, acting as
/// the operator. A running server serves the result within `follow_interval_ms`.
pub fn provision_cmd(config: Config, cmd: Provision) -> anyhow::Result<()> {
    use provisioner::service::{Actor, Provisioner};
    use serde_json::json;
    zonemgr::init_data(&config, SystemClock.now())?;
    let prov = Provisioner::open(
        &zonemgr::db_path(&config.data_dir),
        &config.data_dir,
        config.provisioner_settings()?,
    )?;
    let admin = Actor::cli();
    let ok = json!({"result": "Success", "errorData": null});
    let result = match cmd {
        Provision::Tenant(TenantCmd::Add { name }) => prov
            .create_tenant(&admin, &name)
            .map(|g| json!({"tenantId": g.tenant_id, "token": g.token, "tokenId": g.token_id})),
        Provision::Domain(DomainCmd::Import {
            file,
            tenant,
            no_dane,
            batch,
            max_hold_ms,
        }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let t0 = std::time::Instant::now();
            provisioner::service::parse_import(&text).and_then(|domains| {
                let opts = provisioner::service::ImportOptions {
                    tenant,
                    dane: !no_dane,
                    batch,
                    max_hold: std::time::Duration::from_millis(max_hold_ms),
                    ..Default::default()
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
            .map(|(s, _)| json!(s)),
        Provision::Domain(DomainCmd::Verify { domain, tenant }) => {
            let checks = config.check_settings();
            prov.verify_domain(&admin, &domain, tenant.as_deref(), &|name| {
                provisioner::checks::lookup_txt(&checks, name)
            })
            .map(|s| json!({"result": "Success", "status": s, "errorData": null}))
        }
        Provision::Domain(DomainCmd::Remove { domain }) => {
            prov.remove_domain(&admin, &domain).map(|_| ok.clone())
        }
        Provision::Token(TokenCmd::Add {
            tenant,
            admin: _,
            label,
        }) => prov
            .create_token(&admin, tenant.as_deref(), label.as_deref())
            .map(|g| json!(g)),
        Provision::Token(TokenCmd::List { tenant }) => prov
            .list_tokens(&admin, tenant.as_deref())
            .map(|t| json!({"tokens": t})),
        Provision::Token(TokenCmd::Revoke { id }) => prov
            .revoke_token(&admin, &id)
            .map(|t| json!({"result": "Success", "token": t, "errorData": null})),
        Provision::Audit { after, limit } => prov.audit(&admin, after, limit).map(|p| json!(p)),
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
        Provision::Partition(PartitionCmd::Lifecycle { partition }) => prov
            .certificate_lifecycle(&admin, &partition, config.lifecycle_settings())
            .map(|l| json!(l)),
        Provision::Partition(PartitionCmd::Stage { partition, cert }) => {
            let pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            prov.stage_certificate(&admin, &partition, &pem, config.lifecycle_settings())
                .map(|l| json!({"result": "Success", "lifecycle": l, "errorData": null}))
        }
        Provision::Partition(PartitionCmd::Promote { partition, force }) => prov
            .promote_certificate(&admin, &partition, force, config.lifecycle_settings())
            .map(|l| json!({"result": "Success", "lifecycle": l, "errorData": null})),
        Provision::Partition(PartitionCmd::Retire { partition, force }) => {
            let probe = |spki: &[u8]| config.endpoints_presenting(&partition, spki);
            prov.retire_certificate(
                &admin,
                &partition,
                force,
                &probe,
                config.lifecycle_settings(),
            )
            .map(|l| json!({"result": "Success", "lifecycle": l, "errorData": null}))
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
