//! The scheduler's read-only view of an engine and of what runs on it. The cluster builds these
//! snapshots from its caches (and its pending creations); the scheduler only reads them.
use std::collections::{BTreeMap, BTreeSet};

use super::request::{PortBinding, SchedulingRequest};

/// Label that carries the Swarm ID of a container (SPEC §4.6).
pub const SWARM_ID_LABEL: &str = "com.docker.swarm.id";

/// One engine as the scheduler sees it at the moment of a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// Engine ID, `<daemon ID>|<addr>`; matched by the `node` constraint key.
    pub id: String,
    /// Daemon host name; matched by the `node` constraint key and by whitelists.
    pub name: String,
    /// Address the manager uses to reach the engine (`host:port`).
    pub addr: String,
    /// Resolved IP of `addr`, shown to clients; the scheduler does not use it.
    pub ip: String,
    /// Engine labels, including the built-ins `storagedriver`, `kernelversion`,
    /// `operatingsystem` and `ostype`; matched by constraints, and `containerslots` limits slots.
    pub labels: BTreeMap<String, String>,
    /// 0..=100 as in SPEC §3.2; 0 means the node must not receive containers.
    pub health_indicator: i64,
    /// CPUs with overcommit already applied (see [`super::total_with_overcommit`]).
    pub total_cpus: i64,
    /// Memory in bytes with overcommit already applied.
    pub total_memory: i64,
    /// CPUs reserved by every container on the node (any state, pending ones included).
    pub used_cpus: i64,
    /// Memory bytes reserved by every container on the node (any state, pending ones included).
    pub used_memory: i64,
    /// Every container on the node in any state, including creations still in flight, unless
    /// the snapshot only counts them (see `unlisted`).
    pub containers: Vec<ContainerSnapshot>,
    /// Containers counted but not listed in `containers`. A snapshot taken for a request that
    /// reads no container ([`SchedulingRequest::needs_containers`]) only counts them: at a
    /// thousand engines, listing every container for every creation costs more than the rest of
    /// the decision.
    pub unlisted: usize,
    /// Images present on the node; matched by `image` affinities.
    pub images: Vec<ImageSnapshot>,
    /// Names of the volumes on the node; a container mounting one of them is kept to the nodes
    /// that hold it.
    pub volumes: BTreeSet<String>,
}

impl NodeSnapshot {
    /// How many containers the node holds, listed or not.
    pub fn container_count(&self) -> usize {
        self.containers.len() + self.unlisted
    }

    /// Adds a container and its reservations, as the cluster does for a pending creation, so the
    /// next decision sees it.
    pub fn add_container(&mut self, container: ContainerSnapshot) {
        self.used_cpus = self.used_cpus.saturating_add(container.reserved_cpus);
        self.used_memory = self.used_memory.saturating_add(container.reserved_memory);
        self.containers.push(container);
    }

    /// Finds a container of this node by the classic rules of SPEC §5.4 restricted to this node:
    /// full or 12-character ID, Swarm ID or its 12-character truncation, a unique name match
    /// (`name`, `/name`, `<node ID>/name`, `<node name>/name`), then a unique ID or Swarm ID
    /// prefix. The empty string never matches.
    pub fn find_container(&self, id_or_name: &str) -> Option<&ContainerSnapshot> {
        if id_or_name.is_empty() {
            return None;
        }
        let equals_or_short =
            |full: &str| !full.is_empty() && (full == id_or_name || short_id(full) == id_or_name);
        if let Some(found) = self.containers.iter().find(|c| equals_or_short(&c.id)) {
            return Some(found);
        }
        if let Some(found) = self
            .containers
            .iter()
            .find(|c| c.swarm_id.as_deref().is_some_and(equals_or_short))
        {
            return Some(found);
        }

        let by_name: Vec<&ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| {
                c.names
                    .iter()
                    .any(|name| self.name_matches(name, id_or_name))
            })
            .collect();
        match by_name.len() {
            1 => return Some(by_name[0]),
            // Ambiguous names resolve to nothing, as in the classic manager.
            n if n > 1 => return None,
            _ => {}
        }

        let mut by_prefix = self.containers.iter().filter(|c| {
            (!c.id.is_empty() && c.id.starts_with(id_or_name))
                || c.swarm_id
                    .as_deref()
                    .is_some_and(|s| !s.is_empty() && s.starts_with(id_or_name))
        });
        match (by_prefix.next(), by_prefix.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// Whether an engine-listed name (`/web`, `/other/alias`) answers to what the client typed.
    fn name_matches(&self, listed: &str, wanted: &str) -> bool {
        if listed == wanted {
            return true;
        }
        // `wanted` without the leading slash, or prefixed by this node's ID or name.
        if let Some(rest) = listed.strip_prefix('/') {
            if rest == wanted {
                return true;
            }
        }
        [self.id.as_str(), self.name.as_str()].iter().any(|prefix| {
            !prefix.is_empty()
                && wanted.len() == prefix.len() + listed.len()
                && wanted.starts_with(prefix)
                && wanted.ends_with(listed)
        })
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// One container of a node, in any state, or a creation still in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSnapshot {
    /// Full container ID; empty for a pending creation.
    pub id: String,
    /// Value of the `com.docker.swarm.id` label, if any.
    pub swarm_id: Option<String>,
    /// First name without the leading `/`; used by `container` affinities.
    pub name: Option<String>,
    /// Names as the engine lists them (`/web`, `/other/alias`); used to resolve dependencies.
    pub names: Vec<String>,
    /// Container labels; matched by affinities on any key other than `container` and `image`.
    pub labels: BTreeMap<String, String>,
    /// `HostConfig.NetworkMode` (`host`, `bridge`, `default`, `container:<x>`, a network name).
    pub network_mode: String,
    /// Keys of `Config.ExposedPorts` (`80/tcp`); used by the host-mode port check.
    pub exposed_ports: Vec<String>,
    /// Bindings from `HostConfig.PortBindings` and `NetworkSettings.Ports` together.
    pub port_bindings: Vec<PortBinding>,
    /// True for a creation the manager has scheduled but the engine has not confirmed yet.
    pub pending: bool,
    /// CPUs this container reserves (its shares converted with [`super::shares_to_cpus`]).
    pub reserved_cpus: i64,
    /// Memory bytes this container reserves (`HostConfig.Memory`).
    pub reserved_memory: i64,
}

impl ContainerSnapshot {
    /// The snapshot of a creation in flight, so that concurrent decisions count its name,
    /// resources, requested port bindings, labels and slot (SPEC §4.6).
    pub fn pending(
        request: &SchedulingRequest,
        name: Option<&str>,
        swarm_id: Option<&str>,
    ) -> ContainerSnapshot {
        let name = name
            .filter(|n| !n.is_empty())
            .map(|n| n.trim_start_matches('/').to_string());
        let mut labels = request.labels.clone();
        if let Some(swarm_id) = swarm_id {
            labels.insert(SWARM_ID_LABEL.to_string(), swarm_id.to_string());
        }
        ContainerSnapshot {
            id: String::new(),
            swarm_id: swarm_id.map(str::to_string),
            names: name.iter().map(|n| format!("/{n}")).collect(),
            name,
            labels,
            network_mode: request.network_mode.clone(),
            exposed_ports: request.exposed_ports.clone(),
            port_bindings: request.port_bindings.clone(),
            pending: true,
            reserved_cpus: request.cpus,
            reserved_memory: request.memory,
        }
    }

    /// The first name without the leading `/`, from `name` or else from `names`.
    pub fn first_name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or_else(|| self.names.first().map(|n| n.strip_prefix('/').unwrap_or(n)))
    }
}

/// One image of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSnapshot {
    /// Full image ID (`sha256:…`).
    pub id: String,
    /// `repo:tag` references.
    pub repo_tags: Vec<String>,
    /// `repo@digest` references (not matched by affinities, kept for callers).
    pub repo_digests: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, swarm_id: Option<&str>, names: &[&str]) -> ContainerSnapshot {
        ContainerSnapshot {
            id: id.to_string(),
            swarm_id: swarm_id.map(str::to_string),
            names: names.iter().map(|n| n.to_string()).collect(),
            name: names.first().map(|n| n.trim_start_matches('/').to_string()),
            ..Default::default()
        }
    }

    fn node() -> NodeSnapshot {
        NodeSnapshot {
            id: "ABCD|10.0.0.1:2375".into(),
            name: "node-0".into(),
            containers: vec![
                container(
                    "aaaaaaaaaaaaaaaa1111",
                    Some("ffffffffffffffff0000"),
                    &["/web", "/other/alias"],
                ),
                container("aaaaaaaaaaaaaaaa2222", None, &["/db"]),
                container("bbbbbbbbbbbbbbbb3333", None, &["/cache"]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn find_container_follows_the_classic_resolution_order() {
        let node = node();
        let found = |what: &str| node.find_container(what).map(|c| c.id.clone());
        assert_eq!(
            found("aaaaaaaaaaaaaaaa2222").as_deref(),
            Some("aaaaaaaaaaaaaaaa2222")
        );
        assert_eq!(
            found("bbbbbbbbbbbb").as_deref(),
            Some("bbbbbbbbbbbbbbbb3333")
        );
        assert_eq!(
            found("ffffffffffffffff0000").as_deref(),
            Some("aaaaaaaaaaaaaaaa1111")
        );
        assert_eq!(
            found("ffffffffffff").as_deref(),
            Some("aaaaaaaaaaaaaaaa1111")
        );
        assert_eq!(found("web").as_deref(), Some("aaaaaaaaaaaaaaaa1111"));
        assert_eq!(found("/db").as_deref(), Some("aaaaaaaaaaaaaaaa2222"));
        assert_eq!(
            found("other/alias").as_deref(),
            Some("aaaaaaaaaaaaaaaa1111")
        );
        assert_eq!(
            found("node-0/cache").as_deref(),
            Some("bbbbbbbbbbbbbbbb3333")
        );
        assert_eq!(
            found("ABCD|10.0.0.1:2375/cache").as_deref(),
            Some("bbbbbbbbbbbbbbbb3333")
        );
        assert_eq!(found("bbb").as_deref(), Some("bbbbbbbbbbbbbbbb3333"));
        assert_eq!(found("fff").as_deref(), Some("aaaaaaaaaaaaaaaa1111"));
        // Ambiguous prefix, unknown names and the empty string resolve to nothing.
        assert_eq!(found("aaa"), None);
        assert_eq!(found("node-1/cache"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn ambiguous_names_resolve_to_nothing() {
        let mut node = node();
        node.containers.push(container("cccc", None, &["/web"]));
        assert!(node.find_container("web").is_none());
    }

    #[test]
    fn add_container_counts_its_reservations() {
        let mut node = node();
        node.add_container(ContainerSnapshot {
            reserved_cpus: 2,
            reserved_memory: 1024,
            ..Default::default()
        });
        assert_eq!(
            (node.used_cpus, node.used_memory, node.containers.len()),
            (2, 1024, 4)
        );
    }
}
