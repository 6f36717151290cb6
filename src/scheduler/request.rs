//! The scheduling request: what the scheduler needs to know about a container before it exists
//! ([`SchedulingRequest`], with the [`PortBinding`]s it asks for), and its scheduling metadata
//! ([`MetadataKind`]): the `constraint:`/`affinity:`/`reschedule:`/`whitelist:` env entries and
//! the JSON-array labels that store them, encoded byte-for-byte like the classic manager.
//!
//! It must not read a create body's other fields (that is `create_body`) nor do I/O.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::SchedulerError;

/// The four kinds of scheduling metadata a container carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `affinity:<expr>` / `com.docker.swarm.affinities`.
    Affinity,
    /// `constraint:<expr>` / `com.docker.swarm.constraints`.
    Constraint,
    /// `reschedule:<policy>` / `com.docker.swarm.reschedule-policies`.
    ReschedulePolicy,
    /// `whitelist:<expr>` / `com.docker.swarm.whitelists`.
    Whitelist,
}

impl MetadataKind {
    /// Every kind, in the order the classic manager writes their labels.
    pub const ALL: [MetadataKind; 4] = [
        MetadataKind::Affinity,
        MetadataKind::Constraint,
        MetadataKind::ReschedulePolicy,
        MetadataKind::Whitelist,
    ];

    /// The word before the first `:` of an env entry of this kind.
    pub fn env_prefix(self) -> &'static str {
        match self {
            MetadataKind::Affinity => "affinity",
            MetadataKind::Constraint => "constraint",
            MetadataKind::ReschedulePolicy => "reschedule",
            MetadataKind::Whitelist => "whitelist",
        }
    }

    /// The container label that stores this kind as a JSON array of strings.
    pub fn label(self) -> &'static str {
        match self {
            MetadataKind::Affinity => "com.docker.swarm.affinities",
            MetadataKind::Constraint => "com.docker.swarm.constraints",
            MetadataKind::ReschedulePolicy => "com.docker.swarm.reschedule-policies",
            MetadataKind::Whitelist => "com.docker.swarm.whitelists",
        }
    }

    /// Reads this kind from container labels (e.g. a cached container's, for rescheduling).
    /// A missing label or one that is not a JSON array of strings yields nothing.
    pub fn read_label(self, labels: &BTreeMap<String, String>) -> Vec<String> {
        labels
            .get(self.label())
            .map(|raw| parse_label_list(raw))
            .unwrap_or_default()
    }

    fn from_env_prefix(prefix: &str) -> Option<MetadataKind> {
        MetadataKind::ALL
            .into_iter()
            .find(|kind| kind.env_prefix() == prefix)
    }
}

/// The reschedule policies a container may carry.
pub const RESCHEDULE_POLICIES: [&str; 2] = ["off", "on-node-failure"];

/// Everything the filters and strategies look at for one placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulingRequest {
    /// Constraint expressions, label values first, then env values.
    pub constraints: Vec<String>,
    /// Affinity expressions, label values first, then env values.
    pub affinities: Vec<String>,
    /// Reschedule policies (`off`, `on-node-failure`); at most one after [`extract`](super::extract).
    pub reschedule_policies: Vec<String>,
    /// Whitelist expressions (`node==a|b`).
    pub whitelists: Vec<String>,
    /// CPUs to reserve (`HostConfig.CpuShares` counts CPUs in a create body, SPEC §4.5).
    pub cpus: i64,
    /// Memory bytes to reserve (`HostConfig.Memory`).
    pub memory: i64,
    /// `HostConfig.NetworkMode`; `host` switches the port filter to exposed ports.
    pub network_mode: String,
    /// Keys of `ExposedPorts` (`80/tcp`), checked in host network mode.
    pub exposed_ports: Vec<String>,
    /// `HostConfig.PortBindings`, flattened in body order, checked in other network modes.
    pub port_bindings: Vec<PortBinding>,
    /// `HostConfig.Links` as written (`name:alias`).
    pub links: Vec<String>,
    /// `HostConfig.VolumesFrom` as written (`name:ro`).
    pub volumes_from: Vec<String>,
    /// Named volumes the container mounts (`-v name:/path` binds and `Type: volume` mounts),
    /// each once; the dependency filter keeps the nodes that already hold them.
    pub volumes: Vec<String>,
    /// The container's labels after the metadata labels were written; pending creations carry
    /// them so label affinities see containers still being created.
    pub labels: BTreeMap<String, String>,
}

impl SchedulingRequest {
    /// Builds a request from env-like `key=value` strings, as the build route does with its build
    /// arguments (SPEC §5.9): `constraint:`/`affinity:`/`reschedule:`/`whitelist:` entries become
    /// metadata; every other entry is returned, in order, to be forwarded. Nothing is validated and
    /// no resources are set (the caller fills `cpus` and `memory`).
    pub fn from_env_like<S: AsRef<str>>(entries: &[S]) -> (SchedulingRequest, Vec<String>) {
        let mut request = SchedulingRequest::default();
        let mut rest = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            if !request.take_env_entry(entry) {
                rest.push(entry.to_string());
            }
        }
        (request, rest)
    }

    /// The metadata stored in container labels (the four JSON-array labels), e.g. the whitelist
    /// label of a volume create request (SPEC §5.11) or a cached container's policies. Resources,
    /// ports and dependencies are left empty.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> SchedulingRequest {
        let mut request = SchedulingRequest {
            labels: labels.clone(),
            ..Default::default()
        };
        for kind in MetadataKind::ALL {
            *request.list_mut(kind) = kind.read_label(labels);
        }
        request
    }

    /// Adds a constraint (e.g. `node==~<node>` for a local network, or `ostype==linux`) and keeps
    /// the constraints label in step; call [`SchedulingRequest::write_labels`] to persist it.
    pub fn add_constraint(&mut self, expression: impl Into<String>) {
        self.constraints.push(expression.into());
        self.sync_label(MetadataKind::Constraint);
    }

    /// Adds an affinity (e.g. the temporary `image==<image>` of the image-affinity retry: add it to
    /// a clone and do not write the clone's labels, so it is not persisted).
    pub fn add_affinity(&mut self, expression: impl Into<String>) {
        self.affinities.push(expression.into());
        self.sync_label(MetadataKind::Affinity);
    }

    /// Writes the non-empty metadata lists into the body's top-level `Labels` as JSON arrays.
    pub fn write_labels(&self, body: &mut Map<String, Value>) {
        if MetadataKind::ALL
            .iter()
            .all(|kind| self.list(*kind).is_empty())
        {
            return;
        }
        let labels = body
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        let Value::Object(labels) = labels else {
            return;
        };
        for kind in MetadataKind::ALL {
            let list = self.list(kind);
            if !list.is_empty() {
                labels.insert(
                    kind.label().to_string(),
                    Value::String(encode_label_list(list)),
                );
            }
        }
    }

    /// The expressions or policies of one kind.
    pub fn list(&self, kind: MetadataKind) -> &[String] {
        match kind {
            MetadataKind::Affinity => &self.affinities,
            MetadataKind::Constraint => &self.constraints,
            MetadataKind::ReschedulePolicy => &self.reschedule_policies,
            MetadataKind::Whitelist => &self.whitelists,
        }
    }

    /// Whether a constraint pins the container to a node for good (`node==x`, not `node==~x`);
    /// the image-affinity retry and network pinning step aside for it (SPEC §4.6).
    pub fn has_hard_node_constraint(&self) -> bool {
        self.constraints
            .iter()
            .any(|c| c.starts_with("node==") && !c.starts_with("node==~"))
    }

    /// Whether any constraint mentions `word` (the OS detection skips when one names `ostype`).
    pub fn constraints_mention(&self, word: &str) -> bool {
        self.constraints.iter().any(|c| c.contains(word))
    }

    /// Whether a decision for this request reads the containers of the nodes (affinities other
    /// than `image`, host ports, links, `--volumes-from`, `--net=container:`), rather than only
    /// counting them and their reservations.
    pub fn needs_containers(&self) -> bool {
        let reads_containers =
            |a: &String| super::expr::Expression::parse(a).map_or(true, |e| e.key != "image");
        self.affinities.iter().any(reads_containers)
            || !self.port_bindings.is_empty()
            || (self.network_mode == "host" && !self.exposed_ports.is_empty())
            || !self.links.is_empty()
            || !self.volumes_from.is_empty()
            || self.network_mode.starts_with("container:")
    }

    /// Whether the container asks to be re-created elsewhere when its node fails.
    pub fn reschedules_on_node_failure(&self) -> bool {
        self.reschedule_policies
            .iter()
            .any(|p| p == "on-node-failure")
    }

    /// Validates the reschedule policies as the classic create route does.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        match self.reschedule_policies.as_slice() {
            [] => Ok(()),
            [policy] if RESCHEDULE_POLICIES.contains(&policy.as_str()) => Ok(()),
            [policy] => Err(SchedulerError::InvalidReschedulePolicy(policy.clone())),
            _ => Err(SchedulerError::TooManyReschedulePolicies),
        }
    }

    pub(super) fn list_mut(&mut self, kind: MetadataKind) -> &mut Vec<String> {
        match kind {
            MetadataKind::Affinity => &mut self.affinities,
            MetadataKind::Constraint => &mut self.constraints,
            MetadataKind::ReschedulePolicy => &mut self.reschedule_policies,
            MetadataKind::Whitelist => &mut self.whitelists,
        }
    }

    /// Takes `kind:value` env entries; returns false for entries that are not scheduling metadata.
    pub(super) fn take_env_entry(&mut self, entry: &str) -> bool {
        let Some((prefix, value)) = entry.split_once(':') else {
            return false;
        };
        let Some(kind) = MetadataKind::from_env_prefix(prefix) else {
            return false;
        };
        self.list_mut(kind).push(value.to_string());
        true
    }

    fn sync_label(&mut self, kind: MetadataKind) {
        let list = self.list(kind);
        if !list.is_empty() {
            let encoded = encode_label_list(list);
            self.labels.insert(kind.label().to_string(), encoded);
        }
    }
}

/// A label holding a JSON array of strings; anything else is ignored, as the classic manager
/// ignores its unmarshalling errors.
pub(super) fn parse_label_list(raw: &str) -> Vec<String> {
    serde_json::from_str::<Option<Vec<String>>>(raw)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// JSON array text as Go's encoder writes it: compact, with `<`, `>`, `&`, U+2028 and U+2029
/// escaped, so labels written by Shoal and by the classic manager are byte-identical.
fn encode_label_list(list: &[String]) -> String {
    let json = serde_json::to_string(list).unwrap_or_else(|_| "[]".to_string());
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A port binding, requested or in use: `port` is the container side (`80/tcp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortBinding {
    /// Container port with protocol, e.g. `80/tcp`.
    pub port: String,
    /// Host interface; empty, `0.0.0.0` or `::` bind every interface.
    pub host_ip: String,
    /// Host port; empty means "any free port" and never conflicts.
    pub host_port: String,
}

impl PortBinding {
    /// Whether this binding listens on every host interface.
    pub fn binds_all_interfaces(&self) -> bool {
        matches!(self.host_ip.as_str(), "" | "0.0.0.0" | "::")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arguments_split_into_metadata_and_forwarded_entries() {
        let (request, rest) = SchedulingRequest::from_env_like(&[
            "constraint:node==node-1",
            "HTTP_PROXY=x",
            "reschedule:bogus",
        ]);
        assert_eq!(request.constraints, ["node==node-1"]);
        assert_eq!(request.reschedule_policies, ["bogus"]);
        assert_eq!(rest, ["HTTP_PROXY=x"]);
    }

    #[test]
    fn metadata_is_read_back_from_labels() {
        let labels = BTreeMap::from([
            (
                "com.docker.swarm.whitelists".to_string(),
                "[\"node==node-1|node-2\"]".to_string(),
            ),
            (
                "com.docker.swarm.reschedule-policies".to_string(),
                "[\"on-node-failure\"]".to_string(),
            ),
        ]);
        let request = SchedulingRequest::from_labels(&labels);
        assert_eq!(request.whitelists, ["node==node-1|node-2"]);
        assert!(request.reschedules_on_node_failure());
        assert!(request.constraints.is_empty());
    }

    #[test]
    fn labels_are_encoded_like_go_json() {
        assert_eq!(
            encode_label_list(&["a<b>&c".to_string()]),
            r#"["a\u003cb\u003e\u0026c"]"#
        );
        let labels = BTreeMap::from([(
            MetadataKind::Whitelist.label().to_string(),
            "[\"node==a|b\"]".to_string(),
        )]);
        assert_eq!(MetadataKind::Whitelist.read_label(&labels), ["node==a|b"]);
        assert!(MetadataKind::Affinity.read_label(&labels).is_empty());
    }
}
