//! The scheduler's standing ranking of the nodes for plain requests (a container that reserves
//! nothing and names no constraint, affinity, port, link or volume: the common `docker run`).
//! For such a request every configured filter judges each node on its own and the spread and
//! binpack weights do not depend on the request, so the ranking can be kept between decisions:
//! a node whose snapshot changed is re-ranked, the others keep their place, and a decision
//! reads the best eligible node off the front. Anything else (other requests, the random
//! strategy, a filter this view does not know, no eligible node and the error that goes with
//! it) is left to [`Scheduler::select`], which this view must agree with node for node.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::filter::has_free_slot;
use super::node::NodeSnapshot;
use super::request::SchedulingRequest;
use super::strategy::{weigh, HEALTH_WEIGHT};
use super::Scheduler;

/// How the configured strategy orders nodes for a plain request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Lightest first (health counts against the weight), then fewest containers.
    Spread,
    /// Heaviest first (health adds to the weight), then most containers.
    Binpack,
}

/// Where a node stands: smaller is better; ties go by node ID, the order in which callers hand
/// nodes to [`Scheduler::select`].
type Rank = (i128, i128, String);

/// The ranking of every node for plain requests, kept up to date one node at a time.
#[derive(Debug)]
pub struct RankedView {
    /// `None` when the scheduler's configuration has no standing ranking (random strategy, or
    /// a filter that is not judged node by node).
    order: Option<Order>,
    /// Which filters decide eligibility.
    health: bool,
    slots: bool,
    /// Each node's snapshot and rank (`None`: it cannot take even a plain request).
    nodes: HashMap<String, (Arc<NodeSnapshot>, Option<Rank>)>,
    ranked: BTreeSet<Rank>,
}

/// Filters that let every node through for a plain request.
const PASS_THROUGH: [&str; 5] = ["port", "dependency", "affinity", "constraint", "whitelist"];

impl RankedView {
    /// An empty view for `scheduler`'s filters and strategy.
    pub fn new(scheduler: &Scheduler) -> RankedView {
        let names = scheduler.filter_names();
        let known = names
            .iter()
            .all(|n| PASS_THROUGH.contains(n) || *n == "health" || *n == "containerslots");
        let order = match scheduler.strategy_name() {
            "spread" if known => Some(Order::Spread),
            "binpack" if known => Some(Order::Binpack),
            _ => None,
        };
        RankedView {
            order,
            health: names.contains(&"health"),
            slots: names.contains(&"containerslots"),
            nodes: HashMap::new(),
            ranked: BTreeSet::new(),
        }
    }

    /// Whether the configuration keeps a standing ranking at all (when not, [`RankedView::best`]
    /// always declines and keeping the view up to date is wasted work).
    pub fn ranks(&self) -> bool {
        self.order.is_some()
    }

    /// Whether `request` is plain: it reserves nothing and names nothing a filter reads.
    pub fn is_plain(request: &SchedulingRequest) -> bool {
        request.constraints.is_empty()
            && request.affinities.is_empty()
            && request.whitelists.is_empty()
            && request.cpus <= 0
            && request.memory <= 0
            && request.exposed_ports.is_empty()
            && request.port_bindings.is_empty()
            && request.links.is_empty()
            && request.volumes_from.is_empty()
            && request.volumes.is_empty()
            && !request.network_mode.starts_with("container:")
    }

    /// Puts `node` in (or back in) the ranking, replacing its previous snapshot.
    pub fn update(&mut self, node: Arc<NodeSnapshot>) {
        let rank = self.rank(&node);
        if let Some(rank) = &rank {
            self.ranked.insert(rank.clone());
        }
        if let Some((_, Some(old))) = self.nodes.insert(node.id.clone(), (node, rank.clone())) {
            if Some(&old) != rank.as_ref() {
                self.ranked.remove(&old);
            }
        }
    }

    /// Takes the node `id` out of the ranking.
    pub fn remove(&mut self, id: &str) {
        if let Some((_, Some(rank))) = self.nodes.remove(id) {
            self.ranked.remove(&rank);
        }
    }

    /// The snapshot held for node `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<NodeSnapshot>> {
        self.nodes.get(id).map(|(n, _)| n)
    }

    /// How many nodes the view holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the view holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node [`Scheduler::select`] would put first for `request`, when the view can tell:
    /// `None` for a request that is not plain, a configuration without a standing ranking, or
    /// when no node is eligible (the full selection then words the error).
    pub fn best(&self, request: &SchedulingRequest) -> Option<&Arc<NodeSnapshot>> {
        self.order?;
        if !Self::is_plain(request) {
            return None;
        }
        self.ranked
            .iter()
            .map(|(_, _, id)| &self.nodes[id].0)
            .find(|n| self.eligible(n))
    }

    /// Whether the configured filters keep `node` for a plain request.
    fn eligible(&self, node: &NodeSnapshot) -> bool {
        (!self.health || node.health_indicator > 0) && (!self.slots || has_free_slot(node))
    }

    /// `node`'s rank for a plain request; `None` when the strategy would skip it.
    fn rank(&self, node: &NodeSnapshot) -> Option<Rank> {
        let plain = SchedulingRequest::default();
        let count = node.container_count() as i128;
        let id = node.id.clone();
        match self.order? {
            Order::Spread => {
                let weight = weigh(&plain, node, -HEALTH_WEIGHT)?;
                Some((i128::from(weight), count, id))
            }
            Order::Binpack => {
                let weight = weigh(&plain, node, HEALTH_WEIGHT)?;
                Some((-i128::from(weight), -count, id))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{container, node};
    use crate::scheduler::DEFAULT_FILTERS;

    /// A small deterministic generator, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_node(rng: &mut Rng, i: u64) -> NodeSnapshot {
        let mut n = node(&format!("node-{i:02}"));
        n.id = format!("id-{i:02}");
        n.health_indicator = [0, 33, 100, 100][rng.below(4) as usize];
        n.unlisted = rng.below(4) as usize;
        for c in 0..rng.below(3) {
            n.containers
                .push(container(&format!("c{i}-{c}"), &format!("c{i}-{c}")));
        }
        if rng.below(4) == 0 {
            let slots = rng.below(6).to_string();
            n.labels.insert("containerslots".into(), slots);
        }
        if rng.below(8) == 0 {
            n.total_cpus = -1;
        }
        n
    }

    #[test]
    fn the_kept_ranking_picks_what_a_full_selection_picks_over_random_changes() {
        let configurations: [(&str, Vec<&str>); 4] = [
            ("spread", DEFAULT_FILTERS.to_vec()),
            ("binpack", DEFAULT_FILTERS.to_vec()),
            ("spread", vec!["constraint"]),
            ("binpack", vec!["containerslots", "whitelist"]),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let plain = SchedulingRequest::default();
        for (strategy, filters) in configurations {
            let scheduler = Scheduler::new(strategy, &filters).unwrap();
            let mut view = RankedView::new(&scheduler);
            let mut current: std::collections::BTreeMap<String, NodeSnapshot> = Default::default();
            let mut agreed = 0;
            for step in 0..400 {
                // Change a few nodes (some leave, some come back), as refreshes and pending
                // creations do between two decisions.
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(30);
                    if rng.below(10) == 0 {
                        current.remove(&format!("id-{i:02}"));
                        view.remove(&format!("id-{i:02}"));
                    } else {
                        let n = random_node(&mut rng, i);
                        current.insert(n.id.clone(), n.clone());
                        view.update(Arc::new(n));
                    }
                }
                let nodes: Vec<NodeSnapshot> = current.values().cloned().collect();
                let full = scheduler
                    .select(&nodes, &plain)
                    .ok()
                    .map(|r| r[0].id.clone());
                let kept = view.best(&plain).map(|n| n.id.clone());
                assert_eq!(kept, full, "{strategy} {filters:?}, step {step}");
                agreed += usize::from(kept.is_some());
                assert_eq!(view.len(), current.len());
            }
            assert!(
                agreed > 300,
                "{strategy}: the view answered only {agreed} times"
            );
        }
    }

    #[test]
    fn other_requests_and_strategies_are_left_to_the_full_selection() {
        let mut n = node("n");
        n.id = "n".into();
        let random = Scheduler::new("random", &DEFAULT_FILTERS).unwrap();
        let mut view = RankedView::new(&random);
        view.update(Arc::new(n.clone()));
        assert!(view.best(&SchedulingRequest::default()).is_none());

        let spread = Scheduler::new("spread", &DEFAULT_FILTERS).unwrap();
        let mut view = RankedView::new(&spread);
        view.update(Arc::new(n));
        assert_eq!(view.best(&SchedulingRequest::default()).unwrap().id, "n");
        let mut constrained = SchedulingRequest::default();
        constrained.add_constraint("node==n");
        assert!(view.best(&constrained).is_none());
        let reserving = SchedulingRequest {
            memory: 1,
            ..Default::default()
        };
        assert!(view.best(&reserving).is_none());
        view.remove("n");
        assert!(view.is_empty() && view.best(&SchedulingRequest::default()).is_none());
    }
}
