//! Cluster membership as one immutable value: the pending engines by address, the validated ones
//! by engine ID, and the directory of names and IDs they share. The cluster publishes a new
//! [`EngineMaps`] on every change; readers (name resolution, snapshots, lists) hold one for as
//! long as they need a consistent view. Nothing here changes membership or talks to engines.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::directory::Directory;
use super::engine::Engine;

/// An immutable view of cluster membership.
#[derive(Default, Clone)]
pub struct EngineMaps {
    /// Engines not validated yet, by address.
    pub pending: BTreeMap<String, Arc<Engine>>,
    /// Validated engines, by engine ID.
    pub validated: BTreeMap<String, Arc<Engine>>,
    /// Which engines hold which full IDs, Swarm IDs and names (shared by every version).
    pub directory: Arc<Directory>,
}

impl EngineMaps {
    /// Every engine, validated first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Engine>> {
        self.validated.values().chain(self.pending.values())
    }

    /// Whether an engine at `addr` is a member, pending or validated.
    pub fn has_addr(&self, addr: &str) -> bool {
        self.pending.contains_key(addr) || self.validated.values().any(|e| e.addr == addr)
    }
}
