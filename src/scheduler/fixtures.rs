//! Builders shared by the scheduler's unit tests.
use std::collections::BTreeMap;

use super::node::{ContainerSnapshot, NodeSnapshot};

/// A healthy node named `name` with 2 CPUs, 2 GiB and no containers.
pub fn node(name: &str) -> NodeSnapshot {
    NodeSnapshot {
        id: format!("ID-{name}|{name}:2375"),
        name: name.to_string(),
        addr: format!("{name}:2375"),
        ip: "10.0.0.1".to_string(),
        health_indicator: 100,
        total_cpus: 2,
        total_memory: 2 << 30,
        ..Default::default()
    }
}

/// `node(name)` with engine labels.
pub fn labelled_node(name: &str, labels: &[(&str, &str)]) -> NodeSnapshot {
    NodeSnapshot {
        labels: pairs(labels),
        ..node(name)
    }
}

/// A container named `name` with the given ID.
pub fn container(id: &str, name: &str) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.to_string(),
        name: Some(name.to_string()),
        names: vec![format!("/{name}")],
        network_mode: "default".to_string(),
        ..Default::default()
    }
}

/// A string map from pairs.
pub fn pairs(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Borrows every node, as the scheduler does before filtering.
pub fn all(nodes: &[NodeSnapshot]) -> Vec<&NodeSnapshot> {
    nodes.iter().collect()
}

/// The names of the nodes, in order.
pub fn names<'a>(nodes: &[&'a NodeSnapshot]) -> Vec<&'a str> {
    nodes.iter().map(|n| n.name.as_str()).collect()
}
