//! `swarm list`: asks the discovery backend once and returns the addresses it reports. Printing
//! them is the binary's.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::ListOptions;
use crate::discovery::{self, DiscoveryOptions, Entry, WatchEvent};

/// `swarm list`: the first list the backend reports, within the timeout.
pub async fn run(options: ListOptions) -> Result<Vec<Entry>, String> {
    let backend = discovery::new_backend(
        &options.discovery,
        &DiscoveryOptions {
            heartbeat: options.timeout,
            ttl: Duration::ZERO,
            opts: options.discovery_opts,
        },
    )
    .map_err(|error| error.to_string())?;
    let mut watch = backend.watch(CancellationToken::new());
    let first = tokio::time::timeout(options.timeout, watch.recv()).await;
    watch.stop().await;
    match first {
        Ok(Some(WatchEvent::Entries(entries))) => Ok(entries),
        Ok(Some(WatchEvent::Error(message))) => Err(message),
        Ok(None) => Err("discovery stopped before reporting any address".to_string()),
        Err(_) => Err("Timed out".to_string()),
    }
}
