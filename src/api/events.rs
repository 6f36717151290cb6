//! `/events`: the merged event stream of every engine, answered from the cluster's event bus
//! (SPEC §5.8) with the replay since `since`, the client's filters applied, until `until` or
//! shutdown. No engine is contacted here. This module owns the filtering and the pacing of one
//! listener's stream (byte-bounded by the bus); it must not import another handler module.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue};

use super::error::{no_such_route, ApiError, ApiResult};
use super::filters::Filters;
use super::state::AppState;
use crate::cluster::events::ClusterEvent;

/// Parses a Docker timestamp (`1700000000`, `1700000000.5`, or RFC 3339) into nanoseconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t.timestamp_nanos_opt();
    }
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn event_matches(ev: &ClusterEvent, filters: &Filters) -> bool {
    let kind = ev.kind();
    let needs_attributes = [
        "node",
        "container",
        "image",
        "volume",
        "network",
        "daemon",
        "label",
    ]
    .iter()
    .any(|k| filters.has(k));
    let attributes = if needs_attributes {
        ev.attributes()
    } else {
        Default::default()
    };
    let attr = |k: &str| attributes.get(k).map(String::as_str).unwrap_or("");
    if !filters.match_any("type", |v| v == kind) {
        return false;
    }
    if !filters.match_any("event", |v| {
        v == ev.action() || ev.action().starts_with(&format!("{v}:"))
    }) {
        return false;
    }
    if !filters.match_any("scope", |v| ev.scope() == v) {
        return false;
    }
    if !filters.match_any("node", |v| attr("node.name") == v || attr("node.id") == v) {
        return false;
    }
    let actor = ev.actor_id();
    if filters.has("container")
        && !(kind == "container"
            && filters.match_any("container", |v| {
                actor == v || actor.starts_with(v) || attr("name") == v
            }))
    {
        return false;
    }
    if filters.has("image") {
        let image = if kind == "image" {
            actor
        } else {
            attr("image")
        };
        let from = ev.from();
        let ok = (kind == "image" || kind == "container")
            && filters.match_any("image", |v| {
                image == v
                    || attr("name") == v
                    || from.split(" node:").next() == Some(v)
                    || image.split(':').next() == Some(v)
            });
        if !ok {
            return false;
        }
    }
    for (key, kind_name) in [
        ("volume", "volume"),
        ("network", "network"),
        ("daemon", "daemon"),
    ] {
        if filters.has(key)
            && !(kind == kind_name && filters.match_any(key, |v| actor == v || attr("name") == v))
        {
            return false;
        }
    }
    if filters.has("label") {
        let ok = filters.match_all("label", |v| match v.split_once('=') {
            Some((k, val)) => attributes.get(k).map(String::as_str) == Some(val),
            None => attributes.contains_key(v),
        });
        if !ok {
            return false;
        }
    }
    true
}

/// `GET /events?since=&until=&filters=`: the merged stream, one JSON object per line.
///
/// The body pulls from the listener's bounded queue only when the connection asks for more, so
/// a client that stops reading holds no more than its queue (the bus's per-listener budget)
/// and the connection's own write buffer. When the bus drops it for falling behind, the body
/// ends after what was already written.
pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    extensions: http::Extensions,
) -> ApiResult<Response> {
    let parse = |key: &str| -> ApiResult<Option<i64>> {
        match q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(text) => parse_timestamp(text)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value for {key}: {text}"))),
        }
    };
    let since = parse("since")?;
    let until = parse("until")?;
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;

    let who = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "an /events client".to_string());
    let bus = state.cluster.bus().clone();
    let (replay, live) = bus.subscribe(since, &who);
    let deadline = until.map(|u| {
        let now = crate::cluster::engine::now_nanos();
        tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
    });
    let stream = EventStream {
        replay: replay.into_iter(),
        live,
        filters,
        until,
        deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        shutdown: state.shutdown.clone(),
        finished: false,
        _guard: bus.listener_guard(),
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), stream))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Events already queued are written together up to this size, so bursts of small events cost
/// one write rather than one each; a larger event goes out alone, as the bus's shared bytes.
const EVENTS_CHUNK: usize = 64 << 10;

/// One `/events` response: the replay, then the live subscription, filtered, until `until`.
struct EventStream {
    replay: std::vec::IntoIter<Arc<ClusterEvent>>,
    live: crate::cluster::events::Subscription,
    filters: Filters,
    until: Option<i64>,
    /// When `until` is reached, for a stream that would otherwise wait for events.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    shutdown: tokio_util::sync::CancellationToken,
    /// `until` was passed: the next call ends the stream.
    finished: bool,
    _guard: crate::cluster::events::ListenerGuard,
}

impl EventStream {
    /// The next event that passes the filters, with those queued behind it up to
    /// [`EVENTS_CHUNK`]; `None` when the stream ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let mut lines: Vec<Bytes> = Vec::new();
        let mut size = 0;
        while !self.finished && size < EVENTS_CHUNK {
            let next = if lines.is_empty() {
                self.next_event().await
            } else {
                self.replay.next().or_else(|| self.live.try_recv())
            };
            let Some(ev) = next else { break };
            if self.until.is_some_and(|u| ev.time_nano > u) {
                self.finished = true;
            } else if event_matches(&ev, &self.filters) {
                size += ev.line().len();
                lines.push(ev.line());
            }
        }
        match lines.len() {
            0 => None,
            1 => lines.pop(),
            _ => Some(Bytes::from(lines.concat())),
        }
    }

    /// The next event of the replay or the live stream, waiting for one; `None` when the
    /// stream ends (shutdown, `until` reached, or the listener dropped by the bus).
    async fn next_event(&mut self) -> Option<Arc<ClusterEvent>> {
        if let Some(ev) = self.replay.next() {
            return Some(ev);
        }
        let deadline = async {
            match self.deadline.as_mut() {
                Some(d) => d.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            _ = deadline => None,
            ev = self.live.recv() => match ev {
                Ok(ev) => Some(ev),
                Err(ended) => {
                    tracing::debug!(?ended, "Events stream ends");
                    None
                }
            },
        }
    }
}

/// The `/events` route.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/events", axum::routing::get(events))
        .method_not_allowed_fallback(no_such_route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_docker_form() {
        assert_eq!(parse_timestamp("10"), Some(10_000_000_000));
        assert_eq!(parse_timestamp("10.5"), Some(10_500_000_000));
        assert_eq!(parse_timestamp("10.000000001"), Some(10_000_000_001));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:10Z"),
            Some(10_000_000_000)
        );
        assert_eq!(parse_timestamp("soon"), None);
        assert_eq!(parse_timestamp("1.x"), None);
    }
}
