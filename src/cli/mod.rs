//! Command line: flags and environment variables of `swarm` and its commands, parsed into typed
//! options. Parsing does no I/O beyond reading the environment through the caller's lookup, and
//! never prints: help, version and completion texts are returned as [`Command::Help`],
//! [`Command::Version`] and [`Command::Completion`], problems as [`CliError`] carrying the classic
//! fatal message.
//!
//! The commands and flags are declared with clap's derive (`args.rs` for the program,
//! `manage.rs`, `join.rs`, `list.rs` and `create.rs` for each command with its checks).
//! `go_syntax.rs` rewrites Go's flag syntax, which the classic binary accepted, into the form clap
//! reads and feeds in the environment; `help.rs` renders the classic help layout from clap's
//! metadata; [`duration`] parses Go durations and `go_values.rs` Go's booleans and numbers.
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::{ArgMatches, FromArgMatches};

use crate::discovery::{self, Scheme};
pub use crate::tls::TlsOptions;

mod args;
mod create;
pub mod duration;
mod go_syntax;
mod go_values;
mod help;
mod join;
mod list;
mod manage;

use args::{Cli, GlobalArgs, Subcommand};
use go_syntax::Stop;
use go_values::quote;

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
    /// `--metrics-addr`: where to serve Prometheus metrics (`/metrics`); `None` (the default, or
    /// an empty value) serves none.
    pub metrics_addr: Option<SocketAddr>,
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
            heartbeat: Duration::from_secs(60),
            cors: false,
            overcommit: 0.05,
            create_retry: 0,
            discovery_opts: Vec::new(),
            refresh_on_node_filter: false,
            container_name_refresh_filter: None,
            metrics_addr: None,
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
    /// `swarm completion <shell>`: print this completion script on stdout and exit 0.
    Completion(String),
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

    let app = args::command();
    let app_hint = format!("See '{program} --help'.");
    let version = format!("{} ({GIT_COMMIT})", crate::VERSION);
    let app_help = || help::app_help(&app, &program, &version);
    let finish = |global, command, warnings| {
        Ok(Invocation {
            program: program.clone(),
            global,
            command,
            warnings,
        })
    };

    // The program's own flags end at the first positional argument, the command name.
    let global = go_syntax::normalise(&app, &args, Stop::AtFirstPositional, &app_hint)?;
    if global.help {
        return finish(default_global(), Command::Help(app_help()), Vec::new());
    }
    let mut global_flags = global.flags;
    go_syntax::add_environment(&app, &mut global_flags, env);
    let root_matches = run_clap(&app, &program, &global_flags, &[], &app_hint)?;
    let root =
        Cli::from_arg_matches(&root_matches).map_err(|error| clap_error(error, &app_hint))?;
    if root.global.version {
        let line = format!("{program} version {version}");
        return finish(default_global(), Command::Version(line), Vec::new());
    }
    let global_options = global_options(&root.global, &root_matches)?;

    let Some((name, rest)) = global.positionals.split_first() else {
        return finish(global_options, Command::Help(app_help()), Vec::new());
    };
    let Some(sub) = app.find_subcommand(name) else {
        return Err(CliError::Usage(format!(
            "'{name}' is not a {program} command. {app_hint}"
        )));
    };
    let hint = format!("See '{program} {} --help'.", sub.get_name());
    let local = go_syntax::normalise(sub, rest, Stop::AtDoubleDash, &hint)?;
    if local.help {
        let text = help::command_help(sub, &program);
        return finish(global_options, Command::Help(text), Vec::new());
    }
    let mut local_flags = local.flags;
    go_syntax::add_environment(sub, &mut local_flags, env);
    let mut line = global_flags;
    line.push(sub.get_name().to_string());
    line.extend(local_flags);
    let matches = run_clap(&app, &program, &line, &local.positionals, &hint)?;
    let parsed = Cli::from_arg_matches(&matches).map_err(|error| clap_error(error, &hint))?;
    let mut context = Context {
        program: &program,
        env,
        hint: &hint,
        warnings: Vec::new(),
    };
    let command = match parsed.command {
        None => Command::Help(app_help()),
        Some(Subcommand::Create(args)) => create::build(&context, args)?,
        Some(Subcommand::List(args)) => list::build(&context, args)?,
        Some(Subcommand::Manage(args)) => manage::build(&mut context, args)?,
        Some(Subcommand::Join(args)) => join::build(&context, args)?,
        Some(Subcommand::Help(args)) => Command::Help(match args.topic.first() {
            None => app_help(),
            Some(topic) => match app
                .find_subcommand(topic)
                .filter(|sub| sub.get_name() != "help")
            {
                Some(sub) => help::command_help(sub, &program),
                None => {
                    return Err(CliError::Usage(format!(
                        "No help topic for '{topic}'. {app_hint}"
                    )))
                }
            },
        }),
        Some(Subcommand::Completion(args)) => {
            Command::Completion(args::completion_script(args.shell, &program))
        }
    };
    let warnings = context.warnings;
    finish(global_options, command, warnings)
}

/// Runs clap over arguments already in its form: `flags` (`--name[=value]`, with the command
/// name among them), then `positionals` after `--` so that none is read as a flag. The program's
/// own flags were already read alone, so any error here concerns the command `hint` names.
fn run_clap(
    app: &clap::Command,
    program: &str,
    flags: &[String],
    positionals: &[String],
    hint: &str,
) -> Result<ArgMatches, CliError> {
    let mut line = Vec::with_capacity(flags.len() + positionals.len() + 2);
    line.push(program.to_string());
    line.extend(flags.iter().cloned());
    if !positionals.is_empty() {
        line.push("--".to_string());
        line.extend(positionals.iter().cloned());
    }
    args::without_environment(app.clone())
        .try_get_matches_from(line)
        .map_err(|error| clap_error(error, hint))
}

/// The flag a clap error is about (`--heartbeat`), without its value placeholder.
fn error_flag(error: &clap::Error) -> String {
    match error.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => arg
            .split([' ', '[', '='])
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// A clap error in the classic wording: Go's `flag` messages for bad values, the duration's own
/// message for durations (a fatal check in the original, so without the hint), clap's message
/// otherwise.
fn clap_error(error: clap::Error, hint: &str) -> CliError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let flag = error_flag(&error);
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.clone(),
        _ => String::new(),
    };
    let source = std::error::Error::source(&error);
    if error.kind() == ErrorKind::ValueValidation {
        if let Some(source) = source.and_then(|s| s.downcast_ref::<duration::DurationError>()) {
            return CliError::Invalid(format!("invalid {flag}: {source}"));
        }
        if let Some(source) = source {
            return CliError::Usage(format!(
                "invalid value {} for flag {flag}: {source}. {hint}",
                quote(&value)
            ));
        }
    }
    // clap's own paragraph (up to its usage line), on one line.
    let rendered = error.render().to_string();
    let message = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    CliError::Usage(format!("{}. {hint}", message.trim_end_matches('.')))
}

/// What a command's builder may use besides its own flags.
pub(crate) struct Context<'a> {
    /// Program name for messages.
    pub(crate) program: &'a str,
    /// Environment lookup.
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// `See 'swarm <command> --help'.`, which ends usage errors.
    pub(crate) hint: &'a str,
    /// Warnings to hand back in [`Invocation::warnings`].
    pub(crate) warnings: Vec<String>,
}

/// Help of `--discovery-opt`, which every command that takes a discovery URL accepts.
pub(crate) const DISCOVERY_OPT_HELP: &str = "Discovery option: kv.path (default \
    docker/swarm/nodes), kv.cacertfile, kv.certfile, kv.keyfile";

/// Where the discovery URL comes from when there is not exactly one argument.
const DISCOVERY_ENV: &str = "SWARM_DISCOVERY";

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

fn global_options(global: &GlobalArgs, matches: &ArgMatches) -> Result<GlobalOptions, CliError> {
    let requested = global.log_level.as_str();
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
    let requested = global.log_format.as_str();
    let Some(log_format) = LogFormat::parse(requested) else {
        return Err(CliError::Invalid(format!(
            "invalid log format: {} (use text or json)",
            quote(requested)
        )));
    };
    let level_given =
        matches.value_source("log_level") == Some(clap::parser::ValueSource::CommandLine);
    let log_level = if global.debug && !level_given {
        "debug"
    } else {
        level
    };
    Ok(GlobalOptions {
        debug: global.debug,
        log_level: log_level.to_string(),
        log_format,
        experimental: global.experimental,
    })
}

/// The discovery URL: the only positional argument, else `SWARM_DISCOVERY` (when there are none
/// or several), else empty.
fn discovery_argument(positionals: &[String], env: &dyn Fn(&str) -> Option<String>) -> String {
    match positionals {
        [only] => only.clone(),
        _ => env(DISCOVERY_ENV).unwrap_or_default(),
    }
}

/// `--discovery-opt key=value` pairs, split at the first `=`.
fn discovery_opts(options: &[String]) -> Result<Vec<(String, String)>, CliError> {
    options
        .iter()
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
fn heartbeat(parsed: duration::GoDuration) -> Result<Duration, CliError> {
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
