//! The SMTP half of a DANE sender (RFC 7672 2.2.4, RFC 3207): connect, read the banner, EHLO,
//! STARTTLS, TLS handshake with SNI = the MX host name; the presented chain is recorded here
//! and judged against the TLSA records by `verify` (DANE, not the WebPKI, decides).
//!
//! rustls with a certificate verifier that records the chain and accepts it, while the
//! handshake signature is still verified with the chain's leaf key (so whoever answered holds
//! the private key of the certificate judged). Synchronous (std sockets with timeouts): the
//! callers run on blocking threads or in the command line. Every reply is bounded (lines,
//! bytes), every step has the timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

/// Longest reply line read, and most lines of one reply.
const MAX_LINE: usize = 2048;
const MAX_LINES: usize = 100;

/// Where the SMTP session stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Connect,
    Banner,
    Ehlo,
    Starttls,
    Handshake,
}

/// What one SMTP session to one address showed.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub address: String,
    pub banner: Vec<String>,
    pub ehlo: Vec<String>,
    /// STARTTLS in the EHLO reply.
    pub starttls_offered: bool,
    /// The reply to STARTTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starttls_reply: Option<String>,
    /// TLS version and cipher suite once the handshake completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// The presented chain, leaf first (DER).
    #[serde(skip)]
    pub chain: Vec<Vec<u8>>,
    /// Where and why the session stopped before the chain was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One session: banner, EHLO `helo`, STARTTLS, handshake (SNI `host`), QUIT.
pub fn probe(addr: SocketAddr, host: &str, helo: &str, timeout: Duration) -> Session {
    let mut s = Session {
        address: addr.to_string(),
        ..Default::default()
    };
    if let Err((stage, why)) = run(&mut s, addr, host, helo, timeout) {
        s.failed_at = Some(stage);
        s.failure = Some(why);
    }
    s
}

fn run(
    s: &mut Session,
    addr: SocketAddr,
    host: &str,
    helo: &str,
    timeout: Duration,
) -> Result<(), (Stage, String)> {
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| (Stage::Connect, format!("cannot connect to {addr}: {e}")))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let _ = tcp.set_nodelay(true);
    let mut reader = BufReader::new(
        tcp.try_clone()
            .map_err(|e| (Stage::Connect, e.to_string()))?,
    );
    let mut writer = tcp;
    let (code, lines) = read_reply(&mut reader).map_err(|e| (Stage::Banner, e))?;
    s.banner = lines;
    if code != 220 {
        return Err((
            Stage::Banner,
            format!("the server greeted with {code}, not 220"),
        ));
    }
    send(&mut writer, &format!("EHLO {helo}\r\n")).map_err(|e| (Stage::Ehlo, e))?;
    let (code, lines) = read_reply(&mut reader).map_err(|e| (Stage::Ehlo, e))?;
    s.ehlo = lines;
    if code != 250 {
        return Err((Stage::Ehlo, format!("EHLO was answered {code}, not 250")));
    }
    s.starttls_offered = s.ehlo.iter().skip(1).any(|l| {
        l.get(4..)
            .is_some_and(|kw| kw.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    if !s.starttls_offered {
        let _ = send(&mut writer, "QUIT\r\n");
        return Err((
            Stage::Starttls,
            "the EHLO reply does not offer STARTTLS".into(),
        ));
    }
    send(&mut writer, "STARTTLS\r\n").map_err(|e| (Stage::Starttls, e))?;
    let (code, lines) = read_reply(&mut reader).map_err(|e| (Stage::Starttls, e))?;
    s.starttls_reply = lines.first().cloned();
    if code != 220 {
        return Err((
            Stage::Starttls,
            format!("STARTTLS was answered {code}, not 220"),
        ));
    }
    if !reader.buffer().is_empty() {
        // RFC 3207 5: nothing may follow the 220 before the handshake (STARTTLS injection)
        return Err((
            Stage::Starttls,
            "the server sent data after its 220 to STARTTLS, before the TLS handshake".into(),
        ));
    }
    drop(reader);
    handshake(s, writer, host)
}

fn handshake(s: &mut Session, mut tcp: TcpStream, host: &str) -> Result<(), (Stage, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        chain: Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (Stage::Handshake, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.trim_end_matches('.').to_string()).map_err(|_| {
        (
            Stage::Handshake,
            format!("{host} is not a DNS name for SNI"),
        )
    })?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| (Stage::Handshake, e.to_string()))?;
    let mut rounds = 0;
    while conn.is_handshaking() {
        rounds += 1;
        if rounds > 64 {
            return Err((Stage::Handshake, "the TLS handshake did not finish".into()));
        }
        conn.complete_io(&mut tcp)
            .map_err(|e| (Stage::Handshake, format!("TLS handshake failed: {e}")))?;
    }
    s.chain = recorder.chain.lock().map(|c| c.clone()).unwrap_or_default();
    s.tls_version = conn.protocol_version().map(|v| format!("{v:?}"));
    s.cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()));
    // be polite: QUIT inside TLS; what the server says to it does not matter
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let _ = tls.write_all(b"QUIT\r\n");
    let _ = tls.flush();
    let mut buf = [0u8; 512];
    let _ = tls.read(&mut buf);
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    if s.chain.is_empty() {
        return Err((
            Stage::Handshake,
            "the server presented no certificate".into(),
        ));
    }
    Ok(())
}

fn send(w: &mut TcpStream, line: &str) -> Result<(), String> {
    w.write_all(line.as_bytes())
        .and_then(|_| w.flush())
        .map_err(|e| format!("sending {}: {e}", line.trim_end()))
}

/// One SMTP reply (RFC 5321 4.2): lines `ddd-text`, the last `ddd text`; the code and the lines.
fn read_reply(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut raw = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut raw)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "no reply within the timeout".to_string()
                }
                _ => format!("reading the reply: {e}"),
            })?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if raw.last() != Some(&b'\n') {
            return Err("a reply line is too long".into());
        }
        let line = String::from_utf8_lossy(&raw).trim_end().to_string();
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| format!("not an SMTP reply: {:?}", truncate(&line)))?;
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return Ok((code, lines));
        }
        if lines.len() >= MAX_LINES {
            return Err("a reply of too many lines".into());
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Records the presented chain and leaves the judgement to DANE; the handshake signatures are
/// verified as usual (with the leaf's key).
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Vec<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            *c = std::iter::once(end_entity)
                .chain(intermediates.iter())
                .map(|d| d.as_ref().to_vec())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
