//! What clients send: container create bodies (the scheduling request read from them) and the
//! `filters` query of lists and `/events`.
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{config, json_map, json_text, json_value, tricky_string};
use crate::api::filters::{label_filter_matches, Filters};
use crate::scheduler::{extract, MetadataKind, Scheduler, SchedulingRequest, DEFAULT_FILTERS};

/// Members a create body's reader looks at, at any depth.
const CREATE_KEYS: &[&str] = &[
    "Image",
    "Env",
    "Labels",
    "HostConfig",
    "Memory",
    "MemorySwap",
    "CpuShares",
    "Cpuset",
    "ExposedPorts",
    "PortBindings",
    "HostIp",
    "HostPort",
    "80/tcp",
    "Links",
    "VolumesFrom",
    "NetworkMode",
    "com.docker.swarm.constraints",
    "com.docker.swarm.affinities",
    "com.docker.swarm.reschedule-policies",
    "com.docker.swarm.whitelists",
];

/// `Env` entries, scheduling ones among them.
fn env_entry() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (
            prop::sample::select(&["constraint:", "affinity:", "reschedule:", "whitelist:", "A="][..]),
            tricky_string(),
        )
            .prop_map(|(prefix, rest)| Value::String(format!("{prefix}{rest}"))),
        1 => json_value(CREATE_KEYS),
    ]
    .boxed()
}

/// A label value the scheduler reads as a JSON list: a list of strings, or anything else.
fn metadata_label() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::collection::vec(tricky_string(), 0..3)
            .prop_map(|list| Value::String(Value::from(list).to_string())),
        json_text(CREATE_KEYS).prop_map(Value::String),
        json_value(CREATE_KEYS),
    ]
    .boxed()
}

/// A create body: arbitrary members, plus the scheduling members with near-valid values.
fn create_body() -> BoxedStrategy<Map<String, Value>> {
    (
        json_map(CREATE_KEYS),
        prop::option::of(prop::collection::vec(env_entry(), 0..5)),
        prop::collection::vec(
            (prop::sample::select(&CREATE_KEYS[16..]), metadata_label()),
            0..3,
        ),
        prop::option::of(json_map(CREATE_KEYS)),
    )
        .prop_map(|(mut body, env, labels, host_config)| {
            if let Some(env) = env {
                body.insert("Env".into(), Value::Array(env));
            }
            if !labels.is_empty() {
                let labels: Map<String, Value> = labels
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                body.insert("Labels".into(), Value::Object(labels));
            }
            if let Some(host_config) = host_config {
                body.insert("HostConfig".into(), Value::Object(host_config));
            }
            body
        })
        .boxed()
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn any_create_body_yields_a_request_or_a_policy_error(mut body in create_body()) {
        let env_before = body.get("Env").cloned();
        match extract(&mut body) {
            Ok(request) => {
                prop_assert!(request.validate().is_ok());
                let _ = request.needs_containers();
                let _ = request.has_hard_node_constraint();
                // The metadata written into the labels reads back as the same lists.
                let again = SchedulingRequest::from_labels(&request.labels);
                for kind in MetadataKind::ALL {
                    if !request.list(kind).is_empty() {
                        prop_assert_eq!(again.list(kind), request.list(kind));
                    }
                }
                let scheduler = Scheduler::new("spread", &DEFAULT_FILTERS).unwrap();
                let _ = scheduler.select(&[], &request);
            }
            Err(err) => prop_assert!(err.is_client_error(), "{err}"),
        }
        // Scheduling entries leave `Env`; the others stay in order.
        if let (Some(Value::Array(before)), Some(Value::Array(after))) = (env_before, body.get("Env")) {
            let kept: Vec<&Value> = before
                .iter()
                .filter(|e| {
                    !e.as_str().is_some_and(|e| {
                        e.split_once(':').is_some_and(|(prefix, _)| {
                            ["constraint", "affinity", "reschedule", "whitelist"].contains(&prefix)
                        })
                    })
                })
                .collect();
            prop_assert_eq!(kept, after.iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn build_arguments_split_without_loss(
        entries in prop::collection::vec(
            (prop::sample::select(&["constraint:", "reschedule:", "x", ""][..]), tricky_string())
                .prop_map(|(p, r)| format!("{p}{r}")),
            0..6,
        ),
    ) {
        let (request, rest) = SchedulingRequest::from_env_like(&entries);
        let taken: usize = MetadataKind::ALL.iter().map(|k| request.list(*k).len()).sum();
        prop_assert_eq!(taken + rest.len(), entries.len());
    }
}

/// Members the list and events filters know.
const FILTER_KEYS: &[&str] = &[
    "name",
    "id",
    "label",
    "status",
    "node",
    "exited",
    "health",
    "type",
    "event",
    "container",
    "image",
    "reference",
    "dangling",
    "driver",
    "scope",
    "until",
    "since",
];

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn any_filters_text_parses_or_is_a_bad_request(text in json_text(FILTER_KEYS)) {
        match Filters::parse(Some(&text)) {
            Ok(filters) => {
                for key in filters.keys() {
                    let _ = filters.values(key);
                }
            }
            Err(err) => prop_assert_eq!(err.status, http::StatusCode::BAD_REQUEST),
        }
    }

    #[test]
    fn parsed_filters_keep_every_string_value(
        members in prop::collection::btree_map(
            prop::sample::select(FILTER_KEYS),
            prop::collection::vec(tricky_string(), 0..4),
            0..4,
        ),
    ) {
        let as_lists: Map<String, Value> = members
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.clone())))
            .collect();
        let parsed = Filters::parse(Some(&Value::Object(as_lists).to_string())).unwrap();
        let as_maps: Map<String, Value> = members
            .iter()
            .map(|(k, v)| {
                let set: Map<String, Value> = v.iter().map(|s| (s.clone(), Value::Bool(true))).collect();
                (k.to_string(), Value::Object(set))
            })
            .collect();
        let parsed_maps = Filters::parse(Some(&Value::Object(as_maps).to_string())).unwrap();
        for (key, values) in &members {
            prop_assert_eq!(parsed.values(key), values.as_slice());
            let mut unique = values.clone();
            unique.sort();
            unique.dedup();
            let mut from_map = parsed_maps.values(key).to_vec();
            from_map.sort();
            prop_assert_eq!(from_map, unique);
        }
    }

    #[test]
    fn label_filters_match_any_text(
        filter in tricky_string(),
        labels in prop::collection::btree_map(tricky_string(), tricky_string(), 0..4),
    ) {
        let matched = label_filter_matches(|k| labels.get(k).map(String::as_str), &filter);
        if labels.contains_key(&filter) {
            prop_assert!(matched);
        }
    }
}
