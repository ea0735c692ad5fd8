//! `mxdns serve`: the zone manager, the DNS listeners, the HTTP API and the periodic tasks
//! (follower, signature refresh, rollover scheduler, checkpoints), until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use provisioner::Store;

use crate::config::Config;
use crate::zonemgr::{self, Clock, SystemClock, ZoneManager};
use crate::{api, dns, lifecycle, xfr};

pub fn serve(config: Config) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if config.workers > 0 {
        rt.worker_threads(config.workers);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let cfg = config.clone();
        let mgr = tokio::task::spawn_blocking(move || ZoneManager::open(cfg, clock)).await??;
        let mgr = Arc::new(mgr);
        let handler = Arc::new(dns::DnsHandler::new(mgr.clone(), &config)?);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let limits = dns::tcp::Limits::from_config(&config);
        dns::tcp::raise_fd_limit(&limits);
        let tcp_conns = dns::tcp::Connections::new(limits);
        let mut udp_tasks = Vec::new();
        let sockets_per_addr = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for addr in &config.dns_listen {
            for sock in dns::udp::bind(*addr, sockets_per_addr)
                .with_context(|| format!("binding UDP {addr}"))?
            {
                udp_tasks.push(tokio::spawn(dns::udp::serve(
                    sock,
                    handler.clone(),
                    stop_rx.clone(),
                )));
            }
            udp_tasks.push(
                dns::tcp::spawn(*addr, handler.clone(), tcp_conns.clone(), stop_rx.clone()).await?,
            );
            tracing::info!(%addr, "DNS listening (UDP, TCP)");
        }
        let api = tokio::net::TcpListener::bind(config.api_listen)
            .await
            .with_context(|| format!("binding HTTP {}", config.api_listen))?;
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
        };
        let http = tokio::spawn(api::serve(api, app, stop_rx.clone()));
        let follower = tokio::spawn(follow(mgr.clone(), stop_rx.clone()));
        let refresher = tokio::spawn(refresh(mgr.clone(), stop_rx.clone()));
        let roller = tokio::spawn(roll(mgr.clone(), stop_rx.clone()));
        let notifiers = xfr::notify::spawn(mgr.clone(), &handler.xfr.secondaries, stop_rx.clone());
        let checkpointer = tokio::spawn(checkpoints(mgr.clone(), stop_rx));

        shutdown_signal().await;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
        let _ = tokio::join!(http, follower, refresher, roller, checkpointer);
        for t in udp_tasks.into_iter().chain(notifiers) {
            let _ = t.await;
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

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
async fn periodically(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
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

/// Follows the store's change log (writes from other processes).
async fn follow(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_millis(mgr.config().follow_interval_ms.max(10));
    periodically(period, stop, "applied stored changes", move || mgr.sync()).await
}

/// Writes the checkpoint right away (after a full build), then every `checkpoint_interval`
/// when the zones changed, and once more when the server stops.
async fn checkpoints(mgr: Arc<ZoneManager>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = mgr.config().checkpoint_interval;
    if every == 0 {
        return;
    }
    let write = |mgr: Arc<ZoneManager>| async move {
        match tokio::task::spawn_blocking(move || mgr.write_checkpoint(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing the checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "writing the checkpoint panicked"),
        }
    };
    loop {
        write(mgr.clone()).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = stop.changed() => break,
        }
    }
    write(mgr).await;
}

/// Refreshes signatures that approach expiry.
async fn refresh(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_secs(mgr.config().signatures.check_interval.max(1));
    periodically(period, stop, "refreshed signatures", move || {
        mgr.refresh_signatures()
    })
    .await
}

/// The server's own rollover scheduler: every `keys.check_interval` it carries out the due
/// steps (as `mxdns keys roll --check` does) and serves the result.
async fn roll(mgr: Arc<ZoneManager>, stop: tokio::sync::watch::Receiver<bool>) {
    let every = mgr.config().keys.check_interval;
    if every == 0 {
        tracing::info!("key rollover scheduler off (keys.check_interval = 0): run `mxdns keys roll --check` from cron");
        return;
    }
    let config = mgr.config().clone();
    periodically(
        Duration::from_secs(every),
        stop,
        "key rollover steps",
        move || {
            let mut store = Store::open(&zonemgr::db_path(&config.data_dir))?;
            let done = lifecycle::check_all(&config, &mut store, SystemClock.now() as u64)?;
            if !done.is_empty() {
                mgr.sync()?;
            }
            Ok(done.len())
        },
    )
    .await
}
