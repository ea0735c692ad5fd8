//! The HTTP API (axum). Thin: authenticate, extract, call the use case (in a blocking task:
//! it writes SQLite), let the zone manager serve what was committed, map the result to JSON.
//! Errors become HTTP statuses here and nowhere else.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use provisioner::service::{ApiError, Caller, Provisioner};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::lifecycle;
use crate::zonemgr::{Clock, ZoneManager};

/// Largest request body accepted (certificates in PEM are a few KiB each).
const BODY_LIMIT: usize = 256 * 1024;
/// Largest bulk import body (about a million domain names).
const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct App {
    pub mgr: Arc<ZoneManager>,
    pub prov: Arc<Provisioner>,
    pub checks: provisioner::checks::CheckSettings,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/health", get(health))
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
struct Failure {
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

fn bad_body(e: JsonRejection) -> Failure {
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

fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Failure> {
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
async fn run<T: Send + 'static>(
    app: &App,
    write: bool,
    f: impl FnOnce(&Provisioner) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let prov = app.prov.clone();
    let mgr = app.mgr.clone();
    tokio::task::spawn_blocking(move || {
        let out = f(&prov)?;
        if write {
            if let Err(e) = mgr.sync() {
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

async fn health(State(app): State<App>) -> Json<Value> {
    let catalog = app.mgr.catalog.load();
    let zones: Vec<Value> = catalog
        .zones
        .iter()
        .map(|z| json!({"zone": z.origin.to_ascii(), "serial": z.serial(), "names": z.len()}))
        .collect();
    Json(json!({"status": "ok", "zones": zones}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    name: String,
}

async fn create_tenant(
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
struct DomainBody {
    domain: String,
    #[serde(default)]
    verified: bool,
}

async fn add_domain(
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

async fn dnssec_enable(
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

async fn dnssec_disable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    run(&app, true, move |p| p.disable_dnssec(&who, &domain)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

async fn dane(
    app: App,
    domain: String,
    headers: HeaderMap,
    enable: bool,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    run(&app, true, move |p| p.set_dane(&who, &domain, enable)).await?;
    Ok(Json(json!({"result": "Success", "errorData": null})))
}

async fn dane_enable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    dane(app, domain, headers, true).await
}

async fn dane_disable(
    State(app): State<App>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    dane(app, domain, headers, false).await
}

async fn dnssec_status(
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PartitionBody {
    addresses: Vec<IpAddr>,
    host_ttl: Option<u32>,
}

async fn partition_get(
    State(app): State<App>,
    Path(partition): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    let (p, certs) = run(&app, false, move |prov| prov.partition(&who, &partition)).await?;
    Ok(Json(
        json!({"partition": p.name, "addresses": p.addresses, "hostTtl": p.host_ttl, "tlsa": certs}),
    ))
}

async fn partition_put(
    State(app): State<App>,
    Path(partition): Path<String>,
    headers: HeaderMap,
    body: Result<Json<PartitionBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
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
struct CertificatesBody {
    current: String,
    next: Option<String>,
    #[serde(default)]
    issuers: Vec<String>,
}

async fn certificates_put(
    State(app): State<App>,
    Path(partition): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CertificatesBody>, JsonRejection>,
) -> Result<Json<Value>, Failure> {
    let who = caller(&app, &headers)?;
    let Json(b) = body.map_err(bad_body)?;
    let tlsa = run(&app, true, move |p| {
        p.set_certificates(&who, &partition, &b.current, b.next.as_deref(), &b.issuers)
    })
    .await?;
    Ok(Json(
        json!({"result": "Success", "tlsa": tlsa, "errorData": null}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// The domains, one per line (the file of `mxdns domain import`).
    domains: String,
    tenant: Option<String>,
    #[serde(default = "yes")]
    dane: bool,
    batch: Option<usize>,
}

fn yes() -> bool {
    true
}

/// The bulk path: DNSSEC and DANE for many domains, batch by batch (admin).
async fn import(
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
        };
        prov.import(&who, &domains, &opts, &mut |_, _| {})
    })
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({"result": "Success", "import": report, "errorData": null})),
    ))
}

/// Runs a key lifecycle operation (admin only) as a use case (`run`): off the async threads,
/// then serves its result.
async fn key_op<T: Send + 'static>(
    app: &App,
    headers: &HeaderMap,
    f: impl FnOnce(
            &crate::config::Config,
            &mut provisioner::Store,
            u64,
        ) -> Result<T, lifecycle::LifecycleError>
        + Send
        + 'static,
) -> Result<T, Failure> {
    if caller(app, headers)? != Caller::Admin {
        return Err(ApiError::forbidden().into());
    }
    let mgr = app.mgr.clone();
    Ok(run(app, true, move |_| {
        let config = mgr.config();
        let mut store = provisioner::Store::open(&crate::zonemgr::db_path(&config.data_dir))
            .map_err(|e| lifecycle::LifecycleError::Other(e.into()))
            .map_err(key_error)?;
        let now = crate::zonemgr::SystemClock.now() as u64;
        f(config, &mut store, now).map_err(key_error)
    })
    .await?)
}

fn key_error(e: lifecycle::LifecycleError) -> ApiError {
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
        lifecycle::LifecycleError::Other(e) => ApiError {
            status: 500,
            code: "KeyOperationFailed",
            details: format!("The key operation failed and nothing was changed: {e}."),
        },
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn zone_param(z: &str) -> Result<hickory_proto::rr::Name, Failure> {
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

async fn keys_list(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    let zones = key_op(&app, &headers, |c, s, now| {
        lifecycle::status(c, s, None, now)
    })
    .await?;
    Ok(Json(json!({"zones": zones})))
}

async fn zone_keys(
    State(app): State<App>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let zone = zone_param(&zone)?;
    let zones = key_op(&app, &headers, move |c, s, now| {
        lifecycle::status(c, s, Some(&zone), now)
    })
    .await?;
    Ok(Json(json!(zones.first())))
}

async fn keys_check(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    let done = key_op(&app, &headers, |c, s, now| {
        lifecycle::check_all(c, s, now).map_err(lifecycle::LifecycleError::Other)
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollBody {
    role: String,
}

async fn keys_roll(
    State(app): State<App>,
    Path(zone): Path<String>,
    headers: HeaderMap,
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
    let done = key_op(&app, &headers, move |c, s, now| {
        lifecycle::roll_zone(c, s, &zone, now, Some(lifecycle::Request::Roll(role)))
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}

async fn keys_ds_seen(
    State(app): State<App>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let zone = zone_param(&zone)?;
    let done = key_op(&app, &headers, move |c, s, now| {
        lifecycle::roll_zone(c, s, &zone, now, Some(lifecycle::Request::DsSeen))
    })
    .await?;
    Ok(Json(json!({"result": "Success", "steps": done})))
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 description of this API.
pub fn openapi_document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let err_responses = |codes: &[(&str, &str)]| {
        let mut m = serde_json::Map::new();
        for (status, what) in codes {
            m.insert(
                status.to_string(),
                json!({"description": what, "content": {"application/json": {"schema": error}}}),
            );
        }
        Value::Object(m)
    };
    let domain_param = json!([{"name": "domain", "in": "path", "required": true, "schema": {"type": "string"}, "example": "contoso.com"}]);
    let merge = |ok: Value, errs: Value| {
        let mut m = errs.as_object().cloned().unwrap_or_default();
        m.insert("200".into(), ok);
        Value::Object(m)
    };
    let simple_ok = json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}});
    let common = [
        ("401", "Missing or bad token"),
        (
            "404",
            "DomainNotFound: not an accepted domain of this tenant",
        ),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {"title": "mxdns provisioner", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Inbound SMTP DANE with DNSSEC: Enable-DnssecForVerifiedDomain, Get-DnssecStatusForVerifiedDomain, Enable-SmtpDaneInbound and their Disable- twins."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/health": {"get": {"summary": "Served zones and serials", "security": [], "responses": {"200": {"description": "OK"}}}},
            "/v1/tenants": {"post": {"summary": "Create a tenant (admin)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
                "responses": {"201": {"description": "Created: tenantId and token (shown once)"}, "401": {"description": "Missing or bad token"}, "403": {"description": "Not the admin token"}}}},
            "/v1/tenants/{tenant}/domains": {"post": {"summary": "Add an accepted domain",
                "parameters": [{"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["domain"], "properties": {"domain": {"type": "string"}, "verified": {"type": "boolean"}}}}}},
                "responses": {"201": {"description": "Added"}, "400": {"description": "InvalidDomainName"}, "404": {"description": "TenantNotFound"}, "409": {"description": "DomainAlreadyAccepted"}}}},
            "/v1/domains/{domain}/dnssec/enable": {"post": {"summary": "Enable-DnssecForVerifiedDomain", "parameters": domain_param,
                "responses": merge(json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DnssecResult"}}}}),
                    err_responses(&[common[0], common[1], ("400", "DomainNotSupported or InvalidDomainName"), ("409", "DnssecOperationFailed: nothing was changed; retry")]))}},
            "/v1/domains/{domain}/dnssec/disable": {"post": {"summary": "Disable-DnssecForVerifiedDomain", "parameters": domain_param,
                "responses": merge(simple_ok.clone(), err_responses(&[common[0], common[1], ("400", "DomainNotSupported"), ("409", "DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/smtp-dane/enable": {"post": {"summary": "Enable-SmtpDaneInbound", "parameters": domain_param,
                "responses": merge(simple_ok.clone(), err_responses(&[common[0], common[1], ("400", "DomainNotSupported"), ("409", "PartitionNotFound (DNSSEC not enabled) or DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/smtp-dane/disable": {"post": {"summary": "Disable-SmtpDaneInbound", "parameters": domain_param,
                "responses": merge(simple_ok, err_responses(&[common[0], common[1], ("409", "PartitionNotFound or DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/dnssec": {"get": {"summary": "Get-DnssecStatusForVerifiedDomain", "parameters": domain_param,
                "responses": merge(json!({"description": "State, expected MX value, published TLSA records"}), err_responses(&[("401", "Missing or bad token"), ("404", "EG001")]))}},
            "/v1/partitions/{partition}": {
                "get": {"summary": "Partition addresses and TLSA records (admin)", "responses": {"200": {"description": "OK"}, "404": {"description": "PartitionNotFound"}}},
                "put": {"summary": "Set inbound addresses (admin); rewrites every host of the partition",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["addresses"], "properties": {"addresses": {"type": "array", "items": {"type": "string"}}, "hostTtl": {"type": "integer"}}}}}},
                    "responses": {"200": {"description": "OK"}, "400": {"description": "InvalidAddresses"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/certificates": {"put": {"summary": "Set the fleet certificates (admin); rewrites the TLSA of every DANE host",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["current"], "properties": {"current": {"type": "string", "description": "PEM"}, "next": {"type": "string"}, "issuers": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"200": {"description": "The TLSA records now published"}, "400": {"description": "InvalidCertificate: expired, malformed or not a certificate; nothing changed"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/import": {"post": {"summary": "Bulk Enable-DnssecForVerifiedDomain + Enable-SmtpDaneInbound (admin), batch by batch; run again to resume",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["domains"], "properties": {"domains": {"type": "string", "description": "one domain per line"}, "tenant": {"type": "string", "description": "add domains not yet accepted to this tenant"}, "dane": {"type": "boolean", "default": true}, "batch": {"type": "integer", "default": 10000}}}}}},
                "responses": {"200": {"description": "total, enabled, already (skipped), batches"}, "400": {"description": "InvalidDomainName: nothing imported"}, "403": {"description": "Not the admin token"}, "404": {"description": "TenantNotFound"}, "409": {"description": "ImportFailed: the named batch was rolled back, earlier batches are done"}}}},
            "/v1/keys": {"get": {"summary": "Keys of every zone (admin): states, what each does now, the next step, a KSK waiting for the parent",
                "responses": {"200": {"description": "OK"}, "401": {"description": "Missing or bad token"}, "403": {"description": "Not the admin token"}}}},
            "/v1/keys/check": {"post": {"summary": "Carry out every due rollover step (admin; as `mxdns keys roll --check`)",
                "responses": {"200": {"description": "The steps carried out"}, "401": {"description": "Missing or bad token"}, "403": {"description": "Not the admin token"}, "500": {"description": "KeyOperationFailed"}}}},
            "/v1/zones/{zone}/keys": {"get": {"summary": "Keys of one zone (admin)",
                "parameters": [{"name": "zone", "in": "path", "required": true, "schema": {"type": "string"}, "example": "o-v1.mx.example."}],
                "responses": {"200": {"description": "OK"}, "400": {"description": "InvalidZoneName"}, "404": {"description": "ZoneNotFound"}}}},
            "/v1/zones/{zone}/keys/roll": {"post": {"summary": "Start an unscheduled rollover now (admin; as `mxdns keys roll --zone Z --zsk|--ksk --now`)",
                "parameters": [{"name": "zone", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["role"], "properties": {"role": {"enum": ["zsk", "ksk"]}}}}}},
                "responses": {"200": {"description": "The steps carried out"}, "400": {"description": "InvalidRequest or InvalidZoneName"}, "404": {"description": "ZoneNotFound"}, "409": {"description": "KeyOperationRefused: a rollover of that role is under way"}}}},
            "/v1/zones/{zone}/keys/ds-seen": {"post": {"summary": "The parent serves the DS of the zone's incoming KSK (admin; as `mxdns keys ds-seen`)",
                "parameters": [{"name": "zone", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The steps carried out"}, "404": {"description": "ZoneNotFound"}, "409": {"description": "KeyOperationRefused: no KSK waits for its DS"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ErrorData": {"type": "object", "properties": {"errorCode": {"type": "string"}, "errorDetails": {"type": "string"}}},
                "Error": {"type": "object", "properties": {"result": {"const": "Error"}, "errorData": {"$ref": "#/components/schemas/ErrorData"}}},
                "Result": {"type": "object", "properties": {"result": {"const": "Success"}, "errorData": {"type": "null"}}},
                "DnssecResult": {"type": "object", "properties": {"result": {"const": "Success"}, "dnssecMxValue": {"type": "string", "example": "contoso-com.o-v1.mx.example"}, "errorData": {"type": "null"}}}
            }
        }
    })
}
