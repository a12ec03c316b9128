//! `GET /healthz`, `GET /readyz` and `GET /metrics`: for orchestrators and scrapers, so they
//! take no token and say nothing about any account.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use super::Http;

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Liveness: the process serves HTTP. Nothing else is checked, so a slow store never gets a
/// live server restarted.
pub(super) async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 when the store answers and the server is not draining; 503 with the reason
/// otherwise.
pub(super) async fn readyz(State(h): State<Http>) -> Response {
    match h.health.ready().await {
        Ok(()) => json(StatusCode::OK, serde_json::json!({ "status": "ready" })),
        Err(not_ready) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": not_ready.reason() }),
        ),
    }
}

/// Every metric in the Prometheus text format.
pub(super) async fn metrics() -> Response {
    let mut response = Response::new(Body::from(crate::metrics::render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
