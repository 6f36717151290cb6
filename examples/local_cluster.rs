//! A throwaway local cluster: three real Docker engines (with the busybox test image) behind a
//! shoal manager on 127.0.0.1:2375, until Ctrl-C.
//!
//! ```text
//! sudo cargo run --example local_cluster                 # manager on 127.0.0.1:2375
//! sudo cargo run --example local_cluster -- --port 4000 --engines 5
//! sudo cargo run --example local_cluster -- --engines-only
//! ```
//!
//! It needs what the integration tests need (root, docker.io, busybox-static, iproute2,
//! util-linux; `tests/run.sh` installs them) and uses the same support code, so everything it
//! starts lives in private namespaces and is removed when it stops.

#[path = "../tests/support/mod.rs"]
mod support;

use std::env;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use support::manager::swarm_binary_path;
use support::{EngineSet, Manager};

const USAGE: &str = "usage: local_cluster [--port PORT] [--engines N] [--engines-only]

Starts N (default 3) local Docker engines and a shoal manager on 127.0.0.1:PORT (default 2375),
prints how to reach them, and stops everything on Ctrl-C.
  --engines-only   start the engines without a manager";

/// What the command line asked for.
struct Options {
    port: u16,
    engines: usize,
    engines_only: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        port: 2375,
        engines: 3,
        engines_only: false,
    };
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let port = value("--port")?;
                options.port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            }
            "--engines" => {
                let count = value("--engines")?;
                options.engines = count
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("bad engine count {count:?}"))?;
            }
            "--engines-only" => options.engines_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("local_cluster: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("local_cluster: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let manager_binary = if options.engines_only {
        None
    } else {
        // Checked before anything starts, for a clear message instead of a manager failure.
        TcpListener::bind(("127.0.0.1", options.port)).map_err(|e| {
            format!(
                "127.0.0.1:{} is not free ({e}); pick another with --port",
                options.port
            )
        })?;
        Some(build_manager()?)
    };

    eprintln!("Starting {} engine(s)…", options.engines);
    let engines = EngineSet::builder(options.engines)
        .try_start()
        .map_err(|e| e.to_string())?;
    println!("Engines:");
    for engine in &engines {
        println!("  {}  {}", engine.name(), engine.host());
    }

    let manager = match manager_binary {
        Some(binary) => {
            let manager = Manager::builder()
                .binary(&binary)
                .port(options.port)
                .try_start(&engines.nodes_url())
                .map_err(|e| e.to_string())?;
            println!(
                "Manager: {} (log: {})",
                manager.host(),
                manager.log_path().display()
            );
            println!("\n  export DOCKER_HOST={}\n", manager.host());
            Some(manager)
        }
        None => None,
    };

    eprintln!("Press Ctrl-C to stop everything.");
    wait_for_shutdown_signal()?;
    eprintln!("Stopping…");
    // The manager first, so it does not report its engines going away.
    drop(manager);
    drop(engines);
    eprintln!("Stopped.");
    Ok(())
}

/// Builds (or confirms up to date) the `swarm` binary next to this example, with the same
/// profile and target directory, and returns its path.
fn build_manager() -> Result<PathBuf, String> {
    let binary = swarm_binary_path();
    let profile_dir = binary
        .parent()
        .ok_or("cannot locate the target directory")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("cannot locate the target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--bin", "swarm", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    eprintln!("Building the manager (cargo build --bin swarm)…");
    match command.status() {
        Ok(status) if status.success() => Ok(binary),
        outcome if binary.is_file() => {
            eprintln!(
                "local_cluster: building the manager failed ({outcome:?}); using the existing {}",
                binary.display()
            );
            Ok(binary)
        }
        outcome => Err(format!(
            "cannot build the manager ({outcome:?}): run `cargo build --bin swarm`, then try again"
        )),
    }
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM.
fn wait_for_shutdown_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to wait for Ctrl-C: {e}"))?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                result.map_err(|e| format!("cannot listen for Ctrl-C: {e}"))
            }
            _ = terminate.recv() => Ok(()),
        }
    })
}
