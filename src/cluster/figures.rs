//! What the cluster holds, counted for a metrics scrape ([`crate::metrics::ClusterFigures`]):
//! engines by state and containers by node and state, read from the membership and the engines'
//! cache snapshots at the moment of the scrape. Nothing is kept between scrapes.
use std::collections::BTreeMap;

use super::{Cluster, EngineState};
use crate::metrics::{container_state_label, ClusterFigures};

/// Every engine state, so that each has a series (0 when no engine is in it).
const STATES: [EngineState; 4] = [
    EngineState::Pending,
    EngineState::Healthy,
    EngineState::Unhealthy,
    EngineState::Disconnected,
];

impl Cluster {
    /// Counts engines by state and the cached containers by node and state. `role` is this
    /// manager's role, which the cluster does not know.
    pub fn metric_figures(&self, role: &'static str) -> ClusterFigures {
        let maps = self.engines();
        let mut engines: BTreeMap<&'static str, u64> = STATES
            .iter()
            .map(|state| (state_label(*state), 0))
            .collect();
        let mut containers: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for engine in maps.all() {
            *engines.entry(state_label(engine.state())).or_default() += 1;
            let name = engine.name();
            engine.with_cache(|cache| {
                for container in cache.containers.values() {
                    let state = container_state_label(container.state());
                    *containers.entry((name.clone(), state)).or_default() += 1;
                }
            });
        }
        ClusterFigures {
            engines: engines.into_iter().collect(),
            containers: containers
                .into_iter()
                .map(|((node, state), count)| (node, state, count))
                .collect(),
            event_listeners: self.bus().listeners() as u64,
            role,
        }
    }
}

/// The `state` label: the state word in lower case.
fn state_label(state: EngineState) -> &'static str {
    match state {
        EngineState::Pending => "pending",
        EngineState::Healthy => "healthy",
        EngineState::Unhealthy => "unhealthy",
        EngineState::Disconnected => "disconnected",
    }
}
