//! Container routes: the merged list (from the cache, SPEC §5.6) and the routes addressed to one
//! container, resolved to its engine (SPEC §5.4).
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use regex::Regex;
use serde_json::{Map, Value};

use super::error::{json_response, ApiError, ApiResult};
use super::filters::{label_filter_matches, Filters};
use super::proxy::{fetch_json, forward, hijack};
use super::request::{query_bool, query_value, resolve, split_name_action, wants_upgrade};
use super::state::{AppState, RequestedVersion};
use crate::cluster::cache::Container;
use crate::cluster::names::{find_container, ContainerRef};
use crate::cluster::{Engine, EngineState};
use crate::scheduler::expr::user_regex;

/// Docker's human duration (`Less than a second`, `5 seconds`, `About a minute`, …).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = s / 3600;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// The `Status` column of `docker ps`, recomputed now from the cached state.
pub fn status_text(c: &Container, engine_healthy: bool, now: i64) -> String {
    if !engine_healthy {
        return "Host Down".into();
    }
    let st = &c.details.state;
    let state = c.state();
    let since = |t: Option<i64>| t.map(|t| human_duration(now - t));
    match state {
        "running" | "paused" => {
            let up = since(c.details.started_secs).unwrap_or_else(|| "Less than a second".into());
            let mut text = format!("Up {up}");
            if st.paused || state == "paused" {
                text.push_str(" (Paused)");
            } else if let Some(h) = c.details.health() {
                match h {
                    "starting" => text.push_str(" (health: starting)"),
                    "healthy" | "unhealthy" => text.push_str(&format!(" ({h})")),
                    _ => {}
                }
            }
            text
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            since(c.details.finished_secs).unwrap_or_else(|| "Less than a second".into())
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        "created" => "Created".into(),
        "exited" => match since(c.details.finished_secs) {
            Some(d) => format!("Exited ({}) {d} ago", st.exit_code),
            None => format!("Exited ({})", st.exit_code),
        },
        _ => c.list_status().to_string(),
    }
}

/// Appends `text` as a JSON string (quoted and escaped).
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    write_json_str_body(out, text);
    out.push(b'"');
}

/// Appends `text` escaped for use inside a JSON string, without the quotes.
fn write_json_str_body(out: &mut Vec<u8>, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.extend_from_slice(text.as_bytes());
    } else {
        let quoted = serde_json::Value::from(text).to_string();
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// What a list entry needs from its engine: the node name (already a JSON string body) and the
/// address that replaces unspecified port addresses.
struct NodeText {
    /// The node name, escaped for use inside a JSON string.
    name: String,
    ip: String,
    healthy: bool,
}

impl NodeText {
    fn new(engine: &Engine) -> NodeText {
        let mut escaped = Vec::new();
        write_json_str_body(&mut escaped, &engine.name());
        let name = String::from_utf8_lossy(&escaped).into_owned();
        NodeText {
            name,
            ip: engine.ip(),
            healthy: engine.state() == EngineState::Healthy,
        }
    }
}

/// Appends one `docker ps` entry: the engine's entry with node-prefixed names, a fresh status
/// and the node IP in place of unspecified port addresses, then the pre-serialised rest of the
/// engine's entry. Lists of tens of thousands are then mostly copies.
fn write_entry(out: &mut Vec<u8>, c: &Container, node: &NodeText, now: i64) {
    out.extend_from_slice(b"{\"Names\":[");
    for (i, name) in c.names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // `/node` + `/name`, one JSON string.
        out.extend_from_slice(b"\"/");
        out.extend_from_slice(node.name.as_bytes());
        write_json_str_body(out, name);
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"Status\":");
    write_json_str(out, &status_text(c, node.healthy, now));
    out.extend_from_slice(b",\"State\":");
    write_json_str(out, c.state());
    out.extend_from_slice(b",\"Ports\":[");
    for (i, p) in c.ports.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Some(ip) = p.ip.as_deref().filter(|ip| !ip.is_empty()) {
            let ip = match ip {
                "0.0.0.0" | "::" if !node.ip.is_empty() => node.ip.as_str(),
                ip => ip,
            };
            out.extend_from_slice(b"\"IP\":");
            write_json_str(out, ip);
            out.push(b',');
        }
        out.extend_from_slice(b"\"PrivatePort\":");
        out.extend_from_slice(itoa::Buffer::new().format(p.private_port).as_bytes());
        if let Some(public) = p.public_port.filter(|p| *p != 0) {
            out.extend_from_slice(b",\"PublicPort\":");
            out.extend_from_slice(itoa::Buffer::new().format(public).as_bytes());
        }
        out.extend_from_slice(b",\"Type\":");
        write_json_str(out, &p.kind);
        out.push(b'}');
    }
    out.push(b']');
    if !c.static_json.is_empty() {
        out.push(b',');
        out.extend_from_slice(c.static_json.as_bytes());
    }
    out.push(b'}');
}

/// A merged list written out in chunks as the client reads it: eight concurrent lists of tens
/// of thousands of containers never hold their whole bodies at once.
struct ListBody {
    entries: std::vec::IntoIter<(Arc<Container>, usize)>,
    nodes: Vec<NodeText>,
    now: i64,
    started: bool,
    done: bool,
}

/// How much of a list is written per chunk.
const LIST_CHUNK: usize = 256 * 1024;

impl Iterator for ListBody {
    type Item = Result<bytes::Bytes, std::convert::Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(LIST_CHUNK + 4096);
        if !self.started {
            out.push(b'[');
        }
        while out.len() < LIST_CHUNK {
            let Some((c, node)) = self.entries.next() else {
                out.extend_from_slice(b"]\n");
                self.done = true;
                break;
            };
            if self.started {
                out.push(b',');
            }
            self.started = true;
            write_entry(&mut out, &c, &self.nodes[node], self.now);
        }
        Some(Ok(bytes::Bytes::from(out)))
    }
}

struct ListFilter {
    filters: Filters,
    name: Vec<Regex>,
    id: Vec<Regex>,
    status: Vec<Regex>,
    node: Vec<Regex>,
    exited: Vec<i64>,
}

fn regexes(filters: &Filters, key: &str) -> ApiResult<Vec<Regex>> {
    filters
        .values(key)
        .iter()
        .map(|v| {
            user_regex(v)
                .map_err(|e| ApiError::bad_request(format!("invalid filter '{key}={v}': {e}")))
        })
        .collect()
}

impl ListFilter {
    fn new(filters: Filters) -> ApiResult<ListFilter> {
        for status in filters.values("status") {
            const KNOWN: [&str; 7] = [
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ];
            if !KNOWN.contains(&status.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={status}': must be one of {}",
                    KNOWN.join(", ")
                )));
            }
        }
        for h in filters.values("health") {
            if !["starting", "healthy", "unhealthy", "none"].contains(&h.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'health={h}': must be one of starting, healthy, unhealthy, none"
                )));
            }
        }
        let exited = filters
            .values("exited")
            .iter()
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid filter 'exited={v}'")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(ListFilter {
            name: regexes(&filters, "name")?,
            id: regexes(&filters, "id")?,
            status: filters
                .values("status")
                .iter()
                .map(|s| Regex::new(&format!("^{}$", regex::escape(s))).expect("escaped"))
                .collect(),
            node: regexes(&filters, "node")?,
            exited,
            filters,
        })
    }

    fn any(re: &[Regex], text: &str) -> bool {
        re.is_empty() || re.iter().any(|r| r.is_match(text))
    }

    fn accepts(&self, c: &Container, engine: &Engine) -> bool {
        let f = &self.filters;
        if f.keys().next().is_none() {
            return true;
        }
        if !self.name.is_empty() && !Self::any(&self.name, c.name())
            || !Self::any(&self.id, &c.id)
            || !Self::any(&self.status, c.state())
            || !self.node.is_empty() && !Self::any(&self.node, &engine.name())
        {
            return false;
        }
        if !f.match_all("label", |v| label_filter_matches(|k| c.label(k), v)) {
            return false;
        }
        let health = c.details.health().unwrap_or("none");
        if !f.match_any("health", |v| v == health) {
            return false;
        }
        if f.has("is-task") {
            let is_task = c.label("com.docker.swarm.task").is_some();
            if !f.match_any("is-task", |v| (v == "true") == is_task) {
                return false;
            }
        }
        if !self.exited.is_empty()
            && (c.details.state.running || !self.exited.contains(&c.details.state.exit_code))
        {
            return false;
        }
        if f.has("volume") {
            let ok = f.match_any("volume", |v| {
                c.mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(v) || &*m.destination == v)
            });
            if !ok {
                return false;
            }
        }
        if f.has("network") {
            let ok = f.match_any("network", |v| {
                c.networks
                    .iter()
                    .any(|n| &*n.name == v || !v.is_empty() && n.network_id.starts_with(v))
            });
            if !ok {
                return false;
            }
        }
        if f.has("ancestor") {
            let image = c.image();
            let image_id = c.image_id();
            let ok = f.match_any("ancestor", |v| {
                image == v
                    || image_id == v
                    || image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|i| i.starts_with(v))
                    || crate::cluster::names::split_reference(image).0 == v
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

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
    let maps = cluster.engines();

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

    let mut nodes: Vec<NodeText> = Vec::new();
    let mut selected: Vec<(Arc<Container>, usize)> = Vec::new();
    for engine in maps.validated.values() {
        let healthy = engine.state() == EngineState::Healthy;
        let cache = engine.cache();
        let mut node = None;
        for c in cache.containers.values() {
            if !show_stopped && (!healthy || c.state() != "running" && c.state() != "paused") {
                continue;
            }
            if !all && c.image().split(':').next() == Some("swarm") {
                continue;
            }
            if !filter.accepts(c, engine) {
                continue;
            }
            let index = *node.get_or_insert_with(|| {
                nodes.push(NodeText::new(engine));
                nodes.len() - 1
            });
            selected.push((c.clone(), index));
        }
    }
    selected.sort_by_key(|(c, _)| std::cmp::Reverse(c.created_nanos()));
    if let Some(b) = before {
        selected.retain(|(c, _)| c.created_nanos() < b);
    }
    if let Some(s) = since {
        selected.retain(|(c, _)| c.created_nanos() > s);
    }
    if limit > 0 {
        selected.truncate(limit as usize);
    }
    let body = ListBody {
        entries: selected.into_iter(),
        nodes,
        now: chrono::Utc::now().timestamp(),
        started: false,
        done: false,
    };
    let mut resp = (
        StatusCode::OK,
        axum::body::Body::from_stream(futures_util::stream::iter(body)),
    )
        .into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
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
            hijack(&c.engine, req, &path).await
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
        "attach" if wants_upgrade(&req) => hijack(&c.engine, req, &path).await,
        "exec" => super::exec::create(&state, &c, req, &path).await,
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
    let c = find_container(&state.cluster.engines(), &rest)
        .ok_or_else(|| ApiError::not_found(format!("Container {rest} not found")))?;
    let path = container_path(&c, None, &req);
    let resp = forward(&c.engine, req, &path).await?;
    refresh(&c).await;
    Ok(resp)
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
        format!(
            "Conflict: The name {name} is already assigned. You have to delete (or rename) that container to be able to assign {name} to a container again."
        ),
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
    use super::limits::read_whole_body;
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

    #[test]
    fn list_entries_prefix_names_rewrite_ports_and_keep_the_rest() {
        use crate::cluster::cache::{entry_hash, ContainerDetails};
        let raw = r#"{"Id":"abc","Names":["/we\"b"],"Image":"busybox","State":"exited",
            "Status":"Exited (0)","Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":53,"Type":"udp"}],"Labels":{"a":"1"}}"#;
        let c = Container::new(
            serde_json::from_str(raw).unwrap(),
            ContainerDetails::default(),
            entry_hash(raw.as_bytes()),
        );
        let node = NodeText {
            name: "node-1".into(),
            ip: "10.0.0.5".into(),
            healthy: true,
        };
        let mut out = Vec::new();
        write_entry(&mut out, &c, &node, 0);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Names"], serde_json::json!(["/node-1/we\"b"]));
        assert_eq!(v["State"], "exited");
        assert_eq!(v["Ports"][0]["IP"], "10.0.0.5");
        assert_eq!(v["Ports"][0]["PublicPort"], 8080);
        assert!(v["Ports"][1].get("IP").is_none());
        assert!(v["Ports"][1].get("PublicPort").is_none());
        assert_eq!(v["Labels"]["a"], "1");
        assert_eq!(v["Id"], "abc");
    }

    #[test]
    fn human_durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(100 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn container_names_follow_docker_rules() {
        assert!(valid_container_name("web"));
        assert!(valid_container_name("/web-1.a_b"));
        assert!(!valid_container_name("w"));
        assert!(!valid_container_name("-web"));
        assert!(!valid_container_name("we b"));
        assert!(!valid_container_name("node-1/web"));
    }
}
