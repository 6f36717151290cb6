//! The random strategy: a uniform shuffle of the candidates, without any resource check.
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{Strategy, StrategyError};
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Shuffles the candidates (Fisher–Yates). Requested CPUs and memory are not checked, as in the
/// classic manager.
#[derive(Debug)]
pub struct RandomStrategy {
    /// Its own generator so tests can make the order reproducible.
    rng: Mutex<StdRng>,
}

impl RandomStrategy {
    /// A strategy seeded from the operating system.
    pub fn new() -> RandomStrategy {
        RandomStrategy {
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// A strategy whose shuffles are reproducible.
    pub fn seeded(seed: u64) -> RandomStrategy {
        RandomStrategy {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }
}

impl Default for RandomStrategy {
    fn default() -> Self {
        RandomStrategy::new()
    }
}

impl Strategy for RandomStrategy {
    fn name(&self) -> &'static str {
        "random"
    }

    fn rank<'a>(
        &self,
        _request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
    ) -> Result<Vec<&'a NodeSnapshot>, StrategyError> {
        // A poisoned lock only means another shuffle panicked; the generator is still usable.
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        nodes.shuffle(&mut *rng);
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, names, node};

    #[test]
    fn ignores_resources_and_keeps_every_node() {
        let mut tiny = node("tiny");
        tiny.total_cpus = 0;
        let nodes = [tiny, node("b"), node("c")];
        let request = SchedulingRequest {
            cpus: 64,
            ..Default::default()
        };
        let mut ranked = names(
            &RandomStrategy::seeded(1)
                .rank(&request, all(&nodes))
                .unwrap(),
        );
        ranked.sort_unstable();
        assert_eq!(ranked, ["b", "c", "tiny"]);
    }

    #[test]
    fn every_node_comes_first_sometimes() {
        let nodes: Vec<NodeSnapshot> = (0..4).map(|i| node(&format!("n{i}"))).collect();
        let strategy = RandomStrategy::seeded(42);
        let mut firsts = [0usize; 4];
        for _ in 0..4000 {
            let ranked = strategy
                .rank(&SchedulingRequest::default(), all(&nodes))
                .unwrap();
            firsts[ranked[0].name[1..].parse::<usize>().unwrap()] += 1;
        }
        // Uniform: each about 1000; allow a wide margin so the test is not flaky across seeds.
        assert!(
            firsts.iter().all(|&n| (800..1200).contains(&n)),
            "{firsts:?}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_order() {
        let nodes: Vec<NodeSnapshot> = (0..10).map(|i| node(&format!("n{i}"))).collect();
        let a = RandomStrategy::seeded(7)
            .rank(&SchedulingRequest::default(), all(&nodes))
            .unwrap();
        let b = RandomStrategy::seeded(7)
            .rank(&SchedulingRequest::default(), all(&nodes))
            .unwrap();
        assert_eq!(names(&a), names(&b));
    }
}
