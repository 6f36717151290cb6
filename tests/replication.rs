//! Replicated managers (`--replication`) on a real etcd and a real ZooKeeper: exactly one primary,
//! a replica relaying `docker ps`, `docker run -it` and `docker logs -f`, fail-over after
//! `kill -9` within the TTL and after SIGTERM within about a second, and a replica that lost
//! its store.
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::stores::{EtcdServer, JoinAgent, ZkServer};
use support::terminal::in_terminal;
use support::{wait_for, wait_until, DockerCli, EngineSet, Manager};

/// The lock's TTL in these tests.
const TTL: Duration = Duration::from_secs(4);

/// A replicated manager advertising its own loopback address.
fn replicated(discovery: &str) -> Manager {
    Manager::replicated(discovery, "4s")
}

/// `Role` and `Primary` as `docker info` shows them.
fn role(cli: &DockerCli, manager: &Manager) -> (String, String) {
    let info = cli.run(&manager.host(), &["info"]).stdout;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    (field("Role"), field("Primary"))
}

/// Waits until exactly one of `managers` is primary and the others name it; returns its index.
fn one_primary(cli: &DockerCli, managers: &[&Manager]) -> usize {
    wait_for(Duration::from_secs(20), "exactly one primary", || {
        let roles: Vec<(String, String)> = managers.iter().map(|m| role(cli, m)).collect();
        let primaries: Vec<usize> = (0..roles.len())
            .filter(|&i| roles[i].0 == "primary")
            .collect();
        let [primary] = primaries[..] else {
            return None;
        };
        let named = roles
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != primary)
            .all(|(_, (role, named))| role == "replica" && *named == managers[primary].addr());
        named.then_some(primary)
    })
}

/// Engines registered in the store through join agents.
fn joined_engines(url: &str, count: usize) -> (EngineSet, Vec<JoinAgent>) {
    let engines = EngineSet::start(count);
    let agents = engines
        .iter()
        .map(|e| JoinAgent::start(&e.addr(), &["--heartbeat", "1s", "--ttl", "5s"], url))
        .collect();
    (engines, agents)
}

fn wait_healthy(cli: &DockerCli, manager: &Manager, count: usize) {
    wait_until(Duration::from_secs(40), "every node healthy", || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .matches("Status: Healthy")
            .count()
            == count
    });
}

/// Fail-over checks shared by the stores: SIGTERM hands over at once, `kill -9` within the TTL.
fn fails_over(cli: &DockerCli, a: &Manager, b: &Manager) {
    let managers = [a, b];
    let primary = one_primary(cli, &managers);
    let (old, other) = (managers[primary], managers[1 - primary]);
    let stopped = Instant::now();
    old.stop();
    wait_until(
        Duration::from_secs(3),
        "the other manager is primary after SIGTERM",
        || role(cli, other).0 == "primary",
    );
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "SIGTERM fail-over took {took:?}"
    );
    assert!(old.logs().contains("Leader Election"), "{}", old.logs());

    old.restart();
    assert_eq!(
        one_primary(cli, &managers),
        1 - primary,
        "the restarted manager is a replica"
    );
    let killed = Instant::now();
    other.kill();
    wait_until(
        TTL + Duration::from_secs(4),
        "the restarted manager is primary after kill -9",
        || role(cli, old).0 == "primary",
    );
    let took = killed.elapsed();
    assert!(
        took < TTL + Duration::from_millis(1500),
        "kill -9 fail-over took {took:?}"
    );
}

#[test]
fn etcd_replicas_relay_to_one_primary_and_fail_over() {
    let etcd = EtcdServer::start();
    let url = etcd.url("ha");
    let (engines, _agents) = joined_engines(&url, 2);
    let a = replicated(&url);
    let b = replicated(&url);
    let cli = DockerCli::modern();
    let primary = one_primary(&cli, &[&a, &b]);
    let (primary, replica) = if primary == 0 { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        etcd.v3_value("ha/docker/swarm/leader"),
        Some(primary.addr())
    );
    wait_healthy(&cli, primary, engines.len());

    // Through the replica: list, an interactive run, a followed log.
    let host = replica.host();
    cli.run(&host, &["ps"]).assert_success();
    for docker in DockerCli::all() {
        let out = in_terminal(
            &docker,
            &host,
            "run -it --rm busybox sh",
            &["echo tty=$((40+2))\n", "exit\n"],
        );
        assert!(
            out.contains("tty=42"),
            "{} run -it through the replica: {out}",
            docker.label()
        );
    }
    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    )
    .assert_success();
    let ps = cli
        .run(&host, &["ps", "--format", "{{.Names}}"])
        .assert_success();
    assert!(ps.stdout.contains("ticker"), "{ps}");
    let mut follow = cli.command(&host);
    follow
        .args(["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follow = follow.spawn().unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let later: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(first.starts_with("tick"), "{first}");
    assert!(later.iter().all(|l| l.starts_with("tick")), "{later:?}");
    // Answered locally by a replica: its own info.
    assert_eq!(role(&cli, replica), ("replica".to_string(), primary.addr()));

    fails_over(&cli, &a, &b);
}

#[test]
fn zookeeper_replicas_relay_to_one_primary_and_fail_over() {
    let zk = ZkServer::start();
    let url = zk.url("zkha");
    let (engines, _agents) = joined_engines(&url, 1);
    let a = replicated(&url);
    let b = replicated(&url);
    let cli = DockerCli::modern();
    let primary = one_primary(&cli, &[&a, &b]);
    let (primary, replica) = if primary == 0 { (&a, &b) } else { (&b, &a) };
    wait_healthy(&cli, primary, engines.len());
    cli.run(
        &replica.host(),
        &["run", "-d", "--name", "zk-box", "busybox", "sleep", "60"],
    )
    .assert_success();
    let ps = cli
        .run(&replica.host(), &["ps", "--format", "{{.Names}}"])
        .assert_success();
    assert!(ps.stdout.contains("zk-box"), "{ps}");
    let logs = cli
        .run(
            &replica.host(),
            &["run", "--rm", "busybox", "echo", "relayed"],
        )
        .assert_success();
    assert_eq!(logs.stdout_trimmed(), "relayed");

    fails_over(&cli, &a, &b);
}

#[test]
fn a_replica_that_lost_its_store_serves_what_it_can_and_says_why() {
    let etcd = EtcdServer::start();
    let url = etcd.url("lost");
    let a = replicated(&url);
    let b = replicated(&url);
    let cli = DockerCli::modern();
    let primary = one_primary(&cli, &[&a, &b]);
    let (primary, replica) = if primary == 0 { (&a, &b) } else { (&b, &a) };

    etcd.kill();
    // Still relaying to the primary it knows.
    cli.run(&replica.host(), &["ps"]).assert_success();
    primary.kill();
    let ps = cli.run(&replica.host(), &["ps"]).assert_failure();
    assert!(
        ps.stderr
            .contains("Unable to reach primary cluster manager"),
        "{ps}"
    );
    assert!(
        ps.stderr.contains("cannot reach the discovery store"),
        "{ps}"
    );
    // Answered locally all along.
    assert!(support::http::ping(&replica.addr()));
    let info = cli.run(&replica.host(), &["info"]).assert_success();
    assert!(info.stdout.contains("Role: replica"), "{info}");

    // The store comes back: the replica is elected.
    etcd.restart();
    wait_until(
        TTL + Duration::from_secs(15),
        "the replica is elected once the store is back",
        || role(&cli, replica).0 == "primary",
    );
}
