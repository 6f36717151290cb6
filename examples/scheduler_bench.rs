//! Measures how long the scheduler takes to place one container on clusters of 100, 1,000 and
//! 5,000 nodes with about 30 containers each, using the default filters and the spread strategy.
//!
//! Run with `cargo run --release --example scheduler_bench`. Prints mean, median and 99th
//! percentile decision times (and decisions per second) for a plain `docker run` and for a
//! request that exercises every filter (constraint, soft image affinity, published port, memory
//! and CPU reservation), each by a full selection; then a plain `docker run` decided from the
//! ranking kept between decisions, with the chosen node re-ranked after each.
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::scheduler::{
    filter_by_name, ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding, RankedView,
    Scheduler, SchedulingRequest, DEFAULT_FILTERS,
};

const CONTAINERS_PER_NODE: usize = 30;
const GIB: i64 = 1 << 30;

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
