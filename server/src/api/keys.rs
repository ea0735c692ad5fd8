//! The key lifecycle (admin): key lists, rollover steps, unscheduled rolls, the parent's DS.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use provisioner::service::{Actor, ApiError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_body, run, App, Failure};
use crate::lifecycle;
use crate::zonemgr::Clock;

/// Runs a key lifecycle operation (admin only: the route is behind `admin_only`) as a use case
/// (`run`): off the async threads, then serves its result.
pub(super) async fn key_op<T: Send + 'static>(
    app: &App,
    who: Actor,
    f: impl FnOnce(
            &crate::config::Config,
            &mut provisioner::Store,
            u64,
            &Actor,
        ) -> Result<T, lifecycle::LifecycleError>
        + Send
        + 'static,
) -> Result<T, Failure> {
    if !who.is_admin() {
        return Err(ApiError::forbidden().into());
    }
    let mgr = app.mgr.clone();
    Ok(run(app, true, move |_| {
        let config = mgr.config();
        let mut store = provisioner::Store::open(&crate::zonemgr::db_path(&config.data_dir))
            .map_err(|e| lifecycle::LifecycleError::Other(e.into()))
            .map_err(key_error)?;
        let now = crate::zonemgr::SystemClock.now() as u64;
        f(config, &mut store, now, &who).map_err(key_error)
    })
    .await?)
}

pub(super) fn key_error(e: lifecycle::LifecycleError) -> ApiError {
    match e {
        lifecycle::LifecycleError::NoZone(z) => ApiError {
            status: 404,
            code: "ZoneNotFound",
            details: format!("{z} is not a zone of this server."),
        },
        lifecycle::LifecycleError::Refused(r) => ApiError {
            status: 409,
            code: "KeyOperationRefused",
            details: format!("{}; nothing was changed.", capitalized(&r.to_string())),
        },
        lifecycle::LifecycleError::Other(e) => {
            tracing::error!(error = %e, "key operation failed");
            ApiError {
                status: 500,
                code: "KeyOperationFailed",
                details: "The key operation failed and nothing was changed; the server's log has the cause.".into(),
            }
        }
    }
}

pub(super) fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn zone_param(z: &str) -> Result<hickory_proto::rr::Name, Failure> {
    let mut n = hickory_proto::rr::Name::from_ascii(z).map_err(|e| {
        Failure::from(ApiError {
            status: 400,
            code: "InvalidZoneName",
            details: format!("{z} is not a valid zone name: {e}."),
        })
    })?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

pub(super) async fn keys_list(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
) -> Result<Json<Value>, Failure> {
    let zones = key_op(&app, who, |c, s, now, _| lifecycle::status(c, s, None, now)).await?;
    Ok(Json(json!({"zones": zones})))
}

pub(super) async fn zone_keys(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(zone): Path<String>,
) -> Result<Json<Value>, Failure> {
    let zone = zone_param(&zone)?;
    let zones = key_op(&app, who, move |c, s, now, _| {
        lifecycle::status(c, s, Some(&zone), now)
    })
    .await?;
    Ok(Json(json!(zones.first())))
}

pub(super) async fn keys_check(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
) -> Result<Json<Value>, Failure> {
    let done = key_op(&app, who, |c, s, now, who| {
        lifecycle::check_all_as(c, s, now, who).map_err(lifecycle::LifecycleError::Other)
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollBody {
    role: String,
}

pub(super) async fn keys_roll(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(zone): Path<String>,
    body: Result<Json<RollBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let zone = zone_param(&zone)?;
    let Json(b) = body.map_err(bad_body)?;
    let role = match b.role.as_str() {
        "zsk" => keys::rollover::KeyRole::Zsk,
        "ksk" => keys::rollover::KeyRole::Ksk,
        other => {
            return Err(ApiError {
                status: 400,
                code: "InvalidRequest",
                details: format!("role must be \"zsk\" or \"ksk\", not \"{other}\"."),
            }
            .into())
        }
    };
    let done = key_op(&app, who, move |c, s, now, who| {
        lifecycle::roll_zone_as(c, s, &zone, now, Some(lifecycle::Request::Roll(role)), who)
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}

pub(super) async fn keys_ds_seen(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(zone): Path<String>,
) -> Result<Json<Value>, Failure> {
    let zone = zone_param(&zone)?;
    let done = key_op(&app, who, move |c, s, now, who| {
        lifecycle::roll_zone_as(c, s, &zone, now, Some(lifecycle::Request::DsSeen), who)
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}
