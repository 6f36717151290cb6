//! The manager under test: the `swarm` binary run as `swarm manage` on a loopback port
//! ([`Manager`]), or with any arguments for command-line tests ([`swarm`]).
//!
//! Tests find the binary through Cargo (`CARGO_BIN_EXE_swarm`); the example, which Cargo does not
//! tell, looks next to itself in `target/<profile>/`. This module never builds it.

use std::env;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;

use super::cli::{run_command, CliOutput};
use super::processes::{self, SET_VAR, TAG_VAR};
use super::{append_log, http, log_tail, SupportError};

/// How long a manager may take to answer `GET /_ping`, unless changed.
pub const DEFAULT_MANAGER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`swarm`] lets a command run.
const SWARM_CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful stop waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the `swarm` binary should be, whether or not it is built.
pub fn swarm_binary_path() -> PathBuf {
    // Set by Cargo for integration tests only, hence `option_env!`: the example compiles too.
    if let Some(path) = option_env!("CARGO_BIN_EXE_swarm") {
        return PathBuf::from(path);
    }
    // Examples run from target/<profile>/examples/, test binaries from target/<profile>/deps/.
    env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("swarm")))
        .unwrap_or_else(|| PathBuf::from("swarm"))
}

/// The `swarm` binary; panics asking to build it if it is missing.
pub fn swarm_binary() -> PathBuf {
    let path = swarm_binary_path();
    if !path.is_file() {
        panic!(
            "the swarm binary is not built (looked for {}): run `cargo build --bin swarm` first",
            path.display()
        );
    }
    path
}

/// A command running `swarm args…`, tagged as a process of this test run.
pub fn swarm_command(args: &[&str]) -> Command {
    let mut command = Command::new(swarm_binary());
    command.args(args).env(TAG_VAR, processes::run_tag());
    command
}

/// Runs `swarm args…` to completion (30 s at most) and returns its output and exit code.
pub fn swarm(args: &[&str]) -> CliOutput {
    run_command(swarm_command(args), None, SWARM_CLI_TIMEOUT)
}

/// A loopback port that was free a moment ago, for programs that must bind it themselves.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
}

/// Options for starting a manager; get one from [`Manager::builder`].
#[derive(Debug, Clone)]
pub struct ManagerBuilder {
    binary: Option<PathBuf>,
    /// Global flags, written before `manage` (`--log-format json`).
    global_args: Vec<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    port: Option<u16>,
    start_timeout: Duration,
    /// The manager serves TLS: it is ready when its port accepts connections.
    tls: bool,
    /// Soft and hard open-file limit to run it under (util-linux `prlimit`).
    open_files: Option<u64>,
}

impl ManagerBuilder {
    /// The manager serves TLS (`--tls`/`--tlsverify` among the arguments), so readiness is its
    /// port accepting TCP connections rather than a plain-HTTP `GET /_ping`.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Adds a global flag (or its value) before `manage`.
    pub fn global_arg(mut self, arg: &str) -> Self {
        self.global_args.push(arg.to_string());
        self
    }

    /// Adds an argument after `manage -H tcp://…` and before the discovery URL.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Adds arguments, like [`ManagerBuilder::arg`].
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable for the manager (e.g. `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Serves on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Runs this program instead of the `swarm` binary (it gets the same arguments).
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Runs the manager with this soft and hard open-file limit (`ulimit -n`).
    pub fn open_file_limit(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
    }

    /// How long the manager may take to answer its first ping (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Runs `swarm <global args> manage -H tcp://127.0.0.1:PORT <args> <discovery>` (no
    /// discovery argument when `discovery` is empty) and waits until `GET /_ping` answers 200.
    pub fn try_start(self, discovery: &str) -> Result<Manager, SupportError> {
        processes::sweep_leftovers();
        let binary = match self.binary {
            Some(binary) => binary,
            None => swarm_binary(),
        };
        let port = self.port.unwrap_or_else(free_port);
        let mut args = self.global_args;
        args.extend([
            "manage".to_string(),
            "-H".to_string(),
            format!("tcp://127.0.0.1:{port}"),
        ]);
        args.extend(self.args);
        if !discovery.is_empty() {
            args.push(discovery.to_string());
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}manager-", processes::owned_prefix()))
            .tempdir()?;
        let id = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("temp dir names are UTF-8")
            .to_string();
        let manager = Manager {
            binary,
            args,
            envs: self.envs,
            port,
            log_path: dir.path().join("manager.log"),
            id,
            start_timeout: self.start_timeout,
            tls: self.tls,
            open_files: self.open_files,
            child: Mutex::new(None),
            _dir: dir,
        };
        manager.launch(&mut manager.lock())?;
        Ok(manager)
    }

    /// Like [`ManagerBuilder::try_start`], but panics with the reason and the manager's log.
    #[track_caller]
    pub fn start(self, discovery: &str) -> Manager {
        match self.try_start(discovery) {
            Ok(manager) => manager,
            Err(error) => panic!("cannot start the manager:\n{error}"),
        }
    }
}

/// A running `swarm manage`, stopped when dropped (also when a test panics).
pub struct Manager {
    binary: PathBuf,
    /// Everything after the binary: `manage -H tcp://… <extra> <discovery>`.
    args: Vec<String>,
    envs: Vec<(String, String)>,
    port: u16,
    log_path: PathBuf,
    /// Name of the directory, carried by the process as `SHOAL_TEST_SET`.
    id: String,
    start_timeout: Duration,
    /// See [`ManagerBuilder::tls`].
    tls: bool,
    /// See [`ManagerBuilder::open_file_limit`].
    open_files: Option<u64>,
    child: Mutex<Option<Child>>,
    /// Holds the log; declared last so it is removed after the process is stopped.
    _dir: TempDir,
}

impl Manager {
    /// Starts a manager over `discovery` (e.g. [`super::EngineSet::nodes_url`]); panics on
    /// failure with the manager's log.
    #[track_caller]
    pub fn start(discovery: &str) -> Manager {
        Self::builder().start(discovery)
    }

    /// Options: extra arguments, environment, port, binary, timeout.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            binary: None,
            global_args: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
            port: None,
            start_timeout: DEFAULT_MANAGER_START_TIMEOUT,
            tls: false,
            open_files: None,
        }
    }

    /// `tcp://127.0.0.1:PORT`, for `docker -H`.
    pub fn host(&self) -> String {
        format!("tcp://{}", self.addr())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        let mut child = self.lock();
        let child = child.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// The identity its process carries as `SHOAL_TEST_SET`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Everything the manager wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Where its log is.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited after 10 s.
    pub fn stop(&self) {
        if let Some(mut child) = self.lock().take() {
            processes::signal(child.id(), Signal::TERM);
            if !processes::wait_child(&mut child, STOP_GRACE) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Waits up to `timeout` for the manager to exit on its own; its exit status if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut guard = self.lock();
        let child = guard.as_mut()?;
        let status = super::poll_for(timeout, || child.try_wait().ok().flatten())?;
        guard.take();
        Some(status)
    }

    /// Starts it again with the same arguments and port (killing it first if it runs) and waits
    /// until it answers; panics on failure.
    #[track_caller]
    pub fn restart(&self) {
        let mut child = self.lock();
        if let Some(mut old) = child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        if let Err(error) = self.launch(&mut child) {
            panic!("cannot restart the manager:\n{error}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn launch(&self, slot: &mut Option<Child>) -> Result<(), SupportError> {
        let log = append_log(&self.log_path)?;
        let mut command = match self.open_files {
            Some(limit) => {
                let mut command = processes::tied_command("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.binary);
                command
            }
            None => processes::tied_command(&self.binary),
        };
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env(SET_VAR, &self.id)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = processes::spawn_tied(command)
            .map_err(|e| SupportError::new(format!("cannot run {}: {e}", self.binary.display())))?;
        let child = slot.insert(child);
        let started = Instant::now();
        let addr = self.addr();
        let problem = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break format!("exited ({status}) before answering GET /_ping on {addr}");
            }
            let ready = if self.tls {
                std::net::TcpStream::connect(&addr).is_ok()
            } else {
                http::ping(&addr)
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() >= self.start_timeout {
                break format!(
                    "did not answer GET /_ping on {addr} within {:?}",
                    self.start_timeout
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(SupportError::new(format!(
            "the manager `{} {}` {problem}; last lines of its log:\n{}",
            self.binary.display(),
            self.args.join(" "),
            log_tail(&self.log_path, 30)
        )))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
        super::keep_log(&self.log_path, &format!("{}.log", self.id));
    }
}

/// Refresh flags that make health changes and new containers visible within a second or two.
pub const FAST_REFRESH: [&str; 4] = [
    "--engine-refresh-min-interval",
    "1s",
    "--engine-refresh-max-interval",
    "2s",
];

impl Manager {
    /// Starts a replicated manager (`--replication`, lock TTL `ttl` such as `4s`) over the
    /// key-value `discovery`, advertising its own loopback address, with a 1 s heartbeat and
    /// fast engine refreshes.
    #[track_caller]
    pub fn replicated(discovery: &str, ttl: &str) -> Manager {
        Manager::replicated_with(discovery, ttl, &[])
    }

    /// [`Manager::replicated`] with `extra` flags (e.g. `--discovery-opt kv.etcdapi=v2`).
    pub fn replicated_with(discovery: &str, ttl: &str, extra: &[&str]) -> Manager {
        let port = free_port();
        let advertise = format!("127.0.0.1:{port}");
        Manager::builder()
            .port(port)
            .args(&[
                "--replication",
                "--replication-ttl",
                ttl,
                "--advertise",
                &advertise,
                "--heartbeat",
                "1s",
            ])
            .args(&FAST_REFRESH)
            .args(extra)
            .start(discovery)
    }

    /// Starts a manager over `engines` with [`FAST_REFRESH`] plus `extra` flags, and waits until
    /// it reports every engine Healthy.
    #[track_caller]
    pub fn start_healthy(engines: &super::EngineSet, extra: &[&str]) -> Manager {
        let m = Manager::builder()
            .args(&FAST_REFRESH)
            .args(extra)
            .start(&engines.nodes_url());
        let want = engines.len();
        super::wait_until(Duration::from_secs(30), "every node healthy", || {
            m.healthy_nodes() == Some(want)
        });
        m
    }

    /// The `└ Status` row of node `name` in `GET /info` (`Healthy`, `Unhealthy`, …).
    pub fn node_status(&self, name: &str) -> Option<String> {
        let info: serde_json::Value = super::http::get(&self.addr(), "/info").ok()?.json().ok()?;
        let rows = info["SystemStatus"].as_array()?;
        let at = rows.iter().position(|r| r[0] == format!(" {name}"))?;
        rows[at..]
            .iter()
            .find(|r| r[0] == "  └ Status")
            .and_then(|r| r[1].as_str().map(str::to_string))
    }

    /// How many nodes `GET /info` reports Healthy right now; `None` when it does not answer.
    pub fn healthy_nodes(&self) -> Option<usize> {
        super::http::get(&self.addr(), "/info")
            .ok()
            .and_then(|r| r.json().ok())
            .and_then(|v| {
                v["SystemStatus"]
                    .as_array()
                    .map(|rows| rows.iter().filter(|r| r[1] == "Healthy").count())
            })
    }
}
