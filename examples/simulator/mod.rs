//! An engine simulator for scale runs and fault injection: one process serves many simulated
//! Docker engines, each on its own loopback port, speaking enough of the Engine API for a
//! manager to validate, refresh, watch events, list, inspect, create, start, stop and remove
//! containers. It is not a Docker engine: containers are records, nothing runs.
//!
//! Faults per engine: refuse connections (the port closes), hang (connections are accepted and
//! never answered), break the events stream, add latency to every answer, and come back.
//!
//! Bodies look like dockerd 20.10's (`payloads`): every key, the same nesting and sizes,
//! derived from each container's create request. They are rendered once per change and kept as
//! bytes, so a list is a copy of cached entries and a large fleet costs little CPU per request.
//! Memory: about 2.5 kB per container (its record and list entry; seeded containers share one
//! spec), plus 5 kB for each container inspected since its last change, plus about 10 kB per
//! engine (its `EVENT_BUFFER` stream slots and at most `EVENT_HISTORY` kept events).
#![allow(dead_code)]

mod payloads;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use payloads::EnginePaths;
use payloads::{Attachment, ContainerSpec, ContainerView, Endpoint, SimNetwork};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// How a simulated engine behaves right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers normally.
    Up = 0,
    /// Its port is closed: connections are refused.
    Refuse = 1,
    /// Connections are accepted and never answered.
    Hang = 2,
}

/// How many past events each engine keeps for `GET /events?since=…`. Engines of a large fleet
/// each hold at most this many (a few hundred bytes apiece); raise it for longer replays.
const EVENT_HISTORY: usize = 16;

/// Events an open stream may fall behind by before it skips ahead.
const EVENT_BUFFER: usize = 256;

/// One simulated container: what it was created with, where it is in its life, and its
/// bodies rendered once per change.
#[derive(Debug, Clone)]
struct SimContainer {
    id: String,
    name: String,
    /// Shared by the seeded containers, which all run the same command.
    spec: Arc<ContainerSpec>,
    state: &'static str,
    created_nanos: i64,
    started_at: String,
    finished_at: String,
    exit_code: i64,
    pid: i64,
    layer_id: String,
    attachment: Attachment,
    /// `GET /containers/json` entry, rendered at the last change.
    list_entry: Bytes,
    /// `GET /containers/{id}/json`, rendered at the first inspect after a change: most
    /// containers of a large fleet are never inspected, so they never pay for the 5 kB.
    inspect: OnceLock<Bytes>,
}

impl SimContainer {
    fn view<'a>(&'a self, paths: &'a EnginePaths) -> ContainerView<'a> {
        ContainerView {
            id: &self.id,
            name: &self.name,
            spec: &self.spec,
            state: self.state,
            created_nanos: self.created_nanos,
            started_at: &self.started_at,
            finished_at: &self.finished_at,
            exit_code: self.exit_code,
            pid: self.pid,
            layer_id: &self.layer_id,
            attachment: &self.attachment,
            paths,
        }
    }

    /// Re-renders after a change.
    fn rendered(mut self, paths: &EnginePaths) -> Self {
        let entry = payloads::list_entry(&self.view(paths), now_secs());
        self.list_entry = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        self.inspect = OnceLock::new();
        self
    }

    fn inspect_body(&self, paths: &EnginePaths) -> Bytes {
        self.inspect
            .get_or_init(|| {
                Bytes::from(
                    serde_json::to_vec(&payloads::inspect(&self.view(paths))).unwrap_or_default(),
                )
            })
            .clone()
    }
}

/// Networks, volumes and the `/info` body of one engine, which change together with its
/// containers.
struct EngineState {
    networks: Vec<SimNetwork>,
    /// Named volumes and their creation times.
    volumes: Vec<(String, String)>,
    /// `/info` split around `SystemTime`, rendered at the last container change.
    info: Option<(Bytes, Bytes)>,
    next_pid: i64,
}

/// One simulated engine.
pub struct SimEngine {
    pub index: usize,
    pub daemon_id: String,
    pub name: String,
    pub addr: SocketAddr,
    paths: EnginePaths,
    containers: Mutex<BTreeMap<String, SimContainer>>,
    state: Mutex<EngineState>,
    events: broadcast::Sender<Arc<String>>,
    /// The last [`EVENT_HISTORY`] events with their times, for `since`/`until` replays.
    history: Mutex<VecDeque<(i64, Arc<String>)>>,
    mode: AtomicU8,
    latency_ms: AtomicU64,
    /// Bumped to end every open events stream of this engine.
    events_epoch: watch::Sender<u64>,
    /// Tells the accept loop about mode changes.
    mode_tx: watch::Sender<Mode>,
    requests: AtomicU64,
}

/// The fleet of simulated engines.
pub struct SimFleet {
    pub engines: Vec<Arc<SimEngine>>,
}

fn now_secs() -> i64 {
    now_nanos() / 1_000_000_000
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn random_hex(n: usize) -> String {
    let mut s = String::with_capacity(n);
    while s.len() < n {
        s.push_str(&format!("{:032x}", rand::random::<u128>()));
    }
    s.truncate(n);
    s
}

/// A daemon ID in dockerd's form: twelve groups of four base-32 characters.
fn daemon_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..12)
        .map(|_| {
            (0..4)
                .map(|_| ALPHABET[rand::random::<u8>() as usize % 32] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The three networks every engine starts with.
fn default_networks() -> Vec<SimNetwork> {
    let created = payloads::rfc3339_nanos(now_nanos());
    [
        ("none", "null", None),
        ("host", "host", None),
        ("bridge", "bridge", Some(17)),
    ]
    .into_iter()
    .map(|(name, driver, subnet)| SimNetwork {
        name: name.into(),
        id: random_hex(64),
        driver,
        created: created.clone(),
        subnet,
        last_host: 1,
    })
    .collect()
}

impl SimFleet {
    /// Starts `n` engines with `containers` running containers each, on free loopback ports.
    pub async fn start(n: usize, containers: usize) -> std::io::Result<SimFleet> {
        Self::start_with_paths(n, containers, EnginePaths::default()).await
    }

    /// Like [`SimFleet::start`], with the engines' data and exec roots set to `paths`, so the
    /// paths in their bodies are as long as another engine's.
    pub async fn start_with_paths(
        n: usize,
        containers: usize,
        paths: EnginePaths,
    ) -> std::io::Result<SimFleet> {
        let seeded = Arc::new(ContainerSpec::seeded());
        let mut engines = Vec::with_capacity(n);
        for index in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            // Each slot costs memory up front in every engine; a stream that falls this far
            // behind skips ahead, as a slow reader of dockerd's stream would lose events.
            let (events, _) = broadcast::channel(EVENT_BUFFER);
            let (events_epoch, _) = watch::channel(0);
            let (mode_tx, _) = watch::channel(Mode::Up);
            let engine = Arc::new(SimEngine {
                index,
                daemon_id: daemon_id(),
                name: format!("sim-{index}"),
                addr,
                paths: paths.clone(),
                containers: Mutex::new(BTreeMap::new()),
                state: Mutex::new(EngineState {
                    networks: default_networks(),
                    volumes: Vec::new(),
                    info: None,
                    next_pid: 100,
                }),
                events,
                history: Mutex::new(VecDeque::with_capacity(EVENT_HISTORY)),
                mode: AtomicU8::new(Mode::Up as u8),
                latency_ms: AtomicU64::new(0),
                events_epoch,
                mode_tx,
                requests: AtomicU64::new(0),
            });
            for i in 0..containers {
                let id = engine.insert_container(format!("c{i}"), seeded.clone());
                let an_hour_ago = now_nanos() - 3_600_000_000_000;
                engine.update(&id, |c| {
                    c.created_nanos = an_hour_ago;
                });
                engine.start_container(&id, an_hour_ago);
            }
            tokio::spawn(accept_loop(engine.clone(), Some(listener)));
            engines.push(engine);
        }
        Ok(SimFleet { engines })
    }

    /// `host:port` of every engine.
    pub fn addrs(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.addr.to_string()).collect()
    }

    /// A `nodes://` discovery URL for the whole fleet.
    pub fn nodes_url(&self) -> String {
        format!("nodes://{}", self.addrs().join(","))
    }

    /// Containers across the fleet.
    pub fn container_count(&self) -> usize {
        self.engines
            .iter()
            .map(|e| e.containers.lock().unwrap().len())
            .sum()
    }

    /// Emits `per_second` events across the fleet, one engine after the other, for as long as
    /// the future is polled. The events are `exec_start` of an existing container: a manager
    /// relays them and has nothing to re-read, so the rate measures the event path alone.
    pub async fn emit_events_steadily(&self, per_second: u32) {
        if per_second == 0 || self.engines.is_empty() {
            return std::future::pending().await;
        }
        // Ticks of 10 ms keep the stream smooth; the remainder of a second is spread over it.
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut next, mut owed) = (0usize, 0u32);
        loop {
            tick.tick().await;
            owed += per_second;
            while owed >= 100 {
                owed -= 100;
                self.engines[next % self.engines.len()].emit_exec_event();
                next = next.wrapping_add(1);
            }
        }
    }

    /// Requests answered across the fleet.
    pub fn requests(&self) -> u64 {
        self.engines
            .iter()
            .map(|e| e.requests.load(Ordering::Relaxed))
            .sum()
    }
}

impl SimEngine {
    /// Switches the engine's behaviour.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        let _ = self.mode_tx.send(mode);
        if mode != Mode::Up {
            self.break_events();
        }
    }

    /// Ends every open events stream (the manager must resubscribe).
    pub fn break_events(&self) {
        self.events_epoch.send_modify(|e| *e += 1);
    }

    /// Delays every answer by `ms`.
    pub fn set_latency(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::SeqCst);
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Refuse,
            2 => Mode::Hang,
            _ => Mode::Up,
        }
    }

    /// Number of containers.
    pub fn container_count(&self) -> usize {
        self.containers.lock().unwrap().len()
    }

    /// Emits a harmless event (for fan-in measurements).
    pub fn emit_test_event(&self) {
        self.emit(
            "image",
            "tag",
            "sha256:5151",
            json!({"name": "busybox:latest"}),
        );
    }

    /// Emits `exec_start` of one of the engine's containers (or of a made-up one if it has
    /// none), an event that changes nothing a manager keeps.
    pub fn emit_exec_event(&self) {
        let (id, name) = self
            .containers
            .lock()
            .unwrap()
            .values()
            .next()
            .map(|c| (c.id.clone(), c.name.clone()))
            .unwrap_or_else(|| ("0".repeat(64), "none".into()));
        self.emit(
            "container",
            "exec_start: sh",
            &id,
            json!({"name": name, "image": "busybox:latest", "execID": "5151"}),
        );
    }

    fn emit(&self, kind: &str, action: &str, id: &str, attrs: Value) {
        let t = now_nanos();
        let ev = json!({
            "status": action, "id": id, "from": attrs.get("image").and_then(Value::as_str).unwrap_or(""),
            "Type": kind, "Action": action, "Actor": {"ID": id, "Attributes": attrs},
            "scope": "local", "time": t / 1_000_000_000, "timeNano": t,
        });
        self.publish(t, ev);
    }

    /// Sends an event to every open stream and keeps it for replays.
    fn publish(&self, nanos: i64, event: Value) {
        let line = Arc::new(event.to_string());
        {
            let mut history = self.history.lock().unwrap();
            if history.len() == EVENT_HISTORY {
                history.pop_front();
            }
            history.push_back((nanos, line.clone()));
        }
        let _ = self.events.send(line);
    }

    fn container_event(&self, action: &str, c: &SimContainer) {
        let t = now_nanos();
        self.publish(
            t,
            payloads::container_event(action, &c.id, &c.name, &c.spec, t),
        );
    }

    /// Adds a created container and returns its ID; its network is resolved now, as dockerd
    /// does at create.
    fn insert_container(&self, name: String, spec: Arc<ContainerSpec>) -> String {
        let id = random_hex(64);
        let network = match spec.network_mode.as_str() {
            "default" => "bridge",
            other => other,
        };
        let attachment = {
            let mut state = self.state.lock().unwrap();
            for volume in spec.volume_names() {
                if !state.volumes.iter().any(|(n, _)| n == volume) {
                    let created =
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    state.volumes.push((volume.to_string(), created));
                }
            }
            state.info = None;
            let net = state
                .networks
                .iter()
                .find(|n| n.name == network || n.id == network);
            Attachment {
                network: net.map_or(network.to_string(), |n| n.name.clone()),
                network_id: net.map(|n| n.id.clone()).unwrap_or_default(),
                gateway: net.map(SimNetwork::gateway).unwrap_or_default(),
                endpoint: None,
                user_network: !matches!(network, "bridge" | "host" | "none"),
            }
        };
        let zero = payloads::ZERO_TIME.to_string();
        let c = SimContainer {
            id: id.clone(),
            name,
            spec,
            state: "created",
            created_nanos: now_nanos(),
            started_at: zero.clone(),
            finished_at: zero,
            exit_code: 0,
            pid: 0,
            layer_id: random_hex(64),
            attachment,
            list_entry: Bytes::new(),
            inspect: OnceLock::new(),
        }
        .rendered(&self.paths);
        self.containers.lock().unwrap().insert(id.clone(), c);
        id
    }

    /// Applies `change` to container `id` and re-renders it; `None` when there is no such
    /// container.
    fn update<T>(&self, id: &str, change: impl FnOnce(&mut SimContainer) -> T) -> Option<T> {
        let mut map = self.containers.lock().unwrap();
        let c = map.remove(id)?;
        let mut c = c;
        let out = change(&mut c);
        map.insert(id.to_string(), c.rendered(&self.paths));
        self.state.lock().unwrap().info = None;
        Some(out)
    }

    /// Starts container `id` as of `at_nanos`: a pid and an endpoint on its network.
    fn start_container(&self, id: &str, at_nanos: i64) -> bool {
        let network = match self.containers.lock().unwrap().get(id) {
            Some(c) if c.state == "running" => return true,
            Some(c) => c.attachment.network.clone(),
            None => return false,
        };
        let (pid, endpoint) = {
            let mut state = self.state.lock().unwrap();
            state.next_pid += 1;
            let pid = state.next_pid;
            let endpoint = state
                .networks
                .iter_mut()
                .find(|n| n.name == network)
                .and_then(|n| {
                    let subnet = n.subnet?;
                    n.last_host = n.last_host.wrapping_add(1).max(2);
                    let [hi, lo] = n.last_host.to_be_bytes();
                    Some(Endpoint {
                        ip: [172, subnet, hi, lo],
                        endpoint_id: random_hex(64),
                        sandbox_id: random_hex(64),
                    })
                });
            (pid, endpoint)
        };
        self.update(id, |c| {
            c.state = "running";
            c.pid = pid;
            c.started_at = payloads::rfc3339_nanos(at_nanos);
            c.attachment.endpoint = endpoint;
        })
        .is_some()
    }

    /// Stops container `id` with `exit_code`.
    fn stop_container(&self, id: &str, exit_code: i64) -> bool {
        self.update(id, |c| {
            c.state = "exited";
            c.exit_code = exit_code;
            c.pid = 0;
            c.finished_at = payloads::rfc3339_nanos(now_nanos());
            c.attachment.endpoint = None;
        })
        .is_some()
    }

    fn counts(&self) -> payloads::Counts {
        let map = self.containers.lock().unwrap();
        let running = map.values().filter(|c| c.state == "running").count();
        payloads::Counts {
            total: map.len(),
            running,
            stopped: map.len() - running,
        }
    }

    /// `/info` with the current time spliced into the body rendered at the last change.
    fn info_body(&self) -> Bytes {
        let cached = self.state.lock().unwrap().info.clone();
        let (head, tail) = match cached {
            Some(parts) => parts,
            None => {
                let counts = self.counts();
                let body = payloads::info(
                    &self.daemon_id,
                    &self.name,
                    &["sim=true".to_string()],
                    counts,
                    &self.paths,
                )
                .to_string();
                let mark = serde_json::to_string(payloads::SYSTEM_TIME_MARK).unwrap_or_default();
                let (head, tail) = body.split_once(&mark).unwrap_or((&body, ""));
                let parts = (
                    Bytes::copy_from_slice(head.as_bytes()),
                    Bytes::copy_from_slice(tail.as_bytes()),
                );
                self.state.lock().unwrap().info = Some(parts.clone());
                parts
            }
        };
        let now = payloads::rfc3339_nanos(now_nanos());
        let mut body = Vec::with_capacity(head.len() + tail.len() + now.len() + 2);
        body.extend_from_slice(&head);
        body.push(b'"');
        body.extend_from_slice(now.as_bytes());
        body.push(b'"');
        body.extend_from_slice(&tail);
        Bytes::from(body)
    }

    /// Creates a user network with the next free 172.x.0.0/16 subnet.
    fn create_network(&self, name: &str) -> Result<String, String> {
        let mut state = self.state.lock().unwrap();
        if state.networks.iter().any(|n| n.name == name) {
            return Err(format!("network with name {name} already exists"));
        }
        let subnet = state
            .networks
            .iter()
            .filter_map(|n| n.subnet)
            .max()
            .unwrap_or(17)
            + 1;
        let id = random_hex(64);
        state.networks.push(SimNetwork {
            name: name.to_string(),
            id: id.clone(),
            driver: "bridge",
            created: payloads::rfc3339_nanos(now_nanos()),
            subnet: Some(subnet),
            last_host: 1,
        });
        Ok(id)
    }
}

async fn accept_loop(engine: Arc<SimEngine>, mut listener: Option<TcpListener>) {
    let mut mode_rx = engine.mode_tx.subscribe();
    loop {
        let mode = *mode_rx.borrow_and_update();
        match (mode, listener.as_ref()) {
            (Mode::Refuse, Some(_)) => {
                listener = None; // closing the socket makes connects fail
                continue;
            }
            (Mode::Refuse, None) => {
                if mode_rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            (_, None) => match TcpListener::bind(engine.addr).await {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ => {}
        }
        let l = listener.as_ref().expect("bound above");
        tokio::select! {
            changed = mode_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = l.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let engine = engine.clone();
                tokio::spawn(async move {
                    if engine.mode() == Mode::Hang {
                        // Hold the connection open and say nothing until the engine is up.
                        let mut mode = engine.mode_tx.subscribe();
                        while *mode.borrow_and_update() == Mode::Hang {
                            if mode.changed().await.is_err() {
                                break;
                            }
                        }
                        drop(stream);
                        return;
                    }
                    let mut mode = engine.mode_tx.subscribe();
                    let service = hyper::service::service_fn(move |req| {
                        let engine = engine.clone();
                        async move { Ok::<_, Infallible>(handle(engine, req).await) }
                    });
                    let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
                    let serving = conn.serve_connection(TokioIo::new(stream), service);
                    // A refusing engine is a dead one: its open connections die with it.
                    tokio::select! {
                        _ = serving => {}
                        _ = async {
                            while mode.changed().await.is_ok() {
                                if *mode.borrow() == Mode::Refuse {
                                    return;
                                }
                            }
                            std::future::pending::<()>().await
                        } => {}
                    }
                });
            }
        }
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("Api-Version", "1.41".parse().unwrap());
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, v.to_string())
}

fn not_found(msg: String) -> Response<Body> {
    json_resp(StatusCode::NOT_FOUND, &json!({ "message": msg }))
}

fn query_param(q: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A `since`/`until` value (seconds, possibly fractional) in nanoseconds.
fn time_param(q: &str, key: &str) -> Option<i64> {
    let v = query_param(q, key)?;
    let secs: f64 = v.parse().ok()?;
    Some((secs * 1e9) as i64)
}

async fn read_json(req: Request<Incoming>) -> Value {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// `[` the cached entries `]`, copied, never re-rendered.
fn list_body(engine: &SimEngine, query: &str) -> Bytes {
    let filters = query_param(query, "filters")
        .and_then(|f| serde_json::from_str::<Value>(&f).ok())
        .unwrap_or(Value::Null);
    let id_filter = filters
        .get("id")
        .and_then(|v| v.as_array()?.first()?.as_str().map(str::to_string));
    let all = query_param(query, "all").is_some_and(|v| v == "1" || v == "true");
    let map = engine.containers.lock().unwrap();
    let mut body = Vec::with_capacity(2 + map.len() * 1024);
    body.push(b'[');
    for c in map.values() {
        if id_filter.as_deref().is_some_and(|f| !c.id.starts_with(f)) {
            continue;
        }
        if !all && c.state != "running" && id_filter.is_none() {
            continue;
        }
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(&c.list_entry);
    }
    body.push(b']');
    Bytes::from(body)
}

async fn handle(engine: Arc<SimEngine>, req: Request<Incoming>) -> Response<Body> {
    // A hanging engine holds requests on open connections too.
    while engine.mode() == Mode::Hang {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.requests.fetch_add(1, Ordering::Relaxed);
    let latency = engine.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    // Strip the /vX.Y prefix.
    let path = match full_path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        _ => full_path.clone(),
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => full(StatusCode::OK, "OK"),
        ("GET", ["version"]) => json_resp(StatusCode::OK, &payloads::version()),
        ("GET", ["info"]) => full(StatusCode::OK, engine.info_body()),
        ("GET", ["containers", "json"]) => full(StatusCode::OK, list_body(&engine, &query)),
        ("GET", ["containers", id, "json"]) => {
            let map = engine.containers.lock().unwrap();
            match map.get(*id) {
                Some(c) => full(StatusCode::OK, c.inspect_body(&engine.paths)),
                None => not_found(format!("No such container: {id}")),
            }
        }
        ("POST", ["containers", "create"]) => {
            let name =
                query_param(&query, "name").unwrap_or_else(|| format!("auto_{}", random_hex(8)));
            let name = name.trim_start_matches('/').to_string();
            let spec = Arc::new(ContainerSpec::from_create(&read_json(req).await));
            if engine
                .containers
                .lock()
                .unwrap()
                .values()
                .any(|x| x.name == name)
            {
                return json_resp(
                    StatusCode::CONFLICT,
                    &json!({"message": format!("Conflict. The container name \"/{name}\" is already in use")}),
                );
            }
            let id = engine.insert_container(name, spec);
            if let Some(c) = engine.containers.lock().unwrap().get(&id) {
                engine.container_event("create", c);
            }
            json_resp(StatusCode::CREATED, &json!({"Id": id, "Warnings": []}))
        }
        ("POST", ["containers", id, action @ ("start" | "stop" | "kill" | "restart")]) => {
            let found = match *action {
                "start" => engine.start_container(id, now_nanos()),
                "restart" => {
                    engine.stop_container(id, 0) && engine.start_container(id, now_nanos())
                }
                "kill" => engine.stop_container(id, 137),
                _ => engine.stop_container(id, 0),
            };
            if !found {
                return not_found(format!("No such container: {id}"));
            }
            let map = engine.containers.lock().unwrap();
            if let Some(c) = map.get(*id) {
                if *action == "stop" || *action == "kill" {
                    engine.container_event("die", c);
                }
                engine.container_event(action, c);
            }
            full(StatusCode::NO_CONTENT, Bytes::new())
        }
        ("DELETE", ["containers", id]) => {
            let removed = engine.containers.lock().unwrap().remove(*id);
            match removed {
                Some(c) => {
                    engine.state.lock().unwrap().info = None;
                    engine.container_event("destroy", &c);
                    full(StatusCode::NO_CONTENT, Bytes::new())
                }
                None => not_found(format!("No such container: {id}")),
            }
        }
        ("GET", ["events"]) => events(&engine, &query),
        ("GET", ["images", "json"]) => json_resp(StatusCode::OK, &payloads::images()),
        ("POST", ["images", "create"]) => {
            full(StatusCode::OK, "{\"status\":\"Pulled (simulated)\"}\n")
        }
        ("GET", ["networks"]) => {
            let state = engine.state.lock().unwrap();
            json_resp(StatusCode::OK, &payloads::networks(&state.networks))
        }
        ("POST", ["networks", "create"]) => {
            let body = read_json(req).await;
            let Some(name) = body.get("Name").and_then(Value::as_str) else {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &json!({"message": "network name is required"}),
                );
            };
            match engine.create_network(name) {
                Ok(id) => json_resp(StatusCode::CREATED, &json!({"Id": id, "Warning": ""})),
                Err(message) => json_resp(StatusCode::CONFLICT, &json!({ "message": message })),
            }
        }
        ("GET", ["volumes"]) => {
            let state = engine.state.lock().unwrap();
            json_resp(
                StatusCode::OK,
                &payloads::volumes(&state.volumes, &engine.paths),
            )
        }
        _ => not_found(format!("page not found: {method} {full_path}")),
    }
}

/// `GET /events`: the kept events from `since` on, then live ones; with `until`, the stream
/// ends at that time, as dockerd's does.
fn events(engine: &SimEngine, query: &str) -> Response<Body> {
    let since = time_param(query, "since");
    let until = time_param(query, "until");
    let mut rx = engine.events.subscribe();
    let mut epoch = engine.events_epoch.subscribe();
    epoch.borrow_and_update();
    let replay: Vec<Arc<String>> = match since {
        Some(since) => engine
            .history
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since && until.is_none_or(|u| *t <= u))
            .map(|(_, line)| line.clone())
            .collect(),
        None => Vec::new(),
    };
    let ends_in = until.map(|u| Duration::from_nanos(u.saturating_sub(now_nanos()).max(0) as u64));
    let stream = async_stream_lines(move |tx| async move {
        let line_bytes = |line: &str| {
            let mut b = Vec::with_capacity(line.len() + 1);
            b.extend_from_slice(line.as_bytes());
            b.push(b'\n');
            Bytes::from(b)
        };
        for line in replay {
            if tx.send(line_bytes(&line)).await.is_err() {
                return;
            }
        }
        let end = async {
            match ends_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return,
                _ = epoch.changed() => return,
                ev = rx.recv() => match ev {
                    Ok(line) => {
                        if tx.send(line_bytes(&line)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        }
    });
    let mut r = Response::new(stream);
    r.headers_mut()
        .insert("Api-Version", "1.41".parse().unwrap());
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    r
}

/// A streaming body fed by a task that gets the sending half of a channel.
fn async_stream_lines<F, Fut>(producer: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(producer(tx));
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    StreamBody::new(stream).boxed()
}
