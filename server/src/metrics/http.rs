//! API requests by matched route (axum's `MatchedPath`: the template, never the raw path),
//! method and status, and a latency histogram per route. A mutex on the API path only.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Histogram bucket bounds (seconds).
pub(super) const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
pub(super) struct Histogram {
    /// Observations at or below each bound (not cumulative here; the exposition sums them).
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

#[derive(Default)]
pub(super) struct Requests {
    pub counts: BTreeMap<(String, &'static str, u16), u64>,
    pub latency: BTreeMap<String, Histogram>,
}

pub(super) static REQUESTS: Mutex<Requests> = Mutex::new(Requests {
    counts: BTreeMap::new(),
    latency: BTreeMap::new(),
});

fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

/// The middleware (`Router::layer`, so that the route is matched before it runs).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = method_label(req.method());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    observe(
        route,
        method,
        resp.status().as_u16(),
        t0.elapsed().as_secs_f64(),
    );
    resp
}

fn observe(route: String, method: &'static str, status: u16, secs: f64) {
    let mut r = REQUESTS.lock().unwrap_or_else(PoisonError::into_inner);
    let h = r.latency.entry(route.clone()).or_default();
    if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
        h.buckets[i] += 1;
    }
    h.count += 1;
    h.sum += secs;
    *r.counts.entry((route, method, status)).or_default() += 1;
}
