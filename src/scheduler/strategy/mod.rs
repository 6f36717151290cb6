//! Strategies: rank the nodes that passed the filters, best first (SPEC §4.4). One file per
//! strategy; spread and binpack share the resource weighing here. Pure (random keeps its own RNG).
use super::node::NodeSnapshot;
use super::request::SchedulingRequest;

mod binpack;
mod random;
mod spread;

pub use binpack::BinpackStrategy;
pub use random::RandomStrategy;
pub use spread::SpreadStrategy;

/// Why a strategy could not rank any node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    /// No node has room for the requested CPUs and memory.
    #[error("no resources available to schedule container")]
    NoResources,
}

/// Orders candidate nodes for one placement.
pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// The name used by `--strategy` and shown in `/info`.
    fn name(&self) -> &'static str;

    /// Returns the nodes that can take the request, best first.
    fn rank<'a>(
        &self,
        request: &SchedulingRequest,
        nodes: Vec<&'a NodeSnapshot>,
    ) -> Result<Vec<&'a NodeSnapshot>, StrategyError>;
}

/// The strategy registered under `name` (`binpacking` is an alias of `binpack`), if any.
pub fn strategy_by_name(name: &str) -> Option<Box<dyn Strategy>> {
    let strategy: Box<dyn Strategy> = match name {
        "spread" => Box::new(SpreadStrategy),
        "binpack" | "binpacking" => Box::new(BinpackStrategy),
        "random" => Box::new(RandomStrategy::new()),
        _ => return None,
    };
    Some(strategy)
}

/// A node that has room for the request, with its classic weight.
#[derive(Debug, Clone, Copy)]
struct WeightedNode<'a> {
    node: &'a NodeSnapshot,
    weight: i64,
}

/// How many points of weight one point of health indicator is worth. Health (0..=100) times this
/// outweighs the CPU and memory scores (0..=100 each), so health decides first.
pub(crate) const HEALTH_WEIGHT: i64 = 10;

/// Weighs every node that can take the request: nodes smaller than the request or that would go
/// past 100% CPU or memory are skipped; weight = cpu% + memory% + `health_factor` × health, where
/// an axis the request does not reserve counts as 100.
fn weigh_nodes<'a>(
    request: &SchedulingRequest,
    nodes: Vec<&'a NodeSnapshot>,
    health_factor: i64,
) -> Result<Vec<WeightedNode<'a>>, StrategyError> {
    let weighted: Vec<WeightedNode<'a>> = nodes
        .into_iter()
        .filter_map(|node| {
            weigh(request, node, health_factor).map(|weight| WeightedNode { node, weight })
        })
        .collect();
    if weighted.is_empty() {
        return Err(StrategyError::NoResources);
    }
    Ok(weighted)
}

/// One node's weight for `request` (see [`weigh_nodes`]); `None` when it cannot take it.
pub(crate) fn weigh(
    request: &SchedulingRequest,
    node: &NodeSnapshot,
    health_factor: i64,
) -> Option<i64> {
    if node.total_memory < request.memory || node.total_cpus < request.cpus {
        return None;
    }
    let cpu_score = usage_score(node.used_cpus, request.cpus, node.total_cpus);
    let memory_score = usage_score(node.used_memory, request.memory, node.total_memory);
    if cpu_score > 100 || memory_score > 100 {
        return None;
    }
    let health = i128::from(node.health_indicator) * i128::from(health_factor);
    Some(clamp_to_i64(cpu_score + memory_score + health))
}

/// Integer percentage of the total the node would use after the placement; 100 when the request
/// reserves nothing on this axis. Wide arithmetic so absurd inputs cannot overflow.
fn usage_score(used: i64, requested: i64, total: i64) -> i128 {
    if requested <= 0 {
        return 100;
    }
    // `total >= requested > 0` here (smaller nodes were skipped), so the division is safe.
    (i128::from(used) + i128::from(requested)) * 100 / i128::from(total)
}

fn clamp_to_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, node};
    use proptest::{prop_assert, proptest};

    #[test]
    fn every_strategy_is_registered_under_its_name() {
        for (name, canonical) in [
            ("spread", "spread"),
            ("binpack", "binpack"),
            ("binpacking", "binpack"),
            ("random", "random"),
        ] {
            assert_eq!(strategy_by_name(name).map(|s| s.name()), Some(canonical));
        }
        assert!(strategy_by_name("fair").is_none());
    }

    #[test]
    fn weights_follow_the_classic_formula() {
        let mut n = node("n");
        n.total_cpus = 4;
        n.used_cpus = 1;
        n.total_memory = 1000;
        n.used_memory = 250;
        n.health_indicator = 67;
        let nodes = [n];
        let request = SchedulingRequest {
            cpus: 1,
            memory: 100,
            ..Default::default()
        };
        let weighted = weigh_nodes(&request, all(&nodes), -10).unwrap();
        // cpu (1+1)*100/4 = 50, memory (250+100)*100/1000 = 35, health -670.
        assert_eq!(weighted[0].weight, 50 + 35 - 670);
        let unreserved = weigh_nodes(&SchedulingRequest::default(), all(&nodes), 10).unwrap();
        assert_eq!(unreserved[0].weight, 100 + 100 + 670);
    }

    #[test]
    fn nodes_without_room_are_skipped() {
        let mut small = node("small");
        small.total_cpus = 1;
        let mut busy = node("busy");
        busy.used_cpus = 2;
        let nodes = [small, busy];
        let request = SchedulingRequest {
            cpus: 2,
            ..Default::default()
        };
        assert_eq!(
            weigh_nodes(&request, all(&nodes), 10).unwrap_err(),
            StrategyError::NoResources
        );
        assert_eq!(
            StrategyError::NoResources.to_string(),
            "no resources available to schedule container"
        );
    }

    #[test]
    fn truncated_percentages_let_a_node_go_less_than_one_percent_over() {
        let mut n = node("n");
        n.total_memory = 1000;
        n.used_memory = 1000;
        let nodes = [n];
        let nine = SchedulingRequest {
            memory: 9,
            ..Default::default()
        };
        assert_eq!(
            weigh_nodes(&nine, all(&nodes), 10).unwrap()[0].weight,
            100 + 100 + 1000
        );
        let ten = SchedulingRequest {
            memory: 10,
            ..Default::default()
        };
        assert!(weigh_nodes(&ten, all(&nodes), 10).is_err());
    }

    proptest! {
        #[test]
        fn strategies_never_overcommit_a_node(
            layout in proptest::collection::vec((1i64..8, 0i64..10, 1i64..1000, 0i64..1200, 1i64..=100), 1..8),
            cpus in 0i64..6,
            memory in 0i64..800,
        ) {
            let nodes: Vec<NodeSnapshot> = layout.iter().enumerate().map(|(i, &(tc, uc, tm, um, h))| NodeSnapshot {
                total_cpus: tc, used_cpus: uc, total_memory: tm, used_memory: um, health_indicator: h,
                ..node(&format!("n{i}"))
            }).collect();
            let request = SchedulingRequest { cpus, memory, ..Default::default() };
            for strategy in [&SpreadStrategy as &dyn Strategy, &BinpackStrategy] {
                if let Ok(ranked) = strategy.rank(&request, all(&nodes)) {
                    prop_assert!(!ranked.is_empty());
                    for n in ranked {
                        // The classic integer percentage: up to 100 passes, so a node may end up
                        // less than 1% over its total, never more.
                        prop_assert!(cpus == 0 || ((n.used_cpus + cpus) * 100 / n.total_cpus <= 100 && cpus <= n.total_cpus));
                        prop_assert!(memory == 0 || ((n.used_memory + memory) * 100 / n.total_memory <= 100 && memory <= n.total_memory));
                        prop_assert!(cpus == 0 || (n.used_cpus + cpus) * 100 < n.total_cpus * 101);
                        prop_assert!(memory == 0 || (n.used_memory + memory) * 100 < n.total_memory * 101);
                    }
                }
            }
        }
    }
}
