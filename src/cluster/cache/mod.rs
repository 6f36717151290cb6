//! What the manager knows about one engine's objects between refreshes: containers, images,
//! networks and volumes. Raw JSON is kept for everything re-emitted to clients; typed fields only
//! for what the manager decides on. Readers load an immutable snapshot (`Arc<EngineCache>`); one
//! writer at a time publishes a new one, so reads never wait on the events monitor.
//!
//! This module owns the snapshot itself; the records it holds and the lookup tables over them
//! live in the submodules below and are re-exported here, so callers name them through `cache`.
//! Nothing here talks to an engine: the refresh code fills snapshots, everything else reads them.
mod container;
mod image;
mod index;
pub mod listing;
mod record;
mod summary;

pub use container::{
    entry_hash, BoundPort, Container, ContainerDetails, ContainerState, ListRender, ListRenderMemo,
    StateKind,
};
pub use image::Image;
pub use index::{short_id, ContainerIndex, LookupKey};
pub use record::{start_array_entry, Record};
pub use summary::{Labels, Mount, NetworkRef, Port, Summary, DYNAMIC_MEMBERS};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// An immutable snapshot of one engine's objects.
#[derive(Debug, Default, Clone)]
pub struct EngineCache {
    /// Containers by full ID.
    pub containers: Arc<HashMap<String, Arc<Container>>>,
    /// `GET /images/json?all=1` entries.
    pub images: Arc<Vec<Arc<Image>>>,
    /// `GET /networks` entries, by network ID.
    pub networks: Arc<BTreeMap<String, Arc<Record>>>,
    /// `GET /volumes` entries, by volume name.
    pub volumes: Arc<BTreeMap<String, Arc<Record>>>,
    /// Lookup tables over `containers`, built on first use; every new snapshot starts without.
    index: OnceLock<Arc<ContainerIndex>>,
}

impl EngineCache {
    /// The lookup tables over this snapshot's containers.
    pub fn index(&self) -> &ContainerIndex {
        self.index
            .get_or_init(|| Arc::new(ContainerIndex::new(&self.containers)))
    }

    /// Forgets the lookup tables (the containers are about to change).
    pub fn reset_index(&mut self) {
        self.index = OnceLock::new();
    }
}
