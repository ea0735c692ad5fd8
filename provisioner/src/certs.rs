//! Fleet certificates (PEM) → TLSA data: the SHA-256 of the DER SubjectPublicKeyInfo (selector
//! 1, matching type 1), as `3 1 1` for the fleet's own certificates and `2 1 1` for issuers.
//!
//! PEM is read by `rustls-pki-types` and X.509 (RFC 5280) decoded by `x509-cert` (RustCrypto's
//! strict DER decoder: trailing data, indefinite lengths and other BER forms are refused). What a
//! certificate may be used for is checked here: an issuer (DANE-TA) must be a CA certificate, a
//! fleet certificate (DANE-EE, `current`/`next`) must not be. Nothing here panics on arbitrary
//! input, and no error text repeats the input (a private key pasted by mistake is never echoed).

use rustls_pki_types::pem::{self, SectionKind};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// What the provisioner needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub spki_sha256: [u8; 32],
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The same as RFC 3339 UTC text (`2026-12-01T20:53:31Z`).
    pub not_before_text: String,
    pub not_after_text: String,
    /// Subject and issuer as RFC 4514 text (e.g. `CN=mx.example`).
    pub subject: String,
    pub issuer: String,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// keyUsage, when the extension is present: keyCertSign asserted.
    pub key_cert_sign: Option<bool>,
}

/// What a certificate is given for in `PUT /v1/partitions/{p}/certificates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUse {
    /// `current` / `next`: the fleet's own end-entity certificate (TLSA `3 1 1`, DANE-EE).
    EndEntity,
    /// `issuers`: a CA that issues the fleet's certificates (TLSA `2 1 1`, DANE-TA).
    Issuer,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no PEM CERTIFICATE block found")]
    NoPem,
    #[error("the PEM block is a {0}, not a CERTIFICATE")]
    NotACertificate(String),
    #[error("more than one certificate was given where one is expected")]
    MoreThanOne,
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("the certificate expired at {not_after} (unix time)")]
    Expired { not_after: i64 },
    #[error("the certificate is not valid before {not_before} (unix time)")]
    NotYetValid { not_before: i64 },
    #[error("the certificate of {subject} is not a CA certificate (no basicConstraints with cA true), so it cannot be an issuer (DANE-TA); give the certificate of the CA that issued the fleet's certificates")]
    NotACa { subject: String },
    #[error("the certificate of {subject} is a CA certificate but its keyUsage does not allow keyCertSign, so it cannot issue the fleet's certificates")]
    CaWithoutCertSign { subject: String },
    #[error("the certificate of {subject} is a CA certificate (basicConstraints cA true); give the fleet's own end-entity certificate here and CA certificates as issuers")]
    IsACa { subject: String },
}

fn malformed(s: &str) -> CertError {
    CertError::Malformed(s.to_string())
}

/// The label of a PEM section, as written after `BEGIN`.
fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        _ => "PEM block of another kind",
    }
}

/// Parses exactly one PEM `CERTIFICATE` block and checks that `now` is inside its validity.
pub fn parse_certificate_pem(pem: &str, now: i64) -> Result<CertInfo, CertError> {
    let der = single_certificate(pem)?;
    let info = parse_der(&der)?;
    if now < info.not_before {
        return Err(CertError::NotYetValid {
            not_before: info.not_before,
        });
    }
    if now > info.not_after {
        return Err(CertError::Expired {
            not_after: info.not_after,
        });
    }
    Ok(info)
}

/// What a stored certificate says, without the validity check (for reports).
pub fn describe(pem: &str) -> Result<CertInfo, CertError> {
    parse_der(&single_certificate(pem)?)
}

/// [`parse_certificate_pem`], then checks that the certificate may be used as `used_as`.
pub fn parse_for(pem: &str, now: i64, used_as: CertUse) -> Result<CertInfo, CertError> {
    let info = parse_certificate_pem(pem, now)?;
    check_use(&info, used_as)?;
    Ok(info)
}

/// An issuer must be a CA certificate (RFC 5280 4.2.1.9) whose key may sign certificates
/// (4.2.1.3, when keyUsage is present); a fleet certificate must not be a CA certificate.
pub fn check_use(info: &CertInfo, used_as: CertUse) -> Result<(), CertError> {
    let subject = || {
        if info.subject.is_empty() {
            "(empty subject)".to_string()
        } else {
            info.subject.clone()
        }
    };
    match used_as {
        CertUse::Issuer if !info.is_ca => Err(CertError::NotACa { subject: subject() }),
        CertUse::Issuer if info.key_cert_sign == Some(false) => {
            Err(CertError::CaWithoutCertSign { subject: subject() })
        }
        CertUse::EndEntity if info.is_ca => Err(CertError::IsACa { subject: subject() }),
        _ => Ok(()),
    }
}

/// The DER of the one CERTIFICATE block of `pem`: the first block must be a certificate and
/// there must be no second one.
fn single_certificate(pem: &str) -> Result<Vec<u8>, CertError> {
    let mut certs = Vec::new();
    for section in pem::SliceIter::<(SectionKind, Vec<u8>)>::new(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| match e {
            pem::Error::MissingSectionEnd { .. } => malformed("PEM block without END line"),
            pem::Error::IllegalSectionStart { .. } => malformed("bad PEM BEGIN line"),
            pem::Error::Base64Decode(_) => malformed("bad base64"),
            pem::Error::SectionTooLarge => malformed("PEM block too large"),
            _ => malformed("unreadable PEM"),
        })?;
        if kind != SectionKind::Certificate {
            if certs.is_empty() {
                return Err(CertError::NotACertificate(label(kind).into()));
            }
            continue;
        }
        certs.push(der);
    }
    match certs.len() {
        0 => Err(CertError::NoPem),
        1 => Ok(certs.pop().unwrap_or_default()),
        _ => Err(CertError::MoreThanOne),
    }
}

/// What a DER certificate says (a chain presented by a server), without the validity check.
pub fn describe_der(der: &[u8]) -> Result<CertInfo, CertError> {
    parse_der(der)
}

/// The DER SubjectPublicKeyInfo of a DER certificate (TLSA selector 1).
pub fn spki_der(der: &[u8]) -> Result<Vec<u8>, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| {
        CertError::Malformed(format!("not an X.509 certificate in DER ({})", e.kind()))
    })?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| malformed("the public key cannot be encoded"))
}

fn parse_der(der: &[u8]) -> Result<CertInfo, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| {
        CertError::Malformed(format!("not an X.509 certificate in DER ({})", e.kind()))
    })?;
    let tbs = cert.tbs_certificate();
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|_| malformed("the public key cannot be encoded"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    let validity = tbs.validity();
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs());
    let not_before = secs(validity.not_before).map_err(|_| malformed("bad notBefore"))?;
    let not_after = secs(validity.not_after).map_err(|_| malformed("bad notAfter"))?;
    if not_after < not_before {
        return Err(malformed("notAfter is before notBefore"));
    }
    let basic = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|_| malformed("bad or repeated basicConstraints extension"))?;
    let usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|_| malformed("bad or repeated keyUsage extension"))?;
    Ok(CertInfo {
        spki_sha256,
        not_before,
        not_after,
        not_before_text: validity.not_before.to_string(),
        not_after_text: validity.not_after.to_string(),
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        is_ca: basic.is_some_and(|(_, b)| b.ca),
        key_cert_sign: usage.map(|(_, u)| u.key_cert_sign()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

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

    fn spki_hex(dir: &std::path::Path, cert: &str) -> String {
        let out = Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg(format!("openssl x509 -in {cert} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn ec_and_rsa_certificates_match_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ec.key",
                "-out",
                "ec.pem",
                "-days",
                "30",
                "-subj",
                "/CN=mx.example",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "rsa.key",
                "-out",
                "rsa.pem",
                "-days",
                "30",
                "-subj",
                "/CN=rsa.example",
            ],
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        for (f, cn) in [("ec.pem", "CN=mx.example"), ("rsa.pem", "CN=rsa.example")] {
            let pem = std::fs::read_to_string(d.join(f)).unwrap();
            let info = parse_certificate_pem(&pem, now).unwrap();
            assert_eq!(hex(&info.spki_sha256), spki_hex(d, f), "{f}");
            assert_eq!(info.subject, cn);
            assert_eq!(info.issuer, cn, "self-signed");
            assert_eq!(info.not_after_text, openssl_date(d, f, "enddate"), "{f}");
            assert_eq!(info.not_before_text, openssl_date(d, f, "startdate"), "{f}");
            assert!(
                info.not_before <= now
                    && info.not_after > now + 29 * 86400
                    && info.not_after < now + 31 * 86400
            );
            // validity is checked against the given time
            assert_eq!(
                parse_certificate_pem(&pem, info.not_after + 1),
                Err(CertError::Expired {
                    not_after: info.not_after
                })
            );
            assert_eq!(
                parse_certificate_pem(&pem, info.not_before - 1),
                Err(CertError::NotYetValid {
                    not_before: info.not_before
                })
            );
        }
        let key = std::fs::read_to_string(d.join("ec.key")).unwrap();
        assert_eq!(
            parse_certificate_pem(&key, now),
            Err(CertError::NotACertificate("PRIVATE KEY".into()))
        );
        let two = format!(
            "{}{}",
            std::fs::read_to_string(d.join("ec.pem")).unwrap(),
            std::fs::read_to_string(d.join("rsa.pem")).unwrap()
        );
        assert_eq!(
            parse_certificate_pem(&two, now),
            Err(CertError::MoreThanOne)
        );
        let pem = std::fs::read_to_string(d.join("ec.pem")).unwrap();
        let mut lines: Vec<&str> = pem.lines().collect();
        lines.remove(3);
        assert!(matches!(
            parse_certificate_pem(&lines.join("\n"), now),
            Err(CertError::Malformed(_))
        ));
    }

    /// openssl's `-startdate`/`-enddate` of a certificate as RFC 3339 UTC.
    fn openssl_date(dir: &std::path::Path, cert: &str, which: &str) -> String {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args([
                "x509",
                "-noout",
                "-dateopt",
                "iso_8601",
                &format!("-{which}"),
                "-in",
                cert,
            ])
            .output()
            .unwrap();
        // notAfter=2026-12-31 10:00:00Z
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text.trim().split_once('=').unwrap().1.to_string();
        v.replacen(' ', "T", 1)
    }

    fn make(dir: &std::path::Path, name: &str, ext: &[&str]) -> String {
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ];
        let subj = format!("/CN={name}");
        let (key, out) = (format!("{name}.key"), format!("{name}.pem"));
        args.extend([subj.as_str(), "-keyout", &key, "-out", &out]);
        for e in ext {
            args.extend(["-addext", e]);
        }
        openssl(dir, &args);
        std::fs::read_to_string(dir.join(out)).unwrap()
    }

    #[test]
    fn issuers_must_be_ca_certificates_and_fleet_certificates_must_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let ca = make(
            d,
            "ca",
            &[
                "basicConstraints=critical,CA:TRUE",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let ca_no_usage = make(d, "ca2", &["basicConstraints=critical,CA:TRUE"]);
        let ca_no_sign = make(
            d,
            "ca3",
            &[
                "basicConstraints=critical,CA:TRUE",
                "keyUsage=critical,digitalSignature",
            ],
        );
        let leaf = make(d, "leaf", &["basicConstraints=critical,CA:FALSE"]);
        // no basicConstraints at all: a CSR signed by `x509 -req` with only a SAN
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "plain.key",
                "-out",
                "plain.csr",
                "-subj",
                "/CN=plain",
            ],
        );
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:mx.example\n").unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "plain.csr",
                "-signkey",
                "plain.key",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "plain.pem",
            ],
        );
        let plain = std::fs::read_to_string(d.join("plain.pem")).unwrap();
        // openssl's default for `req -x509` without -addext: CA:TRUE (its v3_ca section)
        let default = make(d, "default", &[]);

        let info = parse_for(&ca, now, CertUse::Issuer).unwrap();
        assert!(info.is_ca && info.key_cert_sign == Some(true));
        assert!(parse_for(&ca_no_usage, now, CertUse::Issuer)
            .unwrap()
            .key_cert_sign
            .is_none());
        assert!(parse_for(&default, now, CertUse::Issuer).is_ok());
        assert_eq!(
            parse_for(&ca_no_sign, now, CertUse::Issuer),
            Err(CertError::CaWithoutCertSign {
                subject: "CN=ca3".into()
            })
        );
        for (pem, cn) in [(&leaf, "leaf"), (&plain, "plain")] {
            assert_eq!(
                parse_for(pem, now, CertUse::Issuer),
                Err(CertError::NotACa {
                    subject: format!("CN={cn}")
                })
            );
            assert!(parse_for(pem, now, CertUse::EndEntity).is_ok(), "{cn}");
        }
        for (pem, cn) in [(&ca, "ca"), (&ca_no_usage, "ca2"), (&default, "default")] {
            let e = parse_for(pem, now, CertUse::EndEntity).unwrap_err();
            assert_eq!(
                e,
                CertError::IsACa {
                    subject: format!("CN={cn}")
                }
            );
            assert!(e.to_string().contains("CA certificate"), "{e}");
        }
        // the role check comes after the validity check
        let info = parse_certificate_pem(&leaf, now).unwrap();
        assert!(matches!(
            parse_for(&leaf, info.not_after + 1, CertUse::EndEntity),
            Err(CertError::Expired { .. })
        ));
    }

    #[test]
    fn errors_never_repeat_the_input() {
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IHNlY3JldCBzZWNyZXQ=\n-----END PRIVATE KEY-----\n";
        let e = parse_certificate_pem(secret, 0).unwrap_err();
        assert_eq!(e, CertError::NotACertificate("PRIVATE KEY".into()));
        let bad = "-----BEGIN CERTIFICATE-----\nc2VjcmV0!!!\n-----END CERTIFICATE-----\n";
        let e = parse_certificate_pem(bad, 0).unwrap_err().to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }

    #[test]
    fn garbage() {
        assert_eq!(parse_certificate_pem("", 0), Err(CertError::NoPem));
        assert_eq!(parse_certificate_pem("hello", 0), Err(CertError::NoPem));
        assert!(matches!(
            parse_certificate_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                0
            ),
            Err(CertError::Malformed(_))
        ));
        assert!(matches!(
            parse_certificate_pem("-----BEGIN CERTIFICATE-----\nMIIB", 0),
            Err(CertError::Malformed(_))
        ));
        // trailing bytes after the certificate are refused (strict DER)
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-outform",
                "DER",
                "-subj",
                "/CN=t",
            ],
        );
        let mut der = std::fs::read(dir.path().join("c.pem")).unwrap();
        assert!(parse_der(&der).is_ok());
        der.push(0);
        assert!(matches!(parse_der(&der), Err(CertError::Malformed(_))));
    }

    /// Standard base64 with padding (tests only: the encoder the decoder must invert).
    fn to_base64(bytes: &[u8]) -> String {
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for c in bytes.chunks(3) {
            let n = c.iter().fold(0u32, |a, &x| (a << 8) | x as u32) << (8 * (3 - c.len()));
            for i in 0..4 {
                b64.push(if i <= c.len() {
                    table[((n >> (18 - 6 * i)) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        b64
    }

    /// A real certificate's DER, made once for the mutation test.
    fn real_der() -> &'static [u8] {
        static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        DER.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            make(
                dir.path(),
                "m",
                &["basicConstraints=critical,CA:TRUE", "keyUsage=keyCertSign"],
            );
            openssl(
                dir.path(),
                &["x509", "-in", "m.pem", "-outform", "DER", "-out", "m.der"],
            );
            std::fs::read(dir.path().join("m.der")).unwrap()
        })
    }

    proptest! {
        /// Flipped, cut and inserted bytes in a real certificate reach the inner decoders
        /// (validity, names, extensions): errors, never a panic.
        #[test]
        fn never_panics_on_mutated_certificates(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut der = real_der().to_vec();
            for (at, byte, how) in edits {
                let i = at.index(der.len());
                match how {
                    0 => der[i] = byte,
                    1 => der.insert(i, byte),
                    _ => { der.remove(i); }
                }
            }
            if cut.index(8) == 0 {
                der.truncate(cut.index(der.len()));
            }
            let _ = parse_der(&der);
        }

        #[test]
        fn never_panics_on_random_der(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_der(&bytes);
            let b64 = to_base64(&bytes);
            let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
            let _ = parse_certificate_pem(&pem, 0);
        }
    }
}
