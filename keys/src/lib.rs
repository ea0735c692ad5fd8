//! Key material and signing for mxdns.
//!
//! - [`KeyPair`]: a zone key (KSK or ZSK) generated with ring, stored PKCS#8 with mode 0600.
//!   Its `Debug` never shows key material, and nothing here logs it.
//! - [`ZoneSigner`]: signs RRsets for one zone at one instant (`now` is passed in): DNSKEY,
//!   CDS and CDNSKEY with the KSKs, everything else with the ZSKs; inception backdated, expiry
//!   jittered per owner so that refreshes spread out.
//! - [`verify`]: independent checks used by tests (signature, validity window, key tag).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::sig::SigInput;
use hickory_proto::dnssec::rdata::{DNSSECRData, CDNSKEY, CDS, DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use rustls_pki_types::PrivatePkcs8KeyDer;

pub mod rollover;
pub mod verify;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported algorithm {0} (use 13 for ECDSA P-256 or 15 for Ed25519)")]
    Algorithm(u8),
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("key file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("key file {0} is not a usable PKCS#8 key: {1}")]
    Parse(String, String),
}

/// The role of a key in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Key signing key: flags 257 (SEP), signs the DNSKEY RRset (and CDS/CDNSKEY).
    Ksk,
    /// Zone signing key: flags 256, signs everything else.
    Zsk,
}

impl Role {
    pub fn flags(self) -> u16 {
        match self {
            Role::Ksk => 257,
            Role::Zsk => 256,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ksk => "ksk",
            Role::Zsk => "zsk",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ksk" => Some(Role::Ksk),
            "zsk" => Some(Role::Zsk),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses an algorithm number we sign with.
pub fn algorithm_from_number(n: u8) -> Result<Algorithm, KeyError> {
    match n {
        13 => Ok(Algorithm::ECDSAP256SHA256),
        15 => Ok(Algorithm::ED25519),
        other => Err(KeyError::Algorithm(other)),
    }
}

/// A private key with its DNSKEY.
#[derive(Clone)]
pub struct KeyPair {
    pub role: Role,
    pub dnskey: DNSKEY,
    pub key_tag: u16,
    signing: Arc<dyn SigningKey>,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("role", &self.role)
            .field("algorithm", &self.algorithm())
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generates a new private key; returns its PKCS#8 document (to store) and the key pair.
    pub fn generate(algorithm: Algorithm, role: Role) -> Result<(Vec<u8>, Self), KeyError> {
        let pkcs8 = match algorithm {
            Algorithm::ECDSAP256SHA256 => EcdsaSigningKey::generate_pkcs8(algorithm),
            Algorithm::ED25519 => Ed25519SigningKey::generate_pkcs8(),
            other => return Err(KeyError::Algorithm(u8::from(other))),
        }
        .map_err(|e| KeyError::Generate(e.to_string()))?;
        let der = pkcs8.secret_pkcs8_der().to_vec();
        let pair = Self::from_pkcs8(&der, algorithm, role)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok((der, pair))
    }

    /// Loads a key from its PKCS#8 document.
    pub fn from_pkcs8(der: &[u8], algorithm: Algorithm, role: Role) -> Result<Self, KeyError> {
        let doc = PrivatePkcs8KeyDer::from(der.to_vec());
        let signing: Arc<dyn SigningKey> = match algorithm {
            Algorithm::ECDSAP256SHA256 => Arc::new(
                EcdsaSigningKey::from_pkcs8(&doc, algorithm)
                    .map_err(|e| KeyError::Parse(String::new(), e.to_string()))?,
            ),
            Algorithm::ED25519 => Arc::new(
                Ed25519SigningKey::from_pkcs8(&doc)
                    .map_err(|e| KeyError::Parse(String::new(), e.to_string()))?,
            ),
            other => return Err(KeyError::Algorithm(u8::from(other))),
        };
        let public = signing
            .to_public_key()
            .map_err(|e| KeyError::Parse(String::new(), e.to_string()))?;
        // DNSKEY::from_key always sets 257; set the flags of the role ourselves.
        let dnskey = DNSKEY::with_flags(role.flags(), public);
        let key_tag = dnskey
            .calculate_key_tag()
            .map_err(|e| KeyError::Parse(String::new(), e.to_string()))?;
        Ok(Self {
            role,
            dnskey,
            key_tag,
            signing,
        })
    }

    /// Reads a key file written by [`write_private_key`].
    pub fn load(path: &Path, algorithm: Algorithm, role: Role) -> Result<Self, KeyError> {
        let der = fs::read(path).map_err(|e| KeyError::Io(path.display().to_string(), e))?;
        Self::from_pkcs8(&der, algorithm, role).map_err(|e| match e {
            KeyError::Parse(_, m) => KeyError::Parse(path.display().to_string(), m),
            other => other,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.dnskey.public_key().algorithm()
    }

    /// The DS (SHA-256) of this key for the zone `zone`.
    pub fn ds(&self, zone: &Name) -> DS {
        let digest = self
            .dnskey
            .to_digest(zone, DigestType::SHA256)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        DS::new(self.key_tag, self.algorithm(), DigestType::SHA256, digest)
    }

    /// The CDS (SHA-256) of this key (RFC 7344): the DS the parent should publish.
    pub fn cds(&self, zone: &Name) -> CDS {
        let ds = self.ds(zone);
        CDS::new(
            ds.key_tag(),
            Some(self.algorithm()),
            ds.digest_type(),
            ds.digest().to_vec(),
        )
    }

    /// The CDNSKEY of this key (RFC 7344).
    pub fn cdnskey(&self) -> CDNSKEY {
        CDNSKEY::with_flags(
            self.dnskey.flags(),
            Some(self.algorithm()),
            self.dnskey.public_key().public_bytes().to_vec(),
        )
    }

    /// Signs the canonical form of an RRset.
    fn sign_tbs(&self, tbs: &TBS) -> Result<Vec<u8>, String> {
        self.signing.sign(tbs).map_err(|e| e.to_string())
    }
}

/// Writes a private key file with mode 0600, atomically (temporary file, fsync, rename).
pub fn write_private_key(path: &Path, der: &[u8]) -> Result<(), KeyError> {
    let io = |e| KeyError::Io(path.display().to_string(), e);
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        f.write_all(der).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// How signatures are timed (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Validity of a fresh signature, from `now` (before jitter).
    pub validity: u32,
    /// How far the inception is backdated (clock skew of validators).
    pub inception_offset: u32,
    /// Up to this much is taken off the validity, per owner name, so expiries spread out.
    pub jitter: u32,
    /// Signatures expiring within this time are made again.
    pub refresh: u32,
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        Self {
            validity: 14 * 86400,
            inception_offset: 3600,
            jitter: 86400,
            refresh: 7 * 86400,
        }
    }
}

/// Signs RRsets of one zone at one instant.
pub struct ZoneSigner<'k> {
    pub zone: Name,
    /// Keys that sign the DNSKEY RRset (and CDS/CDNSKEY).
    pub ksks: Vec<&'k KeyPair>,
    /// Keys that sign everything else.
    pub zsks: Vec<&'k KeyPair>,
    pub now: u32,
    pub policy: SignaturePolicy,
}

impl ZoneSigner<'_> {
    fn expiration(&self, name: &Name, rtype: RecordType) -> u32 {
        let jitter = if self.policy.jitter == 0 {
            0
        } else {
            // FNV-1a over the owner and type: stable, spread
            let mut h: u64 = 0xcbf29ce484222325;
            for b in name
                .to_ascii()
                .bytes()
                .chain(u16::from(rtype).to_be_bytes())
            {
                h ^= b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
            (h % self.policy.jitter as u64) as u32
        };
        self.now
            .saturating_add(self.policy.validity)
            .saturating_sub(jitter)
    }

    /// Signs `records` (one RRset) with `key`.
    pub fn rrsig(
        &self,
        key: &KeyPair,
        name: &Name,
        ttl: u32,
        records: &[Record],
    ) -> Result<Record, String> {
        let rtype = records.first().ok_or("empty RRset")?.record_type();
        let input = SigInput {
            type_covered: rtype,
            algorithm: key.algorithm(),
            num_labels: name.num_labels(),
            original_ttl: ttl,
            sig_expiration: SerialNumber::new(self.expiration(name, rtype)),
            sig_inception: SerialNumber::new(self.now.saturating_sub(self.policy.inception_offset)),
            key_tag: key.key_tag,
            signer_name: self.zone.clone(),
        };
        let tbs = TBS::from_input(name, DNSClass::IN, &input, records.iter())
            .map_err(|e| e.to_string())?;
        let sig = key.sign_tbs(&tbs)?;
        let mut rec = Record::from_rdata(
            name.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
        );
        rec.dns_class = DNSClass::IN;
        Ok(rec)
    }
}

impl zones::RrsetSigner for ZoneSigner<'_> {
    fn sign(&self, rrset: &zones::Rrset) -> Result<Vec<Record>, String> {
        let keys = match rrset.rtype {
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY => &self.ksks,
            _ => &self.zsks,
        };
        if keys.is_empty() {
            return Err(format!(
                "no active {} key for {}",
                if rrset.rtype == RecordType::DNSKEY {
                    "KSK"
                } else {
                    "ZSK"
                },
                self.zone
            ));
        }
        let name = rrset.name();
        let records = rrset.records();
        keys.iter()
            .map(|k| self.rrsig(k, &name, rrset.ttl, &records))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use std::str::FromStr;
    use zones::RrsetSigner;

    #[test]
    fn sign_and_verify_both_algorithms_and_roles() {
        for alg in [Algorithm::ECDSAP256SHA256, Algorithm::ED25519] {
            let (_, ksk) = KeyPair::generate(alg, Role::Ksk).unwrap();
            let (der, zsk) = KeyPair::generate(alg, Role::Zsk).unwrap();
            assert_eq!(ksk.dnskey.flags(), 257);
            assert_eq!(zsk.dnskey.flags(), 256);
            let zone = Name::from_str("mx.example.").unwrap();
            let signer = ZoneSigner {
                zone: zone.clone(),
                ksks: vec![&ksk],
                zsks: vec![&zsk],
                now: 1_800_000_000,
                policy: SignaturePolicy::default(),
            };
            let rrset = zones::Rrset::new(
                Name::from_str("h.mx.example.").unwrap(),
                300,
                vec![RData::A(A::new(192, 0, 2, 1))],
            )
            .unwrap();
            let sigs = signer.sign(&rrset).unwrap();
            assert_eq!(sigs.len(), 1);
            let rrsig = verify::as_rrsig(&sigs[0]).unwrap();
            let keys = [ksk.dnskey.clone(), zsk.dnskey.clone()];
            let used =
                verify::verify_rrsig(&zone, &rrset.records(), rrsig, &keys, 1_800_000_000).unwrap();
            assert_eq!(used.flags(), 256, "A is signed by the ZSK");
            assert_eq!(
                rrsig.input().sig_inception.get(),
                1_800_000_000 - 3600,
                "backdated"
            );
            let exp = rrsig.input().sig_expiration.get();
            assert!(exp <= 1_800_000_000 + 14 * 86400 && exp > 1_800_000_000 + 13 * 86400);
            assert!(
                verify::verify_rrsig(&zone, &rrset.records(), rrsig, &keys, exp + 1).is_err(),
                "expired is refused"
            );
            assert!(
                verify::verify_rrsig(&zone, &rrset.records(), rrsig, &keys, 1_800_000_000 - 7200)
                    .is_err(),
                "early is refused"
            );
            // reload from the stored document gives the same key
            let again = KeyPair::from_pkcs8(&der, alg, Role::Zsk).unwrap();
            assert_eq!(again.key_tag, zsk.key_tag);
        }
    }

    #[test]
    fn private_key_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pk8");
        let (der, _) = KeyPair::generate(Algorithm::ECDSAP256SHA256, Role::Ksk).unwrap();
        write_private_key(&path, &der).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!(
            "{:?}",
            KeyPair::load(&path, Algorithm::ECDSAP256SHA256, Role::Ksk).unwrap()
        )
        .contains("signing"));
    }
}
