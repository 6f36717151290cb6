//! etcd's v3 API through its JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`,
//! `/v3/watch`): node entries and the leader key bound to leases.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::v2::EtcdV2;
use super::{int_field, Etcd, REQUEST_TIMEOUT, WATCH_IDLE_LIMIT};
use crate::discovery::kv::{
    keep_lock, ttl_seconds, watch_directory, ElectionEvents, HeldLock, JsonLines, LeaderStore,
    NodeDirectory, Renewal, StoreFuture, Tenure,
};
use crate::discovery::{Backend, DiscoveryError, RegisterFuture, Watch};

/// A client of etcd's v3 API.
pub struct EtcdV3 {
    /// The store.
    etcd: Arc<Etcd>,
    /// The lease `swarm join` keeps its registration under, renewed every heartbeat.
    join_lease: Mutex<Option<i64>>,
    /// Whether the hint about v2 registrations was already considered.
    v2_hint_checked: AtomicBool,
}

impl EtcdV3 {
    /// A v3 client of `etcd`.
    pub fn new(etcd: Arc<Etcd>) -> Self {
        EtcdV3 {
            etcd,
            join_lease: Mutex::new(None),
            v2_hint_checked: AtomicBool::new(false),
        }
    }
}

impl Backend for EtcdV3 {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        let retry = self.etcd.heartbeat;
        watch_directory(self, retry, shutdown)
    }

    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move {
            let key = format!("{}/{addr}", self.etcd.nodes_dir);
            self.v3_register(&key, addr)
                .await
                .map_err(DiscoveryError::Store)
        })
    }
}

impl NodeDirectory for EtcdV3 {
    /// The revision of the listing.
    type Cursor = i64;

    async fn list(&self) -> Result<(Vec<String>, i64), String> {
        let prefix = format!("{}/", self.etcd.nodes_dir);
        let (kvs, revision) = self.v3_range(&prefix, true).await?;
        let values: Vec<String> = kvs.into_iter().map(|(_, value)| value).collect();
        if values.is_empty() && !self.v2_hint_checked.swap(true, Ordering::Relaxed) {
            self.hint_about_v2().await;
        }
        Ok((values, revision))
    }

    async fn changed(&self, cursor: i64) -> Result<(), String> {
        let prefix = format!("{}/", self.etcd.nodes_dir);
        let mut watch = self.v3_watch(&prefix, true, cursor + 1).await?;
        // Any event, or an idle stream, means "list again".
        match tokio::time::timeout(WATCH_IDLE_LIMIT, watch.next_events()).await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(error)) => Err(error),
        }
    }
}

impl LeaderStore for EtcdV3 {
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure> {
        Box::pin(self.v3_hold(key, value, ttl, events, shutdown))
    }

    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.v3_follow(key, events, shutdown))
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

impl EtcdV3 {
    /// POSTs a v3 gateway call and returns its JSON answer; error statuses become errors.
    async fn v3_call(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = self
            .etcd
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
            .etcd
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
                let id = self.v3_grant(self.etcd.ttl).await?;
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
        let classic = EtcdV2::new(self.etcd.clone());
        if let Ok((values, _)) = classic.v2_list_existing().await {
            if !values.is_empty() {
                tracing::warn!(
                    directory = %self.etcd.nodes_dir,
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
        let (lease, revision) = loop {
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
        let mut lock = V3Lock {
            client: self,
            key,
            value,
            lease,
            revision,
            watch: self.v3_watch(key, false, revision + 1).await.ok(),
        };
        Ok(keep_lock(&mut lock, ttl, events, shutdown).await)
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

/// The leader key while this manager holds it: bound to a lease that is kept alive, and
/// watched so that a key removed or overwritten is noticed between renewals.
struct V3Lock<'a> {
    client: &'a EtcdV3,
    key: &'a str,
    value: &'a str,
    /// The lease the key is bound to.
    lease: i64,
    /// The store revision the watch starts after.
    revision: i64,
    /// The watch of the key; none after it broke, until the next renewal opens it again.
    watch: Option<V3Watch>,
}

impl HeldLock for V3Lock<'_> {
    async fn renew(&mut self) -> Result<Renewal, String> {
        if self.client.v3_keepalive(self.lease).await? <= 0 {
            return Ok(Renewal::Expired("the leader lock expired".into()));
        }
        if self.watch.is_none() {
            self.watch = self
                .client
                .v3_watch(self.key, false, self.revision + 1)
                .await
                .ok();
        }
        Ok(Renewal::Renewed)
    }

    async fn lost(&mut self) -> String {
        loop {
            let Some(watch) = self.watch.as_mut() else {
                return std::future::pending().await;
            };
            match watch.next_events().await {
                Ok(batch) => {
                    if batch
                        .iter()
                        .any(|event| event.deleted || event.value != self.value)
                    {
                        return "the leader key was removed or overwritten".into();
                    }
                }
                Err(_) => {
                    // Re-opened at the next renewal; the lease still guards the lock.
                    self.watch = None;
                    if let Ok((_, current)) = self.client.v3_range(self.key, false).await {
                        self.revision = current;
                    }
                }
            }
        }
    }

    async fn release(&mut self) {
        // Revoking the lease deletes the key: followers see the leader go at once.
        let revoke = self.client.v3_revoke(self.lease);
        let _ = tokio::time::timeout(Duration::from_secs(2), revoke).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_increment_the_last_byte() {
        assert_eq!(prefix_end("a/"), b"a0");
        assert_eq!(prefix_end("ab"), b"ac");
        assert_eq!(prefix_end(""), [0]);
    }

    #[test]
    fn malformed_base64_reads_as_empty() {
        assert_eq!(unb64(Some(&json!("bWU6MQ=="))), "me:1");
        assert_eq!(unb64(Some(&json!("%%%"))), "");
        assert_eq!(unb64(Some(&json!(5))), "");
        assert_eq!(unb64(None), "");
    }
}
