//! Image routes (SPEC §5.9): the merged, de-duplicated list answered from the cache; pulls,
//! imports and loads fanned out to every engine with per-node progress; tag and remove on every
//! engine that holds the image; inspect, history, save and push on one engine that holds it;
//! search and login on some healthy engine; commit on the container's engine.
//!
//! Every change is followed by a refresh of the image caches of the engines involved, so the
//! next `docker images` sees it. Bodies (image tarballs) and engine streams are relayed as they
//! come and never held whole; the relay of many engines' streams into one is
//! [`super::fanout`].
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use regex::Regex;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::error::{json_response, no_such_route, ApiError, ApiResult};
use super::fanout::{call_and_relay, fanned_stream, json_stream, on_each, send, EngineOutcome};
use super::filters::{label_matches, Filters};
use super::proxy::forward;
use super::request::{path_and_query, query_bool, query_value, resolve, split_name_action};
use super::state::{AppState, RequestedVersion};
use super::version::ApiVersion;
use crate::cluster::cache::Image;
use crate::cluster::fanout::{error_object, names_image, receiver_stream, tee_body};
use crate::cluster::names::{image_matches, split_reference};
use crate::cluster::transport::{empty, TransportBody};
use crate::cluster::Engine;

/// One image of the merged list while it is being built: the first engine's entry, the tags and
/// digests seen on every engine, and the creation time.
struct MergedImage {
    raw: Map<String, Value>,
    tags: Vec<String>,
    digests: Vec<String>,
    created: i64,
}

/// Docker's familiar-name glob for the `reference` filter: `*` matches within a path segment.
fn reference_regex(pattern: &str) -> Option<Regex> {
    let mut re = String::from("^");
    for ch in pattern.chars() {
        match ch {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

fn reference_matches(img: &Image, pattern: &str) -> bool {
    let Some(re) = reference_regex(pattern) else {
        return false;
    };
    let (pat_repo, pat_tag) = split_reference(pattern);
    img.repo_tags
        .iter()
        .chain(img.repo_digests.iter())
        .any(|r| {
            if re.is_match(r) {
                return true;
            }
            // A pattern without a tag matches the repository part.
            pat_tag.is_none()
                && reference_regex(pat_repo).is_some_and(|rr| rr.is_match(split_reference(r).0))
        })
}

/// `GET /images/json?all=&filters=`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let mut filters = Filters::parse(q.get("filters").map(String::as_str))?;
    if let Some(legacy) = q.get("filter").filter(|f| !f.is_empty()) {
        filters = Filters::parse(Some(
            &serde_json::json!({"reference": [legacy]}).to_string(),
        ))?;
    }
    let all = query_bool(&q, "all");
    let dangling = match filters.values("dangling").first().map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(_) => return Err(ApiError::bad_request("Invalid filter: 'type'='dangling'")),
    };
    let maps = state.cluster.engines();
    let find_created = |key: &str| -> ApiResult<Option<i64>> {
        let Some(name) = filters.values(key).first() else {
            return Ok(None);
        };
        maps.validated
            .values()
            .flat_map(|e| e.cache().images.iter().cloned().collect::<Vec<_>>())
            .find(|i| image_matches(i, name, true))
            .map(|i| Some(i.created))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid filter: 'type'='{key}': no such image found: '{name}'"
                ))
            })
    };
    let before = find_created("before")?;
    let since = find_created("since")?;

    // Group by image ID; tags and digests from every engine, other fields from the first.
    let mut merged: BTreeMap<String, MergedImage> = BTreeMap::new();
    for engine in maps.validated.values() {
        let node_ok = filters.match_any("node", |v| v == engine.name() || v == engine.id());
        if !node_ok {
            continue;
        }
        for img in engine.cache().images.iter() {
            if !all && dangling.is_none() && !img.is_tagged() {
                continue;
            }
            if let Some(d) = dangling {
                if d == img.is_tagged() {
                    continue;
                }
            }
            if !filters.match_all("label", |v| {
                label_matches(img.raw.get("Labels").and_then(Value::as_object), v)
            }) {
                continue;
            }
            if !filters.match_any("reference", |v| reference_matches(img, v)) {
                continue;
            }
            if before.is_some_and(|b| img.created >= b) || since.is_some_and(|s| img.created <= s) {
                continue;
            }
            let entry = merged.entry(img.id.clone()).or_insert_with(|| MergedImage {
                raw: img.raw.clone(),
                tags: Vec::new(),
                digests: Vec::new(),
                created: img.created,
            });
            for t in &img.repo_tags {
                if !entry.tags.contains(t) {
                    entry.tags.push(t.clone());
                }
            }
            for d in &img.repo_digests {
                if !entry.digests.contains(d) {
                    entry.digests.push(d.clone());
                }
            }
        }
    }
    let mut rows: Vec<(i64, Value)> = merged
        .into_values()
        .map(
            |MergedImage {
                 mut raw,
                 tags,
                 digests,
                 created,
             }| {
                raw.insert(
                    "RepoTags".into(),
                    tags.into_iter().map(Value::String).collect(),
                );
                raw.insert(
                    "RepoDigests".into(),
                    digests.into_iter().map(Value::String).collect(),
                );
                (created, Value::Object(raw))
            },
        )
        .collect();
    rows.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
    let out: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// `GET /images/viz`: never supported by a cluster.
pub async fn viz() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Not supported in clustering mode.",
    )
}

/// A healthy engine holding an image that `name` matches (tag semantics), or the classic 404.
fn engine_holding(state: &AppState, name: &str) -> ApiResult<Arc<Engine>> {
    state
        .cluster
        .healthy_engines()
        .into_iter()
        .find(|e| {
            e.cache()
                .images
                .iter()
                .any(|i| image_matches(i, name, true))
        })
        .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))
}

/// `GET /images/{name}/json`, `/history` and `/get`: forwarded to an engine holding it.
pub async fn get_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (name, action) = split_name_action(&rest, &["json", "history", "get"]);
    if action.is_none() {
        return Err(ApiError::no_route());
    }
    let engine = engine_holding(&state, name)?;
    let path = path_and_query(&req);
    forward(&engine, req, &path).await
}

/// `POST /images/{name}/push` and `/tag`.
pub async fn post_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    match split_name_action(&rest, &["push", "tag"]) {
        (name, Some("push")) => push(&state, name, req).await,
        (name, Some("tag")) => tag(&state, name, version, req).await,
        _ => Err(ApiError::no_route()),
    }
}

/// `POST /images/{name}/push?tag=`: on an engine holding `name:tag`; its images are refreshed
/// when the push ends, since the image gains a repository digest.
async fn push(state: &AppState, name: &str, req: Request) -> ApiResult<Response> {
    let wanted = match query_value(&req, "tag").filter(|t| !t.is_empty()) {
        Some(tag) if tag.contains(':') => format!("{name}@{tag}"),
        Some(tag) => format!("{name}:{tag}"),
        None => name.to_string(),
    };
    let engine = engine_holding(state, &wanted)?;
    let path = path_and_query(&req);
    let resp = forward(&engine, req, &path).await?;
    Ok(relay_then_refresh(&state.tasks, resp, engine))
}

/// Relays a streamed answer as it comes and refreshes the engine's images before ending it
/// (or once the client went away).
fn relay_then_refresh(tasks: &TaskTracker, resp: Response, engine: Arc<Engine>) -> Response {
    let (parts, mut body) = resp.into_parts();
    let (tx, rx) = mpsc::channel::<Result<Bytes, axum::Error>>(16);
    tasks.spawn(async move {
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        // Before the end of the stream, so the client's next request sees the new digest.
        let _ = engine.refresh_images().await;
        drop(tx);
    });
    Response::from_parts(parts, Body::from_stream(receiver_stream(rx)))
}

/// `POST /images/{name}/tag?repo=&tag=`: on every engine holding the image; 201.
async fn tag(
    state: &AppState,
    name: &str,
    version: Option<ApiVersion>,
    req: Request,
) -> ApiResult<Response> {
    let engines = state.cluster.engines_with_image(|i| names_image(i, name));
    if engines.is_empty() {
        return Err(ApiError::not_found(format!("No such image: {name}")));
    }
    let path = path_and_query(&req);
    let (ok, failures) = on_each(&engines, Method::POST, version, &path).await;
    refresh_images(&engines).await;
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, !ok.is_empty()));
    }
    Ok(StatusCode::CREATED.into_response())
}

async fn refresh_images(engines: &[Arc<Engine>]) {
    join_all(engines.iter().map(|e| async move {
        if let Err(err) = e.refresh_images().await {
            tracing::debug!(engine = %e.addr, error = %err, "Refreshing images failed");
        }
    }))
    .await;
}

/// `DELETE /images/{name}?force=&noprune=`: on every engine holding the image, at once; the
/// engines' answers concatenated.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let engines = state.cluster.engines_with_image(|i| names_image(i, &name));
    let path = path_and_query(&req);
    let (ok, failures) = on_each(&engines, Method::DELETE, version, &path).await;
    refresh_images(&engines).await;
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, !ok.is_empty()));
    }
    let mut items: Vec<Value> = Vec::new();
    for (_, bytes) in ok {
        if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&bytes) {
            items.extend(list);
        }
    }
    if items.is_empty() {
        return Err(ApiError::not_found(format!("No such image {name}")));
    }
    Ok(json_response(StatusCode::OK, &Value::Array(items)))
}

/// `GET /images/get?names=a&names=b` (`docker save`): on the first healthy engine holding every
/// named image.
pub async fn save_many(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let names: Vec<String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "names")
            .map(|(_, v)| v.into_owned())
            .collect();
    let holds_all = |e: &Engine| {
        let cache = e.cache();
        !names.is_empty()
            && names.iter().all(|n| {
                cache
                    .images
                    .iter()
                    .any(|i| image_matches(i, n, n.contains(':')))
            })
    };
    let engine = state
        .cluster
        .healthy_engines()
        .into_iter()
        .find(|e| holds_all(e))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Unable to find a healthy engine containing all images: [{}]",
                names.join(" ")
            ))
        })?;
    let path = path_and_query(&req);
    forward(&engine, req, &path).await
}

/// `GET /images/search` and `POST /auth`: answered by the engine the scheduler ranks first.
pub async fn on_any_engine(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let engine = state
        .cluster
        .any_engine()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let path = path_and_query(&req);
    forward(&engine, req, &path).await
}

/// `POST /commit?container=`: on the container's engine, with the container named by its ID
/// there; a new image appears, so that engine's images are refreshed.
pub async fn commit(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let name = query_value(&req, "container").unwrap_or_default();
    let c = resolve(&state, &name, |n| format!("No such container: {n}"))?;
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).map(
                |(k, v)| {
                    if k == "container" {
                        (k, std::borrow::Cow::Owned(c.container.id.clone()))
                    } else {
                        (k, v)
                    }
                },
            ),
        )
        .finish();
    let resp = forward(&c.engine, req, &format!("/commit?{query}")).await?;
    if resp.status() == StatusCode::CREATED {
        let _ = c.engine.refresh_images().await;
    }
    Ok(resp)
}

/// The reference a pull asks for: `fromImage` with `tag` (`@` for a digest), `latest` when
/// neither names one, so one reference is pulled and never every tag of a repository.
fn pull_reference(from_image: &str, tag: &str) -> String {
    if !tag.is_empty() {
        let sep = if tag.contains(':') { '@' } else { ':' };
        return format!("{from_image}{sep}{tag}");
    }
    match split_reference(from_image).1 {
        Some(_) => from_image.to_string(),
        None => format!("{from_image}:latest"),
    }
}

/// `POST /images/create`: a pull with `fromImage`, an import with `fromSrc`.
pub async fn create(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let engines = state.cluster.validated();
    if engines.is_empty() {
        return Err(ApiError::internal("No nodes available in the cluster"));
    }
    let from_image = q.get("fromImage").map(String::as_str).unwrap_or("");
    let from_src = q.get("fromSrc").map(String::as_str).unwrap_or("");
    if !from_image.is_empty() {
        let reference = pull_reference(from_image, q.get("tag").map(String::as_str).unwrap_or(""));
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("fromImage", &reference);
        if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
            query.append_pair("platform", p);
        }
        let path = format!("/images/create?{}", query.finish());
        return Ok(pull(&state.tasks, engines, version, req, reference, path));
    }
    if !from_src.is_empty() {
        return Ok(import(&state.tasks, engines, version, req, from_src == "-"));
    }
    Err(ApiError::bad_request(
        "either fromImage or fromSrc must be given",
    ))
}

/// Headers of the client's request that the engines need for a pull, import or load.
fn passed_headers(req: &Request) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in ["x-registry-auth", "content-type"] {
        if let Some(v) = req.headers().get(name) {
            headers.insert(name, v.clone());
        }
    }
    headers
}

/// The request body duplicated for each engine when `with_body`, else empty bodies.
fn bodies(tasks: &TaskTracker, req: Request, count: usize, with_body: bool) -> Vec<TransportBody> {
    if with_body {
        tee_body(tasks, req.into_body(), count)
    } else {
        (0..count).map(|_| empty()).collect()
    }
}

/// A pull on every validated engine at once, with per-node progress (SPEC §5.9).
fn pull(
    tasks: &TaskTracker,
    engines: Vec<Arc<Engine>>,
    version: Option<ApiVersion>,
    req: Request,
    reference: String,
    path: String,
) -> Response {
    let headers = passed_headers(&req);
    let (tx, resp) = json_stream();
    tasks.spawn(async move {
        let prefix = format!("Pulling {reference}...");
        let jobs = engines.iter().map(|engine| {
            let (tx, prefix, headers, path) = (&tx, &prefix, &headers, &path);
            async move {
                let node = engine.name();
                let outcome =
                    call_and_relay(engine, tx, Some(prefix), version, path, headers, empty()).await;
                match &outcome {
                    EngineOutcome::Done => {
                        send(tx, json!({"status": prefix, "id": node})).await;
                    }
                    EngineOutcome::Failed(err) => {
                        let status = format!("{prefix} : {err}");
                        send(tx, json!({"status": status, "id": node})).await;
                    }
                    EngineOutcome::ClientGone => {}
                }
                outcome
            }
        });
        let outcomes = join_all(jobs).await;
        let errors: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                EngineOutcome::Failed(e) => Some(e),
                _ => None,
            })
            .collect();
        let any_done = outcomes.iter().any(|o| matches!(o, EngineOutcome::Done));
        let only_os = errors.iter().all(|e| e.contains("image operating system"));
        if let Some(last) = errors.last() {
            if !any_done || !only_os {
                send(&tx, error_object(last)).await;
            }
        }
    });
    resp
}

/// An import (`fromSrc`) on every validated engine at once, the body duplicated to each.
fn import(
    tasks: &TaskTracker,
    engines: Vec<Arc<Engine>>,
    version: Option<ApiVersion>,
    req: Request,
    with_body: bool,
) -> Response {
    let headers = passed_headers(&req);
    let path = path_and_query(&req);
    let copies = bodies(tasks, req, engines.len(), with_body);
    let calls = engines.into_iter().zip(copies).collect();
    fanned_stream(tasks, calls, version, headers, path, "Import", None)
}

/// `POST /images/load`: on every validated engine at once, the body duplicated to each.
pub async fn load(
    State(state): State<AppState>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let engines = state.cluster.validated();
    if engines.is_empty() {
        return Err(ApiError::internal("No nodes available in the cluster"));
    }
    let headers = passed_headers(&req);
    let path = path_and_query(&req);
    let copies = bodies(&state.tasks, req, engines.len(), true);
    Ok(fanned_stream(
        &state.tasks,
        engines.into_iter().zip(copies).collect(),
        version,
        headers,
        path,
        "Load",
        Some("Loading Image..."),
    ))
}

/// The image routes, `/commit` and `/auth`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/images/json", get(list))
        .route("/images/viz", get(viz))
        .route("/images/search", get(on_any_engine))
        .route("/images/get", get(save_many))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route(
            "/images/{*rest}",
            get(get_route).post(post_route).delete(remove),
        )
        .route("/commit", post(commit))
        .route("/auth", post(on_any_engine))
        .method_not_allowed_fallback(no_such_route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_globs_match_familiar_names() {
        let img = Image::from_raw(
            json!({"Id": "x", "RepoTags": ["busybox:latest", "me/app:1"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(reference_matches(&img, "busy*"));
        assert!(reference_matches(&img, "busybox"));
        assert!(reference_matches(&img, "busybox:latest"));
        assert!(!reference_matches(&img, "busybox:2"));
        assert!(reference_matches(&img, "me/*"));
        assert!(reference_matches(&img, "*"));
        assert!(!reference_matches(&img, "other/*"));
    }
}
