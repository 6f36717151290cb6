//! The create-body extraction: builds the [`SchedulingRequest`] of a Docker create body by the
//! classic rules of SPEC §4.1 and §4.5, editing the body as it goes (strips scheduling env
//! entries, writes the metadata labels, folds legacy resource fields into `HostConfig`).
//!
//! It owns the reading of body fields (resources, ports, links, network mode); what the metadata
//! means and how labels are encoded belong to `request`. It must not do I/O.
use serde_json::{Map, Value};

use super::request::{parse_label_list, MetadataKind, PortBinding, SchedulingRequest};
use super::SchedulerError;

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
    request.volumes = named_volumes(host_field("Binds"), host_field("Mounts"));
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

/// The volume names among `HostConfig.Binds` (`source:destination[:mode]` whose source is a
/// name, not a path) and `HostConfig.Mounts` (`Type: volume` with a `Source`), each once, in
/// body order. Anonymous volumes (no source) name nothing.
fn named_volumes(binds: Option<&Value>, mounts: Option<&Value>) -> Vec<String> {
    let from_binds = string_list(binds).into_iter().filter_map(|bind| {
        let (source, _) = bind.split_once(':')?;
        is_volume_name(source).then(|| source.to_string())
    });
    let from_mounts = mounts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("Type").and_then(Value::as_str) == Some("volume"))
        .filter_map(|m| m.get("Source").and_then(Value::as_str))
        .filter(|source| !source.is_empty())
        .map(str::to_string);
    let mut volumes: Vec<String> = Vec::new();
    for volume in from_binds.chain(from_mounts) {
        if !volumes.contains(&volume) {
            volumes.push(volume);
        }
    }
    volumes
}

/// Whether a bind source is a volume name as the engine accepts it (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`)
/// rather than a host path (`/srv`, `./x`, or a Windows drive such as `C:\x`, whose one-letter
/// "source" is too short to be a name).
fn is_volume_name(source: &str) -> bool {
    let mut chars = source.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && source.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
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
    fn named_volumes_are_read_from_binds_and_volume_mounts_but_not_paths() {
        let mut body = body(json!({
            "HostConfig": {
                "Binds": ["myvol:/data", "/srv:/srv:ro", "./rel:/rel", "C:\\x:/x", "myvol:/again", "/anon"],
                "Mounts": [
                    {"Type": "volume", "Source": "other", "Target": "/o"},
                    {"Type": "volume", "Target": "/anonymous"},
                    {"Type": "bind", "Source": "/host", "Target": "/h"},
                    {"Type": "tmpfs", "Target": "/t"},
                ],
            },
        }));
        let request = extract(&mut body).unwrap();
        assert_eq!(request.volumes, ["myvol", "other"]);
        assert!(!request.needs_containers());
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
}
