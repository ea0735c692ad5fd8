//! Independent checks of signatures: cryptography through hickory-proto's [`Verifier`], plus
//! what `verify_rrsig` does not look at (validity window, key tag, signer, labels, TTL).

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::dnssec::{PublicKey, Verifier};
use hickory_proto::rr::{DNSClass, Name, RData, Record};

/// Checks one RRSIG over `records` (one RRset, all with the same owner/type) against the
/// `dnskeys` of zone `zone` at time `now`. Returns the DNSKEY that made it.
pub fn verify_rrsig<'k>(
    zone: &Name,
    records: &[Record],
    rrsig: &RRSIG,
    dnskeys: &'k [DNSKEY],
    now: u32,
) -> Result<&'k DNSKEY, String> {
    let first = records.first().ok_or("empty RRset")?;
    let input = rrsig.input();
    if input.type_covered != first.record_type() {
        return Err(format!(
            "RRSIG covers {} not {}",
            input.type_covered,
            first.record_type()
        ));
    }
    if input.signer_name != *zone {
        return Err(format!(
            "signer {} is not the zone {}",
            input.signer_name, zone
        ));
    }
    if input.num_labels != first.name.num_labels() {
        return Err(format!(
            "labels {} != {}",
            input.num_labels,
            first.name.num_labels()
        ));
    }
    if input.original_ttl != first.ttl {
        return Err(format!(
            "original TTL {} != record TTL {}",
            input.original_ttl, first.ttl
        ));
    }
    let (inc, exp) = (input.sig_inception.get(), input.sig_expiration.get());
    if now < inc {
        return Err(format!("not yet valid: inception {inc} > now {now}"));
    }
    if now > exp {
        return Err(format!("expired: expiration {exp} < now {now}"));
    }
    let mut last = String::from("no DNSKEY with that key tag and algorithm");
    for key in dnskeys {
        if key.calculate_key_tag().ok() != Some(input.key_tag)
            || key.public_key().algorithm() != input.algorithm
        {
            continue;
        }
        match key.verify_rrsig(&first.name, DNSClass::IN, rrsig, records.iter()) {
            Ok(()) => return Ok(key),
            Err(e) => last = format!("bad signature by key {}: {e}", input.key_tag),
        }
    }
    Err(last)
}

/// The RRSIG inside a record, if it is one.
pub fn as_rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

/// The DNSKEY inside a record, if it is one.
pub fn as_dnskey(r: &Record) -> Option<&DNSKEY> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}
