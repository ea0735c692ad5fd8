//! TSIG (RFC 8945): shared-secret keys, their files, and the signing and verification of DNS
//! messages (`wire`).
//!
//! A key is a file `<data-dir>/tsig/NAME.key` (directory mode 0700, file mode 0600) written by
//! `mxdns tsig new NAME`; its secret is never logged (`Debug` hides it) and is printed only by
//! the commands whose purpose is to hand it to a secondary's operator.

pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::Name;
use ring::hmac;

/// The MAC algorithms we sign and verify with (RFC 8945 6: HMAC-SHA256 is mandatory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// The name used in configurations (NSD, Knot, BIND) and in the TSIG RR.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "hmac-sha384" => Ok(Algorithm::HmacSha384),
            "hmac-sha512" => Ok(Algorithm::HmacSha512),
            other => bail!(
                "unsupported TSIG algorithm {other:?} (hmac-sha256, hmac-sha384, hmac-sha512)"
            ),
        }
    }

    /// The algorithm of a TSIG RR, if we support it.
    pub fn from_hickory(a: &TsigAlgorithm) -> Option<Self> {
        match a {
            TsigAlgorithm::HmacSha256 => Some(Algorithm::HmacSha256),
            TsigAlgorithm::HmacSha384 => Some(Algorithm::HmacSha384),
            TsigAlgorithm::HmacSha512 => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm name in uncompressed wire form (the TSIG RDATA's first field).
    pub fn wire_name(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        for label in self.as_str().split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// Length of the MAC (and of a new key's secret, RFC 8945 6).
    pub fn output_len(self) -> usize {
        self.ring().digest_algorithm().output_len()
    }
}

/// A TSIG key: its name (a domain name, as both sides spell it), algorithm and secret.
pub struct Key {
    pub name: Name,
    pub algorithm: Algorithm,
    secret: Vec<u8>,
    hmac: hmac::Key,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name.to_ascii())
            .field("algorithm", &self.algorithm.as_str())
            .field("secret", &"(hidden)")
            .finish()
    }
}

impl Key {
    pub fn new(name: Name, algorithm: Algorithm, secret: Vec<u8>) -> Self {
        let hmac = hmac::Key::new(algorithm.ring(), &secret);
        Key {
            name: name.to_lowercase(),
            algorithm,
            secret,
            hmac,
        }
    }

    pub fn mac(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.hmac, data).as_ref().to_vec()
    }

    /// Constant-time comparison of `mac` with the MAC of `data`.
    pub fn verify(&self, data: &[u8], mac: &[u8]) -> bool {
        hmac::verify(&self.hmac, data, mac).is_ok()
    }

    /// The secret in base64, as NSD, Knot and BIND configurations take it. Only for printing
    /// to the operator who configures a secondary; never log it.
    pub fn secret_base64(&self) -> String {
        data_encoding::BASE64.encode(&self.secret)
    }

    /// The algorithm's name (as the TSIG RR carries it).
    pub fn algorithm_name(&self) -> Name {
        let mut n = Name::from_ascii(self.algorithm.as_str()).expect("algorithm names are names");
        n.set_fqdn(true);
        n
    }

    /// The key name in presentation form without the final dot (`nsd1`), as configurations
    /// spell it.
    pub fn config_name(&self) -> String {
        self.name.to_ascii().trim_end_matches('.').to_string()
    }
}

/// The keys the server knows, by name.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<Key>>,
}

impl KeyRing {
    pub fn new(keys: Vec<Arc<Key>>) -> Self {
        Self { keys }
    }

    /// The key with this name (names compare without regard to case).
    pub fn get(&self, name: &Name) -> Option<&Arc<Key>> {
        self.keys.iter().find(|k| k.name == *name)
    }
}

/// The directory of the TSIG key files.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tsig")
}

/// A key name as given on the command line or in the configuration: a domain name of letters,
/// digits, `-` and `_` (so that it is also a safe file name), stored lower case.
pub fn parse_name(s: &str) -> anyhow::Result<Name> {
    let bare = s.trim_end_matches('.');
    if bare.is_empty()
        || bare.len() > 200
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || bare.split('.').any(|l| l.is_empty() || l.len() > 63)
    {
        bail!("bad TSIG key name {s:?}: use letters, digits, '-', '_' and dots, e.g. nsd1");
    }
    let mut n = Name::from_ascii(bare).with_context(|| format!("bad TSIG key name {s:?}"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

fn file_of(data_dir: &Path, name: &Name) -> PathBuf {
    dir(data_dir).join(format!("{}.key", name.to_ascii().trim_end_matches('.')))
}

/// Creates a new key with a random secret as long as the MAC (RFC 8945 6) and writes its
/// file (mode 0600, directory 0700). Refuses to replace an existing key.
pub fn create(data_dir: &Path, name: &str, algorithm: Algorithm) -> anyhow::Result<Key> {
    use ring::rand::SecureRandom;
    let name = parse_name(name)?;
    let d = dir(data_dir);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
    }
    let path = file_of(data_dir, &name);
    if path.exists() {
        bail!(
            "TSIG key {} exists already ({}); remove the file first to replace it",
            name,
            path.display()
        );
    }
    let mut secret = vec![0u8; algorithm.output_len()];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("no random numbers"))?;
    let key = Key::new(name, algorithm, secret);
    let text = format!(
        "# mxdns TSIG key (RFC 8945). Keep it private: whoever has it may transfer the zones.\nname: {}\nalgorithm: {}\nsecret: {}\n",
        key.name,
        algorithm.as_str(),
        key.secret_base64()
    );
    keys::write_private_key(&path, text.as_bytes())?;
    Ok(key)
}

/// Reads the key `name` from the data directory.
pub fn load(data_dir: &Path, name: &str) -> anyhow::Result<Key> {
    let name = parse_name(name)?;
    let path = file_of(data_dir, &name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "TSIG key {name} not found ({}); create it with `mxdns tsig new {}`",
            path.display(),
            name.to_ascii().trim_end_matches('.')
        )
    })?;
    let (mut algorithm, mut secret, mut stored) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            bail!("{}: unreadable line", path.display());
        };
        let v = v.trim();
        match k.trim() {
            "name" => stored = Some(parse_name(v)?),
            "algorithm" => algorithm = Some(Algorithm::parse(v)?),
            "secret" => {
                secret =
                    Some(data_encoding::BASE64.decode(v.as_bytes()).map_err(|_| {
                        anyhow::anyhow!("{}: the secret is not base64", path.display())
                    })?)
            }
            other => bail!("{}: unknown field {other:?}", path.display()),
        }
    }
    if stored.as_ref().is_some_and(|s| *s != name) {
        bail!("{}: the file holds another key's name", path.display());
    }
    let (Some(algorithm), Some(secret)) = (algorithm, secret) else {
        bail!("{}: algorithm or secret missing", path.display());
    };
    if secret.len() < 16 {
        bail!(
            "{}: the secret is too short (at least 16 bytes)",
            path.display()
        );
    }
    Ok(Key::new(name, algorithm, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_files_and_never_shown_by_debug() {
        let dir = tempfile::tempdir().unwrap();
        let k = create(dir.path(), "nsd1", Algorithm::HmacSha256).unwrap();
        assert_eq!(k.name.to_ascii(), "nsd1.");
        assert!(!format!("{k:?}").contains(&k.secret_base64()));
        assert!(
            create(dir.path(), "nsd1", Algorithm::HmacSha256).is_err(),
            "never replaced"
        );
        let back = load(dir.path(), "NSD1.").unwrap();
        assert_eq!(back.secret_base64(), k.secret_base64());
        assert_eq!(back.algorithm, Algorithm::HmacSha256);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&super::dir(dir.path())), 0o700);
        assert_eq!(mode(&super::dir(dir.path()).join("nsd1.key")), 0o600);
        let e = load(dir.path(), "knot1").unwrap_err().to_string();
        assert!(e.contains("mxdns tsig new knot1"), "{e}");
        assert!(parse_name("../etc/passwd").is_err());
        let k512 = create(dir.path(), "k2", Algorithm::HmacSha512).unwrap();
        assert_eq!(
            data_encoding::BASE64
                .decode(k512.secret_base64().as_bytes())
                .unwrap()
                .len(),
            64
        );
    }
}
