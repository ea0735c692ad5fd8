//! Tenants, accepted domains and their proof in DNS, the cmdlets
//! (Enable-/Disable-DnssecForVerifiedDomain, Get-DnssecStatusForVerifiedDomain,
//! Enable-/Disable-SmtpDaneInbound), removal, and the bulk import.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use provisioner::service::Actor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_body, run, App, Failure};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantBody {
    name: String,
}

/// New tenant (admin): its id and its first token (shown once).
pub(super) async fn create_tenant(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    body: Result<Json<TenantBody>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(body) = body.map_err(bad_body)?;
    let grant = run(&app, false, move |p| p.create_tenant(&who, &body.name)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenantId": grant.tenant_id, "token": grant.token, "tokenId": grant.token_id})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainBody {
    domain: String,
    /// Admin only: the domain is verified without DNS proof (migrations).
    #[serde(default)]
    verified: bool,
}

/// Adds an accepted domain: a claim with its verification value, or (admin) verified.
pub(super) async fn add_domain(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(tenant): Path<String>,
    body: Result<Json<DomainBody>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(body) = body.map_err(bad_body)?;
    let (state, created) = run(&app, false, move |p| {
        p.add_domain(&who, &tenant, &body.domain, body.verified)
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(state))).into_response())
}

#[derive(Deserialize)]
pub(super) struct VerifyQuery {
    /// Admin: whose claim (when several tenants' values are published).
    tenant: Option<String>,
}

/// Looks the domain's TXT records up and marks it verified when the claim's value is there.
pub(super) async fn verify_domain(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Value>, Failure> {
    let checks = app.checks.clone();
    let state = run(&app, false, move |p| {
        p.verify_domain(&who, &domain, q.tenant.as_deref(), &|name| {
            provisioner::checks::lookup_txt(&checks, name)
        })
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "status": state, "errorData": null}),
    ))
}

/// Removes an accepted domain (DANE and DNSSEC disabled first, in the same transaction).
pub(super) async fn remove_domain(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    run(&app, true, move |p| p.remove_domain(&who, &domain)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

pub(super) async fn dnssec_enable(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    let mx = |err| Failure { err, with_mx: true };
    let value = run(&app, true, move |p| p.enable_dnssec(&who, &domain))
        .await
        .map_err(mx)?;
    Ok(Json(
        json!({"result": "Success", "dnssecMxValue": value, "errorData": null}),
    ))
}

pub(super) async fn dnssec_disable(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    run(&app, true, move |p| p.disable_dnssec(&who, &domain)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

async fn dane(app: App, who: Actor, domain: String, enable: bool) -> Result<Json<Value>, Failure> {
    run(&app, true, move |p| p.set_dane(&who, &domain, enable)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

pub(super) async fn dane_enable(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    dane(app, who, domain, true).await
}

pub(super) async fn dane_disable(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    dane(app, who, domain, false).await
}

pub(super) async fn dnssec_status(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
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

/// The bulk path: DNSSEC and DANE for many domains, batch by batch (admin; the body is read
/// only after the admin token was checked).
pub(super) async fn import(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    body: Result<Json<ImportBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Failure> {
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
        let _running = crate::metrics::import::start(domains.len());
        prov.import(&who, &domains, &opts, &mut crate::metrics::import::progress)
    })
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"result": "Success", "import": report, "errorData": null})),
    ))
}

/// The DANE validation test of a domain (`provisioner::dane`): a tenant's own domain, the
/// admin's any. Connects only to addresses the outbound policy allows; runs on the blocking
/// pool (DNS and SMTP with timeouts), never on a DNS thread.
pub(super) async fn dane_check(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, Failure> {
    let settings = app.mgr.config().dane_settings(true);
    let report = run(&app, false, move |p| {
        let state = p.state(&who, &domain)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        provisioner::dane::check(&settings, &state.domain, None, now)
            .map_err(|e| provisioner::service::ApiError::new(400, "InvalidDomain", e))
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "daneCheck": report, "errorData": null}),
    ))
}
