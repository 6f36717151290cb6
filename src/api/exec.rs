//! Exec routes: create on the container's engine (remembering the exec ID so later calls can be
//! routed), then inspect, start (hijacked when the client upgrades, proxied when detached) and
//! resize on the engine that owns the exec.
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::proxy::{forward, hijack};
use super::request::{split_name_action, wants_upgrade};
use super::state::AppState;
use crate::cluster::names::ContainerRef;

/// `POST /containers/{name}/exec`.
pub async fn create(
    state: &AppState,
    c: &ContainerRef,
    req: Request,
    path: &str,
) -> ApiResult<Response> {
    let (parts, bytes) = super::limits::read_whole_body(req).await?;
    let config: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid exec configuration: {e}")))?;
    let has_cmd = config
        .get("Cmd")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_cmd {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let resp = forward(&c.engine, req, path).await?;
    if resp.status() != StatusCode::CREATED {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .to_bytes();
    if let Some(id) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("Id").and_then(Value::as_str).map(str::to_string))
    {
        c.engine.add_exec_id(&c.container.id, &id);
        state
            .cluster
            .remember_exec(&id, &c.engine.id(), &c.container.id);
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn owner(state: &AppState, id: &str) -> ApiResult<ContainerRef> {
    state
        .cluster
        .find_exec(id)
        .ok_or_else(|| ApiError::not_found(format!("Exec {id} not found")))
}

fn exec_path(id: &str, action: &str, req: &Request) -> String {
    match req.uri().query() {
        Some(q) => format!("/exec/{id}/{action}?{q}"),
        None => format!("/exec/{id}/{action}"),
    }
}

/// `GET /exec/{id}/json`.
pub async fn get_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    match split_name_action(&rest, &["json"]) {
        (id, Some(action)) => {
            let c = owner(&state, id)?;
            let path = exec_path(id, action, &req);
            forward(&c.engine, req, &path).await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// `POST /exec/{id}/start` and `/exec/{id}/resize`.
pub async fn post_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    match split_name_action(&rest, &["start", "resize"]) {
        (id, Some(action)) => {
            let c = owner(&state, id)?;
            let path = exec_path(id, action, &req);
            if action == "start" && wants_upgrade(&req) {
                hijack(&c.engine, req, &path).await
            } else {
                forward(&c.engine, req, &path).await
            }
        }
        _ => Err(ApiError::no_route()),
    }
}
