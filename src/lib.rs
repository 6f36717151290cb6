//! Shoal: a drop-in replacement for the Docker Swarm "classic" manager.
//!
//! The `swarm` binary turns a pool of Docker engines into one virtual Docker host. This crate holds
//! everything behind it:
//!
//! - [`cli`] turns the command line and environment into typed options (no I/O while parsing).
//! - [`discovery`] turns a discovery URL (`nodes://`, bare lists, `file://`, …) into a stream of
//!   engine address sets.
//! - [`cluster`] owns the pending and validated [`cluster::Engine`] maps, each engine's connection,
//!   state machine, refresh loop, events monitor and cache, and the cluster-wide event bus.
//! - [`api`] serves the Docker Remote API over tcp and unix sockets and answers from the cluster's
//!   snapshots, or forwards to the engine that owns the object.
//! - [`leadership`] elects one primary among replicated managers and relays a replica's
//!   requests to it.
//! - [`version`] holds the API versions: what Shoal advertises and accepts, and the one rule
//!   for the version each engine is sent.
//! - [`manage`] wires discovery, cluster, leader election and API together for `swarm manage`.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod discovery;
pub mod leadership;
pub mod manage;
pub mod scheduler;
pub mod tls;
pub mod version;

#[cfg(test)]
mod properties;

/// The version this build reports (`swarm -v`, `/version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
