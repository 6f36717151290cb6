//! Network routes (SPEC §5.10): the merged list (local-scope networks shown as `node/name`),
//! inspect on the engine that owns the network, create on a named node or on the node the
//! scheduler picks, connect and disconnect on the container's engine, and removal.
//!
//! Networks here are local to one engine unless a driver says otherwise: a network created
//! without a driver gets the engines' default, `bridge`, since the classic default `overlay`
//! needs a multi-host setup (swarm mode or a key/value store) that plain engines lack.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use regex::Regex;
use serde_json::{Map, Value};

use super::error::{json_response, json_text_response, no_such_route, ApiError, ApiResult};
use super::filters::{label_filter_matches, Filters};
use super::proxy::fetch_json;
use super::request::{json_body, node_constraint, read_json_object, split_name_action, take_node};
use super::state::{AppState, RequestedVersion};
use super::version::ApiVersion;
use crate::cluster::cache::{start_array_entry, Record};
use crate::cluster::names::{find_container, find_network, NetworkRef};
use crate::cluster::{Engine, EngineError};
use crate::scheduler::expr::user_regex;
use crate::scheduler::SchedulingRequest;

const BUILTIN: [&str; 3] = ["bridge", "host", "none"];

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
            user_regex(n)
                .map_err(|e| ApiError::bad_request(format!("invalid filter 'name={n}': {e}")))
        })
        .collect::<ApiResult<_>>()?;
    let maps = state.cluster.engines();
    // Written straight from the cached text: local networks renamed `node/name` as they come,
    // multi-host ones once each, by ID, after them.
    let mut out = String::from("[");
    let mut shared: BTreeMap<String, Arc<Record>> = BTreeMap::new();
    for engine in maps.validated.values() {
        let node = engine.name();
        if !filters.match_any("node", |v| v == node) {
            continue;
        }
        for net in engine.cache().networks.values() {
            let name = net.name();
            let id = net.id();
            let builtin = BUILTIN.contains(&name);
            let ok = filters.match_any("type", |t| (t == "builtin") == builtin)
                && filters.match_any("driver", |d| d == net.driver())
                && filters.match_any("scope", |s| s == net.scope())
                && filters.match_all("label", |l| {
                    label_filter_matches(|k| net.labels().get(k), l)
                })
                && (name_res.is_empty() || name_res.iter().any(|r| r.is_match(name)))
                && filters.match_any("id", |v| id.starts_with(v));
            if !ok {
                continue;
            }
            if net.is_local_network() {
                start_array_entry(&mut out);
                net.write_renamed(&format!("{node}/{name}"), &mut out);
            } else {
                shared.entry(id.to_string()).or_insert_with(|| net.clone());
            }
        }
    }
    for net in shared.values() {
        start_array_entry(&mut out);
        out.push_str(net.json());
    }
    out.push(']');
    Ok(json_text_response(StatusCode::OK, out.into_bytes()))
}

/// `GET /networks/{id}`: a fresh inspect from the engine that owns the network.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    version: RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let found = find_network(&state.cluster.engines(), &id)
        .ok_or_else(|| ApiError::not_found(format!("No such network: {id}")))?;
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

/// The driver a network gets when the request names none (see the module docs).
pub const DEFAULT_DRIVER: &str = "bridge";

/// `POST /networks/create`: on the node a `node/name` names, else on the node the scheduler
/// picks (every filter applies, containerslots included). 201 with the engine's answer.
pub async fn create(
    State(state): State<AppState>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let mut body = read_json_object(req, "network create").await?;
    let (node, bare) = take_node(&mut body);
    if body
        .get("Driver")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        body.insert("Driver".into(), Value::String(DEFAULT_DRIVER.into()));
    }
    let mut request = SchedulingRequest::default();
    match &node {
        Some(node) => request.add_constraint(node_constraint(&state, node)?),
        None => {
            // One daemon refuses a second network of the same name, and the cluster answers as
            // one daemon would; `node/name` still makes a same-named network on another node.
            let maps = state.cluster.engines();
            let taken = maps.validated.values().any(|e| {
                e.cache()
                    .networks
                    .values()
                    .any(|n| !bare.is_empty() && n.name() == bare)
            });
            if taken {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("network with name {bare} already exists"),
                ));
            }
        }
    }
    let engine = state
        .cluster
        .rank_engines(&request)
        .map_err(ApiError::from)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("No nodes available in the cluster"))?;
    let (headers, payload) = json_body(&body);
    let (status, bytes) = engine
        .call_at(Method::POST, version, "/networks/create", &headers, payload)
        .await
        .map_err(ApiError::from)?;
    let created: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(id) = created.get("Id").and_then(Value::as_str) {
        refresh_network_everywhere(&state, &engine, id).await;
    }
    let status = if status == StatusCode::OK {
        StatusCode::CREATED
    } else {
        status
    };
    Ok(json_response(status, &created))
}

/// Refreshes one network on its engine and, when it is not local, on every other engine too
/// (a multi-host network appears, or disappears, everywhere).
async fn refresh_network_everywhere(state: &AppState, engine: &Arc<Engine>, id: &str) {
    let _ = engine.refresh_network(id).await;
    let global = engine
        .cache()
        .networks
        .get(id)
        .is_some_and(|n| !n.is_local_network());
    if global {
        let others: Vec<Arc<Engine>> = state
            .cluster
            .validated()
            .into_iter()
            .filter(|e| !Arc::ptr_eq(e, engine))
            .collect();
        futures_util::future::join_all(others.iter().map(|e| e.refresh_network(id))).await;
    }
}

/// One call about a network, made on its engine first.
struct EngineCall<'a> {
    method: Method,
    version: Option<ApiVersion>,
    path: &'a str,
    body: Option<&'a Map<String, Value>>,
}

impl EngineCall<'_> {
    /// Makes the call on `engine`; with `fallback`, when that engine cannot be reached, on the
    /// healthy ones in turn until one succeeds (a multi-host network is known to all of them).
    async fn on(
        &self,
        state: &AppState,
        engine: &Engine,
        fallback: bool,
    ) -> Result<(StatusCode, Bytes), EngineError> {
        let mut result = self.once(engine).await;
        if fallback && matches!(result, Err(EngineError::Unreachable { .. })) {
            for other in state.cluster.healthy_engines() {
                result = self.once(&other).await;
                if result.is_ok() {
                    break;
                }
            }
        }
        result
    }

    async fn once(&self, engine: &Engine) -> Result<(StatusCode, Bytes), EngineError> {
        let (headers, payload) = match self.body {
            Some(b) => json_body(b),
            None => (HeaderMap::new(), crate::cluster::transport::empty()),
        };
        engine
            .call_at(
                self.method.clone(),
                self.version,
                self.path,
                &headers,
                payload,
            )
            .await
    }
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn post_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    match split_name_action(&rest, &["connect", "disconnect"]) {
        (id, Some(action)) => attach(&state, id, action, version, req).await,
        _ => Err(ApiError::no_route()),
    }
}

/// Connects or disconnects a container: both looked up cluster-wide, the call made on the
/// container's engine with both named by ID, then the network and the container refreshed.
async fn attach(
    state: &AppState,
    id: &str,
    action: &str,
    version: Option<ApiVersion>,
    req: Request,
) -> ApiResult<Response> {
    let maps = state.cluster.engines();
    let network = find_network(&maps, id)
        .ok_or_else(|| ApiError::not_found(format!("No such network: {id}")))?;
    let mut body = read_json_object(req, "network connect")
        .await
        .map_err(|e| match e.status {
            // The classic's answer to a body it cannot read; an oversize or slow body keeps its own.
            StatusCode::BAD_REQUEST => ApiError::not_found("Container is not specified"),
            _ => e,
        })?;
    let container = body
        .get("Container")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::not_found("Container is not specified"))?
        .to_string();
    let c = find_container(&maps, &container)
        .ok_or_else(|| ApiError::not_found(format!("No such container: {container}")))?;
    body.insert("Container".into(), Value::String(c.container.id.clone()));
    let path = format!("/networks/{}/{action}", network.id());
    let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
    // A forced disconnect from a multi-host network may go through another node when the
    // container's node is gone.
    let fallback = action == "disconnect" && force && !network.network.is_local_network();
    let call = EngineCall {
        method: Method::POST,
        version,
        path: &path,
        body: Some(&body),
    };
    let result = call.on(state, &c.engine, fallback).await;
    let (status, bytes) = result.map_err(|e| match e {
        EngineError::Status { .. } => ApiError::from(e),
        other => ApiError::not_found(other.to_string()),
    })?;
    let _ = c.engine.refresh_network(network.id()).await;
    let _ = c.engine.refresh_container(&c.container.id).await;
    let status = if action == "disconnect" {
        StatusCode::NO_CONTENT
    } else {
        status
    };
    let mut resp = Response::new(if status == StatusCode::NO_CONTENT {
        Body::empty()
    } else {
        Body::from(bytes)
    });
    *resp.status_mut() = status;
    Ok(resp)
}

/// `DELETE /networks/{id}`: on the engine that owns it (for a multi-host network, another
/// engine when that one cannot be reached); 204.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestedVersion(version): RequestedVersion,
) -> ApiResult<Response> {
    let found: NetworkRef = find_network(&state.cluster.engines(), &id)
        .ok_or_else(|| ApiError::not_found(format!("No such network {id}")))?;
    let nid = found.id().to_string();
    let path = format!("/networks/{nid}");
    let global = !found.network.is_local_network();
    let call = EngineCall {
        method: Method::DELETE,
        version,
        path: &path,
        body: None,
    };
    call.on(&state, &found.engine, global)
        .await
        .map_err(ApiError::from)?;
    if global {
        // A multi-host network leaves every engine's cache.
        let all = state.cluster.validated();
        futures_util::future::join_all(all.iter().map(|e| e.refresh_network(&nid))).await;
    } else {
        let _ = found.engine.refresh_network(&nid).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The network routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route(
            "/networks/{*id}",
            get(inspect).post(post_route).delete(remove),
        )
        .method_not_allowed_fallback(no_such_route)
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::api::testing::call;

    /// POSTs `body` to `path`; the status and the error message.
    async fn post(path: &str, body: &str) -> (StatusCode, String) {
        let answer = call(Method::POST, path, body).await;
        (answer.status, answer.message())
    }

    #[tokio::test]
    async fn a_network_or_volume_on_an_unknown_node_is_404_no_such_node() {
        for (path, body, node) in [
            ("/networks/create", r#"{"Name":"nosuch/net"}"#, "nosuch"),
            (
                "/v1.47/volumes/create",
                r#"{"Name":"nosuch/vol"}"#,
                "nosuch",
            ),
            ("/networks/create", r#"{"Name":"node-*/net"}"#, "node-*"),
            ("/volumes/create", r#"{"Name":"a,b/vol"}"#, "a,b"),
        ] {
            assert_eq!(
                post(path, body).await,
                (StatusCode::NOT_FOUND, format!("No such node: {node}")),
                "{path} {body}"
            );
        }
    }

    #[tokio::test]
    async fn a_soft_node_prefix_is_left_to_the_scheduler() {
        let (status, message) = post("/networks/create", r#"{"Name":"~nosuch/net"}"#).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(message, "No healthy node available in the cluster");
    }

    #[tokio::test]
    async fn malformed_expressions_are_400_before_any_node_is_looked_at() {
        // With no engine, scheduling could only have answered "No healthy node" (500).
        for (path, body, message) in [
            (
                "/containers/create",
                r#"{"Image":"busybox","Env":["constraint:node=="]}"#,
                "invalid constraint expression 'node==': Value '' is invalid",
            ),
            (
                "/containers/create",
                r#"{"Image":"busybox","Env":["affinity:image=~["]}"#,
                "invalid affinity expression 'image=~[': One of operator ==, != is expected",
            ),
            (
                "/volumes/create",
                r#"{"Labels":{"com.docker.swarm.whitelists":"[\"node==\"]"}}"#,
                "invalid whitelist expression 'node==': Value '' is invalid",
            ),
        ] {
            assert_eq!(
                post(path, body).await,
                (StatusCode::BAD_REQUEST, message.to_string()),
                "{body}"
            );
        }
        let (status, message) = post(
            "/containers/create",
            r#"{"Image":"busybox","Env":["constraint:node==x"]}"#,
        )
        .await;
        assert_eq!(
            (status, message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "No healthy node available in the cluster"
            )
        );
    }
}
