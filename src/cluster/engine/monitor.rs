//! The events monitor of an engine (SPEC §3.5): subscribe to the engine's `/events`, have the
//! cache re-read what each event changed, forward the event to the cluster bus with the node
//! fields, and resubscribe with back-off when the stream breaks. It writes no cache itself: it
//! asks the cache writer (`refresh`) for a `Reread`.
//!
//! A state enum (`Monitor`) and a `step` function drive it; the back-off between steps is
//! decided outside the step (`resubscribe_delay`), and what a step does outside goes through
//! `EventsSource`, so that the transitions are tested without an engine. The engine's health
//! record sees every connection attempt.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::super::events::{ClusterEvent, EngineEvent};
use super::super::fanout::{JsonMessages, StreamItem};
use super::super::health::Outcome;
use super::super::raw_http::{self, BodyReader};
use super::refresh::Reread;
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
    fn take_expected(&self, ev: &EngineEvent) -> bool {
        let mut own = self.own_events.lock().unwrap_or_else(|e| e.into_inner());
        if own.is_empty() {
            return false;
        }
        let action = ev.verb();
        let key = match action {
            "create" => ev
                .attribute(crate::scheduler::node::SWARM_ID_LABEL)
                .unwrap_or(""),
            _ => ev.actor_id(),
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

    /// The events monitor: [`step`] after step until the engine is disconnected, backing off
    /// for [`resubscribe_delay`] before each new subscription (SPEC §3.5).
    async fn monitor(self: Arc<Self>) {
        let mut state = Monitor::Connecting { resumed: false };
        loop {
            if let Monitor::Waiting = state {
                let delay = resubscribe_delay(self.health().failures);
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            state = tokio::select! {
                _ = self.cancel.cancelled() => return,
                next = step(&self, state) => next,
            };
        }
    }

    /// Reads events until the stream ends or an event is still incomplete after
    /// [`MAX_EVENT_BYTES`]; returns why it ended. Events are split as the engine's other JSON
    /// streams are ([`JsonMessages`]: each byte scanned once).
    async fn consume_events(self: &Arc<Self>, mut body: BodyReader) -> String {
        let mut messages = JsonMessages::new();
        loop {
            let mut items = Vec::new();
            // Checked after every piece of chunk data, as a read may hold several chunks.
            let mut too_long = false;
            let read = body.read(|data| {
                if !too_long {
                    items.extend(messages.push(data));
                    too_long = messages.buffered() > MAX_EVENT_BYTES;
                }
            });
            match read.await {
                Ok(true) => {}
                Ok(false) => return "end of stream".into(),
                Err(e) => return e.to_string(),
            }
            for item in items {
                match item {
                    StreamItem::Message(Value::Object(ev)) => {
                        self.handle_event(EngineEvent::new(ev)).await
                    }
                    StreamItem::Message(_) | StreamItem::Text(_) => {
                        tracing::warn!(engine = %self.addr, "Undecodable event from engine; skipped");
                    }
                }
            }
            // What is left is one event still incomplete: the buffer holds at most the limit
            // and one read.
            if too_long {
                tracing::warn!(engine = %self.addr, limit = MAX_EVENT_BYTES,
                    "Engine sent an event longer than the limit; dropping its events stream");
                return format!("an event longer than {MAX_EVENT_BYTES} bytes");
            }
            if messages.buffered() == 0 {
                // The splitter keeps the capacity of the longest event it held: an idle
                // stream gives it back.
                messages = JsonMessages::new();
            }
        }
    }

    /// Opens the events stream on a connection of its own and reads the answer head, within
    /// the engine call timeout for the whole (as for any call whose answer is a stream); every
    /// outcome goes to the health record as a call's would. `Ok(None)`: the engine answered
    /// with an error status.
    async fn open_events(&self) -> Result<Option<BodyReader>, super::EngineError> {
        let uri: http::Uri = self
            .uri(None, "/events")
            .parse()
            .map_err(|e: http::uri::InvalidUri| self.invalid(e.to_string()))?;
        let budget = self.budget_of(&Request::get(uri.clone()).body(()).unwrap_or_default());
        let limit = budget.answer.unwrap_or(Duration::MAX);
        let opened = async {
            let mut stream = self.transport.connect_raw(&uri).await?;
            let head = raw_http::get_head(&uri, &http::HeaderMap::new());
            stream.write_all(head.as_bytes()).await?;
            let mut buf = bytes::BytesMut::with_capacity(raw_http::SMALL_READ);
            let head = raw_http::read_head(&mut stream, &mut buf, raw_http::SMALL_READ).await?;
            let (status, headers) = raw_http::parse_head(&head)
                .ok_or_else(|| std::io::Error::other("invalid answer head"))?;
            Ok::<_, std::io::Error>((status, headers, stream, buf))
        };
        let (status, headers, stream, rest) = match tokio::time::timeout(limit, opened).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                let e = self.unreachable(e);
                self.record(Outcome::Unreachable(e.to_string()));
                return Err(e);
            }
            Err(_) => return Err(self.timed_out(limit)),
        };
        self.record(Outcome::Answered);
        if !status.is_success() {
            tracing::warn!(engine = %self.addr, status = %status, "Engine refused the events stream");
            return Ok(None);
        }
        let chunked = raw_http::is_chunked(&headers);
        Ok(Some(BodyReader::new(stream, rest, chunked)))
    }

    /// Has the cache re-read what one engine event changed, then forwards the event to the bus.
    pub async fn handle_event(self: &Arc<Self>, ev: EngineEvent) {
        crate::metrics::event_received();
        let result = match reread_for(&ev) {
            // The call that caused it re-reads the container itself.
            Reread::Container(_) if self.take_expected(&ev) => Ok(()),
            what => self.reread(what).await,
        };
        if let Err(err) = result {
            tracing::debug!(engine = %self.addr, error = %err, event = %ev.verb(), "Cache update after event failed");
        }
        self.bus
            .publish(ClusterEvent::from_engine(ev, &self.node_ref()));
    }
}

/// What an engine event asks the cache to read again.
fn reread_for(ev: &EngineEvent) -> Reread<'_> {
    match ev.kind() {
        "container" => match ev.verb() {
            // These change nothing the cache holds.
            "top" | "resize" | "export" | "exec_create" | "exec_start" | "exec_detach"
            | "attach" | "detach" | "extract-to-dir" | "copy" | "archive-path" => Reread::Nothing,
            "commit" => Reread::Images,
            _ => Reread::Container(ev.actor_id()),
        },
        "image" => Reread::Images,
        // A prune names no object (its ID is empty): the whole list is read again. Any other
        // event without an ID gives nothing to read, and must never reach the cache.
        "network" if ev.verb() == "prune" => Reread::Networks,
        "volume" if ev.verb() == "prune" => Reread::Volumes,
        "network" | "volume" if ev.actor_id().is_empty() => Reread::Nothing,
        "network" => Reread::Network(ev.actor_id()),
        "volume" => Reread::Volume(ev.actor_id()),
        "daemon" if ev.verb() == "reload" => Reread::Specs,
        _ => Reread::Nothing,
    }
}

/// How long the monitor waits before subscribing again: a second more for each connection
/// failure of the engine in a row, at most ten (SPEC §3.5).
fn resubscribe_delay(failures: u32) -> Duration {
    Duration::from_secs((u64::from(failures) + 1).min(10))
}

/// The events monitor's states.
#[cfg_attr(test, derive(Debug, PartialEq))]
enum Monitor<S> {
    /// Subscribing; `resumed` after a broken stream (the cache may have missed events).
    Connecting { resumed: bool },
    /// Reading the stream.
    Streaming(S),
    /// Backing off before subscribing again, for [`resubscribe_delay`]: the loop driving the
    /// steps waits, so that a step never sleeps.
    Waiting,
}

/// What the monitor's steps do outside: the engine does it for real, tests script it.
trait EventsSource {
    type Stream;
    /// Subscribes to the engine's events; `None` when the engine refused or was not reached.
    async fn subscribe(&self) -> Option<Self::Stream>;
    /// Re-lists the containers: events may have been missed while unsubscribed.
    async fn relist(&self);
    /// Applies the stream's events until it ends; returns why it ended.
    async fn consume(&self, stream: Self::Stream) -> String;
    /// The stream ended for `reason`.
    fn stream_broke(&self, reason: &str);
}

/// One transition of the monitor: does what `state` stands for and returns the next state.
async fn step<S: EventsSource>(source: &S, state: Monitor<S::Stream>) -> Monitor<S::Stream> {
    match state {
        Monitor::Connecting { resumed } => match source.subscribe().await {
            Some(stream) => {
                if resumed {
                    source.relist().await;
                }
                Monitor::Streaming(stream)
            }
            None => Monitor::Waiting,
        },
        Monitor::Streaming(stream) => {
            let reason = source.consume(stream).await;
            source.stream_broke(&reason);
            Monitor::Waiting
        }
        Monitor::Waiting => Monitor::Connecting { resumed: true },
    }
}

impl EventsSource for Arc<Engine> {
    type Stream = BodyReader;

    async fn subscribe(&self) -> Option<BodyReader> {
        let stream = self.open_events().await.ok().flatten();
        if stream.is_some() {
            self.events_stream_up();
        }
        stream
    }

    async fn relist(&self) {
        if let Err(err) = self.refresh_containers().await {
            tracing::debug!(engine = %self.addr, error = %err, "Refresh after events reconnect failed");
        }
    }

    async fn consume(&self, stream: BodyReader) -> String {
        self.consume_events(stream).await
    }

    fn stream_broke(&self, reason: &str) {
        tracing::info!(engine = %self.addr, reason = %reason, "Error monitoring events, will restart");
        self.events_stream_down();
        // The stream breaking is often the first sign of a dead engine: refresh now.
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_engine as engine;
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// A container event about `c1`, which carries the Swarm ID `swarm_id`.
    fn event(action: &str, swarm_id: &str) -> EngineEvent {
        let ev = json!({"Type": "container", "Action": action,
            "Actor": {"ID": "c1", "Attributes": {"com.docker.swarm.id": swarm_id}}});
        EngineEvent::new(ev.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn an_expected_event_is_taken_once() {
        let e = engine();
        e.expect_event("s1", "create").settle();
        e.expect_event("c1", "start").settle();
        assert!(!e.take_expected(&event("create", "s2")), "another Swarm ID");
        assert!(!e.take_expected(&event("stop", "s1")), "another action");
        assert!(e.take_expected(&event("create", "s1")));
        assert!(!e.take_expected(&event("create", "s1")), "taken already");
        assert!(e.take_expected(&event("start", "")));
        assert!(!e.take_expected(&event("start", "")));
    }

    #[test]
    fn a_failed_call_expects_nothing() {
        let e = engine();
        let expected = e.expect_event("c1", "start");
        assert!(e.own_events.lock().unwrap().len() == 1);
        drop(expected);
        assert!(!e.take_expected(&event("start", "")));
        assert!(e.own_events.lock().unwrap().is_empty());
    }

    fn raw(ev: Value) -> EngineEvent {
        EngineEvent::new(ev.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn each_kind_of_event_asks_for_the_reread_it_needs() {
        let cases = [
            (
                json!({"Type": "container", "Action": "die", "Actor": {"ID": "c1"}}),
                Reread::Container("c1"),
            ),
            (
                json!({"status": "start", "id": "c2"}),
                Reread::Container("c2"),
            ),
            (
                json!({"Type": "container", "Action": "exec_start: sh", "Actor": {"ID": "c1"}}),
                Reread::Nothing,
            ),
            (
                json!({"Type": "container", "Action": "commit", "Actor": {"ID": "c1"}}),
                Reread::Images,
            ),
            (
                json!({"Type": "image", "Action": "pull", "Actor": {"ID": "busybox"}}),
                Reread::Images,
            ),
            (
                json!({"Type": "network", "Action": "create", "Actor": {"ID": "n1"}}),
                Reread::Network("n1"),
            ),
            (
                json!({"Type": "volume", "Action": "destroy", "Actor": {"ID": "v1"}}),
                Reread::Volume("v1"),
            ),
            (
                json!({"Type": "network", "Action": "prune", "Actor": {"ID": "", "Attributes": {"reclaimed": "0"}}}),
                Reread::Networks,
            ),
            (
                json!({"Type": "volume", "Action": "prune", "Actor": {"ID": ""}}),
                Reread::Volumes,
            ),
            (
                json!({"Type": "network", "Action": "connect", "Actor": {"ID": ""}}),
                Reread::Nothing,
            ),
            (
                json!({"Type": "volume", "Action": "destroy", "Actor": {}}),
                Reread::Nothing,
            ),
            (
                json!({"Type": "daemon", "Action": "reload", "Actor": {"ID": "d1"}}),
                Reread::Specs,
            ),
            (
                json!({"Type": "plugin", "Action": "enable", "Actor": {"ID": "p1"}}),
                Reread::Nothing,
            ),
        ];
        for (ev, want) in cases {
            let ev = raw(ev);
            assert_eq!(reread_for(&ev), want, "{ev:?}");
        }
    }

    #[test]
    fn the_resubscribe_delay_grows_a_second_a_failure_up_to_ten() {
        let secs = |failures| resubscribe_delay(failures).as_secs();
        assert_eq!(secs(0), 1);
        assert_eq!(secs(4), 5);
        assert_eq!(secs(9), 10);
        assert_eq!(secs(10), 10);
        assert_eq!(secs(u32::MAX), 10);
    }

    /// An events source whose subscription answer is scripted and whose calls are recorded.
    struct Scripted {
        /// The stream a subscription gets; `None`: the engine refuses.
        stream: Option<u32>,
        calls: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(stream: Option<u32>) -> Scripted {
            Scripted {
                stream,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn called(&self, what: String) {
            self.calls.lock().unwrap().push(what);
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl EventsSource for Scripted {
        type Stream = u32;

        async fn subscribe(&self) -> Option<u32> {
            self.called("subscribe".into());
            self.stream
        }

        async fn relist(&self) {
            self.called("relist".into());
        }

        async fn consume(&self, stream: u32) -> String {
            self.called(format!("consume {stream}"));
            "end of stream".into()
        }

        fn stream_broke(&self, reason: &str) {
            self.called(format!("wake: {reason}"));
        }
    }

    #[tokio::test]
    async fn a_first_subscription_streams_without_a_relist() {
        let source = Scripted::new(Some(7));
        let next = step(&source, Monitor::Connecting { resumed: false }).await;
        assert_eq!(next, Monitor::Streaming(7));
        assert_eq!(source.calls(), ["subscribe"]);
    }

    #[tokio::test]
    async fn a_resumed_subscription_relists_the_containers_before_streaming() {
        let source = Scripted::new(Some(7));
        let next = step(&source, Monitor::Connecting { resumed: true }).await;
        assert_eq!(next, Monitor::Streaming(7));
        assert_eq!(source.calls(), ["subscribe", "relist"]);
    }

    #[tokio::test]
    async fn a_refused_subscription_backs_off() {
        let source = Scripted::new(None);
        for resumed in [false, true] {
            let next = step(&source, Monitor::Connecting { resumed }).await;
            assert_eq!(next, Monitor::Waiting);
        }
        assert_eq!(source.calls(), ["subscribe", "subscribe"], "no relist");
    }

    #[tokio::test]
    async fn a_stream_that_ends_wakes_the_refresh_loop_and_backs_off() {
        let source = Scripted::new(Some(7));
        let next = step(&source, Monitor::Streaming(3)).await;
        assert_eq!(next, Monitor::Waiting);
        assert_eq!(source.calls(), ["consume 3", "wake: end of stream"]);
    }

    #[tokio::test]
    async fn after_backing_off_the_monitor_subscribes_again_as_resumed() {
        let source = Scripted::new(Some(7));
        let next = step(&source, Monitor::Waiting).await;
        assert_eq!(next, Monitor::Connecting { resumed: true });
        assert!(
            source.calls().is_empty(),
            "waiting is the loop's, not the step's"
        );
    }

    /// The body of an `/events` response whose chunks are `chunks`, from a local server.
    async fn events_body(chunks: Vec<Vec<u8>>) -> BodyReader {
        use super::super::super::transport::EngineStream;
        use tokio::io::AsyncReadExt;
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
        let mut stream = EngineStream::Tcp(tokio::net::TcpStream::connect(addr).await.unwrap());
        let uri: http::Uri = format!("http://{addr}/events").parse().unwrap();
        let head = raw_http::get_head(&uri, &http::HeaderMap::new());
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        let head = raw_http::read_head(&mut stream, &mut buf, raw_http::SMALL_READ)
            .await
            .unwrap();
        let (_, headers) = raw_http::parse_head(&head).unwrap();
        BodyReader::new(stream, buf, raw_http::is_chunked(&headers))
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
    /// An engine at a local server that answers every connection with `answer` (and then
    /// closes it), or never answers when `answer` is `None`; its call timeout is `timeout`.
    async fn engine_answering(answer: Option<&'static [u8]>, timeout: Duration) -> Arc<Engine> {
        use super::super::super::directory::Directory;
        use super::super::super::events::EventBus;
        use super::super::super::transport::Transport;
        use super::super::EngineOptions;
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = conn.read(&mut request).await;
                match answer {
                    Some(answer) => {
                        let _ = conn.write_all(answer).await;
                    }
                    // Held open, silent, until the test ends.
                    None => held.push(conn),
                }
            }
        });
        let opts = EngineOptions {
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(60),
            failure_retry: 1,
            call_timeout: timeout,
        };
        Engine::new(
            &addr,
            Transport::new(None),
            Arc::new(opts),
            Arc::new(EventBus::new()),
            Arc::new(Directory::default()),
            &tokio_util::sync::CancellationToken::new(),
        )
    }

    const A_MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_subscription_the_engine_accepts_reads_its_events_to_the_end() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Type\":\"plugin\",\"Actor\":{\"ID\":\"p1\"}}\n";
        let e = engine_answering(Some(answer), A_MINUTE).await;
        let (_, mut rx) = e.bus.subscribe(None, "test");
        let stream = e.subscribe().await.expect("a stream");
        assert_eq!(e.health().failures, 0);
        let epoch = || e.events_epoch.load(Ordering::Acquire);
        assert_eq!(epoch() % 2, 1, "counted as streaming");
        assert_eq!(e.consume(stream).await, "end of stream");
        e.stream_broke("end of stream");
        assert_eq!(epoch() % 2, 0, "counted as broken");
        assert_eq!(
            rx.try_recv().map(|ev| ev.actor_id().to_string()),
            Some("p1".into())
        );
    }

    #[tokio::test]
    async fn a_subscription_refused_with_an_error_status_is_no_connection_failure() {
        let answer = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        let e = engine_answering(Some(answer), A_MINUTE).await;
        assert!(e.subscribe().await.is_none());
        assert_eq!(e.health().failures, 0);
    }

    #[tokio::test]
    async fn a_subscription_to_an_unreachable_engine_counts_as_a_failure() {
        let e = engine();
        assert!(e.subscribe().await.is_none());
        assert_eq!(e.health().failures, 1);
    }

    #[tokio::test]
    async fn a_subscription_without_an_answer_times_out_as_a_failure() {
        let e = engine_answering(None, Duration::from_millis(200)).await;
        assert!(e.subscribe().await.is_none());
        let health = e.health();
        assert_eq!(health.failures, 1);
        assert!(health.error.contains("did not answer"), "{}", health.error);
    }
}
