//! The DANE validation test (`mxdns check dane`, `GET /v1/domains/{d}/dane-check`) against
//! real SMTP servers: Postfix's smtpd presenting certificates made by openssl, our server
//! publishing the TLSA records, Unbound validating with our trust anchor. Each test runs in a
//! network namespace of its own (`unshare(CLONE_NEWNET)` on the test's thread, as root), so
//! Postfix listens on port 25 of 127.0.0.2-127.0.0.6 and Unbound on port 53 of 127.0.0.1,
//! where the independent DANE senders look: Postfix's `posttls-finger` and Postfix itself
//! delivering with `smtp_tls_security_level = dane` (both through the C library's resolver,
//! pointed at that Unbound by a `/etc/resolv.conf` bind-mounted in a mount namespace of
//! their own).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::{json, Value};

/// Moves this thread into a new network namespace with its loopback up: every process the test
/// starts from here lives there.
fn enter_netns() {
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) (the tests run as root): {}",
        std::io::Error::last_os_error()
    );
    let st = Command::new(which("ip"))
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
}

/// A self-signed end-entity certificate valid in January 2020 only (`openssl ca -selfsign`
/// with explicit dates); returns its SPKI SHA-256 hex.
fn make_expired_cert(dir: &Path, name: &str) -> String {
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = copy\n[p]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            &key,
            "-in",
            &csr,
            "-out",
            &crt,
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ],
    );
    spki_of(&dir.join(crt))
}

fn spki_of(crt: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r",
            crt.display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A leaf for `dns_name` signed by the CA `ca` (`ca.pem`/`ca.key` in `dir`), with SAN.
fn make_leaf(dir: &Path, name: &str, dns_name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={dns_name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:{dns_name}\nbasicConstraints=critical,CA:FALSE\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// `/etc/resolv.conf` for the C library's resolver: our Unbound, and its AD bit trusted.
fn resolv_conf(dir: &Path) -> PathBuf {
    let p = dir.join("resolv.conf");
    std::fs::write(
        &p,
        "nameserver 127.0.0.1\noptions trust-ad attempts:2 timeout:3\n",
    )
    .unwrap();
    p
}

/// A Postfix instance with its own configuration and queue directories (`postfix -c DIR
/// start-fg`), started in a mount namespace of its own where `/etc/resolv.conf` is ours.
struct Postfix {
    dir: tempfile::TempDir,
    child: Child,
}

impl Postfix {
    /// `main` is appended to the common main.cf; `services` are master.cf lines (smtpd on
    /// given addresses); `listens` the addresses to wait for.
    fn start(main: &str, services: &[String], listens: &[&str], resolv: &Path) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // the postfix user must reach its queue
        set_mode(d, 0o755);
        std::fs::create_dir_all(d.join("queue")).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        let st = Command::new("chown")
            .arg("postfix")
            .arg(d.join("data"))
            .status()
            .unwrap();
        assert!(st.success());
        let dd = d.display();
        std::fs::write(
            d.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {dd}/queue\ndata_directory = {dd}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = loopback-only\n\
                 inet_protocols = ipv4\nmydestination =\nmynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\nalias_maps =\nalias_database =\n\
                 maillog_file_prefixes = /\nmaillog_file = {dd}/maillog\nsmtpd_banner = $myhostname ESMTP\n\
                 {main}"
            ),
        )
        .unwrap();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        let mut out: String = master
            .lines()
            .filter(|l| {
                // the packaged smtpd on port 25 of every address: ours replace it
                let mut f = l.split_whitespace();
                !(f.next() == Some("smtp") && f.next() == Some("inet"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        for s in services {
            out += s;
            out += "\n";
        }
        std::fs::write(d.join("master.cf"), out).unwrap();
        let st = Command::new(which("postconf"))
            .arg("-c")
            .arg(d)
            .args(["-F", "*/*/chroot = n"])
            .status()
            .unwrap();
        assert!(st.success());
        let child = Command::new(which("unshare"))
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/resolv.conf && exec postfix -c {dd} start-fg",
                resolv.display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("start.log")).unwrap())
            .spawn()
            .unwrap();
        let mut p = Postfix { dir, child };
        for a in listens {
            p.wait_banner(a);
        }
        p
    }

    fn wait_banner(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("postfix exited with {st}: {}", self.log());
            }
            if let Ok(s) = TcpStream::connect((addr, 25)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut line = String::new();
                if BufReader::new(&s).read_line(&mut line).is_ok() && line.starts_with("220") {
                    let _ = (&s).write_all(b"QUIT\r\n");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "postfix does not answer on {addr}:25: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}{}",
            std::fs::read_to_string(d.join("start.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("maillog")).unwrap_or_default()
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(which("postfix"))
            .arg("-c")
            .arg(self.dir.path())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A UDP relay between an Unbound and our server that tampers with some answers, as an attacker
/// on the path (or a broken signer) would: TLSA answers for names starting with `_25._tcp.bogus`
/// lose the RRSIGs of their TLSA records; TLSA queries for `_25._tcp.servfail` get SERVFAIL.
struct Tamper {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tamper {
    fn start(upstream: SocketAddr) -> Tamper {
        let sock = UdpSocket::bind(("127.0.0.1", free_port())).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(question) = q.queries.first().cloned() else {
                    continue;
                };
                let qname = question.name().to_ascii().to_ascii_lowercase();
                let is_tlsa = question.query_type() == RecordType::TLSA;
                let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                up.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                up.send_to(&buf[..n], upstream).unwrap();
                let mut ans = [0u8; 4096];
                let Ok(m) = up.recv(&mut ans) else { continue };
                let mut reply = ans[..m].to_vec();
                if is_tlsa && qname.starts_with("_25._tcp.bogus") {
                    let mut msg = Message::from_vec(&reply).unwrap();
                    msg.answers.retain(|r| match &r.data {
                        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                            sig.input().type_covered != RecordType::TLSA
                        }
                        _ => true,
                    });
                    reply = msg.to_vec().unwrap();
                } else if is_tlsa && qname.starts_with("_25._tcp.servfail") {
                    let mut msg = Message::from_vec(&reply).unwrap();
                    msg.answers.clear();
                    msg.authorities.clear();
                    msg.metadata.response_code = ResponseCode::ServFail;
                    reply = msg.to_vec().unwrap();
                }
                let _ = sock.send_to(&reply, from);
            }
        });
        Tamper {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Tamper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `mxdns check dane` with `args`: (exit code, JSON report).
fn check(args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(["check", "dane", "--json"])
        .args(args)
        .env("MXDNS_LOG", "warn")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mxdns check dane {args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// `posttls-finger -l dane` to a domain (MX lookup) or `[host]` through our Unbound (its own mount namespace).
fn posttls_finger(host: &str, resolv: &Path) -> String {
    // its own (almost empty) configuration directory: posttls-finger reads main.cf
    let conf = resolv.parent().unwrap().join("posttls-finger");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("main.cf"),
        "compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\n",
    )
    .unwrap();
    let out = Command::new(which("unshare"))
        .env("MAIL_CONFIG", &conf)
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/resolv.conf && exec posttls-finger -c -l dane -t 10 -T 10 '{host}'",
            resolv.display()
        ))
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct World {
    s: Server,
    token: String,
    admin: String,
    certs: tempfile::TempDir,
    good_spki: String,
    u1: Unbound,
    resolv: PathBuf,
}

const GOOD_HOST: &str = "contoso-test.o-v1.mx.example";

/// Our server (partition o-v1 at 127.0.0.2, fleet certificate `good`), the test hosts, and
/// Unbound on 127.0.0.1:53 validating with our trust anchor; contoso.test's MX comes from a
/// local zone of that Unbound (so it is insecure).
fn world() -> World {
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    set_mode(c, 0o755);
    let (good, good_spki) = make_cert(c, "good", 30);
    let config = "inbound_addresses = [\"127.0.0.2\"]\nstatus_resolver = \"127.0.0.1:53\"\n\
                  status_allow_addresses = [\"127.0.0.0/8\"]\n[dane]\ntimeout_ms = 5000\n";
    let s = Server::start(config);
    let admin = s.admin_token();
    let (_, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "contoso"})),
    );
    let (tenant, token) = (
        v["tenantId"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    );
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": good})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&admin),
        Some(&json!({"domain": "contoso.test", "verified": true})),
    );
    assert_eq!(st, 201, "{v}");
    for path in ["dnssec/enable", "smtp-dane/enable"] {
        let (st, v) = http(
            s.api,
            "POST",
            &format!("/v1/domains/contoso.test/{path}"),
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{path}: {v}");
    }
    let ds = s.cmd(&["keys", "ds"]);
    // contoso.test: a zone signed by ldns-signzone with its MX at our host, served to Unbound
    // as an authority zone and validated with its own trust anchor (a secure MX RRset);
    // insecure.test: the same MX from an unsigned local zone
    let zone = signed_zone(c, "contoso.test", &[format!("@ IN MX 0 {GOOD_HOST}.")]);
    let extra = format!(
        "  local-zone: \"test.\" nodefault\n  trust-anchor: \"{anchor}\"\n\
         local-zone: \"insecure.test.\" static\n  local-data: \"insecure.test. 60 IN MX 0 {GOOD_HOST}.\"\n\
         auth-zone:\n  name: \"contoso.test.\"\n  zonefile: \"{file}\"\n  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n",
        anchor = zone.1,
        file = zone.0.display()
    );
    let u1 = Unbound::start_with(&s, &ds, &extra, 53);
    let resolv = resolv_conf(c);
    World {
        s,
        token,
        admin,
        certs,
        good_spki,
        u1,
        resolv,
    }
}

/// A zone `origin` (SOA, NS and `records`) signed by ldns-signzone with a new ECDSA P-256 key;
/// returns the signed file and its DS as a trust anchor line.
fn signed_zone(dir: &Path, origin: &str, records: &[String]) -> (PathBuf, String) {
    let file = dir.join(format!("{origin}.zone"));
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 60\n@ IN SOA ns.{origin}. h.{origin}. 1 3600 600 86400 60\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
    );
    for r in records {
        z += r;
        z += "\n";
    }
    std::fs::write(&file, z).unwrap();
    let key = Command::new(which("ldns-keygen"))
        .current_dir(dir)
        .args(["-a", "ECDSAP256SHA256", "-k", origin])
        .output()
        .unwrap();
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let st = Command::new(which("ldns-signzone"))
        .current_dir(dir)
        .arg(&file)
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let ds = Command::new(which("ldns-key2ds"))
        .current_dir(dir)
        .args(["-n", "-2"])
        .arg(format!("{key}.key"))
        .output()
        .unwrap();
    let ds = String::from_utf8(ds.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (dir.join(format!("{origin}.zone.signed")), ds)
}

fn add_host(s: &Server, name: &str, a: &str, tlsa: &str) {
    s.cmd(&["host", "add", name, "--a", a, "--tlsa", tlsa]);
    s.wait_for(&format!("_25._tcp.{name}."), RecordType::TLSA, 10, |m| {
        !m.answers.is_empty()
    });
}

fn lower(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_lowercase()
}

/// The address report of the first address of the first host.
fn first_address(v: &Value) -> &Value {
    &v["hosts"][0]["addresses"][0]
}

#[test]
fn every_sender_code_against_real_postfix() {
    enter_netns();
    let w = world();
    let c = w.certs.path();
    let good = w.good_spki.clone();
    let expired = make_expired_cert(c, "expired");
    make_cert(c, "other", 30);
    make_ca_cert(c, "ca", 30);
    let ca_spki = spki_of(&c.join("ca.pem"));
    make_leaf(c, "ta", "ta.o-v1.mx.example");
    // the DANE-TA server sends leaf and CA (RFC 7671 5.2.2)
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(c.join("ta.pem")).unwrap(),
        std::fs::read_to_string(c.join("ca.pem")).unwrap()
    );
    std::fs::write(c.join("ta-chain.pem"), chain).unwrap();
    for f in ["good.key", "expired.key", "other.key", "ta.key"] {
        set_mode(&c.join(f), 0o644);
    }
    let cd = c.display();
    let tls = |key: &str, crt: &str| {
        format!("-o smtpd_tls_security_level=may -o smtpd_tls_chain_files={cd}/{key},{cd}/{crt}")
    };
    let services = vec![
        format!(
            "127.0.0.2:25 inet n - n - - smtpd {}",
            tls("good.key", "good.pem")
        ),
        format!(
            "127.0.0.3:25 inet n - n - - smtpd {}",
            tls("expired.key", "expired.pem")
        ),
        format!(
            "127.0.0.4:25 inet n - n - - smtpd {}",
            tls("other.key", "other.pem")
        ),
        "127.0.0.5:25 inet n - n - - smtpd -o smtpd_tls_security_level=none".to_string(),
        format!(
            "127.0.0.6:25 inet n - n - - smtpd {}",
            tls("ta.key", "ta-chain.pem")
        ),
    ];
    let sink = Postfix::start(
        "myhostname = sink.test\ndefault_transport = discard:sink\nrelay_transport = discard:sink\n",
        &services,
        &["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"],
        &w.resolv,
    );
    add_host(
        &w.s,
        "expired.o-v1.mx.example",
        "127.0.0.3",
        &format!("3 1 1 {expired}"),
    );
    add_host(
        &w.s,
        "mismatch.o-v1.mx.example",
        "127.0.0.4",
        &format!("3 1 1 {good}"),
    );
    add_host(
        &w.s,
        "plain.o-v1.mx.example",
        "127.0.0.5",
        &format!("3 1 1 {good}"),
    );
    add_host(
        &w.s,
        "ta.o-v1.mx.example",
        "127.0.0.6",
        &format!("2 1 1 {ca_spki}"),
    );
    add_host(
        &w.s,
        "taname.o-v1.mx.example",
        "127.0.0.6",
        &format!("2 1 1 {ca_spki}"),
    );
    add_host(
        &w.s,
        "down.o-v1.mx.example",
        "127.0.0.7",
        &format!("3 1 1 {good}"),
    );
    add_host(
        &w.s,
        "bogus.o-v1.mx.example",
        "127.0.0.2",
        &format!("3 1 1 {good}"),
    );
    add_host(
        &w.s,
        "servfail.o-v1.mx.example",
        "127.0.0.2",
        &format!("3 1 1 {good}"),
    );
    let u1 = w.u1.addr.to_string();

    // success: the tenant's host (TLSA: CNAME to the partition's 3 1 1 of `good`)
    let (code, v) = check(&["contoso.test", "--mx", GOOD_HOST, "--resolver", &u1]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("success")), "{v:#}");
    let a = first_address(&v);
    assert_eq!(a["address"], "127.0.0.2:25");
    assert_eq!(a["certificates"]["outcome"], "match");
    assert_eq!(lower(&a["certificates"]["record"]), format!("3 1 1 {good}"));
    assert_eq!(v["hosts"][0]["tlsa"]["status"], "secure");
    assert_eq!(v["hosts"][0]["a"]["status"], "secure");

    // DANE-TA: the leaf chains to the CA named by 2 1 1 and carries the host's name
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "ta.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("success")), "{v:#}");
    assert_eq!(
        lower(&first_address(&v)["certificates"]["record"]),
        format!("2 1 1 {ca_spki}")
    );
    // ... and the same chain for a host name it does not carry: RFC 7672 3.2.3 name check
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "taname.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.323")), "{v:#}");
    assert!(
        v.to_string()
            .contains("not valid for any reference identifier"),
        "{v:#}"
    );

    // 4.7.321: no STARTTLS
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "plain.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.321")), "{v:#}");
    assert_eq!(v["verdict"], "starttls-not-supported");
    assert_eq!(first_address(&v)["smtp"]["starttlsOffered"], false);

    // 4.7.322: the certificate the TLSA names has expired
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "expired.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.322")), "{v:#}");
    assert_eq!(
        first_address(&v)["certificates"]["chain"][0]["expired"],
        true
    );

    // 4.7.323: a certificate the TLSA does not name
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "mismatch.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.323")), "{v:#}");
    assert_eq!(v["verdict"], "tlsa-invalid");
    assert_eq!(first_address(&v)["certificates"]["outcome"], "no-match");

    // nothing listens: no sender code, but no pass either
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "down.o-v1.mx.example",
        "--resolver",
        &u1,
    ]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (1, Some("unreachable")),
        "{v:#}"
    );
    assert_eq!(first_address(&v)["smtp"]["failedAt"], "connect", "{v:#}");

    // 4.7.324 and 4.4.312 through an Unbound whose path to our server is tampered with
    let tamper = Tamper::start(w.s.dns);
    let ds = w.s.cmd(&["keys", "ds"]);
    let u2 = Unbound::start_stubs(&ds, &[tamper.addr], "", free_port());
    let u2a = u2.addr.to_string();
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "bogus.o-v1.mx.example",
        "--resolver",
        &u2a,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.324")), "{v:#}");
    assert_eq!(v["hosts"][0]["tlsa"]["status"], "bogus", "{v:#}");
    assert_eq!(v["hosts"][0]["a"]["status"], "secure", "{v:#}");
    assert!(
        v["hosts"][0]["addresses"].as_array().unwrap().is_empty(),
        "a sender does not connect"
    );
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        "servfail.o-v1.mx.example",
        "--resolver",
        &u2a,
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.4.312")), "{v:#}");
    assert_eq!(v["hosts"][0]["tlsa"]["status"], "failed", "{v:#}");
    // the untampered host through the same resolver passes: only the TLSA answers were touched
    let (code, v) = check(&["contoso.test", "--mx", GOOD_HOST, "--resolver", &u2a]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("success")), "{v:#}");

    // 4.7.324 again: a resolver with a trust anchor that is not ours (every answer bogus)
    let wrong = ds
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split_whitespace().map(String::from).collect();
            if let Some(last) = f.last_mut() {
                *last = last
                    .chars()
                    .map(|ch| if ch == 'A' { 'B' } else { 'A' })
                    .collect();
            }
            f.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let u3 = Unbound::start_stubs(&wrong, &[w.s.dns], "", free_port());
    let (code, v) = check(&[
        "contoso.test",
        "--mx",
        GOOD_HOST,
        "--resolver",
        &u3.addr.to_string(),
    ]);
    assert_eq!((code, v["code"].as_str()), (1, Some("4.7.324")), "{v:#}");
    assert_eq!(v["hosts"][0]["a"]["status"], "bogus", "{v:#}");

    // the whole domain, as a sender starts: a secure MX RRset, then its host
    let (code, v) = check(&["contoso.test", "--resolver", &u1]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("success")), "{v:#}");
    assert_eq!(v["mx"]["status"], "secure");
    assert_eq!(v["hosts"][0]["host"], format!("{GOOD_HOST}."));
    assert_eq!(v["hosts"][0]["preference"], 0);
    // the same MX from an unsigned zone: no DANE for that domain
    let (code, v) = check(&["insecure.test", "--resolver", &u1]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (1, Some("not-dane")),
        "{v:#}"
    );
    assert_eq!(v["mx"]["status"], "insecure");
    assert_eq!(v["hosts"][0]["verdict"], "success", "{v:#}");

    // text output: the code, the evidence and the action
    let out = Command::new(BIN)
        .args([
            "check",
            "dane",
            "contoso.test",
            "--mx",
            "mismatch.o-v1.mx.example",
            "--resolver",
            &u1,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("4.7.323 tlsa-invalid"), "{text}");
    assert!(
        text.contains("action: Make the certificate presented at 127.0.0.4:25"),
        "{text}"
    );
    assert!(text.contains("CN=other"), "{text}");

    // the API: the tenant's own domain; another tenant's (or nobody's) is not found
    let (st, v) = http(
        w.s.api,
        "GET",
        "/v1/domains/contoso.test/dane-check",
        Some(&w.token),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["daneCheck"]["verdict"], "success", "{v:#}");
    assert_eq!(v["daneCheck"]["mx"]["status"], "secure", "{v:#}");
    assert_eq!(v["daneCheck"]["hosts"][0]["host"], format!("{GOOD_HOST}."));
    assert_eq!(v["daneCheck"]["hosts"][0]["verdict"], "success", "{v:#}");
    let (_, other) = http(
        w.s.api,
        "POST",
        "/v1/tenants",
        Some(&w.admin),
        Some(&json!({"name": "fabrikam"})),
    );
    let (st, v) = http(
        w.s.api,
        "GET",
        "/v1/domains/contoso.test/dane-check",
        Some(other["token"].as_str().unwrap()),
        None,
    );
    assert_eq!(st, 404, "{v}");
    let (st, _) = http(
        w.s.api,
        "GET",
        "/v1/domains/contoso.test/dane-check",
        Some(&w.admin),
        None,
    );
    assert_eq!(st, 200);

    // the description knows the routes
    let (_, doc) = http(w.s.api, "GET", "/v1/openapi.json", None, None);
    for (path, method) in [
        ("/v1/domains/{domain}/dane-check", "get"),
        ("/v1/partitions/{partition}/lifecycle", "get"),
        ("/v1/partitions/{partition}/certificates/next", "post"),
        ("/v1/partitions/{partition}/certificates/promote", "post"),
        ("/v1/partitions/{partition}/certificates/retire", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }

    // the independent judges: posttls-finger agrees on success and tlsa-invalid
    let out = posttls_finger("contoso.test", &w.resolv);
    assert!(out.contains("Verified TLS connection established"), "{out}");
    let out = posttls_finger(&format!("[{GOOD_HOST}]"), &w.resolv);
    assert!(out.contains("Verified TLS connection established"), "{out}");
    let out = posttls_finger("[mismatch.o-v1.mx.example]", &w.resolv);
    assert!(
        out.contains("Untrusted TLS connection established"),
        "{out}"
    );
    assert!(!out.contains("Verified TLS"), "{out}");

    // ... and Postfix delivering with smtp_tls_security_level = dane
    let sender = Postfix::start(
        "myhostname = sender.test\nsmtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\n\
             smtp_tls_loglevel = 1\ntransport_maps = inline:{bad.test=smtp:[mismatch.o-v1.mx.example]:25}\n\
             relay_domains = contoso.test, bad.test\n",
        &["127.0.0.1:25 inet n - n - - smtpd".to_string()],
        &["127.0.0.1"],
        &w.resolv,
    );
    submit("127.0.0.1", "a@sender.test", "u@contoso.test");
    submit("127.0.0.1", "a@sender.test", "u@bad.test");
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = sender.log();
        let sent = log.contains("to=<u@contoso.test>") && log.contains("status=sent");
        let deferred = log.contains("to=<u@bad.test>") && log.contains("status=deferred");
        if sent && deferred {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "sender: {log}\nsink: {}",
            sink.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let line = |rcpt: &str| {
        log.lines()
            .find(|l| l.contains(&format!("to=<{rcpt}>")) && l.contains("status="))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("u@contoso.test").contains("status=sent"), "{log}");
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to {GOOD_HOST}[127.0.0.2]:25"
        )),
        "{log}"
    );
    assert!(line("u@bad.test").contains("status=deferred"), "{log}");
    assert!(
        line("u@bad.test").contains("Server certificate not verified"),
        "{log}"
    );
    assert!(
        log.contains(
            "mismatch.o-v1.mx.example[127.0.0.4]:25: num=65:no matching DANE TLSA records"
        ),
        "{log}"
    );
    drop(sender);
    drop(sink);
}

/// One message by SMTP (our test client: not a judge).
fn submit(host: &str, from: &str, to: &str) {
    let s = TcpStream::connect((host, 25)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut expect = |code: &str| loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(l.starts_with(code), "expected {code}, got {l:?}");
        if l.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220");
    for (cmd, code) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
        (format!("Subject: dane\r\n\r\nto {to}\r\n."), "250"),
        ("QUIT".to_string(), "221"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        expect(code);
    }
}

impl Postfix {
    /// `postfix reload`: new smtpd processes read the configuration and certificates again.
    fn reload(&self) {
        let st = Command::new(which("postfix"))
            .arg("-c")
            .arg(self.dir.path())
            .arg("reload")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// The SPKI SHA-256 the endpoint presents now (by our own probe, as the check sees it).
fn presented(u: &str) -> String {
    let (_, v) = check(&["contoso.test", "--mx", GOOD_HOST, "--resolver", u]);
    first_address(&v)["certificates"]["chain"][0]["spkiSha256"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Stage → promote too early (refused, saying when) → promote after the wait → switch the
/// endpoint → retire (refused while the endpoint still presents the old certificate), with two
/// DANE senders (`mxdns check dane` and `posttls-finger`) connecting to the endpoint all along
/// through a validating Unbound: no failed verification at any point. Then the counter-check:
/// an endpoint switched to a certificate that was never staged fails at once.
#[test]
fn certificate_lifecycle_never_fails_a_sender() {
    enter_netns();
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    set_mode(c, 0o755);
    let (a_pem, a_spki) = make_cert(c, "a", 30);
    let (b_pem, b_spki) = make_cert(c, "b", 60);
    make_cert(c, "rogue", 60);
    for f in ["a", "b", "rogue"] {
        set_mode(&c.join(format!("{f}.key")), 0o644);
    }
    let endpoint = c.join("endpoint.pem");
    let present = |name: &str| {
        let both = format!(
            "{}{}",
            std::fs::read_to_string(c.join(format!("{name}.key"))).unwrap(),
            std::fs::read_to_string(c.join(format!("{name}.pem"))).unwrap()
        );
        let tmp = c.join("endpoint.tmp");
        std::fs::write(&tmp, both).unwrap();
        set_mode(&tmp, 0o644);
        std::fs::rename(&tmp, &endpoint).unwrap();
    };
    present("a");
    // TLSA TTL 2 s, propagation delay 1 s: a promotion waits 3 s
    let config = "inbound_addresses = [\"127.0.0.2\"]\nstatus_resolver = \"127.0.0.1:53\"\n\
                  status_allow_addresses = [\"127.0.0.0/8\"]\nhost_ttl = 2\n\
                  [dane]\ntimeout_ms = 5000\npropagation_delay = 1\nexpiry_warning_days = 45\nprobe_interval = 1\n\
                  [dane.endpoints]\no-v1 = [\"127.0.0.2:25\"]\n";
    let s = Server::start(config);
    let admin = s.admin_token();
    let (_, v) = http(
        s.api,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(&json!({"name": "c"})),
    );
    let (tenant, token) = (
        v["tenantId"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    );
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1",
        Some(&admin),
        Some(&json!({"addresses": ["127.0.0.2"], "hostTtl": 2})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = http(
        s.api,
        "PUT",
        "/v1/partitions/o-v1/certificates",
        Some(&admin),
        Some(&json!({"current": a_pem})),
    );
    assert_eq!(st, 200, "{v}");
    http(
        s.api,
        "POST",
        &format!("/v1/tenants/{tenant}/domains"),
        Some(&admin),
        Some(&json!({"domain": "contoso.test", "verified": true})),
    );
    for path in ["dnssec/enable", "smtp-dane/enable"] {
        let (st, v) = http(
            s.api,
            "POST",
            &format!("/v1/domains/contoso.test/{path}"),
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{v}");
    }
    // the current certificate expires in 30 days, within the 45 of the warning, none staged
    let (st, v) = http(
        s.api,
        "GET",
        "/v1/partitions/o-v1/lifecycle",
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lifecycle"]["state"], "current");
    let warning = v["lifecycle"]["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(warning.contains("no next certificate is staged"), "{v:#}");

    let ds = s.cmd(&["keys", "ds"]);
    let u = Unbound::start_with(&s, &ds, "", 53);
    let ua = u.addr.to_string();
    let resolv = resolv_conf(c);
    let sink = Postfix::start(
        &format!(
            "myhostname = sink.test\ndefault_transport = discard:sink\nrelay_transport = discard:sink\n\
             smtpd_tls_security_level = may\nsmtpd_tls_chain_files = {}\n",
            endpoint.display()
        ),
        &["127.0.0.2:25 inet n - n - - smtpd".to_string()],
        &["127.0.0.2"],
        &resolv,
    );
    assert_eq!(presented(&ua), a_spki);
    // the server's own probe of its endpoint sees A, matching the published TLSA; healthy
    let probed = |s: &Server| {
        let (_, v) = http(
            s.api,
            "GET",
            "/v1/partitions/o-v1/lifecycle",
            Some(&admin),
            None,
        );
        v["endpoints"][0].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = probed(&s);
        let (st, h) = http(s.api, "GET", "/v1/health", None, None);
        if e["spkiSha256"] == a_spki.as_str() && st == 200 {
            assert_eq!(e["matchesTlsa"], true, "{e:#}");
            assert_eq!(e["endpoint"], "127.0.0.2:25");
            assert_eq!(e["daysToExpiry"], 29, "{e:#}");
            assert_eq!(h["daneEndpoints"][0]["matchesTlsa"], true, "{h:#}");
            let (_, m) = http(s.api, "GET", "/metrics", Some(&admin), None);
            let m = m.as_str().unwrap_or_default().to_string();
            assert!(
                m.contains("mxdns_dane_endpoint_tlsa_match{partition=\"o-v1\",endpoint=\"127.0.0.2:25\"} 1"),
                "{m}"
            );
            assert!(
                m.contains(
                    "mxdns_dane_endpoint_up{partition=\"o-v1\",endpoint=\"127.0.0.2:25\"} 1"
                ),
                "{m}"
            );
            // 29 days left < the 45 of expiry_warning_days
            assert!(
                h["warnings"][0]
                    .as_str()
                    .unwrap_or_default()
                    .contains("expires in 29 days"),
                "{h:#}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{e:#} {h:#}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // the senders, all along
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let senders = {
        let (stop, seen, ua, resolv) = (stop.clone(), seen.clone(), ua.clone(), resolv.clone());
        std::thread::spawn(move || {
            // the thread starts in the test's namespace (threads share the creator's)
            while !stop.load(Ordering::Relaxed) {
                let (code, v) = check(&["contoso.test", "--mx", GOOD_HOST, "--resolver", &ua]);
                let spki = first_address(&v)["certificates"]["chain"][0]["spkiSha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let verdict = format!("{code} {}", v["verdict"]);
                seen.lock()
                    .unwrap()
                    .push((format!("check {verdict}"), spki));
                let out = posttls_finger(&format!("[{GOOD_HOST}]"), &resolv);
                let ok = out.contains("Verified TLS connection established");
                seen.lock()
                    .unwrap()
                    .push((format!("posttls-finger verified={ok}"), out));
            }
        })
    };
    let wait_checks = |n: usize| {
        let start = seen.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().len() < start + n {
            assert!(Instant::now() < deadline, "the senders stopped");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_checks(4);

    // stage B: published beside A
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/partitions/o-v1/certificates/next",
        Some(&admin),
        Some(&json!({"certificate": b_pem})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lifecycle"]["state"], "staged");
    assert!(
        v["lifecycle"]["warnings"].as_array().unwrap().is_empty(),
        "{v:#}"
    );
    let promotable_at = v["lifecycle"]["promotableAt"].as_i64().unwrap();
    let m = s.wait_for(
        &format!("_25._tcp.{GOOD_HOST}."),
        RecordType::TLSA,
        10,
        |m| tlsa_data(m).len() == 2,
    );
    let mut both = vec![a_spki.clone(), b_spki.clone()];
    both.sort();
    assert_eq!(tlsa_data(&m), both);

    // too early: refused, saying from when
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/partitions/o-v1/certificates/promote",
        Some(&admin),
        None,
    );
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["errorData"]["errorCode"], "PromotionTooEarly", "{v}");
    let details = v["errorData"]["errorDetails"].as_str().unwrap().to_string();
    assert!(details.contains("promote it from"), "{details}");
    assert!(
        details.contains("TLSA TTL 2 s + propagation delay 1 s"),
        "{details}"
    );

    // after the wait (the server's clock: its own promotableAt)
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while now() <= promotable_at {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_checks(2);
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/partitions/o-v1/certificates/promote",
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lifecycle"]["state"], "promoted");

    // retiring A while the endpoint still presents it: refused (the probe saw it)
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/partitions/o-v1/certificates/retire",
        Some(&admin),
        None,
    );
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        v["errorData"]["errorCode"], "CertificateStillPresented",
        "{v}"
    );
    assert!(v.to_string().contains("127.0.0.2:25"), "{v}");

    // the endpoint switches to B at the promotion
    present("b");
    sink.reload();
    let deadline = Instant::now() + Duration::from_secs(30);
    while presented(&ua) != b_spki {
        assert!(Instant::now() < deadline, "the endpoint does not present b");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_checks(4);
    let (st, v) = http(
        s.api,
        "POST",
        "/v1/partitions/o-v1/certificates/retire",
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lifecycle"]["state"], "current");
    s.wait_for(
        &format!("_25._tcp.{GOOD_HOST}."),
        RecordType::TLSA,
        10,
        |m| tlsa_data(m) == vec![b_spki.clone()],
    );
    // past the old RRset's TTL, still verified
    std::thread::sleep(Duration::from_secs(3));
    wait_checks(4);
    stop.store(true, Ordering::Relaxed);
    senders.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let checks: Vec<_> = seen
        .iter()
        .filter(|(w, _)| w.starts_with("check"))
        .collect();
    let fingers: Vec<_> = seen
        .iter()
        .filter(|(w, _)| w.starts_with("posttls"))
        .collect();
    assert!(checks.len() >= 8 && fingers.len() >= 8, "{seen:?}");
    for (what, detail) in &seen {
        assert!(
            what == "check 0 \"success\"" || what == "posttls-finger verified=true",
            "a sender failed: {what}: {detail}"
        );
    }
    // both certificates were seen by the senders
    assert!(checks.iter().any(|(_, spki)| *spki == a_spki));
    assert!(checks.iter().any(|(_, spki)| *spki == b_spki));

    // the counter-check: a certificate never staged fails at once
    present("rogue");
    sink.reload();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, v) = check(&["contoso.test", "--mx", GOOD_HOST, "--resolver", &ua]);
        if v["code"] == "4.7.323" {
            assert_eq!(code, 1);
            break;
        }
        assert!(Instant::now() < deadline, "{v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = posttls_finger(&format!("[{GOOD_HOST}]"), &resolv);
    assert!(!out.contains("Verified TLS"), "{out}");
    // ... and the server's probe reports it: partition status and health (503)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = probed(&s);
        let (st, h) = http(s.api, "GET", "/v1/health", None, None);
        if e["matchesTlsa"] == false && st == 503 {
            assert!(
                h["problems"]
                    .to_string()
                    .contains("endpoint 127.0.0.2:25 of o-v1 presents a certificate"),
                "{h:#}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{e:#} {h:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s
        .log()
        .contains("endpoint presents a certificate no published TLSA record authenticates"));
}
