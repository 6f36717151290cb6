//! `etcd://<addr>[,<addr>…]/<prefix>`: node discovery, `swarm join` registrations and the leader
//! lock in etcd, over etcd's HTTP APIs.
//!
//! Two keyspaces exist and a manager reads exactly one of them, chosen with
//! `--discovery-opt kv.etcdapi=v3|v2` (default `v3`):
//!
//! - **v3** (every etcd since 3.4 serves it, 3.6 serves nothing else) through etcd's JSON gateway
//!   (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`). Keys carry no leading slash:
//!   `<prefix>/docker/swarm/nodes/<addr>`. Registrations and the leader key are bound to a lease
//!   whose TTL is `--ttl` (join) or `--replication-ttl` (leader); resigning revokes the lease.
//! - **v2**, the classic layout that `swarm join` agents of Docker Swarm write (SPEC §2.4):
//!   `/v2/keys/<prefix>/docker/swarm/nodes/<addr>` set with a TTL on every heartbeat, the leader
//!   key created if absent with a TTL and refreshed with a compare-and-swap. Needs an etcd that
//!   serves v2 (`--enable-v2` on 3.4 and 3.5).
//!
//! The two keyspaces are separate inside etcd: keys written through one API are invisible to the
//! other, which is why the choice is explicit. When a v3 manager sees an empty directory and
//! the v2 keyspace holds registrations, it logs a hint naming the option.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::kv::{
    self, encode_key_path, encode_query, sleep_or_shutdown, ttl_seconds, watch_directory,
    ElectionEvents, JsonLines, LeaderStore, NodeDirectory, StoreFuture, StoreHttp, Tenure,
};
use super::{Backend, DiscoveryError, DiscoveryOptions, RegisterFuture, WatchEvent};

/// Per-request limit for everything but watches (the classic used 3 s response headers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A watch that stays silent this long is re-established: a connection that died without a
/// reset (a partition) would otherwise hang forever.
const WATCH_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Which etcd API a backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdApi {
    /// The v3 API through the JSON gateway.
    V3,
    /// The v2 keys API (classic Swarm's layout).
    V2,
}

impl EtcdApi {
    /// Reads `kv.etcdapi` (`v3` when absent).
    pub fn from_options(opts: &DiscoveryOptions) -> Result<Self, DiscoveryError> {
        match opts.get("kv.etcdapi").map(str::trim) {
            None | Some("") | Some("v3") | Some("3") => Ok(EtcdApi::V3),
            Some("v2") | Some("2") => Ok(EtcdApi::V2),
            Some(other) => Err(DiscoveryError::Store(format!(
                "invalid --discovery-opt kv.etcdapi={other}: use v3 or v2"
            ))),
        }
    }
}

/// The etcd backend (either API).
pub struct EtcdBackend {
    /// HTTP to the endpoints.
    http: StoreHttp,
    /// Which API and keyspace.
    api: EtcdApi,
    /// `<prefix>/<kv.path>`, without leading or trailing slashes.
    nodes_dir: String,
    /// Watch retry delay (`--heartbeat`).
    heartbeat: Duration,
    /// Registration lifetime (`swarm join --ttl`).
    ttl: Duration,
    /// v3: the lease `swarm join` keeps its registration under, renewed every heartbeat.
    join_lease: Mutex<Option<i64>>,
    /// v3: whether the hint about v2 registrations was already considered.
    v2_hint_checked: AtomicBool,
}

impl EtcdBackend {
    /// A backend for `endpoints`, keeping nodes under `nodes_dir`.
    pub fn new(
        endpoints: Vec<String>,
        nodes_dir: String,
        opts: &DiscoveryOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, DiscoveryError> {
        Ok(EtcdBackend {
            http: StoreHttp::new(endpoints, tls),
            api: EtcdApi::from_options(opts)?,
            nodes_dir,
            heartbeat: opts.heartbeat,
            ttl: opts.ttl,
            join_lease: Mutex::new(None),
            v2_hint_checked: AtomicBool::new(false),
        })
    }

    /// The API this backend speaks.
    pub fn api(&self) -> EtcdApi {
        self.api
    }
}

impl Backend for EtcdBackend {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        let retry = self.heartbeat;
        watch_directory(self, retry, shutdown)
    }

    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move {
            let key = format!("{}/{addr}", self.nodes_dir);
            let result = match self.api {
                EtcdApi::V3 => self.v3_register(&key, addr).await,
                EtcdApi::V2 => self
                    .v2_set(&key, addr, Some(self.ttl), "")
                    .await
                    .map(|_| ()),
            };
            result.map_err(DiscoveryError::Store)
        })
    }
}

impl NodeDirectory for EtcdBackend {
    /// v3: the revision of the listing; v2: the `X-Etcd-Index` of the listing.
    type Cursor = i64;

    async fn list(&self) -> Result<(Vec<String>, i64), String> {
        match self.api {
            EtcdApi::V3 => {
                let prefix = format!("{}/", self.nodes_dir);
                let (kvs, revision) = self.v3_range(&prefix, true).await?;
                let values: Vec<String> = kvs.into_iter().map(|(_, value)| value).collect();
                if values.is_empty() && !self.v2_hint_checked.swap(true, Ordering::Relaxed) {
                    self.hint_about_v2().await;
                }
                Ok((values, revision))
            }
            EtcdApi::V2 => self.v2_list().await,
        }
    }

    async fn changed(&self, cursor: i64) -> Result<(), String> {
        match self.api {
            EtcdApi::V3 => {
                let prefix = format!("{}/", self.nodes_dir);
                let mut watch = self.v3_watch(&prefix, true, cursor + 1).await?;
                // Any event, or an idle stream, means "list again".
                match tokio::time::timeout(WATCH_IDLE_LIMIT, watch.next_events()).await {
                    Ok(Ok(_)) | Err(_) => Ok(()),
                    Ok(Err(error)) => Err(error),
                }
            }
            EtcdApi::V2 => self
                .v2_wait(&self.nodes_dir, true, cursor + 1)
                .await
                .map(|_| ()),
        }
    }
}

impl LeaderStore for EtcdBackend {
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure> {
        Box::pin(async move {
            match self.api {
                EtcdApi::V3 => self.v3_hold(key, value, ttl, events, shutdown).await,
                EtcdApi::V2 => self.v2_hold(key, value, ttl, events, shutdown).await,
            }
        })
    }

    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            match self.api {
                EtcdApi::V3 => self.v3_follow(key, events, shutdown).await,
                EtcdApi::V2 => self.v2_follow(key, events, shutdown).await,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// v3 through the JSON gateway

/// A 64-bit integer that the gateway may write as a string (it does for int64 fields) or as a
/// number; absent means zero, as in protobuf.
fn int_field(value: &Value, name: &str) -> i64 {
    match value.get(name) {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

fn unb64(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .and_then(|text| BASE64.decode(text).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The key just after every key that starts with `prefix` (etcd's `range_end` for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: "\0" means "to the end of the keyspace".
    vec![0]
}

/// One event of a v3 watch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct V3Event {
    /// True for DELETE (the gateway omits the type of PUT, protobuf's zero value).
    deleted: bool,
    /// The key's new value (empty for deletes).
    value: String,
}

/// An open v3 watch stream.
struct V3Watch {
    lines: JsonLines,
}

impl V3Watch {
    /// The next batch of events (skipping the creation notice and progress messages).
    async fn next_events(&mut self) -> Result<Vec<V3Event>, String> {
        loop {
            let Some(message) = self.lines.next().await? else {
                return Err("the watch stream ended".into());
            };
            if let Some(error) = message.get("error") {
                return Err(format!("watch failed: {}", v3_error_text(error)));
            }
            let result = message.get("result").unwrap_or(&message);
            if result.get("canceled").and_then(Value::as_bool) == Some(true)
                || int_field(result, "compact_revision") > 0
            {
                return Err("the store canceled the watch (history compacted)".into());
            }
            let Some(events) = result.get("events").and_then(Value::as_array) else {
                continue;
            };
            let events: Vec<V3Event> = events
                .iter()
                .map(|event| V3Event {
                    deleted: event.get("type").and_then(Value::as_str) == Some("DELETE"),
                    value: unb64(event.get("kv").and_then(|kv| kv.get("value"))),
                })
                .collect();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

fn v3_error_text(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string())
}

impl EtcdBackend {
    /// POSTs a v3 gateway call and returns its JSON answer; error statuses become errors.
    async fn v3_call(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = self
            .http
            .call(
                Method::POST,
                path,
                Some(("application/json", body.to_string().into_bytes())),
                REQUEST_TIMEOUT,
            )
            .await?;
        let answer = response.json();
        if response.status == StatusCode::NOT_FOUND {
            return Err(format!(
                "{path}: 404 from the store: it does not serve etcd's v3 API (for a v2-only etcd \
                 use --discovery-opt kv.etcdapi=v2)"
            ));
        }
        if !response.status.is_success() {
            let text = answer
                .map(|json| v3_error_text(json.get("error").unwrap_or(&json)))
                .unwrap_or_else(|e| e);
            return Err(format!("{path}: {}: {text}", response.status));
        }
        answer
    }

    /// Key/value pairs at `key` (or under it with `prefix`) and the store revision.
    async fn v3_range(
        &self,
        key: &str,
        prefix: bool,
    ) -> Result<(Vec<(String, String)>, i64), String> {
        let mut body = json!({ "key": b64(key) });
        if prefix {
            body["range_end"] = Value::String(BASE64.encode(prefix_end(key)));
        }
        let answer = self.v3_call("/v3/kv/range", body).await?;
        let revision = answer
            .get("header")
            .map(|h| int_field(h, "revision"))
            .unwrap_or(0);
        let kvs = answer
            .get("kvs")
            .and_then(Value::as_array)
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (unb64(kv.get("key")), unb64(kv.get("value"))))
                    .collect()
            })
            .unwrap_or_default();
        Ok((kvs, revision))
    }

    async fn v3_grant(&self, ttl: Duration) -> Result<i64, String> {
        let answer = self
            .v3_call(
                "/v3/lease/grant",
                json!({ "TTL": ttl_seconds(ttl).to_string() }),
            )
            .await?;
        if let Some(error) = answer
            .get("error")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(format!("lease grant refused: {error}"));
        }
        match int_field(&answer, "ID") {
            0 => Err("lease grant: the store returned no lease".into()),
            id => Ok(id),
        }
    }

    /// Renews a lease once; the remaining TTL in seconds, 0 when the lease no longer exists.
    async fn v3_keepalive(&self, lease: i64) -> Result<i64, String> {
        // The gateway maps this bidirectional stream to a request of one message and a
        // response stream of one message per request message.
        let answer = self
            .v3_call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        if let Some(error) = answer.get("error") {
            return Err(format!("lease keepalive failed: {}", v3_error_text(error)));
        }
        Ok(int_field(answer.get("result").unwrap_or(&answer), "TTL"))
    }

    async fn v3_revoke(&self, lease: i64) -> Result<(), String> {
        self.v3_call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
            .map(|_| ())
    }

    async fn v3_put(&self, key: &str, value: &str, lease: i64) -> Result<(), String> {
        self.v3_call(
            "/v3/kv/put",
            json!({ "key": b64(key), "value": b64(value), "lease": lease.to_string() }),
        )
        .await
        .map(|_| ())
    }

    /// Opens a watch of `key` (or of every key under it) from `start_revision` on.
    async fn v3_watch(
        &self,
        key: &str,
        prefix: bool,
        start_revision: i64,
    ) -> Result<V3Watch, String> {
        let mut create = json!({ "key": b64(key), "start_revision": start_revision.to_string() });
        if prefix {
            create["range_end"] = Value::String(BASE64.encode(prefix_end(key)));
        }
        let body = json!({ "create_request": create }).to_string().into_bytes();
        let open = self
            .http
            .open(Method::POST, "/v3/watch", Some(("application/json", body)));
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, open).await {
            Ok(response) => response?,
            Err(_) => return Err("the store did not open the watch in time".into()),
        };
        if !response.status().is_success() {
            return Err(format!("watch refused by the store: {}", response.status()));
        }
        Ok(V3Watch {
            lines: JsonLines::new(response.into_body()),
        })
    }

    async fn v3_register(&self, key: &str, addr: &str) -> Result<(), String> {
        let mut lease = self.join_lease.lock().await;
        if let Some(id) = *lease {
            match self.v3_keepalive(id).await {
                Ok(ttl) if ttl > 0 => {}
                Ok(_) => *lease = None,
                Err(error) => return Err(error),
            }
        }
        let id = match *lease {
            Some(id) => id,
            None => {
                let id = self.v3_grant(self.ttl).await?;
                *lease = Some(id);
                id
            }
        };
        // Written every time, so that a key someone deleted comes back at the next heartbeat.
        self.v3_put(key, addr, id).await
    }

    /// A manager on v3 with an empty node directory: say so if the v2 keyspace has nodes, since
    /// that is the classic agents' keyspace and the likely mistake.
    async fn hint_about_v2(&self) {
        if let Ok((values, _)) = self.v2_list_existing().await {
            if !values.is_empty() {
                tracing::warn!(
                    directory = %self.nodes_dir,
                    entries = values.len(),
                    "The etcd v3 keyspace has no nodes but the v2 keyspace does (classic swarm \
                     join agents write there): use --discovery-opt kv.etcdapi=v2 to read them"
                );
            }
        }
    }

    async fn v3_hold(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<Tenure, String> {
        let (lease, mut revision) = loop {
            let lease = self.v3_grant(ttl).await?;
            let txn = json!({
                "compare": [{ "target": "CREATE", "key": b64(key), "create_revision": "0" }],
                "success": [{ "request_put": { "key": b64(key), "value": b64(value),
                                                "lease": lease.to_string() } }],
                "failure": [{ "request_range": { "key": b64(key) } }],
            });
            let answer = match self.v3_call("/v3/kv/txn", txn).await {
                Ok(answer) => answer,
                Err(error) => {
                    let _ = self.v3_revoke(lease).await;
                    return Err(error);
                }
            };
            let revision = answer
                .get("header")
                .map(|h| int_field(h, "revision"))
                .unwrap_or(0);
            if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
                break (lease, revision);
            }
            let _ = self.v3_revoke(lease).await;
            // Someone holds it: wait until the key goes (expiry, release), then try again.
            if !self.v3_wait_deleted(key, revision + 1, shutdown).await? {
                return Ok(Tenure::Resigned);
            }
        };
        events.acquired();
        let refresh = (ttl / 3).max(Duration::from_millis(500));
        let mut last_renewed = Instant::now();
        let mut watch = self.v3_watch(key, false, revision + 1).await.ok();
        let mut ticker = tokio::time::interval_at(Instant::now() + refresh, refresh);
        loop {
            let next_event = async {
                match watch.as_mut() {
                    Some(stream) => stream.next_events().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Revoking the lease deletes the key: followers see the leader go at once.
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.v3_revoke(lease)).await;
                    return Ok(Tenure::Resigned);
                }
                _ = ticker.tick() => {
                    match self.v3_keepalive(lease).await {
                        Ok(left) if left > 0 => {
                            last_renewed = Instant::now();
                            events.store_reached();
                        }
                        Ok(_) => return Ok(Tenure::Lost("the leader lock expired".into())),
                        Err(error) => {
                            events.store_failed(&error);
                            if last_renewed.elapsed() >= ttl {
                                return Ok(Tenure::Lost(format!(
                                    "the leader lock could not be renewed within its TTL: {error}"
                                )));
                            }
                        }
                    }
                    if watch.is_none() {
                        watch = self.v3_watch(key, false, revision + 1).await.ok();
                    }
                }
                batch = next_event => match batch {
                    Ok(batch) => {
                        for event in batch {
                            if event.deleted || event.value != value {
                                let _ = self.v3_revoke(lease).await;
                                return Ok(Tenure::Lost("the leader key was removed or overwritten".into()));
                            }
                        }
                    }
                    Err(_) => {
                        // Re-opened at the next renewal; the lease still guards the lock.
                        watch = None;
                        if let Ok((_, current)) = self.v3_range(key, false).await {
                            revision = current;
                        }
                    }
                },
            }
        }
    }

    /// Waits until `key` is deleted; false when shutdown came first.
    async fn v3_wait_deleted(
        &self,
        key: &str,
        start_revision: i64,
        shutdown: &CancellationToken,
    ) -> Result<bool, String> {
        let mut watch = self.v3_watch(key, false, start_revision).await?;
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => return Ok(false),
                batch = tokio::time::timeout(WATCH_IDLE_LIMIT, watch.next_events()) => batch,
            };
            match batch {
                Ok(Ok(batch)) if batch.iter().any(|event| event.deleted) => return Ok(true),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error),
                // Quiet for long: check directly, then watch again.
                Err(_) => {
                    let (kvs, revision) = self.v3_range(key, false).await?;
                    if kvs.is_empty() {
                        return Ok(true);
                    }
                    watch = self.v3_watch(key, false, revision + 1).await?;
                }
            }
        }
    }

    async fn v3_follow(
        &self,
        key: &str,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        loop {
            let (kvs, revision) = self.v3_range(key, false).await?;
            events.store_reached();
            if let Some((_, value)) = kvs.first() {
                events.leader_is(value);
            }
            let mut watch = self.v3_watch(key, false, revision + 1).await?;
            loop {
                let batch = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    batch = tokio::time::timeout(WATCH_IDLE_LIMIT, watch.next_events()) => batch,
                };
                match batch {
                    Ok(Ok(batch)) => {
                        for event in batch.iter().filter(|event| !event.deleted) {
                            events.leader_is(&event.value);
                        }
                    }
                    Ok(Err(error)) => return Err(error),
                    Err(_) => break,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// v2 keys API

/// What a v2 answer says about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct V2Answer {
    /// `action` (`get`, `set`, `delete`, `expire`, `compareAndSwap`, …).
    action: String,
    /// The node's value (empty for directories and deletions).
    value: String,
    /// The node's `modifiedIndex`.
    modified_index: i64,
    /// The `X-Etcd-Index` header.
    etcd_index: i64,
}

/// The error code etcd v2 returns in its JSON errors.
fn v2_error_code(body: &Value) -> i64 {
    int_field(body, "errorCode")
}

fn v2_error_text(path: &str, status: StatusCode, body: &Value) -> String {
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    let cause = body.get("cause").and_then(Value::as_str).unwrap_or("");
    if status == StatusCode::NOT_FOUND && message.is_empty() {
        return format!(
            "{path}: 404 from the store: it does not serve etcd's v2 API (etcd 3.4 and 3.5 need \
             --enable-v2; otherwise drop --discovery-opt kv.etcdapi=v2)"
        );
    }
    format!("{path}: {status}: {message} ({cause})")
}

/// etcd v2 error codes this module reacts to.
const V2_KEY_NOT_FOUND: i64 = 100;
const V2_COMPARE_FAILED: i64 = 101;
const V2_NODE_EXISTS: i64 = 105;
const V2_INDEX_CLEARED: i64 = 401;

/// How a v2 call went.
enum V2Outcome {
    /// 2xx and the answer.
    Done(V2Answer, Value),
    /// An etcd error with its code (not found, compare failed, …).
    Refused(i64, String),
}

impl EtcdBackend {
    fn v2_path(key: &str) -> String {
        format!("/v2/keys/{}", encode_key_path(key.trim_start_matches('/')))
    }

    async fn v2_call(
        &self,
        method: Method,
        key: &str,
        query: &str,
        form: Option<String>,
        timeout: Duration,
    ) -> Result<V2Outcome, String> {
        let path = format!("{}{query}", Self::v2_path(key));
        let body = form.map(|form| ("application/x-www-form-urlencoded", form.into_bytes()));
        let response = self.http.call(method, &path, body, timeout).await?;
        let json = response.json().unwrap_or(Value::Null);
        if !response.status.is_success() {
            let code = v2_error_code(&json);
            if code == 0 {
                return Err(v2_error_text(&path, response.status, &json));
            }
            return Ok(V2Outcome::Refused(
                code,
                v2_error_text(&path, response.status, &json),
            ));
        }
        let node = json.get("node").cloned().unwrap_or(Value::Null);
        let answer = V2Answer {
            action: json
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            value: node
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            modified_index: int_field(&node, "modifiedIndex"),
            etcd_index: response
                .index_header("X-Etcd-Index")
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(0),
        };
        Ok(V2Outcome::Done(answer, json))
    }

    /// Sets `key` to `value` with an optional TTL; `conditions` is extra query text such as
    /// `prevExist=false`. `Ok(None)` when the condition failed.
    async fn v2_set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        conditions: &str,
    ) -> Result<Option<V2Answer>, String> {
        let mut form = format!("value={}", encode_query(value));
        if let Some(ttl) = ttl {
            form.push_str(&format!("&ttl={}", ttl_seconds(ttl)));
        }
        let query = if conditions.is_empty() {
            String::new()
        } else {
            format!("?{conditions}")
        };
        match self
            .v2_call(Method::PUT, key, &query, Some(form), REQUEST_TIMEOUT)
            .await?
        {
            V2Outcome::Done(answer, _) => Ok(Some(answer)),
            V2Outcome::Refused(V2_COMPARE_FAILED | V2_NODE_EXISTS | V2_KEY_NOT_FOUND, _) => {
                Ok(None)
            }
            V2Outcome::Refused(_, text) => Err(text),
        }
    }

    /// Lists the directory's values; a missing directory is created first.
    async fn v2_list(&self) -> Result<(Vec<String>, i64), String> {
        match self.v2_list_existing().await {
            Err(error) if error.starts_with("missing:") => {
                // Create it as a directory; "already exists" from a concurrent creator is fine.
                let _ = self
                    .v2_call(
                        Method::PUT,
                        &self.nodes_dir,
                        "?dir=true&prevExist=false",
                        Some(String::new()),
                        REQUEST_TIMEOUT,
                    )
                    .await?;
                self.v2_list_existing()
                    .await
                    .map_err(|e| e.trim_start_matches("missing:").to_string())
            }
            other => other,
        }
    }

    /// Lists the directory's values; an error starting with `missing:` when it does not exist.
    async fn v2_list_existing(&self) -> Result<(Vec<String>, i64), String> {
        match self
            .v2_call(
                Method::GET,
                &self.nodes_dir,
                "?recursive=true",
                None,
                REQUEST_TIMEOUT,
            )
            .await?
        {
            V2Outcome::Done(answer, json) => {
                let mut values = Vec::new();
                if let Some(node) = json.get("node") {
                    collect_v2_values(node, &mut values);
                }
                Ok((values, answer.etcd_index))
            }
            V2Outcome::Refused(V2_KEY_NOT_FOUND, text) => Err(format!("missing:{text}")),
            V2Outcome::Refused(_, text) => Err(text),
        }
    }

    /// Long-polls for the next change of `key` (or below it) from `wait_index`. `Ok(None)`
    /// when the poll should simply be repeated after a fresh read (quiet or history cleared).
    async fn v2_wait(
        &self,
        key: &str,
        recursive: bool,
        wait_index: i64,
    ) -> Result<Option<V2Answer>, String> {
        let query = format!(
            "?wait=true&waitIndex={wait_index}{}",
            if recursive { "&recursive=true" } else { "" }
        );
        let call = self.v2_call(Method::GET, key, &query, None, WATCH_IDLE_LIMIT);
        match call.await {
            Ok(V2Outcome::Done(answer, _)) => Ok(Some(answer)),
            Ok(V2Outcome::Refused(V2_INDEX_CLEARED, _)) => Ok(None),
            Ok(V2Outcome::Refused(_, text)) => Err(text),
            Err(error) if error.contains("did not answer") => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn v2_hold(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<Tenure, String> {
        loop {
            if self
                .v2_set(key, value, Some(ttl), "prevExist=false")
                .await?
                .is_some()
            {
                break;
            }
            // Held by someone else: wait for it to be deleted or to expire.
            let current = match self
                .v2_call(Method::GET, key, "", None, REQUEST_TIMEOUT)
                .await?
            {
                V2Outcome::Done(answer, _) => answer,
                V2Outcome::Refused(V2_KEY_NOT_FOUND, _) => continue,
                V2Outcome::Refused(_, text) => return Err(text),
            };
            let mut index = current.etcd_index.max(current.modified_index);
            loop {
                let waited = tokio::select! {
                    () = shutdown.cancelled() => return Ok(Tenure::Resigned),
                    waited = self.v2_wait(key, false, index + 1) => waited?,
                };
                match waited {
                    Some(change)
                        if matches!(
                            change.action.as_str(),
                            "delete" | "expire" | "compareAndDelete"
                        ) =>
                    {
                        break
                    }
                    Some(change) => index = change.modified_index.max(index + 1),
                    None => break,
                }
            }
        }
        events.acquired();
        let refresh = (ttl / 3).max(Duration::from_millis(500));
        let mut last_renewed = Instant::now();
        let conditions = format!("prevValue={}", encode_query(value));
        loop {
            if !sleep_or_shutdown(refresh, shutdown).await {
                let query = format!("?{conditions}");
                let release =
                    self.v2_call(Method::DELETE, key, &query, None, Duration::from_secs(2));
                let _ = release.await;
                return Ok(Tenure::Resigned);
            }
            match self.v2_set(key, value, Some(ttl), &conditions).await {
                Ok(Some(_)) => {
                    last_renewed = Instant::now();
                    events.store_reached();
                }
                Ok(None) => {
                    return Ok(Tenure::Lost(
                        "the leader key expired or changed hands".into(),
                    ))
                }
                Err(error) => {
                    events.store_failed(&error);
                    if last_renewed.elapsed() >= ttl {
                        return Ok(Tenure::Lost(format!(
                            "the leader lock could not be renewed within its TTL: {error}"
                        )));
                    }
                }
            }
        }
    }

    async fn v2_follow(
        &self,
        key: &str,
        events: &ElectionEvents,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        loop {
            let mut index = match self
                .v2_call(Method::GET, key, "", None, REQUEST_TIMEOUT)
                .await?
            {
                V2Outcome::Done(answer, _) => {
                    events.leader_is(&answer.value);
                    answer.etcd_index.max(answer.modified_index)
                }
                V2Outcome::Refused(V2_KEY_NOT_FOUND, _) => {
                    events.store_reached();
                    // Watch from the current index; the header carries it even for 404s.
                    self.v2_call(Method::GET, "", "", None, REQUEST_TIMEOUT)
                        .await
                        .ok()
                        .and_then(|outcome| match outcome {
                            V2Outcome::Done(answer, _) => Some(answer.etcd_index),
                            V2Outcome::Refused(..) => None,
                        })
                        .unwrap_or(0)
                }
                V2Outcome::Refused(_, text) => return Err(text),
            };
            loop {
                let waited = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    waited = self.v2_wait(key, false, index + 1) => waited?,
                };
                match waited {
                    Some(change) => {
                        if !change.value.is_empty() {
                            events.leader_is(&change.value);
                        }
                        index = change.modified_index.max(index + 1);
                    }
                    None => break,
                }
            }
        }
    }
}

/// Collects the values of every leaf below a v2 node.
fn collect_v2_values(node: &Value, values: &mut Vec<String>) {
    if let Some(children) = node.get("nodes").and_then(Value::as_array) {
        for child in children {
            if child.get("dir").and_then(Value::as_bool) == Some(true) {
                collect_v2_values(child, values);
            } else if let Some(value) = child.get("value").and_then(Value::as_str) {
                values.push(value.to_string());
            }
        }
    }
}

/// Builds an etcd backend from a parsed URL.
pub(crate) fn backend(
    url: &kv::KvUrl,
    opts: &DiscoveryOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Arc<EtcdBackend>, DiscoveryError> {
    let backend = EtcdBackend::new(
        url.endpoints.clone(),
        url.nodes_dir(opts.kv_path()),
        opts,
        tls,
    )?;
    tracing::debug!(api = ?backend.api(), "etcd discovery");
    Ok(Arc::new(backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_v3_unless_v2_is_asked_for() {
        let mut opts = DiscoveryOptions::default();
        assert_eq!(EtcdApi::from_options(&opts).unwrap(), EtcdApi::V3);
        opts.opts.push(("kv.etcdapi".into(), "v2".into()));
        assert_eq!(EtcdApi::from_options(&opts).unwrap(), EtcdApi::V2);
        opts.opts.push(("kv.etcdapi".into(), "v9".into()));
        assert_eq!(
            EtcdApi::from_options(&opts).unwrap_err().to_string(),
            "invalid --discovery-opt kv.etcdapi=v9: use v3 or v2"
        );
    }

    #[test]
    fn prefix_ends_increment_the_last_byte() {
        assert_eq!(prefix_end("a/"), b"a0");
        assert_eq!(prefix_end("ab"), b"ac");
        assert_eq!(prefix_end(""), [0]);
    }

    #[test]
    fn gateway_integers_come_as_strings_or_numbers() {
        let value = json!({ "a": "12", "b": 7, "c": "x", "d": null });
        assert_eq!(int_field(&value, "a"), 12);
        assert_eq!(int_field(&value, "b"), 7);
        assert_eq!(int_field(&value, "c"), 0);
        assert_eq!(int_field(&value, "d"), 0);
        assert_eq!(int_field(&value, "missing"), 0);
    }

    #[test]
    fn malformed_base64_reads_as_empty() {
        assert_eq!(unb64(Some(&json!("bWU6MQ=="))), "me:1");
        assert_eq!(unb64(Some(&json!("%%%"))), "");
        assert_eq!(unb64(Some(&json!(5))), "");
        assert_eq!(unb64(None), "");
    }

    #[test]
    fn v2_listings_collect_leaf_values_recursively() {
        let node = json!({"dir": true, "nodes": [
            {"key": "/d/a:1", "value": "a:1"},
            {"key": "/d/sub", "dir": true, "nodes": [{"key": "/d/sub/b:2", "value": "b:2"}]},
            {"key": "/d/empty", "dir": true},
        ]});
        let mut values = Vec::new();
        collect_v2_values(&node, &mut values);
        assert_eq!(values, ["a:1", "b:2"]);
    }
}
