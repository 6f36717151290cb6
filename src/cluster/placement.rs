//! Where containers go while they are being created: the scheduler, the memoised node
//! snapshots it decides on, and the creations in flight (the pending set), which every decision
//! counts until the engine has answered. A [`PendingGuard`] takes a creation out of the set when
//! its flow ends, however it ends. Nothing here talks to an engine; the create flow
//! ([`super::create`]) does.
use std::sync::{Arc, Mutex, MutexGuard};

use super::membership::EngineMaps;
use super::snapshot::NodeSnapshots;
use crate::scheduler::node::{ContainerSnapshot, NodeSnapshot};
use crate::scheduler::Scheduler;

/// A creation in flight: counted by the scheduler until the engine has answered.
#[derive(Debug, Clone)]
pub struct PendingContainer {
    /// Unique key of this creation.
    pub key: u64,
    /// Engine ID the container is being created on.
    pub engine_id: String,
    pub snapshot: ContainerSnapshot,
}

/// The scheduler and the creations it is currently accounting for.
pub struct Placement {
    pub scheduler: Scheduler,
    /// The scheduler's view of each validated engine.
    snapshots: NodeSnapshots,
    /// Held while choosing a node and registering the pending creation; never across an await.
    pending: Mutex<PendingSet>,
}

/// The creations in flight.
#[derive(Default)]
pub struct PendingSet {
    next_key: u64,
    items: Vec<PendingContainer>,
}

impl Placement {
    /// A placement with no creation in flight.
    pub fn new(scheduler: Scheduler, snapshots: NodeSnapshots) -> Placement {
        Placement {
            scheduler,
            snapshots,
            pending: Mutex::new(PendingSet::default()),
        }
    }

    /// Snapshots of the validated engines of `maps` (`listed`: with every container), with the
    /// creations in flight added.
    pub fn node_snapshots(&self, maps: &EngineMaps, listed: bool) -> Vec<Arc<NodeSnapshot>> {
        let mut nodes = self.snapshots.of_validated(maps, listed);
        self.pending().add_to(&mut nodes);
        nodes
    }

    /// The memoised snapshots alone, for a decision taken under [`Placement::pending`].
    pub fn snapshots(&self) -> &NodeSnapshots {
        &self.snapshots
    }

    /// The pending set, locked: a node is chosen and the creation registered under one lock,
    /// so two creates never both count on the same free room.
    pub fn pending(&self) -> MutexGuard<'_, PendingSet> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the creation registered under `key` out of the set when the guard is dropped.
    pub fn hold(&self, key: u64) -> PendingGuard<'_> {
        PendingGuard {
            placement: self,
            key,
        }
    }

    fn release(&self, key: u64) {
        self.pending().items.retain(|p| p.key != key);
    }

    /// Names of containers being created right now.
    pub fn pending_names(&self) -> Vec<String> {
        let set = self.pending();
        set.items
            .iter()
            .filter_map(|p| p.snapshot.name.clone())
            .collect()
    }
}

impl PendingSet {
    /// Whether a creation in flight is giving its container the name `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.items
            .iter()
            .any(|p| p.snapshot.name.as_deref() == Some(name))
    }

    /// Registers a creation on the engine `engine_id`; returns its key.
    pub fn add(&mut self, engine_id: String, snapshot: ContainerSnapshot) -> u64 {
        self.next_key += 1;
        let key = self.next_key;
        self.items.push(PendingContainer {
            key,
            engine_id,
            snapshot,
        });
        key
    }

    /// Adds creations in flight to the snapshots of their engines (copying only those
    /// snapshots).
    pub fn add_to(&self, nodes: &mut [Arc<NodeSnapshot>]) {
        for p in &self.items {
            if let Some(n) = nodes.iter_mut().find(|n| n.id == p.engine_id) {
                Arc::make_mut(n).add_container(p.snapshot.clone());
            }
        }
    }
}

/// Releases a pending creation when dropped, so an error or a cancelled request never leaves
/// a phantom reservation behind.
pub struct PendingGuard<'a> {
    placement: &'a Placement,
    key: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.placement.release(self.key);
    }
}
