//! The cluster: pending engines by address, validated engines by ID, membership changes from
//! discovery, validation and re-validation, and the event bus. Readers take an immutable
//! snapshot of the maps ([`Cluster::engines`]); membership changes publish a new one.
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::{Engine, EngineOptions};
use super::events::EventBus;
use super::health::{revalidation_due, EngineState};
use super::membership::EngineMaps;
use super::placement::Placement;
use super::snapshot::NodeSnapshots;
use super::transport::Transport;

/// Settings of the cluster as a whole.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub engine: EngineOptions,
    /// `--heartbeat`: discovery poll period.
    pub heartbeat: Duration,
    /// `swarm.overcommit`.
    pub overcommit: f64,
    /// `--strategy` name, shown in `/info`.
    pub strategy: String,
    /// `--filter` names, shown in `/info`.
    pub filters: Vec<String>,
    /// `--experimental`.
    pub experimental: bool,
    /// `--refresh-on-node-filter`.
    pub refresh_on_node_filter: bool,
    /// `--container-name-refresh-filter`.
    pub container_name_refresh_filter: Option<String>,
    /// `swarm.createretry`.
    pub create_retry: i64,
}

/// The cluster.
pub struct Cluster {
    pub opts: ClusterOptions,
    engine_opts: Arc<EngineOptions>,
    engines: ArcSwap<EngineMaps>,
    /// Serialises membership writers; never held across an await.
    membership: Mutex<()>,
    bus: Arc<EventBus>,
    transport: Transport,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Execs created through the manager: exec ID → (engine ID, container ID, created). Engines
    /// drop finished execs from a container's `ExecIDs`, but clients still inspect them.
    execs: Mutex<HashMap<String, (String, String, Instant)>>,
    /// The scheduler and the container creations in flight.
    pub placement: Placement,
    /// Engines removed from discovery while Healthy, by engine ID, with when: the watchdog
    /// takes them to reschedule their containers (the maps no longer hold them).
    departed: Mutex<HashMap<String, (Arc<Engine>, Instant)>>,
    /// Set once every engine of the start was validated (or the start-up report gave up).
    started_up: tokio::sync::watch::Sender<bool>,
}

/// How long an exec created through the manager stays routable.
const EXEC_RETENTION: Duration = Duration::from_secs(3600);
/// How long an engine removed from discovery waits for the watchdog to take it.
const DEPARTED_RETENTION: Duration = Duration::from_secs(300);

impl Cluster {
    /// A new, empty cluster. Call [`Cluster::start`] to run its background tasks.
    pub fn new(
        opts: ClusterOptions,
        transport: Transport,
        scheduler: crate::scheduler::Scheduler,
    ) -> Arc<Cluster> {
        let snapshots = NodeSnapshots::new(opts.overcommit, opts.engine.failure_retry);
        Arc::new(Cluster {
            engine_opts: Arc::new(opts.engine.clone()),
            opts,
            engines: ArcSwap::from_pointee(EngineMaps::default()),
            membership: Mutex::new(()),
            bus: Arc::new(EventBus::new()),
            transport,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            execs: Mutex::new(HashMap::new()),
            placement: Placement::new(scheduler, snapshots),
            departed: Mutex::new(HashMap::new()),
            started_up: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Starts the pending-engine checker and the start-up progress reporter.
    pub fn start(self: &Arc<Self>) {
        let cluster = self.clone();
        self.tasks
            .spawn(async move { cluster.pending_checker().await });
        let cluster = self.clone();
        let cancel = self.cancel.clone();
        let started_up = self.started_up.clone();
        self.tasks.spawn(async move {
            super::startup::report_progress(move || cluster.engines(), cancel.clone()).await;
            if !cancel.is_cancelled() {
                started_up.send_replace(true);
            }
        });
    }

    /// Waits until every engine of the start was validated, or the start-up report gave up
    /// waiting for the last ones (never, for a cluster not started or shut down first).
    pub async fn started_up(&self) {
        let mut started = self.started_up.subscribe();
        // The sender lives as long as the cluster, which outlives this borrow.
        let _ = started.wait_for(|done| *done).await;
    }

    /// The event bus.
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.bus
    }

    /// The shared transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A snapshot of membership.
    pub fn engines(&self) -> Arc<EngineMaps> {
        self.engines.load_full()
    }

    /// Validated engines (any health).
    pub fn validated(&self) -> Vec<Arc<Engine>> {
        self.engines.load().validated.values().cloned().collect()
    }

    /// Makes the membership equal to `addrs`: removes engines whose address is gone, then adds
    /// new ones (SPEC §3.1).
    pub fn set_engines(self: &Arc<Self>, addrs: &[String]) {
        let wanted: BTreeSet<&str> = addrs.iter().map(String::as_str).collect();
        let current = self.engines();
        for engine in current.all() {
            if !wanted.contains(engine.addr.as_str()) {
                self.remove_engine(&engine.addr);
            }
        }
        for addr in addrs {
            self.add_engine(addr);
        }
    }

    /// Adds an engine at `addr` unless one is known there; validation runs in the background.
    pub fn add_engine(self: &Arc<Self>, addr: &str) {
        let engine = {
            let _w = self.membership.lock().unwrap_or_else(|e| e.into_inner());
            let maps = self.engines.load();
            if maps.has_addr(addr) {
                return;
            }
            let engine = Engine::new(
                addr,
                self.transport.clone(),
                self.engine_opts.clone(),
                self.bus.clone(),
                maps.directory.clone(),
                &self.cancel,
            );
            let mut next = (**maps).clone();
            next.pending.insert(addr.to_string(), engine.clone());
            self.engines.store(Arc::new(next));
            engine
        };
        tracing::info!(engine = %addr, "Adding engine");
        self.spawn_validation(engine);
    }

    /// Takes an engine removed from discovery while Healthy (for rescheduling its containers).
    pub fn take_departed(&self, id: &str) -> Option<Arc<Engine>> {
        let mut departed = self.departed.lock().unwrap_or_else(|e| e.into_inner());
        departed.remove(id).map(|(engine, _)| engine)
    }

    /// Removes the engine at `addr` from whichever map holds it and disconnects it.
    pub fn remove_engine(&self, addr: &str) {
        let removed = {
            let _w = self.membership.lock().unwrap_or_else(|e| e.into_inner());
            let maps = self.engines.load();
            let mut next = (**maps).clone();
            let mut removed = next.pending.remove(addr);
            if removed.is_none() {
                let id = next
                    .validated
                    .iter()
                    .find(|(_, e)| e.addr == addr)
                    .map(|(id, _)| id.clone());
                removed = id.and_then(|id| next.validated.remove(&id));
            }
            if removed.is_some() {
                self.engines.store(Arc::new(next));
            }
            removed
        };
        if let Some(engine) = removed {
            if engine.is_healthy() {
                let mut departed = self.departed.lock().unwrap_or_else(|e| e.into_inner());
                departed.retain(|_, (_, at)| at.elapsed() < DEPARTED_RETENTION);
                departed.insert(engine.id(), (engine.clone(), Instant::now()));
            }
            engine.disconnect();
            tracing::info!(engine = %addr, name = %engine.name(), "Removed Engine {}", engine.name());
        }
    }

    fn spawn_validation(self: &Arc<Self>, engine: Arc<Engine>) {
        let cluster = self.clone();
        self.tasks
            .spawn(async move { cluster.validate(engine).await });
    }

    /// Validates one pending engine and, on success, moves it to the validated map.
    async fn validate(self: Arc<Self>, engine: Arc<Engine>) {
        match engine.validate().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(engine = %engine.addr, error = %err, "Engine validation failed; will retry");
                if let super::engine::EngineError::Rejected(msg) = &err {
                    engine.record_rejection(msg);
                }
                return;
            }
        }
        let id = engine.id();
        let activate = {
            let _w = self.membership.lock().unwrap_or_else(|e| e.into_inner());
            let maps = self.engines.load();
            match maps.pending.get(&engine.addr) {
                Some(e) if Arc::ptr_eq(e, &engine) => {}
                _ => {
                    // Removed from discovery while validating.
                    drop(maps);
                    engine.disconnect();
                    return;
                }
            }
            if let Some(other) = maps.validated.get(&id) {
                if other.addr != engine.addr {
                    engine.record_rejection(&format!(
                        "ID duplicated. {id} shared by this node {} and another node {}",
                        engine.addr, other.addr
                    ));
                    return;
                }
                let mut next = (**maps).clone();
                next.pending.remove(&engine.addr);
                self.engines.store(Arc::new(next));
                false
            } else {
                let mut next = (**maps).clone();
                next.pending.remove(&engine.addr);
                next.validated.insert(id.clone(), engine.clone());
                self.engines.store(Arc::new(next));
                true
            }
        };
        if activate {
            engine.activate();
            tracing::info!(engine = %engine.addr, name = %engine.name(),
                "Registered Engine {} at {}", engine.name(), engine.addr);
        } else {
            engine.disconnect();
        }
    }

    /// Re-validates pending engines whose back-off has elapsed (SPEC §3.2).
    async fn pending_checker(self: Arc<Self>) {
        let tick = self.opts.engine.refresh_min.min(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let maps = self.engines();
            for engine in maps.pending.values() {
                if engine.is_validating() {
                    continue;
                }
                let health = engine.health();
                let since = engine.since_last_outcome();
                if since >= revalidation_due(health.failures, self.opts.engine.refresh_min) {
                    self.spawn_validation(engine.clone());
                }
            }
        }
    }

    /// Remembers an exec created through the manager.
    pub fn remember_exec(&self, exec_id: &str, engine_id: &str, container_id: &str) {
        let mut execs = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        execs.retain(|_, (_, _, at)| now.duration_since(*at) < EXEC_RETENTION);
        execs.insert(
            exec_id.to_string(),
            (engine_id.to_string(), container_id.to_string(), now),
        );
    }

    /// The engine and container of an exec: one created through the manager, else one listed
    /// in a cached container's `ExecIDs`.
    pub fn find_exec(&self, exec_id: &str) -> Option<super::names::ContainerRef> {
        let maps = self.engines();
        let known = self
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .map(|(engine, container, _)| (engine.clone(), container.clone()));
        if let Some((engine_id, container_id)) = known {
            if let Some(engine) = maps.validated.get(&engine_id) {
                if let Some(container) = engine.cache().containers.get(&container_id) {
                    return Some(super::names::ContainerRef {
                        engine: engine.clone(),
                        container: container.clone(),
                    });
                }
            }
        }
        super::names::find_exec(&maps, exec_id)
    }

    /// Counts by state over every engine, for `/info`.
    pub fn count(&self, state: EngineState) -> usize {
        self.engines().all().filter(|e| e.state() == state).count()
    }

    /// Stops every background task and every engine.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        let maps = self.engines();
        for engine in maps.all() {
            engine.disconnect();
        }
        self.tasks.wait().await;
        for engine in maps.all() {
            engine.stopped().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::health::EngineState;

    fn options() -> ClusterOptions {
        ClusterOptions {
            engine: EngineOptions {
                refresh_min: Duration::from_secs(1),
                refresh_max: Duration::from_secs(2),
                failure_retry: 3,
                call_timeout: crate::cluster::engine::DEFAULT_CALL_TIMEOUT,
            },
            heartbeat: Duration::from_secs(1),
            overcommit: 0.05,
            strategy: "spread".into(),
            filters: vec![],
            experimental: false,
            refresh_on_node_filter: false,
            container_name_refresh_filter: None,
            create_retry: 0,
        }
    }

    /// A loopback port with nothing listening on it.
    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        addr
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_engine_stays_pending_and_is_retried_with_back_off() {
        let scheduler = crate::scheduler::Scheduler::new("spread", &["health"]).unwrap();
        let cluster = Cluster::new(options(), Transport::new(None), scheduler);
        cluster.start();
        let addr = closed_port();
        cluster.set_engines(std::slice::from_ref(&addr));
        let engine = cluster.engines().pending.get(&addr).cloned().unwrap();

        // Let the first validation fail.
        for _ in 0..50 {
            tokio::task::yield_now().await;
            if engine.health().failures >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let first = engine.health();
        assert_eq!(first.state, EngineState::Pending);
        assert!(first.failures >= 1);
        assert!(
            first.error.contains("Cannot connect to the Docker daemon"),
            "{}",
            first.error
        );

        // Re-validation waits 2^failures s + refresh-min: nothing happens before that.
        let failures = first.failures;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(engine.health().failures, failures, "retried too early");

        // After the back-off it is tried again, and the next wait is longer.
        let mut waited = Duration::ZERO;
        while engine.health().failures == failures && waited < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            waited += Duration::from_millis(250);
        }
        assert_eq!(engine.health().failures, failures + 1);
        assert!(cluster.engines().validated.is_empty());
        assert_eq!(cluster.count(EngineState::Pending), 1);

        // Removing it from discovery stops it.
        cluster.set_engines(&[]);
        assert!(cluster.engines().pending.is_empty());
        assert_eq!(engine.state(), EngineState::Disconnected);
        cluster.shutdown().await;
    }
}
