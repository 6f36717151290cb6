//! `zk://<addr>[,<addr>…]/<prefix>`: node discovery, `swarm join` registrations and the leader
//! lock in ZooKeeper, through the `zookeeper-client` crate.
//!
//! Layout as in the classic: `/<prefix>/docker/swarm/nodes/<addr>` = `<addr>`, an *ephemeral*
//! znode, so a registration lives as long as the join agent's ZooKeeper session (10 s after the
//! agent stops, at once when it closes its session); intermediate znodes are persistent. The
//! leader lock is ZooKeeper's lock recipe under `/<prefix>/docker/swarm/leader`: each candidate
//! creates an ephemeral sequential child `_c_<uuid>-lock-<n>`, the lowest holds the lock and then
//! writes its address as the data of the leader znode itself, which followers watch. The
//! session timeout of a candidate is four fifths of `--replication-ttl` (at least 2 s; the server
//! may round it into its `[2, 20]` tick bounds), so that a dead leader's lock changes hands within
//! the TTL. There is no TLS to ZooKeeper, as in the classic.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::kv::{
    self, watch_directory, ElectionEvents, LeaderStore, NodeDirectory, StoreFuture, Tenure,
};
use super::{Backend, DiscoveryError, DiscoveryOptions, RegisterFuture, Watch};

/// Session timeout for watching and registering (the classic's value).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long establishing a session may take before the attempt counts as a store error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-operation limit; the client retries internally while it reconnects.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A watch that stays silent this long is re-read, in case a notification was lost.
const WATCH_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The ZooKeeper backend.
pub struct ZkBackend {
    /// `host:port,host:port` for the client.
    connect_string: String,
    /// `/<prefix>/<kv.path>`.
    nodes_dir: String,
    /// Watch retry delay (`--heartbeat`).
    heartbeat: Duration,
    /// The session used for watching and registering, replaced when it expires.
    session: Mutex<Option<zk::Client>>,
}

/// The session timeout of a leader candidate for a lock TTL: four fifths of it, at least 2 s.
fn session_timeout_for(ttl: Duration) -> Duration {
    (ttl * 4 / 5).max(Duration::from_secs(2))
}

fn describe(error: zk::Error) -> String {
    format!("zookeeper: {error}")
}

/// Runs a ZooKeeper operation with [`OPERATION_TIMEOUT`].
async fn bounded<T>(
    operation: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
        Ok(result) => result.map_err(describe),
        Err(_) => Err("zookeeper: the operation timed out".into()),
    }
}

/// Turns a store key (`a/b`) into a znode path (`/a/b`).
fn znode(key: &str) -> String {
    format!("/{}", key.trim_matches('/'))
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

impl ZkBackend {
    /// A backend for the servers in `endpoints`, keeping nodes under `nodes_dir`.
    pub fn new(endpoints: &[String], nodes_dir: &str, opts: &DiscoveryOptions) -> Self {
        ZkBackend {
            connect_string: endpoints.join(","),
            nodes_dir: znode(nodes_dir),
            heartbeat: opts.heartbeat,
            session: Mutex::new(None),
        }
    }

    /// Opens a new session with `timeout`.
    async fn connect(&self, timeout: Duration) -> Result<zk::Client, String> {
        let connect = zk::Client::connector()
            .with_session_timeout(timeout)
            .with_connection_timeout(CONNECT_TIMEOUT)
            .connect(&self.connect_string);
        match tokio::time::timeout(CONNECT_TIMEOUT + timeout, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(format!(
                "zookeeper {}: cannot open a session: {error}",
                self.connect_string
            )),
            Err(_) => Err(format!(
                "zookeeper {}: no session within {:?}",
                self.connect_string,
                CONNECT_TIMEOUT + timeout
            )),
        }
    }

    /// The shared session, opened (again) when missing or no longer usable.
    async fn client(&self) -> Result<zk::Client, String> {
        let mut session = self.session.lock().await;
        if let Some(client) = session.as_ref() {
            if !client.state().is_terminated() {
                return Ok(client.clone());
            }
        }
        let client = self.connect(SESSION_TIMEOUT).await?;
        *session = Some(client.clone());
        Ok(client)
    }

    /// Forgets the shared session after an error that ends it.
    async fn drop_session_on(&self, error: &str) {
        if error.contains("expired") || error.contains("closed") {
            self.session.lock().await.take();
        }
    }

    async fn register_once(&self, addr: &str) -> Result<(), String> {
        let client = self.client().await?;
        let path = format!("{}/{addr}", self.nodes_dir);
        bounded(client.mkdir(&self.nodes_dir, &persistent())).await?;
        match bounded(client.check_stat(&path)).await? {
            Some(stat) if stat.ephemeral_owner == client.session_id().0 => Ok(()),
            Some(_) => {
                // A registration of an earlier session that has not expired yet: replace it, or
                // it would vanish under us when that session expires.
                match bounded(client.delete(&path, None)).await {
                    Ok(()) => {}
                    Err(error) if error.contains("not exists") => {}
                    Err(error) => return Err(error),
                }
                self.create_registration(&client, &path, addr).await
            }
            None => self.create_registration(&client, &path, addr).await,
        }
    }

    async fn create_registration(
        &self,
        client: &zk::Client,
        path: &str,
        addr: &str,
    ) -> Result<(), String> {
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match bounded(client.create(path, addr.as_bytes(), &options)).await {
            Ok(_) => Ok(()),
            Err(error) if error.contains("already exists") => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn zk_hold(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<Tenure, String> {
        let key = znode(key);
        // A session of its own: its lifetime is the lock's, and it is closed on resign. The
        // server notices an expired session up to a tick late, so the timeout is a little under
        // the TTL for the lock to change hands within it.
        let client = self.connect(session_timeout_for(ttl)).await?;
        let prefix = zk::LockPrefix::new_curator(&key, "lock-").map_err(describe)?;
        let options = zk::LockOptions::new(zk::Acls::anyone_all())
            .with_ancestor_options(persistent())
            .map_err(describe)?;
        let mut state = client.state_watcher();
        let lock = tokio::select! {
            () = shutdown.cancelled() => return Ok(Tenure::Resigned),
            lock = client.lock(prefix, b"", options) => lock.map_err(describe)?,
        };
        bounded(client.set_data(&key, value.as_bytes(), None)).await?;
        events.acquired();
        let own = lock.lock_path().to_string();
        loop {
            let (stat, watcher) = bounded(client.check_and_watch_stat(&own)).await?;
            if stat.is_none() {
                return Ok(Tenure::Lost("the lock znode was deleted".into()));
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), lock.delete(&own, None)).await;
                    drop(lock);
                    drop(client);
                    return Ok(Tenure::Resigned);
                }
                _ = watcher.changed() => {}
                changed = state.changed() => match changed {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {}
                    zk::SessionState::Disconnected => {
                        events.store_failed("zookeeper: disconnected");
                        // The session (and the lock) survives until its timeout; after that the
                        // server has given the lock away, so do not stay leader longer.
                        let reconnect = async {
                            loop {
                                match state.changed().await {
                                    zk::SessionState::SyncConnected => return true,
                                    zk::SessionState::Disconnected => {}
                                    _ => return false,
                                }
                            }
                        };
                        match tokio::time::timeout(ttl, reconnect).await {
                            Ok(true) => events.store_reached(),
                            _ => return Ok(Tenure::Lost("the ZooKeeper session was lost".into())),
                        }
                    }
                    other => return Ok(Tenure::Lost(format!("the ZooKeeper session ended ({other})"))),
                },
            }
        }
    }

    async fn zk_follow(
        &self,
        key: &str,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let key = znode(key);
        loop {
            let client = self.client().await?;
            let result = async {
                match client.get_and_watch_data(&key).await {
                    Ok((data, _, watcher)) => {
                        events.leader_is(&String::from_utf8_lossy(&data));
                        Ok(watcher)
                    }
                    Err(zk::Error::NoNode) => {
                        events.store_reached();
                        match client.check_and_watch_stat(&key).await {
                            Ok((_, watcher)) => Ok(watcher),
                            Err(error) => Err(describe(error)),
                        }
                    }
                    Err(error) => Err(describe(error)),
                }
            };
            let watcher = match tokio::time::timeout(OPERATION_TIMEOUT, result).await {
                Ok(Ok(watcher)) => watcher,
                Ok(Err(error)) => {
                    self.drop_session_on(&error).await;
                    return Err(error);
                }
                Err(_) => return Err("zookeeper: the operation timed out".into()),
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = watcher.changed() => {}
                () = tokio::time::sleep(WATCH_IDLE_LIMIT) => {}
            }
        }
    }
}

impl Backend for ZkBackend {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        let retry = self.heartbeat;
        watch_directory(self, retry, shutdown)
    }

    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move {
            match self.register_once(addr).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    self.drop_session_on(&error).await;
                    Err(DiscoveryError::Store(error))
                }
            }
        })
    }

    fn leave<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move { self.leave_now(addr).await.map_err(DiscoveryError::Store) })
    }
}

impl ZkBackend {
    /// Deletes this session's registration of `addr` and forgets the session.
    async fn leave_now(&self, addr: &str) -> Result<(), String> {
        let Some(client) = self.session.lock().await.take() else {
            return Ok(());
        };
        let path = format!("{}/{addr}", self.nodes_dir);
        match bounded(client.check_stat(&path)).await? {
            Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                bounded(client.delete(&path, None)).await
            }
            _ => Ok(()),
        }
    }
}

impl NodeDirectory for ZkBackend {
    /// The one-shot watch on the directory's children.
    type Cursor = zk::OneshotWatcher;

    async fn list(&self) -> Result<(Vec<String>, zk::OneshotWatcher), String> {
        let listed = async {
            let client = self.client().await?;
            bounded(client.mkdir(&self.nodes_dir, &persistent())).await?;
            let (children, _, watcher) =
                bounded(client.get_and_watch_children(&self.nodes_dir)).await?;
            let mut values = Vec::with_capacity(children.len());
            for child in children {
                match client
                    .get_data(&format!("{}/{child}", self.nodes_dir))
                    .await
                {
                    Ok((data, _)) => values.push(String::from_utf8_lossy(&data).into_owned()),
                    // Gone between the listing and the read: the watch fires for it anyway.
                    Err(zk::Error::NoNode) => {}
                    Err(error) => return Err(describe(error)),
                }
            }
            Ok((values, watcher))
        };
        let result = listed.await;
        if let Err(error) = &result {
            self.drop_session_on(error).await;
        }
        result
    }

    async fn changed(&self, watcher: zk::OneshotWatcher) -> Result<(), String> {
        tokio::select! {
            event = watcher.changed() => {
                if event.event_type == zk::EventType::Session {
                    self.drop_session_on(&format!("{:?}", event.session_state).to_lowercase()).await;
                }
            }
            () = tokio::time::sleep(WATCH_IDLE_LIMIT) => {}
        }
        Ok(())
    }
}

impl LeaderStore for ZkBackend {
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure> {
        Box::pin(self.zk_hold(key, value, ttl, events, shutdown))
    }

    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.zk_follow(key, events, shutdown))
    }
}

/// Builds a ZooKeeper backend from a parsed URL.
pub(crate) fn backend(url: &kv::KvUrl, opts: &DiscoveryOptions) -> Arc<ZkBackend> {
    if opts.get("kv.cacertfile").is_some() || opts.get("kv.certfile").is_some() {
        tracing::warn!(
            "ZooKeeper discovery does not use TLS; the kv.* certificate options are ignored"
        );
    }
    Arc::new(ZkBackend::new(
        &url.endpoints,
        &url.nodes_dir(opts.kv_path()),
        opts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_sessions_end_within_the_lock_ttl() {
        assert_eq!(
            session_timeout_for(Duration::from_secs(20)),
            Duration::from_secs(16)
        );
        assert_eq!(
            session_timeout_for(Duration::from_secs(4)),
            Duration::from_millis(3200)
        );
        assert_eq!(
            session_timeout_for(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn keys_become_absolute_znode_paths() {
        assert_eq!(znode("a/b"), "/a/b");
        assert_eq!(znode("/a/b/"), "/a/b");
        assert_eq!(znode("docker/swarm/leader"), "/docker/swarm/leader");
    }
}
