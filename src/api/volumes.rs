//! Volume routes (SPEC §5.11): the merged list (local volumes shown as `node/name`), inspect on
//! the engine that holds the volume, create on every node, on one node (`node/name`) or on the
//! nodes a whitelist label allows, and removal everywhere the name is found.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use super::error::{json_response, json_text_response, no_such_route, ApiError, ApiResult};
use super::filters::{label_filter_matches, Filters};
use super::proxy::fetch_json;
use super::request::{json_body, node_constraint, read_json_object, take_node};
use super::state::{AppState, RequestedVersion};
use crate::cluster::cache::{start_array_entry, Record};
use crate::cluster::fanout::NodeFailures;
use crate::cluster::names::{find_volume, find_volumes};
use crate::cluster::transport::empty;
use crate::cluster::Engine;
use crate::scheduler::MetadataKind;
use crate::scheduler::SchedulingRequest;

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
    // Written straight from the cached text, local volumes renamed `node/name`.
    let mut out = String::from("[");
    for engine in maps.validated.values() {
        let node = engine.name();
        let cache = engine.cache();
        let used: HashSet<&str> = cache
            .containers
            .values()
            .flat_map(|c| c.mounts.iter())
            .filter_map(|m| m.name.as_deref())
            .collect();
        for (name, vol) in cache.volumes.iter() {
            let driver = vol.driver();
            let local = driver == "local";
            let ok = filters.match_any("name", |v| name.contains(v))
                && filters.match_any("driver", |v| v == driver)
                && filters.match_all("label", |l| {
                    label_filter_matches(|k| vol.labels().get(k), l)
                })
                && (!local || filters.match_any("node", |v| v == node))
                && dangling.is_none_or(|d| d != used.contains(name.as_str()));
            if !ok {
                continue;
            }
            start_array_entry(&mut out);
            if local {
                vol.write_renamed(&format!("{node}/{name}"), &mut out);
            } else {
                out.push_str(vol.json());
            }
        }
    }
    let volumes = if out.len() == 1 {
        "null".to_string()
    } else {
        out.push(']');
        out
    };
    let body = format!(r#"{{"Volumes":{volumes},"Warnings":null}}"#);
    Ok(json_text_response(StatusCode::OK, body.into_bytes()))
}

/// `GET /volumes/{name}`: a fresh inspect from the engine that holds the volume.
pub async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
    version: RequestedVersion,
) -> ApiResult<Response> {
    let found = find_volume(&state.cluster.engines(), &name)
        .ok_or_else(|| ApiError::not_found(format!("No such volume: {name}")))?;
    let vname = record_name(&found.volume, &name);
    let body = fetch_json(&found.engine, version, &format!("/volumes/{vname}")).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// The volume's name as its engine knows it (`asked` when the engine gave it none).
fn record_name(volume: &Record, asked: &str) -> String {
    match volume.name() {
        "" => asked,
        name => name,
    }
    .to_string()
}

/// A random 64-hex volume name, as an engine would give an anonymous volume.
fn random_name() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// `POST /volumes/create`: on the node a `node/name` names; on the nodes that pass the
/// scheduler with the `com.docker.swarm.whitelists` label when it is set; else on every
/// validated engine. 201 with the last node's answer.
pub async fn create(
    State(state): State<AppState>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let mut body = read_json_object(req, "volume create").await?;
    let (node, mut bare) = take_node(&mut body);
    if bare.is_empty() {
        bare = random_name();
        body.insert("Name".into(), Value::String(bare.clone()));
    }
    let labels: BTreeMap<String, String> = body
        .get("Labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let engines: Vec<Arc<Engine>> = if let Some(node) = node {
        let mut request = SchedulingRequest::default();
        request.add_constraint(node_constraint(&state, &node)?);
        let ranked = state
            .cluster
            .rank_engines(&request)
            .map_err(ApiError::from)?;
        ranked.into_iter().take(1).collect()
    } else if labels.contains_key(MetadataKind::Whitelist.label()) {
        state
            .cluster
            .rank_engines(&SchedulingRequest::from_labels(&labels))
            .map_err(ApiError::from)?
    } else {
        state.cluster.validated()
    };
    if engines.is_empty() {
        return Err(ApiError::internal("No nodes available in the cluster"));
    }
    let bare = bare.as_str();
    let calls = engines.iter().map(|e| {
        let (headers, payload) = json_body(&body);
        async move {
            let r = e
                .call_at(Method::POST, version, "/volumes/create", &headers, payload)
                .await;
            if r.is_ok() {
                let _ = e.refresh_volume(bare).await;
            }
            (e.clone(), r)
        }
    });
    let mut created: Vec<(String, serde_json::Value)> = Vec::new();
    let mut failures = NodeFailures::new();
    for (engine, result) in join_all(calls).await {
        match result {
            Ok((_, bytes)) => created.push((
                engine.name(),
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )),
            Err(e) => failures.push(engine.name(), e),
        }
    }
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, !created.is_empty()));
    }
    created.sort_by(|a, b| a.0.cmp(&b.0));
    let last = created.pop().map(|(_, v)| v).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::CREATED, &last))
}

/// `DELETE /volumes/{name}?force=`: on every engine where the name is found (`node/name` finds
/// one), at once; 204.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let found = find_volumes(&state.cluster.engines(), &name);
    if found.is_empty() {
        return Err(ApiError::not_found(format!("No such volume {name}")));
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let calls = found.iter().map(|v| {
        let vname = record_name(&v.volume, &name);
        let path = format!("/volumes/{vname}{query}");
        async move {
            let r = v
                .engine
                .call_at(Method::DELETE, version, &path, &HeaderMap::new(), empty())
                .await;
            let _ = v.engine.refresh_volume(&vname).await;
            (v.engine.name(), r)
        }
    });
    let mut failures = NodeFailures::new();
    let mut removed = 0;
    for (node, result) in join_all(calls).await {
        match result {
            Ok(_) => removed += 1,
            Err(e) => failures.push(node, e),
        }
    }
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, removed > 0));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The volume routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/{*name}", get(inspect).delete(remove))
        .method_not_allowed_fallback(no_such_route)
}
