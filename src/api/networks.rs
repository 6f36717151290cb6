//! Network routes: the merged list (local-scope networks shown as `node/name`, SPEC §5.10) and
//! inspect, answered by the engine that owns the network.
use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use http::StatusCode;
use regex::Regex;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::filters::{label_matches, Filters};
use super::proxy::fetch_json;
use super::server::{AppState, RequestedVersion};
use super::system::json_response;
use crate::cluster::names::find_network;

const BUILTIN: [&str; 3] = ["bridge", "host", "none"];

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `GET /networks?filters=`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    for t in filters.values("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "Invalid filter: 'type'='{t}'"
            )));
        }
    }
    let name_res: Vec<Regex> = filters
        .values("name")
        .iter()
        .map(|n| {
            Regex::new(n)
                .map_err(|e| ApiError::bad_request(format!("invalid filter 'name={n}': {e}")))
        })
        .collect::<ApiResult<_>>()?;
    let maps = state.cluster.engines();
    let mut out: Vec<Value> = Vec::new();
    let mut shared: BTreeMap<String, Value> = BTreeMap::new();
    for engine in maps.validated.values() {
        let node = engine.name();
        if !filters.match_any("node", |v| v == node) {
            continue;
        }
        for net in engine.cache().networks.values() {
            let name = text(net, "Name");
            let id = text(net, "Id");
            let builtin = BUILTIN.contains(&name);
            let ok = filters.match_any("type", |t| (t == "builtin") == builtin)
                && filters.match_any("driver", |d| d == text(net, "Driver"))
                && filters.match_any("scope", |s| s == text(net, "Scope"))
                && filters.match_all("label", |l| {
                    label_matches(net.get("Labels").and_then(Value::as_object), l)
                })
                && (name_res.is_empty() || name_res.iter().any(|r| r.is_match(name)))
                && filters.match_any("id", |v| id.starts_with(v));
            if !ok {
                continue;
            }
            let mut shown = (**net).clone();
            if text(net, "Scope") == "local" || text(net, "Scope").is_empty() {
                if let Some(obj) = shown.as_object_mut() {
                    obj.insert("Name".into(), Value::String(format!("{node}/{name}")));
                }
                out.push(shown);
            } else {
                shared.entry(id.to_string()).or_insert(shown);
            }
        }
    }
    out.extend(shared.into_values());
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// `GET /networks/{id}`: a fresh inspect from the engine that owns the network.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let found = find_network(&state.cluster.engines(), &id)
        .ok_or_else(|| ApiError::not_found(format!("No such network: {id}")))?;
    let version = req
        .extensions()
        .get::<RequestedVersion>()
        .copied()
        .unwrap_or(RequestedVersion(None));
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let body = fetch_json(
        &found.engine,
        version,
        &format!("/networks/{}{query}", found.id()),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// The network routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/networks", get(list))
        .route("/networks/{*id}", get(inspect))
}
