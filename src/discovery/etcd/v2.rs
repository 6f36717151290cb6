//! etcd's v2 keys API, the classic layout that `swarm join` agents of Docker Swarm write
//! (SPEC §2.4): entries set with a TTL on every heartbeat, the leader key created if absent and
//! refreshed with a compare-and-swap. Needs an etcd that serves v2.
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{int_field, Etcd, REQUEST_TIMEOUT, WATCH_IDLE_LIMIT};
use crate::discovery::kv::{
    encode_key_path, encode_query, keep_lock, ttl_seconds, watch_directory, ElectionEvents,
    HeldLock, LeaderStore, NodeDirectory, Renewal, StoreFuture, Tenure,
};
use crate::discovery::{Backend, DiscoveryError, RegisterFuture, Watch};

/// A client of etcd's v2 keys API.
pub struct EtcdV2 {
    /// The store.
    etcd: Arc<Etcd>,
}

impl EtcdV2 {
    /// A v2 client of `etcd`.
    pub fn new(etcd: Arc<Etcd>) -> Self {
        EtcdV2 { etcd }
    }
}

impl Backend for EtcdV2 {
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch {
        let retry = self.etcd.heartbeat;
        watch_directory(self, retry, shutdown)
    }

    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async move {
            let key = format!("{}/{addr}", self.etcd.nodes_dir);
            self.v2_set(&key, addr, Some(self.etcd.ttl), "")
                .await
                .map(|_| ())
                .map_err(DiscoveryError::Store)
        })
    }
}

impl NodeDirectory for EtcdV2 {
    /// The `X-Etcd-Index` of the listing.
    type Cursor = i64;

    async fn list(&self) -> Result<(Vec<String>, i64), String> {
        self.v2_list().await
    }

    async fn changed(&self, cursor: i64) -> Result<(), String> {
        self.v2_wait(&self.etcd.nodes_dir, true, cursor + 1)
            .await
            .map(|_| ())
    }
}

impl LeaderStore for EtcdV2 {
    fn hold<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, Tenure> {
        Box::pin(self.v2_hold(key, value, ttl, events, shutdown))
    }

    fn follow<'a>(
        &'a self,
        key: &'a str,
        events: &'a ElectionEvents,
        shutdown: &'a CancellationToken,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.v2_follow(key, events, shutdown))
    }
}

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

impl EtcdV2 {
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
        let response = self.etcd.http.call(method, &path, body, timeout).await?;
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
                        &self.etcd.nodes_dir,
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
    pub(super) async fn v2_list_existing(&self) -> Result<(Vec<String>, i64), String> {
        match self
            .v2_call(
                Method::GET,
                &self.etcd.nodes_dir,
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
        let mut lock = V2Lock {
            client: self,
            key,
            value,
            ttl,
            conditions: format!("prevValue={}", encode_query(value)),
        };
        Ok(keep_lock(&mut lock, ttl, events, shutdown).await)
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

/// The leader key while this manager holds it: renewed with a compare-and-swap on its value.
struct V2Lock<'a> {
    client: &'a EtcdV2,
    key: &'a str,
    value: &'a str,
    ttl: Duration,
    /// `prevValue=<value>`: renewing and releasing touch the key only while it is ours.
    conditions: String,
}

impl HeldLock for V2Lock<'_> {
    async fn renew(&mut self) -> Result<Renewal, String> {
        let renewed = self
            .client
            .v2_set(self.key, self.value, Some(self.ttl), &self.conditions)
            .await?;
        Ok(match renewed {
            Some(_) => Renewal::Renewed,
            None => Renewal::Expired("the leader key expired or changed hands".into()),
        })
    }

    async fn release(&mut self) {
        let query = format!("?{}", self.conditions);
        let release = self.client.v2_call(
            Method::DELETE,
            self.key,
            &query,
            None,
            Duration::from_secs(2),
        );
        let _ = release.await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
