//! The standard process metrics (`process_*`, the names every Prometheus client library
//! exports), read from `/proc/self` at scrape time. A figure that cannot be read (no `/proc`,
//! an unexpected format) is left out of the scrape rather than reported as 0.
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// What `/proc` says about this process right now.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ProcessFigures {
    /// `VmRSS` of `/proc/self/status`.
    pub resident_bytes: Option<u64>,
    /// `VmSize` of `/proc/self/status`.
    pub virtual_bytes: Option<u64>,
    /// User plus system time of `/proc/self/stat`.
    pub cpu_seconds: Option<f64>,
    /// Boot time (`/proc/stat`) plus the start time of `/proc/self/stat`.
    pub start_time_seconds: Option<f64>,
    /// Entries of `/proc/self/fd` (the directory's own descriptor included).
    pub open_fds: Option<u64>,
    /// The soft `RLIMIT_NOFILE`; `None` when unlimited.
    pub max_fds: Option<u64>,
}

impl ProcessFigures {
    /// Reads the figures of this process.
    pub(super) fn read() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let times = stat_times(&stat);
        let boot = boot_time(&system);
        ProcessFigures {
            resident_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
            virtual_bytes: status_kib(&status, "VmSize:").map(|kib| kib * 1024),
            cpu_seconds: times.map(|t| (t.user + t.system) as f64 / ticks),
            start_time_seconds: times
                .zip(boot)
                .map(|(t, boot)| boot as f64 + t.start as f64 / ticks),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
        }
    }
}

/// CPU times and start time of `/proc/self/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTimes {
    user: u64,
    system: u64,
    start: u64,
}

/// Fields 14, 15 and 22 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its last `)`.
fn stat_times(stat: &str) -> Option<StatTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first one after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatTimes {
        user: field(14)?,
        system: field(15)?,
        start: field(22)?,
    })
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(system: &str) -> Option<u64> {
    system
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// A `kB` figure of `/proc/self/status` (`VmRSS:    1234 kB`).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A registry holding the figures read now, under the standard names.
pub(super) fn registry() -> Registry {
    let figures = ProcessFigures::read();
    let mut registry = Registry::default();
    let whole = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            figures.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            figures.virtual_bytes,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            figures.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            figures.max_fds,
        ),
    ];
    for (name, help, value) in whole {
        if let Some(value) = value {
            let gauge: Gauge = Gauge::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, gauge);
        }
    }
    if let Some(seconds) = figures.cpu_seconds {
        let counter: Counter<f64, AtomicU64> = Counter::default();
        counter.inc_by(seconds);
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            counter,
        );
    }
    if let Some(seconds) = figures.start_time_seconds {
        let gauge: Gauge<f64, AtomicU64> = Gauge::default();
        gauge.set(seconds);
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            gauge,
        );
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (swarm (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 8 0 12345 1000000 300 18446744073709551615";
        assert_eq!(
            stat_times(stat),
            Some(StatTimes {
                user: 250,
                system: 50,
                start: 12345
            })
        );
        assert_eq!(stat_times("garbage"), None);
        assert_eq!(stat_times("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_and_boot_time_figures_are_read_by_key() {
        let status = "Name:\tswarm\nVmSize:\t  20000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1234));
        assert_eq!(status_kib(status, "VmSize:"), Some(20000));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(boot_time("cpu 1\n"), None);
    }

    #[test]
    fn this_process_has_resident_memory_cpu_time_and_open_files() {
        let figures = ProcessFigures::read();
        assert!(figures.resident_bytes.unwrap() > 0);
        assert!(figures.cpu_seconds.unwrap() >= 0.0);
        assert!(figures.open_fds.unwrap() > 0);
        assert!(figures.start_time_seconds.unwrap() > 1_000_000_000.0);
    }
}
