//! Real Docker engines for integration tests.
//!
//! Each [`Engine`] is a `dockerd` with its own data root, exec root, key, cgroup parent and log,
//! running inside private namespaces made by `unshare`:
//!
//! - network: only `lo` and the engine's own bridge, so containers, user networks and published
//!   ports work without touching the host's interfaces, routes or iptables;
//! - uts: its hostname is `node-N`, which is the engine name swarm shows;
//! - pid: dockerd is PID 1 there, so killing it takes containerd, the shims and every container
//!   with it;
//! - mount: `/run` is a private tmpfs and overlay mounts never reach the host.
//!
//! The API is nevertheless served on `127.0.0.1:PORT` in the host's namespace: the test process
//! binds that socket and hands it to dockerd as fd 3 (systemd-style socket activation, `-H
//! fd://`). Every engine also listens on `unix://<dir>/docker.sock`.
//!
//! This module starts, kills, restarts and stops engines and removes what they leave; how
//! processes are tied to the test run lives in `processes`, the test image in `image`.

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::ops::Index;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;

use super::cli::{CliOutput, DockerCli};
use super::image::{busybox_image, TestImage};
use super::processes::{self, SET_VAR};
use super::{append_log, host, http, log_tail, SupportError};

/// How long an engine may take to answer `GET /_ping` after it is launched, unless changed.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(40);

/// How long a graceful stop waits for dockerd to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many log lines an error about an engine shows.
const LOG_LINES: usize = 25;

/// Runs as PID 1 inside the new namespaces, then becomes dockerd (`"$@"`).
///
/// The listening socket arrives as stdin because `std::process::Command` can only place
/// descriptors on 0–2 without unsafe code; it is moved to fd 3, where socket activation
/// (`LISTEN_FDS=1`) expects it, and stdin goes back to /dev/null.
const INNER_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755,size=64m shoal-run /run
ip link set lo up
echo "$SHOAL_ENGINE_HOSTNAME" > /proc/sys/kernel/hostname
if [ -n "$SHOAL_REGISTRY_SOCKET" ]; then
  socat TCP-LISTEN:5000,bind=127.0.0.1,fork,reuseaddr "UNIX-CONNECT:$SHOAL_REGISTRY_SOCKET" </dev/null >/dev/null 2>&1 &
fi
exec 3<&0 0</dev/null
exec "$@"
"#;

/// Options for starting a set of engines; get one from [`EngineSet::builder`].
#[derive(Debug, Clone)]
pub struct EngineSetBuilder {
    count: usize,
    first_index: usize,
    /// `(engine index or None for every engine, "key=value")`.
    labels: Vec<(Option<usize>, String)>,
    /// `(engine index or None for every engine, argument)`.
    dockerd_args: Vec<(Option<usize>, String)>,
    load_image: bool,
    start_timeout: Duration,
    /// A registry's unix socket that `127.0.0.1:5000` inside every engine forwards to.
    registry_socket: Option<PathBuf>,
    /// `(ca, cert, key)`: dockerd serves its TCP port with `--tlsverify` and these files.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl EngineSetBuilder {
    /// Makes `127.0.0.1:5000` inside every engine's network namespace reach the registry
    /// serving on the unix socket `socket` (see the `registry` module), through a `socat` started
    /// next to dockerd; it dies with the engine. Panics if socat is missing.
    pub fn registry(mut self, socket: &Path) -> Self {
        if host::find_program("socat").is_none() {
            panic!("`socat` not found (Debian package socat): run `bash tests/run.sh` as root");
        }
        self.registry_socket = Some(socket.to_path_buf());
        self
    }

    /// Serves every engine's TCP port over TLS, requiring client certificates signed by `ca`
    /// (`dockerd --tlsverify`). The support code then reaches the engines through their unix
    /// sockets; [`Engine::addr`] stays the TLS address.
    pub fn tls_verify(mut self, ca: &Path, cert: &Path, key: &Path) -> Self {
        self.tls = Some((ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Adds daemon label `key=value` to every engine (`dockerd --label`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((None, format!("{key}={value}")));
        self
    }

    /// Adds daemon label `key=value` to the engine at position `index` of the set (0-based).
    pub fn node_label(mut self, index: usize, key: &str, value: &str) -> Self {
        self.labels.push((Some(index), format!("{key}={value}")));
        self
    }

    /// Adds an argument to every engine's dockerd command line.
    pub fn dockerd_arg(mut self, arg: &str) -> Self {
        self.dockerd_args.push((None, arg.to_string()));
        self
    }

    /// Adds an argument to the dockerd command line of the engine at position `index`.
    pub fn node_dockerd_arg(mut self, index: usize, arg: &str) -> Self {
        self.dockerd_args.push((Some(index), arg.to_string()));
        self
    }

    /// Numbers the engines from `first` (hostnames `node-<first>`, …), so that a second set in
    /// the same test gets names distinct from the first.
    pub fn first_index(mut self, first: usize) -> Self {
        self.first_index = first;
        self
    }

    /// Leaves the engines without the busybox test image.
    pub fn without_image(mut self) -> Self {
        self.load_image = false;
        self
    }

    /// How long each engine may take to answer its first ping (default 40 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the engines in parallel and waits until each answers and has the test image.
    /// On failure, whatever was started is stopped again.
    pub fn try_start(self) -> Result<EngineSet, SupportError> {
        let tools = host::tools();
        processes::sweep_leftovers();
        let image = self.load_image.then(busybox_image);
        let dir = tempfile::Builder::new()
            .prefix(&processes::owned_prefix())
            .tempdir()?;
        let id = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("temp dir names are UTF-8")
            .to_string();
        let mut engines = Vec::with_capacity(self.count);
        for position in 0..self.count {
            engines.push(Engine::new(
                &self,
                position,
                &id,
                dir.path(),
                &tools.dockerd,
            )?);
        }
        let set = EngineSet { engines, id, dir };
        let started = Instant::now();
        let failures: Vec<String> = thread::scope(|scope| {
            let starts: Vec<_> = set
                .engines
                .iter()
                .map(|engine| scope.spawn(move || engine.first_start(image)))
                .collect();
            starts
                .into_iter()
                .filter_map(|start| match start.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some("an engine start panicked".to_string()),
                })
                .collect()
        });
        if !failures.is_empty() {
            // Dropping the set stops the engines that did start and removes the directory.
            drop(set);
            return Err(SupportError::new(failures.join("\n\n")));
        }
        if std::env::var_os("SHOAL_TEST_VERBOSE").is_some() {
            eprintln!(
                "shoal test support: {} engine(s) ready in {:.1?}",
                set.len(),
                started.elapsed()
            );
        }
        Ok(set)
    }

    /// Like [`EngineSetBuilder::try_start`], but panics with the reason (and engine logs).
    #[track_caller]
    pub fn start(self) -> EngineSet {
        match self.try_start() {
            Ok(set) => set,
            Err(error) => panic!("cannot start test engines:\n{error}"),
        }
    }
}

/// A group of running engines that is stopped, and its files removed, when dropped, also when
/// a test panics.
///
/// Index it (`engines[0]`) or iterate over [`EngineSet::engines`].
pub struct EngineSet {
    /// Declared before `dir` so engines stop before their files are removed.
    engines: Vec<Engine>,
    /// Name of `dir`, also the `SHOAL_TEST_SET` value every process of the set carries.
    id: String,
    /// Holds each engine's data root, exec root, socket and log.
    dir: TempDir,
}

impl EngineSet {
    /// Starts `count` engines named `node-0` … with the busybox image loaded; panics on failure.
    #[track_caller]
    pub fn start(count: usize) -> EngineSet {
        Self::builder(count).start()
    }

    /// Options for `count` engines: labels, dockerd flags, names, image, timeout.
    pub fn builder(count: usize) -> EngineSetBuilder {
        EngineSetBuilder {
            count,
            first_index: 0,
            labels: Vec::new(),
            dockerd_args: Vec::new(),
            load_image: true,
            start_timeout: DEFAULT_START_TIMEOUT,
            registry_socket: None,
            tls: None,
        }
    }

    /// The engines, in order.
    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    /// Iterates over the engines.
    pub fn iter(&self) -> std::slice::Iter<'_, Engine> {
        self.engines.iter()
    }

    /// How many engines the set has.
    pub fn len(&self) -> usize {
        self.engines.len()
    }

    /// Whether the set has no engine.
    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }

    /// Every engine's `127.0.0.1:PORT`.
    pub fn addrs(&self) -> Vec<String> {
        self.engines.iter().map(Engine::addr).collect()
    }

    /// A discovery URL listing every engine: `nodes://127.0.0.1:P0,127.0.0.1:P1,…`.
    pub fn nodes_url(&self) -> String {
        format!("nodes://{}", self.addrs().join(","))
    }

    /// The set's identity: its directory name, carried by its processes as `SHOAL_TEST_SET`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory holding the engines' files (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops every engine now (same as dropping the set).
    pub fn stop(self) {}
}

impl Index<usize> for EngineSet {
    type Output = Engine;

    fn index(&self, index: usize) -> &Engine {
        &self.engines[index]
    }
}

impl<'a> IntoIterator for &'a EngineSet {
    type Item = &'a Engine;
    type IntoIter = std::slice::Iter<'a, Engine>;

    fn into_iter(self) -> Self::IntoIter {
        self.engines.iter()
    }
}

impl Drop for EngineSet {
    fn drop(&mut self) {
        // In parallel: each graceful stop can take seconds.
        thread::scope(|scope| {
            for engine in &self.engines {
                scope.spawn(move || engine.stop());
            }
        });
    }
}

/// Pids of every process (dockerd, containerd, shims, launchers) of the set with id `set_id`,
/// e.g. to check that nothing outlives a dropped set.
pub fn processes_of_set(set_id: &str) -> Vec<u32> {
    processes::processes_with(SET_VAR, set_id)
}

/// One real Docker engine. Methods take `&self`, so engines can be shared between threads.
pub struct Engine {
    /// `node-N`: hostname inside the engine's namespace, hence its name in `docker info`.
    name: String,
    /// Loopback port of the API in the host namespace; kept across restarts.
    port: u16,
    /// This engine's directory inside the set's.
    dir: PathBuf,
    /// `--cgroup-parent`, without the leading slash; removed after the engine dies.
    cgroup: String,
    /// The set's id, given to every process as `SHOAL_TEST_SET`.
    set_id: String,
    /// dockerd and every argument after it.
    command_line: Vec<String>,
    start_timeout: Duration,
    /// See [`EngineSetBuilder::registry`].
    registry_socket: Option<PathBuf>,
    /// Whether the TCP port speaks TLS (then the support code uses the unix socket).
    tls: bool,
    state: Mutex<EngineState>,
}

/// What changes as an engine is killed and restarted.
struct EngineState {
    /// The socket bound when the engine was created, until the first launch consumes it.
    listener: Option<TcpListener>,
    running: Option<Running>,
}

/// A launched engine.
struct Running {
    /// `setpriv`/`unshare`, our direct child: it waits for dockerd, so its exit means dockerd's.
    launcher: Child,
    /// dockerd's pid in the host's pid namespace (it is 1 in its own).
    dockerd: u32,
}

impl Engine {
    fn new(
        options: &EngineSetBuilder,
        position: usize,
        set_id: &str,
        set_dir: &Path,
        dockerd: &Path,
    ) -> Result<Engine, SupportError> {
        let name = format!("node-{}", options.first_index + position);
        let dir = set_dir.join(&name);
        fs::create_dir_all(dir.join("data"))?;
        // Bound now, in the host namespace, so the port is known before dockerd runs.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        // Our own key keeps engine IDs distinct (the default is shared /etc/docker/key.json).
        let config = serde_json::json!({ "deprecated-key-path": dir.join("key.json") });
        fs::write(dir.join("daemon.json"), config.to_string())?;
        let cgroup = format!("{set_id}-{name}");
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut command_line = vec![
            path(dockerd),
            "-H".into(),
            "fd://".into(),
            "-H".into(),
            format!("unix://{}", path(&dir.join("docker.sock"))),
            "--config-file".into(),
            path(&dir.join("daemon.json")),
            "--data-root".into(),
            path(&dir.join("data")),
            "--exec-root".into(),
            path(&dir.join("exec")),
            "--pidfile".into(),
            path(&dir.join("exec").join("dockerd.pid")),
            "--cgroup-parent".into(),
            format!("/{cgroup}"),
            "--iptables=false".into(),
        ];
        let applies = |target: &Option<usize>| target.is_none_or(|i| i == position);
        for (_, label) in options.labels.iter().filter(|(t, _)| applies(t)) {
            command_line.push(format!("--label={label}"));
        }
        for (_, arg) in options.dockerd_args.iter().filter(|(t, _)| applies(t)) {
            command_line.push(arg.clone());
        }
        if let Some((ca, cert, key)) = &options.tls {
            command_line.extend([
                "--tlsverify".into(),
                format!("--tlscacert={}", path(ca)),
                format!("--tlscert={}", path(cert)),
                format!("--tlskey={}", path(key)),
            ]);
        }
        Ok(Engine {
            name,
            port,
            dir,
            cgroup,
            set_id: set_id.to_string(),
            command_line,
            start_timeout: options.start_timeout,
            registry_socket: options.registry_socket.clone(),
            tls: options.tls.is_some(),
            state: Mutex::new(EngineState {
                listener: Some(listener),
                running: None,
            }),
        })
    }

    /// `node-N`, the engine's hostname and its name in `docker info`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:PORT` where the API answers.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tcp://127.0.0.1:PORT`, for `docker -H`.
    pub fn host(&self) -> String {
        format!("tcp://{}", self.addr())
    }

    /// The API port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The engine's unix socket, also served by dockerd.
    pub fn unix_socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The engine's data root (kept across kill and restart).
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// dockerd's pid (in the host's pid namespace) while it runs.
    pub fn pid(&self) -> Option<u32> {
        let mut state = self.lock();
        if Self::alive(&mut state) {
            state.running.as_ref().map(|r| r.dockerd)
        } else {
            None
        }
    }

    /// Whether dockerd is running (it may not answer yet, or any more).
    pub fn is_running(&self) -> bool {
        Self::alive(&mut self.lock())
    }

    /// Whether the API answers `GET /_ping` with 200 right now.
    pub fn ping(&self) -> bool {
        http::ping(&self.admin_addr())
    }

    /// Where the support code talks to the engine: its TCP address, or its unix socket when the
    /// TCP port speaks TLS.
    fn admin_addr(&self) -> String {
        if self.tls {
            format!("unix://{}", self.unix_socket().display())
        } else {
            self.addr()
        }
    }

    /// Everything dockerd logged, across restarts.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// `GET /info`, parsed.
    pub fn info(&self) -> Result<serde_json::Value, SupportError> {
        let response = http::get(&self.admin_addr(), "/info")
            .map_err(|e| SupportError::new(format!("{}: GET /info: {e}", self.name)))?;
        response
            .json()
            .map_err(|e| SupportError::new(format!("{}: GET /info: {e}", self.name)))
    }

    /// Runs the default docker CLI (legacy when present) against this engine directly (over
    /// its unix socket when the TCP port speaks TLS).
    pub fn docker(&self, args: &[&str]) -> CliOutput {
        let host = if self.tls {
            format!("unix://{}", self.unix_socket().display())
        } else {
            self.host()
        };
        DockerCli::default_cli().run(&host, args)
    }

    /// Runs `cli` against this engine directly.
    pub fn docker_with(&self, cli: &DockerCli, args: &[&str]) -> CliOutput {
        cli.run(&self.host(), args)
    }

    /// Loads `image` into the engine.
    pub fn load_image(&self, image: &TestImage) -> Result<(), SupportError> {
        image.load_into(&self.admin_addr())
    }

    /// Kills the engine like pulling the plug: SIGKILL to dockerd (taking its containers with
    /// it) and its launcher, then waits until they are gone and removes leftover cgroups. The
    /// data stays for [`Engine::restart`]; the port refuses connections until then.
    pub fn kill(&self) {
        Self::kill_locked(&mut self.lock(), &self.cgroup);
    }

    /// Freezes dockerd with SIGSTOP: the kernel still accepts connections on its port, but
    /// nothing answers until [`Engine::thaw`].
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            processes::signal(pid, Signal::STOP);
        }
    }

    /// Lets a frozen dockerd run again (SIGCONT).
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            processes::signal(pid, Signal::CONT);
        }
    }

    /// Stops the engine gracefully: kills its running containers, SIGTERM to dockerd, SIGKILL
    /// if it has not exited after 10 s. The data stays for [`Engine::restart`].
    pub fn stop(&self) {
        let mut state = self.lock();
        if !Self::alive(&mut state) {
            Self::kill_locked(&mut state, &self.cgroup);
            return;
        }
        // A frozen engine must run to stop.
        if let Some(running) = state.running.as_ref() {
            processes::signal(running.dockerd, Signal::CONT);
        }
        // dockerd's own shutdown waits out each container's stop timeout; killing them first
        // keeps teardown fast.
        self.kill_containers();
        if let Some(running) = state.running.as_mut() {
            processes::signal(running.dockerd, Signal::TERM);
            processes::wait_child(&mut running.launcher, STOP_GRACE);
        }
        Self::kill_locked(&mut state, &self.cgroup);
    }

    /// Starts the engine again on the same port with the same data (killing it first if it
    /// runs) and waits until it answers; panics on failure.
    #[track_caller]
    pub fn restart(&self) {
        if let Err(error) = self.try_restart() {
            panic!("cannot restart {}:\n{error}", self.name);
        }
    }

    /// Like [`Engine::restart`], returning the failure.
    pub fn try_restart(&self) -> Result<(), SupportError> {
        let mut state = self.lock();
        Self::kill_locked(&mut state, &self.cgroup);
        self.launch(&mut state)
    }

    fn lock(&self) -> MutexGuard<'_, EngineState> {
        // A panic while holding the lock leaves the state usable: every step re-checks it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    fn alive(state: &mut EngineState) -> bool {
        match state.running.as_mut() {
            Some(running) => {
                matches!(running.launcher.try_wait(), Ok(None))
                    && processes::is_alive(running.dockerd)
            }
            None => false,
        }
    }

    fn first_start(&self, image: Option<&TestImage>) -> Result<(), SupportError> {
        self.launch(&mut self.lock())?;
        if let Some(image) = image {
            self.load_image(image)
                .map_err(|e| SupportError::new(format!("{}: {e}", self.name)))?;
        }
        Ok(())
    }

    /// Starts dockerd and waits until it answers; on failure kills it and explains with its log.
    fn launch(&self, state: &mut EngineState) -> Result<(), SupportError> {
        let listener = match state.listener.take() {
            Some(listener) => listener,
            None => self.bind_again()?,
        };
        // A killed engine leaves pid files and sockets behind that would confuse the next one.
        let exec_root = self.dir.join("exec");
        if exec_root.exists() {
            fs::remove_dir_all(&exec_root)?;
        }
        let mut log = append_log(&self.log_path())?;
        writeln!(
            log,
            "=== shoal test support: starting {} on {} ===",
            self.name,
            self.addr()
        )?;
        let tools = host::tools();
        let mut command = processes::tied_command(&tools.unshare);
        command
            .args([
                "--net",
                "--uts",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child=SIGKILL",
                "/bin/sh",
                "-c",
                INNER_SCRIPT,
                "shoal-engine",
            ])
            .args(&self.command_line)
            .env(SET_VAR, &self.set_id)
            .env("SHOAL_ENGINE_HOSTNAME", &self.name)
            .env(
                "SHOAL_REGISTRY_SOCKET",
                self.registry_socket.as_deref().unwrap_or(Path::new("")),
            )
            .env("PATH", host::system_path())
            // dockerd is PID 1 of its namespace, and socket activation checks LISTEN_PID.
            .env("LISTEN_FDS", "1")
            .env("LISTEN_PID", "1")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(log.try_clone()?)
            .stderr(log);
        let launcher = processes::spawn_tied(command)
            .map_err(|e| SupportError::new(format!("{}: cannot run unshare: {e}", self.name)))?;
        let launcher_pid = launcher.id();
        state.running = Some(Running {
            launcher,
            dockerd: 0,
        });
        let result = self.await_dockerd(state, launcher_pid, &tools.dockerd);
        if result.is_err() {
            Self::kill_locked(state, &self.cgroup);
        }
        result
    }

    /// Finds dockerd under the launcher, then waits for its first successful ping.
    fn await_dockerd(
        &self,
        state: &mut EngineState,
        launcher_pid: u32,
        dockerd: &Path,
    ) -> Result<(), SupportError> {
        let started = Instant::now();
        let dockerd = fs::canonicalize(dockerd).unwrap_or_else(|_| dockerd.to_path_buf());
        // unshare forks once; its child execs sh, which execs dockerd.
        let found = super::poll_for(Duration::from_secs(10), || {
            let children =
                fs::read_to_string(format!("/proc/{launcher_pid}/task/{launcher_pid}/children"))
                    .unwrap_or_default();
            let child = children.split_whitespace().find_map(|pid| {
                let pid: u32 = pid.parse().ok()?;
                let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                (exe == dockerd).then_some(pid)
            });
            match child {
                Some(pid) => Some(Some(pid)),
                None if !processes::is_alive(launcher_pid) => Some(None),
                None => None,
            }
        });
        let Some(Some(pid)) = found else {
            return Err(self.failure("dockerd did not start"));
        };
        if let Some(running) = state.running.as_mut() {
            running.dockerd = pid;
        }
        let addr = self.admin_addr();
        let deadline = started + self.start_timeout;
        while Instant::now() < deadline {
            if http::ping(&addr) {
                return Ok(());
            }
            if !Self::alive(state) {
                return Err(self.failure("dockerd exited before answering GET /_ping"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(self.failure(&format!(
            "dockerd did not answer GET /_ping within {:?}",
            self.start_timeout
        )))
    }

    fn failure(&self, what: &str) -> SupportError {
        SupportError::new(format!(
            "engine {} ({}): {what}; last lines of {}:\n{}",
            self.name,
            self.addr(),
            self.log_path().display(),
            log_tail(&self.log_path(), LOG_LINES)
        ))
    }

    /// Binds the engine's port again for a restart. The old socket died with dockerd; the port
    /// may still be briefly taken (e.g. by a client's outgoing connection), hence the retries.
    fn bind_again(&self) -> Result<TcpListener, SupportError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => return Ok(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(SupportError::new(format!(
                        "{}: cannot bind 127.0.0.1:{} again: {e}",
                        self.name, self.port
                    )))
                }
            }
        }
    }

    fn kill_locked(state: &mut EngineState, cgroup: &str) {
        let Some(mut running) = state.running.take() else {
            return;
        };
        let launcher_running = matches!(running.launcher.try_wait(), Ok(None));
        // Killing dockerd first lets unshare reap it and exit by itself, leaving no zombie for
        // the host's init; unshare is only forced when dockerd is unknown or that did not happen.
        let reaped = launcher_running
            && running.dockerd != 0
            && processes::signal(running.dockerd, Signal::KILL)
            && processes::wait_child(&mut running.launcher, Duration::from_secs(5));
        if launcher_running && !reaped {
            let _ = running.launcher.kill();
        }
        let _ = running.launcher.wait();
        if running.dockerd != 0 {
            processes::wait_gone(&[running.dockerd], Duration::from_secs(10));
        }
        processes::remove_cgroups(cgroup);
    }

    fn kill_containers(&self) {
        let addr = self.admin_addr();
        let Ok(list) = http::request(
            &addr,
            "GET",
            "/containers/json",
            None,
            Duration::from_secs(3),
        ) else {
            return;
        };
        let ids: Vec<String> = list
            .json()
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect();
        for id in ids {
            let _ = http::request(
                &addr,
                "POST",
                &format!("/containers/{id}/kill"),
                None,
                Duration::from_secs(5),
            );
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
        super::keep_log(
            &self.log_path(),
            &format!("{}-{}.log", self.set_id, self.name),
        );
    }
}
