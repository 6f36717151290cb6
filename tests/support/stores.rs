//! Key-value stores and certificates for the discovery, replication and TLS tests.
//!
//! - [`EtcdServer`]: Debian's `etcd` (3.4) on loopback ports picked here, v2 enabled so both
//!   keyspaces can be tested, optionally serving clients over TLS with client certificates.
//! - [`ZkServer`]: Debian's ZooKeeper (`ZooKeeperServerMain` from `/usr/share/java`) on a
//!   loopback port, with a short tick so session expiry takes seconds.
//! - [`FakeConsul`]: no Consul server is packaged for Debian, so this is an in-process fake of the
//!   few HTTP calls Shoal makes (KV reads with blocking queries, writes with acquire/release,
//!   sessions with TTL and behaviour). It stands in for the protocol, not for Consul's
//!   consistency guarantees.
//! - [`PrometheusServer`]: Debian's `prometheus` on a loopback port, scraping given targets every
//!   second, queried through its HTTP API (not a store, but started and stopped the same way).
//! - [`TestCerts`]: a CA and certificates made with `rcgen` for engines, managers and clients,
//!   plus deliberately wrong ones (no IP SAN, another CA).
//!
//! Servers are started tied to the test process like engines (see `processes`) and stopped by
//! pid when dropped; their data and logs live in a temp directory removed afterwards.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::manager::free_port;
use super::processes::{self, SET_VAR};
use super::{append_log, http, log_tail, SupportError};

/// How long a store may take to answer after it is launched.
const STORE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A store process and its files, stopped (SIGTERM, then SIGKILL) when dropped.
struct StoreProcess {
    /// What it is, for messages ("etcd", "zookeeper").
    name: &'static str,
    child: Mutex<Option<Child>>,
    log_path: PathBuf,
    /// The command line, kept for restarts.
    command_line: Vec<String>,
    /// Holds data and log; declared last so it goes after the process.
    dir: TempDir,
}

impl StoreProcess {
    fn new(name: &'static str) -> Result<StoreProcess, SupportError> {
        processes::sweep_leftovers();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{name}-", processes::owned_prefix()))
            .tempdir()?;
        Ok(StoreProcess {
            name,
            child: Mutex::new(None),
            log_path: dir.path().join(format!("{name}.log")),
            command_line: Vec::new(),
            dir,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(&self, ready: impl Fn() -> bool) -> Result<(), SupportError> {
        let log = append_log(&self.log_path)?;
        let mut command = processes::tied_command(&self.command_line[0]);
        command
            .args(&self.command_line[1..])
            .env(
                SET_VAR,
                self.dir
                    .path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(""),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = processes::spawn_tied(command)
            .map_err(|e| SupportError::new(format!("cannot run {}: {e}", self.name)))?;
        let mut slot = self.lock();
        let child = slot.insert(child);
        let deadline = Instant::now() + STORE_START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let message = format!(
                    "{} exited ({status}) before it was ready; last lines of its log:\n{}",
                    self.name,
                    log_tail(&self.log_path, 30)
                );
                slot.take();
                return Err(SupportError::new(message));
            }
            if ready() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
        drop(slot);
        self.kill();
        Err(SupportError::new(format!(
            "{} was not ready within {STORE_START_TIMEOUT:?}; last lines of its log:\n{}",
            self.name,
            log_tail(&self.log_path, 30)
        )))
    }

    fn pid(&self) -> Option<u32> {
        let mut child = self.lock();
        let child = child.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&self) {
        if let Some(mut child) = self.lock().take() {
            processes::signal(child.id(), rustix::process::Signal::TERM);
            if !processes::wait_child(&mut child, Duration::from_secs(10)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        self.stop();
        super::keep_log(
            &self.log_path,
            &format!("{}-{}.log", self.name, std::process::id()),
        );
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// A running etcd on loopback.
pub struct EtcdServer {
    process: StoreProcess,
    client_port: u16,
    metrics_port: u16,
    tls: bool,
}

impl EtcdServer {
    /// Starts etcd with plain HTTP clients; panics with its log on failure.
    #[track_caller]
    pub fn start() -> EtcdServer {
        Self::try_start(None).unwrap_or_else(|e| panic!("cannot start etcd:\n{e}"))
    }

    /// Starts etcd serving clients over TLS that requires client certificates from `certs`' CA.
    #[track_caller]
    pub fn start_tls(certs: &TestCerts) -> EtcdServer {
        Self::try_start(Some(certs)).unwrap_or_else(|e| panic!("cannot start etcd:\n{e}"))
    }

    fn try_start(certs: Option<&TestCerts>) -> Result<EtcdServer, SupportError> {
        let mut process = StoreProcess::new("etcd")?;
        let (client_port, peer_port, metrics_port) = (free_port(), free_port(), free_port());
        let scheme = if certs.is_some() { "https" } else { "http" };
        let data = process.dir.path().join("data");
        let mut line: Vec<String> = vec![
            "etcd".into(),
            "--name".into(),
            "shoal-test".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen-client-urls".into(),
            format!("{scheme}://127.0.0.1:{client_port}"),
            "--advertise-client-urls".into(),
            format!("{scheme}://127.0.0.1:{client_port}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-cluster".into(),
            format!("shoal-test=http://127.0.0.1:{peer_port}"),
            "--listen-metrics-urls".into(),
            format!("http://127.0.0.1:{metrics_port}"),
            "--enable-v2".into(),
            "--logger".into(),
            "zap".into(),
        ];
        if let Some(certs) = certs {
            let path = |p: &Path| p.display().to_string();
            line.extend([
                "--cert-file".into(),
                path(&certs.server_cert),
                "--key-file".into(),
                path(&certs.server_key),
                "--trusted-ca-file".into(),
                path(&certs.ca_cert),
                "--client-cert-auth".into(),
            ]);
        }
        process.command_line = line;
        let server = EtcdServer {
            process,
            client_port,
            metrics_port,
            tls: certs.is_some(),
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&self) -> Result<(), SupportError> {
        let metrics = format!("127.0.0.1:{}", self.metrics_port);
        self.process.launch(|| {
            http::get(&metrics, "/health")
                .is_ok_and(|r| r.status == 200 && r.text().contains("true"))
        })
    }

    /// `127.0.0.1:PORT` of the client API.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `etcd://127.0.0.1:PORT/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.endpoint())
    }

    /// Whether clients must use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// etcd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL; the data stays for [`EtcdServer::restart`].
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Starts it again on the same ports with the same data; panics on failure.
    #[track_caller]
    pub fn restart(&self) {
        self.process.kill();
        if let Err(e) = self.launch() {
            panic!("cannot restart etcd:\n{e}");
        }
    }

    /// A v2 key's value, read directly (plain HTTP servers only).
    pub fn v2_value(&self, key: &str) -> Option<String> {
        let response = http::get(
            &self.endpoint(),
            &format!("/v2/keys/{}", key.trim_start_matches('/')),
        )
        .ok()?;
        let json = response.json().ok()?;
        json["node"]["value"].as_str().map(str::to_string)
    }

    /// A v3 key's value, read through the JSON gateway (plain HTTP servers only).
    pub fn v3_value(&self, key: &str) -> Option<String> {
        let body = serde_json::json!({ "key": base64_encode(key.as_bytes()) }).to_string();
        let response = http::request(
            &self.endpoint(),
            "POST",
            "/v3/kv/range",
            Some(("application/json", body.as_bytes())),
            Duration::from_secs(5),
        )
        .ok()?;
        let json = response.json().ok()?;
        let value = json["kvs"][0]["value"].as_str()?;
        base64_decode(value).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A running Prometheus server on loopback, scraping one job every second.
pub struct PrometheusServer {
    process: StoreProcess,
    port: u16,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) as job `job`; panics
    /// with its log on failure.
    #[track_caller]
    pub fn start(job: &str, targets: &[String]) -> PrometheusServer {
        Self::try_start(job, targets).unwrap_or_else(|e| panic!("cannot start prometheus:\n{e}"))
    }

    fn try_start(job: &str, targets: &[String]) -> Result<PrometheusServer, SupportError> {
        let mut process = StoreProcess::new("prometheus")?;
        let port = free_port();
        let config = process.dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      \
                 - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        process.command_line = vec![
            "prometheus".into(),
            format!("--config.file={}", config.display()),
            format!(
                "--storage.tsdb.path={}",
                process.dir.path().join("data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let server = PrometheusServer { process, port };
        let endpoint = server.endpoint();
        server
            .process
            .launch(|| http::get(&endpoint, "/-/ready").is_ok_and(|r| r.status == 200))?;
        Ok(server)
    }

    /// `127.0.0.1:PORT` of the HTTP API.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The value of the first series an instant query returns (`/api/v1/query`); `None` when
    /// the query fails or returns nothing.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let response =
            http::get(&self.endpoint(), &format!("/api/v1/query?query={encoded}")).ok()?;
        let json = response.json().ok()?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.process.log_path, 30)
    }
}

/// A running ZooKeeper on loopback.
pub struct ZkServer {
    process: StoreProcess,
    port: u16,
}

impl ZkServer {
    /// Starts ZooKeeper (tick 500 ms, sessions of 1–60 s); panics with its log on failure.
    #[track_caller]
    pub fn start() -> ZkServer {
        Self::try_start().unwrap_or_else(|e| panic!("cannot start zookeeper:\n{e}"))
    }

    fn try_start() -> Result<ZkServer, SupportError> {
        let mut process = StoreProcess::new("zookeeper")?;
        let port = free_port();
        let config = process.dir.path().join("zoo.cfg");
        fs::write(
            &config,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n\
                 4lw.commands.whitelist=ruok\n",
                process.dir.path().join("data").display()
            ),
        )?;
        process.command_line = vec![
            "java".into(),
            "-Xmx256m".into(),
            "-cp".into(),
            "/usr/share/java/zookeeper.jar".into(),
            "org.apache.zookeeper.server.ZooKeeperServerMain".into(),
            config.display().to_string(),
        ];
        let server = ZkServer { process, port };
        server.process.launch(|| ruok(port))?;
        Ok(server)
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zk://127.0.0.1:PORT/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("zk://{}/{prefix}", self.endpoint())
    }

    /// ZooKeeper's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// ZooKeeper's four-letter health check.
fn ruok(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = String::new();
    stream.write_all(b"ruok").is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer == "imok"
}

// ---------------------------------------------------------------------------------------------
// Consul fake

/// One key of the fake.
#[derive(Debug, Clone)]
struct ConsulEntry {
    value: Vec<u8>,
    session: Option<String>,
    modify_index: u64,
}

/// One session of the fake.
#[derive(Debug, Clone)]
struct ConsulSession {
    /// Consul invalidates a session up to twice its TTL after the last renewal.
    lifetime: Duration,
    deadline: Instant,
    /// `delete` or `release`.
    behavior: String,
}

#[derive(Default)]
struct ConsulState {
    kv: BTreeMap<String, ConsulEntry>,
    sessions: HashMap<String, ConsulSession>,
    index: u64,
    next_session: u64,
    /// Every request line received, for assertions.
    requests: Vec<String>,
}

impl ConsulState {
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Invalidates expired sessions, applying their behaviour to the keys they hold.
    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.invalidate(&id);
        }
    }

    fn invalidate(&mut self, id: &str) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        let held: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in held {
            let index = self.bump();
            if session.behavior == "delete" {
                self.kv.remove(&key);
            } else if let Some(entry) = self.kv.get_mut(&key) {
                entry.session = None;
                entry.modify_index = index;
            }
        }
    }
}

/// An in-process fake of Consul's KV and session HTTP API on a loopback port.
pub struct FakeConsul {
    port: u16,
    shared: Arc<(Mutex<ConsulState>, Condvar)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl FakeConsul {
    /// Starts serving.
    pub fn start() -> FakeConsul {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new((Mutex::new(ConsulState::default()), Condvar::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acceptor = {
            let shared = shared.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    thread::spawn(move || serve_consul(stream, &shared));
                }
            })
        };
        FakeConsul {
            port,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `consul://127.0.0.1:PORT/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("consul://{}/{prefix}", self.endpoint())
    }

    /// A key's value, if set.
    pub fn value(&self, key: &str) -> Option<String> {
        let state = self.shared.0.lock().unwrap_or_else(|p| p.into_inner());
        state
            .kv
            .get(key)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned())
    }

    /// Whether a session holds `key`.
    pub fn is_held(&self, key: &str) -> bool {
        let state = self.shared.0.lock().unwrap_or_else(|p| p.into_inner());
        state.kv.get(key).is_some_and(|e| e.session.is_some())
    }

    /// Request lines received so far (`PUT /v1/session/create`, …).
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .clone()
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve_consul(stream: TcpStream, shared: &(Mutex<ConsulState>, Condvar)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut writer = writer;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (status, index, payload) = consul_answer(shared, &method, &target, &body);
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Bad Request",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Consul-Index: {index}\r\n\
             Content-Length: {}\r\n\r\n",
            payload.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&payload).is_err() {
            return;
        }
    }
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn parse_seconds(text: &str) -> Duration {
    let number = text.trim_end_matches('s');
    Duration::from_secs_f64(number.parse::<f64>().unwrap_or(0.0))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(value) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn consul_answer(
    shared: &(Mutex<ConsulState>, Condvar),
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, u64, Vec<u8>) {
    let (lock, changed) = shared;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    state.requests.push(format!("{method} {path}"));
    state.expire();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        let key = percent_decode(key);
        if method == "GET" {
            if let Some(wanted) = query_value(query, "index").and_then(|i| i.parse::<u64>().ok()) {
                let wait = query_value(query, "wait")
                    .map(parse_seconds)
                    .unwrap_or(Duration::from_secs(300));
                let deadline = Instant::now() + wait;
                while state.index <= wanted && Instant::now() < deadline {
                    let left = deadline - Instant::now();
                    // Wake at least every 100 ms to expire sessions.
                    state = changed
                        .wait_timeout(state, left.min(Duration::from_millis(100)))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    state.expire();
                }
            }
            let recurse = query_value(query, "recurse").is_some();
            let items: Vec<serde_json::Value> = state
                .kv
                .iter()
                .filter(|(k, _)| if recurse { k.starts_with(&key) } else { **k == key })
                .map(|(k, e)| {
                    let mut item = serde_json::json!({
                        "Key": k,
                        "Value": if e.value.is_empty() { serde_json::Value::Null } else { base64_encode(&e.value).into() },
                        "ModifyIndex": e.modify_index,
                    });
                    if let Some(session) = &e.session {
                        item["Session"] = session.clone().into();
                    }
                    item
                })
                .collect();
            let index = state.index;
            if items.is_empty() {
                return (404, index, Vec::new());
            }
            return (
                200,
                index,
                serde_json::Value::from(items).to_string().into_bytes(),
            );
        }
        if method == "PUT" {
            let result = if let Some(session) = query_value(query, "acquire") {
                let session = percent_decode(session);
                if !state.sessions.contains_key(&session) {
                    return (400, state.index, b"invalid session".to_vec());
                }
                let holder = state.kv.get(&key).and_then(|e| e.session.clone());
                if holder.is_some_and(|h| h != session) {
                    false
                } else {
                    let index = state.bump();
                    state.kv.insert(
                        key,
                        ConsulEntry {
                            value: body.to_vec(),
                            session: Some(session),
                            modify_index: index,
                        },
                    );
                    true
                }
            } else if let Some(session) = query_value(query, "release") {
                let session = percent_decode(session);
                let index = state.index + 1;
                match state.kv.get_mut(&key) {
                    Some(entry) if entry.session.as_deref() == Some(session.as_str()) => {
                        entry.session = None;
                        entry.value = body.to_vec();
                        entry.modify_index = index;
                        state.index = index;
                        true
                    }
                    _ => false,
                }
            } else {
                let index = state.bump();
                let session = state.kv.get(&key).and_then(|e| e.session.clone());
                state.kv.insert(
                    key,
                    ConsulEntry {
                        value: body.to_vec(),
                        session,
                        modify_index: index,
                    },
                );
                true
            };
            changed.notify_all();
            return (200, state.index, result.to_string().into_bytes());
        }
        return (400, state.index, b"unsupported".to_vec());
    }
    if path == "/v1/session/create" && method == "PUT" {
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let ttl = parse_seconds(request["TTL"].as_str().unwrap_or("10s"));
        if ttl < Duration::from_secs(10) {
            return (
                400,
                state.index,
                b"Invalid Session TTL, must be between [10s=24h0m0s]".to_vec(),
            );
        }
        state.next_session += 1;
        let id = format!("session-{}", state.next_session);
        let lifetime = ttl * 2;
        let behavior = request["Behavior"]
            .as_str()
            .unwrap_or("release")
            .to_string();
        state.sessions.insert(
            id.clone(),
            ConsulSession {
                lifetime,
                deadline: Instant::now() + lifetime,
                behavior,
            },
        );
        return (
            200,
            state.index,
            serde_json::json!({ "ID": id }).to_string().into_bytes(),
        );
    }
    if let Some(id) = path.strip_prefix("/v1/session/renew/") {
        let id = percent_decode(id);
        return match state.sessions.get_mut(&id) {
            Some(session) => {
                session.deadline = Instant::now() + session.lifetime;
                (
                    200,
                    state.index,
                    serde_json::json!([{ "ID": id }]).to_string().into_bytes(),
                )
            }
            None => (
                404,
                state.index,
                format!("Session id '{id}' not found").into_bytes(),
            ),
        };
    }
    if let Some(id) = path.strip_prefix("/v1/session/destroy/") {
        let id = percent_decode(id);
        state.invalidate(&id);
        changed.notify_all();
        return (200, state.index, b"true".to_vec());
    }
    (404, state.index, b"404 page not found".to_vec())
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (the support code has no base64 crate of its own).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; `None` on a malformed input.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = BASE64_ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// PEM files of a test PKI, in a temp directory removed when dropped.
pub struct TestCerts {
    /// The CA everyone trusts.
    pub ca_cert: PathBuf,
    /// Server certificate for `127.0.0.1` and `localhost` (engines, managers, etcd).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA (docker CLI, managers towards engines).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A server certificate that names only `localhost` (no IP SAN).
    pub no_ip_cert: PathBuf,
    /// Its key.
    pub no_ip_key: PathBuf,
    /// A client certificate signed by another CA.
    pub rogue_cert: PathBuf,
    /// Its key.
    pub rogue_key: PathBuf,
    dir: TempDir,
}

impl TestCerts {
    /// Makes a fresh CA and certificates.
    pub fn generate() -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}certs-", processes::owned_prefix()))
            .tempdir()
            .expect("temp dir for certificates");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            fs::write(&path, pem).expect("write a certificate file");
            path
        };
        let make_ca = |name: &str| {
            let key = KeyPair::generate().expect("CA key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, key).expect("self-signed CA")
        };
        let ca = make_ca("shoal test CA");
        let rogue_ca = make_ca("rogue CA");
        let issue =
            |names: Vec<SanType>, common_name: &str, issuer: &CertifiedIssuer<'_, KeyPair>| {
                let key = KeyPair::generate().expect("leaf key");
                let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
                params.subject_alt_names = names;
                params
                    .distinguished_name
                    .push(DnType::CommonName, common_name);
                let cert = params.signed_by(&key, issuer).expect("signed leaf");
                (cert.pem(), key.serialize_pem())
            };
        let loopback = || {
            vec![
                SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
                SanType::DnsName("localhost".try_into().expect("dns name")),
            ]
        };
        let (server, server_key) = issue(loopback(), "server", &ca);
        let (client, client_key) = issue(loopback(), "client", &ca);
        let (no_ip, no_ip_key) = issue(
            vec![SanType::DnsName("localhost".try_into().expect("dns name"))],
            "localhost",
            &ca,
        );
        let (rogue, rogue_key) = issue(loopback(), "rogue", &rogue_ca);
        TestCerts {
            ca_cert: write("ca.pem", ca.pem()),
            server_cert: write("server-cert.pem", server),
            server_key: write("server-key.pem", server_key),
            client_cert: write("cert.pem", client),
            client_key: write("key.pem", client_key),
            no_ip_cert: write("noip-cert.pem", no_ip),
            no_ip_key: write("noip-key.pem", no_ip_key),
            rogue_cert: write("rogue-cert.pem", rogue),
            rogue_key: write("rogue-key.pem", rogue_key),
            dir,
        }
    }

    /// The directory holding every file (with `ca.pem`, `cert.pem`, `key.pem` as the docker
    /// CLI's `--tlsverify` expects in `DOCKER_CERT_PATH`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Manager flags for `--tlsverify` with the server certificate (also its client
    /// certificate towards engines).
    pub fn manager_args(&self) -> Vec<String> {
        vec![
            "--tlsverify".into(),
            format!("--tlscacert={}", self.ca_cert.display()),
            format!("--tlscert={}", self.server_cert.display()),
            format!("--tlskey={}", self.server_key.display()),
        ]
    }

    /// docker CLI flags for `--tlsverify` with the client certificate.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--tlsverify".into(),
            format!("--tlscacert={}", self.ca_cert.display()),
            format!("--tlscert={}", self.client_cert.display()),
            format!("--tlskey={}", self.client_key.display()),
        ]
    }

    /// `--discovery-opt` flags for a TLS store.
    pub fn kv_args(&self) -> Vec<String> {
        vec![
            "--discovery-opt".into(),
            format!("kv.cacertfile={}", self.ca_cert.display()),
            "--discovery-opt".into(),
            format!("kv.certfile={}", self.client_cert.display()),
            "--discovery-opt".into(),
            format!("kv.keyfile={}", self.client_key.display()),
        ]
    }
}

/// `swarm join` running in the background, stopped (SIGTERM) when dropped or with
/// [`JoinAgent::stop`], or killed with [`JoinAgent::kill`].
pub struct JoinAgent {
    child: Mutex<Option<Child>>,
    log_path: PathBuf,
    _dir: TempDir,
}

impl JoinAgent {
    /// Runs `swarm join --advertise <advertise> <args…> <discovery>`.
    #[track_caller]
    pub fn start(advertise: &str, args: &[&str], discovery: &str) -> JoinAgent {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}join-", processes::owned_prefix()))
            .tempdir()
            .expect("temp dir for a join agent");
        let log_path = dir.path().join("join.log");
        let log = append_log(&log_path).expect("join log");
        let mut command = processes::tied_command(super::manager::swarm_binary());
        command
            .arg("join")
            .arg("--advertise")
            .arg(advertise)
            .args(args)
            .arg(discovery)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("join log"))
            .stderr(log);
        let child = processes::spawn_tied(command).expect("run swarm join");
        JoinAgent {
            child: Mutex::new(Some(child)),
            log_path,
            _dir: dir,
        }
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// SIGTERM and wait.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            processes::signal(child.id(), rustix::process::Signal::TERM);
            if !processes::wait_child(&mut child, Duration::from_secs(10)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// SIGKILL and wait.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for JoinAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `swarm` with `args` and returns the non-empty lines of stdout that look like
/// `host:port` (store log lines go to stdout too, as in the classic).
pub fn swarm_list(args: &[&str]) -> Vec<String> {
    let output = super::swarm(args);
    output
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains(' '))
        .map(str::to_string)
        .collect()
}
