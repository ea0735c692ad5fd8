//! Partitions (admin): inbound addresses and fleet certificates.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use provisioner::service::Actor;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;

use super::{bad_body, run, App, Failure};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PartitionBody {
    addresses: Vec<IpAddr>,
    host_ttl: Option<u32>,
}

pub(super) async fn partition_get(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
) -> Result<Json<Value>, Failure> {
    let (p, certs) = run(&app, false, move |prov| prov.partition(&who, &partition)).await?;
    Ok(Json(
        json!({"partition": p.name, "addresses": p.addresses, "hostTtl": p.host_ttl, "tlsa": certs}),
    ))
}

pub(super) async fn partition_put(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
    body: Result<Json<PartitionBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let Json(body) = body.map_err(bad_body)?;
    let p = run(&app, true, move |prov| {
        prov.set_partition(&who, &partition, &body.addresses, body.host_ttl)
    })
    .await?;
    Ok(Json(
        json!({"partition": p.name, "addresses": p.addresses, "hostTtl": p.host_ttl}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificatesBody {
    current: String,
    next: Option<String>,
    #[serde(default)]
    issuers: Vec<String>,
}

pub(super) async fn certificates_put(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
    body: Result<Json<CertificatesBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let Json(b) = body.map_err(bad_body)?;
    let tlsa = run(&app, true, move |p| {
        p.set_certificates(&who, &partition, &b.current, b.next.as_deref(), &b.issuers)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "tlsa": tlsa, "errorData": null}),
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct ForceQuery {
    #[serde(default)]
    force: bool,
}

/// The certificate lifecycle of a partition: state, records, when a promotion is possible,
/// warnings.
pub(super) async fn lifecycle_get(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
) -> Result<Json<Value>, Failure> {
    let s = app.mgr.config().lifecycle_settings();
    let endpoints = app.health.probes.findings(&partition);
    let l = run(&app, false, move |p| {
        p.certificate_lifecycle(&who, &partition, s)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "lifecycle": l, "endpoints": endpoints, "errorData": null}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StageBody {
    /// The next certificate (PEM).
    certificate: String,
}

/// Stages the next certificate: its TLSA record is published beside the current one.
pub(super) async fn lifecycle_stage(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
    body: Result<Json<StageBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let Json(b) = body.map_err(bad_body)?;
    let s = app.mgr.config().lifecycle_settings();
    let l = run(&app, true, move |p| {
        p.stage_certificate(&who, &partition, &b.certificate, s)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "lifecycle": l, "errorData": null}),
    ))
}

/// Promotes the next certificate (409 PromotionTooEarly before TTL + propagation delay, unless
/// `?force=true`).
pub(super) async fn lifecycle_promote(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<Json<Value>, Failure> {
    let s = app.mgr.config().lifecycle_settings();
    let l = run(&app, true, move |p| {
        p.promote_certificate(&who, &partition, q.force, s)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "lifecycle": l, "errorData": null}),
    ))
}

/// Retires the previous certificate once no configured endpoint presents it (409
/// CertificateStillPresented, unless `?force=true`). The probes run on the blocking pool.
pub(super) async fn lifecycle_retire(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(partition): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<Json<Value>, Failure> {
    let config = app.mgr.clone();
    let s = config.config().lifecycle_settings();
    let l = run(&app, true, move |p| {
        let probe = |spki: &[u8]| config.config().endpoints_presenting(&partition, spki);
        p.retire_certificate(&who, &partition, q.force, &probe, s)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "lifecycle": l, "errorData": null}),
    ))
}
