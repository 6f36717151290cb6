//! What the scale programs share: reading their options, raising the open-file limit a large
//! fleet needs, starting the manager under test as a separate process against a fleet of
//! simulated engines, timing requests to it (each bounded by [`REQUEST_TIMEOUT`]), and reading
//! its memory and open files from `/proc`. It makes no load of its own and prints nothing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::time::Instant;

/// The client the programs talk to the manager with (plain HTTP on loopback).
pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A pooled client, with enough idle connections for the programs' concurrent clients.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

/// The value after `name` on the command line, or `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The `p` quantile (0.0–1.0) of sorted latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A duration in milliseconds, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// How long one request, body included, may take before it counts as failed. A list of
/// 100,000 containers (about 95 MB) takes well under a second; a minute means the manager is
/// stuck, and the run goes on rather than hanging.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Open files each simulated engine needs in the process hosting the fleet: its listener and
/// the manager's pooled and events connections to it (measured: about 3.1 an engine at 5,000
/// engines, 15,400 in all with the benchmark's own clients), rounded up.
pub const FILES_PER_ENGINE: u64 = 4;

/// Raises this process's open-file limit so that `wanted` files fit: the soft limit to the
/// hard one, and both to `wanted` (at most the kernel's `fs.nr_open`) when the hard one is
/// lower and the process may raise it (root). Processes started afterwards, the manager among
/// them, inherit the limit. Returns the soft limit in force afterwards.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let hard = before.maximum.unwrap_or(u64::MAX);
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    if hard < wanted {
        let target = wanted.min(ceiling);
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: Some(target),
            },
        );
    }
    let now = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (now.current, now.maximum) {
        if current < maximum {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(maximum),
                    maximum: Some(maximum),
                },
            );
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// One request; the status and the whole body. Fails after [`REQUEST_TIMEOUT`].
pub async fn request(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: &str,
) -> Result<(u16, Bytes), String> {
    match tokio::time::timeout(
        REQUEST_TIMEOUT,
        request_unbounded(client, method, url, body),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

async fn request_unbounded(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: &str,
) -> Result<(u16, Bytes), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Sends a GET and reads the answer to its last byte, counting the bytes and keeping none, as
/// a load generator does: the time measured is the manager's, not the time this process takes
/// to gather tens of megabytes into one buffer (on its first list that alone cost it about
/// 40 ms of page faults, more than the manager took to answer). Returns the status and the
/// body's length.
pub async fn get_counted(client: &HttpClient, url: &str) -> Result<(u16, usize), String> {
    let exchange = async {
        let req = hyper::Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut length = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(data) = frame.data_ref() {
                length += data.len();
            }
        }
        Ok((status, length))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// Resident set now (VmRSS) of a process, in bytes.
pub fn current_rss(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") * 1024
}

/// Resident set peak (VmHWM) in bytes and CPU seconds of a process.
pub fn proc_stats(pid: u32) -> (u64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (status_kb(pid, "VmHWM:") * 1024, ticks as f64 / 100.0)
}

/// Open file descriptors of a process (sockets included).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The manager under test, started from a command line with `-H tcp://127.0.0.1:<port>
/// file://<engines file>` appended, so any Docker-API-compatible manager can be measured.
/// Killed when dropped.
pub struct ManagerProcess {
    child: Child,
    /// Its process ID, for `/proc`.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// When it was started.
    pub started: Instant,
    /// Holds the engines file for the manager's lifetime.
    _dir: tempfile::TempDir,
}

impl ManagerProcess {
    /// Starts `command` (words split on whitespace) against the engines at `addrs`.
    pub fn start(command: &str, addrs: &[String]) -> std::io::Result<ManagerProcess> {
        let dir = tempfile::tempdir()?;
        let file: PathBuf = dir.path().join("engines");
        std::fs::write(&file, addrs.join("\n") + "\n")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut words = command.split_whitespace();
        let program = words.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty manager command")
        })?;
        let started = Instant::now();
        let child = Command::new(program)
            .args(words)
            .arg("-H")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg(format!("file://{}", file.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(ManagerProcess {
            pid: child.id(),
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            started,
            _dir: dir,
        })
    }

    /// Polls `/info` until it lists `engines` Healthy nodes; the time since the start, or
    /// `None` if that took longer than `bound`.
    pub async fn wait_healthy(
        &self,
        client: &HttpClient,
        engines: usize,
        bound: Duration,
    ) -> Option<Duration> {
        let url = format!("{}/info", self.base);
        while self.started.elapsed() < bound {
            if let Ok((200, body)) = request(client, "GET", &url, "").await {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let healthy = v["SystemStatus"]
                    .as_array()
                    .map(|rows| rows.iter().filter(|r| r[1] == "Healthy").count())
                    .unwrap_or(0);
                if healthy == engines {
                    return Some(self.started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
