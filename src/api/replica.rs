//! What the API does with a request on a replicated manager (`--replication`, SPEC §6): where
//! each request goes, given what the election ([`crate::leadership`]) says about the primary,
//! and the relay that carries a replica's requests there.
//!
//! A replica answers `/_ping`, `/info` and `/debug/…` itself and relays everything else, byte
//! for byte and upgrades included, to the primary over a connection of its own (TLS with the
//! manager's client configuration when TLS is on). The relay adds and changes no header.
//!
//! A request the primary cannot have received (the connection to it could not be opened, or no
//! primary is known) is held until the next election result, at most [`hold_limit`], then sent
//! to the new primary or served here when this manager was elected; one that was sent and lost
//! its connection is never sent again. The readiness a load balancer checks
//! (`/_ping?ready=1`) asks [`Replication::readiness`].
//!
//! This module never campaigns or follows: it only reads the election's state.
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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

/// What [`hold_limit`] adds to twice the TTL: the store's expiry granularity and a campaign's
/// round trips.
const HOLD_MARGIN: Duration = Duration::from_secs(2);

/// How often a held request tries the known primary again between election results.
const HELD_RETRY: Duration = Duration::from_millis(250);

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
        let wait = self.hold_limit();
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

    /// How long a request may be held for want of a primary that can receive it: see
    /// [`hold_limit`].
    pub fn hold_limit(&self) -> Duration {
        hold_limit(self.leadership.ttl())
    }

    /// Whether a load balancer should send requests here (`/_ping?ready=1`): a primary is ready;
    /// a replica is once it knows a primary. The error says why not.
    pub fn readiness(&self) -> Result<(), String> {
        let events = self.leadership.events();
        if events.is_leader() || events.leader().is_some() {
            return Ok(());
        }
        Err(format!(
            "This replica knows no primary cluster manager yet{}",
            self.store_note()
        ))
    }

    /// Relays `request` to the primary at `primary` and returns its answer. Upgraded
    /// connections keep being relayed after this returns, until either side closes or the
    /// manager shuts down.
    ///
    /// The connection is opened before anything of the request is sent, so a primary that cannot
    /// be reached has seen nothing of it: the request is then held until the next election
    /// result (at most [`hold_limit`]) and relayed to the new primary, or handed back
    /// ([`Relayed::Local`]) when this manager is the one elected. A request that was sent and
    /// then lost its connection may have been carried out, and is never sent twice.
    pub async fn relay(&self, primary: &str, request: Request) -> Relayed {
        let held_since = Instant::now();
        let limit = self.hold_limit();
        let deadline = held_since + limit;
        let mut upstream = origin_form(request);
        let mut primary = primary.to_string();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let failure = match self.open(&primary).await {
                Ok(mut sender) => {
                    let client_upgrade = hyper::upgrade::on(&mut upstream);
                    match sender.try_send_request(upstream).await {
                        Ok(response) => {
                            if attempts > 1 {
                                tracing::info!(
                                    primary = %primary,
                                    held = ?held_since.elapsed(),
                                    attempts,
                                    "Relayed a held request to the primary"
                                );
                            }
                            return Relayed::Answer(self.answer(
                                &primary,
                                response,
                                client_upgrade,
                            ));
                        }
                        Err(mut error) => match error.take_message() {
                            // The connection closed before the request was written: not sent.
                            Some(mut unsent) => {
                                unsent.extensions_mut().insert(client_upgrade);
                                upstream = unsent;
                                error.into_error().to_string()
                            }
                            None => {
                                return Relayed::Answer(
                                    self.lost_in_flight(&primary, &error.into_error()),
                                )
                            }
                        },
                    }
                }
                Err(error) => error,
            };
            if attempts == 1 {
                tracing::warn!(
                    primary = %primary,
                    error = %failure,
                    limit = ?limit,
                    "The primary did not receive a request; holding it until the next election"
                );
            }
            match self.next_target(deadline).await {
                Some(Target::Stopping) => {
                    return Relayed::Answer(
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!(
                                "This manager is shutting down; the request was not delivered \
                                 to the primary cluster manager ({failure}): {primary}"
                            ),
                        )
                        .into_response(),
                    );
                }
                Some(Target::Local) => {
                    tracing::info!(
                        held = ?held_since.elapsed(),
                        "This manager was elected primary; serving a held request itself"
                    );
                    return Relayed::Local(upstream);
                }
                Some(Target::Primary(next)) => {
                    if next != primary {
                        tracing::info!(old = %primary, new = %next, "Held requests go to the new primary");
                    }
                    primary = next;
                }
                None => {
                    tracing::warn!(
                        primary = %primary,
                        error = %failure,
                        held = ?held_since.elapsed(),
                        "No reachable primary in time; the held request fails undelivered"
                    );
                    return Relayed::Answer(
                        ApiError::internal(format!(
                            "Unable to reach primary cluster manager ({failure}): {primary}; no \
                             reachable primary within {limit:?}, the request was not delivered{}",
                            self.store_note()
                        ))
                        .into_response(),
                    );
                }
            }
        }
    }

    /// Opens a connection to `primary` (TLS included) and the HTTP/1 client over it. Nothing of
    /// a request has been sent when this fails.
    async fn open(
        &self,
        primary: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<Body>, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let Ok(base) = format!("{scheme}://{primary}").parse::<Uri>() else {
            return Err(format!("invalid primary address {primary:?}"));
        };
        let stream = transport::connect(&base, self.tls.as_ref())
            .await
            .map_err(|error| transport::error_chain(&error))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
        let stop = self.relays_stop.clone();
        self.relay_tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = connection.with_upgrades() => {}
            }
        });
        Ok(sender)
    }

    /// Waits for where a held request should go next: here once this manager is elected, the
    /// known primary after an election result or every [`HELD_RETRY`] (a primary that came back
    /// under the same address is primary again), nowhere at shutdown, nothing at `deadline`.
    async fn next_target(&self, deadline: Instant) -> Option<Target> {
        let events = self.leadership.events();
        let mut held = events.subscribe_held();
        let mut leader = events.subscribe_leader();
        let retry = Instant::now() + HELD_RETRY;
        loop {
            let wake = retry.min(deadline);
            tokio::select! {
                changed = held.changed() => if changed.is_err() { return None },
                changed = leader.changed() => if changed.is_err() { return None },
                () = tokio::time::sleep_until(wake) => {}
                () = self.relays_stop.cancelled() => return Some(Target::Stopping),
            }
            if events.is_leader() {
                return Some(Target::Local);
            }
            let known = events.leader();
            if Instant::now() >= deadline {
                return None;
            }
            match known {
                Some(primary) if primary == self.leadership.advertise() => {}
                Some(primary) => return Some(Target::Primary(primary)),
                None => {}
            }
        }
    }

    /// The primary's answer as the client gets it; an upgrade is spliced from here on.
    fn answer(
        &self,
        primary: &str,
        mut response: http::Response<hyper::body::Incoming>,
        client_upgrade: hyper::upgrade::OnUpgrade,
    ) -> Response {
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

    /// A 502 for a request whose connection to the primary broke after it was sent.
    fn lost_in_flight(&self, primary: &str, error: &hyper::Error) -> Response {
        tracing::warn!(primary = %primary, error = %error, "The primary failed during a relayed request; not retried");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "The primary cluster manager {primary} failed while handling this request \
                 ({error}); it may have been carried out, so it was not sent again: check its \
                 effect before retrying{}",
                self.store_note()
            ),
        )
        .into_response()
    }
}

/// What [`Replication::relay`] did with a request.
#[derive(Debug)]
pub enum Relayed {
    /// The primary's answer, or an error saying why there is none.
    Answer(Response),
    /// This manager became primary while the request was held: serve it here.
    Local(Request),
}

/// Where a held request goes next.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// This manager is primary now.
    Local,
    /// The primary at this address.
    Primary(String),
    /// This manager shuts down: held requests are answered now.
    Stopping,
}

/// How long a replica holds a request that no primary could receive: twice `ttl` plus
/// [`HOLD_MARGIN`]. A dead primary's lock lasts at most one TTL after its last renewal; the
/// store needs its expiry granularity (up to a second) to notice, and a candidate whose last
/// campaign met a store error pauses up to another TTL before trying again.
pub fn hold_limit(ttl: Duration) -> Duration {
    ttl * 2 + HOLD_MARGIN
}

/// The request as sent on: the request line carries the path as the client sent it, prefix and
/// query included.
fn origin_form(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    if let Some(path_and_query) = parts.uri.path_and_query().cloned() {
        if let Ok(uri) = Uri::builder().path_and_query(path_and_query).build() {
            parts.uri = uri;
        }
    }
    Request::from_parts(parts, body)
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

    /// A store that never answers: no lock, no leader.
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
            Box::pin(async { Err("store 127.0.0.1:1 unreachable: connection refused".to_string()) })
        }
        fn follow<'a>(
            &'a self,
            _: &'a str,
            _: &'a ElectionEvents,
            _: &'a CancellationToken,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async { Err("store 127.0.0.1:1 unreachable: connection refused".to_string()) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_without_a_primary_answers_with_an_explanation() {
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
        let not_ready = replication.readiness().unwrap_err();
        assert!(
            not_ready.starts_with("This replica knows no primary cluster manager"),
            "{not_ready}"
        );
        leadership.resign().await;
    }

    #[tokio::test]
    async fn a_replica_without_a_primary_is_not_ready_but_still_answers_ping() {
        use crate::api::testing::{answer, replicated_app_without_engines};
        let memory = Arc::new(MemoryStore::default());
        let a = manager(&memory, "a:1");
        until("a leads", || a.role() == Role::Primary).await;
        // A replica whose store never reported a primary.
        let lonely = Leadership::start(
            &KvStore {
                discovery: Arc::new(crate::discovery::nodes::NodesBackend::new("a:1").unwrap()),
                election: Arc::new(Unreachable),
                leader_key: "k".into(),
            },
            "b:2".into(),
            Duration::from_secs(1),
        );
        for (leadership, ready) in [(a.clone(), true), (lonely.clone(), false)] {
            let app = replicated_app_without_engines(Some(Replication::new(leadership, None)));
            for (method, path, status) in [
                ("GET", "/_ping", StatusCode::OK),
                ("GET", "/v1.41/_ping?ready=0", StatusCode::OK),
                (
                    "GET",
                    "/_ping?ready=1",
                    if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    },
                ),
                (
                    "HEAD",
                    "/_ping?ready=true",
                    if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    },
                ),
            ] {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                let got = answer(app.clone(), request).await;
                assert_eq!(got.status, status, "{method} {path} ready={ready}");
                if status == StatusCode::SERVICE_UNAVAILABLE && method == "GET" {
                    assert!(
                        got.message().contains("knows no primary"),
                        "{}",
                        got.message()
                    );
                }
            }
        }
        lonely.resign().await;
        a.resign().await;
    }

    /// A request for the relay, as the API receives it.
    fn request(path: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(header::HOST, "swarm")
            .body(Body::from("{}"))
            .unwrap()
    }

    /// A loopback address nothing listens on.
    async fn closed_address() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        address
    }

    /// Accepts connections on a loopback port; each is handed to `serve`. Returns the address
    /// and the number of connections accepted so far.
    async fn server<F, Fut>(serve: F) -> (String, Arc<std::sync::atomic::AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(serve(stream));
            }
        });
        (address, accepted)
    }

    /// Reads a request head, then answers `answer` (nothing when `None`) and closes.
    async fn answer_once(mut stream: tokio::net::TcpStream, answer: Option<&'static str>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        if let Some(answer) = answer {
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    }

    /// A primary advertising `primary` and a replica `b:2` that knows it.
    async fn primary_and_replica(primary: &str) -> (Arc<Leadership>, Arc<Leadership>) {
        let memory = Arc::new(MemoryStore::default());
        let a = manager(&memory, primary);
        until("a leads", || a.role() == Role::Primary).await;
        let b = manager(&memory, "b:2");
        until("b knows a", || b.primary().as_deref() == Some(primary)).await;
        (a, b)
    }

    /// Relays `path` from the replica `b` to `primary` in a task of its own.
    fn relay_in_task(
        b: &Arc<Leadership>,
        primary: &str,
        path: &'static str,
    ) -> tokio::task::JoinHandle<Relayed> {
        relay_through(&Replication::new(b.clone(), None), primary, path)
    }

    /// Relays `path` through `replication` to `primary` in a task of its own.
    fn relay_through(
        replication: &Arc<Replication>,
        primary: &str,
        path: &'static str,
    ) -> tokio::task::JoinHandle<Relayed> {
        let (replication, primary) = (replication.clone(), primary.to_string());
        tokio::spawn(async move { replication.relay(&primary, request(path)).await })
    }

    /// The message of an error answer with `status`.
    async fn error_of(relayed: Relayed, status: StatusCode) -> String {
        let Relayed::Answer(response) = relayed else {
            panic!("expected an answer");
        };
        assert_eq!(response.status(), status);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn a_held_request_is_answered_when_the_replica_shuts_down() {
        let dead = closed_address().await;
        let (a, b) = primary_and_replica(&dead).await;
        let replication = Replication::new(b.clone(), None);
        let held = relay_through(&replication, &dead, "/containers/create");
        tokio::time::sleep(Duration::from_millis(300)).await;
        replication.close().await;
        let message = error_of(held.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(message.contains("shutting down"), "{message}");
        a.resign().await;
        b.resign().await;
    }

    #[tokio::test]
    async fn a_request_the_dead_primary_never_received_goes_to_the_next_primary() {
        let dead = closed_address().await;
        let (a, b) = primary_and_replica(&dead).await;
        let (next, accepted) = server(|stream| {
            answer_once(
                stream,
                Some("HTTP/1.1 201 Created\r\ncontent-length: 7\r\n\r\ncreated"),
            )
        })
        .await;
        let held = relay_in_task(&b, &dead, "/v1.41/containers/create");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!held.is_finished(), "the request is held, not failed");
        b.events().leader_is(&next);
        let Relayed::Answer(response) = held.await.unwrap() else {
            panic!("expected the new primary's answer");
        };
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        a.resign().await;
        b.resign().await;
    }

    #[tokio::test]
    async fn a_request_held_on_the_manager_that_gets_elected_is_served_there() {
        let dead = closed_address().await;
        let (a, b) = primary_and_replica(&dead).await;
        let held = relay_in_task(&b, &dead, "/containers/create?name=x");
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.resign().await;
        let Relayed::Local(request) = held.await.unwrap() else {
            panic!("expected the request back to serve it here");
        };
        assert_eq!(request.uri(), "/containers/create?name=x");
        let body = axum::body::to_bytes(request.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{}", "the body is untouched");
        b.resign().await;
    }

    #[tokio::test]
    async fn a_request_that_reached_the_primary_before_it_failed_is_not_sent_again() {
        let (primary, accepted) = server(|stream| answer_once(stream, None)).await;
        let (a, b) = primary_and_replica(&primary).await;
        let relayed = relay_in_task(&b, &primary, "/containers/create");
        let message = error_of(relayed.await.unwrap(), StatusCode::BAD_GATEWAY).await;
        assert!(message.contains("may have been carried out"), "{message}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        a.resign().await;
        b.resign().await;
    }
}
