//! The binpack strategy: fill the fullest healthy node before using another.
use super::{weigh_nodes, Strategy, StrategyError, HEALTH_WEIGHT};
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Ranks by descending weight (health adds), then by more containers. Nodes that tie on both
/// keep their input order.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinpackStrategy;

impl Strategy for BinpackStrategy {
    fn name(&self) -> &'static str {
        "binpack"
    }

    fn rank<'a>(
        &self,
        request: &SchedulingRequest,
        nodes: Vec<&'a NodeSnapshot>,
    ) -> Result<Vec<&'a NodeSnapshot>, StrategyError> {
        let mut weighted = weigh_nodes(request, nodes, HEALTH_WEIGHT)?;
        weighted.sort_by_key(|w| std::cmp::Reverse((w.weight, w.node.container_count())));
        Ok(weighted.into_iter().map(|w| w.node).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, container, names, node};

    #[test]
    fn prefers_the_node_with_most_containers_when_nothing_is_reserved() {
        let mut busy = node("busy");
        busy.containers.push(container("a", "a"));
        let nodes = [node("idle"), busy];
        let ranked = BinpackStrategy
            .rank(&SchedulingRequest::default(), all(&nodes))
            .unwrap();
        assert_eq!(names(&ranked), ["busy", "idle"]);
    }

    #[test]
    fn prefers_the_fullest_node_that_still_fits() {
        // `full` would go past 100% even in the classic truncated percentage.
        let mut half = node("half");
        half.used_memory = 1 << 30;
        let mut full = node("full");
        full.used_memory = (2 << 30) + (1 << 26);
        let nodes = [node("empty"), half, full];
        let request = SchedulingRequest {
            memory: 1 << 20,
            ..Default::default()
        };
        let ranked = BinpackStrategy.rank(&request, all(&nodes)).unwrap();
        assert_eq!(names(&ranked), ["half", "empty"]);
    }
}
