//! What every handler shares: the application state ([`AppState`]), the server's options
//! ([`ApiOptions`]), and the extractors that read what the outer layer of
//! [`super::server`] recorded on a request ([`RequestedVersion`]). This module holds data and
//! reads it; it must not answer requests, talk to engines or import a handler module.
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::limits::ClientLimits;
use super::version::ApiVersion;
use crate::cluster::Cluster;

/// Options of the API server.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// `--api-enable-cors`.
    pub cors: bool,
    /// `--experimental`.
    pub experimental: bool,
    /// What one client may cost: timeouts, connection cap, body budget.
    pub limits: ClientLimits,
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub cluster: Arc<Cluster>,
    pub opts: Arc<ApiOptions>,
    /// Cancelled when the manager shuts down; ends long streams such as `/events`.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The tasks a request starts that outlive its handler (hijacked streams, streamed relays
    /// and the body copies they feed): the manager waits for them at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// With `--replication`: the election, which sends a replica's requests to the primary.
    pub replication: Option<Arc<super::replica::Replication>>,
}

/// The API version a request asked for (its `/vX.Y` prefix), or `None` without a prefix.
///
/// The outer layer records it on every request; handlers take it as an argument (it never
/// rejects a request), and code holding the whole request reads it with
/// [`RequestedVersion::of`].
#[derive(Debug, Clone, Copy)]
pub struct RequestedVersion(pub Option<ApiVersion>);

impl RequestedVersion {
    /// The version recorded in a request's extensions; none when nothing was recorded.
    pub fn of(extensions: &http::Extensions) -> RequestedVersion {
        extensions
            .get::<RequestedVersion>()
            .copied()
            .unwrap_or(RequestedVersion(None))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestedVersion {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestedVersion::of(&parts.extensions))
    }
}
