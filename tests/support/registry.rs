//! A local image registry for tests: Debian's `docker-registry` (the CNCF distribution registry)
//! serving plain HTTP on a unix socket in a temp directory.
//!
//! Engines run in network namespaces of their own, where the host's loopback does not exist, but
//! a unix socket is a file they can reach. [`EngineSetBuilder::registry`] starts a forwarder in
//! every engine's namespace, so `127.0.0.1:5000` there ([`REGISTRY_ADDRESS`]) is this registry.
//! Docker treats registries on 127.0.0.0/8 as insecure by default, so no daemon flag is needed,
//! and pulls and pushes through it are real.
//!
//! This module starts and stops the registry and reads its catalog; it knows nothing of engines.
//!
//! [`EngineSetBuilder::registry`]: super::EngineSetBuilder::registry

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;

use super::processes::{self, SET_VAR};
use super::{append_log, host, log_tail, poll_until, SupportError};

/// Where engines set up with [`super::EngineSetBuilder::registry`] reach the registry.
pub const REGISTRY_ADDRESS: &str = "127.0.0.1:5000";

/// How long the registry may take to answer after it is launched.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry, stopped and its storage removed when dropped.
pub struct Registry {
    /// The registry process (`setpriv … docker-registry serve`).
    child: Mutex<Child>,
    /// The socket it serves on.
    socket: PathBuf,
    /// Its log (stdout and stderr).
    log: PathBuf,
    /// Holds the configuration, the socket, the storage and the log; declared last so the
    /// process is stopped (in `Drop`) before its files go.
    dir: TempDir,
}

impl Registry {
    /// Starts a registry; panics with the reason (and its log) on failure.
    #[track_caller]
    pub fn start() -> Registry {
        match Self::try_start() {
            Ok(r) => r,
            Err(e) => panic!("cannot start the test registry:\n{e}"),
        }
    }

    /// Starts a registry and waits until it answers `GET /v2/`.
    pub fn try_start() -> Result<Registry, SupportError> {
        processes::sweep_leftovers();
        let program = host::find_program("docker-registry").ok_or_else(|| {
            SupportError::new(
                "`docker-registry` not found (Debian package docker-registry): run `bash tests/run.sh` as root",
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}registry-", processes::owned_prefix()))
            .tempdir()?;
        let socket = dir.path().join("registry.sock");
        let log = dir.path().join("registry.log");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  net: unix\n  addr: {}\n",
                dir.path().join("data").display(),
                socket.display()
            ),
        )?;
        let out = append_log(&log)?;
        let mut command = processes::tied_command(&program);
        command
            .arg("serve")
            .arg(&config)
            .env(SET_VAR, dir.path().file_name().unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = processes::spawn_tied(command)
            .map_err(|e| SupportError::new(format!("cannot run {}: {e}", program.display())))?;
        let registry = Registry {
            child: Mutex::new(child),
            socket,
            log,
            dir,
        };
        if !poll_until(START_TIMEOUT, || {
            registry.get("/v2/").is_ok_and(|(status, _)| status == 200)
        }) {
            return Err(SupportError::new(format!(
                "the registry did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                registry.socket.display(),
                log_tail(&registry.log, 20)
            )));
        }
        Ok(registry)
    }

    /// The unix socket the registry serves on (give it to [`super::EngineSetBuilder::registry`]).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `repo` as engines name it in this registry: `127.0.0.1:5000/<repo>`.
    pub fn reference(&self, repo: &str) -> String {
        format!("{REGISTRY_ADDRESS}/{repo}")
    }

    /// Repositories the registry holds (`GET /v2/_catalog`).
    pub fn catalog(&self) -> Result<Vec<String>, SupportError> {
        let (status, body) = self.get("/v2/_catalog")?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| SupportError::new(format!("registry catalog (HTTP {status}): {e}")))?;
        Ok(v["repositories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect())
    }

    /// Tags of `repo` in the registry (`GET /v2/<repo>/tags/list`); empty when it has none.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let Ok((200, body)) = self.get(&format!("/v2/{repo}/tags/list")) else {
            return Vec::new();
        };
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["tags"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    }

    /// Everything the registry logged.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// One HTTP/1.0 `GET` over the socket: the server answers without chunking and closes, so
    /// the body is everything after the head.
    fn get(&self, path: &str) -> Result<(u16, Vec<u8>), SupportError> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: registry\r\n\r\n")?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| SupportError::new("registry answer without a header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| SupportError::new(format!("bad registry status line: {head}")))?;
        Ok((status, raw[split + 4..].to_vec()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let pid = child.id();
        processes::terminate(&[pid], Duration::from_secs(5));
        let _ = child.wait();
        super::keep_log(&self.log, "registry.log");
    }
}
