//! The Docker Remote API served by the manager. Handlers answer from cluster snapshots or
//! forward to the owning engine.
//!
//! The modules stand on two floors. At the top, [`server`] builds the router and the layer
//! every request passes, and [`listener`] accepts connections; they may import anything below.
//! The handlers, one module per resource, are [`containers`], [`images`], [`build`],
//! [`networks`], [`volumes`], [`exec`], [`prune`], [`info`] (`/_ping`, `/version`, `/info`)
//! and [`events`]. A handler module imports only the floor beneath the handlers, never another
//! handler module:
//!
//! - [`state`]: the state handlers share and the extractors (`RequestedVersion`);
//! - [`request`]: query values, names and small JSON bodies read from requests;
//! - [`error`]: every error in Docker's JSON form, the one 404, and `json_response`;
//! - [`proxy`]: one request to one engine (streaming, upgrades);
//! - [`fanout`]: one call on many engines, answered as one (lists of answers, merged streams);
//! - [`ps`]: what `docker ps` selects and how it is written;
//! - [`filters`], [`limits`], [`version`]: the `filters` parameter, what a client may cost,
//!   API versions.
//!
//! Handler tests run the whole router in-process over a cluster without engines (`testing`).
pub mod build;
pub mod containers;
pub mod error;
pub mod events;
pub mod exec;
pub mod fanout;
pub mod filters;
pub mod images;
pub mod info;
pub mod limits;
pub mod listener;
pub mod networks;
pub mod proxy;
pub mod prune;
pub mod ps;
pub mod replica;
pub mod request;
pub mod server;
pub mod splice;
pub mod state;
pub mod swarm;
#[cfg(test)]
pub(crate) mod testing;
pub mod version;
pub mod volumes;

pub use limits::ClientLimits;
pub use listener::{bind, serve, ConnectionGate, Listener};
pub use server::app;
pub use state::{ApiOptions, AppState};
