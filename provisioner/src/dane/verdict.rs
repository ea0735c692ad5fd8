//! What a DANE sender would say: the codes of Exchange Online's outbound DANE (reference:
//! shared/reference/exchange-online-smtp-dane-howto.txt), each with the action to take.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The chain is authenticated by a secure TLSA record.
    Success,
    /// 4.7.321: no STARTTLS in EHLO, STARTTLS refused, or the TLS handshake failed.
    StarttlsNotSupported,
    /// 4.7.322: the certificate the TLSA record names has expired (or is not valid yet).
    CertificateExpired,
    /// 4.7.323: secure TLSA records, but none authenticates the presented chain (or none is
    /// usable).
    TlsaInvalid,
    /// 4.7.324: an answer that does not validate (bogus: bad signature, missing RRSIG or proof).
    DnssecInvalid,
    /// 4.4.312: the lookup failed (SERVFAIL also without validation, REFUSED, no answer).
    DnsQueryFailed,
    /// No DANE: an insecure MX RRset, insecure addresses or no secure TLSA RRset. A sender
    /// delivers without authenticating the server (opportunistic TLS at most).
    NotDane,
    /// No address, or no SMTP server answering at one (connect, banner, EHLO).
    Unreachable,
}

impl Verdict {
    /// The enhanced status code a sender gives (4.x.x: it defers).
    pub fn code(self) -> Option<&'static str> {
        match self {
            Verdict::StarttlsNotSupported => Some("4.7.321"),
            Verdict::CertificateExpired => Some("4.7.322"),
            Verdict::TlsaInvalid => Some("4.7.323"),
            Verdict::DnssecInvalid => Some("4.7.324"),
            Verdict::DnsQueryFailed => Some("4.4.312"),
            Verdict::Success | Verdict::NotDane | Verdict::Unreachable => None,
        }
    }

    /// The name Exchange Online gives with the code.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::StarttlsNotSupported => "starttls-not-supported",
            Verdict::CertificateExpired => "certificate-expired",
            Verdict::TlsaInvalid => "tlsa-invalid",
            Verdict::DnssecInvalid => "dnssec-invalid",
            Verdict::DnsQueryFailed => "DNS query failed",
            Verdict::NotDane => "not-dane",
            Verdict::Unreachable => "unreachable",
        }
    }

    pub fn pass(self) -> bool {
        self == Verdict::Success
    }

    /// `4.7.323 tlsa-invalid`, or the name alone.
    pub fn label(self) -> String {
        match self.code() {
            Some(c) => format!("{c} {}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// What to do about it; `at` names the address or the looked-up name.
    pub fn action(self, at: &str) -> String {
        match self {
            Verdict::Success => "None: a DANE sender authenticates this server.".into(),
            Verdict::StarttlsNotSupported => format!(
                "Enable STARTTLS on the mail server at {at} and check that the TLS handshake completes; DANE senders defer mail to it until then."
            ),
            Verdict::CertificateExpired => format!(
                "Install a renewed certificate on {at}, its TLSA record published first (stage it as the next certificate, wait the TLSA TTL, then switch)."
            ),
            Verdict::TlsaInvalid => format!(
                "Make the certificate presented at {at} match the published TLSA records: install the certificate they name, or publish the TLSA record of the one in use (3 1 1 of its public key) and wait its TTL before switching; Disable-SmtpDaneInbound stops the deferrals meanwhile."
            ),
            Verdict::DnssecInvalid => format!(
                "The answer for {at} does not validate (a bad or missing signature or denial proof, or a broken chain of trust): fix the signing of the zone serving it or its DS at the parent; mail is deferred until then."
            ),
            Verdict::DnsQueryFailed => format!(
                "The lookup of {at} failed at the resolver (SERVFAIL even without validation, REFUSED or no answer): check that the zone's authoritative servers answer it."
            ),
            Verdict::NotDane => format!(
                "No DANE for {at}: enable DNSSEC for the domain (a signed MX RRset, Enable-DnssecForVerifiedDomain) and DANE (Enable-SmtpDaneInbound) so that senders find secure TLSA records."
            ),
            Verdict::Unreachable => format!(
                "Make an SMTP server answer at {at} on port 25 (or publish the addresses that do)."
            ),
        }
    }
}
