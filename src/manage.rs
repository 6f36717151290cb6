//! `swarm manage`: wires discovery, the cluster, leader election (`--replication`) and the API
//! listeners together, and runs until SIGINT or SIGTERM. On those signals a replicated manager
//! resigns first, so that another one takes over at once.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::replica::Replication;
use crate::api::{self, ApiOptions, AppState};
use crate::cli::{GlobalOptions, ManageOptions};
use crate::cluster::transport::Transport;
use crate::cluster::{Cluster, ClusterOptions, EngineOptions};
use crate::discovery::{self, Backend, DiscoveryOptions, WatchEvent};
use crate::leadership::Leadership;

/// Why the manager stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The discovery URL could not be used.
    #[error("{0}")]
    Discovery(String),
    /// A listener could not be bound or failed.
    #[error("{0}")]
    Listen(String),
    /// A TLS certificate, key or CA could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// A requested feature is not available (unknown strategy or filter, replication without a
    /// store).
    #[error("{0}")]
    Unsupported(String),
}

/// The host part of `host:port` (brackets of IPv6 kept off), for certificate name checks.
fn host_of(addr: &str) -> Option<String> {
    let addr = addr.strip_prefix("tcp://").unwrap_or(addr);
    discovery::split_host_port(addr)
        .ok()
        .map(|(host, _)| host.to_string())
        .filter(|host| !host.is_empty())
}

/// How long shutdown waits for open connections, the streams requests started and the
/// watchdog's reschedulings before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How much longer than the longest refresh interval an idle engine connection is kept: the
/// refresh after it still finds it (the wait between two refreshes of a healthy engine is at
/// most that interval, plus the refresh's own time).
const POOL_IDLE_MARGIN: Duration = Duration::from_secs(15);

/// Runs the manager until a termination signal.
pub async fn run(global: GlobalOptions, opts: ManageOptions) -> Result<(), ManageError> {
    if opts.metrics_addr.is_some() {
        // Before anything runs, so that every call and event is counted.
        crate::metrics::enable();
    }
    let tls_on = opts.tls.tls || opts.tls.verify;
    let (server_tls, client_tls) = if tls_on {
        (
            Some(
                crate::tls::server_config(&opts.tls)
                    .map_err(|e| ManageError::Tls(e.to_string()))?,
            ),
            Some(
                crate::tls::client_config(&opts.tls)
                    .map_err(|e| ManageError::Tls(e.to_string()))?,
            ),
        )
    } else {
        (None, None)
    };
    if tls_on {
        let mut names: Vec<String> = opts
            .hosts
            .iter()
            .filter(|host| !host.starts_with("unix://"))
            .filter_map(|host| host_of(host))
            .collect();
        if opts.replication {
            names.extend(opts.advertise.as_deref().and_then(host_of));
        }
        names.dedup();
        for warning in crate::tls::check_names(&opts.tls, &names) {
            tracing::warn!("{warning}");
        }
    }
    let scheduler = crate::scheduler::Scheduler::new(&opts.strategy, &opts.filters)
        .map_err(|e| ManageError::Unsupported(e.to_string()))?;
    let discovery_opts = DiscoveryOptions {
        heartbeat: opts.heartbeat,
        ttl: Duration::ZERO,
        opts: opts.discovery_opts.clone(),
    };
    // With replication the same store object serves discovery and the election.
    let (backend, store) = if opts.replication {
        let store = discovery::new_store(&opts.discovery, &discovery_opts)
            .map_err(|e| ManageError::Discovery(e.to_string()))?;
        (store.discovery.clone(), Some(store))
    } else {
        let backend = discovery::new_backend(&opts.discovery, &discovery_opts)
            .map_err(|e| ManageError::Discovery(e.to_string()))?;
        (backend, None)
    };

    let cluster = Cluster::new(
        ClusterOptions {
            engine: EngineOptions {
                refresh_min: opts.engine_refresh_min_interval,
                refresh_max: opts.engine_refresh_max_interval,
                failure_retry: opts.engine_failure_retry,
                call_timeout: opts.engine_call_timeout,
            },
            heartbeat: opts.heartbeat,
            overcommit: opts.overcommit,
            strategy: opts.strategy.clone(),
            filters: opts.filters.clone(),
            experimental: global.experimental,
            refresh_on_node_filter: opts.refresh_on_node_filter,
            container_name_refresh_filter: opts.container_name_refresh_filter.clone(),
            create_retry: opts.create_retry,
        },
        // Idle engine connections outlive the longest wait between two refreshes.
        Transport::with_pool_idle(
            client_tls.clone(),
            opts.engine_refresh_max_interval + POOL_IDLE_MARGIN,
        ),
        scheduler,
    );

    let open_file_limit = api::listener::raise_open_file_limit();
    let mut listeners = Vec::new();
    for host in &opts.hosts {
        let listener = api::bind(host).await.map_err(ManageError::Listen)?;
        tracing::info!(addr = %listener.describe(), "Listening for HTTP");
        listeners.push(listener);
    }
    let metrics_listener = match opts.metrics_addr {
        Some(addr) => {
            let listener = api::bind(&addr.to_string())
                .await
                .map_err(ManageError::Listen)?;
            tracing::info!(metrics_addr = %listener.describe(), "Serving Prometheus metrics on /metrics");
            Some(listener)
        }
        None => None,
    };
    let leadership = match (&store, &opts.advertise) {
        (Some(store), Some(advertise)) => Some(Leadership::start(
            store,
            advertise.clone(),
            opts.replication_ttl,
        )),
        (Some(_), None) => {
            return Err(ManageError::Unsupported(
                "--advertise address must be provided when using --leader-election".into(),
            ))
        }
        _ => None,
    };
    let replication = leadership
        .as_ref()
        .map(|leadership| Replication::new(leadership.clone(), client_tls.clone()));

    let shutdown = CancellationToken::new();
    let state = AppState {
        cluster: cluster.clone(),
        opts: Arc::new(ApiOptions {
            cors: opts.cors,
            experimental: global.experimental,
            limits: api::ClientLimits {
                header_read_timeout: opts.api_header_timeout,
                max_connections: opts.api_max_connections,
                max_body_bytes: opts.api_max_body_size,
                write_stall_timeout: opts.api_write_stall_timeout,
                ..api::ClientLimits::default()
            },
        }),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
        replication: replication.clone(),
    };
    let request_tasks = state.tasks.clone();
    let gate = api::ConnectionGate::new(state.opts.limits.clone(), open_file_limit);
    tracing::info!(
        open_file_limit = open_file_limit.map_or("unlimited".to_string(), |l| l.to_string()),
        max_connections = gate.cap(),
        "Client connections capped"
    );
    let app = api::app(state);
    let mut served: Vec<Served> = listeners
        .into_iter()
        .map(|listener| (listener, app.clone(), server_tls.clone(), gate.clone()))
        .collect();
    if let Some(listener) = metrics_listener {
        served.push(metrics_endpoint(listener, &cluster, &leadership));
    }

    cluster.start();
    {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            cluster.started_up().await;
            api::ps::warm_buffers(cluster.engines()).await;
        });
    }
    let scheme = discovery::DiscoveryUrl::parse(&opts.discovery)
        .map_or("unknown", |url| url.scheme.as_str());
    let discovery = tokio::spawn(feed_discovery(
        cluster.clone(),
        backend,
        scheme,
        shutdown.clone(),
    ));
    let leader = leadership.clone();
    let watchdog = crate::cluster::watchdog::start(
        cluster.clone(),
        Arc::new(move || {
            leader
                .as_ref()
                .is_none_or(|l| l.role() == crate::leadership::Role::Primary)
        }),
        shutdown.clone(),
    );

    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(served.len().max(1));
    let mut servers = tokio::task::JoinSet::new();
    for (listener, app, tls, gate) in served {
        let token = shutdown.clone();
        let failed = failed_tx.clone();
        let name = listener.describe();
        servers.spawn(async move {
            if let Err(e) = api::serve(listener, app, token.cancelled_owned(), tls, gate).await {
                let _ = failed.send(format!("{name}: {e}")).await;
            }
        });
    }
    drop(failed_tx);

    let result = tokio::select! {
        _ = termination() => Ok(()),
        Some(err) = failed_rx.recv() => Err(ManageError::Listen(err)),
    };
    tracing::info!("Shutting down");
    // First, so that another manager is elected while this one finishes its work.
    if let Some(leadership) = &leadership {
        leadership.resign().await;
    }
    if let Some(replication) = &replication {
        replication.close().await;
    }
    shutdown.cancel();
    // Membership stops changing before the engines are stopped.
    let _ = discovery.await;
    cluster.shutdown().await;
    request_tasks.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
        request_tasks.wait().await;
        watchdog.wait().await;
    })
    .await;
    result
}

/// A listener with what it serves: the router, TLS when on, and the gate capping its
/// connections.
type Served = (
    api::Listener,
    axum::Router,
    Option<Arc<rustls::ServerConfig>>,
    Arc<api::ConnectionGate>,
);

/// The `/metrics` listener with what it serves: the scrape router over the cluster and the
/// election, no TLS, and its own small connection gate (see [`crate::metrics`]'s limits).
fn metrics_endpoint(
    listener: api::Listener,
    cluster: &Arc<Cluster>,
    leadership: &Option<Arc<Leadership>>,
) -> Served {
    let cluster = cluster.clone();
    let leadership = leadership.clone();
    let source: crate::metrics::ScrapeSource = Arc::new(move || {
        let role = leadership
            .as_ref()
            .map_or("standalone", |l| l.role().as_str());
        cluster.metric_figures(role)
    });
    let limits = api::ClientLimits {
        header_read_timeout: crate::metrics::REQUEST_HEADER_TIMEOUT,
        max_connections: Some(crate::metrics::MAX_CONNECTIONS),
        write_stall_timeout: crate::metrics::WRITE_STALL_TIMEOUT,
        ..api::ClientLimits::default()
    };
    (
        listener,
        crate::metrics::router(source),
        None,
        api::ConnectionGate::new(limits, None),
    )
}

/// Feeds a discovery backend's entry sets into the cluster's membership until `shutdown`,
/// counting each report under `scheme` (the backend's URL scheme) for the metrics.
async fn feed_discovery(
    cluster: Arc<Cluster>,
    backend: Arc<dyn Backend>,
    scheme: &'static str,
    shutdown: CancellationToken,
) {
    let mut watch = backend.watch(shutdown.child_token());
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = watch.recv() => ev,
        };
        match event {
            Some(WatchEvent::Entries(entries)) => {
                crate::metrics::discovery_report(scheme, true);
                let addrs: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
                cluster.set_engines(&addrs);
            }
            Some(WatchEvent::Error(err)) => {
                crate::metrics::discovery_report(scheme, false);
                tracing::error!(error = %err, "Discovery error: {err}");
            }
            None => break,
        }
    }
    watch.stop().await;
}

/// Resolves on SIGINT or SIGTERM: the end of `swarm manage` and `swarm join`. Listens from the
/// first poll on, so call it once per run (no signal falls between two listeners).
pub(crate) async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_listen_and_advertise_addresses() {
        assert_eq!(
            host_of("tcp://127.0.0.1:2375").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("[::1]:4000").as_deref(), Some("::1"));
        assert_eq!(
            host_of("manager.example:4000").as_deref(),
            Some("manager.example")
        );
        assert_eq!(host_of(":4000"), None);
        assert_eq!(host_of("garbage"), None);
    }
}
