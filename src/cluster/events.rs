//! The cluster-wide event bus: every engine's events, with the node fields added, plus the
//! manager's own `engine_connect` / `engine_disconnect` / `engine_reconnect` events (SPEC §5.8).
//!
//! Each event is serialised once when published; `/events` listeners subscribe to a broadcast
//! channel and replay recent history for `since`. The bus does no I/O and never blocks a
//! publisher: a listener that falls too far behind is told so and its stream ends.
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

/// How many events a listener may fall behind before it is dropped.
const LISTENER_QUEUE: usize = 65_536;
/// How many recent events are kept for `since` replay.
const HISTORY: usize = 2_048;

/// The node an event came from.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub name: String,
    pub id: String,
    pub addr: String,
    pub ip: String,
}

/// One event as delivered to listeners: its JSON (node fields added) and the few members that
/// listeners' filters and the manager read. Tens of thousands are retained for slow listeners
/// and `since`, so nothing else is kept; attributes are read back from the JSON when asked for.
#[derive(Debug)]
pub struct ClusterEvent {
    /// The event serialised, without a trailing newline.
    pub json: String,
    /// `timeNano` (or `time` × 10⁹) for `since` / `until`.
    pub time_nano: i64,
    kind: Box<str>,
    action: Box<str>,
    actor_id: Box<str>,
    scope: Box<str>,
    from: Box<str>,
}

/// `Actor.Attributes` of an event, read back from its JSON.
#[derive(serde::Deserialize, Default)]
struct AttributesOnly {
    #[serde(rename = "Actor", default)]
    actor: Option<ActorAttributes>,
}

#[derive(serde::Deserialize, Default)]
struct ActorAttributes {
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, Value>>,
}

impl ClusterEvent {
    /// Adds the node fields to an engine event (SPEC §5.8).
    pub fn from_engine(mut value: Map<String, Value>, node: &NodeRef) -> ClusterEvent {
        let from = value
            .get("from")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if value.contains_key("from") || value.contains_key("status") {
            value.insert(
                "from".into(),
                Value::String(format!("{from} node:{}", node.name)),
            );
        }
        if let Some(actor) = value.get_mut("Actor").and_then(Value::as_object_mut) {
            let attrs = actor
                .entry("Attributes")
                .or_insert_with(|| Value::Object(Map::new()));
            if !attrs.is_object() {
                *attrs = Value::Object(Map::new());
            }
            if let Some(attrs) = attrs.as_object_mut() {
                attrs.insert("node.name".into(), node.name.clone().into());
                attrs.insert("node.id".into(), node.id.clone().into());
                attrs.insert("node.addr".into(), node.addr.clone().into());
                attrs.insert("node.ip".into(), node.ip.clone().into());
            }
        }
        value.insert(
            "node".into(),
            json!({"Name": node.name, "Id": node.id, "Addr": node.addr, "Ip": node.ip}),
        );
        Self::finish(value)
    }

    /// A manager-generated event about a node (`engine_connect`, …).
    pub fn swarm(action: &str, node: &NodeRef, now_nanos: i64) -> ClusterEvent {
        let value = json!({
            "status": action,
            "id": "",
            "from": format!("swarm node:{}", node.name),
            "Type": "swarm",
            "Action": action,
            "Actor": {"ID": "", "Attributes": {
                "node.name": node.name, "node.id": node.id, "node.addr": node.addr, "node.ip": node.ip}},
            "scope": "local",
            "time": now_nanos / 1_000_000_000,
            "timeNano": now_nanos,
            "node": {"Name": node.name, "Id": node.id, "Addr": node.addr, "Ip": node.ip},
        });
        match value {
            Value::Object(map) => Self::finish(map),
            _ => unreachable!("json! object literal"),
        }
    }

    fn finish(value: Map<String, Value>) -> ClusterEvent {
        let time_nano = value
            .get("timeNano")
            .and_then(Value::as_i64)
            .or_else(|| {
                value
                    .get("time")
                    .and_then(Value::as_i64)
                    .map(|t| t.saturating_mul(1_000_000_000))
            })
            .unwrap_or(0);
        let text =
            |v: Option<&Value>| -> Box<str> { v.and_then(Value::as_str).unwrap_or("").into() };
        let actor = value.get("Actor");
        let kind = value
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("container");
        ClusterEvent {
            json: serde_json::to_string(&value).unwrap_or_default(),
            time_nano,
            kind: kind.into(),
            action: text(value.get("Action").or_else(|| value.get("status"))),
            actor_id: text(actor.and_then(|a| a.get("ID")).or_else(|| value.get("id"))),
            scope: text(value.get("scope")),
            from: text(value.get("from")),
        }
    }

    /// `Type`, defaulting to `container` for old engines that sent only `status`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `Action`, or `status` for old engines.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// `Actor.ID`, or `id` for old engines.
    pub fn actor_id(&self) -> &str {
        &self.actor_id
    }

    /// `scope` (`local`, `swarm`), empty when the engine sent none.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `from` (the image, with ` node:<name>` added), empty when the engine sent none.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// One attribute of the actor.
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.attributes().remove(key)
    }

    /// All string attributes of the actor.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let parsed: AttributesOnly = serde_json::from_str(&self.json).unwrap_or_default();
        parsed
            .actor
            .and_then(|a| a.attributes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(v) => Some((k, v)),
                _ => None,
            })
            .collect()
    }
}

/// The bus. Cheap to share behind an `Arc`.
pub struct EventBus {
    tx: broadcast::Sender<Arc<ClusterEvent>>,
    /// Recent events, oldest first. Publishing and subscribing take this lock so that a new
    /// listener's replay and its live stream neither overlap nor leave a gap.
    history: Mutex<VecDeque<Arc<ClusterEvent>>>,
    listeners: AtomicUsize,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(LISTENER_QUEUE);
        EventBus {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            listeners: AtomicUsize::new(0),
        }
    }

    /// Publishes one event to every listener.
    pub fn publish(&self, event: ClusterEvent) {
        let event = Arc::new(event);
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event.clone());
        let _ = self.tx.send(event);
    }

    /// Subscribes; returns the retained events with `time_nano >= since_nanos` (none when
    /// `since_nanos` is `None`) and the live receiver.
    pub fn subscribe(
        &self,
        since_nanos: Option<i64>,
    ) -> (
        Vec<Arc<ClusterEvent>>,
        broadcast::Receiver<Arc<ClusterEvent>>,
    ) {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let replay = match since_nanos {
            Some(since) => history
                .iter()
                .filter(|e| e.time_nano >= since)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (replay, rx)
    }

    /// Counts an open `/events` stream; the guard uncounts it.
    pub fn listener_guard(self: &Arc<Self>) -> ListenerGuard {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        ListenerGuard { bus: self.clone() }
    }

    /// Number of open `/events` streams (`NEventsListener`).
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }
}

/// Keeps one `/events` stream counted while alive.
pub struct ListenerGuard {
    bus: Arc<EventBus>,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.bus.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeRef {
        NodeRef {
            name: "node-1".into(),
            id: "ABC|127.0.0.1:1".into(),
            addr: "127.0.0.1:1".into(),
            ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn engine_events_gain_the_node_fields() {
        let raw = json!({"status": "start", "id": "c1", "from": "busybox", "Type": "container",
            "Action": "start", "Actor": {"ID": "c1", "Attributes": {"name": "web"}},
            "time": 10, "timeNano": 10_000_000_005i64});
        let ev = ClusterEvent::from_engine(raw.as_object().unwrap().clone(), &node());
        let value: Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(value["from"], "busybox node:node-1");
        assert_eq!(ev.from(), "busybox node:node-1");
        assert_eq!(ev.attribute("node.name").as_deref(), Some("node-1"));
        assert_eq!(ev.attribute("name").as_deref(), Some("web"));
        assert_eq!(value["node"]["Addr"], "127.0.0.1:1");
        assert_eq!(ev.time_nano, 10_000_000_005);
        assert!(ev.json.ends_with("}}"));
        assert_eq!(ev.kind(), "container");
        assert_eq!(ev.action(), "start");
        assert_eq!(ev.actor_id(), "c1");
    }

    #[test]
    fn swarm_events_name_the_node() {
        let ev = ClusterEvent::swarm("engine_connect", &node(), 3_000_000_000);
        let value: Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(value["from"], "swarm node:node-1");
        assert_eq!(ev.kind(), "swarm");
        assert_eq!(value["time"], 3);
        assert_eq!(ev.scope(), "local");
    }

    #[test]
    fn subscribers_replay_history_since_a_time_and_then_stream() {
        let bus = EventBus::new();
        bus.publish(ClusterEvent::swarm("engine_connect", &node(), 1_000));
        bus.publish(ClusterEvent::swarm("engine_disconnect", &node(), 2_000));
        let (replay, mut rx) = bus.subscribe(Some(1_500));
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].action(), "engine_disconnect");
        bus.publish(ClusterEvent::swarm("engine_reconnect", &node(), 3_000));
        assert_eq!(rx.try_recv().unwrap().action(), "engine_reconnect");
        let (none, _) = bus.subscribe(None);
        assert!(none.is_empty());
    }
}
