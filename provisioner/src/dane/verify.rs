//! The presented chain against the TLSA RRset (RFC 6698 2.1, RFC 7671, RFC 7672 3):
//!
//! - usable records: DANE-EE (3) and DANE-TA (2), selector 0 (whole certificate) or 1 (SPKI),
//!   matching 0 (exact), 1 (SHA-256), 2 (SHA-512); PKIX-TA/PKIX-EE (0, 1) and unknown
//!   parameters are unusable for SMTP (RFC 7672 3.1.3);
//! - DANE-EE: the leaf matches; no name check, and RFC 7672 3.1.1 says no expiry check either,
//!   but Exchange Online defers an expired leaf with 4.7.322, so an expired leaf is reported as
//!   such (the evidence says that RFC 7672 senders would still deliver);
//! - DANE-TA: a certificate of the chain above the leaf matches, and the leaf chains to it
//!   (signatures, validity, basic constraints and key usage checked by webpki, through rustls'
//!   verifier with that certificate as the only trust anchor) with a name of the leaf equal to
//!   a reference identifier (RFC 7672 3.2.2/3.2.3: the MX host name, or the next-hop domain;
//!   a wildcard only as the whole left-most label). The server must send the trust anchor in
//!   its chain (RFC 7671 5.2.2 recommends it): one that is left out cannot be matched here.

use std::sync::Arc;

use hickory_proto::rr::rdata::TLSA;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;

use crate::certs;

/// One presented certificate as a report shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertView {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// SHA-256 of the SubjectPublicKeyInfo (what `3 1 1` / `2 1 1` hold), hex.
    pub spki_sha256: String,
    /// SHA-256 of the whole certificate (what `3 0 1` / `2 0 1` hold), hex.
    pub cert_sha256: String,
}

/// The result of matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// A usable record authenticates the chain.
    Match { record: String },
    /// The record that matches names an expired (or not yet valid) certificate.
    Expired { record: String, detail: String },
    /// No usable record matches.
    NoMatch,
    /// Every record is unusable.
    NoUsable,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainCheck {
    pub chain: Vec<CertView>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What was tried and why it did or did not match.
    pub notes: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// Whether a record's parameters are usable for SMTP, and why not.
pub fn usable(t: &TLSA) -> Result<(), &'static str> {
    match u8::from(t.cert_usage) {
        2 | 3 => {}
        0 | 1 => return Err("PKIX usages (0, 1) are not used with SMTP (RFC 7672 3.1.3)"),
        _ => return Err("unknown certificate usage"),
    }
    if u8::from(t.selector) > 1 {
        return Err("unknown selector");
    }
    if u8::from(t.matching) > 2 {
        return Err("unknown matching type");
    }
    Ok(())
}

/// The association data of `der` for the record's selector and matching type.
fn association(t: &TLSA, der: &[u8]) -> Option<Vec<u8>> {
    let content = match u8::from(t.selector) {
        0 => der.to_vec(),
        1 => certs::spki_der(der).ok()?,
        _ => return None,
    };
    Some(match u8::from(t.matching) {
        0 => content,
        1 => sha256(&content),
        2 => ring::digest::digest(&ring::digest::SHA512, &content)
            .as_ref()
            .to_vec(),
        _ => return None,
    })
}

fn view(der: &[u8], now: i64) -> CertView {
    match certs::describe_der(der) {
        Ok(i) => CertView {
            subject: i.subject,
            issuer: i.issuer,
            not_before: i.not_before_text,
            not_after: i.not_after_text,
            expired: now > i.not_after,
            not_yet_valid: now < i.not_before,
            spki_sha256: hex(&i.spki_sha256),
            cert_sha256: hex(&sha256(der)),
        },
        Err(e) => CertView {
            subject: format!("(unreadable: {e})"),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            expired: false,
            not_yet_valid: false,
            spki_sha256: String::new(),
            cert_sha256: hex(&sha256(der)),
        },
    }
}

/// Checks `chain` (leaf first, DER) against `tlsa`; `names` are the reference identifiers for
/// DANE-TA; `now` in unix seconds.
pub fn check(tlsa: &[TLSA], chain: &[Vec<u8>], names: &[String], now: i64) -> ChainCheck {
    let views: Vec<CertView> = chain.iter().map(|d| view(d, now)).collect();
    let mut notes = Vec::new();
    let records: Vec<&TLSA> = tlsa
        .iter()
        .filter(|t| match usable(t) {
            Ok(()) => true,
            Err(why) => {
                notes.push(format!("{t}: unusable, {why}"));
                false
            }
        })
        .collect();
    let done = |outcome, notes| ChainCheck {
        chain: views.clone(),
        outcome,
        notes,
    };
    if records.is_empty() {
        return done(Outcome::NoUsable, notes);
    }
    let Some(leaf) = chain.first() else {
        return done(Outcome::NoMatch, notes);
    };
    let mut expired: Option<(String, String)> = None;
    // DANE-EE
    for t in records.iter().filter(|t| u8::from(t.cert_usage) == 3) {
        if association(t, leaf).as_deref() == Some(&t.cert_data[..]) {
            let v = &views[0];
            if v.expired || v.not_yet_valid {
                let detail = if v.expired {
                    format!("the certificate expired at {}", v.not_after)
                } else {
                    format!("the certificate is not valid before {}", v.not_before)
                };
                notes.push(format!(
                    "{t}: matches the leaf ({}), but {detail}; RFC 7672 senders (DANE-EE ignores validity) would deliver, Exchange Online defers with 4.7.322",
                    v.subject
                ));
                expired.get_or_insert((t.to_string(), detail));
                continue;
            }
            notes.push(format!("{t}: matches the leaf ({})", v.subject));
            return done(
                Outcome::Match {
                    record: t.to_string(),
                },
                notes,
            );
        }
        notes.push(format!(
            "{t}: does not match the leaf ({}, SPKI SHA-256 {})",
            views[0].subject, views[0].spki_sha256
        ));
    }
    // DANE-TA
    for t in records.iter().filter(|t| u8::from(t.cert_usage) == 2) {
        let Some(i) = (1..chain.len())
            .find(|&i| association(t, &chain[i]).as_deref() == Some(&t.cert_data[..]))
        else {
            notes.push(format!(
                "{t}: matches no certificate above the leaf in the presented chain (a DANE-TA server must send its trust anchor)"
            ));
            continue;
        };
        match chains_to(leaf, &chain[1..i], &chain[i], names, now) {
            Ok(name) => {
                notes.push(format!(
                    "{t}: matches {} in the chain; the leaf chains to it and is valid for {name}",
                    views[i].subject
                ));
                return done(
                    Outcome::Match {
                        record: t.to_string(),
                    },
                    notes,
                );
            }
            Err(TaFailure::Expired(detail)) => {
                notes.push(format!("{t}: matches {}, but {detail}", views[i].subject));
                expired.get_or_insert((t.to_string(), detail));
            }
            Err(TaFailure::Other(detail)) => {
                notes.push(format!("{t}: matches {}, but {detail}", views[i].subject));
            }
        }
    }
    match expired {
        Some((record, detail)) => done(Outcome::Expired { record, detail }, notes),
        None => done(Outcome::NoMatch, notes),
    }
}

enum TaFailure {
    Expired(String),
    Other(String),
}

/// The leaf chains to `anchor` through `intermediates` and is valid for one of `names`.
fn chains_to(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    anchor: &[u8],
    names: &[String],
    now: i64,
) -> Result<String, TaFailure> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::{CertificateError, Error};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(anchor.to_vec()))
        .map_err(|e| TaFailure::Other(format!("it is not usable as a trust anchor ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TaFailure::Other(e.to_string()))?;
    let ee = CertificateDer::from(leaf.to_vec());
    let inter: Vec<CertificateDer<'static>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    let mut name_errors = Vec::new();
    for n in names {
        let Ok(server_name) = ServerName::try_from(n.trim_end_matches('.').to_string()) else {
            continue;
        };
        match verifier.verify_server_cert(&ee, &inter, &server_name, &[], time) {
            Ok(_) => return Ok(n.trim_end_matches('.').to_string()),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => name_errors.push(n.trim_end_matches('.').to_string()),
            Err(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => {
                return Err(TaFailure::Expired(
                    "a certificate of the chain to it has expired".into(),
                ))
            }
            Err(Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            )) => {
                return Err(TaFailure::Expired(
                    "a certificate of the chain to it is not valid yet".into(),
                ))
            }
            Err(e) => {
                return Err(TaFailure::Other(format!(
                    "the leaf does not chain to it ({e})"
                )))
            }
        }
    }
    Err(TaFailure::Other(format!(
        "the leaf is not valid for any reference identifier ({}; RFC 7672 3.2.3)",
        name_errors.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    //! Association data computed by openssl (the judge), matched by `check`.
    use super::*;
    use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
    use std::path::Path;
    use std::process::Command;

    fn sh(dir: &Path, cmd: &str) -> Vec<u8> {
        let out = Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg(cmd)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// openssl's association data of `crt` for (selector, matching).
    fn openssl_data(dir: &Path, crt: &str, selector: u8, matching: u8) -> Vec<u8> {
        let content = match selector {
            0 => format!("openssl x509 -in {crt} -outform DER"),
            _ => {
                format!("openssl x509 -in {crt} -noout -pubkey | openssl pkey -pubin -outform DER")
            }
        };
        match matching {
            0 => sh(dir, &content),
            1 => unhex(
                String::from_utf8(sh(dir, &format!("{content} | openssl dgst -sha256 -r")))
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap(),
            ),
            _ => unhex(
                String::from_utf8(sh(dir, &format!("{content} | openssl dgst -sha512 -r")))
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap(),
            ),
        }
    }

    fn der(dir: &Path, crt: &str) -> Vec<u8> {
        sh(dir, &format!("openssl x509 -in {crt} -outform DER"))
    }

    fn record(u: u8, s: u8, m: u8, data: Vec<u8>) -> TLSA {
        TLSA::new(
            CertUsage::from(u),
            Selector::from(s),
            Matching::from(m),
            data,
        )
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn certs(dir: &Path) {
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        sh(dir, &format!("openssl req -x509 {ec} -keyout ee.key -out ee.pem -days 2 -subj /CN=ee -addext basicConstraints=critical,CA:FALSE 2>/dev/null"));
        sh(dir, &format!("openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=ca -addext basicConstraints=critical,CA:TRUE 2>/dev/null"));
        sh(dir, &format!("openssl req -new {ec} -keyout leaf.key -out leaf.csr -subj /CN=mx.example.net 2>/dev/null"));
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:mx.example.net\nbasicConstraints=critical,CA:FALSE\n",
        )
        .unwrap();
        sh(dir, "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null");
    }

    #[test]
    fn dane_ee_every_selector_and_matching_type() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        certs(d);
        let chain = vec![der(d, "ee.pem")];
        let names = vec!["mx.example.net".to_string()];
        for s in [0u8, 1] {
            for m in [0u8, 1, 2] {
                let data = openssl_data(d, "ee.pem", s, m);
                let c = check(&[record(3, s, m, data.clone())], &chain, &names, now());
                assert!(
                    matches!(c.outcome, Outcome::Match { .. }),
                    "3 {s} {m}: {c:?}"
                );
                let mut wrong = data;
                wrong[0] ^= 1;
                let c = check(&[record(3, s, m, wrong)], &chain, &names, now());
                assert_eq!(c.outcome, Outcome::NoMatch, "3 {s} {m}");
            }
        }
        // a matching record among unusable and wrong ones still authenticates
        let good = record(3, 1, 1, openssl_data(d, "ee.pem", 1, 1));
        let set = [
            record(1, 1, 1, openssl_data(d, "ee.pem", 1, 1)),
            record(3, 1, 1, vec![0; 32]),
            good.clone(),
        ];
        assert!(matches!(
            check(&set, &chain, &names, now()).outcome,
            Outcome::Match { .. }
        ));
        // the validity is passed in: ten days on, the matched leaf has expired (4.7.322)
        let c = check(&[good], &chain, &names, now() + 10 * 86400);
        assert!(matches!(c.outcome, Outcome::Expired { .. }), "{c:?}");
    }

    #[test]
    fn pkix_usages_and_unknown_parameters_are_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        certs(d);
        let chain = vec![der(d, "ee.pem")];
        let spki = openssl_data(d, "ee.pem", 1, 1);
        for r in [
            record(0, 1, 1, spki.clone()),
            record(1, 1, 1, spki.clone()),
            record(3, 2, 1, spki.clone()),
            record(3, 1, 3, spki.clone()),
            record(4, 1, 1, spki.clone()),
        ] {
            let c = check(std::slice::from_ref(&r), &chain, &[], now());
            assert_eq!(c.outcome, Outcome::NoUsable, "{r}");
        }
    }

    #[test]
    fn dane_ta_chain_and_name_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        certs(d);
        let chain = vec![der(d, "leaf.pem"), der(d, "ca.pem")];
        let names = |n: &str| vec![n.to_string()];
        for (s, m) in [(0u8, 1u8), (1, 1), (1, 2), (0, 0)] {
            let ta = record(2, s, m, openssl_data(d, "ca.pem", s, m));
            let c = check(
                std::slice::from_ref(&ta),
                &chain,
                &names("mx.example.net"),
                now(),
            );
            assert!(
                matches!(c.outcome, Outcome::Match { .. }),
                "2 {s} {m}: {c:?}"
            );
            // RFC 7672 3.2.3: the leaf must carry a reference identifier
            let c = check(
                std::slice::from_ref(&ta),
                &chain,
                &names("other.example.net"),
                now(),
            );
            assert_eq!(c.outcome, Outcome::NoMatch, "2 {s} {m}");
        }
        let ta = record(2, 1, 1, openssl_data(d, "ca.pem", 1, 1));
        // the trust anchor not sent: nothing to match
        let c = check(
            std::slice::from_ref(&ta),
            &chain[..1],
            &names("mx.example.net"),
            now(),
        );
        assert_eq!(c.outcome, Outcome::NoMatch);
        // a 2 x x of the leaf itself is no trust anchor above it
        let self_ta = record(2, 1, 1, openssl_data(d, "leaf.pem", 1, 1));
        let c = check(&[self_ta], &chain, &names("mx.example.net"), now());
        assert_eq!(c.outcome, Outcome::NoMatch);
        // a leaf the anchor did not sign (the self-signed ee) with the CA sent beside it
        let c = check(
            std::slice::from_ref(&ta),
            &[der(d, "ee.pem"), der(d, "ca.pem")],
            &names("mx.example.net"),
            now(),
        );
        assert_eq!(c.outcome, Outcome::NoMatch);
        // ten days on, the chain has expired (4.7.322)
        let c = check(&[ta], &chain, &names("mx.example.net"), now() + 10 * 86400);
        assert!(matches!(c.outcome, Outcome::Expired { .. }), "{c:?}");
    }
}
