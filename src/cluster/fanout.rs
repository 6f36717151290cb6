//! Doing one thing on many engines: duplicating one request body to several engines as it streams in, reading Docker's JSON
//! message streams message by message as they arrive, and collecting per-node failures into
//! one answer.
//!
//! Image pulls, loads and imports, image removal and tagging, volume creation and removal, and
//! the prune routes all fan out through here (each engine's call is [`Engine::call_at`] or
//! [`Engine::send_at`]). This module decides nothing about which engines
//! take part (the API routes do) and never holds a whole streamed body in memory.
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use tokio_util::task::TaskTracker;

use super::cluster::Cluster;
use super::engine::{Engine, EngineError};
use super::names::image_matches;
use super::transport::{boxed, TransportBody};
use crate::scheduler::SchedulingRequest;

/// Chunks of a duplicated body buffered per engine: the slowest engine sets the pace, so memory
/// stays at a few chunks per engine whatever the size of the body.
const TEE_DEPTH: usize = 4;

/// The largest JSON message accepted from an engine stream; a longer run of bytes without a
/// complete message is passed on as text rather than buffered further.
const MESSAGE_LIMIT: usize = 16 << 20;

impl Cluster {
    /// Validated engines that are Healthy right now.
    pub fn healthy_engines(&self) -> Vec<Arc<Engine>> {
        self.validated()
            .into_iter()
            .filter(|e| e.is_healthy())
            .collect()
    }

    /// Validated engines (any health) whose cached images hold one that `matches`.
    pub fn engines_with_image(
        &self,
        matches: impl Fn(&super::cache::Image) -> bool,
    ) -> Vec<Arc<Engine>> {
        self.validated()
            .into_iter()
            .filter(|e| e.cache().images.iter().any(|i| matches(i)))
            .collect()
    }

    /// The engine the classic calls "random": the first one the scheduler ranks for an empty
    /// request (with spread, the least loaded healthy node).
    pub fn any_engine(&self) -> Result<Arc<Engine>, crate::scheduler::SchedulerError> {
        self.rank_engines(&SchedulingRequest::default())?
            .into_iter()
            .next()
            .ok_or(crate::scheduler::SchedulerError::NoNodesAvailable)
    }
}

/// Whether `image` is what an engine understands by `name`: its ID or an ID prefix, or the
/// reference with `latest` filled in when it names no tag (so `busybox` means `busybox:latest`,
/// as it does for `docker rmi` and `docker tag` on one engine).
pub fn names_image(image: &super::cache::Image, name: &str) -> bool {
    let bare = name.strip_prefix("sha256:").unwrap_or(name);
    let looks_like_id = bare.len() > 2 && bare.chars().all(|c| c.is_ascii_hexdigit());
    if image.id == name || (looks_like_id && image_matches(image, name, true)) {
        return true;
    }
    match super::names::split_reference(name).1 {
        Some(_) => image_matches(image, name, true),
        None => image_matches(image, &format!("{name}:latest"), true),
    }
}

/// Duplicates `body` to `count` engine request bodies as it streams in. A pump task reads the
/// body once and hands every chunk to each copy; a copy whose engine stopped reading is dropped
/// and the others go on. A read error of the original ends every copy with that error.
pub fn tee_body<B>(tasks: &TaskTracker, body: B, count: usize) -> Vec<TransportBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let mut senders = Vec::with_capacity(count);
    let mut copies = Vec::with_capacity(count);
    for _ in 0..count {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(TEE_DEPTH);
        senders.push(Some(tx));
        let stream = receiver_stream(rx).map(|chunk| chunk.map(Frame::data));
        copies.push(boxed(StreamBody::new(stream)));
    }
    tasks.spawn(async move {
        let mut body = body;
        loop {
            if senders.iter().all(Option::is_none) {
                return;
            }
            // The error is turned into text at once: it need not be `Send` to cross an await.
            let frame = match body.frame().await.map(|r| r.map_err(|e| e.to_string())) {
                None => return,
                Some(Ok(frame)) => frame,
                Some(Err(text)) => {
                    for tx in senders.iter().flatten() {
                        let _ = tx.send(Err(std::io::Error::other(text.clone()))).await;
                    }
                    return;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for slot in senders.iter_mut() {
                if let Some(tx) = slot {
                    if tx.send(Ok(data.clone())).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
    });
    copies
}

/// A channel receiver as a stream.
pub fn receiver_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// One item read from a JSON message stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A complete JSON value.
    Message(Value),
    /// Bytes that are not JSON, passed on as they were.
    Text(Bytes),
}

/// Splits a Docker JSON message stream (values separated by whitespace, usually `\r\n`) into
/// messages as bytes arrive, keeping only an incomplete trailing message buffered.
#[derive(Debug, Default)]
pub struct JsonMessages {
    buf: BytesMut,
    /// Where a message can end, found by scanning each byte once: re-parsing a large incomplete
    /// message on every chunk would cost time quadratic in its size.
    scan: MessageEnd,
}

/// A scan of a JSON stream for the places where a top-level value may end.
#[derive(Debug, Default)]
struct MessageEnd {
    /// Bytes of the buffer already scanned.
    scanned: usize,
    /// Open objects and arrays.
    depth: usize,
    in_string: bool,
    after_backslash: bool,
}

impl MessageEnd {
    /// Scans what `buf` holds past the last scan; true when a top-level value may have ended
    /// (or top-level bytes that are no object or array came, for the parser to judge).
    fn advance(&mut self, buf: &[u8]) -> bool {
        let mut may_end = false;
        for &byte in buf.get(self.scanned..).unwrap_or_default() {
            if self.in_string {
                if self.after_backslash {
                    self.after_backslash = false;
                } else if byte == b'\\' {
                    self.after_backslash = true;
                } else if byte == b'"' {
                    self.in_string = false;
                    may_end |= self.depth == 0;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    may_end |= self.depth == 0;
                }
                byte if byte.is_ascii_whitespace() => {}
                _ => may_end |= self.depth == 0,
            }
        }
        self.scanned = buf.len();
        may_end
    }
}

impl JsonMessages {
    /// An empty splitter.
    pub fn new() -> JsonMessages {
        JsonMessages::default()
    }

    /// How many bytes of an incomplete message are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds `data` and returns every message now complete, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<StreamItem> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        if !self.scan.advance(&self.buf) {
            if self.buf.len() > MESSAGE_LIMIT {
                self.scan = MessageEnd::default();
                out.push(StreamItem::Text(self.buf.split().freeze()));
            }
            return out;
        }
        let mut consumed = 0;
        {
            let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            loop {
                match iter.next() {
                    Some(Ok(v)) => {
                        consumed = iter.byte_offset();
                        out.push(StreamItem::Message(v));
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        // Not JSON: pass the rest on as text instead of stalling the stream.
                        out.push(StreamItem::Text(Bytes::copy_from_slice(
                            &self.buf[consumed..],
                        )));
                        consumed = self.buf.len();
                        break;
                    }
                    None => {
                        consumed = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.advance(consumed);
        // What was consumed were whole values (the scan state holds for the rest), or everything.
        self.scan.scanned = self.buf.len();
        if self.buf.is_empty() {
            self.scan = MessageEnd::default();
        }
        if self.buf.len() > MESSAGE_LIMIT {
            self.scan = MessageEnd::default();
            out.push(StreamItem::Text(self.buf.split().freeze()));
        }
        out
    }

    /// What is left when the stream ends: an incomplete message, as text.
    pub fn finish(self) -> Option<Bytes> {
        let rest = self.buf.freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// Encodes one message as Docker streams them: compact JSON and `\r\n`.
pub fn encode_message(message: &Value) -> Bytes {
    let mut out = serde_json::to_vec(message).unwrap_or_default();
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// The error text of a stream message (`{"error": …}` or `{"errorDetail": {"message": …}}`).
pub fn message_error(message: &Value) -> Option<String> {
    if let Some(e) = message.get("error").and_then(Value::as_str) {
        return Some(e.to_string());
    }
    message
        .get("errorDetail")
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The final error object of a JSON message stream.
pub fn error_object(message: &str) -> Value {
    serde_json::json!({"errorDetail": {"code": 1, "message": message}, "error": message})
}

/// Failures of a fanned-out call, one per node, in node order.
#[derive(Debug, Default)]
pub struct NodeFailures(Vec<(String, EngineError)>);

impl NodeFailures {
    /// No failure yet.
    pub fn new() -> NodeFailures {
        NodeFailures::default()
    }

    /// Records that `node` failed with `error`.
    pub fn push(&mut self, node: String, error: EngineError) {
        self.0.push((node, error));
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `<node>: <error>` lines joined by `\n`, as the classic reports them.
    pub fn message(&self) -> String {
        self.0
            .iter()
            .map(|(node, e)| format!("{node}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The status to answer: when no engine succeeded and every failure is an answer with the
    /// same client-error status (e.g. 409 for an image in use everywhere), that status; 500
    /// otherwise, as the classic answers.
    pub fn status(&self, any_succeeded: bool) -> StatusCode {
        if any_succeeded {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let mut statuses = self.0.iter().map(|(_, e)| match e {
            EngineError::Status { status, .. } if status.is_client_error() => Some(*status),
            _ => None,
        });
        match statuses.next().flatten() {
            Some(first) if statuses.all(|s| s == Some(first)) => first,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_split_across_chunks_come_out_whole_and_in_order() {
        let mut s = JsonMessages::new();
        assert!(s.push(b"{\"status\":\"a\"}\r\n{\"sta").len() == 1);
        let rest = s.push(b"tus\":\"b\"}\r\n");
        assert_eq!(rest, vec![StreamItem::Message(json!({"status": "b"}))]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn text_that_is_not_json_passes_through() {
        let mut s = JsonMessages::new();
        let out = s.push(b"{\"a\":1} oops not json");
        assert_eq!(out[0], StreamItem::Message(json!({"a": 1})));
        assert!(matches!(&out[1], StreamItem::Text(t) if t.ends_with(b"not json")));
        let mut s = JsonMessages::new();
        s.push(b"{\"half\":");
        assert_eq!(s.finish().as_deref(), Some(&b"{\"half\":"[..]));
    }

    #[test]
    fn stream_errors_are_found_in_both_forms() {
        assert_eq!(
            message_error(&json!({"error": "boom"})).as_deref(),
            Some("boom")
        );
        assert_eq!(
            message_error(&json!({"errorDetail": {"message": "bang"}})).as_deref(),
            Some("bang")
        );
        assert_eq!(message_error(&json!({"status": "ok"})), None);
    }

    #[test]
    fn failures_keep_a_shared_client_status_and_otherwise_say_500() {
        let conflict = |m: &str| EngineError::Status {
            status: StatusCode::CONFLICT,
            message: m.into(),
        };
        let mut f = NodeFailures::new();
        f.push("node-1".into(), conflict("in use"));
        f.push("node-0".into(), conflict("in use too"));
        assert_eq!(f.status(false), StatusCode::CONFLICT);
        assert_eq!(f.status(true), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(f.message(), "node-0: in use too\nnode-1: in use");
        f.push(
            "node-2".into(),
            EngineError::Unreachable {
                url: "x".into(),
                detail: "y".into(),
            },
        );
        assert_eq!(f.status(false), StatusCode::INTERNAL_SERVER_ERROR);
    }

    fn image(id: &str, tags: &[&str]) -> super::super::cache::Image {
        super::super::cache::Image::from_raw(
            json!({"Id": id, "RepoTags": tags})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[test]
    fn a_name_without_tag_means_latest_for_engine_operations() {
        let img = image("sha256:abcdef12", &["busybox:1"]);
        assert!(!names_image(&img, "busybox"));
        assert!(names_image(&img, "busybox:1"));
        assert!(names_image(&img, "abcdef"));
        assert!(names_image(&img, "sha256:abcdef12"));
        let latest = image("sha256:99", &["busybox:latest"]);
        assert!(names_image(&latest, "busybox"));
        assert!(!names_image(&latest, "busy"));
    }

    #[tokio::test]
    async fn a_teed_body_reaches_every_copy_whole() {
        let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..50)
            .map(|i| Ok(Frame::data(Bytes::from(format!("chunk{i};")))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let copies = tee_body(&TaskTracker::new(), body, 3);
        // Engines read their copies at the same time; the pump paces itself on the slowest.
        let texts = futures_util::future::join_all(
            copies
                .into_iter()
                .map(|c| async move { c.collect().await.unwrap().to_bytes() }),
        )
        .await;
        let want: String = (0..50).map(|i| format!("chunk{i};")).collect();
        for t in texts {
            assert_eq!(t, want.as_bytes());
        }
    }

    #[tokio::test]
    async fn a_copy_that_is_dropped_does_not_stop_the_others() {
        let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..100)
            .map(|_| Ok(Frame::data(Bytes::from_static(b"x"))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let mut copies = tee_body(&TaskTracker::new(), body, 2);
        drop(copies.remove(0));
        let rest = copies.remove(0).collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), 100);
    }
}
