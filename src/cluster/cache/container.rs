//! One cached container: the record built from a list entry and an inspect body, and the
//! reading of that inspect body. It owns what a container record holds and how inspect JSON
//! becomes typed fields; it must not fetch from engines or keep anything but the one record.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::Value;

use super::summary::{Labels, Mount, NetworkRef, Port, Summary};

/// One container: the engine's list entry (typed where the manager reads it, pre-serialised
/// elsewhere) plus the inspect fields the manager uses.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// Creation time in nanoseconds (parsed once; `docker ps` sorts by it).
    created_ns: i64,
    /// Names as the engine lists them (`/web`, `/other/alias`).
    names: Box<[Box<str>]>,
    image: Box<str>,
    image_id: Box<str>,
    /// [`Container::state`], read once.
    state_kind: StateKind,
    /// `State` and `Status` of the list entry.
    list_state: Box<str>,
    list_status: Box<str>,
    pub ports: Box<[Port]>,
    labels: Labels,
    pub mounts: Box<[Mount]>,
    pub networks: Box<[NetworkRef]>,
    /// The list entry's members that `docker ps` passes through unchanged, serialised once
    /// (`"Id":…,"Image":…`, no braces): lists of tens of thousands are then mostly copies.
    pub static_json: Box<str>,
    /// A hash of the engine's list entry as it was read: a refresh that reads the same bytes
    /// keeps this record as it is.
    pub entry_hash: u64,
    /// Typed subset of `GET /containers/{id}/json`.
    pub details: ContainerDetails,
    /// This record's `docker ps` entry as far as it does not vary per request, rendered by the
    /// first list that shows it and reused by every later one.
    pub list_render: ListRenderMemo,
}

/// A container state Docker knows, so that a list of tens of thousands tells them apart
/// without comparing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Created,
    Restarting,
    Running,
    Removing,
    Paused,
    Exited,
    Dead,
    /// A state Docker does not define (an engine newer than the manager, or none at all).
    Other,
}

impl StateKind {
    /// The kind of the state named `state`.
    pub fn of(state: &str) -> StateKind {
        match state {
            "created" => StateKind::Created,
            "restarting" => StateKind::Restarting,
            "running" => StateKind::Running,
            "removing" => StateKind::Removing,
            "paused" => StateKind::Paused,
            "exited" => StateKind::Exited,
            "dead" => StateKind::Dead,
            _ => StateKind::Other,
        }
    }
}

/// The parts of a `docker ps` entry that stay the same from one request to the next, for the
/// node they were rendered for. The list path owns the layout; this record only keeps it.
#[derive(Debug)]
pub struct ListRender {
    /// A hash of the node name and address the parts were rendered with.
    pub node_key: u64,
    /// The parts, one after the other; `split` is where the second starts.
    pub bytes: Box<[u8]>,
    pub split: usize,
}

/// A [`ListRender`], set once. A copy starts empty: copies are made to be changed, and what
/// was rendered from the original would not follow.
#[derive(Debug, Default)]
pub struct ListRenderMemo(OnceLock<ListRender>);

impl Clone for ListRenderMemo {
    fn clone(&self) -> Self {
        ListRenderMemo::default()
    }
}

impl ListRenderMemo {
    /// The rendered parts, rendered by `render` the first time.
    pub fn get_or_init(&self, render: impl FnOnce() -> ListRender) -> &ListRender {
        self.0.get_or_init(render)
    }

    /// The rendered parts, if rendered yet.
    pub fn get(&self) -> Option<&ListRender> {
        self.0.get()
    }
}

/// The hash [`Container::entry_hash`] is compared with.
pub fn entry_hash(raw: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(raw);
    h.finish()
}

impl Container {
    /// Builds a record from a list entry and an inspect body.
    pub fn new(summary: Summary, details: ContainerDetails, entry_hash: u64) -> Container {
        let id = summary.id;
        let created_ns = details
            .created_ns
            .unwrap_or_else(|| summary.created.saturating_mul(1_000_000_000));
        let mut c = Container {
            id,
            created_ns,
            state_kind: StateKind::Other,
            names: summary.names.into_boxed_slice(),
            image: summary.image,
            image_id: summary.image_id,
            list_state: summary.state,
            list_status: summary.status,
            ports: summary.ports.into_boxed_slice(),
            labels: summary.labels,
            mounts: summary.mounts.into_boxed_slice(),
            networks: summary.networks.into_boxed_slice(),
            static_json: summary.static_json.into_boxed_str(),
            entry_hash,
            details,
            list_render: ListRenderMemo::default(),
        };
        c.state_kind = StateKind::of(c.state());
        c
    }

    /// Names as the engine lists them (`/web`, `/other/alias`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
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
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
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
        &self.list_state
    }

    /// The kind of [`Container::state`].
    pub fn state_kind(&self) -> StateKind {
        self.state_kind
    }

    /// `State` of the engine's list entry.
    pub fn list_state(&self) -> &str {
        &self.list_state
    }

    /// `Status` of the engine's list entry (`Up 5 minutes`).
    pub fn list_status(&self) -> &str {
        &self.list_status
    }

    /// The image as the container was created with it.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The image ID of the list entry (`sha256:…`).
    pub fn image_id(&self) -> &str {
        &self.image_id
    }

    /// Creation time in nanoseconds since the epoch (ordering key of `docker ps`).
    pub fn created_nanos(&self) -> i128 {
        i128::from(self.created_ns)
    }

    /// [`Container::created_nanos`] as stored (what a list sorts on without widening).
    pub fn created_ns(&self) -> i64 {
        self.created_ns
    }
}

/// What the manager keeps of an inspect body (`GET /containers/{id}/json`). Tens of thousands
/// are cached, so members most containers leave empty sit behind one pointer.
#[derive(Debug, Clone, Default)]
pub struct ContainerDetails {
    /// `Name` (`/web`).
    pub name: Box<str>,
    /// `Created` in nanoseconds since the epoch, when readable.
    pub created_ns: Option<i64>,
    /// `State.StartedAt` and `State.FinishedAt` in seconds (`None` when unset).
    pub started_secs: Option<i64>,
    pub finished_secs: Option<i64>,
    pub state: ContainerState,
    /// `HostConfig.Memory` in bytes.
    pub memory: i64,
    /// `HostConfig.CpuShares`.
    pub cpu_shares: i64,
    /// `HostConfig.NetworkMode` (`default`, `host`, `container:<x>`, a network name).
    pub network_mode: Box<str>,
    rare: Option<Box<RareDetails>>,
}

/// `State` of an inspected container.
#[derive(Debug, Clone, Default)]
pub struct ContainerState {
    /// `running`, `paused`, `exited`, …
    pub status: Box<str>,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub dead: bool,
    pub exit_code: i64,
}

/// Inspect members that most containers leave empty.
#[derive(Debug, Clone, Default)]
struct RareDetails {
    health: Option<Box<str>>,
    port_bindings: Vec<BoundPort>,
    exposed_ports: Vec<Box<str>>,
    exec_ids: Vec<Box<str>>,
    full: Option<Arc<Value>>,
}

/// One host binding of a container port, from `HostConfig.PortBindings` or
/// `NetworkSettings.Ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundPort {
    /// `80/tcp`.
    pub port: Box<str>,
    pub host_ip: Box<str>,
    pub host_port: Box<str>,
}

impl ContainerDetails {
    /// Reads an inspect body. The whole body is kept only for a container that asks to be
    /// rescheduled on node failure: once its engine is dead, nobody can be asked for it.
    pub fn from_inspect(raw: &[u8]) -> serde_json::Result<ContainerDetails> {
        let body: InspectBody = serde_json::from_slice(raw)?;
        let mut details = body.into_details();
        if memchr::memmem::find(raw, b"reschedule-policies").is_some() {
            let full: Value = serde_json::from_slice(raw)?;
            let wants_rescheduling = full
                .pointer("/Config/Labels/com.docker.swarm.reschedule-policies")
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains("on-node-failure"));
            if wants_rescheduling {
                details.rare_mut().full = Some(Arc::new(full));
            }
        }
        Ok(details)
    }

    /// `State.Health.Status`, when the container has a health check.
    pub fn health(&self) -> Option<&str> {
        self.rare.as_ref()?.health.as_deref()
    }

    /// Host bindings from `HostConfig.PortBindings` followed by those of `NetworkSettings.Ports`.
    pub fn port_bindings(&self) -> &[BoundPort] {
        self.rare
            .as_ref()
            .map(|r| r.port_bindings.as_slice())
            .unwrap_or_default()
    }

    /// Keys of `Config.ExposedPorts` (`80/tcp`).
    pub fn exposed_ports(&self) -> impl Iterator<Item = &str> {
        self.rare
            .as_ref()
            .map(|r| r.exposed_ports.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|p| &**p)
    }

    /// Whether `ExecIDs` (or an exec created through the manager since) holds `exec_id`.
    pub fn has_exec(&self, exec_id: &str) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| r.exec_ids.iter().any(|i| &**i == exec_id))
    }

    /// Records an exec created through the manager.
    pub fn add_exec(&mut self, exec_id: &str) {
        self.rare_mut().exec_ids.push(exec_id.into());
    }

    /// The whole inspect body, kept for containers with a reschedule policy.
    pub fn full(&self) -> Option<&Arc<Value>> {
        self.rare.as_ref()?.full.as_ref()
    }

    fn rare_mut(&mut self) -> &mut RareDetails {
        self.rare.get_or_insert_with(Default::default)
    }
}

/// The inspect body as read, borrowing its strings where it can.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectBody<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    created: Cow<'a, str>,
    #[serde(borrow)]
    state: InspectState<'a>,
    #[serde(borrow)]
    host_config: InspectHostConfig<'a>,
    #[serde(borrow)]
    config: InspectConfig<'a>,
    #[serde(rename = "ExecIDs", borrow)]
    exec_ids: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    network_settings: InspectNetworkSettings<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectState<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    running: bool,
    paused: bool,
    restarting: bool,
    dead: bool,
    exit_code: i64,
    #[serde(borrow)]
    started_at: Cow<'a, str>,
    #[serde(borrow)]
    finished_at: Cow<'a, str>,
    #[serde(borrow)]
    health: Option<InspectHealth<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectHealth<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
}

/// Port → bindings, as in `HostConfig.PortBindings` and `NetworkSettings.Ports`.
type InspectPortMap<'a> = Option<BTreeMap<Cow<'a, str>, Option<Vec<InspectBinding<'a>>>>>;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectHostConfig<'a> {
    memory: i64,
    cpu_shares: i64,
    #[serde(borrow)]
    network_mode: Cow<'a, str>,
    #[serde(borrow)]
    port_bindings: InspectPortMap<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectBinding<'a> {
    #[serde(borrow)]
    host_ip: Cow<'a, str>,
    #[serde(borrow)]
    host_port: Cow<'a, str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectConfig<'a> {
    #[serde(borrow)]
    exposed_ports: Option<BTreeMap<Cow<'a, str>, serde::de::IgnoredAny>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectNetworkSettings<'a> {
    #[serde(borrow)]
    ports: InspectPortMap<'a>,
}

impl InspectBody<'_> {
    fn into_details(self) -> ContainerDetails {
        let secs = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.timestamp())
                .filter(|s| *s > 0)
        };
        let created_ns = chrono::DateTime::parse_from_rfc3339(&self.created)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt());
        let mut port_bindings = Vec::new();
        for map in [self.host_config.port_bindings, self.network_settings.ports] {
            for (port, bindings) in map.into_iter().flatten() {
                for b in bindings.into_iter().flatten() {
                    port_bindings.push(BoundPort {
                        port: (*port).into(),
                        host_ip: b.host_ip.into(),
                        host_port: b.host_port.into(),
                    });
                }
            }
        }
        let rare = RareDetails {
            health: self.state.health.map(|h| h.status.into()),
            port_bindings,
            exposed_ports: self
                .config
                .exposed_ports
                .into_iter()
                .flatten()
                .map(|(k, _)| k.into())
                .collect(),
            exec_ids: self
                .exec_ids
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect(),
            full: None,
        };
        let empty = rare.health.is_none()
            && rare.port_bindings.is_empty()
            && rare.exposed_ports.is_empty()
            && rare.exec_ids.is_empty();
        ContainerDetails {
            name: self.name.into(),
            created_ns,
            started_secs: secs(&self.state.started_at),
            finished_secs: secs(&self.state.finished_at),
            state: ContainerState {
                status: self.state.status.into(),
                running: self.state.running,
                paused: self.state.paused,
                restarting: self.state.restarting,
                dead: self.state.dead,
                exit_code: self.state.exit_code,
            },
            memory: self.host_config.memory,
            cpu_shares: self.host_config.cpu_shares,
            network_mode: self.host_config.network_mode.into(),
            rare: (!empty).then(|| Box::new(rare)),
        }
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
        let details = ContainerDetails::from_inspect(json!({"Id": "abc", "Name": "/web",
            "Created": "2020-01-01T00:00:01.5Z", "State": {"Status": "paused", "Paused": true},
            "HostConfig": {"Memory": 10, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}})
            .to_string().as_bytes())
        .unwrap();
        let raw = summary.to_string();
        let c = Container::new(
            serde_json::from_str(&raw).unwrap(),
            details,
            entry_hash(raw.as_bytes()),
        );
        assert_eq!(c.name(), "web");
        assert_eq!(c.swarm_id(), Some("s1"));
        assert_eq!(c.state(), "paused");
        assert_eq!(c.state_kind(), StateKind::Paused);
        assert_eq!(c.details.memory, 10);
        assert_eq!(
            c.details.port_bindings(),
            [BoundPort {
                port: "80/tcp".into(),
                host_ip: "".into(),
                host_port: "8080".into()
            }]
        );
        assert_eq!(c.details.health(), None);
        assert!(c.details.full().is_none());
        assert_eq!(c.created_nanos(), 1_577_836_801_500_000_000);
    }

    #[test]
    fn an_inspect_body_keeps_what_the_manager_reads() {
        let plain = ContainerDetails::from_inspect(
            br#"{"Id":"abc","Name":"/we\u0062","Created":"bad","State":{"Status":"running",
                "Running":true,"StartedAt":"2020-01-01T00:00:10Z","FinishedAt":"0001-01-01T00:00:00Z"},
                "HostConfig":{"NetworkMode":"default","CpuShares":512}}"#,
        )
        .unwrap();
        assert_eq!(&*plain.name, "/web");
        assert_eq!(plain.created_ns, None);
        assert_eq!(plain.started_secs, Some(1_577_836_810));
        assert_eq!(plain.finished_secs, None);
        assert!(plain.state.running);
        assert_eq!(&*plain.network_mode, "default");
        assert_eq!(plain.cpu_shares, 512);
        assert!(plain.rare.is_none(), "nothing rare was set");

        let mut rich = ContainerDetails::from_inspect(
            json!({"Name": "/db", "State": {"Status": "running", "Health": {"Status": "healthy"}},
                "ExecIDs": ["e1"], "Config": {"ExposedPorts": {"80/tcp": {}},
                "Labels": {"com.docker.swarm.reschedule-policies": "[\"on-node-failure\"]"}},
                "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}],
                "81/tcp": null}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(rich.health(), Some("healthy"));
        assert_eq!(rich.exposed_ports().collect::<Vec<_>>(), ["80/tcp"]);
        assert_eq!(rich.port_bindings().len(), 1);
        assert_eq!(&*rich.port_bindings()[0].host_ip, "0.0.0.0");
        assert!(rich.has_exec("e1") && !rich.has_exec("e2"));
        rich.add_exec("e2");
        assert!(rich.has_exec("e2"));
        assert_eq!(rich.full().unwrap()["Name"], "/db");

        let asks_nothing = ContainerDetails::from_inspect(
            br#"{"Config":{"Labels":{"com.docker.swarm.reschedule-policies":"[]"}}}"#,
        )
        .unwrap();
        assert!(asks_nothing.full().is_none());
        assert!(ContainerDetails::from_inspect(b"[1]").is_err());
    }
}
