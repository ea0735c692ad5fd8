//! Zones as served (admin): the signed zone in presentation format.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use provisioner::service::ApiError;

use super::{App, Failure};

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
