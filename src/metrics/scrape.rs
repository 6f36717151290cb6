//! The `/metrics` endpoint: `GET /metrics` answers the Prometheus text; every other path is a
//! `404` and every other method a `405`, both in Docker's JSON error form. The limits a scraper
//! is held to are the constants below; the manager serves this router through the same bounded
//! accept loop as the API (header timeout, connection cap, write-stall timeout), on its own
//! listener and with its own connection cap, so that scrapes never take API connections.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::ClusterFigures;

/// How long a scraper may take to send a request's headers (also how long a kept-alive
/// connection may sit idle). Longer than any sensible scrape interval would need is not
/// needed: Prometheus reconnects when its connection was closed.
pub const REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Scraper connections open at once; more are closed when accepted. A handful of Prometheus
/// servers (HA pairs, a federation) is the expected load.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a scraper may leave an answer unread before its connection is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads what the cluster holds at scrape time.
pub type ScrapeSource = Arc<dyn Fn() -> ClusterFigures + Send + Sync>;

/// The `/metrics` router over `source`.
pub fn router(source: ScrapeSource) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(source)
}

async fn metrics(State(source): State<ScrapeSource>) -> Response {
    let text = super::render(&source());
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "page not found")
}

async fn method_not_allowed() -> Response {
    let mut resp = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    resp
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}
