//! The DANE validation test: what an RFC 7672 sender does on its way to a domain's MX hosts,
//! step by step, with the code it would give at each MX host and address (`verdict`).
//!
//! ```text
//!  MX <domain> (lookup) ─ bogus → 4.7.324, failed → 4.4.312, insecure → not-dane
//!   └ per MX host (preference order): A, AAAA ─ bogus → 4.7.324, failed → 4.4.312, insecure → not-dane
//!        TLSA _25._tcp.<host> ─ bogus → 4.7.324, failed → 4.4.312, none/insecure → not-dane
//!        └ per address: SMTP (smtp): banner, EHLO, STARTTLS ─ missing/refused/handshake → 4.7.321
//!             chain vs TLSA (verify) ─ expired → 4.7.322, no match → 4.7.323, match → success
//! ```
//!
//! Used by `mxdns check dane` (any domain, any address) and `GET /v1/domains/{d}/dane-check`
//! (a caller's own domain; only addresses the outbound policy allows are connected to). It
//! runs on the caller's thread (blocking: a command, or the API's blocking pool), never on a
//! DNS thread.

pub mod lookup;
pub mod smtp;
pub mod verdict;
pub mod verify;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use crate::outbound::AddressPolicy;
use crate::resolver::Resolver;
use lookup::{lookup, DnsStatus, Looked};
pub use verdict::Verdict;

/// How the test looks and connects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A validating resolver: its AD bit and SERVFAILs decide the DNS verdicts.
    pub resolver: SocketAddr,
    /// Each DNS query and each SMTP step.
    pub timeout: Duration,
    /// The SMTP port connected to (25; tests use another). TLSA is looked up at `_25._tcp`
    /// whatever it is: that is what senders ask.
    pub smtp_port: u16,
    /// The EHLO name.
    pub helo: String,
    /// Which addresses may be connected to (the API: the outbound policy); None: any.
    pub addresses: Option<AddressPolicy>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub domain: String,
    pub resolver: String,
    pub smtp_port: u16,
    /// Every MX host (and address) passes.
    pub pass: bool,
    /// The first failure (or success).
    pub verdict: Verdict,
    pub code: Option<&'static str>,
    pub summary: String,
    /// The MX lookup (absent when the host was given with `--mx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx: Option<Looked>,
    /// Domain-level findings (the MX lookup).
    pub evidence: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub hosts: Vec<HostReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReport {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<u16>,
    pub verdict: Verdict,
    pub code: Option<&'static str>,
    pub pass: bool,
    pub a: Looked,
    pub aaaa: Looked,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsa: Option<Looked>,
    /// Host-level findings (lookups that stop a sender before it connects).
    pub evidence: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub addresses: Vec<AddressReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressReport {
    pub address: String,
    pub verdict: Verdict,
    pub code: Option<&'static str>,
    pub evidence: Vec<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<smtp::Session>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<verify::ChainCheck>,
}

/// Runs the test for `domain`, or for the one MX host `mx` (as a sender does once it holds a
/// secure MX RRset). `now`: unix seconds, for certificate validity.
pub fn check(s: &Settings, domain: &str, mx: Option<&str>, now: i64) -> Result<Report, String> {
    let domain_name = parse(domain)?;
    let r = Resolver::new(s.resolver, s.timeout);
    let mut report = Report {
        domain: domain_name.to_ascii(),
        resolver: s.resolver.to_string(),
        smtp_port: s.smtp_port,
        pass: false,
        verdict: Verdict::Success,
        code: None,
        summary: String::new(),
        mx: None,
        evidence: Vec::new(),
        action: None,
        hosts: Vec::new(),
    };
    let mut domain_verdict = Verdict::Success;
    let hosts: Vec<(Name, Option<u16>)> = match mx {
        Some(h) => {
            report
                .evidence
                .push(format!("MX host given: {h} (the MX lookup is skipped)"));
            vec![(parse(h)?, None)]
        }
        None => {
            let m = lookup(&r, &domain_name, RecordType::MX);
            report.evidence.push(m.summary());
            let mut hosts: Vec<(u16, Name)> = m
                .data
                .iter()
                .filter_map(|d| match d {
                    RData::MX(x) => Some((x.preference, x.exchange.to_lowercase())),
                    _ => None,
                })
                .collect();
            hosts.sort();
            domain_verdict = match m.status {
                DnsStatus::Bogus => Verdict::DnssecInvalid,
                DnsStatus::Failed => Verdict::DnsQueryFailed,
                DnsStatus::Insecure => Verdict::NotDane,
                DnsStatus::Secure if hosts.iter().any(|(_, h)| h.is_root()) => {
                    report
                        .evidence
                        .push("a null MX (RFC 7505): the domain accepts no mail".into());
                    Verdict::Unreachable
                }
                DnsStatus::Secure => Verdict::Success,
                DnsStatus::Nodata | DnsStatus::Nxdomain if m.authentic => {
                    report.evidence.push(
                        "no MX records: the domain itself is the host (RFC 5321 5.1, RFC 7672 2.2.2)".into(),
                    );
                    hosts.push((0, domain_name.clone()));
                    Verdict::Success
                }
                DnsStatus::Nodata | DnsStatus::Nxdomain => Verdict::NotDane,
            };
            if domain_verdict != Verdict::Success {
                report.action = Some(domain_verdict.action(&format!("{} MX", report.domain)));
            }
            if matches!(domain_verdict, Verdict::NotDane) {
                report.evidence.push(
                    "the MX RRset is not DNSSEC-authentic: a DANE sender does not use DANE for this domain (RFC 7672 2.2.1); its hosts are shown all the same".into(),
                );
            }
            report.mx = Some(m);
            hosts
                .into_iter()
                .filter(|(_, h)| !h.is_root())
                .map(|(p, h)| (h, Some(p)))
                .collect()
        }
    };
    for (host, preference) in hosts {
        report
            .hosts
            .push(check_host(s, &r, &host, preference, &domain_name, now));
    }
    let first_failing_host = report.hosts.iter().find(|h| !h.pass);
    report.verdict = if domain_verdict != Verdict::Success {
        domain_verdict
    } else if let Some(h) = first_failing_host {
        h.verdict
    } else if report.hosts.is_empty() {
        Verdict::Unreachable
    } else {
        Verdict::Success
    };
    report.code = report.verdict.code();
    report.pass = report.verdict.pass();
    report.summary = if report.pass {
        format!(
            "PASS: every MX host of {} authenticates with DANE ({} host(s))",
            report.domain,
            report.hosts.len()
        )
    } else if domain_verdict != Verdict::Success {
        format!(
            "FAIL: {} at the MX lookup of {}",
            report.verdict.label(),
            report.domain
        )
    } else if let Some(h) = first_failing_host {
        format!("FAIL: {} at {}", h.verdict.label(), h.host)
    } else {
        format!("FAIL: {} has no MX host to deliver to", report.domain)
    };
    Ok(report)
}

fn parse(s: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(s.trim()).map_err(|_| format!("{s} is not a domain name"))?;
    n.set_fqdn(true);
    if n.is_root() {
        return Err(format!("{s} is not a domain name"));
    }
    Ok(n.to_lowercase())
}

fn check_host(
    s: &Settings,
    r: &Resolver,
    host: &Name,
    preference: Option<u16>,
    domain: &Name,
    now: i64,
) -> HostReport {
    let a = lookup(r, host, RecordType::A);
    let aaaa = lookup(r, host, RecordType::AAAA);
    let mut h = HostReport {
        host: host.to_ascii(),
        preference,
        verdict: Verdict::Success,
        code: None,
        pass: false,
        evidence: vec![a.summary(), aaaa.summary()],
        action: None,
        a,
        aaaa,
        tlsa: None,
        addresses: Vec::new(),
    };
    let stop = |mut h: HostReport, v: Verdict, at: String, why: Option<String>| {
        if let Some(w) = why {
            h.evidence.push(w);
        }
        h.verdict = v;
        h.code = v.code();
        h.action = Some(v.action(&at));
        h
    };
    // the address lookups
    for l in [&h.a, &h.aaaa] {
        if l.status == DnsStatus::Bogus {
            let at = format!("{} {}", l.name, l.rtype);
            return stop(h.clone(), Verdict::DnssecInvalid, at, None);
        }
    }
    let failed = [&h.a, &h.aaaa]
        .into_iter()
        .find(|l| l.status == DnsStatus::Failed)
        .map(|l| format!("{} {}", l.name, l.rtype));
    let ips: Vec<IpAddr> =
        h.a.data
            .iter()
            .chain(h.aaaa.data.iter())
            .filter_map(|d| match d {
                RData::A(x) => Some(IpAddr::V4(x.0)),
                RData::AAAA(x) => Some(IpAddr::V6(x.0)),
                _ => None,
            })
            .collect();
    if let Some(at) = failed {
        // a sender cannot know the host's addresses (or whether they are secure)
        return stop(h, Verdict::DnsQueryFailed, at, None);
    }
    if ips.is_empty() {
        let at = h.host.clone();
        return stop(
            h,
            Verdict::Unreachable,
            at,
            Some("the host has no A or AAAA record".into()),
        );
    }
    if !(h.a.secure() && h.aaaa.secure()) {
        let at = h.host.clone();
        return stop(
            h,
            Verdict::NotDane,
            at,
            Some("the address records are not DNSSEC-authentic: a DANE sender looks up no TLSA for this host (RFC 7672 2.2.2)".into()),
        );
    }
    // TLSA
    let tlsa_name = match Name::from_ascii("_25._tcp").and_then(|p| p.append_domain(host)) {
        Ok(n) => n,
        Err(_) => {
            let at = h.host.clone();
            return stop(
                h,
                Verdict::DnsQueryFailed,
                at,
                Some("the TLSA name is too long".into()),
            );
        }
    };
    let t = lookup(r, &tlsa_name, RecordType::TLSA);
    h.evidence.push(t.summary());
    let at = format!("{} TLSA", t.name);
    let status = t.status;
    let authentic = t.authentic;
    let records: Vec<hickory_proto::rr::rdata::TLSA> = t
        .data
        .iter()
        .filter_map(|d| match d {
            RData::TLSA(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    h.tlsa = Some(t);
    match status {
        DnsStatus::Bogus => return stop(h, Verdict::DnssecInvalid, at, None),
        DnsStatus::Failed => return stop(h, Verdict::DnsQueryFailed, at, None),
        DnsStatus::Insecure => {
            return stop(
                h,
                Verdict::NotDane,
                at,
                Some("the TLSA records are not DNSSEC-authentic: a sender ignores them".into()),
            )
        }
        DnsStatus::Nodata | DnsStatus::Nxdomain => {
            let why = if authentic {
                "no TLSA records (securely denied): a DANE sender delivers without authentication (opportunistic TLS)"
            } else {
                "no TLSA records, and the denial is not DNSSEC-authentic"
            };
            return stop(h, Verdict::NotDane, at, Some(why.into()));
        }
        DnsStatus::Secure => {}
    }
    let names = vec![h.host.clone(), domain.to_ascii()];
    for ip in ips {
        h.addresses.push(check_address(
            s,
            SocketAddr::new(ip, s.smtp_port),
            host,
            &records,
            &names,
            now,
        ));
    }
    h.pass = h.addresses.iter().all(|a| a.verdict.pass());
    h.verdict = h
        .addresses
        .iter()
        .map(|a| a.verdict)
        .find(|v| !v.pass())
        .unwrap_or(Verdict::Success);
    h.code = h.verdict.code();
    h
}

fn check_address(
    s: &Settings,
    addr: SocketAddr,
    host: &Name,
    records: &[hickory_proto::rr::rdata::TLSA],
    names: &[String],
    now: i64,
) -> AddressReport {
    let done = |v: Verdict, evidence: Vec<String>, smtp, certificates| AddressReport {
        address: addr.to_string(),
        verdict: v,
        code: v.code(),
        evidence,
        action: v.action(&addr.to_string()),
        smtp,
        certificates,
    };
    if let Some(policy) = &s.addresses {
        if let Err(why) = policy.check(addr.ip()) {
            return done(
                Verdict::Unreachable,
                vec![format!(
                    "not connected to: {} is a special-purpose address ({why}) that this server's outbound policy does not allow",
                    addr.ip()
                )],
                None,
                None,
            );
        }
    }
    let session = smtp::probe(addr, &host.to_ascii(), &s.helo, s.timeout);
    let mut evidence = Vec::new();
    if let Some(b) = session.banner.first() {
        evidence.push(format!("banner: {b}"));
    }
    if let (Some(stage), Some(why)) = (session.failed_at, session.failure.clone()) {
        use smtp::Stage;
        evidence.push(why);
        let v = match stage {
            Stage::Connect | Stage::Banner | Stage::Ehlo => Verdict::Unreachable,
            Stage::Starttls | Stage::Handshake => Verdict::StarttlsNotSupported,
        };
        return done(v, evidence, Some(session), None);
    }
    evidence.push(format!(
        "STARTTLS: {} {}",
        session.tls_version.as_deref().unwrap_or("?"),
        session.cipher_suite.as_deref().unwrap_or("?")
    ));
    let c = verify::check(records, &session.chain, names, now);
    if let Some(leaf) = c.chain.first() {
        evidence.push(format!(
            "certificate: {} (issuer {}, not after {}), SPKI SHA-256 {}",
            leaf.subject, leaf.issuer, leaf.not_after, leaf.spki_sha256
        ));
    }
    evidence.extend(c.notes.iter().cloned());
    let v = match &c.outcome {
        verify::Outcome::Match { .. } => Verdict::Success,
        verify::Outcome::Expired { .. } => Verdict::CertificateExpired,
        verify::Outcome::NoMatch => Verdict::TlsaInvalid,
        verify::Outcome::NoUsable => {
            evidence.push("no usable TLSA record (RFC 7672 3.1.3): senders require TLS but cannot authenticate the server".into());
            Verdict::TlsaInvalid
        }
    };
    done(v, evidence, Some(session), Some(c))
}

impl Report {
    /// The report as text, for the command line.
    pub fn text(&self) -> String {
        let mut o = String::new();
        o += &format!(
            "DANE validation test of {} (resolver {}, SMTP port {})\n",
            self.domain, self.resolver, self.smtp_port
        );
        for e in &self.evidence {
            o += &format!("  {e}\n");
        }
        if let Some(a) = &self.action {
            o += &format!("  action: {a}\n");
        }
        for h in &self.hosts {
            o += &format!(
                "\nMX host {}{}: {}\n",
                h.host,
                h.preference
                    .map(|p| format!(" (preference {p})"))
                    .unwrap_or_default(),
                h.verdict.label()
            );
            for e in &h.evidence {
                o += &format!("  {e}\n");
            }
            if let Some(t) = &h.tlsa {
                for rec in &t.records {
                    o += &format!("    {rec}\n");
                }
            }
            if let Some(a) = &h.action {
                o += &format!("  action: {a}\n");
            }
            for a in &h.addresses {
                o += &format!("  {}: {}\n", a.address, a.verdict.label());
                for e in &a.evidence {
                    o += &format!("    {e}\n");
                }
                if !a.verdict.pass() {
                    o += &format!("    action: {}\n", a.action);
                }
            }
        }
        o += &format!("\n{}\n", self.summary);
        o
    }
}
