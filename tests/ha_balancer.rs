//! Three replicated managers behind a real HAProxy (the configuration of `docs/ha.md`), a client
//! running `docker run -d` in a loop through the balancer, and the primary killed with SIGKILL,
//! then the next one stopped with SIGTERM: no run fails (an attached one included), every run
//! reported started exists exactly once, and no name is on two nodes. On etcd's v3 and v2 APIs,
//! and on ZooKeeper.
//!
//! Each scenario prints its figures (failed runs, kill to new primary, kill to the first run
//! served after it) so that they can be compared between versions.
mod support;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use support::balancer::Balancer;
use support::stores::{EtcdServer, JoinAgent, ZkServer};
use support::{wait_for, wait_until, DockerCli, EngineSet, Manager};

/// `--replication-ttl` of the managers.
const TTL: &str = "4s";
/// Runs before the first stop, between the two stops, and after the second.
const RUNS_PER_PHASE: usize = 10;
/// Runs of a phase at most while none is served after a stop.
const MAX_RUNS_PER_PHASE: usize = 60;
/// Pause between two runs of the client.
const RUN_PAUSE: Duration = Duration::from_millis(200);

/// A replicated manager advertising its own loopback address, with `extra` flags.
fn replicated(discovery: &str, extra: &[&str]) -> Manager {
    Manager::replicated_with(discovery, TTL, extra)
}

/// Whether `manager` says in `/info` that it is the primary.
fn is_primary(manager: &Manager) -> bool {
    support::http::get(&manager.addr(), "/info")
        .map(|r| r.text().replace(' ', "").contains(r#"["Role","primary"]"#))
        .unwrap_or(false)
}

/// Waits until exactly one of `managers` is primary; returns its index.
fn the_primary(managers: &[&Manager]) -> usize {
    wait_for(Duration::from_secs(30), "exactly one primary", || {
        let primaries: Vec<usize> = (0..managers.len())
            .filter(|&i| managers[i].is_running() && is_primary(managers[i]))
            .collect();
        match primaries[..] {
            [one] => Some(one),
            _ => None,
        }
    })
}

/// How the primary is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

/// What one run of the client did.
struct Run {
    name: String,
    started: bool,
    output: String,
}

/// What a stop of the primary cost, as the client and the managers saw it.
#[derive(Debug)]
struct Failover {
    stop: Stop,
    /// Until a remaining manager said it was primary.
    to_primary: Duration,
    /// Until the first run begun after the stop was reported started.
    to_served: Option<Duration>,
}

/// `docker run -d --name <name>` through the balancer.
fn run_one(cli: &DockerCli, host: &str, name: &str) -> Run {
    let out = cli.run(
        host,
        &["run", "-d", "--name", name, "busybox", "sleep", "300"],
    );
    Run {
        name: name.to_string(),
        started: out.success(),
        output: out.to_string(),
    }
}

/// Stops the primary among `managers` the way `stop` says, while a thread watches the others
/// for the new primary, and returns when it stopped with the watcher.
fn stop_primary(
    managers: &[&Manager],
    stop: Stop,
) -> (Instant, thread::JoinHandle<Duration>, usize) {
    let primary = the_primary(managers);
    let survivors: Vec<String> = (0..managers.len())
        .filter(|&i| i != primary && managers[i].is_running())
        .map(|i| managers[i].addr())
        .collect();
    let stopped = Instant::now();
    match stop {
        Stop::Kill => managers[primary].kill(),
        Stop::Term => managers[primary].stop(),
    }
    let watcher = thread::spawn(move || {
        let deadline = stopped + Duration::from_secs(40);
        while Instant::now() < deadline {
            let elected = survivors.iter().any(|addr| {
                support::http::get(addr, "/info")
                    .map(|r| r.text().replace(' ', "").contains(r#"["Role","primary"]"#))
                    .unwrap_or(false)
            });
            if elected {
                return stopped.elapsed();
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("no manager became primary within 40 s of the stop");
    });
    (stopped, watcher, primary)
}

/// The whole scenario over the discovery `url`: SIGKILL of the first primary, SIGTERM of the
/// second, a run loop through HAProxy all along; then the checks.
/// `extra` flags go to the managers and the join agents alike.
fn runs_survive_the_primary_stopping(store: &str, url: &str, runs_prefix: &str, extra: &[&str]) {
    let engines = EngineSet::start(2);
    let _agents: Vec<JoinAgent> = engines
        .iter()
        .map(|e| {
            let args = [&["--heartbeat", "1s", "--ttl", "5s"], extra].concat();
            JoinAgent::start(&e.addr(), &args, url)
        })
        .collect();
    let managers = [
        replicated(url, extra),
        replicated(url, extra),
        replicated(url, extra),
    ];
    let refs: Vec<&Manager> = managers.iter().collect();
    for manager in &managers {
        wait_until(Duration::from_secs(40), "every node healthy", || {
            manager.healthy_nodes() == Some(engines.len())
        });
    }
    the_primary(&refs);
    let balancer = Balancer::start(&managers.iter().map(Manager::addr).collect::<Vec<_>>());
    wait_until(
        Duration::from_secs(10),
        "the balancer answers readiness",
        || {
            (0..3).all(|_| {
                support::http::get(&balancer.addr(), "/_ping?ready=1")
                    .is_ok_and(|r| r.status == 200)
            })
        },
    );

    let cli = DockerCli::modern().with_timeout(Duration::from_secs(60));
    let host = balancer.host();
    let mut runs = Vec::new();
    let mut failovers = Vec::new();
    let mut next = 0;
    // A phase lasts RUNS_PER_PHASE runs, and after a stop until runs are served again (bounded).
    let mut phase = |runs: &mut Vec<Run>, after: Option<Instant>| -> Option<Duration> {
        let mut served = None;
        let mut count = 0;
        while count < RUNS_PER_PHASE
            || (after.is_some() && served.is_none() && count < MAX_RUNS_PER_PHASE)
        {
            let run = run_one(&cli, &host, &format!("{runs_prefix}{next}"));
            next += 1;
            count += 1;
            if run.started && served.is_none() {
                served = after.map(|at| at.elapsed());
            }
            runs.push(run);
            thread::sleep(RUN_PAUSE);
        }
        served
    };
    phase(&mut runs, None);
    for stop in [Stop::Kill, Stop::Term] {
        let (stopped, watcher, _) = stop_primary(&refs, stop);
        // An attached run too: its hijacked connection starts while there is no primary.
        let attached = {
            let host = host.clone();
            thread::spawn(move || {
                DockerCli::modern()
                    .with_timeout(Duration::from_secs(60))
                    .run(&host, &["run", "--rm", "busybox", "echo", "attached"])
            })
        };
        let to_served = phase(&mut runs, Some(stopped));
        let attached = attached.join().expect("the attached run finished");
        assert_eq!(
            attached.stdout_trimmed(),
            "attached",
            "{store}: attached run across {stop:?}: {attached}"
        );
        failovers.push(Failover {
            stop,
            to_primary: watcher.join().expect("the watcher saw a new primary"),
            to_served,
        });
    }

    let failed: Vec<&Run> = runs.iter().filter(|r| !r.started).collect();
    eprintln!(
        "{store}: {} runs, {} failed; fail-overs: {failovers:?}",
        runs.len(),
        failed.len()
    );
    for failover in &failovers {
        eprintln!(
            "{store}: {:?} of the primary: new primary after {:?}, first run served after {:?}",
            failover.stop, failover.to_primary, failover.to_served
        );
    }
    for run in &failed {
        eprintln!("{store}: {} failed: {}", run.name, run.output);
    }

    // Where every run's container is, read from the engines themselves.
    let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for engine in engines.iter() {
        let names = engine
            .docker(&["ps", "-a", "--format", "{{.Names}}"])
            .assert_success();
        for name in names.stdout_lines() {
            placed
                .entry(name.to_string())
                .or_default()
                .push(engine.name().to_string());
        }
    }
    for run in runs.iter().filter(|r| r.started) {
        assert_eq!(
            placed.get(&run.name).map(Vec::len),
            Some(1),
            "{store}: {} was reported started; it is on {:?}",
            run.name,
            placed.get(&run.name)
        );
    }
    for (name, nodes) in &placed {
        assert!(nodes.len() <= 1, "{store}: {name} is on {nodes:?}");
    }
    assert!(
        failed.is_empty(),
        "{store}: {} of {} runs failed; fail-overs: {failovers:?}\nhaproxy:\n{}",
        failed.len(),
        runs.len(),
        balancer.logs()
    );
    assert!(
        managers
            .iter()
            .any(|m| m.logs().contains("holding it until the next election")),
        "{store}: no replica held a request across the SIGKILL"
    );
    for failover in &failovers {
        assert!(
            failover.to_served.is_some(),
            "{store}: no run was served after {:?}",
            failover.stop
        );
    }
}

#[test]
fn etcd_runs_through_haproxy_survive_sigkill_and_sigterm_of_the_primary() {
    let etcd = EtcdServer::start();
    runs_survive_the_primary_stopping("etcd", &etcd.url("lb"), "etcd-run", &[]);
}

#[test]
fn etcd_v2_runs_through_haproxy_survive_sigkill_and_sigterm_of_the_primary() {
    let etcd = EtcdServer::start();
    let v2 = ["--discovery-opt", "kv.etcdapi=v2"];
    runs_survive_the_primary_stopping("etcd v2", &etcd.url("lb2"), "etcd2-run", &v2);
}

#[test]
fn zookeeper_runs_through_haproxy_survive_sigkill_and_sigterm_of_the_primary() {
    let zk = ZkServer::start();
    runs_survive_the_primary_stopping("zookeeper", &zk.url("lb"), "zk-run", &[]);
}
