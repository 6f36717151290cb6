//! One Docker engine: the [`Engine`] type, its connection, calls and health record.
//!
//! Every call the manager makes to an engine goes through [`Engine::send`], which feeds the
//! outcome into the health state machine ([`super::health`]). The engine owns two background
//! tasks, both cancelled by [`Engine::disconnect`]: the refresh loop and the events monitor.
//! It must not know about other engines. The rest of the engine lives beside this file:
//!
//! - [`specs`]: reading and validating what the engine says about itself;
//! - [`refresh`]: the refresh loop and the cache writer (every write of the cache, in order);
//! - [`monitor`]: the events monitor, which keeps the cache current between refreshes and
//!   forwards every event to the cluster bus;
//! - [`calls`]: calls made on a client's behalf, at the client's API version.
mod calls;
pub mod monitor;
mod refresh;
mod specs;

pub use monitor::{Expected, MAX_EVENT_BYTES};
pub use specs::EngineSpecs;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::budget::{budget, CallBudget};
use super::cache::EngineCache;
use super::directory::Directory;
use super::events::{ClusterEvent, EventBus, NodeRef};
use super::health::{EngineState, Health, Outcome, Transition};
use super::memo::ChangeFeed;
use super::order::WriteOrder;
use super::transport::{empty, error_chain, Endpoint, Transport, TransportBody};
use crate::version::{for_engine, ApiVersion, MIN_API};

/// The default of `--engine-call-timeout`: how long an engine may take to start answering a
/// call (and, for answers read whole, to finish).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read whole from an engine (lists, inspects, a pull's progress): a list of
/// 30,000 containers is about 30 MB.
pub const MAX_WHOLE_ANSWER: usize = 256 << 20;
/// The refresh loop's liveness probe (`GET /_ping`) may take at most this long…
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(5);
/// …and at least this long, whatever the refresh interval.
const PROBE_TIMEOUT_MIN: Duration = Duration::from_secs(2);

/// Tuning shared by every engine (`--engine-refresh-*`, `--engine-failure-retry`).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    pub failure_retry: u32,
    /// `--engine-call-timeout` (see [`super::budget`]).
    pub call_timeout: Duration,
}

impl EngineOptions {
    /// How long the refresh loop's `/_ping` probe may take: the minimum refresh interval,
    /// within [2 s, 5 s] and never above the call timeout, so that a frozen engine is found
    /// out within a few refresh periods.
    pub fn probe_timeout(&self) -> Duration {
        self.refresh_min
            .clamp(PROBE_TIMEOUT_MIN, PROBE_TIMEOUT_MAX)
            .min(self.call_timeout)
    }
}

/// Errors of calls to an engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached; counts against its health.
    #[error(
        "Cannot connect to the Docker daemon at {url}. Is the docker daemon running?{}",
        tls_hint(detail)
    )]
    Unreachable { url: String, detail: String },
    /// The engine answered with an error status.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// The engine accepted the call but did not answer in time.
    #[error("engine {name} ({addr}) did not answer within {after:?}")]
    TimedOut {
        name: String,
        addr: String,
        after: Duration,
    },
    /// The engine answered something the manager could not read.
    #[error("invalid response from engine {addr}: {detail}")]
    Invalid { addr: String, detail: String },
    /// The engine is not usable as a cluster member.
    #[error("{0}")]
    Rejected(String),
}

/// Certificate problems are not "is the daemon running?" problems: say what went wrong.
fn tls_hint(detail: &str) -> String {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        format!(" ({detail})")
    } else {
        String::new()
    }
}

impl EngineError {
    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// One engine of the cluster.
pub struct Engine {
    /// The address discovery gave (`host:port`), the engine's identity until validated.
    pub addr: String,
    /// `http://host:port`, `https://…` or `unix://…`: prefix of every request URI.
    base: String,
    transport: Transport,
    opts: Arc<EngineOptions>,
    pub(super) bus: Arc<EventBus>,
    /// The cluster's directory of container keys, kept current by [`Engine::update_cache`].
    directory: Arc<Directory>,
    /// Written on every call outcome; held only for the update, never across an await.
    health: Mutex<Health>,
    specs: ArcSwapOption<EngineSpecs>,
    cache: ArcSwap<EngineCache>,
    /// Serialises cache writes (the refresh loop, re-reads the events monitor asks for, call
    /// flows) so that updates are not lost; taken only in [`refresh`], never across an await.
    cache_write: Mutex<()>,
    /// Tickets of container reads, so that an older read never overwrites a newer one's write
    /// (taken inside `cache_write` when both are held).
    write_order: Mutex<WriteOrder>,
    /// Wakes the refresh loop early (engine came back, events stream broke).
    pub(super) wake: Notify,
    pub(super) cancel: CancellationToken,
    pub(super) tasks: TaskTracker,
    /// Set while a validation attempt runs, so the pending checker does not start a second.
    validating: AtomicBool,
    /// Set once the events monitor task has been started.
    pub(super) monitoring: AtomicBool,
    /// When the last call outcome was recorded, on the monotonic (and test-controllable) clock;
    /// re-validation back-off is measured from it.
    last_outcome: Mutex<Instant>,
    /// Container events the manager's own calls are about to cause; the calling flow re-reads
    /// the container itself, so the events monitor need not (see [`Engine::expect_event`]).
    own_events: Mutex<Vec<monitor::OwnEvent>>,
    /// Set while an image re-list is scheduled: bursts of image events cost one re-list.
    images_refresh_pending: AtomicBool,
    /// Hashes of the last image, network and volume lists read: a refresh that reads the same
    /// bytes publishes nothing. Zero when an event changed the collection since.
    list_hashes: [AtomicU64; 3],
    /// Counts the events stream coming up (to an odd count) and breaking (to an even one), and
    /// moves on by two when an event's re-read failed: a re-list of images, networks and
    /// volumes made at one odd count is kept current by the events while the count stands.
    events_epoch: AtomicU64,
    /// When images, networks and volumes were last re-listed, all three without an error, and
    /// the events count then; `None` until the first refresh after validation or a return.
    others_listed: Mutex<Option<refresh::OthersListed>>,
    /// How long the last container list took to come back whole, in microseconds (0 before
    /// the first): a prompt one lets the next refresh's list stand in for the ping.
    last_list_micros: AtomicU64,
    /// Counts changes of the cache, the specs and the health record, so that what other layers
    /// render from them is checked with one load ([`Engine::generation`]).
    generation: AtomicU64,
    /// Tells the placement's kept ranking that this engine changed (see [`ChangeFeed`]).
    pub(crate) feed: ChangeFeed,
}

impl Engine {
    /// A new, pending engine at `addr`.
    pub fn new(
        addr: &str,
        transport: Transport,
        opts: Arc<EngineOptions>,
        bus: Arc<EventBus>,
        directory: Arc<Directory>,
        parent: &CancellationToken,
    ) -> Arc<Engine> {
        let base = transport.base_uri(&Endpoint::parse(addr));
        Arc::new(Engine {
            addr: addr.to_string(),
            base,
            transport,
            opts,
            bus,
            directory,
            health: Mutex::new(Health::pending(SystemTime::now())),
            specs: ArcSwapOption::empty(),
            cache: ArcSwap::from_pointee(EngineCache::default()),
            cache_write: Mutex::new(()),
            write_order: Mutex::new(WriteOrder::default()),
            wake: Notify::new(),
            cancel: parent.child_token(),
            tasks: TaskTracker::new(),
            validating: AtomicBool::new(false),
            monitoring: AtomicBool::new(false),
            images_refresh_pending: AtomicBool::new(false),
            list_hashes: Default::default(),
            events_epoch: AtomicU64::new(0),
            others_listed: Mutex::new(None),
            last_list_micros: AtomicU64::new(0),
            last_outcome: Mutex::new(Instant::now()),
            generation: AtomicU64::new(0),
            feed: ChangeFeed::default(),
            own_events: Mutex::new(Vec::new()),
        })
    }

    /// A copy of the health record.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts changes of the cache, the specs and the health record: what was rendered from
    /// them at one count is current while the count stands. Read it before the state it
    /// covers, so that a change while rendering leaves the rendering behind it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Time since the last call outcome was recorded.
    pub fn since_last_outcome(&self) -> Duration {
        self.last_outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// The engine's state.
    pub fn state(&self) -> EngineState {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).state
    }

    /// Whether the engine is Healthy.
    pub fn is_healthy(&self) -> bool {
        self.state() == EngineState::Healthy
    }

    /// The specs, once read.
    pub fn specs(&self) -> Option<Arc<EngineSpecs>> {
        self.specs.load_full()
    }

    /// The current cache snapshot.
    pub fn cache(&self) -> Arc<EngineCache> {
        self.cache.load_full()
    }

    /// Runs `f` on the current cache without taking a reference to it (scans of every engine).
    pub fn with_cache<R>(&self, f: impl FnOnce(&Arc<EngineCache>) -> R) -> R {
        f(&self.cache.load())
    }

    /// The scheduler's health indicator (see [`Health::indicator`]).
    pub fn health_indicator(&self, retry: u32) -> i64 {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .indicator(retry)
    }

    /// The engine's name, or `(unknown)` before its specs are known.
    pub fn name(&self) -> String {
        self.specs()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "(unknown)".to_string())
    }

    /// The engine ID (`<daemon ID>|<addr>`), empty before its specs are known.
    pub fn id(&self) -> String {
        self.specs().map(|s| s.id.clone()).unwrap_or_default()
    }

    /// The node IP (what the address resolved to when specs were read); empty before then.
    pub fn ip(&self) -> String {
        self.specs().map(|s| s.ip.clone()).unwrap_or_default()
    }

    /// The API version used towards this engine.
    pub fn api_version(&self) -> ApiVersion {
        self.specs().map(|s| s.api_version).unwrap_or(MIN_API)
    }

    /// The node fields added to events.
    pub fn node_ref(&self) -> NodeRef {
        NodeRef {
            name: self.name(),
            id: self.id(),
            addr: self.addr.clone(),
            ip: self.ip(),
        }
    }

    /// The shared transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether this engine's tasks have been stopped.
    pub fn is_disconnected(&self) -> bool {
        self.state() == EngineState::Disconnected
    }

    /// Feeds one call outcome into the health state machine and acts on the transition.
    pub fn record(&self, outcome: Outcome) {
        crate::metrics::engine_call(match outcome {
            Outcome::Answered => crate::metrics::CallOutcome::Answered,
            Outcome::Unreachable(_) => crate::metrics::CallOutcome::Unreachable,
            Outcome::TimedOut(_) => crate::metrics::CallOutcome::TimedOut,
        });
        *self.last_outcome.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let transition = {
            self.write_health(|h| h.record(outcome, SystemTime::now(), self.opts.failure_retry))
        };
        match transition {
            Some(Transition::BecameUnhealthy { failures }) => {
                tracing::warn!(engine = %self.addr, name = %self.name(), failures,
                    "Flagging engine as unhealthy. Connect failed {failures} times");
                self.emit("engine_disconnect");
            }
            Some(Transition::CameBack { after_failures }) => {
                tracing::info!(engine = %self.addr, name = %self.name(),
                    "Engine came back to life after {after_failures} retries. Hooray!");
                self.emit("engine_reconnect");
                // Events were certainly missed while it was away.
                self.others_may_be_stale();
                self.wake.notify_one();
            }
            None => {}
        }
    }

    /// Keeps a pending engine pending with `msg` as its error (validation refused it).
    pub fn record_rejection(&self, msg: &str) {
        *self.last_outcome.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.write_health(|h| h.rejected(msg, SystemTime::now()));
    }

    /// Changes the health record, through one of [`Health`]'s transitions.
    fn write_health<R>(&self, f: impl FnOnce(&mut Health) -> R) -> R {
        let result = f(&mut self.health.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed();
        result
    }

    /// Counts a change of the cache, the specs or the health record.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.feed.report(|| self.id());
    }

    fn emit(&self, action: &str) {
        self.bus
            .publish(ClusterEvent::swarm(action, &self.node_ref(), now_nanos()));
    }

    fn unreachable(&self, detail: impl ToString) -> EngineError {
        let url = if self.addr.starts_with("unix://") {
            self.addr.clone()
        } else {
            format!("tcp://{}", self.addr)
        };
        EngineError::Unreachable {
            url,
            detail: detail.to_string(),
        }
    }

    /// The full URI of `path_and_query` on this engine, prefixed with the version the call is
    /// sent at: `requested` (a client's version) when the engine speaks it, else the engine's
    /// own (see [`for_engine`]). Every call to an engine builds its URI here.
    pub fn uri(&self, requested: Option<ApiVersion>, path_and_query: &str) -> String {
        let version = for_engine(requested, self.api_version());
        format!("{}/v{version}{path_and_query}", self.base)
    }

    /// `--engine-call-timeout`.
    pub fn call_timeout(&self) -> Duration {
        self.opts.call_timeout
    }

    /// The deadlines of `req` (see [`super::budget`]).
    pub fn budget_of<B>(&self, req: &Request<B>) -> CallBudget {
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        budget(req.method(), pq, self.opts.call_timeout)
    }

    /// Sends one request and feeds the outcome into the health record. HTTP error statuses are
    /// returned as responses, not errors: only the transport failing, or the engine not
    /// starting its answer within the call's deadline, is an error here.
    pub async fn send(
        &self,
        req: Request<TransportBody>,
    ) -> Result<Response<Incoming>, EngineError> {
        let deadline = self.budget_of(&req).answer;
        self.send_within(req, deadline).await
    }

    /// [`Engine::send`] with the deadline for the answer to start given (`None`: no deadline).
    pub async fn send_within(
        &self,
        req: Request<TransportBody>,
        deadline: Option<Duration>,
    ) -> Result<Response<Incoming>, EngineError> {
        let sent = self.transport.request(req);
        let result = match deadline {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(r) => r,
                Err(_) => return Err(self.timed_out(limit)),
            },
            None => sent.await,
        };
        match result {
            Ok(resp) => {
                self.record(Outcome::Answered);
                Ok(resp)
            }
            Err(err) => {
                let e = self.unreachable(error_chain(&err));
                self.record(Outcome::Unreachable(e.to_string()));
                Err(e)
            }
        }
    }

    /// Records that a call got no answer within `after`, and the error a caller sees.
    pub fn timed_out(&self, after: Duration) -> EngineError {
        let e = EngineError::TimedOut {
            name: self.name(),
            addr: self.addr.clone(),
            after,
        };
        tracing::debug!(engine = %self.addr, timeout = ?after, "Engine call timed out");
        self.record(Outcome::TimedOut(e.to_string()));
        e
    }

    /// Sends one request and reads the whole answer (at most [`MAX_WHOLE_ANSWER`] bytes) within
    /// the call's deadline; a body that breaks off counts as the engine being unreachable.
    pub async fn call(
        &self,
        req: Request<TransportBody>,
    ) -> Result<(StatusCode, bytes::Bytes), EngineError> {
        let budget = self.budget_of(&req);
        let whole = budget.whole;
        let answer = budget.answer.map_or(whole, |a| a.min(whole));
        let read = async {
            let resp = self.send_within(req, Some(answer)).await?;
            let status = resp.status();
            match http_body_util::Limited::new(resp.into_body(), MAX_WHOLE_ANSWER)
                .collect()
                .await
            {
                Ok(b) => Ok((status, b.to_bytes())),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(self.invalid(format!("answer larger than {} MiB", MAX_WHOLE_ANSWER >> 20)))
                }
                Err(e) => {
                    let e = self.unreachable(e);
                    self.record(Outcome::Unreachable(e.to_string()));
                    Err(e)
                }
            }
        };
        match tokio::time::timeout(whole, read).await {
            Ok(r) => r,
            Err(_) => Err(self.timed_out(whole)),
        }
    }

    /// `GET` a JSON document (within the call timeout, body included); error statuses become
    /// [`EngineError::Status`] with the engine's message.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, EngineError> {
        let body = self.get_body(path_and_query).await?;
        serde_json::from_slice(&body).map_err(|e| self.invalid(e))
    }

    /// `GET` a document's bytes (within the call timeout, body included); error statuses
    /// become [`EngineError::Status`] with the engine's message.
    pub async fn get_body(&self, path_and_query: &str) -> Result<bytes::Bytes, EngineError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.uri(None, path_and_query))
            .body(empty())
            .map_err(|e| self.invalid(e))?;
        let (status, body) = self.call(req).await?;
        if !status.is_success() {
            return Err(EngineError::Status {
                status,
                message: error_message(&body),
            });
        }
        Ok(body)
    }

    fn invalid(&self, detail: impl ToString) -> EngineError {
        EngineError::Invalid {
            addr: self.addr.clone(),
            detail: detail.to_string(),
        }
    }

    /// Validates a pending engine: specs, events monitor, full refresh. Returns whether this
    /// call did the work (false when another validation is already running).
    pub async fn validate(self: &Arc<Self>) -> Result<bool, EngineError> {
        if self.validating.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let result = async {
            self.update_specs().await?;
            self.start_monitor();
            self.refresh_containers().await?;
            self.refresh_others().await;
            Ok(true)
        }
        .await;
        self.validating.store(false, Ordering::Release);
        result
    }

    /// Whether a validation attempt is running.
    pub fn is_validating(&self) -> bool {
        self.validating.load(Ordering::Acquire)
    }

    /// Marks a validated engine healthy and starts its refresh loop.
    pub fn activate(self: &Arc<Self>) {
        self.write_health(|h| h.validated(SystemTime::now()));
        self.emit("engine_connect");
        // The first refresh re-lists everything, whatever the events stream did meanwhile.
        self.others_may_be_stale();
        let engine = self.clone();
        self.tasks.spawn(async move { engine.refresh_loop().await });
    }

    /// Stops the engine's tasks and marks it Disconnected (removed from discovery).
    pub fn disconnect(&self) {
        // The token may already be cancelled by the cluster's own shutdown; the tracker must
        // be closed either way so that `stopped` can finish.
        self.cancel.cancel();
        self.tasks.close();
        self.release_directory();
        let was = self.write_health(Health::disconnected);
        if was == EngineState::Healthy {
            self.emit("engine_disconnect");
        }
    }

    /// Waits for the engine's tasks to end after [`Engine::disconnect`].
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }
}

/// The message of an engine error body (`{"message": …}`), or the body text.
pub fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A pending engine at an address nothing listens on, for unit tests.
#[cfg(test)]
pub(crate) fn test_engine() -> Arc<Engine> {
    let opts = EngineOptions {
        refresh_min: Duration::from_secs(30),
        refresh_max: Duration::from_secs(60),
        failure_retry: 1,
        call_timeout: DEFAULT_CALL_TIMEOUT,
    };
    Engine::new(
        "127.0.0.1:1",
        Transport::new(None),
        Arc::new(opts),
        Arc::new(EventBus::new()),
        Arc::new(Directory::default()),
        &CancellationToken::new(),
    )
}
