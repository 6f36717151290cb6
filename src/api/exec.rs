//! Exec routes: inspect, start (hijacked when the client upgrades, proxied when detached) and
//! resize on the engine that owns the exec. An exec is created through its container
//! (`POST /containers/{name}/exec`, in [`super::containers`]), which records its engine.
use axum::extract::{Path, Request, State};
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::proxy::{forward, hijack};
use super::request::{split_name_action, wants_upgrade};
use super::state::AppState;
use crate::cluster::names::ContainerRef;

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
                hijack(&state, &c.engine, req, &path).await
            } else {
                forward(&c.engine, req, &path).await
            }
        }
        _ => Err(ApiError::no_route()),
    }
}
