//! Shoal: a drop-in replacement for the Docker Swarm "classic" manager.
//!
//! The `swarm` binary turns a pool of Docker engines into one virtual Docker host. This crate holds
//! everything behind it; the binary only parses, sets up logging and dispatches. From the ground
//! up (a module imports only the ones before it, or its own siblings):
//!
//! - [`metrics`] counts what the manager does for Prometheus (`--metrics-addr`) through one
//!   process-wide handle every module may call, and renders `/metrics`; of the manager it
//!   imports only the version constants.
//! - [`scheduler`] decides where a new container, network, volume or build goes: filters and
//!   strategies over node snapshots, with no I/O.
//! - [`tls`] owns [`tls::TlsOptions`] (the `--tls*` flags) and the rustls server and client
//!   configurations built from them.
//! - [`discovery`] turns a discovery URL (`nodes://`, bare lists, `file://`, and the key-value
//!   stores `etcd://`, `consul://`, `zk://`) into a stream of engine address sets, takes
//!   `swarm join` registrations, and keeps the leader lock in the key-value stores.
//! - [`cluster`] owns the pending and validated [`cluster::Engine`] maps, each engine's connection,
//!   state machine, refresh loop, events monitor and cache, name resolution, the create flow and
//!   the cluster-wide event bus.
//! - [`leadership`] elects one primary among replicated managers (`--replication`): who is
//!   primary, and the campaign and follow loops. It speaks no HTTP.
//! - [`api`] serves the Docker Remote API over tcp, unix sockets and TLS: version negotiation,
//!   one handler per route answering from the cluster's snapshots or forwarding to the engine
//!   that owns the object, errors in Docker's JSON form, and (in `api::replica`) the relay of a
//!   replica's requests to the primary.
//! - [`version`] holds the API versions: what Shoal advertises and accepts, and the one rule
//!   for the version each engine is sent.
//! - [`cli`] turns the command line and environment into typed options (no I/O while parsing).
//! - [`manage`] wires discovery, cluster, leader election and API together for `swarm manage`
//!   and owns shutdown (the one signal future, shared with `swarm join`).
//! - [`join`] and [`list`] are the other two commands: registering an engine in the discovery
//!   store every heartbeat, and printing what the store holds once.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod discovery;
pub mod join;
pub mod leadership;
pub mod list;
pub mod manage;
pub mod metrics;
pub mod scheduler;
pub mod tls;
pub mod version;

#[cfg(test)]
mod properties;

/// The version this build reports (`swarm -v`, `/version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
