//! Running command-line programs from tests: the docker CLIs against an engine or a manager, and
//! any command with a timeout and captured output ([`run_command`]).
//!
//! Two docker CLIs matter to a drop-in manager: the legacy one (`/usr/bin/docker`, 20.10 from
//! Debian's docker.io, speaking API 1.41) and the modern one first on `PATH` (28.x where the
//! machine has it). Neither reads the user's configuration or environment: each gets an empty
//! `DOCKER_CONFIG`, and `DOCKER_HOST` and friends are removed.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{host, processes};

/// Where Debian's docker.io installs its CLI, the 20.10 "legacy" client.
pub const LEGACY_DOCKER: &str = "/usr/bin/docker";

/// How long a docker CLI command may run before it is killed, unless changed.
pub const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished (or timed-out) command left.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit code; `None` when it was killed by a signal (including on timeout).
    pub status: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// Whether it was killed for running longer than its timeout.
    pub timed_out: bool,
}

impl CliOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Returns itself if it exited with 0; panics showing the command and its output otherwise.
    #[track_caller]
    pub fn assert_success(self) -> Self {
        if !self.success() {
            panic!("expected success:\n{self}");
        }
        self
    }

    /// Returns itself if it ran to completion with a non-zero status; panics otherwise.
    #[track_caller]
    pub fn assert_failure(self) -> Self {
        if self.success() || self.timed_out || self.status.is_none() {
            panic!("expected a non-zero exit status:\n{self}");
        }
        self
    }

    /// Stdout without surrounding white space.
    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim()
    }

    /// The non-empty lines of stdout, trimmed.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl fmt::Display for CliOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.timed_out, self.status) {
            (true, _) => "killed after its timeout".to_string(),
            (false, Some(code)) => format!("exit status {code}"),
            (false, None) => "killed by a signal".to_string(),
        };
        write!(
            f,
            "$ {}\n({status})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs a docker-py (the Python SDK) `script` against `host` (a `tcp://` address), with
/// `docker`, `io` and `sys` imported and `client` made from the environment; killed after 180 s.
pub fn docker_py(host: &str, script: &str) -> CliOutput {
    let program =
        format!("import docker, io, sys\nclient = docker.from_env(timeout=120)\n{script}\n");
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(program)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    run_command(command, None, Duration::from_secs(180))
}

/// Runs `command` with `stdin` (or none), capturing its output, killing it after `timeout`.
///
/// Panics if the program cannot be started at all: that is a broken test setup, not a result.
pub fn run_command(mut command: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> CliOutput {
    let description = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{description}`: {e}"));
    // Feed and drain on threads: a child blocked on a full pipe would never exit.
    let feeder = stdin.zip(child.stdin.take()).map(|(data, mut pipe)| {
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    CliOutput {
        command: description,
        status: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    }
}

/// A command line as a shell would show it (without its environment).
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| {
            let part = part.to_string_lossy();
            if part.is_empty() || part.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("{part:?}")
            } else {
                part.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which docker CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliFlavor {
    /// `/usr/bin/docker`, Debian's 20.10 client.
    Legacy,
    /// The `docker` first on `PATH` (28.x on machines that have it).
    Modern,
}

/// A docker CLI binary, ready to run against any `-H` host.
#[derive(Debug, Clone)]
pub struct DockerCli {
    flavor: CliFlavor,
    path: PathBuf,
    /// An empty configuration directory, so no user config, context or credential is read.
    config: Arc<TempDir>,
    timeout: Duration,
}

impl DockerCli {
    fn new(flavor: CliFlavor, path: PathBuf) -> Self {
        let config = tempfile::Builder::new()
            .prefix(&format!("{}cli-", processes::owned_prefix()))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a DOCKER_CONFIG directory: {e}"));
        DockerCli {
            flavor,
            path,
            config: Arc::new(config),
            timeout: DEFAULT_CLI_TIMEOUT,
        }
    }

    /// The legacy CLI, `/usr/bin/docker`; panics (pointing to `tests/run.sh`) if it is missing.
    pub fn legacy() -> Self {
        let path = PathBuf::from(LEGACY_DOCKER);
        if !path.is_file() {
            panic!(
                "{LEGACY_DOCKER} not found: run `bash tests/run.sh` as root, it installs docker.io"
            );
        }
        Self::new(CliFlavor::Legacy, path)
    }

    /// The modern CLI: the `docker` first on `PATH`. On a machine with only Debian's docker.io
    /// that is the same binary as [`DockerCli::legacy`]; [`DockerCli::is_distinct`] tells.
    pub fn modern() -> Self {
        let path = host::find_in_path("docker")
            .or_else(|| host::find_program("docker"))
            .unwrap_or_else(|| {
                panic!(
                    "no docker CLI found: run `bash tests/run.sh` as root, it installs docker.io"
                )
            });
        Self::new(CliFlavor::Modern, path)
    }

    /// Every distinct docker CLI on this machine, legacy first; loop over it to test both.
    pub fn all() -> Vec<Self> {
        let legacy = Self::legacy();
        let modern = Self::modern();
        if modern.is_distinct() {
            vec![legacy, modern]
        } else {
            vec![legacy]
        }
    }

    /// The CLI used when a test does not care which: legacy when present, else modern.
    pub fn default_cli() -> Self {
        if Path::new(LEGACY_DOCKER).is_file() {
            Self::legacy()
        } else {
            Self::modern()
        }
    }

    /// Which CLI this is.
    pub fn flavor(&self) -> CliFlavor {
        self.flavor
    }

    /// "legacy" or "modern", for messages and test names.
    pub fn label(&self) -> &'static str {
        match self.flavor {
            CliFlavor::Legacy => "legacy",
            CliFlavor::Modern => "modern",
        }
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this binary differs from the legacy one (after resolving links).
    pub fn is_distinct(&self) -> bool {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canonical(&self.path) != canonical(Path::new(LEGACY_DOCKER))
    }

    /// The same CLI with another timeout per command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A command running this CLI against `host` (e.g. `tcp://127.0.0.1:2375`), to add
    /// arguments to and run with [`run_command`] when `run` is not enough.
    pub fn command(&self, host: &str) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("-H")
            .arg(host)
            .env("DOCKER_CONFIG", self.config.path())
            .env(processes::TAG_VAR, processes::run_tag());
        for var in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "DOCKER_API_VERSION",
            "DOCKER_DEFAULT_PLATFORM",
        ] {
            command.env_remove(var);
        }
        command
    }

    /// Runs `docker -H host args…` and returns what it did.
    pub fn run(&self, host: &str, args: &[&str]) -> CliOutput {
        let mut command = self.command(host);
        command.args(args);
        run_command(command, None, self.timeout)
    }

    /// Runs `docker -H host args…` with `stdin` fed to it (e.g. `docker load`).
    pub fn run_with_stdin(&self, host: &str, args: &[&str], stdin: Vec<u8>) -> CliOutput {
        let mut command = self.command(host);
        command.args(args);
        run_command(command, Some(stdin), self.timeout)
    }

    /// The client's own version, from `docker --version` (no daemon needed), e.g. "20.10.24".
    pub fn client_version(&self) -> String {
        let mut command = Command::new(&self.path);
        command
            .arg("--version")
            .env("DOCKER_CONFIG", self.config.path());
        let output = run_command(command, None, Duration::from_secs(20)).assert_success();
        output
            .stdout
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .trim_end_matches(',')
            .to_string()
    }
}
