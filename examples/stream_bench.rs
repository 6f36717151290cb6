//! Streaming throughput through the manager against one real engine: `docker cp` out of a
//! container, `docker logs` of a chatty container, and a hijacked `docker exec` writing to its
//! stdout, each timed directly against the engine and through the manager.
//!
//! ```sh
//! cargo build --release --bin swarm --example stream_bench
//! target/release/examples/stream_bench            # as root: it starts a real dockerd
//! ```
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::Instant;

use support::{DockerCli, EngineSet, Manager};

const MB: u64 = 256;

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

fn main() {
    let engines = EngineSet::start(1);
    let manager = Manager::builder()
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
    println!(
        "{:<24} {:>12} {:>14} {:>8}",
        "stream", "direct MB/s", "manager MB/s", "ratio"
    );
    for (label, args, size) in cases {
        // Warm up, then take the best of three for each path.
        timed(&cli, &direct, &args);
        let d = (0..3)
            .map(|_| timed(&cli, &direct, &args))
            .fold(f64::MAX, f64::min);
        let m = (0..3)
            .map(|_| timed(&cli, &through, &args))
            .fold(f64::MAX, f64::min);
        println!(
            "{label:<24} {:>12.0} {:>14.0} {:>7.0}%",
            size / d,
            size / m,
            d / m * 100.0
        );
    }
}
