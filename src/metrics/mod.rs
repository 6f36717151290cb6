//! Prometheus metrics (`--metrics-addr`): the metric families, the process-wide handle the rest
//! of the manager counts through, and the text rendered for `GET /metrics`. The catalogue, with
//! labels, expected cardinality and alerts, is `docs/metrics.md`.
//!
//! Counting goes through free functions ([`engine_call`], [`event_received`], ...) so that each
//! instrumented place is one line. Until [`enable`] runs (only when `--metrics-addr` is set)
//! every one of them is a single atomic load that finds nothing to count; once enabled, the
//! hot counters (engine calls, events) are pre-resolved handles, one atomic add each.
//!
//! What the cluster holds right now (engines by state, containers by node and state, `/events`
//! listeners, this manager's role) is not counted here: it is read from the cluster at scrape
//! time through [`ClusterFigures`], so that it is never kept twice and never drifts. The process
//! figures are read from `/proc` at scrape time as well ([`process`]).
//!
//! Of the manager this module imports only the version constants: it sits below every module
//! it is called from, and must not do I/O outside a scrape.
mod process;
mod requests;
mod scrape;

pub use requests::{count_requests, tag_route};
pub use scrape::{
    router, ScrapeSource, MAX_CONNECTIONS, REQUEST_HEADER_TIMEOUT, WRITE_STALL_TIMEOUT,
};

use std::sync::OnceLock;
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The prefix of every metric of the manager's own (process metrics keep the standard names).
const PREFIX: &str = "shoal";

/// Latency buckets of API requests, in seconds: from a cached `/_ping` to a slow create.
const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latency buckets of scheduler decisions, in seconds: filters and a strategy over snapshots,
/// microseconds for a few nodes, milliseconds for thousands.
const DECISION_BUCKETS: [f64; 10] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
];

/// Labels of an API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// Labels of the API latency histogram (no status: it would multiply the buckets).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// The `outcome` label, with a value from a fixed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The discovery backend a refresh came from (the URL scheme).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: &'static str,
}

/// How one call to an engine ended, as counted by `shoal_engine_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The engine started its answer (whatever the HTTP status).
    Answered,
    /// The engine could not be reached: refused, reset, TLS or DNS failure.
    Unreachable,
    /// The engine did not answer (or finish a whole read) within the call's deadline.
    TimedOut,
}

/// The families the manager counts into, registered once in [`enable`]. Each field shares its
/// counters with the registry: counting into the field is what the registry renders.
struct Metrics {
    /// Everything below, rendered at each scrape.
    registry: Registry,
    /// `shoal_api_requests_total`.
    requests: Family<RequestLabels, Counter>,
    /// `shoal_api_request_duration_seconds`.
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// The three series of `shoal_engine_calls_total`, resolved once: engine calls are the
    /// hottest path counted, so they skip the family's lookup.
    calls_answered: Counter,
    calls_unreachable: Counter,
    calls_timed_out: Counter,
    /// `shoal_scheduler_decisions_total`.
    decisions: Family<OutcomeLabel, Counter>,
    /// `shoal_scheduler_decision_duration_seconds`.
    decision_seconds: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    /// `shoal_events_received_total`.
    events_received: Counter,
    /// `shoal_events_delivered_total`.
    events_delivered: Counter,
    /// `shoal_events_dropped_total`.
    events_dropped: Counter,
    /// `shoal_events_listeners_dropped_total`.
    listeners_dropped: Counter,
    /// `shoal_leader_elections_total`.
    primary_changes: Counter,
    /// `shoal_discovery_refreshes_total`.
    discovery_refreshes: Family<BackendLabel, Counter>,
    /// `shoal_discovery_errors_total`.
    discovery_errors: Family<BackendLabel, Counter>,
}

/// The one handle: empty until [`enable`], so counting costs nothing while metrics are off.
static METRICS: OnceLock<Metrics> = OnceLock::new();

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

impl Metrics {
    fn new() -> Metrics {
        let calls: Family<OutcomeLabel, Counter> = Family::default();
        let call = |outcome| calls.get_or_create_owned(&OutcomeLabel { outcome });
        let metrics = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram as fn() -> Histogram),
            calls_answered: call("answered"),
            calls_unreachable: call("unreachable"),
            calls_timed_out: call("timed_out"),
            decisions: Family::default(),
            decision_seconds: Family::new_with_constructor(decision_histogram as fn() -> Histogram),
            events_received: Counter::default(),
            events_delivered: Counter::default(),
            events_dropped: Counter::default(),
            listeners_dropped: Counter::default(),
            primary_changes: Counter::default(),
            discovery_refreshes: Family::default(),
            discovery_errors: Family::default(),
            registry: Registry::with_prefix(PREFIX),
        };
        // Every outcome has a series from the start, so that rates and ratios over them are
        // defined before the first refusal.
        for outcome in ["placed", "no_node", "refused"] {
            metrics
                .decisions
                .get_or_create_owned(&OutcomeLabel { outcome });
        }
        metrics.register(calls)
    }

    /// Registers every family (the families share their counters with `self`).
    fn register(mut self, calls: Family<OutcomeLabel, Counter>) -> Metrics {
        let registry = &mut self.registry;
        registry.register(
            "build",
            "Version of this build and the highest Docker API version it speaks",
            Info::new(vec![
                ("version", crate::VERSION),
                ("api_version", crate::version::MAX_API_STR),
            ]),
        );
        registry.register(
            "api_requests",
            "API requests answered, by route template, method and status",
            self.requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Time from a request's arrival to its response headers, by route template and method",
            self.request_seconds.clone(),
        );
        registry.register(
            "engine_calls",
            "Calls to engines by outcome: answered, unreachable or timed_out",
            calls,
        );
        registry.register(
            "scheduler_decisions",
            "Container placements decided, by outcome: placed, no_node or refused",
            self.decisions.clone(),
        );
        registry.register(
            "scheduler_decision_duration_seconds",
            "Time the scheduler took to rank the nodes for one container, by outcome",
            self.decision_seconds.clone(),
        );
        let plain_counters = [
            (
                "events_received",
                "Events read from the engines' event streams",
                &self.events_received,
            ),
            (
                "events_delivered",
                "Events queued for an /events listener (one per listener and event)",
                &self.events_delivered,
            ),
            (
                "events_dropped",
                "Events thrown away with a listener that fell behind its queue budget",
                &self.events_dropped,
            ),
            (
                "events_listeners_dropped",
                "/events listeners cut off because they fell behind",
                &self.listeners_dropped,
            ),
            (
                "leader_elections",
                "Times the primary named in the leader key changed, as this manager saw it",
                &self.primary_changes,
            ),
        ];
        for (name, help, counter) in plain_counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "discovery_refreshes",
            "Engine lists read from discovery, by backend",
            self.discovery_refreshes.clone(),
        );
        registry.register(
            "discovery_errors",
            "Failed discovery reads, by backend",
            self.discovery_errors.clone(),
        );
        self
    }
}

/// Turns counting on (idempotent). Called when `--metrics-addr` is set, before the manager
/// serves anything, so that no early event goes uncounted.
pub fn enable() {
    METRICS.get_or_init(Metrics::new);
}

/// Whether [`enable`] has run.
pub fn is_enabled() -> bool {
    METRICS.get().is_some()
}

/// The `method` label: the methods the API routes, `other` for anything else, so that a client
/// cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts one API request. `route` is the route template (never the raw path, whose IDs and
/// names would make a series per container).
pub fn api_request(route: &str, method: &Method, status: u16, elapsed: Duration) {
    let Some(metrics) = METRICS.get() else {
        return;
    };
    let method = method_label(method);
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.to_string(),
            method,
            status,
        })
        .inc();
    metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            route: route.to_string(),
            method,
        })
        .observe(elapsed.as_secs_f64());
}

/// Counts one call to an engine.
pub fn engine_call(outcome: CallOutcome) {
    if let Some(metrics) = METRICS.get() {
        match outcome {
            CallOutcome::Answered => metrics.calls_answered.inc(),
            CallOutcome::Unreachable => metrics.calls_unreachable.inc(),
            CallOutcome::TimedOut => metrics.calls_timed_out.inc(),
        };
    }
}

/// Runs one scheduler decision, counting it by outcome with its duration: `placed` when a
/// node was ranked first, `no_node` when the ranking came back empty, `refused` when the
/// scheduler refused the request.
pub fn scheduler_decision<T, E>(decide: impl FnOnce() -> Result<Vec<T>, E>) -> Result<Vec<T>, E> {
    let Some(metrics) = METRICS.get() else {
        return decide();
    };
    let started = std::time::Instant::now();
    let ranked = decide();
    let elapsed = started.elapsed();
    let outcome = match &ranked {
        Ok(nodes) if nodes.is_empty() => "no_node",
        Ok(_) => "placed",
        Err(_) => "refused",
    };
    let label = OutcomeLabel { outcome };
    metrics.decisions.get_or_create(&label).inc();
    metrics
        .decision_seconds
        .get_or_create(&label)
        .observe(elapsed.as_secs_f64());
    ranked
}

/// Counts one event read from an engine.
pub fn event_received() {
    if let Some(metrics) = METRICS.get() {
        metrics.events_received.inc();
    }
}

/// Counts one event queued for one `/events` listener.
pub fn event_delivered() {
    if let Some(metrics) = METRICS.get() {
        metrics.events_delivered.inc();
    }
}

/// Counts a listener cut off for falling behind, with the `events` thrown away with it.
pub fn listener_dropped(events: usize) {
    if let Some(metrics) = METRICS.get() {
        metrics.listeners_dropped.inc();
        metrics.events_dropped.inc_by(events as u64);
    }
}

/// Counts a change of the primary named in the leader key.
pub fn primary_changed() {
    if let Some(metrics) = METRICS.get() {
        metrics.primary_changes.inc();
    }
}

/// Counts one discovery report from `backend` (a URL scheme): an engine list when `ok`, a
/// failed read otherwise.
pub fn discovery_report(backend: &'static str, ok: bool) {
    if let Some(metrics) = METRICS.get() {
        let family = if ok {
            &metrics.discovery_refreshes
        } else {
            &metrics.discovery_errors
        };
        family.get_or_create(&BackendLabel { backend }).inc();
    }
}

/// What the cluster holds at scrape time, read from the cluster itself (not counted here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterFigures {
    /// Engines per state word (`pending`, `healthy`, `unhealthy`, `disconnected`); every state
    /// should be listed, with 0 where there are none, so that a series does not vanish.
    pub engines: Vec<(&'static str, u64)>,
    /// Containers per node name and state (`running`, `exited`, ...; see
    /// [`container_state_label`]), from the engines' caches.
    pub containers: Vec<(String, &'static str, u64)>,
    /// Open `/events` streams.
    pub event_listeners: u64,
    /// This manager's role: `primary` or `replica` with `--replication`, `standalone` without.
    pub role: &'static str,
}

/// The container states Docker reports; anything else is counted as `other`, so that an odd
/// engine cannot grow the label set.
pub fn container_state_label(state: &str) -> &'static str {
    const STATES: [&str; 7] = [
        "created",
        "running",
        "paused",
        "restarting",
        "removing",
        "exited",
        "dead",
    ];
    STATES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(state))
        .copied()
        .unwrap_or("other")
}

/// The roles [`ClusterFigures::role`] takes; all are exported, the current one as 1.
const ROLES: [&str; 3] = ["primary", "replica", "standalone"];

/// The Prometheus text (format 0.0.4) of every metric: the counters, `figures`, and the
/// process figures read now. Counters are empty until [`enable`] has run.
pub fn render(figures: &ClusterFigures) -> String {
    let mut text = String::new();
    if let Some(metrics) = METRICS.get() {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry);
    }
    let _ =
        prometheus_client::encoding::prometheus_text::encode(&mut text, &figures_registry(figures));
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &process::registry());
    text
}

/// A registry of gauges holding `figures`, built for one scrape.
fn figures_registry(figures: &ClusterFigures) -> Registry {
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct StateLabel {
        state: &'static str,
    }
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct NodeStateLabels {
        node: String,
        state: &'static str,
    }
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct RoleLabel {
        role: &'static str,
    }
    let mut registry = Registry::with_prefix(PREFIX);
    let engines: Family<StateLabel, Gauge> = Family::default();
    for &(state, count) in &figures.engines {
        engines
            .get_or_create(&StateLabel { state })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    registry.register("engines", "Engines by state", engines);
    let containers: Family<NodeStateLabels, Gauge> = Family::default();
    for (node, state, count) in &figures.containers {
        containers
            .get_or_create(&NodeStateLabels {
                node: node.clone(),
                state,
            })
            .inc_by(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    registry.register(
        "containers",
        "Containers by node and state, as the manager's cache holds them",
        containers,
    );
    let listeners: Gauge = Gauge::default();
    listeners.set(i64::try_from(figures.event_listeners).unwrap_or(i64::MAX));
    registry.register("events_listeners", "Open /events streams", listeners);
    let roles: Family<RoleLabel, Gauge> = Family::default();
    for role in ROLES {
        roles
            .get_or_create(&RoleLabel { role })
            .set(i64::from(role == figures.role));
    }
    registry.register(
        "manager_role",
        "This manager's role (1 for the current one): primary, replica or standalone",
        roles,
    );
    registry
}

#[cfg(test)]
mod tests;
