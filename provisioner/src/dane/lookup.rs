//! The DNS half of a DANE sender (RFC 7672 2.1, 2.2): every lookup through the validating
//! resolver, classified as a sender must classify it.
//!
//! - an answer (records, NODATA or NXDOMAIN) with the AD bit is *secure*, without it
//!   *insecure*;
//! - SERVFAIL is asked again with CD (checking disabled): when the resolver then has an answer,
//!   the data exists but did not validate (*bogus*: a bad signature, a missing RRSIG or denial
//!   proof, a wrong trust anchor), which a sender reports as 4.7.324 dnssec-invalid; when it
//!   fails again, the lookup failed (4.4.312 DNS query failed), as do REFUSED, other codes and
//!   no answer at all.

use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use crate::resolver::{Ask, ResolveError, Resolver, ResponseCode};

/// How a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsStatus {
    /// Records, AD set.
    Secure,
    /// Records, no AD.
    Insecure,
    /// NOERROR without records of the type; `authentic` says whether the denial validated.
    Nodata,
    /// The name does not exist; `authentic` says whether the denial validated.
    Nxdomain,
    /// SERVFAIL, but an answer with CD: the answer does not validate.
    Bogus,
    /// SERVFAIL also with CD, another error code, or no answer.
    Failed,
}

/// One lookup and its classification, with what a report shows of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Looked {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub status: DnsStatus,
    /// The AD bit of the answer (for NODATA / NXDOMAIN: whether the denial is secure).
    pub authentic: bool,
    /// The response code of the (first, validating) answer, or null when there was none.
    pub rcode: Option<String>,
    /// With CD set after a SERVFAIL: the response code then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode_unchecked: Option<String>,
    /// The records in presentation form (for Bogus: what the resolver has without validation).
    pub records: Vec<String>,
    /// Why there was no answer (timeouts, refused connections), when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub data: Vec<RData>,
}

impl Looked {
    /// Secure records, secure NODATA or secure NXDOMAIN.
    pub fn secure(&self) -> bool {
        self.authentic
            && matches!(
                self.status,
                DnsStatus::Secure | DnsStatus::Nodata | DnsStatus::Nxdomain
            )
    }

    /// One line for the text report.
    pub fn summary(&self) -> String {
        let what = match self.status {
            DnsStatus::Secure => format!("{} record(s), secure (AD)", self.records.len()),
            DnsStatus::Insecure => format!("{} record(s), insecure (no AD)", self.records.len()),
            DnsStatus::Nodata if self.authentic => "NODATA, secure denial (AD)".into(),
            DnsStatus::Nodata => "NODATA, insecure (no AD)".into(),
            DnsStatus::Nxdomain if self.authentic => "NXDOMAIN, secure denial (AD)".into(),
            DnsStatus::Nxdomain => "NXDOMAIN, insecure (no AD)".into(),
            DnsStatus::Bogus => format!(
                "bogus: SERVFAIL when validated, {} with CD (checking disabled)",
                self.rcode_unchecked.as_deref().unwrap_or("an answer")
            ),
            DnsStatus::Failed => match (&self.rcode, &self.error) {
                (_, Some(e)) => format!("failed: {e}"),
                (Some(r), None) => match &self.rcode_unchecked {
                    Some(u) => format!("failed: {r}, and {u} with CD too"),
                    None => format!("failed: {r}"),
                },
                (None, None) => "failed".into(),
            },
        };
        format!("{} {}: {}", self.name, self.rtype, what)
    }
}

/// `name`/`rtype` through the validating resolver, classified.
pub fn lookup(r: &Resolver, name: &Name, rtype: RecordType) -> Looked {
    let mut out = Looked {
        name: name.to_ascii(),
        rtype: rtype.to_string(),
        status: DnsStatus::Failed,
        authentic: false,
        rcode: None,
        rcode_unchecked: None,
        records: Vec::new(),
        error: None,
        data: Vec::new(),
    };
    let answer = match r.query(name, rtype, Ask::RECURSIVE) {
        Ok(a) => a,
        Err(e) => {
            out.error = Some(describe(&e));
            return out;
        }
    };
    out.rcode = Some(answer.rcode.to_string());
    out.authentic = answer.authentic;
    let take = |out: &mut Looked, a: &crate::resolver::Answer| {
        out.data = a.data().cloned().collect();
        out.records = a
            .records
            .iter()
            .map(|rec| {
                format!(
                    "{} {} {} {}",
                    rec.name,
                    rec.ttl,
                    rec.record_type(),
                    rec.data
                )
            })
            .collect();
    };
    match answer.rcode {
        ResponseCode::NoError => {
            take(&mut out, &answer);
            out.status = match (out.data.is_empty(), answer.authentic) {
                (true, _) => DnsStatus::Nodata,
                (false, true) => DnsStatus::Secure,
                (false, false) => DnsStatus::Insecure,
            };
        }
        ResponseCode::NXDomain => out.status = DnsStatus::Nxdomain,
        ResponseCode::ServFail => {
            out.authentic = false;
            match r.query(name, rtype, Ask::UNCHECKED) {
                Ok(u) => {
                    out.rcode_unchecked = Some(u.rcode.to_string());
                    if matches!(u.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
                        take(&mut out, &u);
                        out.status = DnsStatus::Bogus;
                    }
                }
                Err(e) => out.error = Some(format!("SERVFAIL, and with CD: {}", describe(&e))),
            }
        }
        _ => {}
    }
    out
}

fn describe(e: &ResolveError) -> String {
    e.to_string()
}
