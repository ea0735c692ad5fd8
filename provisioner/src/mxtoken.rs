//! Domain names → MX host tokens: `contoso.com` → `contoso-com`, the first label of the tenant's
//! MX host `contoso-com.o-v1.mx.example`.
//!
//! The mapping is injective over valid (normalized) domain names:
//! - every `-` becomes `--` and every `.` becomes `-`;
//! - a label never starts or ends with `-`, so a `.` is never next to a `-`: in a token made this
//!   way every run of hyphens has length 1 (a dot) or an even length (escaped hyphens), and the
//!   token decodes back to exactly one domain;
//! - if the escaped form is longer than 63 octets it is shortened: a prefix (without trailing
//!   hyphens), then `---`, then 16 base32 characters of the SHA-256 of the domain. A run of exactly
//!   three hyphens never occurs in an unshortened token, so shortened and unshortened tokens never
//!   meet; two shortened tokens meet only if 80 bits of SHA-256 collide.
//!
//! The token is stored when first assigned and never recomputed, so it never changes.

/// Why a domain name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain name is empty")]
    Empty,
    #[error("the domain name {0} is longer than 253 octets")]
    TooLong(String),
    #[error("the domain name {0} is not ASCII: give internationalized names in their xn-- (punycode) form")]
    NotAscii(String),
    #[error("{0} is a single label; an accepted domain has at least two (e.g. contoso.com)")]
    SingleLabel(String),
    #[error("the label '{label}' of {domain} is not valid: {reason}")]
    BadLabel {
        domain: String,
        label: String,
        reason: &'static str,
    },
}

/// Lower-cases, strips one trailing dot and validates a domain name (letters, digits and
/// hyphens; labels of 1 to 63 octets not starting or ending with a hyphen; at most 253 octets;
/// at least two labels).
pub fn normalize_domain(input: &str) -> Result<String, DomainError> {
    let s = input.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    if !s.is_ascii() {
        return Err(DomainError::NotAscii(s.to_string()));
    }
    let s = s.to_ascii_lowercase();
    if s.len() > 253 {
        return Err(DomainError::TooLong(s));
    }
    let bad = |label: &str, reason| DomainError::BadLabel {
        domain: s.clone(),
        label: label.to_string(),
        reason,
    };
    let mut labels = 0;
    for label in s.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err(bad(label, "empty label"));
        }
        if label.len() > 63 {
            return Err(bad(label, "longer than 63 octets"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(label, "only letters, digits and hyphens are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(label, "a label cannot start or end with a hyphen"));
        }
    }
    if labels < 2 {
        return Err(DomainError::SingleLabel(s));
    }
    Ok(s)
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 && out.len() < chars {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
        if out.len() == chars {
            break;
        }
    }
    out
}

/// The MX token of a normalized domain (see the module documentation).
pub fn mx_token(normalized_domain: &str) -> String {
    let mut escaped = String::with_capacity(normalized_domain.len() + 8);
    for c in normalized_domain.chars() {
        match c {
            '-' => escaped.push_str("--"),
            '.' => escaped.push('-'),
            c => escaped.push(c),
        }
    }
    if escaped.len() <= 63 {
        return escaped;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, normalized_domain.as_bytes());
    let suffix = base32(digest.as_ref(), 16);
    let prefix = escaped[..63 - 3 - suffix.len()].trim_end_matches('-');
    format!("{prefix}---{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Inverts the unshortened mapping (tests only).
    fn decode_unshortened(token: &str) -> Option<String> {
        let mut out = String::new();
        let b = token.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                let mut run = 0;
                while i < b.len() && b[i] == b'-' {
                    run += 1;
                    i += 1;
                }
                match run {
                    1 => out.push('.'),
                    n if n % 2 == 0 => out.push_str(&"-".repeat(n / 2)),
                    _ => return None,
                }
            } else {
                out.push(b[i] as char);
                i += 1;
            }
        }
        Some(out)
    }

    fn valid_label(t: &str) -> bool {
        !t.is_empty()
            && t.len() <= 63
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !t.starts_with('-')
            && !t.ends_with('-')
    }

    #[test]
    fn examples() {
        assert_eq!(mx_token("contoso.com"), "contoso-com");
        assert_eq!(mx_token("con-toso.com"), "con--toso-com");
        assert_eq!(
            mx_token("xn--bcher-kva.example"),
            "xn----bcher--kva-example"
        );
        assert_eq!(normalize_domain("Contoso.COM.").unwrap(), "contoso.com");
        // the classic collision of naive mappings
        assert_ne!(mx_token("a-b.com"), mx_token("a.b-com"));
    }

    #[test]
    fn refused_names() {
        assert_eq!(normalize_domain(""), Err(DomainError::Empty));
        assert_eq!(normalize_domain("."), Err(DomainError::Empty));
        assert!(matches!(
            normalize_domain("bücher.example"),
            Err(DomainError::NotAscii(_))
        ));
        assert!(matches!(
            normalize_domain("localhost"),
            Err(DomainError::SingleLabel(_))
        ));
        for bad in [
            "-a.com",
            "a-.com",
            "a..b",
            "a_b.com",
            "a b.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(
                matches!(normalize_domain(bad), Err(DomainError::BadLabel { .. })),
                "{bad}"
            );
        }
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(matches!(
            normalize_domain(&long),
            Err(DomainError::TooLong(_))
        ));
        let msg = normalize_domain("bücher.example").unwrap_err().to_string();
        assert!(msg.contains("xn--"), "{msg}");
    }

    #[test]
    fn long_domains_are_shortened() {
        let d = normalize_domain(&vec!["abcdefghij".repeat(5); 4].join(".")).unwrap();
        let t = mx_token(&d);
        assert!(valid_label(&t), "{t}");
        assert_eq!(t.len(), 63);
        assert!(t.contains("---"));
        assert_eq!(t, mx_token(&d), "stable");
    }

    fn domain() -> impl Strategy<Value = String> {
        let label = "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?";
        prop::collection::vec(label, 2..5).prop_map(|l| l.join("."))
    }

    proptest! {
        #[test]
        fn tokens_are_labels_and_decode(d in domain()) {
            let d = normalize_domain(&d).unwrap();
            prop_assert_eq!(normalize_domain(&d).unwrap(), d.clone());
            let t = mx_token(&d);
            prop_assert!(valid_label(&t), "{}", t);
            if !t.contains("---") {
                prop_assert_eq!(decode_unshortened(&t), Some(d));
            }
        }

        #[test]
        fn injective(a in domain(), b in domain()) {
            let (a, b) = (normalize_domain(&a).unwrap(), normalize_domain(&b).unwrap());
            if a != b {
                prop_assert_ne!(mx_token(&a), mx_token(&b));
            }
        }

        #[test]
        fn injective_on_look_alikes(parts in prop::collection::vec("[ab]{1,3}", 2..6), seps in prop::collection::vec(prop::bool::ANY, 5)) {
            // the same characters joined by '.' or '-' in every way
            let mut a = parts[0].clone();
            let mut b = parts[0].clone();
            for (i, p) in parts.iter().enumerate().skip(1) {
                a.push(if seps[i - 1] { '.' } else { '-' });
                b.push(if seps[i - 1] { '-' } else { '.' });
                a.push_str(p);
                b.push_str(p);
            }
            if let (Ok(a), Ok(b)) = (normalize_domain(&a), normalize_domain(&b)) {
                if a != b {
                    prop_assert_ne!(mx_token(&a), mx_token(&b));
                }
            }
        }
    }
}
