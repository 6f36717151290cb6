//! The container-slots filter: an engine label `containerslots=<n>` caps how many containers
//! (in any state, pending ones included) a node holds.
use super::{Filter, FilterError};
use crate::scheduler::expr::ExprError;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// The engine label that limits a node's containers.
pub const CONTAINER_SLOTS_LABEL: &str = "containerslots";

/// Keeps nodes with a free container slot (SPEC §4.2); a missing or non-integer label means no
/// limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotsFilter;

impl Filter for SlotsFilter {
    fn name(&self) -> &'static str {
        "containerslots"
    }

    fn filter<'a>(
        &self,
        _request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
        _soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError> {
        nodes.retain(|node| has_free_slot(node));
        if nodes.is_empty() {
            return Err(FilterError::Unsatisfied(
                "No node with free slots available in the cluster".to_string(),
            ));
        }
        Ok(nodes)
    }

    fn describe(&self, _request: &SchedulingRequest) -> Result<Vec<String>, ExprError> {
        Ok(vec!["available container slots".to_string()])
    }
}

pub(crate) fn has_free_slot(node: &NodeSnapshot) -> bool {
    match node
        .labels
        .get(CONTAINER_SLOTS_LABEL)
        .map(|v| v.parse::<i64>())
    {
        Some(Ok(slots)) => i64::try_from(node.container_count()).is_ok_and(|used| used < slots),
        Some(Err(_)) | None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, container, labelled_node, names, node};
    use proptest::prelude::*;

    fn with_containers(mut node: NodeSnapshot, count: usize) -> NodeSnapshot {
        for i in 0..count {
            node.containers
                .push(container(&format!("c{i}"), &format!("c{i}")));
        }
        node
    }

    #[test]
    fn nodes_at_their_slot_limit_are_dropped() {
        let nodes = [
            with_containers(labelled_node("full", &[("containerslots", "2")]), 2),
            with_containers(labelled_node("room", &[("containerslots", "3")]), 2),
            with_containers(labelled_node("bogus", &[("containerslots", "two")]), 9),
            with_containers(node("unlimited"), 9),
        ];
        let kept = SlotsFilter
            .filter(&SchedulingRequest::default(), all(&nodes), true)
            .unwrap();
        assert_eq!(names(&kept), ["room", "bogus", "unlimited"]);
    }

    #[test]
    fn pending_creations_take_a_slot() {
        let mut n = labelled_node("one", &[("containerslots", "1")]);
        n.add_container(crate::scheduler::node::ContainerSnapshot::pending(
            &SchedulingRequest::default(),
            None,
            None,
        ));
        let nodes = [n];
        assert!(SlotsFilter
            .filter(&SchedulingRequest::default(), all(&nodes), true)
            .is_err());
    }

    #[test]
    fn always_describes_itself() {
        assert_eq!(
            SlotsFilter.describe(&SchedulingRequest::default()).unwrap(),
            ["available container slots"]
        );
    }

    proptest! {
        #[test]
        fn never_keeps_a_node_without_a_free_slot(
            layout in proptest::collection::vec((0usize..5, proptest::option::of(0i64..5)), 1..8),
        ) {
            let nodes: Vec<NodeSnapshot> = layout.iter().enumerate().map(|(i, (count, slots))| {
                let slots = slots.map(|s| s.to_string());
                let labels: Vec<(&str, &str)> = slots.iter().map(|s| ("containerslots", s.as_str())).collect();
                with_containers(labelled_node(&format!("n{i}"), &labels), *count)
            }).collect();
            if let Ok(kept) = SlotsFilter.filter(&SchedulingRequest::default(), all(&nodes), true) {
                for node in kept {
                    if let Some(slots) = node.labels.get("containerslots") {
                        prop_assert!((node.containers.len() as i64) < slots.parse::<i64>().unwrap());
                    }
                }
            }
        }
    }
}
