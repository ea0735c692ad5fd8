//! The HTTP API (axum). Thin: authenticate, extract, call the use case (in a blocking task:
//! it writes SQLite), let the zone manager serve what was committed, map the result to JSON.
//! Errors become HTTP statuses here and nowhere else.
//!
//! Order of a request: the listener (`listener`: connection cap, header and request timeouts)
//! → `auth` (the bearer token, before any body is read; rate limits) → for admin routes
//! `auth::admin_only` → the handler, whose extractor reads the body within its route's limit.
//!
//! Rooms: `domains` (tenants, accepted domains and their proof, the cmdlets, the bulk import),
//! `partitions` (inbound addresses, fleet certificates), `keys` (the key lifecycle, admin),
//! `tokens`, `audit`, `zones` (export), `openapi`; `auth`, `limits`, `listener`.

mod audit;
mod auth;
mod domains;
mod keys;
mod limits;
mod listener;
mod openapi;
mod partitions;
mod tokens;
mod zones;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use provisioner::service::{ApiError, Provisioner};
use serde_json::{json, Value};

use crate::config::ApiConfig;
use crate::zonemgr::ZoneManager;
use audit::*;
use domains::*;
use keys::*;
use openapi::openapi;
use partitions::*;
use tokens::*;
use zones::*;

#[derive(Clone)]
pub struct App {
    pub mgr: Arc<ZoneManager>,
    pub prov: Arc<Provisioner>,
    pub checks: provisioner::checks::CheckSettings,
    pub health: Arc<crate::health::Health>,
}

/// The router's state: the app and what authentication needs.
#[derive(Clone)]
pub(super) struct Api {
    app: App,
    auth: Arc<provisioner::service::Authenticator>,
    limits: Arc<auth::Limits>,
}

impl FromRef<Api> for App {
    fn from_ref(api: &Api) -> App {
        api.app.clone()
    }
}

pub fn router(app: App) -> Router {
    let cfg: ApiConfig = app.mgr.config().api;
    let api = Api {
        auth: app.prov.authenticator(),
        limits: Arc::new(auth::Limits::new(&cfg)),
        app,
    };
    // admin only: the token is checked (and must be an admin's) before a body is read
    let admin = Router::new()
        .route("/v1/tenants", post(create_tenant))
        .route(
            "/v1/partitions/{partition}",
            get(partition_get).put(partition_put),
        )
        .route(
            "/v1/partitions/{partition}/certificates",
            put(certificates_put).layer(DefaultBodyLimit::max(cfg.certificates_body_limit)),
        )
        .route("/v1/partitions/{partition}/lifecycle", get(lifecycle_get))
        .route(
            "/v1/partitions/{partition}/certificates/next",
            post(lifecycle_stage).layer(DefaultBodyLimit::max(cfg.certificates_body_limit)),
        )
        .route(
            "/v1/partitions/{partition}/certificates/promote",
            post(lifecycle_promote),
        )
        .route(
            "/v1/partitions/{partition}/certificates/retire",
            post(lifecycle_retire),
        )
        .route(
            "/v1/import",
            post(import).layer(DefaultBodyLimit::max(cfg.import_body_limit)),
        )
        .route("/v1/keys", get(keys_list))
        .route("/v1/keys/check", post(keys_check))
        .route("/v1/zones/{zone}/keys", get(zone_keys))
        .route("/v1/zones/{zone}/keys/roll", post(keys_roll))
        .route("/v1/zones/{zone}/keys/ds-seen", post(keys_ds_seen))
        .route("/v1/audit", get(audit_page))
        .route("/metrics", get(metrics))
        .route("/v1/zones/{zone}/export", get(zone_export))
        .route_layer(from_fn(auth::admin_only));
    let authenticated = Router::new()
        .route("/v1/tenants/{tenant}/domains", post(add_domain))
        .route("/v1/domains/{domain}", axum::routing::delete(remove_domain))
        .route("/v1/domains/{domain}/verify", post(verify_domain))
        .route("/v1/domains/{domain}/dnssec", get(dnssec_status))
        .route("/v1/domains/{domain}/dnssec/enable", post(dnssec_enable))
        .route("/v1/domains/{domain}/dnssec/disable", post(dnssec_disable))
        .route("/v1/domains/{domain}/smtp-dane/enable", post(dane_enable))
        .route("/v1/domains/{domain}/smtp-dane/disable", post(dane_disable))
        .route("/v1/domains/{domain}/dane-check", get(dane_check))
        .route("/v1/tokens", get(tokens_list).post(token_create))
        .route("/v1/domains", get(domains_list))
        .route("/v1/tokens/{id}", axum::routing::delete(token_revoke))
        .merge(admin)
        .route_layer(from_fn_with_state(api.clone(), auth::authenticate));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/dashboard.css", get(dashboard_css))
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(from_fn(crate::metrics::http::track))
        .with_state(api)
}

/// The router of `[metrics] listen`: `GET /metrics` alone, without a token (a monitoring
/// network's address; the API's `/metrics` takes the admin token).
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Serves `[metrics] listen` until `stop` changes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    app: App,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = app.mgr.config().api;
    listener::serve(listener, metrics_router(app), cfg, stop).await
}

/// `GET /metrics`: the Prometheus text exposition (see `crate::metrics`).
async fn metrics(State(app): State<App>) -> Response {
    let health = app.health.clone();
    match tokio::task::spawn_blocking(move || crate::metrics::render(&health)).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = app.mgr.config().api;
    listener::serve(listener, router(app), cfg, stop).await
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

/// A body that is not what the route takes: what was wrong with the client's JSON (its own
/// input) is said; nothing of the server's internals is.
pub(super) fn bad_body(e: JsonRejection) -> Failure {
    let (status, code, details) = match &e {
        JsonRejection::JsonDataError(d) => (
            400,
            "InvalidRequest",
            format!("The request body is not valid: {}.", d.body_text()),
        ),
        JsonRejection::JsonSyntaxError(d) => (
            400,
            "InvalidRequest",
            format!("The request body is not valid: {}.", d.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => (
            400,
            "InvalidRequest",
            "The request body must be JSON (Content-Type: application/json).".to_string(),
        ),
        _ if e.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            413,
            "RequestTooLarge",
            "The request body is larger than this route takes.".to_string(),
        ),
        _ => (
            400,
            "InvalidRequest",
            "The request body could not be read.".to_string(),
        ),
    };
    ApiError {
        status,
        code,
        details,
    }
    .into()
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
    .map_err(|e| {
        tracing::error!(error = %e, "a use case did not complete");
        ApiError {
            status: 500,
            code: "InternalError",
            details: "The operation did not complete; read the state before retrying.".into(),
        }
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
