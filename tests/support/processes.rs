//! The life of every long-running process the support code starts: the run tag they carry, the
//! thread that spawns them tied to this process, signals by pid, and the sweep of what a dead run
//! left behind (processes, temp directories, cgroups).
//!
//! This module must not know what the processes are; engines and managers build their commands
//! with [`tied_command`] and start them with [`spawn_tied`]. It only ever signals pids it found
//! by tag or was handed, never processes by name.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{mpsc, Once, OnceLock};
use std::thread;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use super::host;

/// Environment variable carried by every process started here: the run tag of the test process
/// that owns it ("<pid>.<start time in clock ticks>", unique even when pids are reused).
pub const TAG_VAR: &str = "SHOAL_TEST_TAG";

/// Environment variable carried by the processes of one engine set or manager: its directory
/// name, so a test can find exactly the processes of one set.
pub const SET_VAR: &str = "SHOAL_TEST_SET";

/// Prefix of every temp directory and cgroup made here: "shoal-<run tag>-…".
pub const NAME_PREFIX: &str = "shoal-";

/// This process's run tag (see [`TAG_VAR`]).
pub fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        let ticks = stat_of(pid).map(|stat| stat.start_ticks).unwrap_or(0);
        format!("{pid}.{ticks}")
    })
}

/// A name for a temp directory or cgroup owned by this run.
pub fn owned_prefix() -> String {
    format!("{NAME_PREFIX}{}-", run_tag())
}

/// What `/proc/<pid>/stat` tells about a process.
struct ProcStat {
    /// One-letter state; `Z` (zombie) and `X` (dead) mean the process no longer runs.
    state: char,
    /// Start time since boot in clock ticks: with the pid, identifies one process for good.
    start_ticks: u64,
}

fn stat_of(pid: u32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// Whether `pid` is a running process (zombies count as gone: they hold no resources we mind).
pub fn is_alive(pid: u32) -> bool {
    stat_of(pid).is_some_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

/// Whether the test process that owns run tag `tag` still runs.
fn owner_alive(tag: &str) -> bool {
    let Some((pid, ticks)) = tag.split_once('.') else {
        return false;
    };
    match (pid.parse::<u32>(), ticks.parse::<u64>()) {
        (Ok(pid), Ok(ticks)) => stat_of(pid).is_some_and(|stat| stat.start_ticks == ticks),
        _ => false,
    }
}

/// The run tag in a name made by [`owned_prefix`], if the name is one.
fn tag_in_name(name: &str) -> Option<&str> {
    let tag = name.strip_prefix(NAME_PREFIX)?.split('-').next()?;
    let (pid, ticks) = tag.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(ticks)).then_some(tag)
}

/// Sends `signal` to `pid`; false when there is no such process.
pub fn signal(pid: u32, signal: Signal) -> bool {
    match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        Some(pid) => kill_process(pid, signal).is_ok(),
        None => false,
    }
}

/// Waits until none of `pids` runs; returns false if some still do after `timeout`.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    super::poll_until(timeout, || pids.iter().all(|&pid| !is_alive(pid)))
}

/// Stops `pids`: SIGTERM, then SIGKILL for those still running after `grace`.
pub fn terminate(pids: &[u32], grace: Duration) {
    for &pid in pids {
        signal(pid, Signal::TERM);
    }
    if !wait_gone(pids, grace) {
        for &pid in pids {
            if is_alive(pid) {
                signal(pid, Signal::KILL);
            }
        }
        wait_gone(pids, Duration::from_secs(5));
    }
}

/// Waits up to `timeout` for `child` to exit and reaps it; returns whether it exited.
pub fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    super::poll_until(timeout, || !matches!(child.try_wait(), Ok(None)))
}

/// Pids of the processes whose environment holds `var=value`.
pub fn processes_with(var: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{var}={value}");
    list_pids()
        .into_iter()
        .filter(|&pid| environment_of(pid).contains(&wanted))
        .collect()
}

fn list_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

fn environment_of(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .map(|entry| String::from_utf8_lossy(entry).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A command for `program` that dies with this test process and carries the run tag.
///
/// `setpriv --pdeathsig KILL` asks the kernel to kill it when its parent goes away, which covers
/// test binaries that are killed outright (no `Drop` runs then). The kernel ties that signal to
/// the parent *thread*, hence [`spawn_tied`] and its long-lived spawner thread. Its own process
/// group keeps a Ctrl-C in a terminal from reaching it before the owner has cleaned up.
pub fn tied_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(&host::tools().setpriv);
    command
        .args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .env(TAG_VAR, run_tag())
        .process_group(0);
    command
}

/// A request to the spawner thread.
struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `command` (from [`tied_command`]) on a thread that lives as long as the process.
///
/// The command is dropped before this returns, which closes any descriptor it was handed (such
/// as an engine's listening socket), so only the child holds it.
pub fn spawn_tied(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("shoal-test-spawner".into())
            .spawn(move || {
                for SpawnRequest { mut command, reply } in incoming {
                    let child = command.spawn();
                    drop(command);
                    let _ = reply.send(child);
                }
            })
            .expect("cannot start the test support's spawner thread");
        requests
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread dropped a request"))?
}

/// Sweeps what dead test runs left behind, once per process (engines and managers call this
/// before they start anything).
pub fn sweep_leftovers() {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(sweep_leftovers_now);
}

/// Sweeps now: stops, by pid, every process whose run tag belongs to a test process that no
/// longer runs, then removes that run's temp directories and cgroups. Runs that are still alive,
/// including this one and any running in parallel, are left alone.
pub fn sweep_leftovers_now() {
    let mine = run_tag();
    let dead = |tag: &str| tag != mine && !owner_alive(tag);
    let own_pid = std::process::id();
    let orphans: Vec<u32> = list_pids()
        .into_iter()
        .filter(|&pid| pid != own_pid)
        .filter(|&pid| {
            let prefix = format!("{TAG_VAR}=");
            environment_of(pid)
                .iter()
                .filter_map(|entry| entry.strip_prefix(&prefix))
                .any(&dead)
        })
        .collect();
    if !orphans.is_empty() {
        eprintln!("shoal test support: stopping leftovers of dead test runs: pids {orphans:?}");
        terminate(&orphans, Duration::from_secs(5));
    }
    for dir in names_under(&std::env::temp_dir()) {
        if tag_of(&dir).is_some_and(dead) {
            let _ = fs::remove_dir_all(&dir);
        }
    }
    for root in cgroup_roots() {
        for group in names_under(&root) {
            if tag_of(&group).is_some_and(dead) {
                remove_cgroup_tree(&group);
            }
        }
    }
}

fn tag_of(path: &Path) -> Option<&str> {
    tag_in_name(path.file_name()?.to_str()?)
}

fn names_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with(NAME_PREFIX))
        })
        .collect()
}

/// Where a cgroup named by `--cgroup-parent /NAME` can appear: the cgroup2 root, and one
/// directory per cgroup1 hierarchy.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = PathBuf::from("/sys/fs/cgroup");
    let mut roots = vec![base.clone()];
    if let Ok(entries) = fs::read_dir(&base) {
        roots.extend(
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.path()),
        );
    }
    roots
}

/// Removes the (empty) cgroups named `name` that containers of a killed engine left behind,
/// retrying briefly while their last processes exit.
pub fn remove_cgroups(name: &str) {
    for root in cgroup_roots() {
        let group = root.join(name);
        if group.is_dir() {
            super::poll_until(Duration::from_secs(3), || remove_cgroup_tree(&group));
        }
    }
}

/// Removes a cgroup directory and its children, deepest first. A cgroup's files are virtual and
/// go with `rmdir`, so `remove_dir_all` (which unlinks files first) cannot be used.
fn remove_cgroup_tree(group: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(group) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    fs::remove_dir(group).is_ok() || !group.exists()
}
