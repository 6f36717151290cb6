//! The dependency filter: a container that shares volumes, links or a network namespace with
//! other containers must land on the node that holds them, and one that mounts a named volume
//! lands on a node that has that volume when any candidate has it.
use super::{Filter, FilterError};
use crate::scheduler::expr::ExprError;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Keeps nodes holding every container named by `--volumes-from`, `--link` and
/// `--net=container:<x>` (SPEC §4.2), resolved by the classic rules restricted to the node.
/// Also keeps, for each named volume the container mounts, the nodes holding that volume; a
/// volume no candidate holds constrains nothing, since the engine creates it where the
/// container lands.
#[derive(Debug, Clone, Copy, Default)]
pub struct DependencyFilter;

const CONTAINER_NETWORK_PREFIX: &str = "container:";

impl Filter for DependencyFilter {
    fn name(&self) -> &'static str {
        "dependency"
    }

    fn filter<'a>(
        &self,
        request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
        _soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError> {
        for volume in &request.volumes {
            if nodes.iter().any(|node| node.volumes.contains(volume)) {
                nodes.retain(|node| node.volumes.contains(volume));
            }
        }
        let dependencies = dependencies(request);
        if dependencies.is_empty() {
            return Ok(nodes);
        }
        nodes.retain(|node| {
            dependencies
                .iter()
                .all(|d| node.find_container(d).is_some())
        });
        if nodes.is_empty() {
            return Err(FilterError::Unsatisfied(format!(
                "Unable to find a node fulfilling all dependencies: {}",
                dependencies.join(" ")
            )));
        }
        Ok(nodes)
    }

    fn describe(&self, request: &SchedulingRequest) -> Result<Vec<String>, ExprError> {
        let volumes = request
            .volumes_from
            .iter()
            .map(|v| format!("--volumes-from={v}"));
        let links = request
            .links
            .iter()
            .map(|l| format!("--link={}", before_colon(l)));
        let network = container_network(request).map(|_| format!("--net={}", request.network_mode));
        let named = request.volumes.iter().map(|v| format!("--volume={v}"));
        Ok(volumes.chain(links).chain(network).chain(named).collect())
    }
}

/// The container names or IDs the request depends on.
fn dependencies(request: &SchedulingRequest) -> Vec<&str> {
    let volumes = request.volumes_from.iter().map(|v| before_colon(v));
    let links = request.links.iter().map(|l| before_colon(l));
    volumes
        .chain(links)
        .chain(container_network(request))
        .collect()
}

/// `x` of `--net=container:x`.
fn container_network(request: &SchedulingRequest) -> Option<&str> {
    request.network_mode.strip_prefix(CONTAINER_NETWORK_PREFIX)
}

/// `name` of `name:alias` (links) or `name:ro` (volumes-from).
fn before_colon(text: &str) -> &str {
    text.split(':').next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, container, names, node};
    use proptest::prelude::*;

    fn node_with(name: &str, containers: &[(&str, &str)]) -> NodeSnapshot {
        let mut n = node(name);
        n.containers = containers
            .iter()
            .map(|(id, name)| container(id, name))
            .collect();
        n
    }

    fn cluster() -> Vec<NodeSnapshot> {
        vec![
            node_with(
                "node-0",
                &[
                    ("1111111111111111aaaa", "data"),
                    ("2222222222222222bbbb", "db"),
                ],
            ),
            node_with("node-1", &[("3333333333333333cccc", "db")]),
        ]
    }

    #[test]
    fn volumes_from_links_and_container_network_pin_to_the_holding_node() {
        let nodes = cluster();
        let request = SchedulingRequest {
            volumes_from: vec!["data:ro".into()],
            links: vec!["db:database".into()],
            network_mode: "container:2222222222222222bbbb".into(),
            ..Default::default()
        };
        let kept = DependencyFilter
            .filter(&request, all(&nodes), true)
            .unwrap();
        assert_eq!(names(&kept), ["node-0"]);
        assert_eq!(
            DependencyFilter.describe(&request).unwrap(),
            [
                "--volumes-from=data:ro",
                "--link=db",
                "--net=container:2222222222222222bbbb"
            ]
        );
    }

    #[test]
    fn dependencies_resolve_by_short_id_prefix_and_node_name() {
        let nodes = cluster();
        for dependency in ["333333333333", "3333", "node-1/db"] {
            let request = SchedulingRequest {
                links: vec![dependency.into()],
                ..Default::default()
            };
            let kept = DependencyFilter
                .filter(&request, all(&nodes), true)
                .unwrap();
            assert_eq!(names(&kept), ["node-1"], "{dependency}");
        }
    }

    #[test]
    fn a_missing_dependency_leaves_no_node() {
        let nodes = cluster();
        let request = SchedulingRequest {
            volumes_from: vec!["nope".into()],
            ..Default::default()
        };
        let err = DependencyFilter
            .filter(&request, all(&nodes), true)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unable to find a node fulfilling all dependencies: nope"
        );
    }

    fn with_volumes(mut node: NodeSnapshot, volumes: &[&str]) -> NodeSnapshot {
        node.volumes = volumes.iter().map(|v| v.to_string()).collect();
        node
    }

    #[test]
    fn a_named_volume_keeps_the_nodes_that_hold_it() {
        let nodes = vec![
            with_volumes(node("node-0"), &["shared"]),
            with_volumes(node("node-1"), &["onlyhere", "shared"]),
            with_volumes(node("node-2"), &[]),
        ];
        let request = |volumes: &[&str]| SchedulingRequest {
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        };
        let kept = |volumes: &[&str]| {
            names(
                &DependencyFilter
                    .filter(&request(volumes), all(&nodes), true)
                    .unwrap(),
            )
        };
        assert_eq!(kept(&["onlyhere"]), ["node-1"]);
        assert_eq!(kept(&["shared"]), ["node-0", "node-1"]);
        assert_eq!(kept(&["shared", "onlyhere"]), ["node-1"]);
        // A volume no node has is created where the container lands: no constraint.
        assert_eq!(kept(&["fresh"]), ["node-0", "node-1", "node-2"]);
        assert_eq!(
            DependencyFilter.describe(&request(&["onlyhere"])).unwrap(),
            ["--volume=onlyhere"]
        );
    }

    #[test]
    fn a_named_volume_and_a_dependency_on_different_nodes_leave_no_node() {
        let mut nodes = cluster();
        nodes[0].volumes.insert("onlyhere".into());
        let request = SchedulingRequest {
            volumes: vec!["onlyhere".into()],
            links: vec!["3333333333333333cccc".into()],
            ..Default::default()
        };
        assert!(DependencyFilter
            .filter(&request, all(&nodes), true)
            .is_err());
    }

    #[test]
    fn no_dependencies_keep_every_node() {
        let nodes = cluster();
        let kept = DependencyFilter
            .filter(&SchedulingRequest::default(), all(&nodes), true)
            .unwrap();
        assert_eq!(kept.len(), 2);
        assert!(DependencyFilter
            .describe(&SchedulingRequest::default())
            .unwrap()
            .is_empty());
    }

    proptest! {
        #[test]
        fn never_keeps_a_node_missing_a_dependency(
            layout in proptest::collection::vec(proptest::collection::btree_set(0u8..6, 0..4), 1..5),
            wanted in proptest::collection::vec(0u8..6, 0..3),
        ) {
            let nodes: Vec<NodeSnapshot> = layout.iter().enumerate().map(|(i, held)| {
                let mut n = node(&format!("n{i}"));
                n.containers = held.iter()
                    .map(|c| container(&format!("{c}{i}{}", "0".repeat(20)), &format!("c{c}")))
                    .collect();
                n
            }).collect();
            let request = SchedulingRequest {
                links: wanted.iter().map(|c| format!("c{c}:alias")).collect(),
                ..Default::default()
            };
            if let Ok(kept) = DependencyFilter.filter(&request, all(&nodes), true) {
                for node in kept {
                    for c in &wanted {
                        let wanted_name = format!("c{c}");
                        prop_assert!(node.containers.iter().any(|x| x.name.as_deref() == Some(wanted_name.as_str())));
                    }
                }
            }
        }
    }
}
