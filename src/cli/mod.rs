//! Command line: flags and environment variables of `swarm` and its commands, parsed into typed
//! options. Parsing does no I/O beyond reading the environment through the caller's lookup, and
//! never prints: help and version texts are returned as [`Command::Help`] / [`Command::Version`],
//! problems as [`CliError`] carrying the classic fatal message.
//!
//! Layout: `flags.rs` reads Go-style flags against a table, `help.rs` renders help from the same
//! tables, `manage.rs`, `join.rs`, `list.rs` and `create.rs` hold each command's table and checks,
//! [`duration`] parses Go durations and `go_values.rs` Go's booleans and numbers.
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::discovery::{self, Scheme};
pub use crate::tls::TlsOptions;

mod create;
pub mod duration;
mod flags;
mod go_values;
mod help;
mod join;
mod list;
mod manage;

use flags::{Arity, FlagDef, Matches, Stop};
use go_values::{parse_bool, quote};

/// Options of `swarm manage` (SPEC §1.2), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ManageOptions {
    /// The discovery URL (positional argument or `SWARM_DISCOVERY`).
    pub discovery: String,
    /// Listen addresses, normalised to `tcp://host:port` or `unix:///path`.
    pub hosts: Vec<String>,
    /// `spread`, `binpack` or `random` (`binpacking` normalised to `binpack`).
    pub strategy: String,
    /// Filter names in order.
    pub filters: Vec<String>,
    /// `--replication`: take part in leader election (the discovery is then a key-value store and
    /// `advertise` is set).
    pub replication: bool,
    /// `--replication-ttl`: lifetime of the leader lock (default 20s; always positive).
    pub replication_ttl: Duration,
    /// `--advertise`/`SWARM_ADVERTISE` (`host:port`), `None` when empty; checked only with
    /// `--replication`.
    pub advertise: Option<String>,
    /// `--tls`, `--tlsverify` and the certificate paths.
    pub tls: TlsOptions,
    /// `--engine-refresh-min-interval` (default 30s, positive).
    pub engine_refresh_min_interval: Duration,
    /// `--engine-refresh-max-interval` (default 60s, at least the minimum).
    pub engine_refresh_max_interval: Duration,
    /// `--engine-failure-retry` (default 3, at least 1).
    pub engine_failure_retry: u32,
    /// `--engine-call-timeout` (default 30s, at least 1s): how long an engine may take to start
    /// answering a call.
    pub engine_call_timeout: Duration,
    /// `--api-header-timeout` (default 30s, at least 1s).
    pub api_header_timeout: Duration,
    /// `--api-max-connections`; `None` (the default, `0`) derives the cap from the open-file
    /// limit.
    pub api_max_connections: Option<usize>,
    /// `--api-max-body-size` in bytes (default 16 MiB, at least 1 KiB).
    pub api_max_body_size: usize,
    /// `--api-write-stall-timeout` (default 2m, at least 1s).
    pub api_write_stall_timeout: Duration,
    /// `--metrics-addr` (`ip:port`): where `/metrics` is served; `None` (the default) serves none.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--heartbeat` (default 60s, at least 1s): discovery poll period and KV watch retry delay.
    pub heartbeat: Duration,
    /// `--cors`/`--api-enable-cors`: send CORS headers.
    pub cors: bool,
    /// `swarm.overcommit` (default 0.05).
    pub overcommit: f64,
    /// `swarm.createretry` (default 0).
    pub create_retry: i64,
    /// `--discovery-opt key=value` pairs in order. The `kv.path` default is applied by
    /// [`discovery::DiscoveryOptions::kv_path`], not here.
    pub discovery_opts: Vec<(String, String)>,
    /// `--refresh-on-node-filter`: refresh an engine's containers before a list filtered by node.
    pub refresh_on_node_filter: bool,
    /// `--container-name-refresh-filter`, `None` when empty: a list filtered by exactly this name
    /// refreshes every engine's containers first.
    pub container_name_refresh_filter: Option<String>,
}

impl Default for ManageOptions {
    /// The classic defaults, with an empty discovery URL.
    fn default() -> Self {
        ManageOptions {
            discovery: String::new(),
            hosts: vec![manage::DEFAULT_HOST.to_string()],
            strategy: "spread".to_string(),
            filters: manage::FILTERS.iter().map(|f| f.to_string()).collect(),
            replication: false,
            replication_ttl: Duration::from_secs(20),
            advertise: None,
            tls: TlsOptions::default(),
            engine_refresh_min_interval: Duration::from_secs(30),
            engine_refresh_max_interval: Duration::from_secs(60),
            engine_failure_retry: 3,
            engine_call_timeout: Duration::from_secs(30),
            api_header_timeout: Duration::from_secs(30),
            api_max_connections: None,
            api_max_body_size: 16 << 20,
            api_write_stall_timeout: Duration::from_secs(120),
            metrics_addr: None,
            heartbeat: Duration::from_secs(60),
            cors: false,
            overcommit: 0.05,
            create_retry: 0,
            discovery_opts: Vec::new(),
            refresh_on_node_filter: false,
            container_name_refresh_filter: None,
        }
    }
}

/// Global options that apply to every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalOptions {
    /// `--debug` or `DEBUG=<true>`: debug logging (unless `--log-level` is given) and debug routes.
    pub debug: bool,
    /// Effective log level: `debug`, `info`, `warn`, `error`, `fatal` or `panic`.
    pub log_level: String,
    /// `--log-format`: how each log line is written.
    pub log_format: LogFormat,
    /// `--experimental`: only reported in `/info` and `/version`.
    pub experimental: bool,
}

/// How log lines are written (`--log-format`, named like dockerd's flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event: timestamp, level, target, message and fields.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields.message` and the
    /// other fields), for log collectors.
    Json,
}

impl LogFormat {
    /// Reads a `--log-format` value; `None` for anything but `text` or `json`.
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Options of `swarm join` (SPEC §1.3), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// The discovery URL (positional argument or `SWARM_DISCOVERY`).
    pub discovery: String,
    /// The engine address to register (`host:port`, port 1–65535).
    pub advertise: String,
    /// Registration period (at least 1s).
    pub heartbeat: Duration,
    /// Lifetime of a registration in the store (greater than `heartbeat`).
    pub ttl: Duration,
    /// Upper bound of the random delay before the first registration (zero: none).
    pub delay: Duration,
    /// `--discovery-opt key=value` pairs in order.
    pub discovery_opts: Vec<(String, String)>,
}

/// Options of `swarm list` (SPEC §1.4), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// The discovery URL (positional argument or `SWARM_DISCOVERY`).
    pub discovery: String,
    /// How long to wait for the first list; also the backend's heartbeat (positive).
    pub timeout: Duration,
    /// `--discovery-opt key=value` pairs in order.
    pub discovery_opts: Vec<(String, String)>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per process; boxing would only make matching on it clumsier"
)]
pub enum Command {
    /// `swarm manage`.
    Manage(ManageOptions),
    /// `swarm join`.
    Join(JoinOptions),
    /// `swarm list`.
    List(ListOptions),
    /// `swarm create` (the hosted token service no longer exists).
    Create,
    /// Print this text on stdout and exit 0.
    Help(String),
    /// Print this line on stdout and exit 0 (`<program> version <version> (<commit>)`).
    Version(String),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The program name shown in messages (basename of argv\[0\], normally `swarm`).
    pub program: String,
    /// Global options.
    pub global: GlobalOptions,
    /// The command and its options.
    pub command: Command,
    /// Accepted-but-questionable settings to log once logging is set up (for example a negative
    /// `swarm.overcommit`).
    pub warnings: Vec<String>,
}

/// Why the command line was refused. Displays as the exact message to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The arguments could not be read: unknown flag or command, missing or malformed value. The
    /// message ends with a hint to run `--help`.
    #[error("{0}")]
    Usage(String),
    /// The options were read but are not acceptable; the classic fatal message.
    #[error("{0}")]
    Invalid(String),
}

/// The commit this build was made from, stamped through `SHOAL_GIT_COMMIT` at compile time.
const GIT_COMMIT: &str = match option_env!("SHOAL_GIT_COMMIT") {
    Some(commit) => commit,
    None => "HEAD",
};

/// Parses `args` (argv, program name first) and the environment seen through `env`.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, CliError> {
    let mut args = args.into_iter();
    let program = args
        .next()
        .map(|arg0| program_name(&arg0))
        .unwrap_or_else(|| "swarm".to_string());
    let args = args
        .map(|arg| {
            arg.into_string().map_err(|arg| {
                CliError::Usage(format!(
                    "argument is not valid UTF-8: {}",
                    arg.to_string_lossy()
                ))
            })
        })
        .collect::<Result<Vec<String>, CliError>>()?;

    let app_hint = format!("See '{program} --help'.");
    let version = format!("{} ({GIT_COMMIT})", crate::VERSION);
    let matches = flags::parse(GLOBAL_FLAGS, &args, Stop::AtFirstPositional, &app_hint)?;
    let app_help = || help::app_help(&program, &version);
    let finish = |global, command, warnings| {
        Ok(Invocation {
            program: program.clone(),
            global,
            command,
            warnings,
        })
    };
    if matches.help {
        return finish(default_global(), Command::Help(app_help()), Vec::new());
    }
    if matches.switch("version") {
        let line = format!("{program} version {version}");
        return finish(default_global(), Command::Version(line), Vec::new());
    }
    let global = global_options(&matches, env)?;

    let Some((name, rest)) = matches.positionals.split_first() else {
        return finish(global, Command::Help(app_help()), Vec::new());
    };
    if name == "help" || name == "h" {
        let text = match rest.first() {
            None => app_help(),
            Some(topic) => match find_command(topic) {
                Some(command) => help::command_help(&program, command),
                None => {
                    return Err(CliError::Usage(format!(
                        "No help topic for '{topic}'. {app_hint}"
                    )))
                }
            },
        };
        return finish(global, Command::Help(text), Vec::new());
    }
    let Some(command) = find_command(name) else {
        return Err(CliError::Usage(format!(
            "'{name}' is not a {program} command. {app_hint}"
        )));
    };
    let mut context = Context {
        program: &program,
        env,
        warnings: Vec::new(),
    };
    let hint = format!("See '{program} {} --help'.", command.name);
    let matches = flags::parse(command.flags, rest, Stop::AtDoubleDash, &hint)?;
    let parsed = if matches.help {
        Command::Help(help::command_help(&program, command))
    } else {
        (command.build)(&mut context, &matches)?
    };
    let warnings = context.warnings;
    finish(global, parsed, warnings)
}

/// A command: its name, help and how to turn its matches into options.
pub(crate) struct CommandDef {
    /// Name (`manage`).
    pub(crate) name: &'static str,
    /// One-letter alias (`m`).
    pub(crate) alias: &'static str,
    /// One-line description.
    pub(crate) summary: &'static str,
    /// Longer description shown in the command's help (may be empty).
    pub(crate) description: &'static str,
    /// Whether the command takes the `<discovery>` argument.
    pub(crate) takes_discovery: bool,
    /// Its flags.
    pub(crate) flags: &'static [FlagDef],
    /// Text appended to the options in help (may be empty).
    pub(crate) notes: &'static str,
    /// Checks the matches and builds the command.
    pub(crate) build: fn(&mut Context<'_>, &Matches<'_>) -> Result<Command, CliError>,
}

/// What a command's builder may use besides its flags.
pub(crate) struct Context<'a> {
    /// Program name for messages.
    pub(crate) program: &'a str,
    /// Environment lookup.
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// Warnings to hand back in [`Invocation::warnings`].
    pub(crate) warnings: Vec<String>,
}

/// The commands in help order.
pub(crate) const COMMANDS: &[&CommandDef] = &[
    &create::COMMAND,
    &list::COMMAND,
    &manage::COMMAND,
    &join::COMMAND,
];

/// Flags that go before the command.
pub(crate) const GLOBAL_FLAGS: &[FlagDef] = &[
    FlagDef {
        name: "debug",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: Some("DEBUG"),
        help: "Log at debug level (unless --log-level is given) and serve the /debug routes",
    },
    FlagDef {
        name: "log-level",
        aliases: &["l"],
        arity: Arity::Single,
        value_name: "<level>",
        default: Some("info"),
        env: None,
        help: "Log level: debug, info, warn, error, fatal or panic",
    },
    FlagDef {
        name: "log-format",
        aliases: &[],
        arity: Arity::Single,
        value_name: "<format>",
        default: Some("text"),
        env: None,
        help: "Log format: text, or json for one JSON object per line",
    },
    FlagDef {
        name: "experimental",
        aliases: &[],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Report experimental features as enabled in /info and /version",
    },
    FlagDef {
        name: "version",
        aliases: &["v"],
        arity: Arity::Switch,
        value_name: "",
        default: None,
        env: None,
        help: "Print the version and exit",
    },
];

/// `--discovery-opt`, which every command that takes a discovery URL accepts.
pub(crate) const DISCOVERY_OPT_FLAG: FlagDef = FlagDef {
    name: "discovery-opt",
    aliases: &[],
    arity: Arity::Repeated,
    value_name: "<key=value>",
    default: None,
    env: None,
    help: "Discovery option: kv.path (default docker/swarm/nodes), kv.cacertfile, kv.certfile, \
           kv.keyfile",
};

fn find_command(name: &str) -> Option<&'static CommandDef> {
    COMMANDS
        .iter()
        .copied()
        .find(|command| command.name == name || command.alias == name)
}

fn program_name(arg0: &OsString) -> String {
    Path::new(arg0)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "swarm".to_string())
}

fn default_global() -> GlobalOptions {
    GlobalOptions {
        debug: false,
        log_level: "info".to_string(),
        log_format: LogFormat::Text,
        experimental: false,
    }
}

fn global_options(
    matches: &Matches<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GlobalOptions, CliError> {
    let requested = matches.value("log-level");
    let level = match requested.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" => "error",
        "fatal" => "fatal",
        "panic" => "panic",
        _ => {
            return Err(CliError::Invalid(format!(
                "not a valid logrus Level: {}",
                quote(requested)
            )))
        }
    };
    let requested = matches.value("log-format");
    let Some(log_format) = LogFormat::parse(requested) else {
        return Err(CliError::Invalid(format!(
            "invalid log format: {} (use text or json)",
            quote(requested)
        )));
    };
    // Like the original, an unparseable DEBUG value is ignored rather than refused.
    let debug = if matches.is_set("debug") {
        matches.switch("debug")
    } else {
        env("DEBUG")
            .and_then(|value| parse_bool(&value))
            .unwrap_or(false)
    };
    let log_level = if debug && !matches.is_set("log-level") {
        "debug"
    } else {
        level
    };
    Ok(GlobalOptions {
        debug,
        log_level: log_level.to_string(),
        log_format,
        experimental: matches.switch("experimental"),
    })
}

/// The discovery URL: the only positional argument, else `SWARM_DISCOVERY` (when there are none
/// or several), else empty.
fn discovery_argument(matches: &Matches<'_>, env: &dyn Fn(&str) -> Option<String>) -> String {
    match matches.positionals.as_slice() {
        [only] => only.clone(),
        _ => env("SWARM_DISCOVERY").unwrap_or_default(),
    }
}

/// `--discovery-opt key=value` pairs, split at the first `=`.
fn discovery_opts(matches: &Matches<'_>) -> Result<Vec<(String, String)>, CliError> {
    matches
        .all("discovery-opt")
        .into_iter()
        .map(|option| {
            option
                .split_once('=')
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .ok_or_else(|| {
                    CliError::Invalid("--discovery-opt must contain key=value strings".to_string())
                })
        })
        .collect()
}

/// Checks the discovery URL the way initialising the backend did in the original (without I/O)
/// and returns its scheme.
fn check_discovery(url: &str) -> Result<Scheme, CliError> {
    discovery::validate(url)
        .map(|parsed| parsed.scheme)
        .map_err(|error| CliError::Invalid(error.to_string()))
}

/// `--heartbeat`: a Go duration of at least one second.
fn heartbeat(matches: &Matches<'_>) -> Result<Duration, CliError> {
    let parsed = duration::parse(matches.value("heartbeat"))
        .map_err(|error| CliError::Invalid(format!("invalid --heartbeat: {error}")))?;
    match parsed.to_std() {
        Some(heartbeat) if heartbeat >= Duration::from_secs(1) => Ok(heartbeat),
        _ => Err(CliError::Invalid(
            "--heartbeat should be at least one second".to_string(),
        )),
    }
}

/// Whether `addr` is `host:port` with a port in 1–65535 (the host may be empty).
fn is_host_port(addr: &str) -> bool {
    discovery::split_host_port(addr).is_ok_and(|(_, port)| {
        port.parse::<i64>()
            .is_ok_and(|port| (1..=65_535).contains(&port))
    })
}

/// The error every advertise-format check reports.
fn bad_advertise() -> CliError {
    CliError::Invalid("--advertise should be of the form ip:port or hostname:port".to_string())
}

#[cfg(test)]
mod tests;
