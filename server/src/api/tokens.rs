//! Tokens: make (rotation: a new one beside the old), list, revoke. A tenant for itself; the
//! admin for any tenant, and admin tokens.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use provisioner::service::Actor;
use serde::Deserialize;
use serde_json::{json, Value};

use provisioner::service::ApiError;

use super::{run, App, Failure};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    /// The tenant the token is for (a tenant: itself, the default). The admin without it
    /// makes an admin token.
    tenant: Option<String>,
    label: Option<String>,
}

pub(super) async fn token_create(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let invalid = |details: String| {
        Failure::from(ApiError {
            status: 400,
            code: "InvalidRequest",
            details,
        })
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::from(ApiError {
                status: 413,
                code: "RequestTooLarge",
                details: "The request body is larger than this route takes.".into(),
            })
        } else {
            invalid("The request body could not be read.".into())
        }
    })?;
    // no body: a token for the caller itself (an admin: an admin token)
    let b: TokenBody = if body.iter().all(u8::is_ascii_whitespace) {
        TokenBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("The request body is not valid: {e}.")))?
    };
    let grant = run(&app, false, move |p| {
        p.create_token(&who, b.tenant.as_deref(), b.label.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!(grant))).into_response())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    /// The admin: one tenant's tokens, or `admin` for the admin tokens.
    tenant: Option<String>,
}

pub(super) async fn tokens_list(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, Failure> {
    let tokens = run(&app, false, move |p| {
        p.list_tokens(&who, q.tenant.as_deref())
    })
    .await?;
    Ok(Json(json!({"tokens": tokens})))
}

pub(super) async fn token_revoke(
    State(app): State<App>,
    Extension(who): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let row = run(&app, false, move |p| p.revoke_token(&who, &id)).await?;
    Ok(Json(
        json!({"result": "Success", "token": row, "errorData": null}),
    ))
}
