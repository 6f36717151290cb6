//! Image routes: the merged, de-duplicated list (from the cache, SPEC §5.9) and the routes for
//! one image, forwarded to an engine that holds it.
use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use http::StatusCode;
use regex::Regex;
use serde_json::{Map, Value};

use super::containers::{query_bool, split_name_action};
use super::error::{ApiError, ApiResult};
use super::filters::{label_matches, Filters};
use super::proxy::forward;
use super::server::AppState;
use super::system::json_response;
use crate::cluster::cache::Image;
use crate::cluster::names::{image_matches, split_reference};

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

/// `GET /images/{name}/json` and `/images/{name}/history`: forwarded to an engine holding it.
pub async fn get_route(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (name, action) = split_name_action(&rest, &["json", "history"]);
    let Some(action) = action else {
        return Err(ApiError::no_route());
    };
    let maps = state.cluster.engines();
    let engine = maps
        .validated
        .values()
        .filter(|e| e.is_healthy())
        .find(|e| {
            e.cache()
                .images
                .iter()
                .any(|i| image_matches(i, name, true))
        })
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    forward(&engine, req, &format!("/images/{name}/{action}")).await
}

/// The image routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/images/json", get(list))
        .route("/images/viz", get(viz))
        .route("/images/{*rest}", get(get_route))
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
