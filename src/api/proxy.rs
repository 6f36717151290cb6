//! Forwarding one request to one engine: method, path (with the engine's API version), query,
//! headers and body go up; status, headers and body come back, streamed as they arrive and never
//! buffered whole. Every forward feeds the engine's health record.
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderName, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::server::RequestedVersion;
use crate::cluster::engine::error_message;
use crate::cluster::transport::{boxed, empty};
use crate::cluster::{Engine, EngineError};

/// Headers that belong to one connection and are not forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::HOST,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
];

/// The URI of `path_and_query` on `engine`, at the version this request may use there.
pub fn engine_uri(engine: &Engine, version: RequestedVersion, path_and_query: &str) -> String {
    let v = version.for_engine(
        engine
            .specs()
            .map(|s| s.api_version)
            .unwrap_or(engine.api_version()),
    );
    format!("{}/v{v}{path_and_query}", engine.base_uri())
}

/// Forwards `req` to `engine` at `path_and_query` and streams the answer back.
pub async fn forward(engine: &Engine, req: Request, path_and_query: &str) -> ApiResult<Response> {
    let version = req
        .extensions()
        .get::<RequestedVersion>()
        .copied()
        .unwrap_or(RequestedVersion(None));
    let (parts, body) = req.into_parts();
    let mut builder = http::Request::builder()
        .method(parts.method)
        .uri(engine_uri(engine, version, path_and_query));
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(name) {
            builder = builder.header(name, value);
        }
    }
    let upstream = builder
        .body(boxed(body))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = engine.send(upstream).await.map_err(ApiError::from)?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(name) && name != "api-version" && name != header::SERVER {
            out.headers_mut().append(name, value.clone());
        }
    }
    Ok(out)
}

/// `GET`s a JSON document from `engine`; an engine error status comes back as that status.
pub async fn fetch_json(
    engine: &Engine,
    version: RequestedVersion,
    path_and_query: &str,
) -> ApiResult<Value> {
    let req = http::Request::builder()
        .uri(engine_uri(engine, version, path_and_query))
        .body(empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = engine.send(req).await.map_err(ApiError::from)?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(EngineError::Status {
            status,
            message: error_message(&body),
        }
        .into());
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("invalid response from engine {}: {e}", engine.addr),
        )
    })
}
