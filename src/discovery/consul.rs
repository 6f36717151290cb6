//! `consul://<addr>/<prefix>`: node discovery, `swarm join` registrations and the leader lock in
//! Consul's KV store, over Consul's HTTP API (`/v1/kv`, `/v1/session`).
//!
//! Layout as in the classic: `<prefix>/docker/swarm/nodes/<addr>` = `<addr>`, each registration
//! held by a session with TTL `--ttl`/2 (Consul lets a session live up to twice its TTL) and
//! *delete* behaviour, so the key goes when the agent stops renewing. The leader key
//! `<prefix>/docker/swarm/leader` is acquired with a session of TTL `--replication-ttl`/2 and
//! *release* behaviour. Consul refuses session TTLs under 10 s, so shorter TTLs are raised to
//! that. Watches are blocking queries with a 15 s wait.
//!
//! No Consul server is installed where Shoal is tested: this module is tested against a small
//! fake that implements the calls above (tests/discovery_kv.rs).
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::kv::{
    self, encode_key_path, encode_query, keep_lock, ttl_seconds, watch_directory, ElectionEvents,
    HeldLock, LeaderStore, NodeDirectory, Renewal, StoreFuture, StoreHttp, StoreResponse, Tenure,
};
use super::{Backend, DiscoveryError, DiscoveryOptions, RegisterFuture, Watch};

/// Per-request limit for everything but blocking queries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a blocking query may wait on the server.
const BLOCKING_WAIT: &str = "15s";

/// The client-side limit for a blocking query: the server's wait plus slack.
const BLOCKING_TIMEOUT: Duration = Duration::from_secs(20);

/// Consul's smallest session TTL.
const MIN_SESSION_TTL: Duration = Duration::from_secs(10);

/// The Consul backend.
pub struct ConsulBackend {
    /// HTTP to the agent.
    http: StoreHttp,
    /// `<prefix>/<kv.path>`, without leading or trailing slashes.
    nodes_dir: String,
    /// Watch retry delay (`--heartbeat`).
    heartbeat: Duration,
    /// Registration lifetime (`swarm join --ttl`).
    ttl: Duration,
    /// The session `swarm join` holds its registration with.
    join_session: Mutex<Option<String>>,
}

/// One key of a KV listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConsulKey {
    key: String,
    value: String,
    session: String,
}

fn parse_keys(body: &Value) -> Vec<ConsulKey> {
    body.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| ConsulKey {
                    key: item
                        .get("Key")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    value: item
                        .get("Value")
                        .and_then(Value::as_str)
                        .and_then(|text| BASE64.decode(text).ok())
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_default(),
                    session: item
                        .get("Session")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A session TTL as Consul wants it: half the wanted lifetime, at least Consul's minimum.
fn session_ttl(lifetime: Duration) -> String {
    format!("{}s", ttl_seconds((lifetime / 2).max(MIN_SESSION_TTL)))
}

fn failure(path: &str, response: &StoreResponse) -> String {
    format!(
        "{path}: {}: {}",
        response.status,
        String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).trim()
    )
}

impl ConsulBackend {
    /// A backend for the agent at `endpoint`, keeping nodes under `nodes_dir`.
    pub fn new(
        endpoint: String,
        nodes_dir: String,
        opts: &DiscoveryOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        ConsulBackend {
            http: StoreHttp::new(vec![endpoint], tls),
            nodes_dir,
            heartbeat: opts.heartbeat,
            ttl: opts.ttl,
            join_session: Mutex::new(None),
        }
    }

    fn kv_path(key: &str) -> String {
        format!("/v1/kv/{}", encode_key_path(key.trim_start_matches('/')))
    }

    /// GET of a key (or of every key under it with `recurse`), optionally blocking on `index`.
    /// Returns the keys (empty when none) and the `X-Consul-Index`.
    async fn get(
        &self,
        key: &str,
        recurse: bool,
        index: Option<u64>,
    ) -> Result<(Vec<ConsulKey>, u64), String> {
        let mut query = Vec::new();
        if recurse {
            query.push("recurse".to_string());
        }
        if let Some(index) = index {
            query.push(format!("index={index}&wait={BLOCKING_WAIT}"));
        }
        let path = if query.is_empty() {
            Self::kv_path(key)
        } else {
            format!("{}?{}", Self::kv_path(key), query.join("&"))
        };
        let timeout = if index.is_some() {
            BLOCKING_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let response = self.http.call(Method::GET, &path, None, timeout).await?;
        let consul_index = response.index_header("X-Consul-Index").unwrap_or(0);
        match response.status {
            StatusCode::NOT_FOUND => Ok((Vec::new(), consul_index)),
            status if status.is_success() => Ok((parse_keys(&response.json()?), consul_index)),
            _ => Err(failure(&path, &response)),
        }
    }

    /// PUT of a key, with extra query text (`acquire=…`, `release=…`); Consul's true/false.
    async fn put(&self, key: &str, value: &str, query: &str) -> Result<bool, String> {
        let path = if query.is_empty() {
            Self::kv_path(key)
        } else {
            format!("{}?{query}", Self::kv_path(key))
        };
        let body = Some(("application/octet-stream", value.as_bytes().to_vec()));
        let response = self
            .http
            .call(Method::PUT, &path, body, REQUEST_TIMEOUT)
            .await?;
        if !response.status.is_success() {
            return Err(failure(&path, &response));
        }
        Ok(String::from_utf8_lossy(&response.body).trim() == "true")
    }

    async fn create_session(&self, lifetime: Duration, behavior: &str) -> Result<String, String> {
        let body = json!({
            "Name": "shoal",
            "TTL": session_ttl(lifetime),
            "Behavior": behavior,
            // The default 15 s lock-delay would hold a failed-over lock longer than the TTL.
            "LockDelay": "1s",
        });
        let response = self
            .http
            .call(
                Method::PUT,
                "/v1/session/create",
                Some(("application/json", body.to_string().into_bytes())),
                REQUEST_TIMEOUT,
            )
            .await?;
        if !response.status.is_success() {
            return Err(failure("/v1/session/create", &response));
        }
        response
            .json()?
            .get("ID")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| "session create: the store returned no session ID".into())
    }

    /// Renews a session; false when Consul no longer knows it.
    async fn renew_session(&self, id: &str) -> Result<bool, String> {
        let path = format!("/v1/session/renew/{}", encode_query(id));
        let response = self
            .http
            .call(Method::PUT, &path, None, REQUEST_TIMEOUT)
            .await?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => {
                // An empty list also means the session is gone.
                Ok(response
                    .json()
                    .map(|v| v.as_array().is_none_or(|a| !a.is_empty()))
                    .unwrap_or(true))
            }
            _ => Err(failure(&path, &response)),
        }
    }

    async fn destroy_session(&self, id: &str) {
        let path = format!("/v1/session/destroy/{}", encode_query(id));
        let _ = self
            .http
            .call(Method::PUT, &path, None, Duration::from_secs(2))
            .await;
    }

    async fn join_register(&self, key: &str, addr: &str) -> Result<(), String> {
        let mut session = self.join_session.lock().await;
        if let Some(id) = session.clone() {
            if !self.renew_session(&id).await? {
                *session = None;
            }
        }
        let id = match session.clone() {
            Some(id) => id,
            None => {
                let id = self.create_session(self.ttl, "delete").await?;
                *session = Some(id.clone());
                id
            }
        };
        if self
            .put(key, addr, &format!("acquire={}", encode_query(&id)))
            .await?
        {
            Ok(())
        } else {
            Err(format!("{key} is held by another session"))
        }
    }

    async fn consul_hold(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<Tenure, String> {
        let session = self.create_session(ttl, "release").await?;
        let acquire = format!("acquire={}", encode_query(&session));
        let refresh = (ttl / 3).max(Duration::from_millis(500));
        // Campaign: try to acquire; while someone else holds it, wait on the key and renew.
        loop {
            match self.put(key, value, &acquire).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    self.destroy_session(&session).await;
                    return Err(error);
                }
            }
            let (_, index) = self.get(key, false, None).await?;
            let waited = tokio::select! {
                () = shutdown.cancelled() => {
                    self.give_up(key, value, &session).await;
                    return Ok(Tenure::Resigned);
                }
                waited = tokio::time::timeout(refresh, self.get(key, false, Some(index))) => waited,
            };
            if let Ok(Err(error)) = waited {
                self.destroy_session(&session).await;
                return Err(error);
            }
            if !self.renew_session(&session).await? {
                return Ok(Tenure::Lost("the election session expired".into()));
            }
        }
        events.acquired();
        let mut lock = ConsulLock {
            client: self,
            key,
            value,
            session: &session,
        };
        Ok(keep_lock(&mut lock, ttl, events, shutdown).await)
    }

    /// Releases the leader key (if this session holds it) and destroys the session.
    async fn give_up(&self, key: &str, value: &str, session: &str) {
        let release = format!("release={}", encode_query(session));
        let _ = self.put(key, value, &release).await;
        self.destroy_session(session).await;
    }

    async fn consul_follow(
        &self,
        key: &str,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let mut index = None;
        loop {
            let read = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                read = self.get(key, false, index) => read?,
            };
            let (keys, next) = read;
            events.store_reached();
            if let Some(current) = keys.first() {
                events.leader_is(&current.value);
            }
            // Consul indexes only grow; one that goes back (a reset) restarts the blocking.
            index = Some(if Some(next) < index { 0 } else { next });
        }
    }
}

/// The leader key while this manager holds it: acquired by a session that is renewed, and
/// checked after each renewal to still be held by that session.
struct ConsulLock<'a> {
    client: &'a ConsulBackend,
    key: &'a str,
    value: &'a str,
    /// The session that acquired the key.
    session: &'a str,
}

impl HeldLock for ConsulLock<'_> {
    async fn renew(&mut self) -> Result<Renewal, String> {
        if !self.client.renew_session(self.session).await? {
            return Ok(Renewal::Expired("the leader session expired".into()));
        }
        if let Ok((keys, _)) = self.client.get(self.key, false, None).await {
            if keys.first().is_none_or(|k| k.session != self.session) {
                return Ok(Renewal::TakenAway("the leader key was taken away".into()));
            }
        }
        Ok(Renewal::Renewed)
    }

    async fn release(&mut self) {
        self.client
            .give_up(self.key, self.value, self.session)
            .await;
    }
}

impl Backend for ConsulBackend {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        let retry = self.heartbeat;
        watch_directory(self, retry, shutdown)
    }

    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move {
            let key = format!("{}/{addr}", self.nodes_dir);
            self.join_register(&key, addr)
                .await
                .map_err(DiscoveryError::Store)
        })
    }
}

impl NodeDirectory for ConsulBackend {
    /// The `X-Consul-Index` of the listing.
    type Cursor = u64;

    async fn list(&self) -> Result<(Vec<String>, u64), String> {
        let dir = format!("{}/", self.nodes_dir);
        let (keys, index) = self.get(&dir, true, None).await?;
        if keys.is_empty() {
            // Create the directory key, as the classic did; its empty value lists as nothing.
            self.put(&dir, "", "").await?;
        }
        let values = keys
            .into_iter()
            .filter(|k| !k.key.ends_with('/'))
            .map(|k| k.value)
            .collect();
        Ok((values, index))
    }

    async fn changed(&self, cursor: u64) -> Result<(), String> {
        let dir = format!("{}/", self.nodes_dir);
        self.get(&dir, true, Some(cursor)).await.map(|_| ())
    }
}

impl LeaderStore for ConsulBackend {
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure> {
        Box::pin(self.consul_hold(key, value, ttl, events, shutdown))
    }

    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.consul_follow(key, events, shutdown))
    }
}

/// Builds a Consul backend from a parsed URL (which holds exactly one endpoint).
pub(crate) fn backend(
    url: &kv::KvUrl,
    opts: &DiscoveryOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Arc<ConsulBackend> {
    let endpoint = url.endpoints.first().cloned().unwrap_or_default();
    Arc::new(ConsulBackend::new(
        endpoint,
        url.nodes_dir(opts.kv_path()),
        opts,
        tls,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ttls_are_half_the_lifetime_and_at_least_ten_seconds() {
        assert_eq!(session_ttl(Duration::from_secs(180)), "90s");
        assert_eq!(session_ttl(Duration::from_secs(20)), "10s");
        assert_eq!(session_ttl(Duration::from_secs(6)), "10s");
        assert_eq!(session_ttl(Duration::from_secs(25)), "13s");
    }

    #[test]
    fn listings_decode_values_and_tolerate_garbage() {
        let keys = parse_keys(&json!([
            {"Key": "d/", "Value": null},
            {"Key": "d/a:1", "Value": "YTox", "Session": "s1"},
            {"Key": "d/b", "Value": "!!"},
            "junk",
        ]));
        assert_eq!(keys.len(), 4);
        assert_eq!(keys[1].value, "a:1");
        assert_eq!(keys[1].session, "s1");
        assert_eq!(keys[2].value, "");
        assert_eq!(keys[3].key, "");
        assert!(parse_keys(&json!({"not": "a list"})).is_empty());
    }
}
