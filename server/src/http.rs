//! The HTTP API (axum). Thin: extract, call the use case, map the result to JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::zonemgr::ZoneManager;

pub fn router(mgr: Arc<ZoneManager>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .with_state(mgr)
}

async fn health(State(mgr): State<Arc<ZoneManager>>) -> Json<Value> {
    let catalog = mgr.catalog.load();
    let zones: Vec<Value> = catalog
        .zones
        .iter()
        .map(|z| json!({"zone": z.origin.to_ascii(), "serial": z.serial(), "names": z.nodes.len()}))
        .collect();
    Json(json!({"status": "ok", "zones": zones}))
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    mgr: Arc<ZoneManager>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = router(mgr);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
