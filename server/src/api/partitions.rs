//! Partitions (admin): inbound addresses and fleet certificates.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
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
