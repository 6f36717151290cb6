//! Replicated managers (`--replication`, SPEC §6): the election of one primary in the
//! discovery store, and what a replica does with the requests it receives.
//!
//! Every manager runs the whole cluster machinery whatever its role. [`Leadership`] runs two
//! background tasks: the *candidate* campaigns for the lock at `<prefix>/docker/swarm/leader`
//! with the manager's `--advertise` address and keeps it while it can; the *follower* watches
//! the key and remembers who the primary is. The store-specific parts (how a lock is taken,
//! renewed, released and watched) belong to the stores, behind [`LeaderStore`].
//!
//! A replica answers `/_ping`, `/info` and `/debug/…` itself and relays everything else, byte
//! for byte and upgrades included, to the primary over a connection of its own (TLS with the
//! manager's client configuration when TLS is on). The relay adds and changes no header.
//!
//! Unlike the classic, a manager stopped with SIGTERM or SIGINT resigns: [`Leadership::resign`]
//! releases the lock before the process exits, so another manager takes over at once instead of
//! after the lock's TTL.
//!
//! This module never touches the cluster, the scheduler or the routes.
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

use crate::api::error::ApiError;
use crate::api::version::split_version_prefix;
use crate::cluster::transport;
use crate::discovery::kv::{ElectionEvents, LeaderStore, Tenure};
use crate::discovery::KvStore;

/// The longest pause between two campaigns or two follow attempts after a store error (the
/// classic's value). Shorter TTLs shorten it, so a store that comes back is used within a TTL.
const MAX_STORE_RETRY: Duration = Duration::from_secs(10);

/// How long a replica waits for a primary to be known before answering a request with an
/// error, at least (the replication TTL counts when it is longer: an election may take that).
const MIN_PRIMARY_WAIT: Duration = Duration::from_secs(5);

/// The role a manager plays now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lock and serves every request itself.
    Primary,
    /// Relays requests to the primary.
    Replica,
}

impl Role {
    /// As `docker info` shows it (lowercase, as the classic did).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

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

/// Leader election and request relaying of one manager.
pub struct Leadership {
    /// This manager's `--advertise` address: the value it writes when elected.
    advertise: String,
    /// Lock state, known leader, store health; written by the store tasks.
    events: Arc<ElectionEvents>,
    /// `--replication-ttl`.
    ttl: Duration,
    /// TLS towards the primary (the manager's client configuration), when TLS is on.
    tls: Option<TlsConnector>,
    /// Stops the candidate (which then releases the lock) and the follower.
    election_stop: CancellationToken,
    /// Ends relayed connections at shutdown.
    relays_stop: CancellationToken,
    /// The candidate and follower tasks.
    election_tasks: TaskTracker,
    /// Relayed connections that outlive their request (upgrades, streamed bodies).
    relay_tasks: TaskTracker,
}

impl Leadership {
    /// Starts campaigning and following in `store`. Call [`Leadership::resign`] before exiting.
    pub fn start(
        store: &KvStore,
        advertise: String,
        ttl: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Arc<Leadership> {
        let leadership = Arc::new(Leadership {
            advertise,
            events: Arc::new(ElectionEvents::new()),
            ttl,
            tls: tls.map(TlsConnector::from),
            election_stop: CancellationToken::new(),
            relays_stop: CancellationToken::new(),
            election_tasks: TaskTracker::new(),
            relay_tasks: TaskTracker::new(),
        });
        let retry = ttl.clamp(Duration::from_secs(1), MAX_STORE_RETRY);
        leadership.election_tasks.spawn(campaign(
            store.election.clone(),
            store.leader_key.clone(),
            leadership.advertise.clone(),
            ttl,
            retry,
            leadership.events.clone(),
            leadership.election_stop.clone(),
        ));
        leadership.election_tasks.spawn(follow(
            store.election.clone(),
            store.leader_key.clone(),
            retry,
            leadership.events.clone(),
            leadership.election_stop.clone(),
        ));
        leadership.election_tasks.close();
        leadership
    }

    /// The role right now.
    pub fn role(&self) -> Role {
        if self.events.is_leader() {
            Role::Primary
        } else {
            Role::Replica
        }
    }

    /// The primary's address as last seen in the store (this manager's own when it leads).
    pub fn primary(&self) -> Option<String> {
        if self.events.is_leader() {
            return Some(self.advertise.clone());
        }
        self.events.leader()
    }

    /// The election state, for tests and status.
    pub fn events(&self) -> &ElectionEvents {
        &self.events
    }

    /// The rows `docker info` starts with: `Role`, and on a replica `Primary`.
    pub fn status_rows(&self) -> Vec<[String; 2]> {
        match self.role() {
            Role::Primary => vec![["Role".into(), Role::Primary.as_str().into()]],
            Role::Replica => vec![
                ["Role".into(), Role::Replica.as_str().into()],
                ["Primary".into(), self.events.leader().unwrap_or_default()],
            ],
        }
    }

    /// Stops campaigning and following, releasing the lock if held; waits for both (bounded).
    /// Also ends relayed connections.
    pub async fn resign(&self) {
        self.election_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.election_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Leader Election: the store did not confirm the release in time");
        }
        self.relays_stop.cancel();
        self.relay_tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.relay_tasks.wait()).await;
    }

    /// Decides where a request for `path` (as received, version prefix included) goes; on a
    /// replica without a known primary, waits a while for one.
    pub async fn route(&self, path: &str) -> Route {
        if answered_by_every_manager(path) || self.events.is_leader() {
            return Route::Local;
        }
        let wait = self.ttl.max(MIN_PRIMARY_WAIT);
        let mut held = self.events.subscribe_held();
        let mut leader = self.events.subscribe_leader();
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
            Ok(Some(primary)) if primary == self.advertise => Route::Local,
            Ok(Some(primary)) => Route::Primary(primary),
            Err(_) => Route::Unavailable(format!(
                "No elected primary cluster manager: none known after {wait:?}{}",
                self.store_note()
            )),
        }
    }

    /// `; the discovery store is unreachable (…)` while it is, else nothing.
    fn store_note(&self) -> String {
        match self.events.store_problem() {
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
            Err(error) => return unreachable(crate::discovery::kv::error_chain(&error)),
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
        let stop = self.relays_stop.clone();
        let primary = primary.to_string();
        self.relay_tasks.spawn(async move {
            let (client, upstream) = match tokio::join!(client_upgrade, primary_upgrade) {
                (Ok(client), Ok(upstream)) => (client, upstream),
                (client, upstream) => {
                    tracing::debug!(%primary, client_ok = client.is_ok(), primary_ok = upstream.is_ok(),
                        "Relayed upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                () = stop.cancelled() => {}
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    tracing::debug!(%primary, result = ?copied, "Relayed upgraded connection ended");
                }
            }
        });
        answer
    }
}

/// Paths a replica answers itself (SPEC §6): `/_ping`, `/info` and the debug routes, with or
/// without a version prefix.
pub fn answered_by_every_manager(path: &str) -> bool {
    let (_, rest) = split_version_prefix(path);
    rest == "/_ping" || rest == "/info" || rest == "/debug" || rest.starts_with("/debug/")
}

/// The candidate: campaigns, holds, campaigns again after a loss, pauses after store errors,
/// and releases the lock when stopped.
async fn campaign(
    store: Arc<dyn LeaderStore>,
    key: String,
    advertise: String,
    ttl: Duration,
    retry: Duration,
    events: Arc<ElectionEvents>,
    stop: CancellationToken,
) {
    loop {
        let outcome = store.hold(&key, &advertise, ttl, &events, &stop).await;
        match outcome {
            Ok(Tenure::Resigned) => {
                events.released("resigned");
                if events.leader().as_deref() == Some(advertise.as_str()) {
                    tracing::info!("Leader Election: lock released");
                }
                return;
            }
            Ok(Tenure::Lost(why)) => events.released(&why),
            Err(error) => {
                events.released(&error);
                events.store_failed(&error);
                tracing::error!(error = %error, retry = ?retry, "Leader Election: cannot campaign; will retry");
                if !crate::discovery::kv::sleep_or_shutdown(retry, &stop).await {
                    return;
                }
            }
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

/// The follower: keeps the known leader up to date, pausing after store errors.
async fn follow(
    store: Arc<dyn LeaderStore>,
    key: String,
    retry: Duration,
    events: Arc<ElectionEvents>,
    stop: CancellationToken,
) {
    loop {
        match store.follow(&key, &events, &stop).await {
            Ok(()) => return,
            Err(error) => {
                events.store_failed(&error);
                tracing::error!(error = %error, retry = ?retry, "Leader Election: cannot follow the leader key; will retry");
                if !crate::discovery::kv::sleep_or_shutdown(retry, &stop).await {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::kv::StoreFuture;
    use std::sync::Mutex;

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

    /// A store whose lock and leader key live in memory, shared by several "managers".
    #[derive(Default)]
    struct MemoryStore {
        holder: Mutex<Option<String>>,
        changed: tokio::sync::Notify,
    }

    impl LeaderStore for MemoryStore {
        fn hold<'a>(
            &'a self,
            key: &'a str,
            value: &'a str,
            _ttl: Duration,
            events: &'a ElectionEvents,
            shutdown: &'a CancellationToken,
        ) -> StoreFuture<'a, Tenure> {
            let _ = key;
            Box::pin(async move {
                loop {
                    let notified = self.changed.notified();
                    {
                        let mut holder = self.holder.lock().unwrap();
                        if holder.is_none() {
                            *holder = Some(value.to_string());
                            break;
                        }
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(Tenure::Resigned),
                        () = notified => {}
                    }
                }
                self.changed.notify_waiters();
                events.acquired();
                shutdown.cancelled().await;
                self.holder.lock().unwrap().take();
                self.changed.notify_waiters();
                Ok(Tenure::Resigned)
            })
        }

        fn follow<'a>(
            &'a self,
            _key: &'a str,
            events: &'a ElectionEvents,
            shutdown: &'a CancellationToken,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                loop {
                    let notified = self.changed.notified();
                    if let Some(holder) = self.holder.lock().unwrap().clone() {
                        events.leader_is(&holder);
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = notified => {}
                    }
                }
            })
        }
    }

    fn store(memory: &Arc<MemoryStore>) -> KvStore {
        KvStore {
            discovery: Arc::new(crate::discovery::nodes::NodesBackend::new("a:1").unwrap()),
            election: memory.clone(),
            leader_key: "docker/swarm/leader".into(),
        }
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }

    #[tokio::test]
    async fn one_manager_leads_and_the_other_follows_until_it_resigns() {
        let memory = Arc::new(MemoryStore::default());
        let ttl = Duration::from_secs(1);
        let a = Leadership::start(&store(&memory), "a:1".into(), ttl, None);
        until("a leads", || a.role() == Role::Primary).await;
        let b = Leadership::start(&store(&memory), "b:2".into(), ttl, None);
        until("b knows a", || b.primary().as_deref() == Some("a:1")).await;
        assert_eq!(b.role(), Role::Replica);
        assert_eq!(
            b.status_rows(),
            [
                ["Role".to_string(), "replica".to_string()],
                ["Primary".into(), "a:1".into()]
            ]
        );
        assert_eq!(
            a.status_rows(),
            [["Role".to_string(), "primary".to_string()]]
        );
        assert_eq!(
            b.route("/v1.41/containers/json").await,
            Route::Primary("a:1".into())
        );
        assert_eq!(b.route("/info").await, Route::Local);
        assert_eq!(a.route("/containers/json").await, Route::Local);

        a.resign().await;
        until("b leads", || b.role() == Role::Primary).await;
        assert_eq!(b.route("/containers/json").await, Route::Local);
        b.resign().await;
        assert!(memory.holder.lock().unwrap().is_none());
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
        let leadership = Leadership::start(&store, "a:1".into(), Duration::from_secs(2), None);
        let Route::Unavailable(message) = leadership.route("/containers/json").await else {
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
        assert_eq!(leadership.route("/_ping").await, Route::Local);
        leadership.resign().await;
    }
}
