//! Container routes: the merged list (from the cache, SPEC §5.6; how it is filtered and written
//! is [`super::ps`]) and the routes addressed to one container, resolved to its engine
//! (SPEC §5.4).
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::error::{json_response, ApiError, ApiResult};
use super::filters::Filters;
use super::limits::read_whole_body;
use super::proxy::{fetch_json, forward, hijack};
use super::ps::{ListFilter, ListShare, ListSnapshot, NodeList, Selected};
use super::request::{query_bool, query_value, resolve, split_name_action, wants_upgrade};
use super::state::{AppState, RequestedVersion};
use crate::cluster::cache::StateKind;
use crate::cluster::names::{find_container, ContainerRef};
use crate::cluster::Engine;

/// `GET /containers/json` (and `/containers/ps`).
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    let mut all = query_bool(&q, "all");
    let limit: i64 = q
        .get("limit")
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let before_name = q.get("before").filter(|b| !b.is_empty()).cloned();
    if filters.values("status").iter().any(|s| s == "exited") || filters.has("exited") {
        all = true;
    }
    let cluster = &state.cluster;
    if cluster.opts.refresh_on_node_filter && filters.has("node") {
        refresh_matching(cluster.validated(), |e| {
            filters.values("node").iter().any(|n| n == &e.name())
        })
        .await;
    }
    if let Some(trigger) = &cluster.opts.container_name_refresh_filter {
        if filters.values("name").iter().any(|n| n == trigger) {
            refresh_matching(cluster.validated(), |_| true).await;
        }
    }
    let filter = ListFilter::new(filters)?;
    // From here to the answer, one list at a time: a request that reads the snapshot the kept
    // answer was rendered from is answered with it, the others render it once for all.
    let share = ListShare::lock().await;
    let maps = cluster.engines();
    let snapshot = ListSnapshot::take(maps.clone(), &q);
    if let Some(kept) = share.kept(&snapshot) {
        return Ok(kept);
    }

    let bound = |key: &str| -> ApiResult<Option<i128>> {
        let mut names: Vec<String> = filter.filters.values(key).to_vec();
        if key == "before" {
            if let Some(b) = &before_name {
                names.push(b.clone());
            }
        }
        let mut out = None;
        for n in names {
            let found = find_container(&maps, &n)
                .ok_or_else(|| ApiError::not_found(format!("No such container: {n}")))?;
            out = Some(found.container.created_nanos());
        }
        Ok(out)
    };
    let before = bound("before")?;
    let since = bound("since")?;
    let show_stopped = all || before.is_some() || since.is_some() || limit > 0;

    // Selected containers are kept as positions in their snapshots with their sort key
    // inline: neither selecting nor sorting touches a reference count or follows a pointer.
    let mut nodes: Vec<NodeList> = Vec::new();
    let mut selected: Vec<Selected> = Vec::new();
    for view in &snapshot.engines {
        let (engine, cache, healthy) = (&view.engine, &view.cache, view.healthy);
        let mut node = None;
        for (pos, c) in cache.index().all().iter().enumerate() {
            let up = matches!(c.state_kind(), StateKind::Running | StateKind::Paused);
            if !show_stopped && (!healthy || !up) {
                continue;
            }
            if !all && c.image().split(':').next() == Some("swarm") {
                continue;
            }
            if !filter.accepts(c, engine) {
                continue;
            }
            let node = *node.get_or_insert_with(|| {
                nodes.push(NodeList {
                    node: view.node_text(),
                    cache: cache.clone(),
                });
                nodes.len() as u32 - 1
            });
            selected.push(Selected {
                created_ns: c.created_ns(),
                node,
                pos: pos as u32,
            });
        }
    }
    Selected::sort_newest_first(&mut selected);
    if let Some(b) = before {
        selected.retain(|s| i128::from(s.created_ns) < b);
    }
    if let Some(s) = since {
        selected.retain(|c| i128::from(c.created_ns) > s);
    }
    if limit > 0 {
        selected.truncate(limit as usize);
    }
    Ok(share.render(snapshot, selected, nodes))
}

async fn refresh_matching(engines: Vec<Arc<Engine>>, pick: impl Fn(&Engine) -> bool) {
    let jobs = engines.into_iter().filter(|e| pick(e)).map(|e| async move {
        let _ = e.refresh_containers().await;
    });
    futures_util::future::join_all(jobs).await;
}

/// The path of `action` on the resolved container, with the request's query.
fn container_path(c: &ContainerRef, action: Option<&str>, req: &Request) -> String {
    let mut path = format!("/containers/{}", c.container.id);
    if let Some(a) = action {
        path.push('/');
        path.push_str(a);
    }
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    path
}

const GET_ACTIONS: [&str; 8] = [
    "json",
    "archive",
    "export",
    "changes",
    "top",
    "logs",
    "stats",
    "attach/ws",
];

/// `GET /containers/{name}/…`.
pub async fn get_route(
    State(state): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    version: RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let (name, action) = split_name_action(&rest, &GET_ACTIONS);
    match action {
        Some("json") => inspect(&state, name, version, req).await,
        Some("attach/ws") => {
            let c = resolve(&state, name, |n| format!("No such container: {n}"))?;
            let path = container_path(&c, action, &req);
            hijack(&state, &c.engine, req, &path).await
        }
        Some(_) => {
            let c = resolve(&state, name, |n| format!("No such container: {n}"))?;
            let path = container_path(&c, action, &req);
            forward(&c.engine, req, &path).await
        }
        None => Err(ApiError::no_route()),
    }
}

/// `HEAD` and `PUT /containers/{name}/archive` (`docker cp`).
pub async fn archive_route(
    State(state): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Response> {
    match split_name_action(&rest, &["archive"]) {
        (name, Some(action)) => {
            let c = resolve(&state, name, |n| format!("No such container: {n}"))?;
            let path = container_path(&c, Some(action), &req);
            forward(&c.engine, req, &path).await
        }
        _ => Err(ApiError::no_route()),
    }
}

const POST_ACTIONS: [&str; 13] = [
    "kill", "pause", "unpause", "restart", "stop", "update", "wait", "start", "rename", "resize",
    "copy", "attach", "exec",
];

/// `POST /containers/{name}/…`.
pub async fn post_route(
    State(state): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (name, action) = split_name_action(&rest, &POST_ACTIONS);
    let Some(action) = action else {
        return Err(ApiError::no_route());
    };
    let c = resolve(&state, name, |n| {
        if action == "start" {
            format!("No such container {n}")
        } else {
            format!("No such container: {n}")
        }
    })?;
    let path = container_path(&c, Some(action), &req);
    match action {
        "attach" if wants_upgrade(&req) => hijack(&state, &c.engine, req, &path).await,
        "exec" => create_exec(&state, &c, req, &path).await,
        "start" => {
            let expected = c.engine.expect_event(&c.container.id, "start");
            let resp = forward(&c.engine, req, &path).await?;
            let status = resp.status();
            if status.is_success() && status != StatusCode::NOT_MODIFIED {
                expected.settle();
            }
            refresh(&c).await;
            if status == StatusCode::NOT_MODIFIED {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            Ok(resp)
        }
        "rename" => {
            let new_name = query_value(&req, "name").unwrap_or_default();
            if !new_name.is_empty() && name_taken(&state, &new_name, Some(&c.container.id)) {
                return Err(conflict(&new_name));
            }
            let resp = forward(&c.engine, req, &path).await?;
            refresh(&c).await;
            Ok(resp)
        }
        "kill" | "pause" | "unpause" | "restart" | "stop" | "update" => {
            let resp = forward(&c.engine, req, &path).await?;
            refresh(&c).await;
            Ok(resp)
        }
        _ => forward(&c.engine, req, &path).await,
    }
}

/// `DELETE /containers/{name}?force=&v=`.
pub async fn delete_route(
    State(state): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Response> {
    if let Some((parent, alias)) = link_to_remove(&rest, &req) {
        return remove_link(&state, parent, alias, req).await;
    }
    let c = find_container(&state.cluster.engines(), &rest)
        .ok_or_else(|| ApiError::not_found(format!("Container {rest} not found")))?;
    let path = container_path(&c, None, &req);
    let resp = forward(&c.engine, req, &path).await?;
    refresh(&c).await;
    Ok(resp)
}

/// The `(parent, alias)` of `DELETE /containers/{parent}/{alias}?link=1`, or `None` when the
/// request removes a container. The parent may itself be written `node/name`, so the alias is
/// what follows the last `/`.
fn link_to_remove<'a>(rest: &'a str, req: &Request) -> Option<(&'a str, &'a str)> {
    let link = query_value(req, "link")?;
    if !query_bool(&HashMap::from([("link".to_string(), link)]), "link") {
        return None;
    }
    let (parent, alias) = rest.trim_matches('/').rsplit_once('/')?;
    (!parent.is_empty() && !alias.is_empty()).then_some((parent, alias))
}

/// `DELETE /containers/{parent}/{alias}?link=1`: the parent's engine removes the link. The
/// engine finds the parent by its own name (not by ID), so that is the name forwarded.
async fn remove_link(
    state: &AppState,
    parent: &str,
    alias: &str,
    req: Request,
) -> ApiResult<Response> {
    let c = resolve(state, parent, |name| format!("No such container: {name}"))?;
    let mut path = format!("/containers/{}/{alias}", c.container.name());
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    let resp = forward(&c.engine, req, &path).await?;
    // The linked container loses its `/parent/alias` name: the engine's list is read again.
    if let Err(err) = c.engine.refresh_containers().await {
        tracing::debug!(container = %c.container.id, error = %err, "Refresh after unlink failed");
    }
    Ok(resp)
}

/// `POST /containers/{name}/exec`: created on the container's engine, and the exec ID
/// remembered so later `/exec/{id}` calls can be routed.
async fn create_exec(
    state: &AppState,
    c: &ContainerRef,
    req: Request,
    path: &str,
) -> ApiResult<Response> {
    let (parts, bytes) = read_whole_body(req).await?;
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

/// Re-reads one container into the cache right after a state-changing call, so the next read
/// sees the change (the classic forces a refresh the same way).
async fn refresh(c: &ContainerRef) {
    if let Err(err) = c.engine.refresh_container(&c.container.id).await {
        tracing::debug!(container = %c.container.id, error = %err, "Refresh after change failed");
    }
}

/// Whether `name` is used by a container other than `except` anywhere in the cluster.
pub fn name_taken(state: &AppState, name: &str, except: Option<&str>) -> bool {
    crate::cluster::names::name_taken(&state.cluster.engines(), name, except)
}

/// The classic 409 for a name clash.
pub fn conflict(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        crate::cluster::names::name_conflict(name),
    )
}

/// `GET /containers/{name}/json`: a fresh inspect from the owning engine with the `Node`
/// object added and unspecified port addresses replaced by the node IP.
async fn inspect(
    state: &AppState,
    name: &str,
    version: RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let found = resolve(state, name, |n| format!("No such container: {n}"))?;
    let size = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "size=1" || p == "size=true"));
    let path = format!(
        "/containers/{}/json{}",
        found.container.id,
        if size { "?size=1" } else { "" }
    );
    let mut body = fetch_json(&found.engine, version, &path).await?;
    let engine = &found.engine;
    let ip = engine.ip();
    if let Some(obj) = body.as_object_mut() {
        if let Some(specs) = engine.specs() {
            obj.insert(
                "Node".into(),
                serde_json::json!({
                    "ID": specs.id, "IP": specs.ip, "Addr": engine.addr, "Name": specs.name,
                    "Cpus": specs.cpus, "Memory": specs.memory, "Labels": specs.labels,
                }),
            );
        }
        if let Some(ports) = obj
            .get_mut("NetworkSettings")
            .and_then(|n| n.get_mut("Ports"))
            .and_then(Value::as_object_mut)
        {
            for bindings in ports.values_mut() {
                for b in bindings.as_array_mut().into_iter().flatten() {
                    if let Some(b) = b.as_object_mut() {
                        let host_ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
                        if (host_ip.is_empty() || host_ip == "0.0.0.0" || host_ip == "::")
                            && !ip.is_empty()
                        {
                            b.insert("HostIp".into(), Value::String(ip.clone()));
                        }
                    }
                }
            }
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

fn valid_container_name(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The create-body fields the manager reads, typed, so a value of the wrong type is the
/// client's error (400) rather than something the scheduler silently skips.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct CreateBodyCheck {
    image: Option<String>,
    env: Option<Vec<String>>,
    labels: Option<HashMap<String, String>>,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    cpu_shares: Option<i64>,
    exposed_ports: Option<HashMap<String, Value>>,
    host_config: Option<HostConfigCheck>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct HostConfigCheck {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    cpu_shares: Option<i64>,
    network_mode: Option<String>,
    links: Option<Vec<String>>,
    volumes_from: Option<Vec<String>>,
    port_bindings: Option<HashMap<String, Option<Vec<PortBindingCheck>>>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct PortBindingCheck {
    host_ip: Option<String>,
    host_port: Option<String>,
}

/// `POST /containers/create?name=`: scheduled onto a node (SPEC §4.6).
pub async fn create(
    State(state): State<AppState>,
    version: RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    use crate::cluster::create::CreateRequest;
    let name = query_value(&req, "name").filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if !valid_container_name(n) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    let registry_auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (_, bytes) = read_whole_body(req).await?;
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(ApiError::bad_request(
                "invalid JSON: the create body must be an object",
            ))
        }
        Err(e) if bytes.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "config cannot be empty in order to create a container: {e}"
            )))
        }
        Err(e) => return Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
    };
    if let Err(e) = serde_json::from_slice::<CreateBodyCheck>(&bytes) {
        return Err(ApiError::bad_request(format!("invalid create body: {e}")));
    }
    if body
        .get("Image")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request("No image specified"));
    }
    let created = state
        .cluster
        .create_container(CreateRequest {
            name,
            body,
            registry_auth,
            version: version.0,
        })
        .await?;
    let warnings = match created.warnings {
        Value::Null => Value::Array(Vec::new()),
        w => w,
    };
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({"Id": created.id, "Warnings": warnings}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::call;
    use http::Method;

    #[test]
    fn container_names_follow_docker_rules() {
        assert!(valid_container_name("web"));
        assert!(valid_container_name("/web-1.a_b"));
        assert!(!valid_container_name("w"));
        assert!(!valid_container_name("-web"));
        assert!(!valid_container_name("we b"));
        assert!(!valid_container_name("node-1/web"));
    }

    #[tokio::test]
    async fn a_container_list_without_engines_is_an_empty_array() {
        for path in [
            "/containers/json",
            "/v1.24/containers/json?all=1",
            "/containers/ps",
        ] {
            let answer = call(Method::GET, path, "").await;
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            assert_eq!(
                answer.headers[http::header::CONTENT_TYPE],
                "application/json"
            );
            assert_eq!(answer.json(), serde_json::json!([]), "{path}");
        }
    }

    #[tokio::test]
    async fn a_container_that_no_engine_holds_is_404() {
        let answer = call(Method::GET, "/containers/web/json", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(answer.message(), "No such container: web");
    }
}
