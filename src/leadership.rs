//! Replicated managers (`--replication`, SPEC §6): the election of one primary in the
//! discovery store.
//!
//! Every manager runs the whole cluster machinery whatever its role. [`Leadership`] runs two
//! background tasks: the *candidate* campaigns for the lock at `<prefix>/docker/swarm/leader`
//! with the manager's `--advertise` address and keeps it while it can; the *follower* watches
//! the key and remembers who the primary is. The store-specific parts (how a lock is taken,
//! renewed, released and watched) belong to the stores, behind [`LeaderStore`].
//!
//! Unlike the classic, a manager stopped with SIGTERM or SIGINT resigns: [`Leadership::resign`]
//! releases the lock before the process exits, so another manager takes over at once instead of
//! after the lock's TTL.
//!
//! This module only says who is primary. What a replica does with the requests it receives is
//! the API's (`api::replica`); this module never touches HTTP, the cluster or the scheduler.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::kv::{ElectionEvents, LeaderStore, Tenure};
use crate::discovery::KvStore;

/// The longest pause between two campaigns or two follow attempts after a store error (the
/// classic's value). Shorter TTLs shorten it, so a store that comes back is used within a TTL.
const MAX_STORE_RETRY: Duration = Duration::from_secs(10);

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

/// Leader election of one manager.
pub struct Leadership {
    /// This manager's `--advertise` address: the value it writes when elected.
    advertise: String,
    /// Lock state, known leader, store health; written by the store tasks.
    events: Arc<ElectionEvents>,
    /// `--replication-ttl`.
    ttl: Duration,
    /// Stops the candidate (which then releases the lock) and the follower.
    election_stop: CancellationToken,
    /// The candidate and follower tasks.
    election_tasks: TaskTracker,
}

impl Leadership {
    /// Starts campaigning and following in `store`. Call [`Leadership::resign`] before exiting.
    pub fn start(store: &KvStore, advertise: String, ttl: Duration) -> Arc<Leadership> {
        let leadership = Arc::new(Leadership {
            advertise,
            events: Arc::new(ElectionEvents::new()),
            ttl,
            election_stop: CancellationToken::new(),
            election_tasks: TaskTracker::new(),
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

    /// This manager's `--advertise` address.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// `--replication-ttl`: how long a lock outlives its holder.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Stops campaigning and following, releasing the lock if held; waits for both (bounded).
    pub async fn resign(&self) {
        self.election_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.election_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Leader Election: the store did not confirm the release in time");
        }
    }
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

/// An in-memory lock store and helpers, for the election's tests and those of what reads it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::discovery::kv::StoreFuture;
    use std::sync::Mutex;

    /// A store whose lock and leader key live in memory, shared by several "managers".
    #[derive(Default)]
    pub(crate) struct MemoryStore {
        /// The manager holding the lock.
        pub(crate) holder: Mutex<Option<String>>,
        /// Wakes campaigners and followers when the holder changes.
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

    /// A manager advertising `advertise` that campaigns in `memory` with a TTL of 1 s.
    pub(crate) fn manager(memory: &Arc<MemoryStore>, advertise: &str) -> Arc<Leadership> {
        let store = KvStore {
            discovery: Arc::new(crate::discovery::nodes::NodesBackend::new("a:1").unwrap()),
            election: memory.clone(),
            leader_key: "docker/swarm/leader".into(),
        };
        Leadership::start(&store, advertise.into(), Duration::from_secs(1))
    }

    /// Waits (at most 5 s) until `condition` holds.
    pub(crate) async fn until(what: &str, condition: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{manager, until, MemoryStore};
    use super::*;

    #[tokio::test]
    async fn one_manager_leads_and_the_other_follows_until_it_resigns() {
        let memory = Arc::new(MemoryStore::default());
        let a = manager(&memory, "a:1");
        until("a leads", || a.role() == Role::Primary).await;
        let b = manager(&memory, "b:2");
        until("b knows a", || b.primary().as_deref() == Some("a:1")).await;
        assert_eq!(b.role(), Role::Replica);
        assert_eq!(a.primary().as_deref(), Some("a:1"));

        a.resign().await;
        until("b leads", || b.role() == Role::Primary).await;
        assert_eq!(b.primary().as_deref(), Some("b:2"));
        b.resign().await;
        assert!(memory.holder.lock().unwrap().is_none());
    }
}
