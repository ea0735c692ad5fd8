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
            "DomainNotFound: not a verified domain of this tenant (another tenant's domain answers the same as a name that does not exist)",
        ),
    ];
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "mxdns provisioner", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Inbound SMTP DANE with DNSSEC: Enable-DnssecForVerifiedDomain, Get-DnssecStatusForVerifiedDomain, Enable-SmtpDaneInbound and their Disable- twins."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/health": {"get": {"summary": "Served zones, the zone manager, the follower, signature expiry, key steps, tasks", "security": [], "responses": {"200": {"description": "OK"}, "503": {"description": "Unhealthy: `problems` says why"}}}},
            "/v1/ready": {"get": {"summary": "Readiness for load balancers: zones built, DNS listening, healthy", "security": [], "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready: `problems` says why"}}}},
            "/v1/tenants": {"post": {"summary": "Create a tenant (admin)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
                "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenGrant"}}}}, "401": {"description": "Missing or bad token"}, "403": {"description": "Not the admin token"}}}},
            "/v1/tenants/{tenant}/domains": {"post": {"summary": "Add an accepted domain: a claim to prove by DNS (its TXT value is in `verification`), or with `verified` (admin only, migrations) verified at once. Claims never block other tenants.",
                "parameters": [{"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["domain"], "properties": {"domain": {"type": "string"}, "verified": {"type": "boolean", "description": "admin only"}}}}}},
                "responses": {"201": {"description": "Added", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DomainState"}}}}, "200": {"description": "Already there (the same claim and value, or the tenant's verified domain)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DomainState"}}}},
                    "400": {"description": "InvalidDomainName"}, "403": {"description": "VerificationRequired: a tenant asked for verified"}, "404": {"description": "TenantNotFound (also any other tenant's id)"}, "409": {"description": "DomainAlreadyAccepted (admin: verified by another tenant)"}}}},
            "/v1/domains/{domain}/verify": {"post": {"summary": "Look up the TXT records at the domain (through status_resolver) and mark it verified for the tenant whose claim's value is published. A domain verified by another tenant is never moved.",
                "parameters": [domain_param[0], {"name": "tenant", "in": "query", "required": false, "schema": {"type": "string"}, "description": "admin: whose claim, when several are published"}],
                "responses": merge(json!({"description": "Verified", "content": {"application/json": {"schema": {"type": "object", "properties": {"result": {"const": "Success"}, "status": {"$ref": "#/components/schemas/DomainState"}}}}}}),
                    err_responses(&[common[0], ("403", "Forbidden: a tenant gave another tenant"), ("404", "DomainNotFound: no claim of this tenant"), ("409", "DomainVerificationFailed: the value is not published (or, admin, several are); DomainVerifiedElsewhere: proved, but another tenant verified it first; it does not move"), ("503", "DnsLookupFailed: the resolver did not answer")]))}},
            "/v1/domains/{domain}": {"delete": {"summary": "Remove an accepted domain: DANE and DNSSEC disabled and its host out of the zone in the same transaction. A tenant removes its domain or its claim; the admin the domain and every claim.",
                "parameters": domain_param,
                "responses": merge(simple_ok.clone(), err_responses(&[common[0], common[1], ("409", "DnssecOperationFailed: nothing was changed; retry")]))}},
            "/v1/tokens": {
                "get": {"summary": "List tokens (ids, owners, labels, when made and revoked; never the tokens). A tenant its own; the admin all, one tenant's (?tenant=ID) or the admin tokens (?tenant=admin)",
                    "parameters": [{"name": "tenant", "in": "query", "required": false, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "tokens", "content": {"application/json": {"schema": {"type": "object", "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}}}}}, "401": {"description": "Missing or bad token"}, "404": {"description": "TenantNotFound"}}},
                "post": {"summary": "Make a token (rotation: make the new one, switch, revoke the old). A tenant for itself; the admin for a tenant, or without `tenant` an admin token",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"tenant": {"type": "string"}, "label": {"type": "string"}}}}}},
                    "responses": {"201": {"description": "The token, shown once", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenGrant"}}}}, "400": {"description": "InvalidRequest"}, "401": {"description": "Missing or bad token"}, "404": {"description": "TenantNotFound (also: a tenant naming another)"}}}},
            "/v1/tokens/{id}": {"delete": {"summary": "Revoke a token: refused (401) from the next request on, in every process. A tenant its own tokens; the admin any (the bootstrap admin token too)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "example": "tk3f9a0c1d2e4b5a6f"}],
                "responses": {"200": {"description": "The revoked token"}, "401": {"description": "Missing or bad token"}, "404": {"description": "TokenNotFound (also another tenant's token)"}}}},
            "/v1/audit": {"get": {"summary": "The audit trail (admin): every change, oldest first",
                "parameters": [{"name": "after", "in": "query", "required": false, "schema": {"type": "integer", "default": 0}}, {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "default": 100, "maximum": 1000}}],
                "responses": {"200": {"description": "entries and next (the `after` of the next page; null at the end)", "content": {"application/json": {"schema": {"type": "object", "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}, "next": {"type": ["integer", "null"]}}}}}}, "401": {"description": "Missing or bad token"}, "403": {"description": "Not the admin token"}}}},
            "/v1/domains/{domain}/dnssec/enable": {"post": {"summary": "Enable-DnssecForVerifiedDomain", "parameters": domain_param,
                "responses": merge(json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DnssecResult"}}}}),
                    err_responses(&[common[0], common[1], ("400", "DomainNotSupported or InvalidDomainName"), ("409", "DnssecOperationFailed: nothing was changed; retry")]))}},
            "/v1/domains/{domain}/dnssec/disable": {"post": {"summary": "Disable-DnssecForVerifiedDomain", "parameters": domain_param,
                "responses": merge(simple_ok.clone(), err_responses(&[common[0], common[1], ("400", "DomainNotSupported"), ("409", "DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/smtp-dane/enable": {"post": {"summary": "Enable-SmtpDaneInbound", "parameters": domain_param,
                "responses": merge(simple_ok.clone(), err_responses(&[common[0], common[1], ("400", "DomainNotSupported"), ("409", "PartitionNotFound (DNSSEC not enabled) or DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/smtp-dane/disable": {"post": {"summary": "Disable-SmtpDaneInbound", "parameters": domain_param,
                "responses": merge(simple_ok, err_responses(&[common[0], common[1], ("409", "PartitionNotFound or DnssecOperationFailed")]))}},
            "/v1/domains/{domain}/dnssec": {"get": {"summary": "Get-DnssecStatusForVerifiedDomain (also a claim's verification value)", "parameters": domain_param,
                "responses": merge(json!({"description": "State, expected MX value, published TLSA records, findings", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"$ref": "#/components/schemas/DomainState"}, "findings": {"type": "array"}}}}}}), err_responses(&[("401", "Missing or bad token"), ("404", "EG001: neither a domain nor a claim of this tenant")]))}},
            "/v1/domains/{domain}/dane-check": {"get": {"summary": "The DANE validation test (RFC 7672 sender's view through status_resolver): MX, A/AAAA, TLSA with DNSSEC status, SMTP STARTTLS to every allowed address, the chain against TLSA; per host and address the sender's code (4.7.321 starttls-not-supported, 4.7.322 certificate-expired, 4.7.323 tlsa-invalid, 4.7.324 dnssec-invalid, 4.4.312 DNS query failed) or success, with evidence and action. A tenant's own domain; the admin's any.", "parameters": domain_param,
                "responses": merge(json!({"description": "The report", "content": {"application/json": {"schema": {"type": "object", "properties": {"daneCheck": {"type": "object", "required": ["domain", "pass", "verdict", "hosts"], "properties": {"domain": {"type": "string"}, "pass": {"type": "boolean"}, "verdict": {"type": "string", "enum": ["success", "starttls-not-supported", "certificate-expired", "tlsa-invalid", "dnssec-invalid", "DNS query failed", "not-dane", "unreachable"]}, "code": {"type": ["string", "null"]}, "summary": {"type": "string"}, "mx": {"type": "object"}, "evidence": {"type": "array", "items": {"type": "string"}}, "action": {"type": "string"}, "hosts": {"type": "array", "items": {"type": "object", "properties": {"host": {"type": "string"}, "preference": {"type": "integer"}, "verdict": {"type": "string"}, "code": {"type": ["string", "null"]}, "a": {"type": "object"}, "aaaa": {"type": "object"}, "tlsa": {"type": "object"}, "evidence": {"type": "array"}, "addresses": {"type": "array", "items": {"type": "object", "properties": {"address": {"type": "string"}, "verdict": {"type": "string"}, "code": {"type": ["string", "null"]}, "evidence": {"type": "array"}, "action": {"type": "string"}, "smtp": {"type": "object"}, "certificates": {"type": "object"}}}}}}}}}}}}}}), err_responses(&[("401", "Missing or bad token"), ("404", "EG001: not a domain of this tenant")]))}},
            "/v1/partitions/{partition}": {
                "get": {"summary": "Partition addresses and TLSA records (admin)", "responses": {"200": {"description": "OK"}, "404": {"description": "PartitionNotFound"}}},
                "put": {"summary": "Set inbound addresses (admin); rewrites every host of the partition",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["addresses"], "properties": {"addresses": {"type": "array", "items": {"type": "string"}}, "hostTtl": {"type": "integer"}}}}}},
                    "responses": {"200": {"description": "OK"}, "400": {"description": "InvalidAddresses"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/certificates": {"put": {"summary": "Set the fleet certificates (admin); rewrites the TLSA of every DANE host",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["current"], "properties": {"current": {"type": "string", "description": "PEM"}, "next": {"type": "string"}, "issuers": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"200": {"description": "The TLSA records now published"}, "400": {"description": "InvalidCertificate: expired, malformed or not a certificate; nothing changed"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/lifecycle": {"get": {"summary": "The certificate lifecycle (admin): state (current, staged, promoted), each certificate with its TLSA record, publishedAt and daysToExpiry, promotableAt, expiry warnings, and the last probe of each [dane.endpoints] endpoint (certificate presented, matchesTlsa, daysToExpiry)",
                "responses": {"200": {"description": "lifecycle and endpoints"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/certificates/next": {"post": {"summary": "Stage the next certificate (admin): its TLSA 3 1 1 is published beside the current one",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["certificate"], "properties": {"certificate": {"type": "string", "description": "PEM"}}}}}},
                "responses": {"200": {"description": "The lifecycle after the step"}, "400": {"description": "InvalidCertificate, SameCertificateKey"}, "409": {"description": "NoCurrentCertificate, PreviousNotRetired"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/certificates/promote": {"post": {"summary": "Promote the next certificate to current (admin), once its TLSA has been published for TLSA TTL + [dane] propagation_delay; the current one stays published as previous",
                "parameters": [{"name": "force", "in": "query", "schema": {"type": "boolean", "default": false}}],
                "responses": {"200": {"description": "The lifecycle after the step"}, "409": {"description": "PromotionTooEarly (the details say from when), NoNextCertificate"}, "404": {"description": "PartitionNotFound"}}}},
            "/v1/partitions/{partition}/certificates/retire": {"post": {"summary": "Retire the previous certificate (admin): its TLSA record is removed, once no [dane.endpoints] endpoint presents it",
                "parameters": [{"name": "force", "in": "query", "schema": {"type": "boolean", "default": false}}],
                "responses": {"200": {"description": "The lifecycle after the step"}, "409": {"description": "CertificateStillPresented (names the endpoints), NoPreviousCertificate"}, "404": {"description": "PartitionNotFound"}}}},
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
            "/v1/zones/{zone}/export": {"get": {"summary": "The signed zone as served, in RFC 1035 presentation format (admin; `mxdns zone export`)",
                "parameters": [{"name": "zone", "in": "path", "required": true, "schema": {"type": "string"}, "example": "o-v1.mx.example."}],
                "responses": {"200": {"description": "The zone file", "content": {"text/dns": {}}}, "404": {"description": "ZoneNotFound"}}}},
            "/v1/domains": {"get": {"summary": "Owned domains by name: a tenant its own, the admin all (`caller` says which); `search` (a part of the name), paging with `after` = the last `next`",
                "parameters": [{"name": "search", "in": "query", "schema": {"type": "string"}}, {"name": "after", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
                "responses": {"200": {"description": "{caller, domains: [{domain, tenantId (admin), partition, dnssecEnabled, smtpDaneEnabled, state: dane|dnssec|verified}], next}"}, "400": {"description": "InvalidRequest"}}}},
            "/metrics": {"get": {"summary": "Prometheus text exposition (admin token; or `[metrics] listen` without a token)",
                "responses": {"200": {"description": "text/plain; version=0.0.4", "content": {"text/plain": {}}}}}},
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
                "DnssecResult": {"type": "object", "properties": {"result": {"const": "Success"}, "dnssecMxValue": {"type": "string", "example": "contoso-com.o-v1.mx.example"}, "errorData": {"type": "null"}}},
                "DomainState": {"type": "object", "properties": {"domain": {"type": "string"}, "tenantId": {"type": "string", "description": "admin view only"}, "verified": {"type": "boolean"}, "dnssecEnabled": {"type": "boolean"}, "smtpDaneEnabled": {"type": "boolean"}, "dnssecMxValue": {"type": ["string", "null"]}, "partition": {"type": ["string", "null"]}, "tlsaRecords": {"type": "array", "items": {"type": "string"}},
                    "verification": {"type": ["object", "null"], "description": "publish this record at the domain, then POST .../verify; null once verified", "properties": {"name": {"type": "string"}, "type": {"const": "TXT"}, "value": {"type": "string", "example": "mxdns-verify=3f9a0c1d2e4b5a6f3f9a0c1d2e4b5a6f"}}},
                    "claims": {"type": "array", "description": "admin view of a domain nobody verified", "items": {"type": "object", "properties": {"tenantId": {"type": "string"}, "value": {"type": "string"}, "addedAt": {"type": "integer"}}}}}},
                "TokenGrant": {"type": "object", "properties": {"tokenId": {"type": "string"}, "token": {"type": "string", "description": "shown once; send as Authorization: Bearer"}, "tenantId": {"type": ["string", "null"]}}},
                "Token": {"type": "object", "properties": {"id": {"type": "string"}, "tenantId": {"type": ["string", "null"]}, "label": {"type": "string"}, "createdAt": {"type": "integer"}, "revokedAt": {"type": ["integer", "null"]}}},
                "AuditEntry": {"type": "object", "properties": {"seq": {"type": "integer"}, "at": {"type": "integer"}, "actor": {"enum": ["admin", "tenant", "cli", "system"]}, "tenantId": {"type": ["string", "null"]}, "tokenId": {"type": ["string", "null"]}, "action": {"type": "string"}, "target": {"type": "string"}, "detail": {"type": "object"}}}
            }
        }
    });
    // what the listener and the authentication layer may answer on any route with a token
    let limits = [
        ("408", "RequestTimeout: the request did not complete within api.request_timeout"),
        ("413", "RequestTooLarge: the body is over the route's limit"),
        ("429", "TooManyRequests: the tenant's rate, or failed authentications from this address; see Retry-After"),
        ("503", "ServiceUnavailable: tokens cannot be checked right now; see Retry-After"),
    ];
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if path == "/v1/health" || path == "/v1/openapi.json" {
                continue;
            }
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(r) = op["responses"].as_object_mut() {
                    for (code, what) in limits {
                        r.entry(code).or_insert_with(|| json!({"description": what, "content": {"application/json": {"schema": error}}}));
                    }
                }
            }
        }
    }
    doc
}
