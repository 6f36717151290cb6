//! The Docker Remote API served by the manager: routing, version handling, errors, and one
//! module per resource. Handlers answer from cluster snapshots or forward to the owning engine.
pub mod build;
pub mod containers;
pub mod error;
pub mod exec;
pub mod filters;
pub mod images;
pub mod limits;
pub mod listener;
pub mod networks;
pub mod proxy;
pub mod prune;
pub mod replica;
pub mod server;
pub mod system;
pub mod version;
pub mod volumes;

pub use limits::ClientLimits;
pub use listener::{bind, serve, ConnectionGate, Listener};
pub use server::{app, ApiOptions, AppState};
