//! The API's accept loop, on hyper's HTTP/1 connection builder (`axum::serve` has no limits):
//!
//! - at most `api.max_connections` connections are served at once; the loop accepts the next
//!   one only when one ends (the rest wait in the kernel's listen queue);
//! - a request line and headers must arrive within `api.header_timeout`, also when a kept-alive
//!   connection waits for its next request (hyper's header read timeout: slow or idle clients
//!   are cut and free their slot);
//! - a whole request, from its headers to the answer (body included), must finish within
//!   `api.request_timeout` (`api.import_timeout` for `POST /v1/import`): 408 otherwise;
//! - at shutdown no new connection is taken and the open ones finish their request (10 s at
//!   most).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use provisioner::service::ApiError;
use tower_service::Service;

use super::Failure;
use crate::config::ApiConfig;

/// Largest request head (request line and headers) read.
const MAX_HEAD: usize = 64 * 1024;

fn timed_out(secs: u64) -> Response {
    Failure::from(ApiError {
        status: 408,
        code: "RequestTimeout",
        details: format!("The request did not complete within {secs} s; a change it made may still be committed: read the state before retrying."),
    })
    .into_response()
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cfg: ApiConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_timeout))
        .keep_alive(true)
        .max_buf_size(MAX_HEAD);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // out of file descriptors and the like: wait a little, do not spin
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let secs = if req.uri().path() == "/v1/import" {
                cfg.import_timeout
            } else {
                cfg.request_timeout
            };
            let mut router = router.clone();
            async move {
                match tokio::time::timeout(Duration::from_secs(secs), router.call(req)).await {
                    Ok(r) => r,
                    Err(_) => Ok::<_, Infallible>(timed_out(secs)),
                }
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "API connection ended with an error");
            }
            drop(slot);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("API connections still open at shutdown were cut");
        }
    }
}
