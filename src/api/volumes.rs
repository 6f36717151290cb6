//! Volume routes: the merged list (local volumes shown as `node/name`, SPEC §5.11) and inspect,
//! answered by the engine that holds the volume.
use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::filters::{label_matches, Filters};
use super::proxy::fetch_json;
use super::server::{AppState, RequestedVersion};
use super::system::json_response;
use crate::cluster::names::find_volume;

/// `GET /volumes?filters=`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    let dangling = match filters.values("dangling").first().map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={other}'"
            )))
        }
    };
    let maps = state.cluster.engines();
    let mut out: Vec<Value> = Vec::new();
    for engine in maps.validated.values() {
        let node = engine.name();
        let cache = engine.cache();
        let used: HashSet<&str> = cache
            .containers
            .values()
            .flat_map(|c| {
                c.summary
                    .get("Mounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter_map(|m| m.get("Name").and_then(Value::as_str))
            .collect();
        for (name, vol) in cache.volumes.iter() {
            let driver = vol.get("Driver").and_then(Value::as_str).unwrap_or("");
            let local = driver == "local";
            let ok = filters.match_any("name", |v| name.contains(v))
                && filters.match_any("driver", |v| v == driver)
                && filters.match_all("label", |l| {
                    label_matches(vol.get("Labels").and_then(Value::as_object), l)
                })
                && (!local || filters.match_any("node", |v| v == node))
                && dangling.is_none_or(|d| d != used.contains(name.as_str()));
            if !ok {
                continue;
            }
            let mut shown = (**vol).clone();
            if local {
                if let Some(obj) = shown.as_object_mut() {
                    obj.insert("Name".into(), Value::String(format!("{node}/{name}")));
                }
            }
            out.push(shown);
        }
    }
    let volumes = if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"Volumes": volumes, "Warnings": null}),
    ))
}

/// `GET /volumes/{name}`: a fresh inspect from the engine that holds the volume.
pub async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let found = find_volume(&state.cluster.engines(), &name)
        .ok_or_else(|| ApiError::not_found(format!("No such volume: {name}")))?;
    let version = req
        .extensions()
        .get::<RequestedVersion>()
        .copied()
        .unwrap_or(RequestedVersion(None));
    let vname = found
        .volume
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or(&name)
        .to_string();
    let body = fetch_json(&found.engine, version, &format!("/volumes/{vname}")).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// The volume routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/volumes", get(list))
        .route("/volumes/{*name}", get(inspect))
}
