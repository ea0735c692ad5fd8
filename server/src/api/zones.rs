//! Zones as served (admin): the signed zone in presentation format; the domains list and
//! the dashboard page (`GET /`, plain HTML and script reading the JSON routes).

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use provisioner::service::Actor;
use provisioner::service::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{run, App, Failure};

/// `GET /v1/zones/{zone}/export`: the published snapshot in RFC 1035 presentation format.
pub(super) async fn zone_export(
    State(app): State<App>,
    Path(zone): Path<String>,
) -> Result<Response, Failure> {
    let not_found = || ApiError {
        status: 404,
        code: "ZoneNotFound",
        details: format!("{zone} is not a zone of this server."),
    };
    let name = crate::cli::parse_name(&zone).map_err(|_| not_found())?;
    let Some(z) = app.mgr.catalog.load().get(&name).cloned() else {
        return Err(not_found().into());
    };
    // a big zone takes a while to write: off the async threads
    let text = tokio::task::spawn_blocking(move || crate::export::presentation(&z))
        .await
        .map_err(|_| ApiError {
            status: 500,
            code: "InternalError",
            details: "The export did not complete.".into(),
        })?;
    Ok(([(CONTENT_TYPE, "text/dns; charset=utf-8")], text).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainsQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// `GET /v1/domains?search=&after=&limit=`: the caller's domains (the admin: all), by name.
pub(super) async fn domains_list(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    q: Result<Query<DomainsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Failure> {
    let Query(q) = q.map_err(|e| ApiError {
        status: 400,
        code: "InvalidRequest",
        details: format!("The query string is not valid: {}.", e.body_text()),
    })?;
    let caller = if who.is_admin() { "admin" } else { "tenant" };
    let domains = run(&app, false, move |p| {
        p.list_domains(&who, &q.search, &q.after, q.limit)
    })
    .await?;
    let next = domains.last().map(|d| d.domain.clone());
    Ok(Json(
        json!({"caller": caller, "domains": domains, "next": next}),
    ))
}

/// `GET /`: the operator's dashboard (no data in the page; its script asks for a token and
/// reads the JSON routes with it).
pub(super) async fn dashboard() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
            ),
        ],
        include_str!("dashboard/index.html"),
    )
        .into_response()
}

/// `GET /dashboard.js`, `GET /dashboard.css`.
pub(super) async fn dashboard_js() -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/dashboard.js"),
    )
        .into_response()
}
pub(super) async fn dashboard_css() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/dashboard.css"),
    )
        .into_response()
}
