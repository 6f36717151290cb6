//! The affinity filter: place a container next to (or away from) given containers, images or
//! container labels.
use super::{describe_with_softness, ExpressionFilter};
use crate::scheduler::expr::Expression;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Applies `affinity:` expressions (SPEC §4.2). Key `container` matches the full ID and first
/// name of each named container on the node, key `image` matches image IDs, `repo:tag`s and
/// bare repositories, any other key matches that label on each container. Short IDs only match
/// through globs (quirk 9).
#[derive(Debug, Clone, Copy, Default)]
pub struct AffinityFilter;

impl ExpressionFilter for AffinityFilter {
    const NAME: &'static str = "affinity";

    fn expressions(request: &SchedulingRequest) -> &[String] {
        &request.affinities
    }

    fn describe_expression(affinity: &Expression) -> String {
        describe_with_softness(affinity)
    }

    fn node_satisfies(affinity: &Expression, node: &NodeSnapshot) -> bool {
        match affinity.key.as_str() {
            "container" => affinity.matches(node.containers.iter().flat_map(|c| {
                c.first_name()
                    .into_iter()
                    .flat_map(move |name| [c.id.as_str(), name])
            })),
            "image" => affinity.matches(node.images.iter().flat_map(|image| {
                let tags = image.repo_tags.iter().map(String::as_str);
                let repositories = image.repo_tags.iter().map(|t| repository_of(t));
                std::iter::once(image.id.as_str())
                    .chain(tags)
                    .chain(repositories)
            })),
            label => affinity.matches(
                node.containers
                    .iter()
                    .map(|c| c.labels.get(label).map(String::as_str).unwrap_or("")),
            ),
        }
    }
}

/// `repo` of `repo:tag` or `repo@digest`; a `:` followed by a `/` is a registry port, not a tag.
fn repository_of(reference: &str) -> &str {
    if let Some((repository, _)) = reference.split_once('@') {
        return repository;
    }
    match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::filter::{Filter, FilterError};
    use crate::scheduler::fixtures::{all, container, names, node, pairs};
    use crate::scheduler::node::{ContainerSnapshot, ImageSnapshot};
    use proptest::prelude::*;

    fn request(affinities: &[&str]) -> SchedulingRequest {
        SchedulingRequest {
            affinities: affinities.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    fn cluster() -> Vec<NodeSnapshot> {
        let mut node0 = node("node-0");
        node0.containers.push(ContainerSnapshot {
            labels: pairs(&[("com.example.type", "frontend")]),
            ..container("0123456789abcdef0123456789abcdef", "web")
        });
        node0.images.push(ImageSnapshot {
            id: "sha256:aaaa".into(),
            repo_tags: vec!["redis:7".into(), "localhost:5000/app:1.0".into()],
            ..Default::default()
        });
        let mut node1 = node("node-1");
        node1
            .containers
            .push(container("fedcba9876543210fedcba9876543210", "db"));
        node1.images.push(ImageSnapshot {
            id: "sha256:bbbb".into(),
            repo_tags: vec!["nginx:latest".into()],
            ..Default::default()
        });
        vec![node0, node1, node("node-2")]
    }

    fn kept(affinities: &[&str]) -> Result<Vec<String>, FilterError> {
        let nodes = cluster();
        AffinityFilter
            .filter(&request(affinities), all(&nodes), true)
            .map(|kept| names(&kept).into_iter().map(str::to_string).collect())
    }

    #[test]
    fn container_affinity_matches_full_ids_and_names_but_not_short_ids() {
        assert_eq!(kept(&["container==web"]).unwrap(), ["node-0"]);
        assert_eq!(
            kept(&["container==fedcba9876543210fedcba9876543210"]).unwrap(),
            ["node-1"]
        );
        assert!(kept(&["container==fedcba987654"]).is_err());
        assert_eq!(kept(&["container==fedcba987654*"]).unwrap(), ["node-1"]);
        assert_eq!(kept(&["container!=web"]).unwrap(), ["node-1", "node-2"]);
    }

    #[test]
    fn image_affinity_matches_ids_tags_and_repositories() {
        assert_eq!(kept(&["image==redis"]).unwrap(), ["node-0"]);
        assert_eq!(kept(&["image==redis:7"]).unwrap(), ["node-0"]);
        assert_eq!(kept(&["image==localhost:5000/app"]).unwrap(), ["node-0"]);
        assert_eq!(kept(&["image==sha256:bbbb"]).unwrap(), ["node-1"]);
        assert!(kept(&["image==sha256:bb"]).is_err());
    }

    #[test]
    fn other_keys_match_container_labels_with_missing_labels_as_empty() {
        assert_eq!(kept(&["com.example.type==frontend"]).unwrap(), ["node-0"]);
        assert_eq!(
            kept(&["com.example.type!=frontend"]).unwrap(),
            ["node-1", "node-2"]
        );
    }

    #[test]
    fn soft_affinities_are_skipped_when_soft_is_off() {
        let nodes = cluster();
        let req = request(&["container==~nothing"]);
        assert!(AffinityFilter.filter(&req, all(&nodes), true).is_err());
        assert_eq!(
            AffinityFilter
                .filter(&req, all(&nodes), false)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            AffinityFilter.describe(&req).unwrap(),
            ["container==nothing (soft=true)"]
        );
    }

    #[test]
    fn parse_errors_are_reported() {
        assert_eq!(
            kept(&["container"]).unwrap_err().to_string(),
            "One of operator ==, != is expected"
        );
    }

    #[test]
    fn repository_of_keeps_registry_ports() {
        assert_eq!(repository_of("redis:7"), "redis");
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository_of("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(repository_of("app@sha256:abc"), "app");
        assert_eq!(repository_of("app"), "app");
    }

    proptest! {
        #[test]
        fn never_keeps_a_node_violating_a_hard_container_affinity(
            layout in proptest::collection::vec(proptest::collection::btree_set(0u8..5, 0..3), 1..6),
            wanted in 0u8..5,
            negate in any::<bool>(),
        ) {
            let nodes: Vec<NodeSnapshot> = layout.iter().enumerate().map(|(i, held)| {
                let mut n = node(&format!("n{i}"));
                n.containers = held.iter().map(|c| container(&format!("id{i}{c}"), &format!("c{c}"))).collect();
                n
            }).collect();
            let op = if negate { "!=" } else { "==" };
            let req = request(&[&format!("container{op}c{wanted}")]);
            if let Ok(kept) = AffinityFilter.filter(&req, all(&nodes), false) {
                let wanted_name = format!("c{wanted}");
                for node in kept {
                    let holds = node.containers.iter().any(|c| c.name.as_deref() == Some(wanted_name.as_str()));
                    prop_assert_eq!(holds, !negate);
                }
            }
        }
    }
}
