//! The scheduler's view of the engines: one [`NodeSnapshot`] per validated engine, built from
//! the engine's specs, cache and health, and memoised so that it is rebuilt only when that
//! engine's cache or health changed (creates at scale must not rebuild a thousand snapshots
//! each). Pure reads of engine state; creations in flight are added on top by
//! [`super::placement`], and nothing here decides a placement.
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use super::cache::{Container, EngineCache};
use super::engine::Engine;
use super::membership::EngineMaps;
use super::memo::PerEngine;
use crate::scheduler::node::{ContainerSnapshot, ImageSnapshot, NodeSnapshot};
use crate::scheduler::resources::{shares_to_cpus, total_with_overcommit};
use crate::scheduler::PortBinding;

/// A snapshot and the cache and health indicator it was built from. Holding the cache keeps its
/// address from being reused, so pointer equality is a sound check.
type Built = (Arc<EngineCache>, i64, Arc<NodeSnapshot>);

/// The memoised snapshots of every validated engine, counting and listing containers apart.
pub struct NodeSnapshots {
    /// `swarm.overcommit`.
    overcommit: f64,
    /// `--engine-failure-retry`, for the health indicator.
    retry: u32,
    /// Per engine: the counting snapshot, then the listing one.
    memo: PerEngine<[Option<Built>; 2]>,
}

impl NodeSnapshots {
    /// No snapshot built yet.
    pub fn new(overcommit: f64, retry: u32) -> NodeSnapshots {
        NodeSnapshots {
            overcommit,
            retry,
            memo: PerEngine::default(),
        }
    }

    /// The snapshots of the validated engines of `maps` (`listed`: with every container, else
    /// only counted), each rebuilt only when its engine's cache or health changed since the last
    /// call. Engines whose specs are not known yet are left out.
    pub fn of_validated(&self, maps: &EngineMaps, listed: bool) -> Vec<Arc<NodeSnapshot>> {
        self.memo.pass(|pass| {
            maps.validated
                .values()
                .filter_map(|engine| {
                    let slot = &mut pass.slot(engine)[usize::from(listed)];
                    self.of(engine, slot, listed)
                })
                .collect()
        })
    }

    /// The counting snapshot of one engine, rebuilt only when its cache or health changed;
    /// `None` while its specs are not known.
    pub fn of_engine(&self, engine: &Arc<Engine>) -> Option<Arc<NodeSnapshot>> {
        self.memo
            .with_slot(engine, |slots| self.of(engine, &mut slots[0], false))
    }

    /// Forgets what was built for an engine that left.
    pub fn forget(&self, engine: &Weak<Engine>) {
        self.memo.forget(engine);
    }

    /// One engine's snapshot, from `slot` when it was built from the current cache and health.
    fn of(
        &self,
        engine: &Engine,
        slot: &mut Option<Built>,
        listed: bool,
    ) -> Option<Arc<NodeSnapshot>> {
        let health = engine.health_indicator(self.retry);
        let hit = slot
            .as_ref()
            .filter(|(cache, h, _)| *h == health && engine.with_cache(|c| Arc::ptr_eq(c, cache)))
            .map(|(_, _, snapshot)| snapshot.clone());
        if hit.is_some() {
            return hit;
        }
        let cache = engine.cache();
        let fresh = Arc::new(node_snapshot(
            engine,
            &cache,
            self.overcommit,
            health,
            listed,
        )?);
        *slot = Some((cache, health, fresh.clone()));
        Some(fresh)
    }
}

/// Builds the scheduler's view of one engine from `cache`, one of its snapshots, and its health
/// indicator. `listed` snapshots list every container; the others only count them and their
/// reservations.
pub fn node_snapshot(
    engine: &Engine,
    cache: &EngineCache,
    overcommit: f64,
    health_indicator: i64,
    listed: bool,
) -> Option<NodeSnapshot> {
    let specs = engine.specs()?;
    let mut node = NodeSnapshot {
        id: specs.id.clone(),
        name: specs.name.clone(),
        addr: engine.addr.clone(),
        ip: specs.ip.clone(),
        labels: specs.labels.clone(),
        health_indicator,
        total_cpus: total_with_overcommit(specs.cpus, overcommit),
        total_memory: total_with_overcommit(specs.memory, overcommit),
        used_cpus: 0,
        used_memory: 0,
        containers: Vec::with_capacity(if listed { cache.containers.len() } else { 0 }),
        unlisted: 0,
        images: cache
            .images
            .iter()
            .map(|i| ImageSnapshot {
                id: i.id.clone(),
                repo_tags: i.repo_tags.clone(),
                repo_digests: i.repo_digests.clone(),
            })
            .collect(),
        volumes: cache.volumes.keys().cloned().collect(),
    };
    for c in cache.containers.values() {
        if listed {
            node.add_container(container_snapshot(c, specs.cpus));
        } else {
            node.unlisted += 1;
            node.used_cpus = node
                .used_cpus
                .saturating_add(shares_to_cpus(c.details.cpu_shares, specs.cpus));
            node.used_memory = node.used_memory.saturating_add(c.details.memory);
        }
    }
    Some(node)
}

fn container_snapshot(c: &Container, engine_cpus: i64) -> ContainerSnapshot {
    let labels: BTreeMap<String, String> = c
        .labels()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let port_bindings = c
        .details
        .port_bindings()
        .iter()
        .map(|b| PortBinding {
            port: b.port.to_string(),
            host_ip: b.host_ip.to_string(),
            host_port: b.host_port.to_string(),
        })
        .collect();
    let name = c.name();
    ContainerSnapshot {
        id: c.id.clone(),
        swarm_id: c.swarm_id().map(str::to_string),
        name: (!name.is_empty()).then(|| name.to_string()),
        names: c.names().map(str::to_string).collect(),
        labels,
        network_mode: c.details.network_mode.to_string(),
        exposed_ports: c.details.exposed_ports().map(str::to_string).collect(),
        port_bindings,
        pending: false,
        reserved_cpus: shares_to_cpus(c.details.cpu_shares, engine_cpus),
        reserved_memory: c.details.memory,
    }
}
