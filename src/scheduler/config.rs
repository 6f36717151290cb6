//! The scheduling request: what the scheduler needs to know about a container before it exists,
//! taken from a Docker create body (or from build arguments) by the classic rules of SPEC §4.1
//! and §4.5. Edits the body it is given (strips scheduling env entries, writes the metadata
//! labels, folds legacy resource fields into `HostConfig`); no I/O.
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
    /// Reschedule policies (`off`, `on-node-failure`); at most one after [`extract`].
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

    fn list_mut(&mut self, kind: MetadataKind) -> &mut Vec<String> {
        match kind {
            MetadataKind::Affinity => &mut self.affinities,
            MetadataKind::Constraint => &mut self.constraints,
            MetadataKind::ReschedulePolicy => &mut self.reschedule_policies,
            MetadataKind::Whitelist => &mut self.whitelists,
        }
    }

    /// Takes `kind:value` env entries; returns false for entries that are not scheduling metadata.
    fn take_env_entry(&mut self, entry: &str) -> bool {
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

/// Builds the scheduling request of a Docker create body and edits the body as the classic
/// manager does before forwarding it (SPEC §4.1, §4.5):
/// * metadata label values are read first, then `Env` entries `constraint:`, `affinity:`,
///   `reschedule:` and `whitelist:` are appended and removed from `Env`;
/// * the merged lists are written back into `Labels` as JSON arrays (only the non-empty ones);
/// * legacy top-level `Memory`, `MemorySwap`, `CpuShares` and `Cpuset` override the `HostConfig`
///   fields when non-zero and are then removed (engines no longer read them);
/// * `HostConfig.CpuShares` is read as a number of CPUs, `HostConfig.Memory` as bytes.
///
/// Fails, after editing the body, with `too many reschedule policies` or
/// `invalid reschedule policy: <v>`.
pub fn extract(body: &mut Map<String, Value>) -> Result<SchedulingRequest, SchedulerError> {
    let mut request = SchedulingRequest::default();
    let labels = body.get("Labels").and_then(Value::as_object);
    for kind in MetadataKind::ALL {
        if let Some(raw) = labels
            .and_then(|l| l.get(kind.label()))
            .and_then(Value::as_str)
        {
            *request.list_mut(kind) = parse_label_list(raw);
        }
    }

    if let Some(Value::Array(env)) = body.get_mut("Env") {
        env.retain(|entry| !entry.as_str().is_some_and(|e| request.take_env_entry(e)));
    }

    request.write_labels(body);
    request.labels = body
        .get("Labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();

    consolidate_legacy_resources(body);
    let host_config = body.get("HostConfig").and_then(Value::as_object);
    let host_field = |name: &str| host_config.and_then(|h| h.get(name));
    request.memory = host_field("Memory").map(json_integer).unwrap_or(0);
    request.cpus = host_field("CpuShares").map(json_integer).unwrap_or(0);
    request.network_mode = host_field("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    request.links = string_list(host_field("Links"));
    request.volumes_from = string_list(host_field("VolumesFrom"));
    request.port_bindings = port_bindings(host_field("PortBindings"));
    request.exposed_ports = body
        .get("ExposedPorts")
        .and_then(Value::as_object)
        .map(|ports| ports.keys().cloned().collect())
        .unwrap_or_default();

    request.validate()?;
    Ok(request)
}

/// Flattens a Docker port map (`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`) in order.
/// Used for `HostConfig.PortBindings` and `NetworkSettings.Ports` alike.
pub fn port_bindings(map: Option<&Value>) -> Vec<PortBinding> {
    let Some(map) = map.and_then(Value::as_object) else {
        return Vec::new();
    };
    map.iter()
        .flat_map(|(port, bindings)| {
            bindings
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .map(move |binding| PortBinding {
                    port: port.clone(),
                    host_ip: binding
                        .get("HostIp")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    host_port: binding
                        .get("HostPort")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
        })
        .collect()
}

/// Folds the pre-1.19 top-level resource fields into `HostConfig`, non-zero ones winning.
fn consolidate_legacy_resources(body: &mut Map<String, Value>) {
    const LEGACY: [(&str, &str); 4] = [
        ("Memory", "Memory"),
        ("MemorySwap", "MemorySwap"),
        ("CpuShares", "CpuShares"),
        ("Cpuset", "CpusetCpus"),
    ];
    for (legacy, modern) in LEGACY {
        let Some(value) = body.remove(legacy) else {
            continue;
        };
        let set = match &value {
            Value::String(s) => !s.is_empty(),
            Value::Number(_) => json_integer(&value) != 0,
            _ => false,
        };
        if !set {
            continue;
        }
        let host_config = body
            .entry("HostConfig")
            .or_insert_with(|| Value::Object(Map::new()));
        if !host_config.is_object() {
            *host_config = Value::Object(Map::new());
        }
        if let Value::Object(host_config) = host_config {
            host_config.insert(modern.to_string(), value);
        }
    }
}

/// A JSON number as an integer (floats truncate, out-of-range values saturate); else 0.
fn json_integer(value: &Value) -> i64 {
    if let Some(i) = value.as_i64() {
        i
    } else if value.as_u64().is_some() {
        i64::MAX
    } else {
        // `as` saturates, and NaN becomes 0.
        value.as_f64().map(|f| f as i64).unwrap_or(0)
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A label holding a JSON array of strings; anything else is ignored, as the classic manager
/// ignores its unmarshalling errors.
fn parse_label_list(raw: &str) -> Vec<String> {
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
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn only_requests_that_look_at_containers_need_them_listed() {
        let plain = body(json!({"Image": "busybox", "HostConfig": {"Memory": 1024}}));
        assert!(!extract(&mut plain.clone()).unwrap().needs_containers());
        let image_only = body(json!({"Image": "busybox", "Env": ["affinity:image==busybox"]}));
        assert!(!extract(&mut image_only.clone()).unwrap().needs_containers());
        for reads in [
            json!({"Env": ["affinity:container==web"]}),
            json!({"Labels": {"com.docker.swarm.affinities": "[\"tier==front\"]"}}),
            json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}),
            json!({"HostConfig": {"NetworkMode": "host"}, "ExposedPorts": {"80/tcp": {}}}),
            json!({"HostConfig": {"Links": ["db:db"]}}),
            json!({"HostConfig": {"VolumesFrom": ["data"]}}),
            json!({"HostConfig": {"NetworkMode": "container:web"}}),
        ] {
            let request = extract(&mut body(reads.clone())).unwrap();
            assert!(request.needs_containers(), "{reads}");
        }
        let host_without_ports = body(json!({"HostConfig": {"NetworkMode": "host"}}));
        assert!(!extract(&mut host_without_ports.clone())
            .unwrap()
            .needs_containers());
    }

    #[test]
    fn env_entries_are_removed_and_written_into_labels() {
        let mut body = body(json!({
            "Image": "busybox",
            "Env": ["A=1", "constraint:node==node-1", "affinity:container==~web", "B:2",
                    "reschedule:on-node-failure", "whitelist:node==a|b", "constraint:region!=eu"],
        }));
        let request = extract(&mut body).unwrap();
        assert_eq!(body["Env"], json!(["A=1", "B:2"]));
        assert_eq!(request.constraints, ["node==node-1", "region!=eu"]);
        assert_eq!(request.affinities, ["container==~web"]);
        assert_eq!(request.reschedule_policies, ["on-node-failure"]);
        assert_eq!(request.whitelists, ["node==a|b"]);
        assert!(request.reschedules_on_node_failure());
        assert_eq!(
            body["Labels"],
            json!({
                "com.docker.swarm.affinities": "[\"container==~web\"]",
                "com.docker.swarm.constraints": "[\"node==node-1\",\"region!=eu\"]",
                "com.docker.swarm.reschedule-policies": "[\"on-node-failure\"]",
                "com.docker.swarm.whitelists": "[\"node==a|b\"]",
            })
        );
        assert_eq!(
            request.labels["com.docker.swarm.constraints"],
            "[\"node==node-1\",\"region!=eu\"]"
        );
    }

    #[test]
    fn label_values_come_before_env_values() {
        let mut body = body(json!({
            "Env": ["constraint:region==us-east"],
            "Labels": {"com.docker.swarm.constraints": "[\"storage==ssd\"]", "keep": "me"},
        }));
        let request = extract(&mut body).unwrap();
        assert_eq!(request.constraints, ["storage==ssd", "region==us-east"]);
        assert_eq!(
            body["Labels"]["com.docker.swarm.constraints"],
            "[\"storage==ssd\",\"region==us-east\"]"
        );
        assert_eq!(body["Labels"]["keep"], "me");
        assert_eq!(body["Env"], json!([]));
    }

    #[test]
    fn invalid_label_json_is_ignored_and_empty_lists_are_not_written() {
        let mut body = body(json!({
            "Labels": {"com.docker.swarm.constraints": "not json", "com.docker.swarm.affinities": "[1]"},
        }));
        let request = extract(&mut body).unwrap();
        assert!(request.constraints.is_empty() && request.affinities.is_empty());
        assert_eq!(body["Labels"]["com.docker.swarm.constraints"], "not json");
        assert!(body["Labels"]
            .get("com.docker.swarm.reschedule-policies")
            .is_none());
    }

    #[test]
    fn reschedule_policies_are_validated() {
        let err = |env: Value| {
            extract(&mut body(json!({ "Env": env })))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(json!(["reschedule:always"])),
            "invalid reschedule policy: always"
        );
        assert_eq!(
            err(json!(["reschedule:off", "reschedule:off"])),
            "too many reschedule policies"
        );
        let mut with_label = body(json!({
            "Labels": {"com.docker.swarm.reschedule-policies": "[\"off\"]"},
            "Env": ["reschedule:on-node-failure"],
        }));
        assert_eq!(
            extract(&mut with_label).unwrap_err().to_string(),
            "too many reschedule policies"
        );
        assert!(extract(&mut body(json!({ "Env": ["reschedule:off"] }))).is_ok());
    }

    #[test]
    fn reads_resources_ports_and_dependencies_from_host_config() {
        let mut body = body(json!({
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "HostConfig": {
                "Memory": 1048576, "CpuShares": 2, "NetworkMode": "container:db",
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostPort": "8081"}],
                                 "53/udp": null},
                "Links": ["db:alias"], "VolumesFrom": ["data:ro"],
            },
        }));
        let request = extract(&mut body).unwrap();
        assert_eq!((request.memory, request.cpus), (1048576, 2));
        assert_eq!(request.network_mode, "container:db");
        assert!(
            body.get("Labels").is_none(),
            "no metadata, no labels written"
        );
        assert_eq!(request.exposed_ports, ["80/tcp", "53/udp"]);
        assert_eq!(request.links, ["db:alias"]);
        assert_eq!(request.volumes_from, ["data:ro"]);
        let ports: Vec<_> = request
            .port_bindings
            .iter()
            .map(|b| (b.port.as_str(), b.host_port.as_str()))
            .collect();
        assert_eq!(ports, [("80/tcp", "8080"), ("80/tcp", "8081")]);
    }

    #[test]
    fn legacy_top_level_resources_override_host_config_when_non_zero() {
        let mut body = body(json!({
            "Memory": 2048, "CpuShares": 0, "Cpuset": "0-1", "MemorySwap": 0,
            "HostConfig": {"Memory": 1024, "CpuShares": 3},
        }));
        let request = extract(&mut body).unwrap();
        assert_eq!((request.memory, request.cpus), (2048, 3));
        assert_eq!(
            body["HostConfig"],
            json!({"Memory": 2048, "CpuShares": 3, "CpusetCpus": "0-1"})
        );
        assert!(["Memory", "CpuShares", "Cpuset", "MemorySwap"]
            .iter()
            .all(|k| !body.contains_key(*k)));

        let mut no_host_config = super::tests::body(json!({"CpuShares": 4}));
        assert_eq!(extract(&mut no_host_config).unwrap().cpus, 4);
    }

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
    fn added_constraints_are_persisted_only_when_written() {
        let mut body = body(json!({"Env": ["constraint:node==~node-2"]}));
        let mut request = extract(&mut body).unwrap();
        assert!(!request.has_hard_node_constraint());
        request.add_constraint("ostype==linux");
        assert!(request.constraints_mention("ostype"));
        let mut retry = request.clone();
        retry.add_affinity("image==busybox");
        request.write_labels(&mut body);
        assert_eq!(
            body["Labels"]["com.docker.swarm.constraints"],
            "[\"node==~node-2\",\"ostype==linux\"]"
        );
        assert!(body["Labels"].get("com.docker.swarm.affinities").is_none());
        assert_eq!(
            retry.labels["com.docker.swarm.affinities"],
            "[\"image==busybox\"]"
        );
        request.add_constraint("node==node-1");
        assert!(request.has_hard_node_constraint());
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
