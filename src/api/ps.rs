//! What `docker ps` shows (SPEC §5.6): which containers a list request selects (its filters,
//! checked and compiled once) and how each selected container is written: names prefixed with
//! their node, a status recomputed now, unspecified port addresses replaced by the node's, the
//! rest of the engine's entry copied as it was serialised. The list is written in chunks as the
//! client reads it. This module renders; the handler in [`super::containers`] decides what
//! to select and in which order, and this module must not import a handler module.
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use regex::Regex;

use super::error::{ApiError, ApiResult};
use super::filters::{label_filter_matches, Filters};
use crate::cluster::cache::Container;
use crate::cluster::{Engine, EngineState};
use crate::scheduler::expr::user_regex;

/// Docker's human duration (`Less than a second`, `5 seconds`, `About a minute`, …).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = s / 3600;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// The `Status` column of `docker ps`, recomputed now from the cached state.
pub fn status_text(c: &Container, engine_healthy: bool, now: i64) -> String {
    if !engine_healthy {
        return "Host Down".into();
    }
    let st = &c.details.state;
    let state = c.state();
    let since = |t: Option<i64>| t.map(|t| human_duration(now - t));
    match state {
        "running" | "paused" => {
            let up = since(c.details.started_secs).unwrap_or_else(|| "Less than a second".into());
            let mut text = format!("Up {up}");
            if st.paused || state == "paused" {
                text.push_str(" (Paused)");
            } else if let Some(h) = c.details.health() {
                match h {
                    "starting" => text.push_str(" (health: starting)"),
                    "healthy" | "unhealthy" => text.push_str(&format!(" ({h})")),
                    _ => {}
                }
            }
            text
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            since(c.details.finished_secs).unwrap_or_else(|| "Less than a second".into())
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        "created" => "Created".into(),
        "exited" => match since(c.details.finished_secs) {
            Some(d) => format!("Exited ({}) {d} ago", st.exit_code),
            None => format!("Exited ({})", st.exit_code),
        },
        _ => c.list_status().to_string(),
    }
}

/// Appends `text` as a JSON string (quoted and escaped).
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    write_json_str_body(out, text);
    out.push(b'"');
}

/// Appends `text` escaped for use inside a JSON string, without the quotes.
fn write_json_str_body(out: &mut Vec<u8>, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.extend_from_slice(text.as_bytes());
    } else {
        let quoted = serde_json::Value::from(text).to_string();
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// What a list entry needs from its engine: the node name (already a JSON string body) and the
/// address that replaces unspecified port addresses.
pub struct NodeText {
    /// The node name, escaped for use inside a JSON string.
    name: String,
    ip: String,
    healthy: bool,
}

impl NodeText {
    pub fn new(engine: &Engine) -> NodeText {
        let mut escaped = Vec::new();
        write_json_str_body(&mut escaped, &engine.name());
        let name = String::from_utf8_lossy(&escaped).into_owned();
        NodeText {
            name,
            ip: engine.ip(),
            healthy: engine.state() == EngineState::Healthy,
        }
    }
}

/// Appends one `docker ps` entry: the engine's entry with node-prefixed names, a fresh status
/// and the node IP in place of unspecified port addresses, then the pre-serialised rest of the
/// engine's entry. Lists of tens of thousands are then mostly copies.
fn write_entry(out: &mut Vec<u8>, c: &Container, node: &NodeText, now: i64) {
    out.extend_from_slice(b"{\"Names\":[");
    for (i, name) in c.names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // `/node` + `/name`, one JSON string.
        out.extend_from_slice(b"\"/");
        out.extend_from_slice(node.name.as_bytes());
        write_json_str_body(out, name);
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"Status\":");
    write_json_str(out, &status_text(c, node.healthy, now));
    out.extend_from_slice(b",\"State\":");
    write_json_str(out, c.state());
    out.extend_from_slice(b",\"Ports\":[");
    for (i, p) in c.ports.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Some(ip) = p.ip.as_deref().filter(|ip| !ip.is_empty()) {
            let ip = match ip {
                "0.0.0.0" | "::" if !node.ip.is_empty() => node.ip.as_str(),
                ip => ip,
            };
            out.extend_from_slice(b"\"IP\":");
            write_json_str(out, ip);
            out.push(b',');
        }
        out.extend_from_slice(b"\"PrivatePort\":");
        out.extend_from_slice(itoa::Buffer::new().format(p.private_port).as_bytes());
        if let Some(public) = p.public_port.filter(|p| *p != 0) {
            out.extend_from_slice(b",\"PublicPort\":");
            out.extend_from_slice(itoa::Buffer::new().format(public).as_bytes());
        }
        out.extend_from_slice(b",\"Type\":");
        write_json_str(out, &p.kind);
        out.push(b'}');
    }
    out.push(b']');
    if !c.static_json.is_empty() {
        out.push(b',');
        out.extend_from_slice(c.static_json.as_bytes());
    }
    out.push(b'}');
}

/// A merged list written out in chunks as the client reads it: eight concurrent lists of tens
/// of thousands of containers never hold their whole bodies at once.
struct ListBody {
    entries: std::vec::IntoIter<(Arc<Container>, usize)>,
    nodes: Vec<NodeText>,
    now: i64,
    started: bool,
    done: bool,
}

/// How much of a list is written per chunk.
const LIST_CHUNK: usize = 256 * 1024;

impl Iterator for ListBody {
    type Item = Result<bytes::Bytes, std::convert::Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(LIST_CHUNK + 4096);
        if !self.started {
            out.push(b'[');
        }
        while out.len() < LIST_CHUNK {
            let Some((c, node)) = self.entries.next() else {
                out.extend_from_slice(b"]\n");
                self.done = true;
                break;
            };
            if self.started {
                out.push(b',');
            }
            self.started = true;
            write_entry(&mut out, &c, &self.nodes[node], self.now);
        }
        Some(Ok(bytes::Bytes::from(out)))
    }
}

/// What a list request selects: its filters, with the patterns among them compiled once.
pub struct ListFilter {
    pub filters: Filters,
    name: Vec<Regex>,
    id: Vec<Regex>,
    status: Vec<Regex>,
    node: Vec<Regex>,
    exited: Vec<i64>,
}

fn regexes(filters: &Filters, key: &str) -> ApiResult<Vec<Regex>> {
    filters
        .values(key)
        .iter()
        .map(|v| {
            user_regex(v)
                .map_err(|e| ApiError::bad_request(format!("invalid filter '{key}={v}': {e}")))
        })
        .collect()
}

impl ListFilter {
    /// Checks and compiles the filters of a list request; a bad one is the client's error.
    pub fn new(filters: Filters) -> ApiResult<ListFilter> {
        for status in filters.values("status") {
            const KNOWN: [&str; 7] = [
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ];
            if !KNOWN.contains(&status.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={status}': must be one of {}",
                    KNOWN.join(", ")
                )));
            }
        }
        for h in filters.values("health") {
            if !["starting", "healthy", "unhealthy", "none"].contains(&h.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'health={h}': must be one of starting, healthy, unhealthy, none"
                )));
            }
        }
        let exited = filters
            .values("exited")
            .iter()
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid filter 'exited={v}'")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(ListFilter {
            name: regexes(&filters, "name")?,
            id: regexes(&filters, "id")?,
            status: filters
                .values("status")
                .iter()
                .map(|s| Regex::new(&format!("^{}$", regex::escape(s))).expect("escaped"))
                .collect(),
            node: regexes(&filters, "node")?,
            exited,
            filters,
        })
    }

    fn any(re: &[Regex], text: &str) -> bool {
        re.is_empty() || re.iter().any(|r| r.is_match(text))
    }

    /// Whether container `c` on `engine` passes every filter.
    pub fn accepts(&self, c: &Container, engine: &Engine) -> bool {
        let f = &self.filters;
        if f.keys().next().is_none() {
            return true;
        }
        if !self.name.is_empty() && !Self::any(&self.name, c.name())
            || !Self::any(&self.id, &c.id)
            || !Self::any(&self.status, c.state())
            || !self.node.is_empty() && !Self::any(&self.node, &engine.name())
        {
            return false;
        }
        if !f.match_all("label", |v| label_filter_matches(|k| c.label(k), v)) {
            return false;
        }
        let health = c.details.health().unwrap_or("none");
        if !f.match_any("health", |v| v == health) {
            return false;
        }
        if f.has("is-task") {
            let is_task = c.label("com.docker.swarm.task").is_some();
            if !f.match_any("is-task", |v| (v == "true") == is_task) {
                return false;
            }
        }
        if !self.exited.is_empty()
            && (c.details.state.running || !self.exited.contains(&c.details.state.exit_code))
        {
            return false;
        }
        if f.has("volume") {
            let ok = f.match_any("volume", |v| {
                c.mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(v) || &*m.destination == v)
            });
            if !ok {
                return false;
            }
        }
        if f.has("network") {
            let ok = f.match_any("network", |v| {
                c.networks
                    .iter()
                    .any(|n| &*n.name == v || !v.is_empty() && n.network_id.starts_with(v))
            });
            if !ok {
                return false;
            }
        }
        if f.has("ancestor") {
            let image = c.image();
            let image_id = c.image_id();
            let ok = f.match_any("ancestor", |v| {
                image == v
                    || image_id == v
                    || image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|i| i.starts_with(v))
                    || crate::cluster::names::split_reference(image).0 == v
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

/// The `docker ps` answer: `selected` (each with the index of its node in `nodes`), in the
/// order given, written as the client reads it.
pub fn list_response(selected: Vec<(Arc<Container>, usize)>, nodes: Vec<NodeText>) -> Response {
    let body = ListBody {
        entries: selected.into_iter(),
        nodes,
        now: chrono::Utc::now().timestamp(),
        started: false,
        done: false,
    };
    let mut resp = (
        StatusCode::OK,
        axum::body::Body::from_stream(futures_util::stream::iter(body)),
    )
        .into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn list_entries_prefix_names_rewrite_ports_and_keep_the_rest() {
        use crate::cluster::cache::{entry_hash, ContainerDetails};
        let raw = r#"{"Id":"abc","Names":["/we\"b"],"Image":"busybox","State":"exited",
            "Status":"Exited (0)","Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":53,"Type":"udp"}],"Labels":{"a":"1"}}"#;
        let c = Container::new(
            serde_json::from_str(raw).unwrap(),
            ContainerDetails::default(),
            entry_hash(raw.as_bytes()),
        );
        let node = NodeText {
            name: "node-1".into(),
            ip: "10.0.0.5".into(),
            healthy: true,
        };
        let mut out = Vec::new();
        write_entry(&mut out, &c, &node, 0);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Names"], serde_json::json!(["/node-1/we\"b"]));
        assert_eq!(v["State"], "exited");
        assert_eq!(v["Ports"][0]["IP"], "10.0.0.5");
        assert_eq!(v["Ports"][0]["PublicPort"], 8080);
        assert!(v["Ports"][1].get("IP").is_none());
        assert!(v["Ports"][1].get("PublicPort").is_none());
        assert_eq!(v["Labels"]["a"], "1");
        assert_eq!(v["Id"], "abc");
    }

    #[test]
    fn human_durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(100 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }
}
