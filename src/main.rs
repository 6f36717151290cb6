//! The `swarm` binary: reads the command line, sets up logging and the async runtime, and
//! dispatches to the command (`shoal::manage`, `shoal::join`, `shoal::list`). Everything with
//! behaviour worth testing lives in the library; this file only turns outcomes into output and
//! exit codes.
#![deny(unsafe_code)]

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use shoal::cli::{self, Command, GlobalOptions, LogFormat};

/// jemalloc holds the manager's many small records compactly and returns what a burst freed
/// (a thousand engines validating at once, a list of tens of megabytes) to the system.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it starts (its `malloc_conf`; the environment variable
/// `_RJEM_MALLOC_CONF` still overrides them). A thread of its own returns freed pages to the
/// system about a second after they were freed, rather than ten seconds and only when some
/// thread next allocates: the resident set follows what the manager holds (measured at 1,000
/// engines x 30 containers: about 50 MB less than with the defaults).
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code, non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Why `swarm create` cannot do what it used to.
const CREATE_UNAVAILABLE: &str = "swarm create is no longer available: Docker Hub's hosted \
    discovery service (token://) was shut down in June 2019. Use nodes://, file:// or a \
    key-value store (etcd, consul or zk) for discovery instead.";

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let invocation = match cli::parse(std::env::args_os().collect(), &env) {
        Ok(invocation) => invocation,
        Err(error) => return fatal(error),
    };
    let global = invocation.global;
    let command = match invocation.command {
        Command::Help(text) => return print_and_succeed(&text),
        Command::Version(line) => return print_and_succeed(&format!("{line}\n")),
        Command::Completion(script) => return print_and_succeed(&script),
        command => command,
    };
    init_logging(&global);
    for warning in &invocation.warnings {
        tracing::warn!("{warning}");
    }
    match command {
        Command::Manage(options) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return fatal(format!("cannot start the async runtime: {error}")),
            };
            match runtime.block_on(shoal::manage::run(global, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fatal(error),
            }
        }
        Command::List(options) => match block_on(shoal::list::run(options)) {
            Ok(entries) => {
                let text: String = entries.iter().map(|entry| format!("{entry}\n")).collect();
                print_and_succeed(&text)
            }
            Err(error) => fatal(error),
        },
        Command::Join(options) => match block_on(shoal::join::run(options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fatal(error),
        },
        Command::Create => fatal(CREATE_UNAVAILABLE),
        Command::Help(_) | Command::Version(_) | Command::Completion(_) => ExitCode::SUCCESS,
    }
}

/// Writes to stdout; a closed pipe (`swarm --help | head -1`) is not an error worth reporting.
fn print_and_succeed(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    ExitCode::SUCCESS
}

/// Prints a fatal log line on stderr and returns the failure exit code. Written by hand because it
/// is also used before (or instead of) setting up logging.
fn fatal(message: impl Display) -> ExitCode {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let _ = writeln!(std::io::stderr().lock(), "{now} FATAL {message}");
    ExitCode::FAILURE
}

/// Logs go to stdout like the original's. `fatal` and `panic` have no tracing equivalent and
/// mean "errors only". Dependencies stay at warn unless even that is too chatty. `--log-format
/// json` writes one JSON object per line, never with colours.
fn init_logging(global: &GlobalOptions) {
    let level = match global.log_level.as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        _ => "error",
    };
    let dependencies = if level == "error" { "error" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::new(format!("{dependencies},shoal={level},swarm={level}"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_env_filter(filter);
    match global.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Runs a small command (`list`, `join`) on a single-threaded runtime.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?
        .block_on(future)
}
