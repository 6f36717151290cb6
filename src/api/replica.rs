//! What the API does with a request on a replicated manager (`--replication`, SPEC §6): where
//! each request goes, given what the election ([`crate::leadership`]) says about the primary,
//! and the relay that carries a replica's requests there.
//!
//! A replica answers `/_ping`, `/info` and `/debug/…` itself and relays everything else, byte
//! for byte and upgrades included, to the primary over a connection of its own (TLS with the
//! manager's client configuration when TLS is on). The relay adds and changes no header.
//!
//! This module never campaigns or follows: it only reads the election's state.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ApiError;
use super::splice::splice;
use super::version::split_version_prefix;
use crate::cluster::transport;
use crate::leadership::{Leadership, Role};

/// How long a replica waits for a primary to be known before answering a request with an
/// error, at least (the replication TTL counts when it is longer: an election may take that).
const MIN_PRIMARY_WAIT: Duration = Duration::from_secs(5);

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This manager answers it.
    Local,
    /// It is relayed to the primary at this address.
    Primary(String),
    /// No primary can be reached; answer with this (500) message.
    Unavailable(String),
}

/// The API side of replication: routing by the election's view, and the relayed connections.
pub struct Replication {
    /// Who is primary.
    leadership: Arc<Leadership>,
    /// TLS towards the primary (the manager's client configuration), when TLS is on.
    tls: Option<TlsConnector>,
    /// Ends relayed connections at shutdown.
    relays_stop: CancellationToken,
    /// Relayed connections that outlive their request (upgrades, streamed bodies).
    relay_tasks: TaskTracker,
}

impl Replication {
    /// Routes requests by `leadership`, reaching the primary with `tls` when given.
    pub fn new(
        leadership: Arc<Leadership>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Arc<Replication> {
        Arc::new(Replication {
            leadership,
            tls: tls.map(TlsConnector::from),
            relays_stop: CancellationToken::new(),
            relay_tasks: TaskTracker::new(),
        })
    }

    /// The election this routing follows.
    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// The rows `docker info` starts with: `Role`, and on a replica `Primary`.
    pub fn status_rows(&self) -> Vec<[String; 2]> {
        match self.leadership.role() {
            Role::Primary => vec![["Role".into(), Role::Primary.as_str().into()]],
            Role::Replica => vec![
                ["Role".into(), Role::Replica.as_str().into()],
                [
                    "Primary".into(),
                    self.leadership.events().leader().unwrap_or_default(),
                ],
            ],
        }
    }

    /// Ends relayed connections (bounded). Call after [`Leadership::resign`].
    pub async fn close(&self) {
        self.relays_stop.cancel();
        self.relay_tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.relay_tasks.wait()).await;
    }

    /// Decides where a request for `path` (as received, version prefix included) goes; on a
    /// replica without a known primary, waits a while for one.
    pub async fn route(&self, path: &str) -> Route {
        let events = self.leadership.events();
        if answered_by_every_manager(path) || events.is_leader() {
            return Route::Local;
        }
        let wait = self.leadership.ttl().max(MIN_PRIMARY_WAIT);
        let mut held = events.subscribe_held();
        let mut leader = events.subscribe_leader();
        let known = tokio::time::timeout(wait, async {
            loop {
                if *held.borrow_and_update() {
                    return None;
                }
                if let Some(primary) = leader.borrow_and_update().clone() {
                    return Some(primary);
                }
                tokio::select! {
                    changed = held.changed() => if changed.is_err() { return None },
                    changed = leader.changed() => if changed.is_err() { return None },
                }
            }
        })
        .await;
        match known {
            Ok(None) => Route::Local,
            Ok(Some(primary)) if primary == self.leadership.advertise() => Route::Local,
            Ok(Some(primary)) => Route::Primary(primary),
            Err(_) => Route::Unavailable(format!(
                "No elected primary cluster manager: none known after {wait:?}{}",
                self.store_note()
            )),
        }
    }

    /// `; the discovery store is unreachable (…)` while it is, else nothing.
    fn store_note(&self) -> String {
        match self.leadership.events().store_problem() {
            Some(problem) => format!(
                "; this replica cannot reach the discovery store ({problem}) and serves only \
                 /_ping and /info until it can"
            ),
            None => String::new(),
        }
    }

    /// Relays `request` to the primary at `primary` and returns its answer; a failure to reach
    /// it is a 500 naming the primary. Upgraded connections keep being relayed after this
    /// returns, until either side closes or the manager shuts down.
    pub async fn relay(&self, primary: &str, mut request: Request) -> Response {
        let unreachable = |error: String| {
            ApiError::internal(format!(
                "Unable to reach primary cluster manager ({error}): {primary}{}",
                self.store_note()
            ))
            .into_response()
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let Ok(base) = format!("{scheme}://{primary}").parse::<Uri>() else {
            return unreachable(format!("invalid primary address {primary:?}"));
        };
        let stream = match transport::connect(&base, self.tls.as_ref()).await {
            Ok(stream) => stream,
            Err(error) => return unreachable(transport::error_chain(&error)),
        };
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(error) => return unreachable(error.to_string()),
            };
        let stop = self.relays_stop.clone();
        self.relay_tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = connection.with_upgrades() => {}
            }
        });

        let client_upgrade = hyper::upgrade::on(&mut request);
        let (mut parts, body) = request.into_parts();
        // The request line carries the path as the client sent it, prefix and query included.
        if let Some(path_and_query) = parts.uri.path_and_query().cloned() {
            if let Ok(uri) = Uri::builder().path_and_query(path_and_query).build() {
                parts.uri = uri;
            }
        }
        let upstream = http::Request::from_parts(parts, body);
        let mut response = match sender.send_request(upstream).await {
            Ok(response) => response,
            Err(error) => return unreachable(error.to_string()),
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            // Framing belongs to each connection; hyper sets it again towards the client.
            parts.headers.remove(header::CONNECTION);
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove("keep-alive");
            return Response::from_parts(parts, Body::new(body));
        }
        let primary_upgrade = hyper::upgrade::on(&mut response);
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *answer.headers_mut() = response.headers().clone();
        self.relay_tasks.spawn(splice(
            client_upgrade,
            primary_upgrade,
            primary.to_string(),
            self.relays_stop.clone(),
        ));
        answer
    }
}

/// Paths a replica answers itself (SPEC §6): `/_ping`, `/info` and the debug routes, with or
/// without a version prefix.
pub fn answered_by_every_manager(path: &str) -> bool {
    let (_, rest) = split_version_prefix(path);
    rest == "/_ping" || rest == "/info" || rest == "/debug" || rest.starts_with("/debug/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::kv::{ElectionEvents, LeaderStore, StoreFuture, Tenure};
    use crate::discovery::KvStore;
    use crate::leadership::testing::{manager, until, MemoryStore};

    #[test]
    fn ping_info_and_debug_are_answered_by_every_manager() {
        for path in [
            "/_ping",
            "/v1.40/_ping",
            "/info",
            "/v1.41/info",
            "/debug/pprof/",
            "/debug",
        ] {
            assert!(answered_by_every_manager(path), "{path}");
        }
        for path in [
            "/containers/json",
            "/v1.41/containers/json",
            "/version",
            "/debugger",
            "/infos",
        ] {
            assert!(!answered_by_every_manager(path), "{path}");
        }
    }

    #[tokio::test]
    async fn a_replica_sends_all_but_ping_info_and_debug_to_the_primary() {
        let memory = Arc::new(MemoryStore::default());
        let a = manager(&memory, "a:1");
        until("a leads", || a.role() == Role::Primary).await;
        let b = manager(&memory, "b:2");
        until("b knows a", || b.primary().as_deref() == Some("a:1")).await;
        let (a_api, b_api) = (
            Replication::new(a.clone(), None),
            Replication::new(b.clone(), None),
        );
        assert_eq!(
            b_api.status_rows(),
            [
                ["Role".to_string(), "replica".to_string()],
                ["Primary".into(), "a:1".into()]
            ]
        );
        assert_eq!(
            a_api.status_rows(),
            [["Role".to_string(), "primary".to_string()]]
        );
        assert_eq!(
            b_api.route("/v1.41/containers/json").await,
            Route::Primary("a:1".into())
        );
        assert_eq!(b_api.route("/info").await, Route::Local);
        assert_eq!(a_api.route("/containers/json").await, Route::Local);

        a.resign().await;
        until("b leads", || b.role() == Role::Primary).await;
        assert_eq!(b_api.route("/containers/json").await, Route::Local);
        b.resign().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_without_a_primary_answers_with_an_explanation() {
        struct Unreachable;
        impl LeaderStore for Unreachable {
            fn hold<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: Duration,
                _: &'a ElectionEvents,
                _: &'a CancellationToken,
            ) -> StoreFuture<'a, Tenure> {
                Box::pin(async {
                    Err("store 127.0.0.1:1 unreachable: connection refused".to_string())
                })
            }
            fn follow<'a>(
                &'a self,
                _: &'a str,
                _: &'a ElectionEvents,
                _: &'a CancellationToken,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async {
                    Err("store 127.0.0.1:1 unreachable: connection refused".to_string())
                })
            }
        }
        let store = KvStore {
            discovery: Arc::new(crate::discovery::nodes::NodesBackend::new("a:1").unwrap()),
            election: Arc::new(Unreachable),
            leader_key: "k".into(),
        };
        let leadership = Leadership::start(&store, "a:1".into(), Duration::from_secs(2));
        let replication = Replication::new(leadership.clone(), None);
        let Route::Unavailable(message) = replication.route("/containers/json").await else {
            panic!("expected no primary");
        };
        assert!(
            message.starts_with("No elected primary cluster manager"),
            "{message}"
        );
        assert!(
            message.contains("cannot reach the discovery store"),
            "{message}"
        );
        assert!(message.contains("connection refused"), "{message}");
        assert_eq!(replication.route("/_ping").await, Route::Local);
        leadership.resign().await;
    }
}
