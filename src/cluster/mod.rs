//! The cluster side of the manager: engines, their connections and caches, membership, name
//! resolution and the event bus. Nothing here speaks to API clients.
pub mod budget;
pub mod cache;
#[allow(clippy::module_inception)]
pub mod cluster;
pub mod create;
pub mod directory;
pub mod engine;
pub mod events;
pub mod fanout;
pub mod figures;
pub mod health;
pub mod membership;
pub mod memo;
pub mod names;
pub mod order;
pub mod placement;
pub mod raw_http;
pub mod snapshot;
pub mod startup;
pub mod transport;
pub mod watchdog;

pub use cluster::{Cluster, ClusterOptions};
pub use engine::{Engine, EngineError, EngineOptions, EngineSpecs};
pub use health::EngineState;
pub use membership::EngineMaps;
