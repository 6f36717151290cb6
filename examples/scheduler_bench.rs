//! Measures how long the scheduler takes to place one container on clusters of 100, 1,000 and
//! 5,000 nodes with about 30 containers each, using the default filters and the spread strategy.
//!
//! Run with `cargo run --release --example scheduler_bench`. Prints mean, median and 99th
//! percentile decision times (and decisions per second) for a plain `docker run` and for a
//! request that exercises every filter (constraint, soft image affinity, published port, memory
//! and CPU reservation), each by a full selection; then a plain `docker run` decided from the
//! ranking kept between decisions, with the chosen node re-ranked after each.
//!
//! Last, the same plain decision through the cluster's own placement, as a create takes it, on
//! simulated engines (1,000 and 5,000, served by the `engine_simulator` example in a process of
//! its own, so build the examples first: `cargo build --release --examples`; validated by a
//! real cluster in this process): under the
//! placement lock, choose a node and register the creation; then, untimed, the chosen engine's
//! cache changes and the creation leaves the pending set, as after the engine's answer. Once by
//! the full selection over every engine's memoised snapshot, once from the kept ranking, which
//! re-ranks the engines that changed since the previous decision.
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::cluster::membership::EngineMaps;
use shoal::cluster::transport::Transport;
use shoal::cluster::{Cluster, ClusterOptions, EngineOptions};
use shoal::scheduler::{
    filter_by_name, ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding, RankedView,
    Scheduler, SchedulingRequest, DEFAULT_FILTERS,
};

const CONTAINERS_PER_NODE: usize = 30;
const GIB: i64 = 1 << 30;
/// How long the simulated engines of the placement rows may take to be validated.
const VALIDATION_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    let scheduler = Scheduler::new("spread", &DEFAULT_FILTERS).expect("default scheduler");
    let requests = [
        ("docker run (no metadata)", SchedulingRequest::default()),
        ("constraint + affinity + port + resources", busy_request()),
    ];
    println!(
        "scheduler decision time: default filters, spread, {CONTAINERS_PER_NODE} containers per node"
    );
    println!(
        "{:>6} nodes  {:<42} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "", "request", "runs", "mean", "p50", "p99", "per second"
    );
    for (node_count, runs) in [(100, 2_000), (1_000, 500), (5_000, 100)] {
        let nodes = cluster(node_count);
        for (label, request) in &requests {
            // One warm-up decision so lazy statics and allocator pools are in place.
            black_box(scheduler.select(&nodes, request).expect("placement"));
            let samples = time_runs(runs, || {
                let ranked = scheduler.select(black_box(&nodes), black_box(request));
                black_box(ranked.expect("placement").len());
            });
            print_row(node_count, label, &samples);
        }
        // The ranking kept between decisions: each decision re-ranks the node the previous
        // one chose (it now counts one more container), as a create does. A plain request
        // reads no containers, so its snapshots only count them, as the cluster builds them.
        let mut view = RankedView::new(&scheduler);
        for node in &nodes {
            let mut counted = node.clone();
            counted.unlisted = std::mem::take(&mut counted.containers).len();
            view.update(Arc::new(counted));
        }
        let plain = SchedulingRequest::default();
        let samples = time_runs(runs * 10, || {
            let mut chosen = view.best(black_box(&plain)).expect("placement").clone();
            Arc::make_mut(&mut chosen).unlisted += 1;
            view.update(chosen);
        });
        print_row(
            node_count,
            "docker run, kept ranking (1 node changed)",
            &samples,
        );
    }
    filter_breakdown(&cluster(5_000), &busy_request(), 100);
    shoal::api::listener::raise_open_file_limit();
    println!("plain decision through the cluster's placement, simulated engines");
    for (node_count, runs) in [(1_000, 500), (5_000, 200)] {
        through_placement(node_count, runs);
    }
}

/// Times plain decisions taken as a create takes them, on `node_count` simulated engines.
fn through_placement(node_count: usize, runs: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Some(fleet) = ChildFleet::start(node_count).await else {
            return;
        };
        let scheduler = Scheduler::new("spread", &DEFAULT_FILTERS).expect("default scheduler");
        let cluster = Cluster::new(cluster_options(), Transport::new(None), scheduler);
        for addr in &fleet.addrs {
            cluster.add_engine(addr);
        }
        cluster.start();
        // Hosting thousands of engines in this process may be more than the machine can
        // validate in time; the row is then left out rather than taken on fewer nodes.
        let deadline = Instant::now() + VALIDATION_LIMIT;
        while cluster.engines().validated.len() < node_count {
            if Instant::now() >= deadline {
                let validated = cluster.engines().validated.len();
                println!(
                    "{node_count:>6} nodes  skipped: {validated} validated within {VALIDATION_LIMIT:?}"
                );
                cluster.shutdown().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let maps = cluster.engines();
        for (label, kept) in [
            ("placement, full selection", false),
            ("placement, kept ranking", true),
        ] {
            // Warm-up: builds every memoised snapshot and (for the view) the first ranking.
            decide(&cluster, &maps, kept);
            let mut samples: Vec<Duration> =
                (0..runs).map(|_| decide(&cluster, &maps, kept)).collect();
            samples.sort_unstable();
            print_row(node_count, label, &samples);
        }
        cluster.shutdown().await;
    });
}

/// Simulated engines served by the `engine_simulator` example in a process of its own: 5,000
/// engines and a cluster connected to them need more descriptors than one process may open.
struct ChildFleet {
    child: std::process::Child,
    addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

impl ChildFleet {
    /// Starts `count` engines of [`CONTAINERS_PER_NODE`] containers and waits (at most two
    /// minutes) for their addresses; `None`, said on stdout, when that fails.
    async fn start(count: usize) -> Option<ChildFleet> {
        let program = std::env::current_exe()
            .ok()?
            .with_file_name("engine_simulator");
        let dir = tempfile::tempdir().ok()?;
        let out = dir.path().join("engines");
        let child = std::process::Command::new(&program)
            .args(["--engines", &count.to_string()])
            .args(["--containers", &CONTAINERS_PER_NODE.to_string()])
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!(
                "{count:>6} nodes  skipped: cannot start {} (cargo build --release --examples)",
                program.display()
            );
            return None;
        };
        let mut fleet = ChildFleet {
            child,
            addrs: Vec::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let listed = std::fs::read_to_string(&out).unwrap_or_default();
            fleet.addrs = listed.lines().map(str::to_string).collect();
            if fleet.addrs.len() == count {
                return Some(fleet);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("{count:>6} nodes  skipped: the simulated engines did not start within 2 minutes");
        None
    }
}

impl Drop for ChildFleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One decision as the create path takes it; returns how long choosing took.
fn decide(cluster: &Cluster, maps: &Arc<EngineMaps>, kept: bool) -> Duration {
    let plain = SchedulingRequest::default();
    let placement = &cluster.placement;
    let started = Instant::now();
    let mut set = placement.pending();
    let chosen = if kept {
        let best = placement.best_kept(&mut set, maps, &plain);
        best.expect("a node for a plain request").id.clone()
    } else {
        let mut nodes = placement.snapshots().of_validated(maps, false);
        set.add_to(&mut nodes);
        let refs: Vec<&NodeSnapshot> = nodes.iter().map(|n| n.as_ref()).collect();
        let ranked = placement.scheduler.select_among(&refs, &plain);
        ranked.expect("placement")[0].id.clone()
    };
    let key = set.add(
        chosen.clone(),
        ContainerSnapshot::pending(&plain, None, None),
    );
    drop(set);
    let took = started.elapsed();
    // What the engine's answer causes: its cache is written, the creation leaves the set.
    let engine = &maps.validated[&chosen];
    if let Some(c) = engine.cache().containers.values().next().cloned() {
        engine.restore_container(c);
    }
    drop(placement.hold(key));
    took
}

/// Refreshes far apart, so that the engines change only when a decision touches them; the
/// default filters and spread, as in the tables above.
fn cluster_options() -> ClusterOptions {
    let engine = EngineOptions {
        refresh_min: Duration::from_secs(300),
        refresh_max: Duration::from_secs(600),
        failure_retry: 3,
        call_timeout: Duration::from_secs(30),
    };
    let filters = DEFAULT_FILTERS.map(String::from).to_vec();
    ClusterOptions {
        strategy: "spread".into(),
        filters,
        engine,
        create_retry: 0,
        heartbeat: Duration::from_secs(60),
        overcommit: 0.05,
        refresh_on_node_filter: false,
        container_name_refresh_filter: None,
        experimental: false,
    }
}

/// Times `runs` calls of `decide`, sorted.
fn time_runs(runs: u32, mut decide: impl FnMut()) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            decide();
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples
}

/// One line of the table: mean, median and 99th percentile of `samples`, and decisions/s.
fn print_row(node_count: usize, label: &str, samples: &[Duration]) {
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{node_count:>6} nodes  {label:<42} {:>7} {:>10} {:>10} {:>10} {:>10.0}",
        samples.len(),
        format_duration(mean),
        format_duration(percentile(samples, 50)),
        format_duration(percentile(samples, 99)),
        1.0 / mean.as_secs_f64(),
    );
}

/// Time spent in each filter alone (all nodes in, soft expressions on) for one request.
fn filter_breakdown(nodes: &[NodeSnapshot], request: &SchedulingRequest, runs: u32) {
    println!(
        "per-filter time at {} nodes, busy request (mean of {runs})",
        nodes.len()
    );
    for name in DEFAULT_FILTERS {
        let filter = filter_by_name(name).expect("default filter");
        let started = Instant::now();
        for _ in 0..runs {
            let kept = filter.filter(black_box(request), nodes.iter().collect(), true);
            black_box(kept.map(|kept| kept.len()).unwrap_or(0));
        }
        println!(
            "  {name:<15} {:>10}",
            format_duration(started.elapsed() / runs)
        );
    }
}

/// A request that makes every default filter do real work.
fn busy_request() -> SchedulingRequest {
    SchedulingRequest {
        constraints: vec!["region==eu-*".into(), "storage!=disk".into()],
        affinities: vec!["image==~redis".into()],
        memory: 256 << 20,
        cpus: 1,
        network_mode: "bridge".into(),
        port_bindings: vec![PortBinding {
            port: "80/tcp".into(),
            host_ip: String::new(),
            host_port: "8080".into(),
        }],
        ..Default::default()
    }
}

/// Nodes in three regions with mixed storage, each running containers with labels and
/// published ports, and holding a handful of images.
fn cluster(node_count: usize) -> Vec<NodeSnapshot> {
    (0..node_count)
        .map(|n| {
            let name = format!("node-{n}");
            let mut node = NodeSnapshot {
                id: format!(
                    "{:08X}:ABCD:EFGH|10.{}.{}.{}:2375",
                    n,
                    n / 65536,
                    (n / 256) % 256,
                    n % 256
                ),
                addr: format!("10.{}.{}.{}:2375", n / 65536, (n / 256) % 256, n % 256),
                ip: format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256),
                labels: BTreeMap::from([
                    ("storagedriver".to_string(), "overlay2".to_string()),
                    ("ostype".to_string(), "linux".to_string()),
                    (
                        "region".to_string(),
                        ["eu-west", "eu-central", "us-east"][n % 3].to_string(),
                    ),
                    ("storage".to_string(), ["ssd", "disk"][n % 2].to_string()),
                ]),
                health_indicator: 100,
                total_cpus: 16,
                total_memory: 64 * GIB,
                images: (0..8)
                    .map(|i| ImageSnapshot {
                        id: format!("sha256:{n:032x}{i:032x}"),
                        repo_tags: vec![format!(
                            "{}:{}",
                            ["redis", "nginx", "postgres", "app"][i % 4],
                            i
                        )],
                        repo_digests: Vec::new(),
                    })
                    .collect(),
                name,
                ..Default::default()
            };
            for c in 0..CONTAINERS_PER_NODE {
                let container_name = format!("svc-{n}-{c}");
                node.add_container(ContainerSnapshot {
                    id: format!("{n:032x}{c:032x}"),
                    swarm_id: Some(format!("{c:032x}{n:032x}")),
                    names: vec![format!("/{container_name}")],
                    name: Some(container_name),
                    labels: BTreeMap::from([
                        (
                            "com.example.tier".to_string(),
                            ["web", "db", "cache"][c % 3].to_string(),
                        ),
                        (
                            "com.docker.compose.project".to_string(),
                            format!("p{}", c % 5),
                        ),
                    ]),
                    network_mode: "bridge".into(),
                    exposed_ports: vec!["80/tcp".into()],
                    port_bindings: if c % 3 == 0 {
                        vec![PortBinding {
                            port: "80/tcp".into(),
                            host_ip: String::new(),
                            host_port: (9000 + c).to_string(),
                        }]
                    } else {
                        Vec::new()
                    },
                    pending: false,
                    reserved_cpus: i64::from(c % 4 == 0),
                    reserved_memory: 64 << 20,
                });
            }
            node
        })
        .collect()
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let index = (sorted.len() * percent / 100).min(sorted.len() - 1);
    sorted[index]
}

fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}
