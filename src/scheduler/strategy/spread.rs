//! The spread strategy: put each container on the least loaded healthy node.
use super::{weigh_nodes, Strategy, StrategyError, HEALTH_WEIGHT};
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Ranks by ascending weight (health subtracts, so the healthiest node comes first), then by
/// fewer containers. Nodes that tie on both keep their input order.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpreadStrategy;

impl Strategy for SpreadStrategy {
    fn name(&self) -> &'static str {
        "spread"
    }

    fn rank<'a>(
        &self,
        request: &SchedulingRequest,
        nodes: Vec<&'a NodeSnapshot>,
    ) -> Result<Vec<&'a NodeSnapshot>, StrategyError> {
        let mut weighted = weigh_nodes(request, nodes, -HEALTH_WEIGHT)?;
        weighted.sort_by_key(|w| (w.weight, w.node.container_count()));
        Ok(weighted.into_iter().map(|w| w.node).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, container, names, node};

    #[test]
    fn prefers_the_node_with_fewest_containers_when_nothing_is_reserved() {
        let mut busy = node("busy");
        busy.containers.push(container("a", "a"));
        let nodes = [busy, node("idle")];
        let ranked = SpreadStrategy
            .rank(&SchedulingRequest::default(), all(&nodes))
            .unwrap();
        assert_eq!(names(&ranked), ["idle", "busy"]);
    }

    #[test]
    fn counts_containers_a_snapshot_does_not_list() {
        let mut counted = node("counted");
        counted.unlisted = 2;
        let mut listed = node("listed");
        listed.containers.push(container("a", "a"));
        let nodes = [counted, listed];
        let ranked = SpreadStrategy
            .rank(&SchedulingRequest::default(), all(&nodes))
            .unwrap();
        assert_eq!(names(&ranked), ["listed", "counted"]);
    }

    #[test]
    fn prefers_healthy_nodes_over_lightly_loaded_ones() {
        let mut flaky = node("flaky");
        flaky.health_indicator = 67;
        let mut loaded = node("loaded");
        loaded.used_cpus = 1;
        let nodes = [flaky, loaded];
        let request = SchedulingRequest {
            cpus: 1,
            ..Default::default()
        };
        let ranked = SpreadStrategy.rank(&request, all(&nodes)).unwrap();
        assert_eq!(names(&ranked), ["loaded", "flaky"]);
    }

    #[test]
    fn prefers_the_node_with_the_lowest_usage() {
        let mut half = node("half");
        half.used_memory = 1 << 30;
        let nodes = [half, node("empty")];
        let request = SchedulingRequest {
            memory: 1 << 20,
            ..Default::default()
        };
        let ranked = SpreadStrategy.rank(&request, all(&nodes)).unwrap();
        assert_eq!(names(&ranked), ["empty", "half"]);
    }
}
