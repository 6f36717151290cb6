//! Streaming throughput through the manager against one real engine: `docker cp` out of a
//! container, `docker logs` of a chatty container, and a hijacked `docker exec` writing to its
//! stdout, each timed directly against the engine and through the manager.
//!
//! ```sh
//! cargo build --release --bin swarm --example stream_bench
//! target/release/examples/stream_bench --runs 5   # as root: it starts a real dockerd
//! ```
//!
//! Each run takes the best of five transfers per path and prints the ratio (through the
//! manager / direct). The transfers alternate (direct, manager, direct, manager, ...) so that
//! whatever else the machine does at the time slows both paths alike, rather than only the
//! three transfers that happened to fall into it. With `--runs N` the runs follow one another
//! on the same engine and manager, and the summary gives each stream's ratio per run and the
//! lowest, which is the figure to hold against the budget; each line also gives the manager's
//! CPU time per transfer (user and system, the mean over its transfers) and how busy the
//! machine's cores were during each path's transfers (`busy d`, `busy m`: a share near 100%
//! means the transfers were bound by CPU, where each hop's cost shows). `--binary PATH`
//! measures another build of the manager; `--only WORD` runs only the streams whose label
//! holds WORD (`cp`, `logs`, `exec`).
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Stdio;

use tokio::time::Instant;

use support::{DockerCli, EngineSet, Manager};

const MB: u64 = 256;

/// Transfers per path in each run; the best of them counts. Five, because the direct figure
/// alone moves by a fifth between transfers on a 2-core machine (the engine, the container and
/// the CLI share it).
const TRANSFERS: usize = 5;

/// The CPU time (user and system) `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the manager's stat");
    // The fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split(' ')
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = rustix::param::clock_ticks_per_second();
    ticks as f64 / per_second as f64
}

/// The machine's busy and total CPU time so far (all cores, in clock ticks), from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("the cpu line");
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    // idle and iowait
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Runs a docker command with stdout to /dev/null; returns seconds taken.
fn timed(cli: &DockerCli, host: &str, args: &[&str]) -> f64 {
    let mut cmd = cli.command(host);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().expect("docker");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

/// The value after `name` on the command line, if any.
fn option(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = option(&args, "--runs").map_or(1, |v| v.parse().expect("--runs N"));
    let only = option(&args, "--only");
    let engines = EngineSet::start(1);
    let mut builder = Manager::builder();
    if let Some(path) = option(&args, "--binary") {
        builder = builder.binary(&PathBuf::from(path));
    }
    let manager = builder
        .args(&[
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "2s",
        ])
        .start(&engines.nodes_url());
    let cli = DockerCli::modern();
    let direct = engines[0].host();
    let through = manager.host();
    let pid = manager.pid().expect("the manager runs");
    support::wait_until(
        std::time::Duration::from_secs(30),
        "the engine healthy",
        || {
            cli.run(&through, &["info"])
                .stdout
                .contains("Status: Healthy")
        },
    );
    let count = (MB * 1024).to_string();
    engines[0]
        .docker(&[
            "run",
            "-d",
            "--name",
            "big",
            "busybox",
            "sh",
            "-c",
            &format!("dd if=/dev/zero of=/big bs=1024 count={count} 2>/dev/null; sleep 3600"),
        ])
        .assert_success();
    engines[0]
        .docker(&["run", "--name", "chatty", "busybox", "sh", "-c", "yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy | head -c 67108864"])
        .assert_success();
    std::thread::sleep(std::time::Duration::from_secs(3));
    support::wait_until(
        std::time::Duration::from_secs(30),
        "the manager sees the containers",
        || {
            cli.run(&through, &["ps", "-a", "--format", "{{.Names}}"])
                .stdout
                .contains("/chatty")
        },
    );

    let cases: [(&str, Vec<&str>, f64); 3] = [
        ("cp (archive GET)", vec!["cp", "big:/big", "-"], MB as f64),
        ("logs", vec!["logs", "chatty"], 64.0),
        (
            "exec stdout (hijacked)",
            vec!["exec", "big", "head", "-c", "268435456", "/dev/zero"],
            256.0,
        ),
    ];
    // Each stream's ratio (manager / direct, percent) in every run.
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for run in 1..=runs {
        println!("run {run} of {runs}");
        println!(
            "{:<24} {:>12} {:>14} {:>8} {:>14} {:>7} {:>7}",
            "stream", "direct MB/s", "manager MB/s", "ratio", "manager CPU s", "busy d", "busy m"
        );
        for (i, (label, args, size)) in cases.iter().enumerate() {
            if only
                .as_ref()
                .is_some_and(|word| !label.contains(word.as_str()))
            {
                continue;
            }
            // Warm both paths up, then alternate them and take the best of each.
            timed(&cli, &direct, args);
            timed(&cli, &through, args);
            let (mut d, mut m, mut cpu) = (f64::MAX, f64::MAX, 0.0);
            // The machine's busy share (of all its cores) during each path's transfers.
            let (mut busy_d, mut busy_m) = ((0, 0), (0, 0));
            let add = |acc: &mut (u64, u64), before: (u64, u64)| {
                let after = machine_ticks();
                acc.0 += after.0 - before.0;
                acc.1 += after.1 - before.1;
            };
            for _ in 0..TRANSFERS {
                let at = machine_ticks();
                d = d.min(timed(&cli, &direct, args));
                add(&mut busy_d, at);
                let before = cpu_seconds(pid);
                let at = machine_ticks();
                m = m.min(timed(&cli, &through, args));
                add(&mut busy_m, at);
                cpu += cpu_seconds(pid) - before;
            }
            let share = |(busy, total): (u64, u64)| busy as f64 * 100.0 / total.max(1) as f64;
            ratios[i].push(d / m * 100.0);
            println!(
                "{label:<24} {:>12.0} {:>14.0} {:>7.0}% {:>14.2} {:>6.0}% {:>6.0}%",
                size / d,
                size / m,
                d / m * 100.0,
                cpu / TRANSFERS as f64,
                share(busy_d),
                share(busy_m)
            );
        }
    }
    println!("ratio through the manager / direct, per run, and the lowest");
    for ((label, _, _), per_run) in cases.iter().zip(&ratios) {
        if per_run.is_empty() {
            continue;
        }
        let shown: Vec<String> = per_run.iter().map(|r| format!("{r:.0}%")).collect();
        let lowest = per_run.iter().copied().fold(f64::MAX, f64::min);
        println!("{label:<24} {}  min {lowest:.0}%", shown.join(", "));
    }
}
