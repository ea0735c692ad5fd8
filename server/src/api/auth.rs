//! Authentication and rate limits, as a middleware in front of every route but health and the
//! OpenAPI document: it runs before any extractor, so a request without a valid token is
//! answered 401 before its body is read.
//!
//! 1. A source address (IPv6: its /64) whose failed authentications used up their bucket is
//!    answered 429 at once, without looking its token up.
//! 2. The token is looked up off the async threads (`spawn_blocking`) on the authenticator's own
//!    read-only SQLite connections: never the provisioner's store lock, which a bulk import
//!    holds for whole batches. A failure takes a token from the address's bucket; 401.
//! 3. The caller's bucket (the tenant, or the admin tokens together): 429 with Retry-After.
//! 4. The [`Actor`] goes into the request's extensions for the handler.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use provisioner::service::{Actor, ApiError, AuthError};

use super::limits::{retry_after_secs, source_key, Buckets};
use super::{Api, Failure};
use crate::config::ApiConfig;

pub(super) struct Limits {
    tenants: Buckets<String>,
    admin: Buckets<()>,
    failures: Buckets<IpAddr>,
}

impl Limits {
    pub(super) fn new(cfg: &ApiConfig) -> Self {
        Self {
            tenants: Buckets::new(cfg.tenant_rate, cfg.tenant_burst),
            admin: Buckets::new(cfg.admin_rate, cfg.admin_burst),
            failures: Buckets::new(cfg.auth_failure_rate, cfg.auth_failure_burst),
        }
    }
}

fn too_many(wait: Duration, why: &str) -> Response {
    let secs = retry_after_secs(wait);
    let mut r = Failure::from(ApiError {
        status: 429,
        code: "TooManyRequests",
        details: format!("{why}; retry after {secs} s."),
    })
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn unauthorized() -> Response {
    let mut r = Failure::from(ApiError::unauthorized()).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}

pub(super) async fn authenticate(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| source_key(c.0.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Err(wait) = api.limits.failures.check(&ip, Instant::now()) {
        return too_many(wait, "Too many failed authentications from this address");
    }
    let result = match bearer(&req) {
        None => Err(AuthError::Unauthorized),
        Some(token) => {
            let auth = api.auth.clone();
            tokio::task::spawn_blocking(move || auth.authenticate(&token))
                .await
                .unwrap_or(Err(AuthError::Unavailable))
        }
    };
    let actor: Actor = match result {
        Ok(a) => a,
        Err(AuthError::Unauthorized) => {
            let _ = api.limits.failures.take(&ip, Instant::now());
            tracing::debug!(source = %ip, "authentication failed");
            return unauthorized();
        }
        Err(AuthError::Unavailable) => {
            let mut r = Failure::from(ApiError {
                status: 503,
                code: "ServiceUnavailable",
                details: "Tokens cannot be checked right now; retry after 1 s.".into(),
            })
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            return r;
        }
    };
    let now = Instant::now();
    let limited = match actor.tenant() {
        Some(t) => api.limits.tenants.take(&t.to_string(), now),
        None => api.limits.admin.take(&(), now),
    };
    if let Err(wait) = limited {
        return too_many(wait, "Too many requests for this tenant");
    }
    req.extensions_mut().insert(actor);
    next.run(req).await
}

/// Admin routes: a tenant's token is refused (403) before the body is read.
pub(super) async fn admin_only(req: Request, next: Next) -> Response {
    match req.extensions().get::<Actor>() {
        Some(a) if a.is_admin() => next.run(req).await,
        Some(_) => Failure::from(ApiError::forbidden()).into_response(),
        None => unauthorized(),
    }
}
