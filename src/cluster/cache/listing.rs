//! The parts of a `docker ps` entry that stay the same from one request to the next: the names
//! prefixed with their node, and the state and ports with the node's address in place of
//! unspecified ones. They are rendered once per record — when the record is written, so that
//! no list pays for them — and kept in the record ([`ListRender`]); the list renderer
//! (`api::ps`) adds the status of the moment and copies the rest.
use super::container::{entry_hash, Container, ListRender};

/// Appends `text` as a JSON string (quoted and escaped).
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    write_json_str_body(out, text);
    out.push(b'"');
}

/// Appends `text` escaped for use inside a JSON string, without the quotes.
pub fn write_json_str_body(out: &mut Vec<u8>, text: &str) {
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
    pub name: String,
    /// The node's address, which replaces unspecified port addresses.
    pub ip: String,
    /// Whether the engine is healthy (`Host Down` statuses otherwise).
    pub healthy: bool,
    /// A hash of `name` and `ip`, which pre-rendered parts are checked against.
    pub key: u64,
}

impl NodeText {
    /// The text of the node named `name` (as the engine reports it) at `ip`.
    pub fn of(name: &str, ip: String, healthy: bool) -> NodeText {
        let mut escaped = Vec::new();
        write_json_str_body(&mut escaped, name);
        NodeText::with(String::from_utf8_lossy(&escaped).into_owned(), ip, healthy)
    }

    /// The text of a node named `name` (escaped) at `ip`.
    pub fn with(name: String, ip: String, healthy: bool) -> NodeText {
        let key = entry_hash(format!("{name}\0{ip}").as_bytes());
        NodeText {
            name,
            ip,
            healthy,
            key,
        }
    }
}

/// Appends `{"Names":[…],"Status":`, each name prefixed with the node's.
pub fn write_names(out: &mut Vec<u8>, c: &Container, node: &NodeText) {
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
}

/// Appends `,"State":…,"Ports":[…]` with the node IP in place of unspecified port addresses,
/// and the comma before the pass-through members when there are any.
pub fn write_state_and_ports(out: &mut Vec<u8>, c: &Container, node: &NodeText) {
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
    }
}

/// The parts of `c`'s entry that do not vary per request, as listed on `node`.
pub fn render_fixed(c: &Container, node: &NodeText) -> ListRender {
    let mut bytes = Vec::new();
    write_names(&mut bytes, c, node);
    let split = bytes.len();
    write_state_and_ports(&mut bytes, c, node);
    ListRender {
        node_key: node.key,
        bytes: bytes.into_boxed_slice(),
        split,
    }
}

/// Renders `c`'s fixed parts for `node` now, unless they already are.
pub fn prerender(c: &Container, node: &NodeText) {
    c.list_render.get_or_init(|| render_fixed(c, node));
}

#[cfg(test)]
mod tests {
    use super::super::container::ContainerDetails;
    use super::*;

    #[test]
    fn a_record_is_rendered_once_for_the_node_it_was_first_rendered_for() {
        let raw = r#"{"Id":"abc","Names":["/web"],"State":"running","Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}]}"#;
        let summary = serde_json::from_str(raw).unwrap();
        let details = ContainerDetails::from_inspect(br#"{"State":{"Status":"running"}}"#).unwrap();
        let c = Container::new(summary, details, entry_hash(raw.as_bytes()));
        let node = NodeText::of("node-1", "10.0.0.5".into(), true);
        prerender(&c, &node);
        let first = c.list_render.get_or_init(|| unreachable!());
        assert_eq!(first.node_key, node.key);
        let text = String::from_utf8_lossy(&first.bytes).into_owned();
        assert!(
            text.starts_with(r#"{"Names":["/node-1/web"],"Status":"#),
            "{text}"
        );
        assert!(text.contains(r#""IP":"10.0.0.5""#), "{text}");
        // Rendered already: another node's text changes nothing (the list falls back to a
        // whole rendering when the keys differ).
        prerender(&c, &NodeText::of("node-2", String::new(), true));
        assert_eq!(
            c.list_render.get_or_init(|| unreachable!()).node_key,
            node.key
        );
    }
}
