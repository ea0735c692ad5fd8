//! Tenants, accepted domains, the cmdlets (Enable-/Disable-DnssecForVerifiedDomain,
//! Get-DnssecStatusForVerifiedDomain, Enable-/Disable-SmtpDaneInbound) and the bulk import.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_body, caller, run, App, Failure};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantBody {
    name: String,
}

pub(super) async fn create_tenant(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<TenantBody>, JsonRejection>,
) -> Result<Response, Failure> {
    let who = caller(&app, &headers)?;
    let Json(body) = body.map_err(bad_body)?;
    let (id, token) = run(&app, false, move |p| p.create_tenant(&who, &body.name)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenantId": id, "token": token})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainBody {
    domain: String,
    #[serde(default)]
    verified: bool,
}

pub(super) async fn add_domain(
    State(app): State<App>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Json<DomainBody>, JsonRejection>,
) -> Result<Response, Failure> {
    let who = caller(&app, &headers)?;
    let Json(body) = body.map_err(bad_body)?;
    let state = run(&app, false, move |p| {
        p.add_domain(&who, &tenant, &body.domain, body.verified)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!(state))).into_response())
}

pub(super) async fn dnssec_enable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let mx = |err| Failure { err, with_mx: true };
    let who = caller(&app, &headers).map_err(|f| mx(f.err))?;
    let value = run(&app, true, move |p| p.enable_dnssec(&who, &domain))
        .await
        .map_err(mx)?;
    Ok(Json(
        json!({"result": "Success", "dnssecMxValue": value, "errorData": null}),
    ))
}

pub(super) async fn dnssec_disable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    run(&app, true, move |p| p.disable_dnssec(&who, &domain)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

pub(super) async fn dane(
    app: App,
    domain: String,
    headers: HeaderMap,
    enable: bool,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    run(&app, true, move |p| p.set_dane(&who, &domain, enable)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

pub(super) async fn dane_enable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    dane(app, domain, headers, true).await
}

pub(super) async fn dane_disable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    dane(app, domain, headers, false).await
}

pub(super) async fn dnssec_status(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    let checks = app.checks.clone();
    let (state, findings) = run(&app, false, move |p| {
        let state = p.state(&who, &domain)?;
        let zone = p.settings().zone.to_ascii();
        let findings = provisioner::checks::check_domain(
            &checks,
            &state.domain,
            state.dnssec_mx_value.as_deref(),
            &zone,
        );
        Ok((state, findings))
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "status": state, "findings": findings, "errorData": null}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportBody {
    /// The domains, one per line (the file of `mxdns domain import`).
    domains: String,
    tenant: Option<String>,
    #[serde(default = "yes")]
    dane: bool,
    batch: Option<usize>,
}

pub(super) fn yes() -> bool {
    true
}

/// The bulk path: DNSSEC and DANE for many domains, batch by batch (admin).
pub(super) async fn import(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<ImportBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Failure> {
    let who = caller(&app, &headers)?;
    let Json(b) = body.map_err(bad_body)?;
    let report = run(&app, true, move |prov| {
        let domains = provisioner::service::parse_import(&b.domains)?;
        let opts = provisioner::service::ImportOptions {
            tenant: b.tenant,
            dane: b.dane,
            batch: b
                .batch
                .unwrap_or(provisioner::service::ImportOptions::default().batch),
            ..Default::default()
        };
        prov.import(&who, &domains, &opts, &mut |_, _| {})
    })
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"result": "Success", "import": report, "errorData": null})),
    ))
}
