//! `swarm manage`: wires discovery, the cluster and the API listeners together, and runs until
//! SIGINT or SIGTERM.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiOptions, AppState};
use crate::cli::{GlobalOptions, ManageOptions};
use crate::cluster::transport::Transport;
use crate::cluster::{Cluster, ClusterOptions, EngineOptions};
use crate::discovery::{self, DiscoveryOptions};

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
    /// A requested feature is not available in this build.
    #[error("{0}")]
    Unsupported(String),
}

/// How long shutdown waits for open connections before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the manager until a termination signal.
pub async fn run(global: GlobalOptions, opts: ManageOptions) -> Result<(), ManageError> {
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
    if opts.replication {
        return Err(ManageError::Unsupported(
            "--replication is not available in this build yet".into(),
        ));
    }
    let scheduler = crate::scheduler::Scheduler::new(&opts.strategy, &opts.filters)
        .map_err(|e| ManageError::Unsupported(e.to_string()))?;
    let backend = discovery::new_backend(
        &opts.discovery,
        &DiscoveryOptions {
            heartbeat: opts.heartbeat,
            ttl: Duration::ZERO,
            opts: opts.discovery_opts.clone(),
        },
    )
    .map_err(|e| ManageError::Discovery(e.to_string()))?;

    let cluster = Cluster::new(
        ClusterOptions {
            engine: EngineOptions {
                refresh_min: opts.engine_refresh_min_interval,
                refresh_max: opts.engine_refresh_max_interval,
                failure_retry: opts.engine_failure_retry,
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
        Transport::new(client_tls),
        scheduler,
    );

    let shutdown = CancellationToken::new();
    let state = AppState {
        cluster: cluster.clone(),
        opts: Arc::new(ApiOptions {
            cors: opts.cors,
            experimental: global.experimental,
        }),
        shutdown: shutdown.clone(),
    };
    let app = api::app(state);
    let mut listeners = Vec::new();
    for host in &opts.hosts {
        let listener = api::bind(host).await.map_err(ManageError::Listen)?;
        tracing::info!(addr = %listener.describe(), "Listening for HTTP");
        listeners.push(listener);
    }

    cluster.start();
    cluster.watch_discovery(backend);

    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(listeners.len().max(1));
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let app = app.clone();
        let token = shutdown.clone();
        let failed = failed_tx.clone();
        let name = listener.describe();
        let tls = server_tls.clone();
        servers.spawn(async move {
            if let Err(e) = api::serve(listener, app, token.cancelled_owned(), tls).await {
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
    shutdown.cancel();
    cluster.shutdown().await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    result
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
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
