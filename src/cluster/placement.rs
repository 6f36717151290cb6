//! Where containers go while they are being created: the scheduler, the memoised node
//! snapshots it decides on, and the creations in flight (the pending set), which every decision
//! counts until the engine has answered. A [`PendingGuard`] takes a creation out of the set when
//! its flow ends, however it ends. Nothing here talks to an engine; the create flow
//! ([`super::create`]) does.
//!
//! Plain requests (the common `docker run`) are decided from a [`RankedView`] kept under the
//! same lock, so that a decision costs the engines that changed since the last one rather than
//! every engine. It learns what changed from three sources: engines push their ID on a
//! [`ChangeQueue`] when their cache, specs or health change; creations entering or leaving
//! the pending set mark their node; and a new membership value is compared with the last one
//! (a walk over every engine, but only when membership changed). Any request the view declines
//! goes through the full selection, which walks every engine's memoised snapshot.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::engine::Engine;
use super::membership::EngineMaps;
use super::memo::ChangeQueue;
use super::snapshot::NodeSnapshots;
use crate::scheduler::node::{ContainerSnapshot, NodeSnapshot};
use crate::scheduler::{RankedView, Scheduler, SchedulingRequest};

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
    /// Engines that changed since the kept ranking was last brought up to date.
    changes: Arc<ChangeQueue>,
}

/// The creations in flight, and the ranking kept for plain requests.
pub struct PendingSet {
    next_key: u64,
    items: Vec<PendingContainer>,
    kept: Kept,
}

/// The ranking kept between decisions and what it was last brought up to date with.
struct Kept {
    view: RankedView,
    /// The membership value last compared with (held weakly: a removed engine is not kept
    /// alive by it, and the allocation stays, so the pointer is not reused).
    maps: Weak<EngineMaps>,
    /// The engine each ranked node ID was built from (weak for the same reasons).
    engines: HashMap<String, Weak<Engine>>,
    /// Nodes whose pending creations changed since the view was last brought up to date.
    dirty: HashSet<String>,
}

impl Placement {
    /// A placement with no creation in flight.
    pub fn new(scheduler: Scheduler, snapshots: NodeSnapshots) -> Placement {
        let view = RankedView::new(&scheduler);
        Placement {
            scheduler,
            snapshots,
            pending: Mutex::new(PendingSet {
                next_key: 0,
                items: Vec::new(),
                kept: Kept {
                    view,
                    maps: Weak::new(),
                    engines: HashMap::new(),
                    dirty: HashSet::new(),
                },
            }),
            changes: Arc::new(ChangeQueue::default()),
        }
    }

    /// The node the full selection would put first for `request` among the validated engines
    /// of `maps` and the creations of `set`, read off the kept ranking; `None` when the view
    /// cannot tell (not a plain request, a configuration without a standing ranking, no
    /// eligible node), and the caller then runs the full selection.
    pub fn best_kept(
        &self,
        set: &mut PendingSet,
        maps: &Arc<EngineMaps>,
        request: &SchedulingRequest,
    ) -> Option<Arc<NodeSnapshot>> {
        if !set.kept.view.ranks() || !RankedView::is_plain(request) {
            return None;
        }
        self.catch_up(set, maps);
        set.kept.view.best(request).cloned()
    }

    /// Whether an engine reported a change since the kept ranking last caught up: a decision
    /// taken before it may then rightly differ from one taken after.
    pub fn changed_since_catch_up(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Brings the kept ranking up to date with `maps` and every change reported since.
    fn catch_up(&self, set: &mut PendingSet, maps: &Arc<EngineMaps>) {
        let PendingSet { items, kept, .. } = set;
        if !std::ptr::eq(kept.maps.as_ptr(), Arc::as_ptr(maps)) {
            self.follow_membership(kept, maps);
        }
        kept.dirty.extend(self.changes.take());
        for id in kept.dirty.drain() {
            let engine = maps
                .validated
                .get(&id)
                .filter(|_| kept.engines.contains_key(&id));
            let Some(engine) = engine else {
                kept.view.remove(&id);
                continue;
            };
            engine.feed.seen();
            match self.snapshots.of_engine(engine) {
                Some(mut node) => {
                    for p in items.iter().filter(|p| p.engine_id == id) {
                        Arc::make_mut(&mut node).add_container(p.snapshot.clone());
                    }
                    kept.view.update(node);
                }
                None => kept.view.remove(&id),
            }
        }
    }

    /// Compares `maps` with the membership the view last saw: engines that left are dropped,
    /// engines that joined (or were replaced) start reporting their changes and are ranked.
    fn follow_membership(&self, kept: &mut Kept, maps: &Arc<EngineMaps>) {
        kept.engines.retain(|id, weak| {
            let same = maps
                .validated
                .get(id)
                .is_some_and(|e| std::ptr::eq(Arc::as_ptr(e), weak.as_ptr()));
            if !same {
                kept.view.remove(id);
                if let Some(engine) = weak.upgrade() {
                    engine.feed.attach(None);
                }
                self.snapshots.forget(weak);
            }
            same
        });
        for (id, engine) in &maps.validated {
            if !kept.engines.contains_key(id) {
                engine.feed.attach(Some(self.changes.clone()));
                kept.engines.insert(id.clone(), Arc::downgrade(engine));
                kept.dirty.insert(id.clone());
            }
        }
        kept.maps = Arc::downgrade(maps);
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
        let mut set = self.pending();
        if let Some(at) = set.items.iter().position(|p| p.key == key) {
            let gone = set.items.remove(at);
            set.kept.dirty.insert(gone.engine_id);
        }
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
        self.kept.dirty.insert(engine_id.clone());
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
