//! The Docker Remote API served by the manager: routing, version handling, errors, and one
//! module per resource. Handlers answer from cluster snapshots or forward to the owning engine.
pub mod build;
pub mod containers;
pub mod error;
pub mod exec;
pub mod filters;
pub mod images;
pub mod networks;
pub mod proxy;
pub mod prune;
pub mod server;
pub mod system;
pub mod version;
pub mod volumes;

pub use server::{app, bind, serve, ApiOptions, AppState, Listener};
