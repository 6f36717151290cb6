//! An engine simulator for scale runs and fault injection: one process serves many simulated
//! Docker engines, each on its own loopback port, speaking enough of the Engine API for a
//! manager to validate, refresh, watch events, list, inspect, create, start, stop and remove
//! containers. It is not a Docker engine: containers are records, nothing runs.
//!
//! Faults per engine: refuse connections (the port closes), hang (connections are accepted and
//! never answered), break the events stream, add latency to every answer, and come back.
//! Memory stays small: a container is a few hundred bytes, JSON is built when asked for.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

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

/// One simulated container.
#[derive(Debug, Clone)]
struct SimContainer {
    id: String,
    name: String,
    image: String,
    state: &'static str,
    created: i64,
    started_at: String,
    finished_at: String,
    exit_code: i64,
    labels: BTreeMap<String, String>,
    memory: i64,
    cpu_shares: i64,
}

/// One simulated engine.
pub struct SimEngine {
    pub index: usize,
    pub daemon_id: String,
    pub name: String,
    pub addr: SocketAddr,
    containers: Mutex<BTreeMap<String, SimContainer>>,
    events: broadcast::Sender<Arc<String>>,
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

fn random_hex(n: usize) -> String {
    let mut s = String::with_capacity(n);
    while s.len() < n {
        s.push_str(&format!("{:032x}", rand::random::<u128>()));
    }
    s.truncate(n);
    s
}

impl SimFleet {
    /// Starts `n` engines with `containers` running containers each, on free loopback ports.
    pub async fn start(n: usize, containers: usize) -> std::io::Result<SimFleet> {
        let mut engines = Vec::with_capacity(n);
        for index in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (events, _) = broadcast::channel(1024);
            let (events_epoch, _) = watch::channel(0);
            let (mode_tx, _) = watch::channel(Mode::Up);
            let engine = Arc::new(SimEngine {
                index,
                daemon_id: random_hex(12).to_uppercase(),
                name: format!("sim-{index}"),
                addr,
                containers: Mutex::new(BTreeMap::new()),
                events,
                mode: AtomicU8::new(Mode::Up as u8),
                latency_ms: AtomicU64::new(0),
                events_epoch,
                mode_tx,
                requests: AtomicU64::new(0),
            });
            {
                let mut map = engine.containers.lock().unwrap();
                for i in 0..containers {
                    let id = random_hex(64);
                    let t = now_secs() - 3600;
                    map.insert(
                        id.clone(),
                        SimContainer {
                            id,
                            name: format!("c{i}"),
                            image: "busybox:latest".into(),
                            state: "running",
                            created: t,
                            started_at: rfc3339(t),
                            finished_at: "0001-01-01T00:00:00Z".into(),
                            exit_code: 0,
                            labels: BTreeMap::new(),
                            memory: 0,
                            cpu_shares: 0,
                        },
                    );
                }
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
        let _ = self.events.send(Arc::new(ev.to_string()));
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

fn summary(c: &SimContainer) -> Value {
    json!({
        "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image, "ImageID": "sha256:5151",
        "Command": "sleep 1000", "Created": c.created, "Ports": [], "Labels": c.labels,
        "State": c.state, "Status": if c.state == "running" { "Up 1 hour" } else { "Exited (0) 1 minute ago" },
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "b1", "IPAddress": "172.17.0.2"}}},
        "Mounts": [],
    })
}

fn inspect(c: &SimContainer) -> Value {
    json!({
        "Id": c.id, "Created": rfc3339(c.created), "Path": "sleep", "Args": ["1000"],
        "State": {"Status": c.state, "Running": c.state == "running", "Paused": false, "Restarting": false,
                  "OOMKilled": false, "Dead": false, "Pid": 1, "ExitCode": c.exit_code, "Error": "",
                  "StartedAt": c.started_at, "FinishedAt": c.finished_at},
        "Image": "sha256:5151", "Name": format!("/{}", c.name), "RestartCount": 0,
        "HostConfig": {"Memory": c.memory, "CpuShares": c.cpu_shares, "NetworkMode": "default", "PortBindings": {}},
        "Config": {"Image": c.image, "Labels": c.labels, "Env": [], "Cmd": ["sleep", "1000"]},
        "NetworkSettings": {"Ports": {}, "Networks": {}},
        "ExecIDs": null, "Mounts": [],
    })
}

fn query_param(q: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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
        ("GET", ["version"]) => json_resp(
            StatusCode::OK,
            &json!({
            "Version": "20.10.24-sim", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
            "Os": "linux", "Arch": "amd64", "KernelVersion": "sim", "GitCommit": "sim"}),
        ),
        ("GET", ["info"]) => {
            let n = engine.container_count();
            json_resp(
                StatusCode::OK,
                &json!({
                "ID": engine.daemon_id, "Name": engine.name, "NCPU": 4, "MemTotal": 8_i64 << 30,
                "Containers": n, "ContainersRunning": n, "Driver": "overlay2", "KernelVersion": "sim",
                "OperatingSystem": "Simulated Linux", "OSType": "linux", "Architecture": "x86_64",
                "Labels": ["sim=true"], "ServerVersion": "20.10.24-sim",
                "SystemTime": rfc3339(now_secs())}),
            )
        }
        ("GET", ["containers", "json"]) => {
            let id_filter: Option<String> = query_param(&query, "filters")
                .and_then(|f| serde_json::from_str::<Value>(&f).ok())
                .and_then(|f| {
                    f.get("id")
                        .and_then(|v| v.as_array()?.first()?.as_str().map(str::to_string))
                });
            let map = engine.containers.lock().unwrap();
            let list: Vec<Value> = map
                .values()
                .filter(|c| id_filter.as_deref().is_none_or(|f| c.id.starts_with(f)))
                .map(summary)
                .collect();
            json_resp(StatusCode::OK, &Value::Array(list))
        }
        ("GET", ["containers", id, "json"]) => {
            let map = engine.containers.lock().unwrap();
            match map.get(*id) {
                Some(c) => json_resp(StatusCode::OK, &inspect(c)),
                None => not_found(format!("No such container: {id}")),
            }
        }
        ("POST", ["containers", "create"]) => {
            let name =
                query_param(&query, "name").unwrap_or_else(|| format!("auto_{}", random_hex(8)));
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let labels: BTreeMap<String, String> = v
                .get("Labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let host = v.get("HostConfig");
            let c = SimContainer {
                id: random_hex(64),
                name: name.trim_start_matches('/').to_string(),
                image: v
                    .get("Image")
                    .and_then(Value::as_str)
                    .unwrap_or("busybox")
                    .to_string(),
                state: "created",
                created: now_secs(),
                started_at: "0001-01-01T00:00:00Z".into(),
                finished_at: "0001-01-01T00:00:00Z".into(),
                exit_code: 0,
                labels,
                memory: host
                    .and_then(|h| h.get("Memory"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                cpu_shares: host
                    .and_then(|h| h.get("CpuShares"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            };
            let id = c.id.clone();
            {
                let mut map = engine.containers.lock().unwrap();
                if map.values().any(|x| x.name == c.name) {
                    return json_resp(
                        StatusCode::CONFLICT,
                        &json!({"message": format!("Conflict. The container name \"/{}\" is already in use", c.name)}),
                    );
                }
                map.insert(id.clone(), c.clone());
            }
            engine.emit(
                "container",
                "create",
                &id,
                json!({"name": c.name, "image": c.image}),
            );
            json_resp(StatusCode::CREATED, &json!({"Id": id, "Warnings": []}))
        }
        ("POST", ["containers", id, action @ ("start" | "stop" | "kill" | "restart")]) => {
            let (name, image) = {
                let mut map = engine.containers.lock().unwrap();
                let Some(c) = map.get_mut(*id) else {
                    return not_found(format!("No such container: {id}"));
                };
                match *action {
                    "start" | "restart" => {
                        c.state = "running";
                        c.started_at = rfc3339(now_secs());
                    }
                    _ => {
                        c.state = "exited";
                        c.finished_at = rfc3339(now_secs());
                    }
                }
                (c.name.clone(), c.image.clone())
            };
            let attrs = json!({"name": name, "image": image});
            if *action == "stop" || *action == "kill" {
                engine.emit("container", "die", id, attrs.clone());
            }
            engine.emit("container", action, id, attrs);
            full(StatusCode::NO_CONTENT, Bytes::new())
        }
        ("DELETE", ["containers", id]) => {
            let removed = engine.containers.lock().unwrap().remove(*id);
            match removed {
                Some(c) => {
                    engine.emit(
                        "container",
                        "destroy",
                        id,
                        json!({"name": c.name, "image": c.image}),
                    );
                    full(StatusCode::NO_CONTENT, Bytes::new())
                }
                None => not_found(format!("No such container: {id}")),
            }
        }
        ("GET", ["events"]) => {
            let mut rx = engine.events.subscribe();
            let mut epoch = engine.events_epoch.subscribe();
            epoch.borrow_and_update();
            let stream = async_stream_lines(move |tx| async move {
                loop {
                    tokio::select! {
                        _ = epoch.changed() => return,
                        ev = rx.recv() => match ev {
                            Ok(line) => {
                                let mut b = line.as_bytes().to_vec();
                                b.push(b'\n');
                                if tx.send(Bytes::from(b)).await.is_err() {
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
        ("GET", ["images", "json"]) => json_resp(
            StatusCode::OK,
            &json!([{
            "Id": "sha256:5151", "RepoTags": ["busybox:latest"], "RepoDigests": [], "Created": 1_577_836_800,
            "Size": 1_000_000, "Labels": null, "ParentId": "", "SharedSize": -1, "Containers": -1}]),
        ),
        ("POST", ["images", "create"]) => {
            full(StatusCode::OK, "{\"status\":\"Pulled (simulated)\"}\n")
        }
        ("GET", ["networks"]) => json_resp(
            StatusCode::OK,
            &json!([
            {"Name": "bridge", "Id": format!("b{}", engine.daemon_id), "Scope": "local", "Driver": "bridge", "Labels": {}},
            {"Name": "host", "Id": format!("h{}", engine.daemon_id), "Scope": "local", "Driver": "host", "Labels": {}},
            {"Name": "none", "Id": format!("n{}", engine.daemon_id), "Scope": "local", "Driver": "null", "Labels": {}}]),
        ),
        ("GET", ["volumes"]) => {
            json_resp(StatusCode::OK, &json!({"Volumes": [], "Warnings": null}))
        }
        _ => not_found(format!("page not found: {method} {full_path}")),
    }
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
