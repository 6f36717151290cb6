//! Rescheduling (SPEC §4.7): when an engine fails (turns Unhealthy or leaves discovery), every
//! container on it that asked for `reschedule:on-node-failure` is created again, with the same
//! configuration, name and Swarm ID, on a node the scheduler picks, and started if it was
//! running. When the failed engine comes back (`engine_reconnect`), its stale copies (same Swarm ID as a container on
//! another engine) are removed. Runs only while this manager is the primary.
use std::sync::Arc;

use http::{Method, Request};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::Container;
use super::cluster::Cluster;
use super::create::CreateRequest;
use super::engine::Engine;
use super::transport::empty;

/// Whether this manager should act (the primary, or a manager without replication).
pub type IsPrimary = Arc<dyn Fn() -> bool + Send + Sync>;

/// Starts the watchdog; it ends with `shutdown`. The returned tracker holds the watchdog and
/// every rescheduling it started: once it is done waiting, all of them have ended.
pub fn start(
    cluster: Arc<Cluster>,
    is_primary: IsPrimary,
    shutdown: CancellationToken,
) -> TaskTracker {
    let (_, mut rx) = cluster.bus().subscribe(None, "watchdog");
    let tasks = TaskTracker::new();
    let work = tasks.clone();
    tasks.spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = rx.recv() => ev,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(super::events::Ended::FellBehind) => {
                    rx = cluster.bus().subscribe(None, "watchdog").1;
                    continue;
                }
                Err(super::events::Ended::Closed) => return,
            };
            if ev.kind() != "swarm" || !is_primary() {
                continue;
            }
            let Some(node_id) = ev.attribute("node.id") else {
                continue;
            };
            let cluster = cluster.clone();
            match ev.action() {
                "engine_disconnect" => {
                    work.spawn(async move { reschedule_from(&cluster, &node_id).await });
                }
                // A returning engine may still hold containers rescheduled elsewhere meanwhile.
                // (A newly validated engine was never failed over, so nothing was copied off it.)
                "engine_reconnect" => {
                    work.spawn(async move { remove_duplicates(&cluster, &node_id).await });
                }
                _ => {}
            }
        }
    });
    // Closed so that waiting ends once the tasks are gone; the loop may still add to it.
    tasks.close();
    tasks
}

/// The create body that reproduces a container from its inspect body.
fn create_body(full: &Value) -> Map<String, Value> {
    let mut body = full
        .get("Config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(host) = full.get("HostConfig") {
        body.insert("HostConfig".into(), host.clone());
    }
    body
}

async fn reschedule_from(cluster: &Cluster, node_id: &str) {
    let Some(engine) = cluster
        .engines()
        .validated
        .get(node_id)
        .cloned()
        .or_else(|| cluster.engines().all().find(|e| e.id() == node_id).cloned())
        .or_else(|| cluster.take_departed(node_id))
    else {
        return;
    };
    let candidates: Vec<Arc<Container>> = engine
        .cache()
        .containers
        .values()
        .filter(|c| c.details.full().is_some())
        .cloned()
        .collect();
    for old in candidates {
        let name = old.name().to_string();
        if name.is_empty() {
            tracing::error!(container = %old.id, "Cannot reschedule a container without a name");
            continue;
        }
        let full = old.details.full().cloned().expect("filtered above");
        // Free the name and the Swarm ID before creating the replacement.
        engine.forget_container(&old.id);
        let created = cluster
            .create_container(CreateRequest {
                name: Some(name.clone()),
                body: create_body(&full),
                registry_auth: None,
                version: None,
            })
            .await;
        match created {
            Ok(new) => {
                tracing::info!(old = %old.id, from = %engine.name(), to = %new.engine.name(), new = %new.id,
                    "Rescheduled container {} from {} to {} as {}", old.id, engine.name(), new.engine.name(), new.id);
                if old.details.state.running {
                    tracing::info!(
                        "Container {} was running, starting container {}",
                        old.id,
                        new.id
                    );
                    if let Err(err) = start_container(&new.engine, &new.id).await {
                        tracing::error!(container = %new.id, error = %err, "Failed to start rescheduled container {}", new.id);
                    }
                }
            }
            Err(err) => {
                tracing::error!(container = %old.id, error = %err, "Failed to reschedule container {}: {err}", old.id);
                engine.restore_container(old);
            }
        }
    }
}

async fn start_container(engine: &Engine, id: &str) -> Result<(), String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(engine.uri(None, &format!("/containers/{id}/start")))
        .body(empty())
        .map_err(|e| e.to_string())?;
    let (status, body) = engine.call(req).await.map_err(|e| e.to_string())?;
    if status.is_success() || status == http::StatusCode::NOT_MODIFIED {
        let _ = engine.refresh_container(id).await;
        Ok(())
    } else {
        Err(super::engine::error_message(&body))
    }
}

/// Removes, from a returning engine, containers whose Swarm ID now lives on another engine.
async fn remove_duplicates(cluster: &Cluster, node_id: &str) {
    let maps = cluster.engines();
    let Some(engine) = maps.validated.get(node_id).cloned() else {
        return;
    };
    let _ = engine.refresh_containers().await;
    let here: std::collections::HashSet<String> = engine
        .cache()
        .containers
        .values()
        .filter_map(|c| c.swarm_id().map(str::to_string))
        .collect();
    if here.is_empty() {
        return;
    }
    let elsewhere: std::collections::HashSet<String> = maps
        .validated
        .values()
        .filter(|e| e.id() != node_id)
        .flat_map(|e| {
            e.cache()
                .containers
                .values()
                .filter_map(|c| {
                    c.swarm_id()
                        .filter(|s| here.contains(*s))
                        .map(str::to_string)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let stale: Vec<String> = engine
        .cache()
        .containers
        .values()
        .filter(|c| c.swarm_id().is_some_and(|s| elsewhere.contains(s)))
        .map(|c| c.id.clone())
        .collect();
    for id in stale {
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(engine.uri(None, &format!("/containers/{id}?force=1&v=1")))
            .body(empty());
        if let Ok(req) = req {
            match engine.call(req).await {
                Ok((status, _)) if status.is_success() => {
                    tracing::info!(container = %id, engine = %engine.name(), "Removed a duplicate of a rescheduled container");
                }
                Ok((status, body)) => {
                    tracing::warn!(container = %id, %status, error = %super::engine::error_message(&body), "Removing a duplicate failed");
                }
                Err(err) => {
                    tracing::warn!(container = %id, error = %err, "Removing a duplicate failed")
                }
            }
            let _ = engine.refresh_container(&id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_create_body_is_the_config_plus_the_host_config() {
        let full = json!({"Id": "x", "Config": {"Image": "busybox", "Cmd": ["sleep", "1"],
            "Labels": {"com.docker.swarm.id": "s"}}, "HostConfig": {"Memory": 5}, "State": {}});
        let body = create_body(&full);
        assert_eq!(body["Image"], "busybox");
        assert_eq!(body["HostConfig"]["Memory"], 5);
        assert_eq!(body["Labels"]["com.docker.swarm.id"], "s");
        assert!(body.get("State").is_none());
    }
}
