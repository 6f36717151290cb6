//! The events themselves: one engine's event as read ([`EngineEvent`]), the same event with the
//! node fields added and serialised once for listeners ([`ClusterEvent`]), and the manager's own
//! node events. It owns the reading and the JSON of one event; it must not keep, queue or
//! deliver events (that is the bus's job).
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// The node an event came from.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub name: String,
    pub id: String,
    pub addr: String,
    pub ip: String,
}

/// One event as an engine sent it, read once when it arrives: the members the cache update, the
/// expected-event check and the bus go by, and the whole object, which the bus re-emits with
/// the node fields added. Old engines sent only `status` and `id`; their events read the same.
#[derive(Debug)]
pub struct EngineEvent {
    /// `Type`, `container` when the engine sent none.
    kind: Box<str>,
    /// `Action`, or `status` when the engine sent none.
    action: Box<str>,
    /// `Actor.ID`, or `id` when the engine sent none.
    actor_id: Box<str>,
    /// `timeNano`, or `time` × 10⁹; 0 when the engine sent neither.
    time_nano: i64,
    raw: Map<String, Value>,
}

impl EngineEvent {
    /// Reads the members of one decoded event.
    pub fn new(raw: Map<String, Value>) -> EngineEvent {
        let text = |k: &str| raw.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
        let actor_id = raw
            .get("Actor")
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
            .or_else(|| text("id"));
        let time_nano = raw
            .get("timeNano")
            .and_then(Value::as_i64)
            .or_else(|| {
                raw.get("time")
                    .and_then(Value::as_i64)
                    .map(|t| t.saturating_mul(1_000_000_000))
            })
            .unwrap_or(0);
        EngineEvent {
            kind: text("Type").unwrap_or("container").into(),
            action: text("Action")
                .or_else(|| text("status"))
                .unwrap_or("")
                .into(),
            actor_id: actor_id.unwrap_or("").into(),
            time_nano,
            raw,
        }
    }

    /// `Type`, `container` for old engines.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `Action` in full (`exec_start: sh -c true`), as listeners' filters see it.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The action without what follows a colon (`exec_start`, `health_status`): what happened,
    /// whatever it happened with.
    pub fn verb(&self) -> &str {
        match self.action.split_once(':') {
            Some((head, _)) => head.trim(),
            None => &self.action,
        }
    }

    /// `Actor.ID` (the container ID, a network ID, a volume name…), `id` for old engines.
    pub fn actor_id(&self) -> &str {
        &self.actor_id
    }

    /// When the event happened, in nanoseconds since the epoch.
    pub fn time_nano(&self) -> i64 {
        self.time_nano
    }

    /// One string attribute of the actor (`Actor.Attributes`).
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.raw.get("Actor")?.get("Attributes")?.get(key)?.as_str()
    }
}

impl From<Map<String, Value>> for EngineEvent {
    fn from(raw: Map<String, Value>) -> Self {
        EngineEvent::new(raw)
    }
}

/// One event as delivered to listeners: its JSON line (node fields added) and the few members
/// that listeners' filters and the manager read. Thousands are retained for slow listeners and
/// `since`, so nothing else is kept; attributes are read back from the JSON when asked for.
#[derive(Debug)]
pub struct ClusterEvent {
    /// The event serialised, with a trailing newline: what an `/events` stream writes, shared
    /// by every listener.
    line: Bytes,
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
    pub fn from_engine(event: impl Into<EngineEvent>, node: &NodeRef) -> ClusterEvent {
        let mut event = event.into();
        let value = &mut event.raw;
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
        Self::finish(event)
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
            Value::Object(map) => Self::finish(EngineEvent::new(map)),
            _ => unreachable!("json! object literal"),
        }
    }

    /// Serialises the event once; its typed members move over as they are.
    fn finish(event: EngineEvent) -> ClusterEvent {
        let text = |k: &str| -> Box<str> {
            event
                .raw
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .into()
        };
        let (scope, from) = (text("scope"), text("from"));
        let mut line = serde_json::to_vec(&event.raw).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        // Serialising grows the buffer by doubling; the retained copy holds only the bytes.
        line.shrink_to_fit();
        ClusterEvent {
            line: Bytes::from(line),
            time_nano: event.time_nano,
            kind: event.kind,
            action: event.action,
            actor_id: event.actor_id,
            scope,
            from,
        }
    }

    /// The event's JSON, without the newline.
    pub fn json(&self) -> &str {
        std::str::from_utf8(&self.line[..self.line.len().saturating_sub(1)]).unwrap_or("{}")
    }

    /// The event's JSON followed by a newline, as an `/events` stream writes it (shared, not
    /// copied).
    pub fn line(&self) -> Bytes {
        self.line.clone()
    }

    /// What retaining this event costs, in bytes: what the history and listener budgets count.
    pub fn retained_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.line.len()
            + self.kind.len()
            + self.action.len()
            + self.actor_id.len()
            + self.scope.len()
            + self.from.len()
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
        let parsed: AttributesOnly = serde_json::from_str(self.json()).unwrap_or_default();
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The node the tests' events come from.
    pub(in crate::cluster::events) fn node() -> NodeRef {
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
        let value: Value = serde_json::from_str(ev.json()).unwrap();
        assert_eq!(value["from"], "busybox node:node-1");
        assert_eq!(ev.from(), "busybox node:node-1");
        assert_eq!(ev.attribute("node.name").as_deref(), Some("node-1"));
        assert_eq!(ev.attribute("name").as_deref(), Some("web"));
        assert_eq!(value["node"]["Addr"], "127.0.0.1:1");
        assert_eq!(ev.time_nano, 10_000_000_005);
        assert!(ev.json().ends_with("}}"));
        assert!(ev.line().ends_with(b"}}\n"));
        assert_eq!(ev.kind(), "container");
        assert_eq!(ev.action(), "start");
        assert_eq!(ev.actor_id(), "c1");
    }

    fn engine_event(raw: Value) -> EngineEvent {
        EngineEvent::new(raw.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn an_engine_event_is_read_once_with_old_engines_fields_as_fallbacks() {
        let ev = engine_event(
            json!({"Type": "container", "Action": "exec_start: sh -c true",
            "Actor": {"ID": "c1", "Attributes": {"com.docker.swarm.id": "s1", "n": 1}},
            "time": 10, "timeNano": 10_000_000_005i64}),
        );
        assert_eq!(ev.kind(), "container");
        assert_eq!(ev.action(), "exec_start: sh -c true");
        assert_eq!(ev.verb(), "exec_start");
        assert_eq!(ev.actor_id(), "c1");
        assert_eq!(ev.time_nano(), 10_000_000_005);
        assert_eq!(ev.attribute("com.docker.swarm.id"), Some("s1"));
        assert_eq!(ev.attribute("n"), None, "not a string");
        assert_eq!(ev.attribute("missing"), None);

        let old = engine_event(json!({"status": "die", "id": "c2", "from": "busybox", "time": 3}));
        assert_eq!(
            (old.kind(), old.action(), old.verb(), old.actor_id()),
            ("container", "die", "die", "c2")
        );
        assert_eq!(old.time_nano(), 3_000_000_000);
        assert_eq!(old.attribute("anything"), None);

        // The bus keeps the members as read, and the whole event.
        let published = ClusterEvent::from_engine(ev, &node());
        assert_eq!(published.action(), "exec_start: sh -c true");
        assert_eq!(
            published.attribute("com.docker.swarm.id").as_deref(),
            Some("s1")
        );
        assert_eq!(published.time_nano, 10_000_000_005);
        let published = ClusterEvent::from_engine(old, &node());
        assert_eq!(
            (published.kind(), published.actor_id()),
            ("container", "c2")
        );
    }

    #[test]
    fn swarm_events_name_the_node() {
        let ev = ClusterEvent::swarm("engine_connect", &node(), 3_000_000_000);
        let value: Value = serde_json::from_str(ev.json()).unwrap();
        assert_eq!(value["from"], "swarm node:node-1");
        assert_eq!(ev.kind(), "swarm");
        assert_eq!(value["time"], 3);
        assert_eq!(ev.scope(), "local");
    }
}
