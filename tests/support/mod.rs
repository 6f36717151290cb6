//! Integration-test support: real Docker engines, the shoal manager and docker CLIs.
//!
//! Every integration test pulls this in with `mod support;`, and `examples/local_cluster.rs` with
//! `#[path = "../tests/support/mod.rs"] mod support;`, so one piece of code serves both. That is
//! why nothing here uses test-only macros or `env!` values that exist only for test targets.
//!
//! - [`engines`] starts real `dockerd` engines, each in its own network, uts, mount and pid
//!   namespaces, serving the API on a loopback port of the host ([`EngineSet`], [`Engine`]).
//! - [`image`] builds the deterministic `busybox:latest` test image from the host's static
//!   busybox and loads it into engines ([`busybox_image`]).
//! - [`manager`] runs the `swarm` binary under test ([`Manager`], [`swarm`]).
//! - [`balancer`] runs HAProxy in front of several managers ([`balancer::Balancer`]).
//! - [`cli`] runs the docker CLIs, legacy (20.10) and modern, with a timeout ([`DockerCli`]).
//! - [`http`] is a tiny blocking HTTP/1.1 client for pings and raw API checks.
//! - [`registry`] runs a local image registry that engines reach as `127.0.0.1:5000`
//!   ([`Registry`], with [`EngineSetBuilder::registry`]).
//! - [`stores`] starts etcd, ZooKeeper and Prometheus, fakes Consul, runs `swarm join` agents
//!   and makes TLS certificates.
//!
//! Private helpers own the host preconditions (`host`) and the life of every process started
//! here (`processes`): children carry a run tag so leftovers of a crashed run are swept by pid at
//! the next start, and die with the test process.
//!
//! Everything is blocking and thread-based, so it works the same from plain `#[test]`s, from the
//! example, and (inside `spawn_blocking`, or at the start of a test before async work) from
//! tokio tests.
//!
//! ```ignore
//! mod support;
//! use support::{EngineSet, Manager};
//!
//! #[test]
//! fn lists_containers_of_every_engine() {
//!     let engines = EngineSet::start(2);
//!     engines[0].docker(&["run", "-d", "busybox", "sleep", "60"]).assert_success();
//!     let manager = Manager::start(&engines.nodes_url());
//!     let ps = support::DockerCli::legacy().run(&manager.host(), &["ps", "-q"]);
//!     assert_eq!(ps.assert_success().stdout_lines().len(), 1);
//! }
//! ```
// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod balancer;
pub mod cli;
pub mod engines;
mod host;
pub mod http;
pub mod image;
pub mod manager;
mod processes;
pub mod registry;
pub mod stores;
pub mod terminal;

use std::fmt;
use std::time::{Duration, Instant};

pub use cli::{CliFlavor, CliOutput, DockerCli};
pub use engines::{Engine, EngineSet, EngineSetBuilder};
pub use image::{busybox_image, TestImage};
pub use manager::{swarm, Manager, ManagerBuilder};
pub use processes::{processes_with, sweep_leftovers_now, SET_VAR, TAG_VAR};
pub use registry::{Registry, REGISTRY_ADDRESS};

/// Why a support operation failed, as one readable message (often with the tail of a log).
///
/// `Debug` prints the message as is, so `.unwrap()` and `.expect()` show it legibly.
pub struct SupportError(String);

impl SupportError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        SupportError(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SupportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SupportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SupportError {}

impl From<std::io::Error> for SupportError {
    fn from(error: std::io::Error) -> Self {
        SupportError(error.to_string())
    }
}

/// Calls `condition` until it returns true, for at most `timeout`; returns whether it did.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll_for(timeout, || condition().then_some(())).is_some()
}

/// Calls `probe` until it returns `Some`, for at most `timeout`, and returns that value.
pub fn poll_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    // Start fast so quick conditions cost little, then back off so slow ones cost little CPU.
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Waits until `condition` holds; panics after `timeout` naming `what` was awaited and where.
///
/// `what` completes the sentence "timed out waiting until …", e.g. `"node-1 is healthy"`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    if !poll_until(timeout, condition) {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Waits until `probe` returns `Some` and returns its value; panics like [`wait_until`].
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    match poll_for(timeout, probe) {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// The last `lines` lines of the file at `path`, or a note saying why it could not be read.
pub(crate) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            if all.is_empty() {
                return "(empty)".to_string();
            }
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Copies a log to `$SHOAL_TEST_LOGS/<name>` when that variable is set, so CI can keep the logs
/// of processes whose directories are removed at the end of a test.
pub(crate) fn keep_log(path: &std::path::Path, name: &str) {
    if let Some(dir) = std::env::var_os("SHOAL_TEST_LOGS") {
        let dir = std::path::PathBuf::from(dir);
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::copy(path, dir.join(name));
        }
    }
}

/// Opens (creating) a log file for appending: restarted processes add to the same log.
pub(crate) fn append_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}
