//! `swarm join`: registers an engine's address in the discovery store every heartbeat until
//! SIGINT or SIGTERM, then leaves (at once in ZooKeeper; etcd and Consul entries live out their
//! TTL).
use std::time::Duration;

use crate::cli::{duration, JoinOptions};
use crate::discovery::{self, DiscoveryOptions};
use crate::manage::termination;

/// `swarm join`: an optional random delay, then registration every heartbeat, forever. Failed
/// registrations are logged and retried at the next heartbeat.
pub async fn run(options: JoinOptions) -> Result<(), String> {
    let backend = discovery::new_backend(
        &options.discovery,
        &DiscoveryOptions {
            heartbeat: options.heartbeat,
            ttl: options.ttl,
            opts: options.discovery_opts.clone(),
        },
    )
    .map_err(|error| error.to_string())?;
    if !options.delay.is_zero() {
        let bound = u64::try_from(options.delay.as_nanos()).unwrap_or(u64::MAX);
        let wait = Duration::from_nanos(rand::random_range(0..bound));
        tracing::info!(
            delay = %duration::format(wait),
            "Waiting a random delay before the first registration"
        );
        tokio::time::sleep(wait).await;
    }
    let period = duration::format(options.heartbeat);
    let registering = async {
        loop {
            tracing::info!(
                addr = %options.advertise,
                discovery = %options.discovery,
                "Registering on the discovery service every {period}..."
            );
            if let Err(error) = backend.register(&options.advertise).await {
                tracing::error!(%error, "Registration failed");
            }
            tokio::time::sleep(options.heartbeat).await;
        }
    };
    // One signal listener for the whole run, so that no signal falls between two of them.
    tokio::select! {
        () = registering => {}
        () = termination() => {}
    }
    // A ZooKeeper registration goes at once; etcd and Consul ones live out their TTL.
    let leave = backend.leave(&options.advertise);
    match tokio::time::timeout(Duration::from_secs(3), leave).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "Leaving the discovery service failed");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}
