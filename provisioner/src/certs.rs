//! Fleet certificates (PEM) → TLSA data: the SHA-256 of the DER SubjectPublicKeyInfo (selector
//! 1, matching type 1), as `3 1 1` for the fleet's own certificates and `2 1 1` for issuers.
//!
//! A small DER reader of our own walks `Certificate → tbsCertificate → validity, subject,
//! subjectPublicKeyInfo` (RFC 5280 4.1). It never panics on arbitrary input.

/// What the provisioner needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub spki_sha256: [u8; 32],
    pub not_before: i64,
    pub not_after: i64,
    /// Readable subject, best effort (e.g. `CN=mx.example`).
    pub subject: String,
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
}

fn malformed(s: &str) -> CertError {
    CertError::Malformed(s.to_string())
}

/// Parses exactly one PEM `CERTIFICATE` block and checks that `now` is inside its validity.
pub fn parse_certificate_pem(pem: &str, now: i64) -> Result<CertInfo, CertError> {
    let mut blocks = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let mut body = String::new();
        let mut ended = false;
        for l in lines.by_ref() {
            if l.starts_with("-----END ") {
                ended = true;
                break;
            }
            body.push_str(l);
        }
        if !ended {
            return Err(malformed("PEM block without END line"));
        }
        blocks.push((label.to_string(), body));
    }
    let Some((label, body)) = blocks.first() else {
        return Err(CertError::NoPem);
    };
    if label != "CERTIFICATE" {
        return Err(CertError::NotACertificate(label.clone()));
    }
    if blocks.iter().filter(|(l, _)| l == "CERTIFICATE").count() > 1 {
        return Err(CertError::MoreThanOne);
    }
    let der = base64_decode(body).ok_or_else(|| malformed("bad base64"))?;
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

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut pad = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if pad > 2 {
        return None;
    }
    Some(out)
}

/// One DER TLV: tag, the whole encoding, and the content.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), CertError> {
    let tag = *input.first().ok_or_else(|| malformed("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte tags are not used in certificates"));
    }
    let first = *input.get(1).ok_or_else(|| malformed("truncated length"))?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(malformed("unsupported length"));
        }
        let bytes = input
            .get(2..2 + n)
            .ok_or_else(|| malformed("truncated length"))?;
        (
            bytes.iter().fold(0usize, |a, &b| (a << 8) | b as usize),
            2 + n,
        )
    };
    let end = hdr
        .checked_add(len)
        .ok_or_else(|| malformed("length overflow"))?;
    let whole = input
        .get(..end)
        .ok_or_else(|| malformed("truncated content"))?;
    Ok((
        Tlv {
            tag,
            whole,
            content: &whole[hdr..],
        },
        &input[end..],
    ))
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), CertError> {
    let (t, rest) = tlv(input)?;
    if t.tag != tag {
        return Err(CertError::Malformed(format!("expected {what}")));
    }
    Ok((t, rest))
}

fn parse_der(der: &[u8]) -> Result<CertInfo, CertError> {
    let (cert, rest) = expect(der, 0x30, "Certificate SEQUENCE")?;
    if !rest.is_empty() {
        return Err(malformed("trailing data after the certificate"));
    }
    let (tbs, _) = expect(cert.content, 0x30, "tbsCertificate SEQUENCE")?;
    let mut r = tbs.content;
    if r.first() == Some(&0xa0) {
        r = tlv(r)?.1; // [0] version
    }
    r = expect(r, 0x02, "serialNumber")?.1;
    r = expect(r, 0x30, "signature algorithm")?.1;
    r = expect(r, 0x30, "issuer")?.1;
    let (validity, after_validity) = expect(r, 0x30, "validity")?;
    let (nb, vr) = tlv(validity.content)?;
    let (na, _) = tlv(vr)?;
    let not_before = time(&nb)?;
    let not_after = time(&na)?;
    let (subject, r) = expect(after_validity, 0x30, "subject")?;
    let (spki, _) = expect(r, 0x30, "subjectPublicKeyInfo")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.whole);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    Ok(CertInfo {
        spki_sha256,
        not_before,
        not_after,
        subject: subject_text(subject.content),
    })
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → unix seconds.
fn time(t: &Tlv<'_>) -> Result<i64, CertError> {
    let s = std::str::from_utf8(t.content).map_err(|_| malformed("time is not ASCII"))?;
    let digits = s
        .strip_suffix('Z')
        .ok_or_else(|| malformed("time must be UTC (Z)"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("bad time"));
    }
    let (year, rest) = match (t.tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| malformed("bad year"))?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (
            digits[..4].parse().map_err(|_| malformed("bad year"))?,
            &digits[4..],
        ),
        _ => return Err(malformed("bad time")),
    };
    let n = |i: usize| -> i64 { rest[i..i + 2].parse().unwrap_or(-1) };
    let (mo, d, h, mi, se) = (n(0), n(2), n(4), n(6), n(8));
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&se)
    {
        return Err(malformed("bad time"));
    }
    Ok(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `CN=...` and other string attributes of a Name, best effort.
fn subject_text(mut name: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Ok((set, rest)) = tlv(name) {
        name = rest;
        let Ok((atv, _)) = tlv(set.content) else {
            break;
        };
        let Ok((oid, r)) = tlv(atv.content) else {
            break;
        };
        let Ok((val, _)) = tlv(r) else { break };
        let key = match oid.content {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x06] => "C",
            _ => "?",
        };
        parts.push(format!("{key}={}", String::from_utf8_lossy(val.content)));
    }
    parts.join(", ")
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
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
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

    proptest! {
        #[test]
        fn never_panics_on_random_der(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_der(&bytes);
            let b64 = to_base64(&bytes);
            let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
            let _ = parse_certificate_pem(&pem, 0);
        }

        #[test]
        fn base64_roundtrip(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let b64 = to_base64(&bytes);
            prop_assert_eq!(base64_decode(&b64), Some(bytes));
        }
    }
}
