//! The HTTP API (axum). Thin: authenticate, extract, call the use case (in a blocking task:
//! it writes SQLite), let the zone manager serve what was committed, map the result to JSON.
//! Errors become HTTP statuses here and nowhere else.
//!
//! Rooms: `domains` (tenants, accepted domains, the cmdlets, the bulk import), `partitions`
//! (inbound addresses, fleet certificates), `keys` (the key lifecycle, admin), `openapi`.

mod domains;
mod keys;
mod openapi;
mod partitions;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use provisioner::service::{ApiError, Caller, Provisioner};
use serde_json::{json, Value};

use crate::zonemgr::ZoneManager;
use domains::*;
use keys::*;
use openapi::openapi;
use partitions::*;

/// Largest request body accepted (certificates in PEM are a few KiB each).
const BODY_LIMIT: usize = 256 * 1024;
/// Largest bulk import body (about a million domain names).
const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct App {
    pub mgr: Arc<ZoneManager>,
    pub prov: Arc<Provisioner>,
    pub checks: provisioner::checks::CheckSettings,
    pub health: Arc<crate::health::Health>,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/tenants", post(create_tenant))
        .route("/v1/tenants/{tenant}/domains", post(add_domain))
        .route("/v1/domains/{domain}/dnssec", get(dnssec_status))
        .route("/v1/domains/{domain}/dnssec/enable", post(dnssec_enable))
        .route("/v1/domains/{domain}/dnssec/disable", post(dnssec_disable))
        .route("/v1/domains/{domain}/smtp-dane/enable", post(dane_enable))
        .route("/v1/domains/{domain}/smtp-dane/disable", post(dane_disable))
        .route(
            "/v1/partitions/{partition}",
            get(partition_get).put(partition_put),
        )
        .route(
            "/v1/partitions/{partition}/certificates",
            put(certificates_put),
        )
        .route(
            "/v1/import",
            post(import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/v1/keys", get(keys_list))
        .route("/v1/keys/check", post(keys_check))
        .route("/v1/zones/{zone}/keys", get(zone_keys))
        .route("/v1/zones/{zone}/keys/roll", post(keys_roll))
        .route("/v1/zones/{zone}/keys/ds-seen", post(keys_ds_seen))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// An error response in the cmdlets' shape.
pub(super) struct Failure {
    err: ApiError,
    /// The DNSSEC cmdlets carry `dnssecMxValue` (null on error).
    with_mx: bool,
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Self {
            err,
            with_mx: false,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.err.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = json!({
            "result": "Error",
            "errorData": {"errorCode": self.err.code, "errorDetails": self.err.details},
        });
        if self.with_mx {
            body["dnssecMxValue"] = Value::Null;
        }
        (status, Json(body)).into_response()
    }
}

pub(super) fn bad_body(e: JsonRejection) -> Failure {
    let status = e.status().as_u16();
    let code = if status == 413 {
        "RequestTooLarge"
    } else {
        "InvalidRequest"
    };
    let status = if status == 413 { 413 } else { 400 };
    ApiError {
        status,
        code,
        details: format!("The request body is not valid: {}.", e.body_text()),
    }
    .into()
}

pub(super) fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Failure> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    Ok(app.prov.authenticate(token)?)
}

/// Runs a use case off the async threads; after a successful write, serves it before answering.
///
/// A write serves its own change right away: the (zone, owner) pairs it logged are read back
/// from the store and applied ahead of the change log's backlog (`ZoneManager::serve_now`),
/// so that an API call does not wait for a bulk import's backlog; the follower applies the log
/// in order behind it and finds these owners already served. A write that touched too many
/// owners to list (an import, a partition's addresses) applies the whole log instead.
pub(super) async fn run<T: Send + 'static>(
    app: &App,
    write: bool,
    f: impl FnOnce(&Provisioner) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let prov = app.prov.clone();
    let mgr = app.mgr.clone();
    tokio::task::spawn_blocking(move || {
        let (out, touched) = provisioner::store::collect_touched(|| f(&prov));
        let out = out?;
        if write {
            let served = match touched {
                Some(t) if !t.is_empty() => mgr.serve_now(&t).map(|_| ()),
                // nothing listed (a key change, or writes made elsewhere): the whole log
                _ => mgr.sync().map(|_| ()),
            };
            if let Err(e) = served {
                // committed: the follower applies it on its next round
                tracing::error!(error = %e, "serving a committed change failed; will retry");
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError {
        status: 500,
        code: "InternalError",
        details: format!("The operation did not complete: {e}."),
    })?
}

/// `GET /v1/health`: 200 with the figures when every check passes, else 503 with the
/// problems (see `crate::health`). Reads atomics only: it never waits for the zone manager
/// or the store.
async fn health(State(app): State<App>) -> Response {
    let r = app.health.report();
    let status = if r.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r.body)).into_response()
}

/// `GET /v1/ready` (load balancers): 200 once every zone is built, DNS listens and health is
/// ok; 503 with the reasons otherwise.
async fn ready(State(app): State<App>) -> Response {
    let r = app.health.ready();
    let status = if r.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r.body)).into_response()
}
