//! Command line: flags and environment variables of `swarm` and its commands, parsed into typed
//! options. Parsing does no I/O beyond reading the environment through the caller's lookup.
use std::path::PathBuf;
use std::time::Duration;

/// Options of `swarm manage` (SPEC §1.2), validated.
#[derive(Debug, Clone)]
pub struct ManageOptions {
    /// The discovery URL (positional argument or `SWARM_DISCOVERY`).
    pub discovery: String,
    /// Listen addresses, normalised to `tcp://host:port` or `unix:///path`.
    pub hosts: Vec<String>,
    /// `spread`, `binpack` or `random` (`binpacking` normalised to `binpack`).
    pub strategy: String,
    /// Filter names in order.
    pub filters: Vec<String>,
    pub replication: bool,
    pub replication_ttl: Duration,
    pub advertise: Option<String>,
    pub tls: TlsOptions,
    pub engine_refresh_min_interval: Duration,
    pub engine_refresh_max_interval: Duration,
    pub engine_failure_retry: u32,
    pub heartbeat: Duration,
    pub cors: bool,
    /// `swarm.overcommit` (default 0.05).
    pub overcommit: f64,
    /// `swarm.createretry` (default 0).
    pub create_retry: i64,
    /// `--discovery-opt key=value` pairs in order.
    pub discovery_opts: Vec<(String, String)>,
    pub refresh_on_node_filter: bool,
    pub container_name_refresh_filter: Option<String>,
}

/// TLS flags shared by the server side and the engine side.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub tls: bool,
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Global options that apply to every command.
#[derive(Debug, Clone)]
pub struct GlobalOptions {
    pub debug: bool,
    /// Effective log level: `debug`, `info`, `warn`, `error`, `fatal` or `panic`.
    pub log_level: String,
    pub experimental: bool,
}
