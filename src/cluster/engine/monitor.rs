//! The events monitor of an engine (SPEC §3.5): subscribe to the engine's `/events`, apply each
//! event to the cache, forward it to the cluster bus with the node fields, and resubscribe with
//! back-off when the stream breaks. An explicit state enum drives it; the engine's health record
//! sees every connection attempt.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::super::events::ClusterEvent;
use super::super::fanout::{JsonMessages, StreamItem};
use super::super::transport::empty;
use super::Engine;

/// How long an expected event is waited for while the call that causes it runs.
const EXPECT_DURING_CALL: Duration = Duration::from_secs(60);
/// How long an expected event is still waited for once its call succeeded: the engine emits it
/// before answering, so it is normally already here.
const EXPECT_AFTER_CALL: Duration = Duration::from_secs(2);

/// The longest event an engine may send: a longer one would have to be held whole before it
/// could be decoded, so its stream is dropped and subscribed again instead.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// A container event one of the manager's own calls is about to cause.
#[derive(Debug)]
pub struct OwnEvent {
    /// The container ID, or for `create` the Swarm ID label the manager gave the container.
    key: Box<str>,
    action: &'static str,
    until: Instant,
}

/// An expected event, from [`Engine::expect_event`]. Dropped without [`Expected::settle`] (the
/// call failed), it is forgotten at once.
pub struct Expected<'a> {
    engine: &'a Engine,
    key: Box<str>,
    action: &'static str,
    settled: bool,
}

impl Expected<'_> {
    /// The call succeeded and the flow re-reads the container after it: the event, when it
    /// comes, needs no re-read of its own.
    pub fn settle(mut self) {
        self.settled = true;
        let until = Instant::now() + EXPECT_AFTER_CALL;
        self.update(|own, at| own[at].until = until);
    }

    /// Applies `f` to this expectation's entry, while it is still there.
    fn update(&self, f: impl FnOnce(&mut Vec<OwnEvent>, usize)) {
        let mut own = self
            .engine
            .own_events
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(at) = own
            .iter()
            .position(|e| e.action == self.action && e.key == self.key)
        {
            f(&mut own, at);
        }
    }
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.update(|own, at| {
                own.swap_remove(at);
            });
        }
    }
}

impl Engine {
    /// Announces that a call the manager is about to make causes the container event `action`
    /// (`create`, keyed by the Swarm ID label; `start`, keyed by the container ID). Every
    /// event the engine emits about a call's change precedes its answer, so the re-read the
    /// flow makes after the answer sees that change: the events monitor then skips its own.
    pub fn expect_event(&self, key: &str, action: &'static str) -> Expected<'_> {
        let mut own = self.own_events.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        own.retain(|e| e.until > now);
        own.push(OwnEvent {
            key: key.into(),
            action,
            until: now + EXPECT_DURING_CALL,
        });
        Expected {
            engine: self,
            key: key.into(),
            action,
            settled: false,
        }
    }

    /// Whether a container event was expected (and is no longer).
    fn take_expected(&self, action: &str, id: &str, ev: &Map<String, Value>) -> bool {
        let mut own = self.own_events.lock().unwrap_or_else(|e| e.into_inner());
        if own.is_empty() {
            return false;
        }
        let key = match action {
            "create" => ev
                .get("Actor")
                .and_then(|a| a.get("Attributes"))
                .and_then(|a| a.get(crate::scheduler::node::SWARM_ID_LABEL))
                .and_then(Value::as_str)
                .unwrap_or(""),
            _ => id,
        };
        let now = Instant::now();
        match own
            .iter()
            .position(|e| e.action == action && &*e.key == key && e.until > now)
        {
            Some(at) if !key.is_empty() => {
                own.swap_remove(at);
                true
            }
            _ => false,
        }
    }

    pub(super) fn start_monitor(self: &Arc<Self>) {
        if self.monitoring.swap(true, Ordering::AcqRel) {
            return;
        }
        let engine = self.clone();
        self.tasks.spawn(async move { engine.monitor().await });
    }

    /// The events monitor: subscribe, apply every event to the cache, forward it to the bus;
    /// on error wait `min(failures + 1, 10)` seconds and subscribe again (SPEC §3.5). After a
    /// reconnect the containers are re-listed, since events may have been missed.
    async fn monitor(self: Arc<Self>) {
        let mut monitor = EventsMonitor::Connecting { resumed: false };
        loop {
            monitor = match monitor {
                EventsMonitor::Connecting { resumed } => {
                    let req = Request::builder()
                        .uri(self.uri(None, "/events"))
                        .body(empty())
                        .expect("static request");
                    let connect = tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        r = self.send(req) => r,
                    };
                    match connect {
                        Ok(resp) if resp.status().is_success() => {
                            if resumed {
                                if let Err(err) = self.refresh_containers().await {
                                    tracing::debug!(engine = %self.addr, error = %err, "Refresh after events reconnect failed");
                                }
                            }
                            EventsMonitor::Streaming(resp.into_body())
                        }
                        Ok(resp) => {
                            tracing::warn!(engine = %self.addr, status = %resp.status(), "Engine refused the events stream");
                            EventsMonitor::Waiting
                        }
                        Err(_) => EventsMonitor::Waiting,
                    }
                }
                EventsMonitor::Streaming(body) => {
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        ended = self.consume_events(body) => {
                            tracing::info!(engine = %self.addr, reason = %ended, "Error monitoring events, will restart");
                        }
                    }
                    // The stream breaking is often the first sign of a dead engine: refresh now.
                    self.wake.notify_one();
                    EventsMonitor::Waiting
                }
                EventsMonitor::Waiting => {
                    let failures = u64::from(self.health().failures);
                    let delay = Duration::from_secs((failures + 1).min(10));
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    EventsMonitor::Connecting { resumed: true }
                }
            };
        }
    }

    /// Reads events until the stream ends or an event is still incomplete after
    /// [`MAX_EVENT_BYTES`]; returns why it ended. Events are split as the engine's other JSON
    /// streams are ([`JsonMessages`]: each byte scanned once).
    async fn consume_events(self: &Arc<Self>, mut body: Incoming) -> String {
        let mut messages = JsonMessages::new();
        loop {
            let items = match body.frame().await {
                None => return "end of stream".into(),
                Some(Err(e)) => return e.to_string(),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => messages.push(&data),
                    Err(_) => continue,
                },
            };
            for item in items {
                match item {
                    StreamItem::Message(Value::Object(ev)) => self.handle_event(ev).await,
                    StreamItem::Message(_) | StreamItem::Text(_) => {
                        tracing::warn!(engine = %self.addr, "Undecodable event from engine; skipped");
                    }
                }
            }
            // What is left is one event still incomplete: the buffer holds at most the limit
            // and one frame.
            if messages.buffered() > MAX_EVENT_BYTES {
                tracing::warn!(engine = %self.addr, limit = MAX_EVENT_BYTES,
                    "Engine sent an event longer than the limit; dropping its events stream");
                return format!("an event longer than {MAX_EVENT_BYTES} bytes");
            }
        }
    }

    /// Applies one engine event to the cache, then forwards it to the bus.
    pub async fn handle_event(self: &Arc<Self>, ev: Map<String, Value>) {
        let text = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let kind = match text("Type") {
            t if t.is_empty() => "container".to_string(),
            t => t,
        };
        let action = {
            let a = text("Action");
            let a = if a.is_empty() { text("status") } else { a };
            match a.split_once(':') {
                Some((head, _)) => head.trim().to_string(),
                None => a,
            }
        };
        let actor = ev
            .get("Actor")
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text("id"));
        let result = match kind.as_str() {
            "container" => match action.as_str() {
                "top" | "resize" | "export" | "exec_create" | "exec_start" | "exec_detach"
                | "attach" | "detach" | "extract-to-dir" | "copy" | "archive-path" => Ok(()),
                "commit" => {
                    self.schedule_images_refresh();
                    Ok(())
                }
                _ if self.take_expected(&action, &actor, &ev) => Ok(()),
                _ => self.refresh_container(&actor).await,
            },
            "image" => {
                self.schedule_images_refresh();
                Ok(())
            }
            "network" => self.refresh_network(&actor).await,
            "volume" => self.refresh_volume(&actor).await,
            "daemon" if action == "reload" => self.update_specs().await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            tracing::debug!(engine = %self.addr, error = %err, event = %action, "Cache update after event failed");
        }
        self.bus
            .publish(ClusterEvent::from_engine(ev, &self.node_ref()));
    }
}

/// The events monitor's states.
enum EventsMonitor {
    /// Subscribing; `resumed` after a broken stream (the cache may have missed events).
    Connecting { resumed: bool },
    /// Reading the stream.
    Streaming(Incoming),
    /// Backing off before subscribing again.
    Waiting,
}

#[cfg(test)]
mod tests {
    use super::super::test_engine as engine;
    use super::*;
    use serde_json::json;

    fn event(swarm_id: &str) -> Map<String, Value> {
        let ev = json!({"Actor": {"ID": "c1", "Attributes": {"com.docker.swarm.id": swarm_id}}});
        ev.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_expected_event_is_taken_once() {
        let e = engine();
        e.expect_event("s1", "create").settle();
        e.expect_event("c1", "start").settle();
        assert!(
            !e.take_expected("create", "c1", &event("s2")),
            "another Swarm ID"
        );
        assert!(
            !e.take_expected("stop", "c1", &event("s1")),
            "another action"
        );
        assert!(e.take_expected("create", "c1", &event("s1")));
        assert!(
            !e.take_expected("create", "c1", &event("s1")),
            "taken already"
        );
        assert!(e.take_expected("start", "c1", &event("")));
        assert!(!e.take_expected("start", "c1", &event("")));
    }

    #[test]
    fn a_failed_call_expects_nothing() {
        let e = engine();
        let expected = e.expect_event("c1", "start");
        assert!(e.own_events.lock().unwrap().len() == 1);
        drop(expected);
        assert!(!e.take_expected("start", "c1", &event("")));
        assert!(e.own_events.lock().unwrap().is_empty());
    }

    /// The body of an `/events` response whose chunks are `chunks`, from a local server.
    async fn events_body(chunks: Vec<Vec<u8>>) -> Incoming {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            // The request is read, so that closing does not reset the connection.
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await;
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            conn.write_all(head).await.unwrap();
            for chunk in chunks {
                let size = format!("{:x}\r\n", chunk.len());
                // The client may stop reading once it gives up on the stream.
                if conn.write_all(size.as_bytes()).await.is_err()
                    || conn.write_all(&chunk).await.is_err()
                    || conn.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
            }
            let _ = conn.write_all(b"0\r\n\r\n").await;
        });
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/events").body(empty()).unwrap();
        sender.send_request(req).await.unwrap().into_body()
    }

    #[tokio::test]
    async fn an_event_longer_than_the_limit_drops_the_stream() {
        let e = engine();
        let (_, mut rx) = e.bus.subscribe(None, "test");
        let small = br#"{"Type":"plugin","Action":"enable","Actor":{"ID":"p1"}}"#.to_vec();
        let mut huge =
            br#"{"Type":"plugin","Action":"enable","Actor":{"ID":"p2","Attributes":{"x":""#
                .to_vec();
        huge.resize(huge.len() + MAX_EVENT_BYTES, b'x');
        // The huge event comes in pieces, after a small one that is delivered.
        let mut chunks = vec![[small.as_slice(), b"\n"].concat()];
        chunks.extend(huge.chunks(64 << 10).map(<[u8]>::to_vec));
        chunks.push(b"\"}}}\n".to_vec());
        let reason = e.consume_events(events_body(chunks).await).await;
        assert!(reason.contains("longer than"), "{reason}");
        assert_eq!(
            rx.try_recv().map(|ev| ev.actor_id().to_string()),
            Some("p1".into())
        );
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_decoded() {
        let e = engine();
        let (_, mut rx) = e.bus.subscribe(None, "test");
        let two = b"{\"Type\":\"plugin\",\"Actor\":{\"ID\":\"p1\"}}\n{\"Type\":\"plugin\",\"Actor\":{\"ID\":\"p2\"}}\n";
        let chunks = two.chunks(7).map(<[u8]>::to_vec).collect();
        let reason = e.consume_events(events_body(chunks).await).await;
        assert_eq!(reason, "end of stream");
        assert_eq!(
            rx.try_recv().map(|ev| ev.actor_id().to_string()),
            Some("p1".into())
        );
        assert_eq!(
            rx.try_recv().map(|ev| ev.actor_id().to_string()),
            Some("p2".into())
        );
    }
}
