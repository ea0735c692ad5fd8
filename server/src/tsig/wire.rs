//! TSIG on the wire (RFC 8945): verifying a request (5.2), signing responses, every message of
//! a multi-message response included (5.3.1: the MAC of each covers the previous MAC, the
//! message and the timers), signing requests (NOTIFY) and verifying their answers.
//!
//! hickory-proto reads the TSIG RR and rebuilds a received message's to-be-signed bytes
//! (`signed_bitmessage_to_buf`); what we send we sign here, over the bytes we send.

use std::sync::Arc;

use hickory_proto::rr::rdata::tsig::signed_bitmessage_to_buf;
use hickory_proto::rr::Name;

use super::{Algorithm, Key, KeyRing};

/// Allowed clock difference of a signature (RFC 8945 10: 300 s recommended).
pub const FUDGE: u16 = 300;

/// TSIG RR type and the class ANY it always has.
const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;

/// TSIG error codes (RFC 8945 3).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;
pub const BADTRUNC: u16 = 22;

/// A request whose TSIG verified: what signing its response needs.
#[derive(Debug, Clone)]
pub struct Verified {
    pub key: Arc<Key>,
    /// The request's MAC (the first response's MAC covers it).
    pub mac: Vec<u8>,
}

/// Why a request's TSIG is refused, and how the answer says it (RFC 8945 5.2, 5.3.2).
#[derive(Debug)]
pub enum Refusal {
    /// The TSIG RR cannot be read, or its MAC has an impossible length: FORMERR.
    FormErr,
    /// Unknown key or algorithm: NOTAUTH, TSIG error BADKEY, unsigned.
    BadKey { name: Name, algorithm: Name },
    /// Wrong MAC: NOTAUTH, BADSIG, unsigned.
    BadSig { key: Arc<Key> },
    /// Time signed outside the fudge: NOTAUTH, BADTIME, signed, with our time.
    BadTime {
        key: Arc<Key>,
        mac: Vec<u8>,
        time: u64,
    },
    /// A truncated MAC (we accept none): NOTAUTH, BADTRUNC, signed.
    BadTrunc { key: Arc<Key>, mac: Vec<u8> },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::FormErr => "FORMERR",
            Refusal::BadKey { .. } => "BADKEY",
            Refusal::BadSig { .. } => "BADSIG",
            Refusal::BadTime { .. } => "BADTIME",
            Refusal::BadTrunc { .. } => "BADTRUNC",
        }
    }

    /// The key name the request named.
    pub fn key_name(&self) -> Option<String> {
        match self {
            Refusal::FormErr => None,
            Refusal::BadKey { name, .. } => Some(name.to_ascii()),
            Refusal::BadSig { key }
            | Refusal::BadTime { key, .. }
            | Refusal::BadTrunc { key, .. } => Some(key.name.to_ascii()),
        }
    }
}

/// Verifies the TSIG of a request (`raw`, its last additional record; `None` when it has
/// none) at `now` (RFC 8945 5.2: key, then MAC, then time).
pub fn verify_request(ring: &KeyRing, raw: &[u8], now: u64) -> Result<Verified, Box<Refusal>> {
    verify(ring, raw, now).map_err(Box::new)
}

#[allow(clippy::result_large_err)] // boxed once, by `verify_request`
fn verify(ring: &KeyRing, raw: &[u8], now: u64) -> Result<Verified, Refusal> {
    let (tbs, rr) = signed_bitmessage_to_buf(raw, None, true).map_err(|_| Refusal::FormErr)?;
    let tsig = &rr.data;
    let key = ring
        .get(&rr.name)
        .filter(|k| Algorithm::from_hickory(&tsig.algorithm) == Some(k.algorithm))
        .ok_or_else(|| Refusal::BadKey {
            name: rr.name.clone(),
            algorithm: tsig.algorithm.to_name(),
        })?
        .clone();
    let out = key.algorithm.output_len();
    // RFC 8945 5.2.2.1: longer than the MAC, or shorter than 10 bytes or half of it: FORMERR
    if tsig.mac.len() > out || tsig.mac.len() < 10.max(out / 2) {
        return Err(Refusal::FormErr);
    }
    if tsig.mac.len() < out {
        return Err(Refusal::BadTrunc {
            key,
            mac: tsig.mac.clone(),
        });
    }
    if !key.verify(&tbs, &tsig.mac) {
        return Err(Refusal::BadSig { key });
    }
    if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
        return Err(Refusal::BadTime {
            key,
            mac: tsig.mac.clone(),
            time: tsig.time,
        });
    }
    Ok(Verified {
        key,
        mac: tsig.mac.clone(),
    })
}

/// A name in canonical wire form (uncompressed, lower case).
fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

fn push48(out: &mut Vec<u8>, t: u64) {
    out.extend_from_slice(&((t >> 32) as u16).to_be_bytes());
    out.extend_from_slice(&(t as u32).to_be_bytes());
}

/// Appends a TSIG RR to a complete message and counts it in ARCOUNT.
fn append_rr(
    msg: &mut Vec<u8>,
    key_name: &[u8],
    algorithm: &[u8],
    time: u64,
    mac: &[u8],
    error: u16,
    other: &[u8],
) {
    let id = [msg[0], msg[1]];
    msg.extend_from_slice(key_name);
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let rdlen = algorithm.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(algorithm);
    push48(msg, time);
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&id); // original ID
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Appends an unsigned TSIG RR (no MAC) carrying `error` (BADKEY, BADSIG: RFC 8945 5.3.2).
pub fn append_unsigned(msg: &mut Vec<u8>, key_name: &Name, algorithm: &Name, now: u64, error: u16) {
    let (k, a) = (name_wire(key_name), name_wire(algorithm));
    append_rr(msg, &k, &a, now, &[], error, &[]);
}

/// Signs the messages of one direction of a transaction: a request (NOTIFY), or the one or
/// many messages of a response, each MAC chained to the previous one (RFC 8945 5.3.1).
pub struct Signer {
    key: Arc<Key>,
    key_name: Vec<u8>,
    algorithm: Vec<u8>,
    /// The MAC the next one covers: the request's for the first response message, then each
    /// message's own; none for a request.
    prior: Option<Vec<u8>>,
    first: bool,
}

impl Signer {
    /// Signs the response to a verified request.
    pub fn response(v: &Verified) -> Self {
        Self::new(v.key.clone(), Some(v.mac.clone()))
    }

    /// Signs a response to a request signed with `key` whose MAC is `mac` (also when the
    /// request's time was refused: BADTIME and BADTRUNC answers are signed).
    pub fn response_to(key: Arc<Key>, mac: Vec<u8>) -> Self {
        Self::new(key, Some(mac))
    }

    /// Signs a request.
    pub fn request(key: Arc<Key>) -> Self {
        Self::new(key, None)
    }

    fn new(key: Arc<Key>, prior: Option<Vec<u8>>) -> Self {
        Self {
            key_name: name_wire(&key.name),
            algorithm: key.algorithm.wire_name(),
            key,
            prior,
            first: true,
        }
    }

    /// Bytes the TSIG RR adds to a message (room to keep free).
    pub fn rr_len(&self) -> usize {
        self.key_name.len() + 10 + self.algorithm.len() + 16 + self.key.algorithm.output_len()
    }

    /// The MAC of the last message signed.
    pub fn last_mac(&self) -> &[u8] {
        self.prior.as_deref().unwrap_or_default()
    }

    /// Signs `msg` (a complete message, header counts included, without TSIG) at `now`:
    /// appends the TSIG RR.
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) {
        self.sign_with(msg, now, 0, &[]);
    }

    /// Signs `msg` with a TSIG error (BADTIME: `time` is the request's, `other` ours).
    pub fn sign_with(&mut self, msg: &mut Vec<u8>, time: u64, error: u16, other: &[u8]) {
        let mut tbs = Vec::with_capacity(msg.len() + 128);
        if let Some(p) = &self.prior {
            tbs.extend_from_slice(&(p.len() as u16).to_be_bytes());
            tbs.extend_from_slice(p);
        }
        tbs.extend_from_slice(msg);
        if self.first {
            // TSIG variables (RFC 8945 4.3.3)
            tbs.extend_from_slice(&self.key_name);
            tbs.extend_from_slice(&CLASS_ANY.to_be_bytes());
            tbs.extend_from_slice(&0u32.to_be_bytes());
            tbs.extend_from_slice(&self.algorithm);
            push48(&mut tbs, time);
            tbs.extend_from_slice(&FUDGE.to_be_bytes());
            tbs.extend_from_slice(&error.to_be_bytes());
            tbs.extend_from_slice(&(other.len() as u16).to_be_bytes());
            tbs.extend_from_slice(other);
        } else {
            // subsequent messages: the timers only (RFC 8945 5.3.1)
            push48(&mut tbs, time);
            tbs.extend_from_slice(&FUDGE.to_be_bytes());
        }
        let mac = self.key.mac(&tbs);
        append_rr(
            msg,
            &self.key_name,
            &self.algorithm,
            time,
            &mac,
            error,
            other,
        );
        self.prior = Some(mac);
        self.first = false;
    }
}

/// Verifies the TSIG of an answer to a request we signed (whose MAC is `request_mac`).
pub fn verify_response(key: &Key, raw: &[u8], request_mac: &[u8], now: u64) -> Result<(), String> {
    let (tbs, rr) = signed_bitmessage_to_buf(raw, Some(request_mac), true)
        .map_err(|e| format!("no readable TSIG: {e}"))?;
    let tsig = &rr.data;
    if rr.name != key.name || Algorithm::from_hickory(&tsig.algorithm) != Some(key.algorithm) {
        return Err(format!("signed with another key ({})", rr.name));
    }
    if let Some(e) = tsig.error {
        return Err(format!("TSIG error {}", u16::from(e)));
    }
    if !key.verify(&tbs, &tsig.mac) {
        return Err("bad MAC".into());
    }
    if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
        return Err("time signed outside the fudge".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::TSigner;

    const NOW: u64 = 1_800_000_000;

    fn key(name: &str, secret: &[u8]) -> Arc<Key> {
        Arc::new(Key::new(
            Name::from_ascii(name).unwrap(),
            Algorithm::HmacSha256,
            secret.to_vec(),
        ))
    }

    /// A request signed by hickory (an implementation we did not write).
    fn hickory_request(key_name: &str, secret: &[u8], time: u64) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("mx.example.").unwrap(),
            RecordType::AXFR,
        ));
        let signer = TSigner::new(
            secret.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii(key_name).unwrap(),
            300,
        )
        .unwrap();
        m.finalize(&signer, time).unwrap();
        m.to_vec().unwrap()
    }

    #[test]
    fn requests_are_verified_as_rfc_8945_says() {
        let ring = KeyRing::new(vec![key("nsd1.", b"0123456789abcdef0123456789abcdef")]);
        let good = hickory_request("nsd1.", b"0123456789abcdef0123456789abcdef", NOW);
        let v = verify_request(&ring, &good, NOW + 10).unwrap();
        assert_eq!(v.key.name.to_ascii(), "nsd1.");
        assert!(matches!(
            verify_request(
                &ring,
                &hickory_request("other.", b"0123456789abcdef0123456789abcdef", NOW),
                NOW
            ),
            Err(r) if matches!(*r, Refusal::BadKey { .. })
        ));
        assert!(matches!(
            verify_request(
                &ring,
                &hickory_request("nsd1.", b"another secret, same name.......", NOW),
                NOW
            ),
            Err(r) if matches!(*r, Refusal::BadSig { .. })
        ));
        assert!(matches!(
            verify_request(&ring, &good, NOW + 301),
            Err(r) if matches!(*r, Refusal::BadTime { time: NOW, .. })
        ));
        let mut tampered = good.clone();
        tampered[3] ^= 1; // flags
        assert!(matches!(
            verify_request(&ring, &tampered, NOW),
            Err(r) if matches!(*r, Refusal::BadSig { .. })
        ));
    }

    #[test]
    fn multi_message_responses_verify_with_hickory() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let ring = KeyRing::new(vec![key("nsd1.", secret)]);
        let req = hickory_request("nsd1.", secret, NOW);
        let v = verify_request(&ring, &req, NOW).unwrap();
        // hickory's client side: sign the same request, keep its verifier
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("mx.example.").unwrap(),
            RecordType::AXFR,
        ));
        let signer = TSigner::new(
            secret.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("nsd1.").unwrap(),
            300,
        )
        .unwrap();
        let (_, verifier) = signer.sign_message(&m, NOW).unwrap();
        let mut verifier = verifier.unwrap();
        assert_eq!(v.mac.len(), 32);
        let mut s = Signer::response(&v);
        for i in 0..3u8 {
            let mut resp = Message::new(7, MessageType::Response, OpCode::Query);
            resp.add_query(Query::query(
                Name::from_ascii("mx.example.").unwrap(),
                RecordType::AXFR,
            ));
            resp.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("h.mx.example.").unwrap(),
                300,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, i)),
            ));
            let mut bytes = resp.to_vec().unwrap();
            let len = bytes.len();
            s.sign(&mut bytes, NOW);
            assert_eq!(bytes.len() - len, s.rr_len());
            verifier
                .verify(&bytes)
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
        }
    }

    #[test]
    fn signed_requests_and_their_answers() {
        let k = key("knot1.", b"fedcba9876543210fedcba9876543210");
        let ring = KeyRing::new(vec![k.clone()]);
        let mut m = Message::new(9, MessageType::Query, OpCode::Notify);
        m.add_query(Query::query(
            Name::from_ascii("mx.example.").unwrap(),
            RecordType::SOA,
        ));
        let mut req = m.to_vec().unwrap();
        let mut s = Signer::request(k.clone());
        s.sign(&mut req, NOW);
        let v = verify_request(&ring, &req, NOW).unwrap();
        let mut ans = Message::new(9, MessageType::Response, OpCode::Notify);
        ans.add_query(Query::query(
            Name::from_ascii("mx.example.").unwrap(),
            RecordType::SOA,
        ));
        let mut bytes = ans.to_vec().unwrap();
        Signer::response(&v).sign(&mut bytes, NOW);
        verify_response(&k, &bytes, s.last_mac(), NOW).unwrap();
        assert!(verify_response(&k, &bytes, b"not the request's MAC", NOW).is_err());
    }
}
