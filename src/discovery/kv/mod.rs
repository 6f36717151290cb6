//! What the key-value backends (`consul://`, `etcd://`, `zk://`) share: the URL syntax
//! `<addr1>[,<addr2>…][/<prefix>]`, the key layout, the watch loop that turns a node directory
//! into [`WatchEvent`]s (`NodeDirectory` is what each store supplies to it), the
//! [`LeaderStore`] contract leader election relies on, and the loop that keeps a held lock
//! within its TTL (`keep_lock`; each store supplies its renew step as a `HeldLock`). The HTTP
//! client for the stores that speak HTTP (etcd and Consul) is in `kv/http.rs`.
//!
//! The store protocols themselves live in `etcd/`, `consul.rs` and `zk.rs`. This module knows
//! nothing about engines or about what an elected manager does; it only moves keys and values.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{DiscoveryError, Entry, Scheme, Watch, WatchEvent};

/// Where leader election keeps its lock, below the URL prefix (never below `kv.path`).
pub const LEADER_PATH: &str = "docker/swarm/leader";

/// A parsed key-value discovery URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvUrl {
    /// Which store: [`Scheme::Consul`], [`Scheme::Etcd`] or [`Scheme::Zk`].
    pub store: Scheme,
    /// Store addresses, in the order given.
    pub endpoints: Vec<String>,
    /// Everything after the first `/` (may be empty).
    pub prefix: String,
}

impl KvUrl {
    /// Parses the body of a key-value URL. Consul takes exactly one endpoint.
    pub fn parse(store: Scheme, body: &str) -> Result<Self, DiscoveryError> {
        let (addresses, prefix) = body.split_once('/').unwrap_or((body, ""));
        let endpoints: Vec<String> = addresses.split(',').map(str::to_string).collect();
        if store == Scheme::Consul && endpoints.len() > 1 {
            return Err(DiscoveryError::ConsulMultipleEndpoints);
        }
        Ok(KvUrl {
            store,
            endpoints,
            prefix: prefix.to_string(),
        })
    }

    /// The directory holding node entries: `<prefix>/<kv_path>`, without empty segments.
    pub fn nodes_dir(&self, kv_path: &str) -> String {
        join_key(&self.prefix, kv_path)
    }

    /// The leader-election key: `<prefix>/docker/swarm/leader`.
    pub fn leader_key(&self) -> String {
        join_key(&self.prefix, LEADER_PATH)
    }
}

/// Joins key segments with single slashes, dropping empty segments (like Go's `path.Join` for the
/// inputs that occur here).
pub fn join_key(prefix: &str, path: &str) -> String {
    prefix
        .split('/')
        .chain(path.split('/'))
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

mod http;

pub use http::store_tls;
pub(crate) use http::{encode_key_path, encode_query, JsonLines, StoreHttp, StoreResponse};

// ---------------------------------------------------------------------------------------------
// Leader election contract

/// A boxed future returned by the store operations leader election uses.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// How a term as leader ended without a store error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenure {
    /// Shutdown was asked for and the lock was released.
    Resigned,
    /// The lock expired or was taken away; campaign again.
    Lost(String),
}

/// What a key-value store offers leader election (SPEC §6). Implementations block in these calls
/// and report through [`ElectionEvents`]; the retry policy belongs to the caller.
pub trait LeaderStore: Send + Sync + 'static {
    /// Campaigns for the lock at `key` with `value` (the manager's advertise address) and a
    /// lifetime of `ttl`. Once held, calls [`ElectionEvents::acquired`] and keeps the lock alive
    /// until it is lost or `shutdown` is cancelled, in which case it releases the lock before
    /// returning [`Tenure::Resigned`]. A store that cannot be reached is an `Err`.
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure>;

    /// Watches the value at `key` and reports each value with [`ElectionEvents::leader_is`] until
    /// `shutdown` (`Ok`) or a store error (`Err`).
    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()>;
}

/// The state leader election shares between the campaigning side, the following side and the
/// API: whether this manager holds the lock, who the leader is, and whether the store answers.
#[derive(Debug)]
pub struct ElectionEvents {
    /// True while this manager holds the lock.
    held: watch::Sender<bool>,
    /// The last non-empty value seen at the leader key.
    leader: watch::Sender<Option<String>>,
    /// The last store error, cleared when the store answers again.
    store_problem: watch::Sender<Option<String>>,
}

impl Default for ElectionEvents {
    fn default() -> Self {
        ElectionEvents {
            held: watch::channel(false).0,
            leader: watch::channel(None).0,
            store_problem: watch::channel(None).0,
        }
    }
}

impl ElectionEvents {
    /// Fresh state: not leader, no leader known, no store problem.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock is now held by this manager.
    pub fn acquired(&self) {
        self.store_reached();
        if !self.held.send_replace(true) {
            tracing::info!("Leader Election: Cluster leadership acquired");
        }
    }

    /// The lock is no longer held by this manager.
    pub fn released(&self, why: &str) {
        if self.held.send_replace(false) {
            tracing::info!(reason = %why, "Leader Election: Cluster leadership lost");
        }
    }

    /// The leader key holds `value`; empty values are ignored, as in the classic.
    pub fn leader_is(&self, value: &str) {
        self.store_reached();
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        let changed = self.leader.send_if_modified(|current| {
            if current.as_deref() == Some(value) {
                false
            } else {
                *current = Some(value.to_string());
                true
            }
        });
        if changed {
            crate::metrics::primary_changed();
            tracing::info!(leader = %value, "New leader elected: {value}");
        }
    }

    /// The store answered.
    pub fn store_reached(&self) {
        self.store_problem
            .send_if_modified(|problem| problem.take().is_some());
    }

    /// The store could not be used.
    pub fn store_failed(&self, error: &str) {
        self.store_problem.send_replace(Some(error.to_string()));
    }

    /// Whether this manager holds the lock now.
    pub fn is_leader(&self) -> bool {
        *self.held.borrow()
    }

    /// The leader's address, once known.
    pub fn leader(&self) -> Option<String> {
        self.leader.borrow().clone()
    }

    /// The last store error, while the store does not answer.
    pub fn store_problem(&self) -> Option<String> {
        self.store_problem.borrow().clone()
    }

    /// Changes of the lock state, for waiting.
    pub fn subscribe_held(&self) -> watch::Receiver<bool> {
        self.held.subscribe()
    }

    /// Changes of the leader address, for waiting.
    pub fn subscribe_leader(&self) -> watch::Receiver<Option<String>> {
        self.leader.subscribe()
    }
}

/// What one renewal of a held lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The lock is held for another TTL.
    Renewed,
    /// The lock expired: nothing of it is left to release. Campaign again.
    Expired(String),
    /// Someone else holds the lock now: release what this manager still has of it (its session
    /// or lease), then campaign again.
    TakenAway(String),
}

/// The store-specific steps of keeping a lock that is held; [`keep_lock`] owns the timing.
pub(crate) trait HeldLock: Send {
    /// Renews the lock once. An `Err` is a store error: the lock may still be held, and is kept
    /// while the last renewal is younger than the TTL.
    fn renew(&mut self) -> impl Future<Output = Result<Renewal, String>> + Send;

    /// Resolves, with the reason, when the store says between renewals that the lock was taken
    /// away (what is left of it is then released). Stores that only learn it by renewing never
    /// resolve.
    fn lost(&mut self) -> impl Future<Output = String> + Send {
        std::future::pending()
    }

    /// Gives the lock up at shutdown, so that another manager takes it at once, or what is left
    /// of it once it was taken away (bounded).
    fn release(&mut self) -> impl Future<Output = ()> + Send;
}

/// Keeps a lock with lifetime `ttl` that was just acquired until it is lost or `shutdown`:
/// renews it every third of the TTL (at least 500 ms apart), reports each renewal and store
/// error to `events`, counts the lock lost when no renewal succeeded for a whole TTL (another
/// manager may hold it by then), and releases it on shutdown or when it was taken away.
pub(crate) async fn keep_lock(
    lock: &mut impl HeldLock,
    ttl: Duration,
    events: &ElectionEvents,
    shutdown: &CancellationToken,
) -> Tenure {
    let refresh = (ttl / 3).max(Duration::from_millis(500));
    let mut last_renewed = Instant::now();
    let mut ticker = tokio::time::interval_at(Instant::now() + refresh, refresh);
    // A renewal that outlasts the period does not make up for itself with a burst of renewals.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                lock.release().await;
                return Tenure::Resigned;
            }
            _ = ticker.tick() => match lock.renew().await {
                Ok(Renewal::Renewed) => {
                    last_renewed = Instant::now();
                    events.store_reached();
                }
                Ok(Renewal::Expired(why)) => return Tenure::Lost(why),
                Ok(Renewal::TakenAway(why)) => {
                    lock.release().await;
                    return Tenure::Lost(why);
                }
                Err(error) => {
                    events.store_failed(&error);
                    if last_renewed.elapsed() >= ttl {
                        return Tenure::Lost(format!(
                            "the leader lock could not be renewed within its TTL: {error}"
                        ));
                    }
                }
            },
            why = lock.lost() => {
                lock.release().await;
                return Tenure::Lost(why);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watching the node directory

/// A store directory of node entries, as the watch loop sees it.
pub(crate) trait NodeDirectory: Send + Sync + 'static {
    /// What [`NodeDirectory::changed`] needs to wait for the next change after a listing.
    type Cursor: Send + 'static;

    /// The values of every entry in the directory (creating the directory when the store has
    /// such a thing and it is missing).
    fn list(&self) -> impl Future<Output = Result<(Vec<String>, Self::Cursor), String>> + Send;

    /// Resolves when the directory may have changed since the listing that gave `cursor` (or
    /// when it is simply time to list again).
    fn changed(&self, cursor: Self::Cursor) -> impl Future<Output = Result<(), String>> + Send;
}

/// Entries from a directory's values: sorted, empty values skipped, duplicates dropped. Values
/// that are not `host:port` come back separately so the caller can report them.
pub(crate) fn entries_from_values(values: Vec<String>) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for value in values {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match Entry::parse(value) {
            Ok(entry) => entries.push(entry),
            Err(error) => bad.push(format!("ignoring a malformed discovery entry: {error}")),
        }
    }
    entries.sort();
    entries.dedup();
    (entries, bad)
}

/// Runs the watch of a node directory until `shutdown` or until the receiver is dropped: list,
/// report the entries when they differ from the last report, wait for a change, again. A store
/// error is reported and the loop retries after `retry` (the manager's `--heartbeat`).
pub(crate) fn watch_directory<D: NodeDirectory>(
    directory: Arc<D>,
    retry: Duration,
    shutdown: CancellationToken,
) -> Watch {
    let retry = retry.max(Duration::from_millis(100));
    Watch::spawn(8, |sender| async move {
        let send = |event: WatchEvent| {
            let sender = sender.clone();
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => false,
                    sent = sender.send(event) => sent.is_ok(),
                }
            }
        };
        let pause = || {
            let sender = sender.clone();
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => false,
                    () = sender.closed() => false,
                    () = tokio::time::sleep(retry) => true,
                }
            }
        };
        let mut last: Option<Vec<Entry>> = None;
        loop {
            let listed = tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                listed = directory.list() => listed,
            };
            let cursor = match listed {
                Ok((values, cursor)) => {
                    let (entries, bad) = entries_from_values(values);
                    if last.as_ref() != Some(&entries) {
                        last = Some(entries.clone());
                        if !send(WatchEvent::Entries(entries)).await {
                            return;
                        }
                    }
                    // After the entries, so that `swarm list` prints the good ones.
                    for problem in bad {
                        if !send(WatchEvent::Error(problem)).await {
                            return;
                        }
                    }
                    cursor
                }
                Err(error) => {
                    if !send(WatchEvent::Error(error)).await || !pause().await {
                        return;
                    }
                    continue;
                }
            };
            let waited = tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                waited = directory.changed(cursor) => waited,
            };
            if let Err(error) = waited {
                let message = format!("Unexpected watch error: {error}");
                if !send(WatchEvent::Error(message)).await || !pause().await {
                    return;
                }
            }
        }
    })
}

/// Waits for `duration` unless `shutdown` comes first; returns false on shutdown.
pub(crate) async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(duration) => true,
    }
}

/// Whole seconds for a store TTL: rounded up, at least one.
pub(crate) fn ttl_seconds(ttl: Duration) -> u64 {
    let whole = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefix_are_split() {
        let url = KvUrl::parse(Scheme::Etcd, "10.0.0.1:2379,10.0.0.2:2379/test/x").unwrap();
        assert_eq!(url.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(url.prefix, "test/x");
        assert_eq!(
            url.nodes_dir("docker/swarm/nodes"),
            "test/x/docker/swarm/nodes"
        );
        assert_eq!(url.leader_key(), "test/x/docker/swarm/leader");
    }

    #[test]
    fn the_prefix_is_optional() {
        let url = KvUrl::parse(Scheme::Zk, "a:2181").unwrap();
        assert_eq!(url.prefix, "");
        assert_eq!(url.nodes_dir("custom/"), "custom");
    }

    #[test]
    fn consul_takes_one_endpoint() {
        assert_eq!(
            KvUrl::parse(Scheme::Consul, "a:8500,b:8500/p"),
            Err(DiscoveryError::ConsulMultipleEndpoints)
        );
        assert!(KvUrl::parse(Scheme::Consul, "a:8500/p").is_ok());
    }

    #[test]
    fn directory_values_become_sorted_unique_entries() {
        let (entries, bad) = entries_from_values(vec![
            "b:2".into(),
            "".into(),
            "a:1".into(),
            "b:2".into(),
            "no-port".into(),
            " [::1]:3 ".into(),
        ]);
        assert_eq!(
            entries,
            [
                Entry::new("::1", "3"),
                Entry::new("a", "1"),
                Entry::new("b", "2")
            ]
        );
        assert_eq!(
            bad,
            ["ignoring a malformed discovery entry: address no-port: missing port in address"]
        );
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(6500)), 7);
        assert_eq!(ttl_seconds(Duration::from_secs(20)), 20);
    }

    /// A held lock whose renewals answer from a script (then renew forever).
    struct ScriptedLock {
        renewals: std::collections::VecDeque<Result<Renewal, String>>,
        renewed: usize,
        released: bool,
    }

    impl ScriptedLock {
        fn new(renewals: impl IntoIterator<Item = Result<Renewal, String>>) -> Self {
            ScriptedLock {
                renewals: renewals.into_iter().collect(),
                renewed: 0,
                released: false,
            }
        }
    }

    impl HeldLock for ScriptedLock {
        async fn renew(&mut self) -> Result<Renewal, String> {
            self.renewed += 1;
            self.renewals.pop_front().unwrap_or(Ok(Renewal::Renewed))
        }

        async fn release(&mut self) {
            self.released = true;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_is_kept_through_store_errors_shorter_than_its_ttl() {
        let events = ElectionEvents::new();
        let shutdown = CancellationToken::new();
        let failure = || Err("store down".to_string());
        // TTL 3 s, renewed every second: two failures in a row stay within the TTL.
        let mut lock = ScriptedLock::new([failure(), failure(), Ok(Renewal::Renewed), failure()]);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5500)).await;
            stop.cancel();
        });
        let tenure = keep_lock(&mut lock, Duration::from_secs(3), &events, &shutdown).await;
        assert_eq!(tenure, Tenure::Resigned);
        assert_eq!(lock.renewed, 5);
        assert!(lock.released);
        assert_eq!(events.store_problem(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_not_renewed_for_a_whole_ttl_is_lost() {
        let events = ElectionEvents::new();
        let mut lock = ScriptedLock::new((0..10).map(|_| Err("store down".to_string())));
        let started = Instant::now();
        let tenure = keep_lock(
            &mut lock,
            Duration::from_secs(3),
            &events,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(
            tenure,
            Tenure::Lost("the leader lock could not be renewed within its TTL: store down".into())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(events.store_problem().as_deref(), Some("store down"));
        assert!(!lock.released);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_taken_away_is_released_and_an_expired_one_is_not() {
        let events = ElectionEvents::new();
        let shutdown = CancellationToken::new();
        let ttl = Duration::from_secs(3);
        let mut taken = ScriptedLock::new([Ok(Renewal::TakenAway("taken".into()))]);
        let tenure = keep_lock(&mut taken, ttl, &events, &shutdown).await;
        assert_eq!(
            (tenure, taken.released),
            (Tenure::Lost("taken".into()), true)
        );
        let mut expired = ScriptedLock::new([Ok(Renewal::Expired("expired".into()))]);
        let tenure = keep_lock(&mut expired, ttl, &events, &shutdown).await;
        assert_eq!(
            (tenure, expired.released),
            (Tenure::Lost("expired".into()), false)
        );
    }

    #[test]
    fn election_events_announce_only_new_non_empty_leaders() {
        let events = ElectionEvents::new();
        assert_eq!(events.leader(), None);
        events.leader_is("");
        assert_eq!(events.leader(), None);
        events.leader_is("a:1");
        let changes = events.subscribe_leader();
        events.leader_is("a:1");
        assert!(!changes.has_changed().unwrap());
        events.leader_is("b:2");
        assert!(changes.has_changed().unwrap());
        assert_eq!(events.leader().as_deref(), Some("b:2"));
        events.store_failed("down");
        assert_eq!(events.store_problem().as_deref(), Some("down"));
        events.leader_is("b:2");
        assert_eq!(events.store_problem(), None);
        assert!(!events.is_leader());
        events.acquired();
        assert!(events.is_leader());
        events.released("test");
        assert!(!events.is_leader());
    }
}
