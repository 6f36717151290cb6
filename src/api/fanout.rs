//! The manager's side of calls made on many engines at once and answered as one: the same
//! call on every engine with the answers collected ([`on_each`]), and JSON message streams
//! (pulls, imports, loads) relayed from every engine into one streamed answer, each message
//! marked with its node ([`relay_messages`], [`fanned_stream`], [`json_stream`]). The engine
//! side of these calls (splitting message streams, teeing a body, collecting failures) is
//! `cluster::fanout`. This module knows no route: handlers decide which engines and which call;
//! it must not import a handler module.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::join_all;
use http::{header, HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::version::ApiVersion;
use crate::cluster::fanout::{
    encode_message, error_object, message_error, receiver_stream, JsonMessages, NodeFailures,
    StreamItem,
};
use crate::cluster::transport::{empty, TransportBody};
use crate::cluster::Engine;

/// Calls `method path` on every engine at once with an empty body; the answers of those that
/// succeeded, in node order, and the failures of the others.
pub async fn on_each(
    engines: &[Arc<Engine>],
    method: Method,
    version: Option<ApiVersion>,
    path: &str,
) -> (Vec<(Arc<Engine>, Bytes)>, NodeFailures) {
    let calls = engines.iter().map(|e| {
        let method = method.clone();
        async move {
            let r = e
                .call_at(method, version, path, &HeaderMap::new(), empty())
                .await;
            (e.clone(), r)
        }
    });
    let mut ok = Vec::new();
    let mut failures = NodeFailures::new();
    for (engine, result) in join_all(calls).await {
        match result {
            Ok((_, bytes)) => ok.push((engine, bytes)),
            Err(e) => failures.push(engine.name(), e),
        }
    }
    ok.sort_by_key(|(e, _)| e.name());
    (ok, failures)
}

/// A 200 `application/json` response streaming whatever is sent on the returned sender.
pub fn json_stream() -> (MessageSender, Response) {
    let (tx, rx) = mpsc::channel(32);
    let mut resp = Response::new(Body::from_stream(receiver_stream(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let tx = MessageSender { tx, merged: None };
    (tx, resp)
}

/// How many bytes of `stream` lines a merged answer remembers to recognise repeats; past
/// that, further lines are relayed as they come, repeats included.
pub const MERGED_LINES_BUDGET: usize = 1024 * 1024;

/// The sender side of a streamed JSON answer.
pub struct MessageSender {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// When merging: the `stream` lines sent so far and their total size.
    merged: Option<Mutex<(HashSet<String>, usize)>>,
}

impl MessageSender {
    /// Merges `stream` lines from now on: a line already sent (by any node) is left out, and
    /// lines are sent without a node `id`, since one line stands for every node that printed
    /// it. SDKs count each `Loaded image: …` line as one image.
    pub fn merging_stream_lines(mut self) -> Self {
        self.merged = Some(Mutex::new((HashSet::new(), 0)));
        self
    }

    /// Whether `message` is to be sent; takes the node `id` off a merged `stream` line.
    fn admit(&self, message: &mut Value) -> bool {
        let Some(merged) = &self.merged else {
            return true;
        };
        let Some(obj) = message.as_object_mut() else {
            return true;
        };
        let Some(line) = obj.get("stream").and_then(Value::as_str) else {
            return true;
        };
        let mut seen = merged.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, bytes) = &mut *seen;
        if lines.contains(line) {
            return false;
        }
        if *bytes + line.len() <= MERGED_LINES_BUDGET {
            *bytes += line.len();
            lines.insert(line.to_string());
        } else {
            tracing::debug!(
                budget = MERGED_LINES_BUDGET,
                "Too many distinct stream lines to merge; relayed as they come"
            );
        }
        obj.remove("id");
        true
    }
}

/// How one engine's part of a fanned-out stream ended.
#[derive(Debug)]
pub enum EngineOutcome {
    /// The engine finished without error.
    Done,
    /// The engine (or the way to it) failed with this text.
    Failed(String),
    /// The client went away; nothing more is sent.
    ClientGone,
}

/// Sends one message (unless it merges into one sent before); false when the client is gone.
pub async fn send(tx: &MessageSender, mut message: Value) -> bool {
    if !tx.admit(&mut message) {
        return true;
    }
    tx.tx.send(Ok(encode_message(&message))).await.is_ok()
}

/// Relays one engine's JSON message stream, each message rewritten by `rewrite`; stops at the
/// first error message, which becomes the outcome.
pub async fn relay_messages(
    engine: &Engine,
    resp: http::Response<hyper::body::Incoming>,
    tx: &MessageSender,
    rewrite: impl Fn(Value) -> Value,
) -> EngineOutcome {
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return EngineOutcome::Failed(e.to_string()),
        };
        return EngineOutcome::Failed(crate::cluster::engine::error_message(&bytes));
    }
    let mut splitter = JsonMessages::new();
    loop {
        let frame = match body.frame().await {
            None => return EngineOutcome::Done,
            Some(Ok(f)) => f,
            Some(Err(e)) => return EngineOutcome::Failed(e.to_string()),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for item in splitter.push(&data) {
            match item {
                StreamItem::Message(m) => {
                    if let Some(err) = message_error(&m) {
                        return EngineOutcome::Failed(err);
                    }
                    if !send(tx, rewrite(m)).await {
                        return EngineOutcome::ClientGone;
                    }
                }
                StreamItem::Text(t) => {
                    tracing::debug!(engine = %engine.addr, text = %String::from_utf8_lossy(&t),
                        "Engine stream held something that is not JSON; dropped");
                }
            }
        }
    }
}

/// Sets `id` to the node name and prefixes `status` with `prefix` (when there is a status).
pub fn tagged(mut message: Value, node: &str, prefix: Option<&str>) -> Value {
    if let Some(obj) = message.as_object_mut() {
        if let Some(prefix) = prefix {
            if let Some(status) = obj
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let status = format!("{prefix} : {status}");
                obj.insert("status".into(), Value::String(status));
            }
        }
        obj.insert("id".into(), Value::String(node.to_string()));
    }
    message
}

/// `cannot load <os> image on <os>` in an engine error: the image is for another platform.
fn os_mismatch(error: &str) -> Option<(String, String)> {
    let at = error.find("cannot load ")?;
    let rest = &error[at + "cannot load ".len()..];
    let (image_os, rest) = rest.split_once(" image on ")?;
    let engine_os = rest.split_whitespace().next()?;
    Some((image_os.to_string(), engine_os.to_string()))
}

/// One engine's part of a fanned call: `prefix` announced on the node's line (when given), the
/// call sent, the engine's messages relayed tagged with the node, then the engine's images
/// refreshed (a pull, load or import changes them whatever the outcome). A client gone before
/// the call is sent ends it there.
pub async fn call_and_relay(
    engine: &Engine,
    tx: &MessageSender,
    prefix: Option<&str>,
    version: Option<ApiVersion>,
    path: &str,
    headers: &HeaderMap,
    body: TransportBody,
) -> EngineOutcome {
    let node = engine.name();
    if let Some(p) = prefix {
        if !send(tx, json!({"status": p, "id": node})).await {
            return EngineOutcome::ClientGone;
        }
    }
    let outcome = match engine
        .send_at(Method::POST, version, path, headers, body)
        .await
    {
        Ok(r) => relay_messages(engine, r, tx, |m| tagged(m, &node, prefix)).await,
        Err(e) => EngineOutcome::Failed(e.to_string()),
    };
    let _ = engine.refresh_images().await;
    outcome
}

/// Runs one body-carrying call (import or load) on every engine and merges their message
/// streams: each message gets the node as `id` (and `prefix` before its status); an engine's
/// failure is reported on its line; a platform mismatch is a skip, not an error; any other
/// failure ends the stream with an error object. A `stream` line that several nodes print
/// alike (`Loaded image: …`) is sent once, when first seen. Each engine's images are refreshed
/// before the stream ends. `calls` pairs each engine with its copy of the body.
pub fn fanned_stream(
    tasks: &TaskTracker,
    calls: Vec<(Arc<Engine>, TransportBody)>,
    version: Option<ApiVersion>,
    headers: HeaderMap,
    path: String,
    what: &'static str,
    prefix: Option<&'static str>,
) -> Response {
    let (tx, resp) = json_stream();
    let tx = tx.merging_stream_lines();
    let (engines, copies): (Vec<_>, Vec<_>) = calls.into_iter().unzip();
    tasks.spawn(async move {
        let jobs = engines.iter().zip(copies).map(|(engine, body)| {
            let (tx, headers, path) = (&tx, &headers, &path);
            async move {
                let node = engine.name();
                let outcome =
                    call_and_relay(engine, tx, prefix, version, path, headers, body).await;
                match outcome {
                    EngineOutcome::Failed(err) => {
                        if let Some((image_os, engine_os)) = os_mismatch(&err) {
                            let status = format!(
                                "{what} skipped because image is for {image_os} and engine is running {engine_os}"
                            );
                            send(tx, json!({"status": status, "id": node})).await;
                            return EngineOutcome::Done;
                        }
                        let status = match prefix {
                            Some(p) => format!("{p} : {err}"),
                            None => err.clone(),
                        };
                        send(tx, json!({"status": status, "id": node})).await;
                        EngineOutcome::Failed(err)
                    }
                    other => other,
                }
            }
        });
        let outcomes = join_all(jobs).await;
        let last_error = outcomes.iter().rev().find_map(|o| match o {
            EngineOutcome::Failed(e) => Some(e.clone()),
            _ => None,
        });
        if let Some(err) = last_error {
            send(&tx, error_object(&err)).await;
        }
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn merged_stream_lines_are_sent_once_in_first_seen_order_and_the_rest_per_node() {
        let (tx, rx) = mpsc::channel(32);
        let tx = MessageSender { tx, merged: None }.merging_stream_lines();
        for node in ["node-0", "node-1"] {
            send(&tx, json!({"status": "Loading Image...", "id": node})).await;
            for line in ["Loaded image: a:1\n", "Loaded image: b:1\n"] {
                send(&tx, json!({"stream": line, "id": node})).await;
            }
        }
        send(&tx, error_object("node-1 failed")).await;
        drop(tx);
        let sent: Vec<Value> = receiver_stream(rx)
            .map(|b| serde_json::from_slice(&b.unwrap()).unwrap())
            .collect()
            .await;
        assert_eq!(
            sent,
            vec![
                json!({"status": "Loading Image...", "id": "node-0"}),
                json!({"stream": "Loaded image: a:1\n"}),
                json!({"stream": "Loaded image: b:1\n"}),
                json!({"status": "Loading Image...", "id": "node-1"}),
                error_object("node-1 failed"),
            ]
        );
    }
}
