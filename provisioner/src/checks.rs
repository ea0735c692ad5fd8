//! The live part of `Get-DnssecStatusForVerifiedDomain`: the domain's own MX records (through a
//! configured validating resolver) and its MTA-STS policy, reported with the reference's codes.
//!
//! - DNS: "Domain [d] not found." (NXDOMAIN), "DNS query error ..." (SERVFAIL, REFUSED, timeout),
//!   EX010 (other errors), EX012 (no MX), EX013 (no expected MX: DNSSEC not enabled),
//!   EX007 (no MX points at our service), EX002 (an MX points at our service but at another
//!   host), EX003 (the expected MX is not at preference 0), EX004 / EX005 / EX006 (another MX with
//!   the same / a larger / a smaller preference value than the expected one), EX008 (the expected
//!   MX is found but another is preferred to it), ED003 (the expected MX's address is not
//!   DNSSEC-authentic: no AD bit from the validating resolver).
//! - MTA-STS (RFC 8461): `_mta-sts.<domain>` TXT `v=STSv1`, then the policy at
//!   `https://mta-sts.<domain>/.well-known/mta-sts.txt`: ES001 (mode enforce and no `mx:` line
//!   matches the expected MX), ES002 (a policy exists but there is no expected MX yet).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};

use crate::outbound::AddressPolicy;
use crate::resolver::{Ask, Resolver, ResponseCode};

/// The most of a policy body read (RFC 8461 3.2: policies are at most 64 KiB).
const MAX_POLICY: u64 = 64 * 1024;

/// One finding, with the reference's code, message and action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub code: String,
    pub message: String,
    pub action: String,
}

fn finding(code: &str, message: String, action: &str) -> Finding {
    Finding {
        code: code.into(),
        message,
        action: action.into(),
    }
}

/// Where and how the checks look.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// A validating resolver (its AD bit decides ED003).
    pub resolver: SocketAddr,
    pub timeout: Duration,
    /// Extra trusted roots (PEM) for MTA-STS policy servers; the system roots are used too.
    pub ca_file: Option<std::path::PathBuf>,
    /// Port of the MTA-STS policy server (443; tests use another).
    pub mta_sts_port: u16,
    /// Which addresses the checks may connect to (special-purpose ones only when allowed).
    pub addresses: AddressPolicy,
    roots: Roots,
}

impl CheckSettings {
    pub fn new(
        resolver: SocketAddr,
        timeout: Duration,
        ca_file: Option<std::path::PathBuf>,
        mta_sts_port: u16,
        addresses: AddressPolicy,
    ) -> Self {
        Self {
            resolver,
            timeout,
            ca_file,
            mta_sts_port,
            addresses,
            roots: Roots::default(),
        }
    }

    fn dns(&self) -> Resolver {
        Resolver::new(self.resolver, self.timeout)
    }
}

/// Why [`lookup_txt`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("{0} is not a domain name")]
    BadName(String),
    #[error("the resolver did not answer: {0}")]
    NoAnswer(String),
    #[error("the resolver answered {0}")]
    Failed(String),
}

/// The TXT records at `name` (each record's strings joined), through the configured resolver
/// ([`Resolver::txt`]). A name that does not exist, or has no TXT record, has none
/// (`Ok(vec![])`).
pub fn lookup_txt(s: &CheckSettings, name: &str) -> Result<Vec<String>, LookupError> {
    use crate::resolver::ResolveError;
    s.dns().txt(name).map_err(|e| match e {
        ResolveError::BadName(n) => LookupError::BadName(n),
        ResolveError::Rcode { rcode, .. } => LookupError::Failed(rcode.to_string()),
        other => LookupError::NoAnswer(other.to_string()),
    })
}

/// The trusted roots of MTA-STS policy servers, read once per settings: the system's
/// (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the platform's store) and the
/// certificates of `status_ca_file`.
#[derive(Clone, Default)]
struct Roots(Arc<OnceLock<Arc<Vec<ureq::tls::Certificate<'static>>>>>);

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.get().map(|r| r.len());
        f.debug_tuple("Roots").field(&n).finish()
    }
}

impl Roots {
    fn get(&self, ca_file: Option<&std::path::Path>) -> Arc<Vec<ureq::tls::Certificate<'static>>> {
        self.0
            .get_or_init(|| {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::warn!(error = %e, "reading the system's trusted roots");
                }
                let mut roots: Vec<_> = native
                    .certs
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect();
                if let Some(f) = ca_file {
                    use rustls_pki_types::pem::PemObject;
                    match std::fs::read(f) {
                        Ok(pem) => {
                            let before = roots.len();
                            for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                                roots.push(ureq::tls::Certificate::from_der(c.as_ref()).to_owned());
                            }
                            if roots.len() == before {
                                tracing::warn!(file = %f.display(), "status_ca_file holds no certificate");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(file = %f.display(), error = %e, "status_ca_file cannot be read")
                        }
                    }
                }
                tracing::debug!(roots = roots.len(), "trusted roots for MTA-STS policy servers");
                Arc::new(roots)
            })
            .clone()
    }
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Runs every check for `domain`. `expected_mx` is the DNSSEC MX value (None: not enabled);
/// `service_zone` tells which MX targets are ours.
pub fn check_domain(
    s: &CheckSettings,
    domain: &str,
    expected_mx: Option<&str>,
    service_zone: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let retry = "Retry running the cmdlet after verifying the MX record configuration for the domain. DNS propagation can take up to 48 hours for some DNS providers.";
    let review = "Review your MX records. Ensure that one MX record matches the expected record returned by Enable-DnssecForVerifiedDomain or Get-DnssecStatusForVerifiedDomain.";
    let set_zero = "Set your MX record (the value returned by Enable-DnssecForVerifiedDomain or Get-DnssecStatusForVerifiedDomain) to priority 0.";
    let dns = s.dns();
    let mx = match dns.query_str(domain, RecordType::MX, Ask::RECURSIVE) {
        Err(e) => {
            tracing::warn!(domain, error = %e, "status check: the MX lookup failed");
            out.push(finding("DNSQueryError", format!("DNS query error occurs while getting MX records for [{domain}] domain."), "Retry running the cmdlet. You may need to review your configuration for the domain."));
            return out;
        }
        Ok(a) if a.rcode == ResponseCode::NXDomain => {
            out.push(finding(
                "DomainNotFound",
                format!("Domain [{domain}] not found."),
                retry,
            ));
            return out;
        }
        Ok(a) if matches!(a.rcode, ResponseCode::ServFail | ResponseCode::Refused) => {
            out.push(finding("DNSQueryError", format!("DNS query error occurs while getting MX records for [{domain}] domain."), "Retry running the cmdlet. You may need to review your configuration for the domain."));
            return out;
        }
        Ok(a) if a.rcode != ResponseCode::NoError => {
            out.push(finding(
                "EX010",
                format!("EX010: Unknown error while searching MX records for domain [{domain}]."),
                retry,
            ));
            return out;
        }
        Ok(a) => a,
    };
    let mxs: Vec<(u16, String)> = mx
        .data()
        .filter_map(|r| match r {
            RData::MX(m) => Some((
                m.preference,
                m.exchange
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            )),
            _ => None,
        })
        .collect();
    if mxs.is_empty() {
        out.push(finding(
            "EX012",
            format!("EX012: MX records not found for domain [{domain}]."),
            review,
        ));
    }
    match expected_mx {
        None => out.push(finding(
            "EX013",
            format!("EX013: Unknown expected MX record for domain [{domain}]."),
            "Enable DNSSEC for the domain (Enable-DnssecForVerifiedDomain) first.",
        )),
        Some(expected) if !mxs.is_empty() => {
            match mxs.iter().find(|(_, h)| same_host(h, expected)) {
                None => {
                    let zone = service_zone.trim_end_matches('.').to_ascii_lowercase();
                    if mxs.iter().any(|(_, h)| h.ends_with(&format!(".{zone}"))) {
                        out.push(finding(
                            "EX002",
                            "EX002: Value of MX record did not match the expected one.".into(),
                            review,
                        ));
                    } else {
                        out.push(finding(
                            "EX007",
                            "EX007: MX record was not found.".into(),
                            review,
                        ));
                    }
                }
                Some((pref, host)) => {
                    let others: Vec<u16> = mxs
                        .iter()
                        .filter(|(_, h)| !same_host(h, expected))
                        .map(|(p, _)| *p)
                        .collect();
                    if *pref != 0 {
                        out.push(finding(
                            "EX003",
                            "EX003: Priority of MX record did not match the expected one.".into(),
                            set_zero,
                        ));
                    }
                    if others.contains(pref) {
                        out.push(finding("EX004", "EX004: There is a different MX record with same preference as the expected one.".into(), "Switch the priorities so that the expected MX is 0, validate, then delete the legacy MX record."));
                    }
                    if others.iter().any(|p| p < pref) {
                        out.push(finding("EX006", "EX006: There is a different MX record with higher preference than the expected one.".into(), "Set your legacy MX record to priority 20 or higher, then to be removed."));
                        out.push(finding("EX008", "EX008: The correct MX record found, but with lower preference than expected.".into(), set_zero));
                    }
                    if others.iter().any(|p| p > pref) {
                        out.push(finding("EX005", "EX005: There is a different MX record with lower preference than the expected one.".into(), "Delete the legacy MX record once mail flows through the expected one."));
                    }
                    // the expected host's address must be DNSSEC-authentic
                    let authentic = [RecordType::A, RecordType::AAAA].iter().any(|t| {
                        dns.query_str(host, *t, Ask::RECURSIVE).is_ok_and(|a| {
                            a.rcode == ResponseCode::NoError && a.authentic && !a.records.is_empty()
                        })
                    });
                    if !authentic {
                        out.push(finding(
                            "ED003",
                            format!(
                                "ED003: Domain [{domain}] found. No authentic MX records found."
                            ),
                            retry,
                        ));
                    }
                }
            }
        }
        Some(_) => {}
    }
    out.extend(check_mta_sts(s, domain, expected_mx));
    out
}

/// The MTA-STS part: nothing when the domain publishes no policy.
fn check_mta_sts(s: &CheckSettings, domain: &str, expected_mx: Option<&str>) -> Vec<Finding> {
    let txt = match s.dns().txt(&format!("_mta-sts.{domain}.")) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(domain, error = %e, "status check: no MTA-STS record could be read");
            return vec![];
        }
    };
    if !txt.iter().any(|t| t.starts_with("v=STSv1")) {
        return vec![];
    }
    let Some(expected) = expected_mx else {
        return vec![finding("ES002", format!("ES002: No expected MX record found to compare policy with. Enable DNSSEC feature for domain [{domain}] first."), "Complete the steps of setting up inbound SMTP DANE with DNSSEC.")];
    };
    let policy = match fetch_policy(s, domain) {
        Ok(p) => p,
        Err(e) => {
            // the detail goes to the log, the answer says what the tenant can act on
            tracing::warn!(domain, error = %e, "status check: the MTA-STS policy could not be fetched");
            let message = match e {
                PolicyError::NoAddress(_) | PolicyError::OnlyRefused(_) => format!(
                    "The MTA-STS policy host mta-sts.{domain} has no public address to fetch the policy from."
                ),
                PolicyError::Fetch(_) => {
                    format!("The MTA-STS policy of [{domain}] could not be fetched over HTTPS.")
                }
            };
            return vec![finding(
                "ES000",
                message,
                "Make the policy available at https://mta-sts.<domain>/.well-known/mta-sts.txt.",
            )];
        }
    };
    let mut mode = String::new();
    let mut mx = Vec::new();
    for line in policy.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "mode" => mode = v.trim().to_string(),
                "mx" => mx.push(v.trim().to_ascii_lowercase()),
                _ => {}
            }
        }
    }
    let matches = mx.iter().any(|p| match p.strip_prefix("*.") {
        Some(suffix) => expected
            .split_once('.')
            .is_some_and(|(_, rest)| same_host(rest, suffix)),
        None => same_host(p, expected),
    });
    if mode == "enforce" && !matches {
        return vec![finding("ES001", "ES001: Expected MX record missing in policy while mode is ''enforced''.".into(), "Set the policy mode to testing, add the expected MX host as an mx line, update the policy id.")];
    }
    vec![]
}

/// Why a policy was not fetched; the text is for the log only.
#[derive(Debug, thiserror::Error)]
enum PolicyError {
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("not connecting to special-purpose addresses only: {0} (status_allow_addresses)")]
    OnlyRefused(String),
    #[error("{0}")]
    Fetch(String),
}

/// GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3): the host's addresses
/// are resolved once through the configured resolver and checked against the address policy;
/// the HTTPS client connects to the checked addresses only (it never resolves the name itself),
/// verifies the certificate for the host name against the trusted roots, follows no redirect,
/// uses no proxy, and reads at most 64 KiB, all within the check timeout.
fn fetch_policy(s: &CheckSettings, domain: &str) -> Result<String, PolicyError> {
    let host = format!("mta-sts.{domain}");
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(PolicyError::NoAddress(host));
    }
    let ips = s
        .dns()
        .addresses(&host)
        .map_err(|e| PolicyError::Fetch(e.to_string()))?;
    if ips.is_empty() {
        return Err(PolicyError::NoAddress(host));
    }
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for ip in ips {
        match s.addresses.check(ip) {
            Ok(()) => allowed.push(SocketAddr::new(ip, s.mta_sts_port)),
            Err(why) => refused.push(format!("{ip} ({why})")),
        }
    }
    if !refused.is_empty() {
        tracing::warn!(host, refused = %refused.join(", "), "status check: special-purpose addresses of the MTA-STS host are not connected to");
    }
    if allowed.is_empty() {
        return Err(PolicyError::OnlyRefused(format!(
            "{host}: {}",
            refused.join(", ")
        )));
    }
    fetch_from(s, &host, allowed)
}

/// The HTTPS GET of the policy of `host` from `addrs` (already checked) only.
fn fetch_from(
    s: &CheckSettings,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<String, PolicyError> {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(
            s.roots.get(s.ca_file.as_deref()),
        ))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .proxy(None)
        .https_only(true)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(s.timeout))
        .user_agent("mxdns status check")
        .max_idle_connections(0)
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        Pinned {
            host: host.to_string(),
            addrs,
        },
    );
    let url = format!("https://{host}:{}/.well-known/mta-sts.txt", s.mta_sts_port);
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| PolicyError::Fetch(format!("{url}: {e}")))?;
    let status = response.status();
    if status != 200 {
        // 3xx included: RFC 8461 3.3, "HTTP 3xx redirects MUST NOT be followed"
        return Err(PolicyError::Fetch(format!("{url}: HTTP status {status}")));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_POLICY)
        .read_to_string()
        .map_err(|e| PolicyError::Fetch(format!("{url}: {e}")))
}

/// The name resolution of the policy fetch: the addresses already checked, for the policy host
/// only (anything else, were ureq ever to ask, is not found).
#[derive(Debug)]
struct Pinned {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl ureq::unversioned::resolver::Resolver for Pinned {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if !uri
            .host()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
        {
            return Err(ureq::Error::HostNotFound);
        }
        let mut out = self.empty();
        // ureq keeps at most 16 addresses (`ResolvedSocketAddrs`)
        for a in self.addrs.iter().take(16) {
            out.push(*a);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! The policy fetch against a real TLS server (rustls, certificates made by openssl) on
    //! loopback; the address policy and the DNS side are tested in `outbound`, `resolver` and
    //! the end-to-end status test.
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use std::io::{Read, Write};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A test CA and a certificate for `mta-sts.t.test` signed by it.
    fn pki(dir: &std::path::Path) {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=mta-sts.t.test",
            ],
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:mta-sts.t.test\n").unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
    }

    /// An HTTPS server on 127.0.0.1 answering every request with `answer`; counts requests.
    /// It stops with the test process (its thread blocks in accept).
    fn https(dir: &std::path::Path, answer: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("srv.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                if head.ends_with(b"\r\n\r\n") {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = tls.write_all(&answer);
                    let _ = tls.flush();
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (addr, requests)
    }

    fn settings(dir: &std::path::Path, port: u16, with_ca: bool) -> CheckSettings {
        CheckSettings::new(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            Duration::from_secs(3),
            with_ca.then(|| dir.join("ca.pem")),
            port,
            AddressPolicy::default(),
        )
    }

    fn ok(body: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
    }

    const POLICY: &str = "version: STSv1\nmode: enforce\nmx: *.mx.example\nmax_age: 86400\n";

    #[test]
    fn the_policy_is_fetched_from_the_checked_address_with_the_configured_root() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let (addr, requests) = https(dir.path(), ok(POLICY));
        let s = settings(dir.path(), addr.port(), true);
        assert_eq!(
            fetch_from(&s, "mta-sts.t.test", vec![addr]).unwrap(),
            POLICY
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        // the certificate must be for the policy host, and from a trusted root
        let e = fetch_from(&s, "mta-sts.other.test", vec![addr]).unwrap_err();
        assert!(matches!(e, PolicyError::Fetch(_)), "{e}");
        let untrusted = settings(dir.path(), addr.port(), false);
        let e = fetch_from(&untrusted, "mta-sts.t.test", vec![addr]).unwrap_err();
        assert!(matches!(e, PolicyError::Fetch(_)), "{e}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "no request without a verified server"
        );
    }

    #[test]
    fn redirects_are_not_followed_and_bodies_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let (addr, requests) = https(
            dir.path(),
            // to the same host: were it followed, the pinned address would see a second request
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://mta-sts.t.test/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        );
        let s = settings(dir.path(), addr.port(), true);
        let e = fetch_from(&s, "mta-sts.t.test", vec![addr]).unwrap_err();
        assert!(matches!(e, PolicyError::Fetch(_)), "{e}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "the redirect was not followed"
        );

        let at_limit = "x".repeat(MAX_POLICY as usize);
        let (addr, _) = https(dir.path(), ok(&at_limit));
        let s = settings(dir.path(), addr.port(), true);
        assert_eq!(
            fetch_from(&s, "mta-sts.t.test", vec![addr]).unwrap().len(),
            at_limit.len()
        );
        let over = "x".repeat(MAX_POLICY as usize + 1);
        let (addr, _) = https(dir.path(), ok(&over));
        let s = settings(dir.path(), addr.port(), true);
        let e = fetch_from(&s, "mta-sts.t.test", vec![addr]).unwrap_err();
        assert!(matches!(e, PolicyError::Fetch(_)), "{e}");
    }

    #[test]
    fn a_failed_lookup_or_a_bad_name_fetches_nothing() {
        let s = CheckSettings::new(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            Duration::from_millis(200),
            None,
            443,
            AddressPolicy::default(),
        );
        // no resolver answers on port 9: the lookup fails, and nothing is fetched
        assert!(matches!(
            fetch_policy(&s, "t.test"),
            Err(PolicyError::Fetch(_))
        ));
        assert!(matches!(
            fetch_policy(&s, "bad/name"),
            Err(PolicyError::NoAddress(_))
        ));
    }
}
