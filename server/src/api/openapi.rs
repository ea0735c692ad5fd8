//! The OpenAPI 3.1 description of the API.

use axum::Json;
use serde_json::{json, Value};

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 description of this API.
pub(super) fn openapi_document() -> Value {
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
            "/v1/health": {"get": {"summary": "Served zones, the zone manager, the follower, signature expiry, key steps, tasks", "security": [], "responses": {"200": {"description": "OK"}, "503": {"description": "Unhealthy: `problems` says why"}}}},
            "/v1/ready": {"get": {"summary": "Readiness for load balancers: zones built, DNS listening, healthy", "security": [], "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready: `problems` says why"}}}},
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
