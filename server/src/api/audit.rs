//! The audit trail (admin): `GET /v1/audit?after=SEQ&limit=N`, oldest first.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use provisioner::service::Actor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{run, App, Failure};

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

pub(super) async fn audit_page(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, Failure> {
    let page = run(&app, false, move |p| p.audit(&who, q.after, q.limit)).await?;
    Ok(Json(json!(page)))
}
