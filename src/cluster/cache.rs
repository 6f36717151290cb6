//! What the manager knows about one engine's objects between refreshes: containers, images,
//! networks and volumes. Raw JSON is kept for everything re-emitted to clients; typed fields only
//! for what the manager decides on. Readers load an immutable snapshot (`Arc<EngineCache>`); one
//! writer at a time publishes a new one, so reads never wait on the events monitor.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

/// An immutable snapshot of one engine's objects.
#[derive(Debug, Default, Clone)]
pub struct EngineCache {
    /// Containers by full ID.
    pub containers: Arc<HashMap<String, Arc<Container>>>,
    /// `GET /images/json?all=1` entries.
    pub images: Arc<Vec<Arc<Image>>>,
    /// `GET /networks` entries, by network ID.
    pub networks: Arc<BTreeMap<String, Arc<Value>>>,
    /// `GET /volumes` entries, by volume name.
    pub volumes: Arc<BTreeMap<String, Arc<Value>>>,
}

/// List-entry members that `docker ps` rewrites on every request.
pub const DYNAMIC_MEMBERS: [&str; 4] = ["Names", "Status", "State", "Ports"];

/// One container: the engine's list entry (raw) plus the inspect fields the manager uses.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// Creation time in nanoseconds (parsed once; `docker ps` sorts by it).
    created_ns: i128,
    /// `State.StartedAt` and `State.FinishedAt` in seconds, parsed once (`None` when unset).
    pub started_secs: Option<i64>,
    pub finished_secs: Option<i64>,
    /// The list entry's members that `docker ps` passes through unchanged, serialised once
    /// (`"Id":…,"Image":…`, no braces): lists of tens of thousands are then mostly copies.
    pub static_json: Box<str>,
    /// The engine's `GET /containers/json` entry, untouched.
    pub summary: Map<String, Value>,
    /// Typed subset of `GET /containers/{id}/json`.
    pub details: ContainerDetails,
}

impl Container {
    /// Builds a record from a list entry and an inspect body.
    pub fn new(summary: Map<String, Value>, details: ContainerDetails) -> Container {
        let id = summary
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or(&details.id)
            .to_string();
        let mut c = Container {
            id,
            created_ns: 0,
            started_secs: None,
            finished_secs: None,
            static_json: Box::from(""),
            summary,
            details,
        };
        c.static_json = c.render_static();
        c.created_ns = c.parse_created();
        let secs = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.timestamp())
                .filter(|s| *s > 0)
        };
        c.started_secs = secs(&c.details.state.started_at);
        c.finished_secs = secs(&c.details.state.finished_at);
        c
    }

    /// Members of the list entry other than the ones rewritten per request.
    fn render_static(&self) -> Box<str> {
        let mut out = String::new();
        for (k, v) in &self.summary {
            if DYNAMIC_MEMBERS.contains(&k.as_str()) {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
            out.push(':');
            out.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        out.into_boxed_str()
    }

    /// Names as the engine lists them (`/web`, `/other/alias`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.summary
            .get("Names")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The container's own name without the leading `/`.
    pub fn name(&self) -> &str {
        let own = self.details.name.trim_start_matches('/');
        if !own.is_empty() {
            return own;
        }
        self.names()
            .find(|n| n.matches('/').count() == 1)
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or("")
    }

    /// Labels from the list entry (same as `Config.Labels`).
    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.summary.get("Labels").and_then(Value::as_object)
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key)?.as_str()
    }

    /// The `com.docker.swarm.id` label, when set.
    pub fn swarm_id(&self) -> Option<&str> {
        self.label("com.docker.swarm.id").filter(|s| !s.is_empty())
    }

    /// `running`, `paused`, `exited`, … (from inspect; the list entry as a fallback).
    pub fn state(&self) -> &str {
        if !self.details.state.status.is_empty() {
            return &self.details.state.status;
        }
        self.summary
            .get("State")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The image as the container was created with it.
    pub fn image(&self) -> &str {
        self.summary
            .get("Image")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Creation time in nanoseconds since the epoch (ordering key of `docker ps`).
    pub fn created_nanos(&self) -> i128 {
        self.created_ns
    }

    fn parse_created(&self) -> i128 {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&self.details.created) {
            return i128::from(t.timestamp()) * 1_000_000_000
                + i128::from(t.timestamp_subsec_nanos());
        }
        let secs = self
            .summary
            .get("Created")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        i128::from(secs) * 1_000_000_000
    }
}

/// The inspect fields the manager reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    pub created: String,
    pub state: ContainerState,
    pub host_config: HostConfig,
    pub config: ContainerConfig,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub network_settings: NetworkSettings,
    /// The whole inspect body, kept only for containers with a reschedule policy.
    #[serde(skip)]
    pub full: Option<Arc<Value>>,
}

/// `State` of an inspected container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub dead: bool,
    pub exit_code: i64,
    pub started_at: String,
    pub finished_at: String,
    pub health: Option<HealthState>,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthState {
    pub status: String,
}

/// One port binding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// `HostConfig` fields the scheduler reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    pub memory: i64,
    pub cpu_shares: i64,
    pub network_mode: String,
    pub port_bindings: Option<HashMap<String, Option<Vec<PortBinding>>>>,
    pub links: Option<Vec<String>>,
    pub volumes_from: Option<Vec<String>>,
}

/// `Config` fields the manager reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub image: String,
    pub exposed_ports: Option<HashMap<String, Value>>,
}

/// `NetworkSettings` fields the manager reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub ports: Option<HashMap<String, Option<Vec<PortBinding>>>>,
}

/// One image list entry, raw, with its identifying fields parsed.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub raw: Map<String, Value>,
}

impl Image {
    /// Parses a `GET /images/json` entry.
    pub fn from_raw(raw: Map<String, Value>) -> Image {
        let strings = |key: &str| -> Vec<String> {
            raw.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Image {
            id: raw
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            repo_tags: strings("RepoTags")
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            repo_digests: strings("RepoDigests")
                .into_iter()
                .filter(|t| t != "<none>@<none>")
                .collect(),
            created: raw.get("Created").and_then(Value::as_i64).unwrap_or(0),
            raw,
        }
    }

    /// Whether the image has at least one tag.
    pub fn is_tagged(&self) -> bool {
        !self.repo_tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_record_reads_names_labels_and_state() {
        let summary = json!({"Id": "abc", "Names": ["/other/alias", "/web"], "Image": "busybox",
            "State": "running", "Labels": {"com.docker.swarm.id": "s1"}, "Created": 5});
        let details: ContainerDetails = serde_json::from_value(json!({"Id": "abc", "Name": "/web",
            "Created": "2020-01-01T00:00:01.5Z", "State": {"Status": "paused", "Paused": true},
            "HostConfig": {"Memory": 10, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}}))
        .unwrap();
        let c = Container::new(summary.as_object().unwrap().clone(), details);
        assert_eq!(c.name(), "web");
        assert_eq!(c.swarm_id(), Some("s1"));
        assert_eq!(c.state(), "paused");
        assert_eq!(c.details.host_config.memory, 10);
        assert_eq!(c.created_nanos(), 1_577_836_801_500_000_000);
    }

    #[test]
    fn untagged_images_have_no_tags() {
        let img = Image::from_raw(
            json!({"Id": "sha256:1", "RepoTags": ["<none>:<none>"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(!img.is_tagged());
    }
}
