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

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

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
}

/// A DNS answer as the checks need it.
struct Answer {
    rcode: ResponseCode,
    authentic: bool,
    records: Vec<RData>,
}

fn query(s: &CheckSettings, name: &str, rtype: RecordType) -> Result<Answer, String> {
    let qname = Name::from_ascii(name).map_err(|e| e.to_string())?;
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname, rtype));
    m.metadata.recursion_desired = true;
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let bind = if s.resolver.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(s.timeout))
        .map_err(|e| e.to_string())?;
    sock.connect(s.resolver).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        sock.send(&bytes).map_err(|e| e.to_string())?;
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let Ok(r) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if r.metadata.id != m.metadata.id {
            continue;
        }
        let r = if r.metadata.truncation {
            query_tcp(s, &bytes)?
        } else {
            r
        };
        return Ok(Answer {
            rcode: r.metadata.response_code,
            authentic: r.metadata.authentic_data,
            records: r
                .answers
                .into_iter()
                .filter(|x| x.record_type() == rtype)
                .map(|x| x.data)
                .collect(),
        });
    }
    Err("timeout".into())
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

/// The TXT records at `name` (each record's strings joined), through the configured resolver.
/// A name that does not exist, or has no TXT record, has none (`Ok(vec![])`).
pub fn lookup_txt(s: &CheckSettings, name: &str) -> Result<Vec<String>, LookupError> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    Name::from_ascii(&fqdn).map_err(|_| LookupError::BadName(name.into()))?;
    let a = query(s, &fqdn, RecordType::TXT).map_err(LookupError::NoAnswer)?;
    match a.rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(a
            .records
            .iter()
            .filter_map(|r| match r {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|d| String::from_utf8_lossy(d))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        other => Err(LookupError::Failed(other.to_string())),
    }
}

fn query_tcp(s: &CheckSettings, bytes: &[u8]) -> Result<Message, String> {
    let mut t = TcpStream::connect_timeout(&s.resolver, s.timeout).map_err(|e| e.to_string())?;
    t.set_read_timeout(Some(s.timeout))
        .map_err(|e| e.to_string())?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    t.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    t.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    t.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Message::from_vec(&buf).map_err(|e| e.to_string())
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
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
    let mx = match query(s, domain, RecordType::MX) {
        Err(_) => {
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
        .records
        .iter()
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
                        query(s, host, *t).is_ok_and(|a| {
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
    let Ok(txt) = query(s, &format!("_mta-sts.{domain}."), RecordType::TXT) else {
        return vec![];
    };
    let has_sts = txt.records.iter().any(|r| match r {
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|d| String::from_utf8_lossy(d))
            .collect::<String>()
            .starts_with("v=STSv1"),
        _ => false,
    });
    if !has_sts {
        return vec![];
    }
    let Some(expected) = expected_mx else {
        return vec![finding("ES002", format!("ES002: No expected MX record found to compare policy with. Enable DNSSEC feature for domain [{domain}] first."), "Complete the steps of setting up inbound SMTP DANE with DNSSEC.")];
    };
    let policy = match fetch_policy(s, domain) {
        Ok(p) => p,
        Err(e) => {
            return vec![finding(
                "ES000",
                format!("The MTA-STS policy of [{domain}] could not be fetched: {e}."),
                "Make the policy available at https://mta-sts.<domain>/.well-known/mta-sts.txt.",
            )]
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

/// GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3), at most 64 KiB.
fn fetch_policy(s: &CheckSettings, domain: &str) -> Result<String, String> {
    let host = format!("mta-sts.{domain}");
    let ip: IpAddr = [RecordType::A, RecordType::AAAA]
        .iter()
        .filter_map(|t| query(s, &format!("{host}."), *t).ok())
        .flat_map(|a| a.records)
        .find_map(|r| match r {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut files = vec![std::path::PathBuf::from(
        "/etc/ssl/certs/ca-certificates.crt",
    )];
    files.extend(s.ca_file.clone());
    for f in files {
        if let Ok(pem) = std::fs::read(&f) {
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect_timeout(&SocketAddr::new(ip, s.mta_sts_port), s.timeout)
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(s.timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(s.timeout))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let _ = Read::by_ref(&mut tls)
        .take(64 * 1024)
        .read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP status {status}"));
    }
    Ok(rest.to_string())
}
