//! What `docker ps` shows (SPEC §5.6): which containers a list request selects (its filters,
//! checked and compiled once) and how each selected container is written: names prefixed with
//! their node, a status recomputed now, unspecified port addresses replaced by the node's, the
//! rest of the engine's entry copied as it was serialised. An answer is a pure function of the
//! cluster's snapshots, the query and the current second ([`ListSnapshot`]): the last one is
//! kept and shared by every request that reads an equal snapshot, and requests that arrive
//! while it renders wait for it ([`ListShare`]). This module renders and shares; the handler
//! in [`super::containers`] decides what to select and in which order, and this module must
//! not import a handler module.
use std::collections::HashMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use regex::Regex;

use super::error::{ApiError, ApiResult};
use super::filters::{label_filter_matches, Filters};
use crate::cluster::cache::listing::{
    render_fixed, write_json_str, write_names, write_state_and_ports, NodeText,
};
use crate::cluster::cache::{Container, EngineCache, StateKind};
use crate::cluster::{Engine, EngineMaps, EngineSpecs, EngineState};
use crate::scheduler::expr::user_regex;

/// Docker's human duration (`Less than a second`, `5 seconds`, `About a minute`, …).
pub fn human_duration(secs: i64) -> String {
    let mut out = Vec::new();
    write_duration(&mut out, secs);
    String::from_utf8(out).expect("durations are ASCII")
}

/// Appends [`human_duration`] of `secs`: a list writes one per entry, so nothing is allocated.
fn write_duration(out: &mut Vec<u8>, secs: i64) {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = s / 3600;
    let (count, unit): (i64, &[u8]) = if s < 1 {
        return out.extend_from_slice(b"Less than a second");
    } else if s == 1 {
        return out.extend_from_slice(b"1 second");
    } else if s < 60 {
        (s, b" seconds")
    } else if minutes == 1 {
        return out.extend_from_slice(b"About a minute");
    } else if minutes < 60 {
        (minutes, b" minutes")
    } else if hours == 1 {
        return out.extend_from_slice(b"About an hour");
    } else if hours < 48 {
        (hours, b" hours")
    } else if hours < 24 * 7 * 2 {
        (hours / 24, b" days")
    } else if hours < 24 * 30 * 2 {
        (hours / 24 / 7, b" weeks")
    } else if hours < 24 * 365 * 2 {
        (hours / 24 / 30, b" months")
    } else {
        (hours / 24 / 365, b" years")
    };
    out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
    out.extend_from_slice(unit);
}

/// The `Status` column of `docker ps`, recomputed now from the cached state.
pub fn status_text(c: &Container, engine_healthy: bool, now: i64) -> String {
    if !words_status(c, engine_healthy) {
        return c.list_status().to_string();
    }
    let mut out = Vec::new();
    write_status_body(&mut out, c, engine_healthy, now);
    String::from_utf8(out).expect("status texts are ASCII")
}

/// The container states Docker knows: the `status` filter's values, and the states whose
/// status the manager words itself.
const STATES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Whether the manager words the status itself, or passes on the engine's (for a state it
/// does not know).
fn words_status(c: &Container, engine_healthy: bool) -> bool {
    !engine_healthy || c.state_kind() != StateKind::Other
}

/// Appends the `Status` column as a JSON string.
fn write_status(out: &mut Vec<u8>, c: &Container, engine_healthy: bool, now: i64) {
    if !words_status(c, engine_healthy) {
        return write_json_str(out, c.list_status());
    }
    out.push(b'"');
    write_status_body(out, c, engine_healthy, now);
    out.push(b'"');
}

/// Appends the status the manager words itself (ASCII with nothing to escape).
fn write_status_body(out: &mut Vec<u8>, c: &Container, engine_healthy: bool, now: i64) {
    if !engine_healthy {
        return out.extend_from_slice(b"Host Down");
    }
    let st = &c.details.state;
    let state = c.state_kind();
    let since = |out: &mut Vec<u8>, t: Option<i64>| match t {
        Some(t) => write_duration(out, now - t),
        None => out.extend_from_slice(b"Less than a second"),
    };
    let exit_code = |out: &mut Vec<u8>| {
        out.extend_from_slice(b" (");
        out.extend_from_slice(itoa::Buffer::new().format(st.exit_code).as_bytes());
        out.push(b')');
    };
    match state {
        StateKind::Running | StateKind::Paused => {
            out.extend_from_slice(b"Up ");
            since(out, c.details.started_secs);
            if st.paused || state == StateKind::Paused {
                out.extend_from_slice(b" (Paused)");
            } else {
                match c.details.health() {
                    Some("starting") => out.extend_from_slice(b" (health: starting)"),
                    Some("healthy") => out.extend_from_slice(b" (healthy)"),
                    Some("unhealthy") => out.extend_from_slice(b" (unhealthy)"),
                    _ => {}
                }
            }
        }
        StateKind::Restarting => {
            out.extend_from_slice(b"Restarting");
            exit_code(out);
            out.push(b' ');
            since(out, c.details.finished_secs);
            out.extend_from_slice(b" ago");
        }
        StateKind::Removing => out.extend_from_slice(b"Removal In Progress"),
        StateKind::Dead => out.extend_from_slice(b"Dead"),
        StateKind::Created => out.extend_from_slice(b"Created"),
        // `Other` is worded only for an engine that is down, handled above.
        StateKind::Exited | StateKind::Other => {
            out.extend_from_slice(b"Exited");
            exit_code(out);
            if let Some(t) = c.details.finished_secs {
                out.push(b' ');
                write_duration(out, now - t);
                out.extend_from_slice(b" ago");
            }
        }
    }
}

/// Appends one `docker ps` entry, rendered whole: the engine's entry with node-prefixed names,
/// a fresh status and the node IP in place of unspecified port addresses, then the
/// pre-serialised rest of the engine's entry. The reference for [`write_entry`].
fn write_entry_whole(out: &mut Vec<u8>, c: &Container, node: &NodeText, now: i64) {
    write_names(out, c, node);
    write_status(out, c, node.healthy, now);
    write_state_and_ports(out, c, node);
    out.extend_from_slice(c.static_json.as_bytes());
    out.push(b'}');
}

/// Appends one `docker ps` entry, the same bytes as [`write_entry_whole`]: the parts that do
/// not vary are rendered once per record and copied from then on, so a request only words the
/// status and copies. A record rendered under another node name or address (the engine was
/// renamed) is rendered whole each time.
fn write_entry(out: &mut Vec<u8>, c: &Container, node: &NodeText, now: i64) {
    let fixed = c.list_render.get_or_init(|| render_fixed(c, node));
    if fixed.node_key != node.key {
        return write_entry_whole(out, c, node, now);
    }
    out.extend_from_slice(&fixed.bytes[..fixed.split]);
    write_status(out, c, node.healthy, now);
    out.extend_from_slice(&fixed.bytes[fixed.split..]);
    out.extend_from_slice(c.static_json.as_bytes());
    out.push(b'}');
}

/// One node's share of a list: how its entries are prefixed, and the snapshot they are read
/// from (held until the list is written, so positions in it stay valid).
pub struct NodeList {
    pub node: NodeText,
    pub cache: Arc<EngineCache>,
}

/// One container selected for a list: its position in its node's snapshot
/// ([`ContainerIndex::all`](crate::cluster::cache::ContainerIndex::all)) and the key it is
/// ordered by, kept inline so that sorting never follows a pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selected {
    pub created_ns: i64,
    pub node: u32,
    pub pos: u32,
}

impl Selected {
    /// Sorts newest first (ties by node, then by ID), as `docker ps` lists.
    pub fn sort_newest_first(list: &mut [Selected]) {
        list.sort_unstable_by_key(|s| (std::cmp::Reverse(s.created_ns), s.node, s.pos));
    }
}

/// How much of a list is written per chunk.
const LIST_CHUNK: usize = 256 * 1024;

/// Writes the whole list, `selected` (each with the index of its node in `nodes`) in order, in
/// chunks of about [`LIST_CHUNK`] handed to `emit` as each is full, each written into a buffer
/// from `buffer` (empty, of any capacity).
fn write_list(
    selected: &[Selected],
    nodes: &[NodeList],
    now: i64,
    mut buffer: impl FnMut() -> Vec<u8>,
    mut emit: impl FnMut(Vec<u8>),
) {
    let all: Vec<&[Arc<Container>]> = nodes.iter().map(|n| n.cache.index().all()).collect();
    let mut out = buffer();
    out.push(b'[');
    for (i, s) in selected.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let node = &nodes[s.node as usize];
        write_entry(
            &mut out,
            &all[s.node as usize][s.pos as usize],
            &node.node,
            now,
        );
        if out.len() >= LIST_CHUNK {
            emit(std::mem::replace(&mut out, buffer()));
        }
    }
    out.extend_from_slice(b"]\n");
    emit(out);
}

/// A new chunk buffer: room for a chunk and the entry that overflows it.
fn new_chunk_buffer() -> Vec<u8> {
    Vec::with_capacity(LIST_CHUNK + 4096)
}

/// One engine as a list reads it: its container snapshot, its specs (node name and address)
/// and its health, each read once, so that an answer and the key it is kept under agree.
pub struct EngineView {
    pub engine: Arc<Engine>,
    pub cache: Arc<EngineCache>,
    specs: Option<Arc<EngineSpecs>>,
    pub healthy: bool,
}

impl EngineView {
    /// Whether `other` lists the same: the same engine with the same container map, specs and
    /// health. Snapshots are published whole, so pointers tell; the views hold what they point
    /// at, so an address is never reused while it is compared.
    fn same(&self, other: &EngineView) -> bool {
        let same_specs = match (&self.specs, &other.specs) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        Arc::ptr_eq(&self.engine, &other.engine)
            && Arc::ptr_eq(&self.cache.containers, &other.cache.containers)
            && same_specs
            && self.healthy == other.healthy
    }

    /// How this engine's entries are prefixed.
    pub fn node_text(&self) -> NodeText {
        match &self.specs {
            Some(s) => NodeText::of(&s.name, s.ip.clone(), self.healthy),
            None => NodeText::of("(unknown)", String::new(), self.healthy),
        }
    }
}

/// Everything a list answer is a function of: the membership, each engine's view, the query
/// and the current second (status texts such as `Up 5 minutes` change per second, no finer).
/// Two requests with equal snapshots get the same bytes.
pub struct ListSnapshot {
    maps: Arc<EngineMaps>,
    pub engines: Vec<EngineView>,
    query: Vec<(String, String)>,
    pub now: i64,
}

impl ListSnapshot {
    /// Reads the validated engines of `maps` for a list asked with `query`.
    pub fn take(maps: Arc<EngineMaps>, query: &HashMap<String, String>) -> ListSnapshot {
        let engines = maps
            .validated
            .values()
            .map(|engine| EngineView {
                cache: engine.cache(),
                specs: engine.specs(),
                healthy: engine.state() == EngineState::Healthy,
                engine: engine.clone(),
            })
            .collect();
        let mut query: Vec<(String, String)> =
            query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        query.sort_unstable();
        ListSnapshot {
            maps,
            engines,
            query,
            now: chrono::Utc::now().timestamp(),
        }
    }

    /// Whether `other` gets the same answer: O(engines) pointer compares, nothing rendered.
    fn same(&self, other: &ListSnapshot) -> bool {
        self.now == other.now
            && Arc::ptr_eq(&self.maps, &other.maps)
            && self.query == other.query
            && self.engines.len() == other.engines.len()
            && self
                .engines
                .iter()
                .zip(&other.engines)
                .all(|(a, b)| a.same(b))
    }
}

/// The largest answer kept for sharing (256 MiB); a larger one is rendered for each request.
/// One answer is kept at a time, so this is also what sharing costs in memory at most, plus
/// the snapshots its key holds until the next render replaces it.
const KEPT_MAX: usize = 256 * 1024 * 1024;

/// The last answer rendered, with what it was rendered from.
struct Kept {
    snapshot: ListSnapshot,
    chunks: Arc<[Bytes]>,
}

/// What the list path keeps between requests: the last answer, and the buffers of earlier
/// answers that no client reads any more. A render writes into those buffers before it asks
/// for new memory: memory the process has not touched yet costs the kernel a fault per page
/// (measured: about 18 ms for a 24 MB list, as long as the render itself), memory written
/// before costs nothing more.
struct Lists {
    kept: Option<Kept>,
    spare: Vec<Vec<u8>>,
}

impl Lists {
    /// Lets the kept answer go, and takes back as spare every chunk of it that no client still
    /// holds. Spare buffers never add up to more than [`KEPT_MAX`].
    fn retire(&mut self) {
        let Some(Kept {
            snapshot,
            mut chunks,
        }) = self.kept.take()
        else {
            return;
        };
        drop(snapshot);
        let Some(chunks) = Arc::get_mut(&mut chunks) else {
            return;
        };
        let mut room = KEPT_MAX.saturating_sub(self.spare_bytes());
        for chunk in chunks.iter_mut() {
            let Some(buffer) = reclaim(std::mem::take(chunk)) else {
                continue;
            };
            if buffer.capacity() > room {
                break;
            }
            room -= buffer.capacity();
            self.spare.push(buffer);
        }
    }

    /// The capacity of the spare buffers.
    fn spare_bytes(&self) -> usize {
        self.spare.iter().map(Vec::capacity).sum()
    }
}

/// What a list of every container of `maps` weighs, about: each record's fixed parts and
/// pass-through members, plus room for a status.
fn list_bytes(maps: &EngineMaps) -> usize {
    maps.validated
        .values()
        .map(|engine| {
            let cache = engine.cache();
            cache
                .containers
                .values()
                .map(|c| {
                    let fixed = c.list_render.get().map_or(FIXED_GUESS, |r| r.bytes.len());
                    fixed + c.static_json.len() + STATUS_ROOM
                })
                .sum::<usize>()
        })
        .sum()
}

/// What a record's fixed parts are taken to weigh before they are rendered.
const FIXED_GUESS: usize = 160;
/// Room for a status text and the separators around an entry.
const STATUS_ROOM: usize = 40;

/// Makes ready, once every engine of the start is validated, the buffers a list of every
/// container will be written into: written once now, so that the first `docker ps` after a
/// start is not the one that pays for fresh memory (a list of 24 MB is rendered in about
/// 13 ms into memory written before, 31 ms into new memory). The buffers are what the kept
/// answer holds after any list anyway, and never more than [`KEPT_MAX`].
pub async fn warm_buffers(maps: Arc<EngineMaps>) {
    let mut lists = LISTS.lock().await;
    let done = tokio::task::spawn_blocking(move || {
        let wanted = list_bytes(&maps).min(KEPT_MAX);
        let kept: usize = lists
            .kept
            .as_ref()
            .map_or(0, |k| k.chunks.iter().map(Bytes::len).sum());
        let mut have = kept + lists.spare_bytes();
        while have < wanted {
            let mut buffer = new_chunk_buffer();
            // Written, not only reserved: the kernel gives pages at their first write.
            buffer.resize(buffer.capacity(), 0);
            buffer.clear();
            have += buffer.capacity();
            lists.spare.push(buffer);
        }
        have
    })
    .await;
    if let Ok(bytes) = done {
        tracing::debug!(bytes, "container list buffers ready");
    }
}

/// The buffer under `chunk`, emptied, when nothing else holds it.
fn reclaim(chunk: Bytes) -> Option<Vec<u8>> {
    let mut buffer = chunk.try_into_mut().ok()?;
    // Emptied first, so that taking the vector back moves no bytes.
    buffer.clear();
    Some(Vec::from(buffer))
}

/// What this process keeps for lists. Clusters never share an answer: its key holds the
/// cluster's membership, compared by pointer.
static LISTS: tokio::sync::Mutex<Lists> = tokio::sync::Mutex::const_new(Lists {
    kept: None,
    spare: Vec::new(),
});

/// The right to answer a list: held from reading the snapshot to keeping the answer, so that
/// requests arriving while a list renders wait for it and share it (one render per change and
/// second, however many clients ask).
pub struct ListShare(tokio::sync::MutexGuard<'static, Lists>);

impl ListShare {
    /// Waits for lists in progress: each is a bounded render of the cache, nothing outside the
    /// process.
    pub async fn lock() -> ListShare {
        ListShare(LISTS.lock().await)
    }

    /// The kept answer, when it was rendered from a snapshot equal to `snapshot`.
    pub fn kept(&self, snapshot: &ListSnapshot) -> Option<Response> {
        let kept = self.0.kept.as_ref().filter(|k| k.snapshot.same(snapshot))?;
        tracing::debug!(chunks = kept.chunks.len(), "container list shared");
        let chunks = kept.chunks.clone();
        let stream = futures_util::stream::iter(
            (0..chunks.len()).map(move |i| Ok::<_, std::convert::Infallible>(chunks[i].clone())),
        );
        Some(list_response(axum::body::Body::from_stream(stream)))
    }

    /// Renders `selected` (each with the index of its node in `nodes`, in the order given) as
    /// read in `snapshot`, keeps it for the requests that follow and answers with it. The
    /// client is sent each chunk as it is written; the render never waits for the client
    /// (the chunks are kept anyway), so a slow reader holds up no other list.
    pub fn render(
        self,
        snapshot: ListSnapshot,
        selected: Vec<Selected>,
        nodes: Vec<NodeList>,
    ) -> Response {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let mut lists = self.0;
        tokio::task::spawn_blocking(move || {
            // The new answer replaces the old: its snapshots are let go before rendering, and
            // its buffers are written again.
            lists.retire();
            let started = tokio::time::Instant::now();
            let mut spare = std::mem::take(&mut lists.spare);
            let mut chunks = Vec::new();
            let mut bytes = 0;
            write_list(
                &selected,
                &nodes,
                snapshot.now,
                || spare.pop().unwrap_or_else(new_chunk_buffer),
                |chunk| {
                    let chunk = Bytes::from(chunk);
                    bytes += chunk.len();
                    // A client that has gone away still leaves the answer to the others.
                    let _ = tx.send(chunk.clone());
                    chunks.push(chunk);
                },
            );
            drop(tx);
            tracing::debug!(
                entries = selected.len(),
                bytes,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "container list rendered"
            );
            // Buffers this answer did not need stay spare for a longer one.
            lists.spare = spare;
            if bytes <= KEPT_MAX {
                lists.kept = Some(Kept {
                    snapshot,
                    chunks: chunks.into(),
                });
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(chunk), rx))
        });
        list_response(axum::body::Body::from_stream(stream))
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
            if !STATES.contains(&status.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={status}': must be one of {}",
                    STATES.join(", ")
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

/// The `docker ps` answer with `body`.
fn list_response(body: axum::body::Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
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
    fn a_chunk_no_one_holds_gives_back_its_buffer_and_a_shared_one_does_not() {
        let mut buffer = new_chunk_buffer();
        buffer.extend_from_slice(b"[{\"Id\":\"abc\"}]");
        let (at, capacity) = (buffer.as_ptr(), buffer.capacity());
        let chunk = Bytes::from(buffer);
        let held = chunk.clone();
        assert!(reclaim(chunk).is_none(), "a client still holds it");
        let back = reclaim(held).expect("no one else holds it");
        assert_eq!(
            (back.as_ptr(), back.capacity(), back.len()),
            (at, capacity, 0)
        );
    }

    #[test]
    fn retiring_an_answer_keeps_its_buffers_within_the_bound() {
        let chunks: Vec<Bytes> = (0..3)
            .map(|_| {
                let mut buffer = new_chunk_buffer();
                buffer.push(b'x');
                Bytes::from(buffer)
            })
            .collect();
        let held = chunks[1].clone();
        let maps = Arc::new(EngineMaps::default());
        let mut lists = Lists {
            kept: Some(Kept {
                snapshot: ListSnapshot::take(maps, &HashMap::new()),
                chunks: chunks.into(),
            }),
            spare: Vec::new(),
        };
        lists.retire();
        assert!(lists.kept.is_none());
        assert_eq!(
            lists.spare.len(),
            2,
            "the chunk a client holds stays with it"
        );
        assert!(lists.spare.iter().all(|b| b.is_empty()));
        drop(held);
    }

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
        let node = NodeText::with("node-1".into(), "10.0.0.5".into(), true);
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

    /// A container in `state` with the given inspect extras, built the way a refresh builds it.
    fn record(i: usize, state: &str, health: Option<&str>, ports: &str) -> Container {
        use crate::cluster::cache::{entry_hash, ContainerDetails};
        let raw = format!(
            r#"{{"Id":"c{i}","Names":["/web-{i}","/other/\"alias{i}"],"Image":"busybox",
            "State":"{state}","Status":"Engine says {i}","Ports":[{ports}],"Labels":{{"n":"{i}"}},
            "Created":{i}}}"#
        );
        let health = health
            .map(|h| format!(r#","Health":{{"Status":"{h}"}}"#))
            .unwrap_or_default();
        let inspect = format!(
            r#"{{"Name":"/web-{i}","State":{{"Status":"{state}","Paused":{paused},"ExitCode":{code},
            "StartedAt":"2020-01-01T00:00:00Z","FinishedAt":"2020-01-01T01:00:00Z"{health}}}}}"#,
            paused = state == "paused",
            code = i % 3,
        );
        Container::new(
            serde_json::from_str(&raw).unwrap(),
            ContainerDetails::from_inspect(inspect.as_bytes()).unwrap(),
            entry_hash(raw.as_bytes()),
        )
    }

    #[test]
    fn pre_rendered_entries_write_the_same_bytes_as_whole_rendering() {
        let states: Vec<&str> = STATES.iter().copied().chain(["unknown"]).collect();
        let healths = [None, Some("starting"), Some("healthy"), Some("unhealthy")];
        let ports = [
            "",
            r#"{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}"#,
            r#"{"IP":"::","PrivatePort":53,"PublicPort":0,"Type":"udp"},{"PrivatePort":1,"Type":"tcp"}"#,
        ];
        let nodes = [
            NodeText::with("node-1".into(), "10.0.0.5".into(), true),
            NodeText::with(r#"we\"ird"#.into(), String::new(), false),
        ];
        let start = 1_577_836_800;
        let mut compared = 0;
        for i in 0..states.len() * healths.len() * ports.len() {
            let c = record(
                i,
                states[i % states.len()],
                healths[i / states.len() % healths.len()],
                ports[i % ports.len()],
            );
            // The first node renders the record's fixed parts; the second, as after a rename,
            // finds them rendered for another node.
            for node in &nodes {
                for now in [
                    start,
                    start + 1,
                    start + 59,
                    start + 3 * 3600,
                    start + 400 * 86400,
                ] {
                    let (mut fast, mut whole) = (Vec::new(), Vec::new());
                    write_entry(&mut fast, &c, node, now);
                    write_entry_whole(&mut whole, &c, node, now);
                    assert_eq!(
                        String::from_utf8(fast).unwrap(),
                        String::from_utf8(whole.clone()).unwrap()
                    );
                    let v: Value = serde_json::from_slice(&whole).unwrap();
                    assert_eq!(v["Status"], status_text(&c, node.healthy, now));
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 96 * 2 * 5);
    }

    #[test]
    fn statuses_read_like_docker_ps() {
        let start = 1_577_836_800;
        let status = |state, health, now| status_text(&record(4, state, health, ""), true, now);
        assert_eq!(status("running", None, start + 300), "Up 5 minutes");
        assert_eq!(
            status("running", Some("healthy"), start),
            "Up Less than a second (healthy)"
        );
        assert_eq!(
            status("running", Some("starting"), start + 1),
            "Up 1 second (health: starting)"
        );
        assert_eq!(
            status("paused", Some("healthy"), start + 60),
            "Up About a minute (Paused)"
        );
        assert_eq!(
            status("restarting", None, start + 3600 + 7),
            "Restarting (1) 7 seconds ago"
        );
        assert_eq!(
            status("exited", None, start + 2 * 3600),
            "Exited (1) About an hour ago"
        );
        assert_eq!(status("removing", None, start), "Removal In Progress");
        assert_eq!(status("dead", None, start), "Dead");
        assert_eq!(status("created", None, start), "Created");
        assert_eq!(status("unknown", None, start), "Engine says 4");
        assert_eq!(
            status_text(&record(4, "running", None, ""), false, start),
            "Host Down"
        );
        let never_finished = {
            use crate::cluster::cache::{entry_hash, ContainerDetails};
            let raw = r#"{"Id":"x","State":"exited"}"#;
            let details =
                ContainerDetails::from_inspect(br#"{"State":{"Status":"exited","ExitCode":137}}"#)
                    .unwrap();
            Container::new(
                serde_json::from_str(raw).unwrap(),
                details,
                entry_hash(raw.as_bytes()),
            )
        };
        assert_eq!(status_text(&never_finished, true, start), "Exited (137)");
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
