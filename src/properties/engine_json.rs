//! JSON that engines send: container list entries, inspect bodies, events, image lists, error
//! bodies, `/info` and `/version`. A hostile or broken engine may send anything; the manager must
//! keep a clean error or a record it can serve.
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{config, json_map, json_text, json_value, tricky_string};
use crate::api::version::{split_version_prefix, ApiVersion};
use crate::cluster::cache::{entry_hash, Container, ContainerDetails, Image, Summary};
use crate::cluster::engine::error_message;
use crate::cluster::events::{ClusterEvent, NodeRef};
use crate::cluster::fanout::{JsonMessages, StreamItem};

/// Members of a list entry and an inspect body, at any depth.
const CONTAINER_KEYS: &[&str] = &[
    "Id",
    "Names",
    "Image",
    "ImageID",
    "Command",
    "Created",
    "Ports",
    "Labels",
    "State",
    "Status",
    "HostConfig",
    "NetworkSettings",
    "Networks",
    "NetworkID",
    "Mounts",
    "Name",
    "Destination",
    "IP",
    "PrivatePort",
    "PublicPort",
    "Type",
    "Running",
    "Paused",
    "Restarting",
    "Dead",
    "ExitCode",
    "StartedAt",
    "FinishedAt",
    "Health",
    "Memory",
    "CpuShares",
    "NetworkMode",
    "PortBindings",
    "HostIp",
    "HostPort",
    "Config",
    "ExposedPorts",
    "ExecIDs",
    "80/tcp",
    "com.docker.swarm.id",
    "com.docker.swarm.reschedule-policies",
];

/// Members of an event.
const EVENT_KEYS: &[&str] = &[
    "status",
    "id",
    "from",
    "Type",
    "Action",
    "Actor",
    "ID",
    "Attributes",
    "scope",
    "time",
    "timeNano",
    "node",
    "name",
    "image",
];

/// Members of `/info`, `/version`, image lists and error bodies.
const SYSTEM_KEYS: &[&str] = &[
    "ID",
    "Name",
    "NCPU",
    "MemTotal",
    "Labels",
    "Driver",
    "KernelVersion",
    "OperatingSystem",
    "OSType",
    "ServerVersion",
    "Containers",
    "Images",
    "SystemTime",
    "Version",
    "ApiVersion",
    "MinAPIVersion",
    "Os",
    "Arch",
    "BuildTime",
    "Components",
    "Details",
    "Plugins",
    "Swarm",
    "RegistryConfig",
    "Runtimes",
    "Id",
    "RepoTags",
    "RepoDigests",
    "Created",
    "Size",
    "message",
];

/// A realistic list entry whose members are then replaced by arbitrary values.
fn list_entry() -> BoxedStrategy<String> {
    let base = serde_json::json!({
        "Id": "0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef",
        "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:1", "Command": "sh",
        "Created": 1_700_000_000, "State": "running", "Status": "Up 1 second",
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
        "Labels": {"com.docker.swarm.id": "abc"},
        "Mounts": [{"Name": "data", "Destination": "/data"}],
        "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "n1"}}},
    });
    let replaced = prop::collection::vec(
        (
            prop::sample::select(CONTAINER_KEYS),
            json_value(CONTAINER_KEYS),
        ),
        0..4,
    )
    .prop_map(move |changes| {
        let mut entry = base.clone();
        for (key, value) in changes {
            entry[key] = value;
        }
        entry.to_string()
    });
    prop_oneof![3 => replaced, 2 => json_text(CONTAINER_KEYS)].boxed()
}

/// A realistic inspect body with arbitrary replacements, or anything at all.
fn inspect_body() -> BoxedStrategy<String> {
    let date = prop_oneof![
        tricky_string(),
        Just("2024-02-30T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:59.999999999+23:59".to_string()),
        Just("1677-09-21T00:12:43.145224191Z".to_string()),
        Just("2262-04-11T23:47:16.854775808Z".to_string()),
    ];
    let base = serde_json::json!({
        "Name": "/web", "Created": "2024-01-01T00:00:00Z",
        "State": {"Status": "running", "Running": true, "ExitCode": 0,
                  "StartedAt": "2024-01-01T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
                  "Health": {"Status": "healthy"}},
        "HostConfig": {"Memory": 0, "CpuShares": 0, "NetworkMode": "default",
                       "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
        "Config": {"ExposedPorts": {"80/tcp": {}},
                   "Labels": {"com.docker.swarm.reschedule-policies": "[\"on-node-failure\"]"}},
        "ExecIDs": null,
        "NetworkSettings": {"Ports": {"80/tcp": null}},
    });
    let replaced = (
        prop::collection::vec(
            (
                prop::sample::select(CONTAINER_KEYS),
                json_value(CONTAINER_KEYS),
            ),
            0..3,
        ),
        date.clone(),
        date,
    )
        .prop_map(move |(changes, created, started)| {
            let mut body = base.clone();
            body["Created"] = Value::String(created);
            body["State"]["StartedAt"] = Value::String(started);
            for (key, value) in changes {
                body[key] = value;
            }
            body.to_string()
        });
    prop_oneof![3 => replaced, 2 => json_text(CONTAINER_KEYS)].boxed()
}

/// An event: realistic members with arbitrary values, huge times included.
fn event() -> BoxedStrategy<Map<String, Value>> {
    let time = prop_oneof![
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1_700_000_000)),
        json_value(EVENT_KEYS),
    ];
    (
        json_map(EVENT_KEYS),
        prop::option::of(time.clone()),
        prop::option::of(time),
    )
        .prop_map(|(mut event, time, time_nano)| {
            event.insert("time".into(), time.unwrap_or(Value::Null));
            if let Some(t) = time_nano {
                event.insert("timeNano".into(), t);
            } else {
                event.remove("timeNano");
            }
            event
        })
        .boxed()
}

fn node_ref() -> impl Strategy<Value = NodeRef> {
    (tricky_string(), tricky_string()).prop_map(|(name, addr)| NodeRef {
        id: format!("ID|{addr}"),
        ip: String::new(),
        name,
        addr,
    })
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn list_entries_and_inspect_bodies_read_into_a_servable_record_or_fail(
        entry in list_entry(),
        inspect in inspect_body(),
    ) {
        let Ok(summary) = serde_json::from_str::<Summary>(&entry) else {
            return Ok(());
        };
        // The members passed through unchanged still form a JSON object (skipped members are
        // not held to serde_json's nesting limit, so only when the entry itself is within it).
        if serde_json::from_str::<Value>(&entry).is_ok() {
            let rest = format!("{{{}}}", summary.static_json);
            prop_assert!(serde_json::from_str::<Map<String, Value>>(&rest).is_ok(), "{}", rest);
        }
        let details = ContainerDetails::from_inspect(inspect.as_bytes()).unwrap_or_default();
        let container = Container::new(summary, details, entry_hash(entry.as_bytes()));
        let _ = (container.name(), container.state(), container.list_state());
        let _ = (container.swarm_id(), container.image(), container.created_nanos());
        let _ = container.details.port_bindings();
        let _ = container.details.exposed_ports().count();
        let _ = container.details.health();
        for (key, _) in container.labels().iter() {
            prop_assert!(container.label(key).is_some());
        }
    }

    #[test]
    fn engine_events_gain_the_node_and_stay_json(event in event(), node in node_ref()) {
        let cluster_event = ClusterEvent::from_engine(event, &node);
        let back: Map<String, Value> = serde_json::from_str(cluster_event.json()).unwrap();
        prop_assert_eq!(&back["node"]["Name"], &Value::String(node.name.clone()));
        let _ = (cluster_event.kind(), cluster_event.action(), cluster_event.actor_id());
        let _ = (cluster_event.scope(), cluster_event.from(), cluster_event.attributes());
    }

    #[test]
    fn image_lists_and_error_bodies_never_panic(
        image in json_map(SYSTEM_KEYS),
        body in json_text(SYSTEM_KEYS),
    ) {
        let image = Image::from_raw(image);
        prop_assert!(image.repo_tags.iter().all(|t| t != "<none>:<none>"));
        let _ = image.is_tagged();
        let _ = error_message(body.as_bytes());
        let _ = serde_json::from_str::<Vec<Map<String, Value>>>(&body);
    }

    #[test]
    fn info_and_version_bodies_parse_or_fail_cleanly(
        info in json_map(SYSTEM_KEYS),
        text in json_text(SYSTEM_KEYS),
    ) {
        let _ = serde_json::from_value::<bollard::models::SystemInfo>(Value::Object(info.clone()));
        let _ = serde_json::from_value::<bollard::models::SystemVersion>(Value::Object(info));
        let _ = serde_json::from_str::<bollard::models::SystemInfo>(&text);
        if let Ok(version) = serde_json::from_str::<bollard::models::SystemVersion>(&text) {
            if let Some(api) = version.api_version {
                let _ = api.parse::<ApiVersion>();
            }
        }
    }

    #[test]
    fn api_versions_and_path_prefixes_parse_or_not(text in tricky_string()) {
        let _ = text.parse::<ApiVersion>();
        let (version, rest) = split_version_prefix(&text);
        prop_assert!(text.ends_with(rest));
        if let Some(v) = version {
            prop_assert!(text.contains(v));
        }
    }
}

#[test]
fn an_event_with_a_huge_time_and_no_time_nano_saturates() {
    let node = NodeRef {
        name: "node-0".into(),
        id: "ID".into(),
        addr: "a:1".into(),
        ip: String::new(),
    };
    let event = |time: i64| {
        let Value::Object(map) = serde_json::json!({"status": "start", "time": time}) else {
            unreachable!("object literal");
        };
        ClusterEvent::from_engine(map, &node)
    };
    assert_eq!(event(i64::MAX).time_nano, i64::MAX);
    assert_eq!(event(i64::MIN).time_nano, i64::MIN);
    assert_eq!(event(2).time_nano, 2_000_000_000);
}

/// Splits `bytes` at the given fractions of its length.
fn chunks(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn engine_message_streams_split_the_same_however_they_are_chunked(
        messages in prop::collection::vec(json_map(EVENT_KEYS), 0..5),
        separator in prop::sample::select(&["\r\n", "\n", "", " "][..]),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream: String = messages
            .iter()
            .map(|m| format!("{}{separator}", Value::Object(m.clone())))
            .collect();
        let mut splitter = JsonMessages::new();
        let mut read = Vec::new();
        for chunk in chunks(stream.as_bytes(), &cuts) {
            read.extend(splitter.push(&chunk));
        }
        // Compared with the stream read at once: serde_json's float parsing need not give back
        // the very float that was printed.
        let whole = JsonMessages::new().push(stream.as_bytes());
        prop_assert_eq!(whole.len(), messages.len());
        prop_assert!(whole.iter().all(|m| matches!(m, StreamItem::Message(Value::Object(_)))));
        prop_assert_eq!(read, whole);
        prop_assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn any_engine_stream_bytes_come_out_as_messages_or_text(
        text in json_text(EVENT_KEYS),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut splitter = JsonMessages::new();
        for chunk in chunks(text.as_bytes(), &cuts) {
            let _ = splitter.push(&chunk);
        }
        let _ = splitter.finish();
    }
}

#[test]
fn a_message_delivered_byte_by_byte_is_read_once_whole() {
    let message = serde_json::json!({"status": "a \"}\" ]{[ \\", "id": "x".repeat(64 << 10)});
    let text = format!("{message}\r\n{{\"b\":1}}");
    let mut splitter = JsonMessages::new();
    let mut read = Vec::new();
    for byte in text.as_bytes() {
        read.extend(splitter.push(std::slice::from_ref(byte)));
    }
    assert_eq!(
        read,
        [
            StreamItem::Message(message),
            StreamItem::Message(serde_json::json!({"b": 1}))
        ]
    );
}
