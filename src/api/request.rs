//! What handlers read from a request besides its body's meaning: query parameters, the
//! `name/action` split of paths whose names may hold slashes, the container a name resolves
//! to, small JSON bodies (read within the body budget of [`super::limits`]) and the
//! `node/name` form of create requests. Shared by the handler modules, so none of them has to
//! import another; this module must not answer a route or call an engine itself.
use std::collections::HashMap;

use axum::extract::Request;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::limits::read_whole_body;
use super::state::AppState;
use crate::cluster::names::{find_container, ContainerRef};
use crate::cluster::transport::{boxed, TransportBody};
use crate::scheduler::Expression;

/// One query parameter of a request, percent-decoded.
pub fn query_value(req: &Request, key: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Docker's boolean query values: empty, `0`, `no`, `false`, `none` are false.
pub fn query_bool(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| crate::cluster::budget::docker_bool(v))
}

/// Splits `/containers/{name}/{action}` remainders: the name may contain slashes.
pub fn split_name_action<'a>(rest: &'a str, actions: &[&'a str]) -> (&'a str, Option<&'a str>) {
    for action in actions {
        if let Some(name) = rest.strip_suffix(action).and_then(|r| r.strip_suffix('/')) {
            if !name.is_empty() {
                return (name, Some(action));
            }
        }
    }
    (rest, None)
}

/// Resolves a container for a route, with the classic not-found and unhealthy answers.
pub fn resolve(
    state: &AppState,
    name: &str,
    not_found: impl FnOnce(&str) -> String,
) -> ApiResult<ContainerRef> {
    let found = find_container(&state.cluster.engines(), name)
        .ok_or_else(|| ApiError::not_found(not_found(name)))?;
    if !found.engine.is_healthy() {
        return Err(ApiError::internal(format!(
            "Container {name} running on unhealthy node {}",
            found.engine.name()
        )));
    }
    Ok(found)
}

/// Whether the client asked to upgrade the connection (hijacked attach and exec).
pub fn wants_upgrade(req: &Request) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
}

/// Reads a small JSON object body; anything else is the client's error (400).
pub async fn read_json_object(req: Request, what: &str) -> ApiResult<Map<String, Value>> {
    let (_, bytes) = read_whole_body(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(format!(
            "invalid JSON: the {what} body must be an object"
        ))),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
    }
}

/// A JSON request body for an engine.
pub fn json_body(value: &Map<String, Value>) -> (HeaderMap, TransportBody) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    (headers, boxed(http_body_util::Full::new(bytes)))
}

/// Takes the node out of a create body's `Name` (`node/name`): the body keeps the bare name,
/// and the node and the bare name are returned.
pub fn take_node(body: &mut Map<String, Value>) -> (Option<String>, String) {
    let name = body.get("Name").and_then(Value::as_str).unwrap_or("");
    let (node, bare) = match name.split_once('/') {
        Some((node, bare)) if !node.is_empty() => (Some(node.to_string()), bare.to_string()),
        _ => (None, name.to_string()),
    };
    body.insert("Name".into(), Value::String(bare.clone()));
    (node, bare)
}

/// The constraint that places an object named `node/name` on `node` (classic: `node==<node>`,
/// so a glob or an ID works as well as a name). A node that no validated engine answers to,
/// healthy or not, is the client's mistake: 404 `No such node: <node>` rather than the
/// scheduler's 500 (a known node that is down still gets the scheduler's answer).
pub fn node_constraint(state: &AppState, node: &str) -> ApiResult<String> {
    let constraint = format!("node=={node}");
    let known = match Expression::parse(&constraint) {
        // `~node/name` asks for the node softly; any node will do when it is missing.
        Ok(expression) if expression.soft => true,
        Ok(expression) => state
            .cluster
            .engines()
            .validated
            .values()
            .any(|e| expression.matches([e.id().as_str(), e.name().as_str()])),
        // No node can be called something the expression syntax refuses.
        Err(_) => false,
    };
    if known {
        Ok(constraint)
    } else {
        Err(ApiError::not_found(format!("No such node: {node}")))
    }
}

/// The request's path and query as the engine gets them (the version prefix is already gone):
/// names need no rewriting, engines know them as the client wrote them.
pub fn path_and_query(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_split_from_their_action() {
        assert_eq!(
            split_name_action("node-0/web/json", &["json"]),
            ("node-0/web", Some("json"))
        );
        assert_eq!(
            split_name_action("web/attach/ws", &["attach/ws", "attach"]),
            ("web", Some("attach/ws"))
        );
        assert_eq!(split_name_action("json", &["json"]), ("json", None));
        assert_eq!(split_name_action("abc", &["json"]), ("abc", None));
    }

    #[test]
    fn boolean_query_values_follow_docker() {
        let q: HashMap<String, String> = [("a", "1"), ("b", "false"), ("c", ""), ("d", "None")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(query_bool(&q, "a"));
        assert!(!query_bool(&q, "b"));
        assert!(!query_bool(&q, "c"));
        assert!(!query_bool(&q, "d"));
        assert!(!query_bool(&q, "zz"));
    }
}
