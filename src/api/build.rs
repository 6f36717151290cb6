//! `POST /build` on a node the scheduler picks (SPEC §5.9), and the requests that must follow a
//! BuildKit build to that node: its session (`POST /session`, hijacked), the upload of its
//! context (`buildid=upload-request:<id>`) and its cancellation (`POST /build/cancel`).
//!
//! The node comes from the build arguments: `constraint:`, `affinity:`, `whitelist:` and
//! `reschedule:` entries are scheduling metadata (so `--build-arg constraint:node==node-1`
//! works) and are not passed on; `cpushares` (as CPUs) and `memory` are resource requests. The
//! build context streams to the engine as it arrives and the engine's output comes back as it
//! is written, each legacy-builder message tagged with the node's name.
//!
//! A BuildKit client opens the session and starts the build at the same time, so whichever
//! comes second waits (up to [`PLACEMENT_WAIT`]) for the node the first one was given. Nodes
//! are remembered per build ID and session ID for [`PLACEMENT_RETENTION`], at most
//! [`MAX_PLACEMENTS`] of them, each ID at most [`MAX_ID_BYTES`] long: a build that would need
//! more is refused (503, or 400 for a longer ID) rather than held without bound.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::error::{no_such_route, ApiError, ApiResult};
use super::proxy::{forward, hijack};
use super::request::{path_and_query, query_value};
use super::state::AppState;
use crate::cluster::fanout::{encode_message, receiver_stream, JsonMessages, StreamItem};
use crate::cluster::Engine;
use crate::scheduler::SchedulingRequest;

/// How long a BuildKit request waits for the node of its build to be chosen.
pub const PLACEMENT_WAIT: Duration = Duration::from_secs(5);

/// How long the node of a build or session is remembered.
pub const PLACEMENT_RETENTION: Duration = Duration::from_secs(3600);

/// How many build and session placements are remembered at once.
pub const MAX_PLACEMENTS: usize = 4_096;

/// The longest build or session ID remembered (BuildKit's are 25 characters).
pub const MAX_ID_BYTES: usize = 128;

/// The header a BuildKit client names its session with.
const SESSION_HEADER: &str = "X-Docker-Expose-Session-Uuid";

/// Where a build or session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// It runs on the engine with this ID.
    Engine(String),
    /// Its build failed before reaching an engine (no node, bad request).
    Failed,
}

/// Which engine each recent build and BuildKit session runs on.
#[derive(Default)]
pub struct BuildPlacements {
    /// `build:<id>` or `session:<id>` → (where it went, when).
    chosen: Mutex<HashMap<String, (Placement, Instant)>>,
    /// Woken whenever a placement is added, so waiters look again.
    added: Notify,
}

impl BuildPlacements {
    /// Remembers where `key` went. Refused (503) when [`MAX_PLACEMENTS`] others, none older
    /// than [`PLACEMENT_RETENTION`], are remembered already.
    pub fn remember(&self, key: String, placement: Placement) -> ApiResult<()> {
        let now = Instant::now();
        {
            let mut chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
            chosen.retain(|_, (_, at)| now.duration_since(*at) < PLACEMENT_RETENTION);
            if chosen.len() >= MAX_PLACEMENTS && !chosen.contains_key(&key) {
                tracing::warn!(
                    limit = MAX_PLACEMENTS,
                    "Build refused: too many builds and sessions are placed"
                );
                return Err(ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many builds in progress: {MAX_PLACEMENTS} builds and sessions were placed in the last {} minutes; try again later",
                        PLACEMENT_RETENTION.as_secs() / 60
                    ),
                ));
            }
            chosen.insert(key, (placement, now));
        }
        self.added.notify_waiters();
        Ok(())
    }

    fn get(&self, key: &str) -> Option<Placement> {
        let chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
        chosen.get(key).map(|(p, _)| p.clone())
    }

    /// Where `key` went, waiting up to `timeout` for it to be decided.
    pub async fn wait_for(&self, key: &str, timeout: Duration) -> Option<Placement> {
        let deadline = Instant::now() + timeout;
        loop {
            // Registered before looking, so a placement added in between still wakes us.
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(id) = self.get(key) {
                return Some(id);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }
}

/// The validated engine with ID `id`.
fn engine_by_id(state: &AppState, id: &str) -> Option<Arc<Engine>> {
    state.cluster.engines().validated.get(id).cloned()
}

/// Waits for the engine of `key` (see [`BuildPlacements::wait_for`]); the classic error when
/// none is chosen in time, and `None` when the build failed before reaching one.
async fn placed_engine(
    state: &AppState,
    placements: &BuildPlacements,
    key: &str,
) -> ApiResult<Option<Arc<Engine>>> {
    match placements.wait_for(key, PLACEMENT_WAIT).await {
        Some(Placement::Engine(id)) => engine_by_id(state, &id)
            .map(Some)
            .ok_or_else(|| ApiError::internal("the build's node left the cluster")),
        Some(Placement::Failed) => Ok(None),
        None => Err(ApiError::internal("timeout waiting for build to start")),
    }
}

/// Splits the `buildargs` of a build into the scheduling request they make and the arguments
/// passed on to the engine (everything that is not scheduling metadata, in order).
pub fn split_build_args(args: &Map<String, Value>) -> (SchedulingRequest, Map<String, Value>) {
    let mut metadata = Vec::new();
    let mut passed = Map::new();
    for (key, value) in args {
        if let Value::String(text) = value {
            // The CLI split `constraint:node==x` at its first `=`; joined back it reads again.
            let entry = format!("{key}={text}");
            let (_, rest) = SchedulingRequest::from_env_like(std::slice::from_ref(&entry));
            if rest.is_empty() {
                metadata.push(entry);
                continue;
            }
        }
        passed.insert(key.clone(), value.clone());
    }
    (SchedulingRequest::from_env_like(&metadata).0, passed)
}

/// `POST /build`. When the build cannot start, its session and build ID are marked failed, so
/// the requests waiting for them give up at once and the client reports this error.
pub async fn build(
    State(state): State<AppState>,
    Extension(placements): Extension<Arc<BuildPlacements>>,
    req: Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let keys: Vec<String> = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .filter(|(k, v)| (k == "session" || k == "buildid") && !v.is_empty())
        .filter(|(_, v)| !v.starts_with("upload-request:"))
        .map(|(k, v)| match k.as_ref() {
            "session" => format!("session:{v}"),
            _ => format!("build:{v}"),
        })
        .collect();
    let fail = |e: ApiError| {
        for key in &keys {
            // With no room left, a waiting request gives up after its own timeout instead.
            let _ = placements.remember(key.clone(), Placement::Failed);
        }
        e
    };
    let (engine, path, buildkit) = match place_build(&state, &placements, &parts).await {
        Ok(placed) => placed,
        Err(e) => {
            // The client may still be sending its context; an answer before the end of the
            // body would reach it as a broken pipe instead of this error.
            drain(body).await;
            return Err(fail(e));
        }
    };
    let resp = forward(&engine, Request::from_parts(parts, body), &path)
        .await
        .map_err(fail)?;
    if !resp.status().is_success() {
        return Ok(resp);
    }
    Ok(relay_build_output(&state.tasks, resp, engine, buildkit))
}

/// How long a refused build's context is read and thrown away before the answer.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Reads a request body to its end (for at most [`DRAIN_LIMIT`]) and discards it.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_LIMIT, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

/// Chooses the engine of a build and the path to send it to there: the query with the
/// scheduling build arguments taken out. Also returns whether it is a BuildKit build.
async fn place_build(
    state: &AppState,
    placements: &BuildPlacements,
    parts: &http::request::Parts,
) -> ApiResult<(Arc<Engine>, String, bool)> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let version = param("version").unwrap_or("1");
    if version != "1" && version != "2" {
        return Err(ApiError::bad_request(format!("invalid version {version}")));
    }
    let buildkit = version == "2";
    let args: Map<String, Value> = param("buildargs")
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let (mut request, passed) = split_build_args(&args);
    request.cpus = param("cpushares").and_then(|v| v.parse().ok()).unwrap_or(0);
    request.memory = param("memory").and_then(|v| v.parse().ok()).unwrap_or(0);
    prefer_cache_holders(state, &mut request, param("cachefrom"));

    let build_id = param("buildid");
    for (what, id) in [("build ID", build_id), ("session ID", param("session"))] {
        if id.is_some_and(|id| id.len() > MAX_ID_BYTES) {
            return Err(ApiError::bad_request(format!(
                "invalid {what}: longer than {MAX_ID_BYTES} bytes"
            )));
        }
    }
    let engine = match build_id.and_then(|b| b.strip_prefix("upload-request:")) {
        // The context of a build that is already placed: it goes where that build runs.
        Some(upload) => placed_engine(state, placements, &format!("build:{upload}"))
            .await?
            .ok_or_else(|| ApiError::internal("the build this context was for did not start"))?,
        None => state
            .cluster
            .rank_engines(&request)
            .map_err(ApiError::from)?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("No nodes available in the cluster"))?,
    };
    if let Some(id) = build_id.filter(|b| !b.starts_with("upload-request:")) {
        placements.remember(format!("build:{id}"), Placement::Engine(engine.id()))?;
    }
    if let Some(session) = param("session") {
        placements.remember(format!("session:{session}"), Placement::Engine(engine.id()))?;
    }
    tracing::debug!(engine = %engine.addr, buildkit, "Build placed");

    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| {
            if k == "buildargs" {
                (
                    k.clone(),
                    serde_json::to_string(&passed).unwrap_or_default(),
                )
            } else {
                (k.clone(), v.clone())
            }
        }))
        .finish();
    Ok((engine, format!("/build?{query}"), buildkit))
}

/// `cachefrom` (a JSON array of image references): the build is drawn to the nodes holding those
/// images, where its layers can be reused, by one soft image affinity each. Images no node holds
/// add nothing, and a soft affinity no node meets is dropped by the filter, so the cache never
/// stops a build from being placed.
fn prefer_cache_holders(
    state: &AppState,
    request: &mut SchedulingRequest,
    cache_from: Option<&str>,
) {
    let Some(images) = cache_from.and_then(|c| serde_json::from_str::<Vec<String>>(c).ok()) else {
        return;
    };
    for image in images.iter().take(MAX_CACHE_FROM) {
        if !image.is_empty() && state.cluster.some_engine_has_image(image) {
            request.affinities.push(format!("image==~{image}"));
        }
    }
}

/// How many `cachefrom` images are looked up to place one build.
const MAX_CACHE_FROM: usize = 16;

/// The response header naming the node a build ran on.
pub const NODE_HEADER: &str = "X-Swarm-Node";

/// Relays a build's message stream as it comes: legacy-builder messages get the node as `id`
/// (so the CLI prints `node-1: Step 1/2 …`), BuildKit ones pass unchanged. Nothing is added:
/// the classic manager ended a successful build with `{"id":"<node>"}`, which SDKs read as a
/// build message and fail on, so the node is named in the [`NODE_HEADER`] header instead. The
/// engine's images are refreshed before the stream ends, so a client that looks the new image
/// up as soon as its build returns finds it.
fn relay_build_output(
    tasks: &TaskTracker,
    resp: Response,
    engine: Arc<Engine>,
    buildkit: bool,
) -> Response {
    let (mut parts, mut body) = resp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let node = engine.name();
    if let Ok(value) = http::HeaderValue::from_str(&node) {
        parts.headers.insert(NODE_HEADER, value);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    tasks.spawn(async move {
        let mut splitter = JsonMessages::new();
        let mut client_gone = false;
        'relay: while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    tracing::debug!(engine = %engine.addr, error = %e, "Build stream broke");
                    break;
                }
            };
            for item in splitter.push(&data) {
                let out = match item {
                    StreamItem::Message(mut m) => {
                        if !buildkit {
                            if let Some(obj) = m.as_object_mut() {
                                obj.insert("id".into(), Value::String(node.clone()));
                            }
                        }
                        encode_message(&m)
                    }
                    StreamItem::Text(t) => t,
                };
                if tx.send(Ok(out)).await.is_err() {
                    client_gone = true;
                    break 'relay;
                }
            }
        }
        if !client_gone {
            if let Some(rest) = splitter.finish() {
                let _ = tx.send(Ok(rest)).await;
            }
        }
        // Before the end of the stream: the client reads its own write when the build returns.
        if let Err(error) = engine.refresh_images().await {
            tracing::debug!(engine = %engine.addr, %error, "Refreshing images after a build failed");
        }
        drop(tx);
    });
    Response::from_parts(parts, Body::from_stream(receiver_stream(rx)))
}

/// `POST /session`: a BuildKit session, hijacked to the engine its build runs on.
pub async fn session(
    State(state): State<AppState>,
    Extension(placements): Extension<Arc<BuildPlacements>>,
    req: Request,
) -> ApiResult<Response> {
    let id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("no session ID provided"))?
        .to_string();
    match placed_engine(&state, &placements, &format!("session:{id}")).await? {
        Some(engine) => hijack(&state, &engine, req, "/session").await,
        None => Ok(closed_session(&state.tasks, req)),
    }
}

/// The answer to the session of a build that failed to start: the upgrade is granted and the
/// connection closed at once. The client then ends its session without an error of its own,
/// and reports the build's error (a refused upgrade would be reported instead of it).
fn closed_session(tasks: &TaskTracker, mut req: Request) -> Response {
    let upgrade = hyper::upgrade::on(&mut req);
    tasks.spawn(async move {
        if let Ok(conn) = upgrade.await {
            drop(conn);
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::UPGRADE, http::HeaderValue::from_static("h2c"));
    resp
}

/// `POST /build/cancel?id=`: on the engine the build runs on.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(placements): Extension<Arc<BuildPlacements>>,
    req: Request,
) -> ApiResult<Response> {
    let id = query_value(&req, "id")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("build ID not provided"))?;
    let engine = placed_engine(&state, &placements, &format!("build:{id}"))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no build with ID {id} is running")))?;
    let path = path_and_query(&req);
    forward(&engine, req, &path).await
}

/// The build routes, sharing one record of where builds run.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/build", post(build))
        .route("/build/cancel", post(cancel))
        .route("/session", post(session))
        .method_not_allowed_fallback(no_such_route)
        .layer(Extension(Arc::new(BuildPlacements::default())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduling_build_args_are_taken_out_and_the_rest_passed_on() {
        let args = json!({
            "constraint:node": "=node-1",
            "VERSION": "1.2",
            "affinity:image": "=busybox",
            "EMPTY": null,
        });
        let (request, passed) = split_build_args(args.as_object().unwrap());
        assert_eq!(request.constraints, vec!["node==node-1"]);
        assert_eq!(request.affinities, vec!["image==busybox"]);
        assert_eq!(
            Value::Object(passed),
            json!({"VERSION": "1.2", "EMPTY": null})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_waits_for_its_build_to_be_placed() {
        let placements = Arc::new(BuildPlacements::default());
        let waiter = {
            let p = placements.clone();
            tokio::spawn(async move { p.wait_for("session:s1", PLACEMENT_WAIT).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        placements
            .remember("session:s1".into(), Placement::Engine("engine-a".into()))
            .unwrap();
        assert_eq!(
            waiter.await.unwrap(),
            Some(Placement::Engine("engine-a".into()))
        );
        assert_eq!(
            placements.wait_for("session:other", PLACEMENT_WAIT).await,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn placements_are_bounded_and_a_build_over_the_cap_is_refused_until_old_ones_expire() {
        let placements = BuildPlacements::default();
        let engine = || Placement::Engine("engine-a".into());
        for i in 0..MAX_PLACEMENTS {
            placements.remember(format!("build:{i}"), engine()).unwrap();
        }
        let refused = placements
            .remember("build:extra".into(), engine())
            .unwrap_err();
        assert_eq!(refused.status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("too many builds"), "{refused}");
        // A build already remembered may still be marked failed.
        placements
            .remember("build:7".into(), Placement::Failed)
            .unwrap();
        assert_eq!(placements.get("build:7"), Some(Placement::Failed));

        tokio::time::advance(PLACEMENT_RETENTION).await;
        placements.remember("build:extra".into(), engine()).unwrap();
        assert_eq!(placements.chosen.lock().unwrap().len(), 1);
    }
}
