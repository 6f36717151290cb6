//! Cluster-wide prune and disk usage: `POST /containers/prune`, `/images/prune`,
//! `/networks/prune`, `/volumes/prune`, `/build/prune` and `GET /system/df`, run on every healthy engine at once
//! and merged into the one answer a single daemon would give. The classic manager lacked these;
//! current docker CLIs use them (`docker system prune`, `docker system df`).
//!
//! Prune answers concatenate the engines' deleted lists and add up `SpaceReclaimed`. Disk usage
//! lists each image once (as `docker images` does, with its container count summed over the
//! nodes), names containers and local volumes `node/name` (as `docker ps` and `docker volume ls`
//! do), and adds up the layer sizes of every node.
use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::error::{json_response, no_such_route, ApiError, ApiResult};
use super::fanout::on_each;
use super::request::path_and_query;
use super::state::{AppState, RequestedVersion};
use crate::cluster::Engine;

/// What one prune route removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pruned {
    Containers,
    Images,
    Networks,
    Volumes,
    BuildCache,
}

impl Pruned {
    /// The key of the deleted list in the engine's answer.
    fn deleted_key(self) -> &'static str {
        match self {
            Pruned::Containers => "ContainersDeleted",
            Pruned::Images => "ImagesDeleted",
            Pruned::Networks => "NetworksDeleted",
            Pruned::Volumes => "VolumesDeleted",
            Pruned::BuildCache => "CachesDeleted",
        }
    }

    /// Networks free no space, so their answer has no `SpaceReclaimed`.
    fn reclaims_space(self) -> bool {
        self != Pruned::Networks
    }

    /// Re-reads what the prune changed, so the next list shows it.
    async fn refresh(self, engine: &Engine) {
        let result = match self {
            Pruned::Containers => engine.refresh_containers().await,
            Pruned::Images => engine.refresh_images().await,
            Pruned::Networks => engine.refresh_networks().await,
            Pruned::Volumes => engine.refresh_volumes().await,
            // The build cache is not part of the manager's cache.
            Pruned::BuildCache => Ok(()),
        };
        if let Err(err) = result {
            tracing::debug!(engine = %engine.addr, error = %err, "Refresh after prune failed");
        }
    }
}

/// Merges prune answers: deleted lists concatenated (`null` when empty, as an engine says),
/// reclaimed space added up.
fn merge_prune(kind: Pruned, answers: &[Bytes]) -> Value {
    let mut deleted: Vec<Value> = Vec::new();
    let mut reclaimed: u64 = 0;
    for bytes in answers {
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        if let Some(list) = v.get(kind.deleted_key()).and_then(Value::as_array) {
            deleted.extend(list.iter().cloned());
        }
        reclaimed =
            reclaimed.saturating_add(v.get("SpaceReclaimed").and_then(Value::as_u64).unwrap_or(0));
    }
    let mut out = Map::new();
    out.insert(
        kind.deleted_key().into(),
        if deleted.is_empty() {
            Value::Null
        } else {
            Value::Array(deleted)
        },
    );
    if kind.reclaims_space() {
        out.insert("SpaceReclaimed".into(), json!(reclaimed));
    }
    Value::Object(out)
}

async fn prune(state: &AppState, req: Request, kind: Pruned) -> ApiResult<Response> {
    let engines = state.cluster.healthy_engines();
    let RequestedVersion(version) = RequestedVersion::of(req.extensions());
    // Filters go to every engine unchanged.
    let path = path_and_query(&req);
    let (ok, failures) = on_each(&engines, Method::POST, version, &path).await;
    join_all(engines.iter().map(|e| kind.refresh(e))).await;
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, !ok.is_empty()));
    }
    let answers: Vec<Bytes> = ok.into_iter().map(|(_, b)| b).collect();
    Ok(json_response(StatusCode::OK, &merge_prune(kind, &answers)))
}

/// `POST /containers/prune`.
pub async fn containers(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    prune(&state, req, Pruned::Containers).await
}

/// `POST /images/prune`.
pub async fn images(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    prune(&state, req, Pruned::Images).await
}

/// `POST /networks/prune`.
pub async fn networks(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    prune(&state, req, Pruned::Networks).await
}

/// `POST /volumes/prune`.
pub async fn volumes(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    prune(&state, req, Pruned::Volumes).await
}

/// `POST /build/prune` (part of `docker system prune`).
pub async fn build_cache(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    prune(&state, req, Pruned::BuildCache).await
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Merges `GET /system/df` answers of several nodes (see the module docs).
fn merge_df(answers: &[(String, Value)]) -> Value {
    let mut layers: i64 = 0;
    let mut builder_size: Option<i64> = None;
    let mut images: BTreeMap<String, Value> = BTreeMap::new();
    let mut image_order: Vec<String> = Vec::new();
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    let mut cache = Vec::new();
    for (node, v) in answers {
        layers = layers.saturating_add(v.get("LayersSize").and_then(Value::as_i64).unwrap_or(0));
        if let Some(b) = v.get("BuilderSize").and_then(Value::as_i64) {
            builder_size = Some(builder_size.unwrap_or(0).saturating_add(b));
        }
        for img in array(v, "Images") {
            let id = img
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match images.get_mut(&id) {
                Some(seen) => {
                    let count = |x: &Value| x.get("Containers").and_then(Value::as_i64);
                    if let (Some(a), Some(b)) = (count(seen), count(img)) {
                        if a >= 0 && b >= 0 {
                            seen["Containers"] = json!(a.saturating_add(b));
                        }
                    }
                }
                None => {
                    image_order.push(id.clone());
                    images.insert(id, img.clone());
                }
            }
        }
        for c in array(v, "Containers") {
            let mut c = c.clone();
            if let Some(names) = c.get_mut("Names").and_then(Value::as_array_mut) {
                for n in names.iter_mut() {
                    if let Some(s) = n.as_str() {
                        *n = Value::String(format!("/{node}{s}"));
                    }
                }
            }
            containers.push(c);
        }
        for vol in array(v, "Volumes") {
            let mut vol = vol.clone();
            let local = vol.get("Driver").and_then(Value::as_str) == Some("local");
            if let (true, Some(name)) = (local, vol.get("Name").and_then(Value::as_str)) {
                vol["Name"] = Value::String(format!("{node}/{name}"));
            }
            volumes.push(vol);
        }
        cache.extend(array(v, "BuildCache").cloned());
    }
    let images: Vec<Value> = image_order
        .into_iter()
        .filter_map(|id| images.remove(&id))
        .collect();
    let mut out = json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": cache,
    });
    if let Some(b) = builder_size {
        out["BuilderSize"] = json!(b);
    }
    out
}

/// `GET /system/df`.
pub async fn disk_usage(
    State(state): State<AppState>,
    RequestedVersion(version): RequestedVersion,
    req: Request,
) -> ApiResult<Response> {
    let engines = state.cluster.healthy_engines();
    let path = path_and_query(&req);
    let (ok, failures) = on_each(&engines, Method::GET, version, &path).await;
    if !failures.is_empty() {
        return Err(ApiError::from_failures(&failures, !ok.is_empty()));
    }
    let answers: Vec<(String, Value)> = ok
        .into_iter()
        .filter_map(|(e, bytes)| Some((e.name(), serde_json::from_slice(&bytes).ok()?)))
        .collect();
    Ok(json_response(StatusCode::OK, &merge_df(&answers)))
}

/// The prune routes and `/system/df`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/containers/prune", post(containers))
        .route("/images/prune", post(images))
        .route("/networks/prune", post(networks))
        .route("/volumes/prune", post(volumes))
        .route("/build/prune", post(build_cache))
        .route("/system/df", get(disk_usage))
        .method_not_allowed_fallback(no_such_route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_answers_add_up() {
        assert_eq!(
            merge_prune(Pruned::Volumes, &[]),
            json!({"VolumesDeleted": null, "SpaceReclaimed": 0})
        );
        let answers = [
            Bytes::from_static(br#"{"ContainersDeleted":["a"],"SpaceReclaimed":5}"#),
            Bytes::from_static(br#"{"ContainersDeleted":null,"SpaceReclaimed":0}"#),
            Bytes::from_static(br#"{"ContainersDeleted":["b","c"],"SpaceReclaimed":7}"#),
        ];
        assert_eq!(
            merge_prune(Pruned::Containers, &answers),
            json!({"ContainersDeleted": ["a", "b", "c"], "SpaceReclaimed": 12})
        );
        let nets = [Bytes::from_static(br#"{"NetworksDeleted":["n"]}"#)];
        assert_eq!(
            merge_prune(Pruned::Networks, &nets),
            json!({"NetworksDeleted": ["n"]})
        );
    }

    #[test]
    fn disk_usage_lists_images_once_and_names_by_node() {
        let node = |n: &str, containers: i64| {
            (
                n.to_string(),
                json!({
                    "LayersSize": 100,
                    "Images": [{"Id": "sha256:a", "Containers": containers, "Size": 10}],
                    "Containers": [{"Id": n, "Names": ["/web"]}],
                    "Volumes": [{"Name": "v", "Driver": "local"}, {"Name": "g", "Driver": "nfs"}],
                    "BuildCache": [],
                }),
            )
        };
        let merged = merge_df(&[node("node-0", 1), node("node-1", 2)]);
        assert_eq!(merged["LayersSize"], 200);
        assert_eq!(merged["Images"].as_array().unwrap().len(), 1);
        assert_eq!(merged["Images"][0]["Containers"], 3);
        assert_eq!(merged["Containers"][1]["Names"][0], "/node-1/web");
        assert_eq!(merged["Volumes"][0]["Name"], "node-0/v");
        assert_eq!(merged["Volumes"][1]["Name"], "g");
        assert_eq!(merged["Volumes"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn disk_usage_sums_saturate_instead_of_wrapping() {
        let node = |n: &str| {
            (
                n.to_string(),
                json!({
                    "LayersSize": i64::MAX,
                    "BuilderSize": i64::MAX,
                    "Images": [{"Id": "sha256:a", "Containers": i64::MAX}],
                }),
            )
        };
        let merged = merge_df(&[node("node-0"), node("node-1")]);
        assert_eq!(merged["LayersSize"], i64::MAX);
        assert_eq!(merged["BuilderSize"], i64::MAX);
        assert_eq!(merged["Images"][0]["Containers"], i64::MAX);
    }
}
