//! `mxdns serve`: two planes, until SIGTERM or Ctrl-C.
//!
//! - The **DNS plane**: a runtime of its own (`mxdns-dns` threads, `workers` of them) that runs
//!   only the DNS listeners (UDP loops, TCP). They read the published catalog
//!   (`ArcSwap::load`) and nothing else: no store, no SQLite, no zone manager, no lock a writer
//!   takes. Every listener is started through [`DnsPlane::listen`], supervised.
//! - The **control plane**: a second runtime (`mxdns-ctl`, `control_workers` async threads plus
//!   its blocking pool) with the HTTP API, the follower, the signature refresher, the rollover
//!   scheduler, the checkpointer and the health observer. Everything that touches the store or
//!   signs runs on its blocking pool. Its threads can run at a lower priority (`control_nice`,
//!   inherited by the signing threads a blocking thread starts), so that a bulk import or a
//!   re-sign takes only the CPU the DNS threads leave; off by default (see README).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use provisioner::Store;
use tokio::sync::watch;

use crate::config::Config;
use crate::health::Health;
use crate::supervise::{self, Board};
use crate::zonemgr::{self, Clock, SystemClock, ZoneManager};
use crate::{api, dns, lifecycle, testhooks, xfr};

pub fn serve(config: Config, config_path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let sockets_per_addr = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let dns_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(sockets_per_addr)
        .thread_name("mxdns-dns")
        .enable_all()
        .build()?;
    let nice = config.control_nice;
    let control_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.control_workers.max(1))
        .thread_name("mxdns-ctl")
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()?;
    let result = control_rt.block_on(run(
        config,
        dns_rt.handle().clone(),
        sockets_per_addr,
        config_path,
    ));
    // the DNS tasks were stopped in `run`; what is left (e.g. a TCP connection's task) goes
    control_rt.shutdown_timeout(Duration::from_secs(5));
    dns_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Adds `nice` to the calling thread's niceness (Linux: niceness is per thread).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: gettid and get/setpriority take and return plain integers; they only
        // change this thread's scheduling priority.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (current + nice).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The DNS plane: its runtime, the supervisor board and the stop signal. Whatever listens for
/// DNS is started here.
struct DnsPlane {
    rt: tokio::runtime::Handle,
    board: Arc<Board>,
    stop: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsPlane {
    /// Runs `make()` on the DNS runtime, started again if it panics or ends.
    fn listen<F, Fut>(&mut self, name: String, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let t = supervise::spawn(&self.rt, &self.board, name, "dns", self.stop.clone(), make);
        self.tasks.push(t);
    }

    /// Binds every DNS address (UDP: `sockets` SO_REUSEPORT sockets each; TCP) and starts
    /// their listeners.
    fn start(
        &mut self,
        config: &Config,
        handler: Arc<dns::DnsHandler>,
        sockets: usize,
    ) -> anyhow::Result<()> {
        let limits = dns::tcp::Limits::from_config(config);
        dns::tcp::raise_fd_limit(&limits);
        // one set of TCP connection counts for every address (the caps are the server's)
        let conns = dns::tcp::Connections::new(limits);
        // sockets register with the reactor of the runtime they are made in: the DNS one
        let _in_dns = self.rt.enter();
        for addr in &config.dns_listen {
            let udp =
                dns::udp::bind(*addr, sockets).with_context(|| format!("binding UDP {addr}"))?;
            for (i, sock) in udp.into_iter().enumerate() {
                let (sock, handler, stop) = (Arc::new(sock), handler.clone(), self.stop.clone());
                self.listen(format!("udp {addr} #{i}"), move || {
                    dns::udp::serve(sock.clone(), handler.clone(), stop.clone())
                });
            }
            let tcp = Arc::new(
                std::net::TcpListener::bind(addr).with_context(|| format!("binding TCP {addr}"))?,
            );
            tcp.set_nonblocking(true)?;
            let (handler, stop, conns) = (handler.clone(), self.stop.clone(), conns.clone());
            self.listen(format!("tcp {addr}"), move || {
                dns::tcp::serve(tcp.clone(), handler.clone(), conns.clone(), stop.clone())
            });
            tracing::info!(%addr, "DNS listening (UDP, TCP)");
        }
        Ok(())
    }
}

async fn run(
    config: Config,
    dns_rt: tokio::runtime::Handle,
    sockets_per_addr: usize,
    config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cfg = config.clone();
    let mgr = tokio::task::spawn_blocking(move || ZoneManager::open(cfg, clock)).await??;
    let mgr = Arc::new(mgr);
    let board = Arc::new(Board::default());
    let health = Arc::new(Health::new(mgr.clone(), board.clone()));
    {
        let h = health.clone();
        tokio::task::spawn_blocking(move || h.observe(true)).await??;
    }
    let handler = Arc::new(dns::DnsHandler::new(mgr.clone(), &config)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut plane = DnsPlane {
        rt: dns_rt,
        board: board.clone(),
        stop: stop_rx.clone(),
        tasks: Vec::new(),
    };
    plane.start(&config, handler.clone(), sockets_per_addr)?;
    health.set_dns_listening();

    let api = std::net::TcpListener::bind(config.api_listen)
        .with_context(|| format!("binding HTTP {}", config.api_listen))?;
    api.set_nonblocking(true)?;
    tracing::info!(addr = %config.api_listen, "HTTP API listening");
    let settings = config.provisioner_settings()?;
    let (db, dir) = (zonemgr::db_path(&config.data_dir), config.data_dir.clone());
    let prov = tokio::task::spawn_blocking(move || {
        provisioner::service::Provisioner::open(&db, &dir, settings)
    })
    .await??;
    let app = api::App {
        mgr: mgr.clone(),
        prov: Arc::new(prov),
        checks: config.check_settings(),
        health: health.clone(),
    };

    let here = tokio::runtime::Handle::current();
    let mut control = Vec::new();
    let mut task = |name: &str, make: Box<dyn Fn() -> TaskFuture + Send>| {
        control.push(supervise::spawn(
            &here,
            &board,
            name.into(),
            "control",
            stop_rx.clone(),
            make,
        ));
    };
    let api = Arc::new(api);
    {
        let (stop, app) = (stop_rx.clone(), app.clone());
        task(
            "http api",
            Box::new(move || {
                let l = api
                    .try_clone()
                    .and_then(tokio::net::TcpListener::from_std)
                    .expect("HTTP listener");
                Box::pin(api::serve(l, app.clone(), stop.clone()))
            }),
        );
    }
    if let Some(addr) = config.metrics.listen {
        let l = Arc::new(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding the metrics listener {addr}"))?,
        );
        l.set_nonblocking(true)?;
        tracing::info!(%addr, "metrics listening (GET /metrics, no token)");
        let (stop, app) = (stop_rx.clone(), app.clone());
        task(
            "metrics",
            Box::new(move || {
                let l = l
                    .try_clone()
                    .and_then(tokio::net::TcpListener::from_std)
                    .expect("metrics listener");
                Box::pin(api::serve_metrics(l, app.clone(), stop.clone()))
            }),
        );
    }
    let jobs: [(&str, Job); 4] = [
        ("follower", |m, s| Box::pin(follow(m, s))),
        ("refresher", |m, s| Box::pin(refresh(m, s))),
        ("rollover scheduler", |m, s| Box::pin(roll(m, s))),
        ("checkpointer", |m, s| Box::pin(checkpoints(m, s))),
    ];
    for (name, job) in jobs {
        let (mgr, stop) = (mgr.clone(), stop_rx.clone());
        task(name, Box::new(move || job(mgr.clone(), stop.clone())));
    }
    {
        let (health, stop) = (health.clone(), stop_rx.clone());
        task(
            "health observer",
            Box::new(move || Box::pin(observe(health.clone(), stop.clone()))),
        );
    }

    if config.dane.probe_interval > 0 && !config.dane.endpoints.is_empty() {
        let (app, stop) = (app.clone(), stop_rx.clone());
        task(
            "endpoint probes",
            Box::new(move || Box::pin(probe(app.clone(), stop.clone()))),
        );
    }

    // NOTIFY to the secondaries on every new serial (coalesced), on the control plane
    let notifiers = xfr::notify::spawn(mgr.clone(), &handler.xfr.secondaries, stop_rx.clone());

    // every zone is built, DNS listens, the API is bound: ready (systemd Type=notify)
    crate::sdnotify::notify("READY=1");
    let mut reloader = crate::reload::Reloader::new(config_path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stopping = shutdown_signal();
    tokio::pin!(stopping);
    loop {
        #[cfg(unix)]
        tokio::select! {
            _ = &mut stopping => break,
            _ = hup.recv() => {
                crate::sdnotify::notify("RELOADING=1");
                match reloader.reload() {
                    Ok((applied, restart)) => {
                        tracing::info!(applied = ?applied, "configuration reloaded (SIGHUP)");
                        if !restart.is_empty() {
                            tracing::warn!(settings = ?restart, "changed settings that need a restart to apply (not applied)");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "configuration reload refused; nothing changed"),
                }
                crate::sdnotify::notify("READY=1");
            }
        }
        #[cfg(not(unix))]
        {
            (&mut stopping).await;
            break;
        }
    }
    crate::sdnotify::notify("STOPPING=1");
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for t in plane.tasks.into_iter().chain(control).chain(notifiers) {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

type TaskFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
/// A periodic task of the zone manager.
type Job = fn(Arc<ZoneManager>, watch::Receiver<bool>) -> TaskFuture;

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs `work` off the async threads every `period` until `stop` changes; logs what it did.
/// A panic in `work` is logged and the next period runs again (the zone manager recovers
/// from a panic while it was held: see `zonemgr::hold`).
async fn periodically(
    period: Duration,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    work: impl Fn() -> anyhow::Result<usize> + Clone + Send + 'static,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        match tokio::task::spawn_blocking(work.clone()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(count = n, "{what}"),
            Ok(Err(e)) => tracing::error!(error = %e, "{what} failed"),
            Err(e) => tracing::error!(error = %e, "{what} panicked"),
        }
    }
}

/// Follows the store's change log (writes from other processes, and the backlog of bulk
/// changes that API calls leave to it).
async fn follow(mgr: Arc<ZoneManager>, stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(mgr.config().follow_interval_ms.max(10));
    periodically(period, stop, "applied stored changes", move || {
        if testhooks::follower_paused() {
            return Ok(0);
        }
        mgr.sync()
    })
    .await
}

/// Probes the provider's own SMTP endpoints like a DANE sender (`probes`), on the blocking
/// pool, every `[dane] probe_interval`; the first round right away.
async fn probe(app: api::App, stop: watch::Receiver<bool>) {
    let round = {
        let app = app.clone();
        move || crate::probes::probe_all(app.mgr.config(), &app.prov, &app.health.probes)
    };
    let first = round.clone();
    if let Err(e) = tokio::task::spawn_blocking(first).await {
        tracing::error!(error = %e, "endpoint probes panicked");
    }
    let period = Duration::from_secs(app.mgr.config().dane.probe_interval.max(1));
    periodically(period, stop, "endpoints probed", round).await
}

/// The health observer: reads the store once a second so that health reports never do.
async fn observe(health: Arc<Health>, stop: watch::Receiver<bool>) {
    periodically(Duration::from_secs(1), stop, "health observed", move || {
        health.observe(false).map(|()| 0)
    })
    .await
}

/// Writes the checkpoint right away (after a full build), then every `checkpoint_interval`
/// when the zones changed, and once more when the server stops.
async fn checkpoints(mgr: Arc<ZoneManager>, mut stop: watch::Receiver<bool>) {
    let every = mgr.config().checkpoint_interval;
    if every == 0 {
        let _ = stop.changed().await;
        return;
    }
    let write = |mgr: Arc<ZoneManager>| async move {
        match tokio::task::spawn_blocking(move || mgr.write_checkpoint(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing the checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "writing the checkpoint panicked"),
        }
    };
    if !*stop.borrow() {
        loop {
            write(mgr.clone()).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                _ = stop.changed() => break,
            }
        }
    }
    write(mgr).await;
}

/// Refreshes signatures that approach expiry.
async fn refresh(mgr: Arc<ZoneManager>, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(mgr.config().signatures.check_interval.max(1));
    periodically(period, stop, "refreshed signatures", move || {
        mgr.refresh_signatures()
    })
    .await
}

/// The server's own rollover scheduler: every `keys.check_interval` it carries out the due
/// steps (as `mxdns keys roll --check` does) and serves the result.
async fn roll(mgr: Arc<ZoneManager>, mut stop: watch::Receiver<bool>) {
    let every = mgr.config().keys.check_interval;
    if every == 0 {
        tracing::info!("key rollover scheduler off (keys.check_interval = 0): run `mxdns keys roll --check` from cron");
        let _ = stop.changed().await;
        return;
    }
    let config = mgr.config().clone();
    periodically(
        Duration::from_secs(every),
        stop,
        "key rollover steps",
        move || {
            let mut store = Store::open(&zonemgr::db_path(&config.data_dir))?;
            let done = lifecycle::check_all_observed(
                &config,
                &mut store,
                SystemClock.now() as u64,
                &provisioner::service::Actor::system(),
                &mgr.fleet,
            )?;
            if !done.is_empty() {
                mgr.sync()?;
            }
            Ok(done.len())
        },
    )
    .await
}
