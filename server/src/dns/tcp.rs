//! The TCP listener (RFC 1035 4.2.2, RFC 7766): two-byte length-prefixed messages, answered
//! in order on each connection, with limits hickory-server's TCP loop does not have:
//!
//! - at most `tcp_max_connections` connections in all and `tcp_max_per_source` per source
//!   address: a connection over either cap is closed as soon as it is accepted, never queued;
//! - `tcp_idle_timeout` between queries (the whole next message must arrive within it, so a
//!   client that sends a byte at a time is cut off too), and as the bound on a write that makes
//!   no progress (a client that stops reading);
//! - zone transfers take one of `xfr_max_concurrent` slots (`xfr::Xfr`).
//!
//! Connections are tasks of their own; none of this runs on the UDP loops, and a connection
//! waiting on its client holds no lock and no thread.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::MessageType;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::DnsHandler;
use crate::config::Config;

/// The connection limits (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub idle: Duration,
}

impl Limits {
    pub fn from_config(c: &Config) -> Self {
        Self {
            max_connections: c.tcp_max_connections,
            max_per_source: c.tcp_max_per_source,
            idle: Duration::from_secs(c.tcp_idle_timeout.max(1)),
        }
    }
}

/// Open connections, shared by every TCP listener of the process.
struct Open {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
    /// Connections closed over a cap since the last warning, and when that was.
    refused: u64,
    warned: Option<Instant>,
}

pub struct Connections {
    limits: Limits,
    open: Mutex<Open>,
}

impl Connections {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Open {
                total: 0,
                per_source: HashMap::new(),
                refused: 0,
                warned: None,
            }),
        })
    }

    /// Counts a new connection from `ip`, or `None` when it is over a cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from = o.per_source.get(&ip).copied().unwrap_or(0);
        if o.total >= self.limits.max_connections || from >= self.limits.max_per_source {
            o.refused += 1;
            // one line per 10 s at most, however many are closed
            if o.warned
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
            {
                tracing::warn!(
                    src = %ip,
                    closed = o.refused,
                    open = o.total,
                    from_source = from,
                    max = self.limits.max_connections,
                    max_per_source = self.limits.max_per_source,
                    "TCP connections over the cap closed"
                );
                o.refused = 0;
                o.warned = Some(Instant::now());
            }
            return None;
        }
        o.total += 1;
        *o.per_source.entry(ip).or_default() += 1;
        Some(Slot {
            conns: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    conns: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.conns.open.lock().unwrap_or_else(|e| e.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.per_source.remove(&self.ip);
            }
        }
    }
}

/// Raises the soft limit of open files to what the connection cap needs (up to the hard
/// limit), and warns when the hard limit is too low for it.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn raise_fd_limit(limits: &Limits) {
    #[cfg(unix)]
    {
        let want = (limits.max_connections as u64).saturating_add(256);
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                return;
            }
            if (rl.rlim_cur as u64) < want {
                let new = libc::rlimit {
                    rlim_cur: (want as libc::rlim_t).min(rl.rlim_max),
                    rlim_max: rl.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                    rl.rlim_cur = new.rlim_cur;
                }
            }
        }
        if (rl.rlim_cur as u64) < want {
            tracing::warn!(
                open_files = rl.rlim_cur as u64,
                needed = want,
                "the open-file limit is below tcp_max_connections + 256; connections may fail"
            );
        }
    }
}

/// The accept loop on `listener` (bound by the caller) until `stop` changes; the supervisor
/// starts it again on the same socket if it panics.
pub async fn serve(
    listener: Arc<std::net::TcpListener>,
    handler: Arc<DnsHandler>,
    conns: Arc<Connections>,
    stop: watch::Receiver<bool>,
) {
    let l = listener
        .try_clone()
        .and_then(TcpListener::from_std)
        .expect("TCP listener");
    accept_loop(l, handler, conns, stop).await
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<DnsHandler>,
    conns: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => match conns.admit(peer.ip()) {
                Some(slot) => {
                    let idle = conns.limits.idle;
                    tokio::spawn(connection(
                        stream,
                        peer,
                        handler.clone(),
                        slot,
                        idle,
                        stop.clone(),
                    ));
                }
                // closed at once: the client sees the end of the stream, nothing is queued
                None => drop(stream),
            },
            Err(e) => {
                // e.g. out of file descriptors: do not spin
                tracing::debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads one length-prefixed message; `None` at the end of the stream.
async fn read_message(rd: &mut tokio::net::tcp::OwnedReadHalf) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<DnsHandler>,
    _slot: Slot,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let reply = TcpReply {
        writer: Arc::new(tokio::sync::Mutex::new(wr)),
        timeout: idle,
        broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    loop {
        let msg = tokio::select! {
            r = tokio::time::timeout(idle, read_message(&mut rd)) => match r {
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {
                    tracing::debug!(%peer, "TCP connection idle: closed");
                    break;
                }
            },
            _ = stop.changed() => break,
        };
        match Request::from_bytes(msg.clone(), peer, Protocol::Tcp) {
            Ok(request) => {
                if request.metadata.message_type == MessageType::Response {
                    continue;
                }
                handler
                    .handle_request::<_, TokioTime>(&request, reply.clone())
                    .await;
            }
            Err(_) => match super::udp::formerr_bytes(&msg) {
                Some(b) => {
                    if reply.send_raw(&b).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
        if reply.broken.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    let mut w = reply.writer.lock().await;
    let _ = w.shutdown().await;
}

/// Writes answers to one TCP connection, each framed with its length.
#[derive(Clone)]
pub(crate) struct TcpReply {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    /// A write that makes no progress for this long fails (the client does not read).
    timeout: Duration,
    /// Set when a write failed: the connection is closed after the current request.
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl TcpReply {
    /// Sends one message the handler encoded itself.
    pub(crate) async fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > u16::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message over 64 KiB",
            ));
        }
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(bytes);
        let mut w = self.writer.lock().await;
        let r = tokio::time::timeout(self.timeout, w.write_all(&framed)).await;
        if !matches!(r, Ok(Ok(()))) {
            self.broken
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match r {
            Ok(r) => r,
            Err(_) => {
                // cut the connection: nothing more can be framed on it
                let _ = w.shutdown().await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client does not read",
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl ResponseHandler for TcpReply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut out = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut out);
        enc.set_max_size(u16::MAX);
        let info = response
            .destructive_emit(&mut enc)
            .map_err(|e| NetError::from(e.to_string()))?;
        self.send_raw(&out)
            .await
            .map_err(|e| NetError::from(e.to_string()))?;
        Ok(info)
    }
}
