//! Test harness: starts the real `mxdns` binary on free loopback ports with its own data
//! directory, talks DNS to it over real sockets, and stops it on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

pub const BIN: &str = env!("CARGO_BIN_EXE_mxdns");

/// A port free on 127.0.0.1 for both UDP and TCP (bounded tries), chosen below the kernel's
/// ephemeral range: a port handed out by `bind(:0)` and released again can be taken by any
/// outgoing connection (a secondary's AXFR, a resolver's query) before the test's own process
/// binds it. Ports are spread by process id and a counter so parallel tests and test binaries
/// do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    // the window below the ephemeral range (or above it when the range starts low)
    let (start, span) = if low > 12000 {
        (10000, low - 10000)
    } else {
        (high + 1, 65535 - high)
    };
    let seed = std::process::id().wrapping_mul(2654435761);
    for _ in 0..500 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (start + (seed.wrapping_add(n.wrapping_mul(7919)) % span)) as u16;
        let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            drop(tcp);
            return port;
        }
    }
    panic!("no free port");
}

pub struct Server {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub dns: SocketAddr,
    pub api: SocketAddr,
    pub extra_config: String,
    /// Extra environment variables of the server process (the debug build's test hooks).
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server with a fresh data directory and `config` (TOML) appended to the test
    /// defaults.
    pub fn start(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// [`Server::start`] with extra environment variables for the server process.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let mut s = Self::prepare(config);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.spawn();
        s
    }

    /// A server's directory, ports and configuration, not started yet (`cmd` works, e.g. to
    /// create TSIG keys the configuration names; then `spawn`).
    pub fn prepare(config: &str) -> Self {
        Server {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            dns: SocketAddr::from(([127, 0, 0, 1], free_port())),
            api: SocketAddr::from(([127, 0, 0, 1], free_port())),
            extra_config: config.to_string(),
            env: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mxdns.toml")
    }

    /// Runs `mxdns <args>` against this server's data directory and config; returns stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        std::fs::write(self.config_path(), &self.extra_config).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mxdns {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn spawn(&mut self) {
        std::fs::write(self.config_path(), &self.extra_config).unwrap();
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .arg("--dns-listen")
            .arg(self.dns.to_string())
            .arg("--api-listen")
            .arg(self.api.to_string())
            .env("MXDNS_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("server exited with {status}: {}", self.log());
            }
            if let Ok(m) = query_udp(self.dns, "mx.example.", RecordType::SOA, true, 1232) {
                if !m.answers.is_empty() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready: {}", self.log());
    }

    /// Publishes `host` with an A record and `n` TLSA records (3 1 1 of 1, 2, ...), waits until
    /// it is served: a TLSA RRset too large for a 512-byte answer when n is 14.
    pub fn add_big_tlsa_host(&self, host: &str, n: usize) {
        let mut args: Vec<String> = ["host", "add", host, "--a", "192.0.2.30"]
            .map(String::from)
            .to_vec();
        for i in 0..n {
            args.push("--tlsa".into());
            args.push(format!("3 1 1 {:064x}", i + 1));
        }
        self.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.wait_for(host, RecordType::A, 10, |m| !m.answers.is_empty());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not stop on SIGTERM");
    }

    /// Waits until `pred` holds for a UDP answer to (name, type), at most `secs`.
    pub fn wait_for(
        &self,
        name: &str,
        rtype: RecordType,
        secs: u64,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = query_udp(self.dns, name, rtype, true, 1232).unwrap();
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name} {rtype}: {m:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn make_query(name: &str, rtype: RecordType, dnssec: bool, bufsize: Option<u16>) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    m.metadata.recursion_desired = true;
    if let Some(size) = bufsize {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec);
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    (Instant::now().elapsed().subsec_nanos() ^ std::process::id()) as u16
}

/// Sends raw bytes over UDP and returns the raw answer.
pub fn udp_raw(server: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let sock = UdpSocket::bind(if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    })?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.send_to(bytes, server)?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn query_udp(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    dnssec: bool,
    bufsize: u16,
) -> Result<Message, String> {
    let q = make_query(name, rtype, dnssec, Some(bufsize));
    let raw = udp_raw(server, &q.to_vec().unwrap()).map_err(|e| e.to_string())?;
    Message::from_vec(&raw).map_err(|e| e.to_string())
}

/// A TCP connection speaking DNS (two-byte length prefix).
pub struct Tcp(TcpStream);

impl Tcp {
    pub fn connect(server: SocketAddr) -> Self {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Tcp(s)
    }
    pub fn send(&mut self, m: &Message) {
        let b = m.to_vec().unwrap();
        let mut framed = (b.len() as u16).to_be_bytes().to_vec();
        framed.extend(b);
        self.0.write_all(&framed).unwrap();
    }
    pub fn recv(&mut self) -> Message {
        let mut len = [0u8; 2];
        self.0.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        self.0.read_exact(&mut buf).unwrap();
        Message::from_vec(&buf).unwrap()
    }
}

/// AXFR over TCP: every record of the transfer, in order (first and last are the SOA).
pub fn axfr(server: SocketAddr, zone: &str) -> (Vec<hickory_proto::rr::Record>, usize) {
    let mut c = Tcp::connect(server);
    c.send(&make_query(zone, RecordType::AXFR, false, None));
    let mut out = Vec::new();
    let mut messages = 0;
    loop {
        let m = c.recv();
        messages += 1;
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::NoError,
            "AXFR refused: {m:?}"
        );
        out.extend(m.answers);
        if out.len() > 1 && out.last().unwrap().record_type() == RecordType::SOA {
            return (out, messages);
        }
        assert!(messages < 100_000, "AXFR does not end");
    }
}

pub fn which(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: run the test command of README.md (it installs the validators)"
    );
}

/// A minimal HTTP/1.1 client (one request per connection): returns status and JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string())),
    )
}

/// Runs openssl in `dir`; fails the test with its message if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(which("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a self-signed end-entity certificate (basicConstraints CA:FALSE: a fleet's `current`
/// or `next`) with openssl; returns (PEM, SPKI SHA-256 hex).
pub fn make_cert(dir: &Path, name: &str, days: i32) -> (String, String) {
    make_cert_with(dir, name, days, "basicConstraints=critical,CA:FALSE")
}

/// Makes a self-signed CA certificate (basicConstraints CA:TRUE: an issuer); returns (PEM,
/// SPKI SHA-256 hex).
pub fn make_ca_cert(dir: &Path, name: &str, days: i32) -> (String, String) {
    make_cert_with(dir, name, days, "basicConstraints=critical,CA:TRUE")
}

/// A self-signed P-256 certificate with one extension given as openssl's `-addext` value.
pub fn make_cert_with(dir: &Path, name: &str, days: i32, ext: &str) -> (String, String) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.pem"));
    let (subject, days) = (format!("/CN={name}"), days.to_string());
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            &days,
            "-subj",
            &subject,
            "-addext",
            ext,
        ],
    );
    let crt = dir.join(crt);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r",
            crt.display()
        ))
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (std::fs::read_to_string(&crt).unwrap(), hex)
}

impl Server {
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }
}

/// An Unbound validating resolver, stub zones pointing at our server, trust anchor = our DS.
pub struct Unbound {
    child: Child,
    pub addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Unbound {
    pub fn start(server: &Server, anchor_ds: &str) -> Self {
        Self::start_with(server, anchor_ds, "", free_port())
    }

    /// With extra `server:` lines (local zones of test customer domains) on a given port.
    pub fn start_with(server: &Server, anchor_ds: &str, extra: &str, port: u16) -> Self {
        Self::start_stubs(anchor_ds, &[server.dns], extra, port)
    }

    /// Stub zones for both zones pointing at `servers` (our server, or secondaries only).
    pub fn start_stubs(anchor_ds: &str, servers: &[SocketAddr], extra: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("anchor.ds"), anchor_ds).unwrap();
        let d = dir.path().display();
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  \
             username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
             trust-anchor-file: \"{d}/anchor.ds\"\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  \
             module-config: \"validator iterator\"\n  val-log-level: 2\n  verbosity: 1\n  num-threads: 1\n  \
             so-reuseport: no\n  qname-minimisation: no\n  root-hints: \"\"\n{extra}\
             remote-control:\n  control-enable: no\n\
             stub-zone:\n  name: \"mx.example.\"\n{dns}\
             stub-zone:\n  name: \"o-v1.mx.example.\"\n{dns}",
            dns = servers
                .iter()
                .map(|a| format!("  stub-addr: {}@{}\n", a.ip(), a.port()))
                .collect::<String>(),
        );
        Self::spawn(dir, &conf, port, RecordType::SOA)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }

    /// An Unbound that plays the apex's parent: it serves `records` (presentation format,
    /// e.g. the DS of mx.example.) from a local zone `example.` and nothing else.
    pub fn start_parent(port: u16, records: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let data: String = records
            .iter()
            .map(|r| format!("  local-data: \"{r}\"\n"))
            .collect();
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  \
             username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
             access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n  num-threads: 1\n  \
             so-reuseport: no\n  local-zone: \"example.\" static\n{data}\
             remote-control:\n  control-enable: no\n"
        );
        Self::spawn(dir, &conf, port, RecordType::DS)
    }

    /// Starts `unbound -d` with `conf` in `dir`; waits (bounded) until it answers `probe` for
    /// mx.example.
    fn spawn(dir: tempfile::TempDir, conf: &str, port: u16, probe: RecordType) -> Self {
        std::fs::write(dir.path().join("unbound.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("unbound.log")).unwrap();
        let child = Command::new(which("unbound"))
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let u = Unbound {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while query_udp(u.addr, "mx.example.", probe, false, 1232).is_err() {
            assert!(
                Instant::now() < deadline,
                "unbound did not start: {}",
                u.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        u
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TLSA certificate data of an answer, hex, sorted.
pub fn tlsa_data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::TLSA(t) => {
                Some(t.cert_data.iter().map(|b| format!("{b:02x}")).collect())
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Asks a validating resolver the same `cases` (name, type, expected RCODE) in a loop, every
/// 100 ms, until stopped (bounded by `max`): every answer must carry the expected RCODE and AD.
/// `retries`: a query that gets no answer at all is asked again this many times (a resolver
/// that first tried a stopped server may outlast one wait); an answer, never a SERVFAIL, is
/// what counts.
pub struct Validator {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl Validator {
    pub fn start(
        resolver: SocketAddr,
        cases: Vec<(String, RecordType, hickory_proto::op::ResponseCode)>,
        retries: usize,
        max: Duration,
    ) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let (mut n, mut errors) = (0, Vec::new());
            while !flag.load(Ordering::SeqCst) && t0.elapsed() < max {
                for (name, rtype, rcode) in &cases {
                    let (name, rtype, rcode) = (name.as_str(), *rtype, *rcode);
                    let mut answer = query_udp(resolver, name, rtype, true, 1232);
                    for _ in 0..retries {
                        if answer.is_ok() {
                            break;
                        }
                        answer = query_udp(resolver, name, rtype, true, 1232);
                    }
                    match answer {
                        Ok(m) => {
                            n += 1;
                            let rc = m.metadata.response_code;
                            if rc != rcode || !m.metadata.authentic_data {
                                errors.push(format!(
                                    "{:.1}s {name} {rtype}: {rc:?} AD={}",
                                    t0.elapsed().as_secs_f64(),
                                    m.metadata.authentic_data
                                ));
                            }
                        }
                        Err(e) => errors.push(format!("{name} {rtype}: {e}")),
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (n, errors)
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns (answers, failures).
    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}
