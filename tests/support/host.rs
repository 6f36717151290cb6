//! What the host must provide to run real engines, checked once, with one clear failure.
//!
//! The tests never skip themselves when something is missing: a skipped suite looks like a green
//! one. Instead the first use panics with the full list of problems and the one command that
//! fixes them (`tests/run.sh`). This module only looks; it installs nothing.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Directories searched after `PATH`: root's usual `PATH` has the sbin ones, a user's may not.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The host programs the support code runs, resolved to paths.
pub struct HostTools {
    /// The Docker daemon.
    pub dockerd: PathBuf,
    /// util-linux `unshare`, which creates each engine's namespaces.
    pub unshare: PathBuf,
    /// util-linux `setpriv`, which ties children to the test process (parent-death signal).
    pub setpriv: PathBuf,
    /// A statically linked busybox: the whole userland of the test image.
    pub busybox: PathBuf,
}

/// The host programs, checked on first use; panics with what is missing and how to fix it.
pub fn tools() -> &'static HostTools {
    static TOOLS: OnceLock<HostTools> = OnceLock::new();
    TOOLS.get_or_init(|| match check() {
        Ok(tools) => tools,
        Err(problems) => panic!(
            "the shoal integration tests start real Docker engines, and this machine cannot:\n{}\n\
             Run `bash tests/run.sh` as root: it installs docker.io, busybox-static, iproute2 and \
             util-linux, then runs the whole suite.",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    })
}

fn check() -> Result<HostTools, Vec<String>> {
    let mut problems = Vec::new();
    if !rustix::process::geteuid().is_root() {
        problems
            .push("not running as root (engines need namespaces, mounts and cgroups)".to_string());
    }
    let mut need = |program: &str, package: &str| {
        find_program(program).unwrap_or_else(|| {
            problems.push(format!("`{program}` not found (Debian package {package})"));
            PathBuf::new()
        })
    };
    let dockerd = need("dockerd", "docker.io");
    let unshare = need("unshare", "util-linux");
    let setpriv = need("setpriv", "util-linux");
    // Used inside each engine's namespaces; resolved there through the PATH we set.
    need("ip", "iproute2");
    need("mount", "mount");
    need("docker", "docker.io");
    let busybox = Path::new("/bin/busybox").to_path_buf();
    match fs::read(&busybox) {
        Ok(bytes) if has_interpreter(&bytes) => problems.push(format!(
            "{} is dynamically linked; the test image needs the static one (Debian package \
             busybox-static)",
            busybox.display()
        )),
        Ok(_) => {}
        Err(_) => problems.push(format!(
            "{} not found (Debian package busybox-static)",
            busybox.display()
        )),
    }
    if problems.is_empty() {
        Ok(HostTools {
            dockerd,
            unshare,
            setpriv,
            busybox,
        })
    } else {
        Err(problems)
    }
}

/// The first executable named `program` in `PATH`, then in the usual system directories.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let from_path = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// The first executable named `program` in `PATH` only, as a shell would pick it.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A `PATH` for processes inside an engine's namespaces: system directories first, so dockerd
/// finds containerd, runc and docker-proxy even when the test runs with a user's `PATH`.
pub fn system_path() -> String {
    let mut dirs: Vec<String> = SYSTEM_DIRS.iter().map(|d| d.to_string()).collect();
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let dir = dir.to_string_lossy().into_owned();
            if !dir.is_empty() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs.join(":")
}

/// Whether an ELF file asks for a program interpreter (`PT_INTERP`), i.e. is dynamically linked.
/// Files that are not little-endian ELF are reported as static and fail later, visibly.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[5] != 1 {
        return false;
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")) as usize)
    };
    // Offsets of e_phoff, e_phentsize and e_phnum differ between 32- and 64-bit files.
    let (table, entry_size, entries) = match elf[4] {
        1 => (u32_at(0x1c).map(|v| v as usize), u16_at(0x2a), u16_at(0x2c)),
        2 => (u64_at(0x20), u16_at(0x36), u16_at(0x38)),
        _ => return false,
    };
    let (Some(table), Some(entry_size), Some(entries)) = (table, entry_size, entries) else {
        return false;
    };
    (0..entries).any(|i| u32_at(table + i * entry_size) == Some(PT_INTERP))
}
