//! Scale benchmark: starts simulated engines in this process, a manager against them as a
//! separate process, and prints a table of the figures that matter at scale.
//!
//! ```sh
//! cargo build --release --bin swarm --example bench
//! target/release/examples/bench --engines 1000 --containers 30 \
//!     --manager "target/release/swarm manage"
//! ```
//!
//! `--manager` is any Docker-API-compatible manager command; the benchmark appends
//! `-H tcp://127.0.0.1:<port> file://<engines file>`, so the classic manager can be measured
//! under the same load.
//!
//! `--runs N` runs the whole benchmark N times, each in a process of its own (a fresh
//! simulator and a fresh manager), and then prints each figure's min / median / max beside its
//! budget ([`BUDGETS`], for 1,000 × 30 and 5,000 × 20); a line is met only when every run
//! meets it. Before anything starts, the benchmark raises its open-file limit to what the fleet
//! needs ([`measure::raise_open_file_limit`]); the manager it starts inherits it.
mod measure;
mod simulator;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use measure::{
    arg, current_rss, get_counted, http_client, ms, percentile, proc_stats, raise_open_file_limit,
    request, HttpClient, ManagerProcess, FILES_PER_ENGINE,
};
use serde_json::Value;
use simulator::SimFleet;

/// Runs `per_client` GETs of `url` from `clients` concurrent clients; returns sorted latencies.
async fn measure_get(
    client: &HttpClient,
    url: &str,
    clients: usize,
    per_client: usize,
) -> (Vec<Duration>, usize) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            for _ in 0..per_client {
                let t = Instant::now();
                match get_counted(&client, &url).await {
                    Ok((200, length)) if length > 0 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors)
}

/// Creates and starts `total` containers from `clients` concurrent clients.
async fn measure_create(
    client: &HttpClient,
    base: &str,
    clients: usize,
    total: usize,
    tag: &str,
) -> (Vec<Duration>, usize, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let base = base.to_string();
        let tag = tag.to_string();
        let share = total / clients + usize::from(c < total % clients);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            for i in 0..share {
                let t = Instant::now();
                let url = format!("{base}/v1.41/containers/create?name=bench-{tag}-{c}-{i}");
                match request(
                    &client,
                    "POST",
                    &url,
                    r#"{"Image":"busybox","Cmd":["sleep","1000"]}"#,
                )
                .await
                {
                    Ok((201, body)) => {
                        let id = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["Id"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        match request(
                            &client,
                            "POST",
                            &format!("{base}/v1.41/containers/{id}/start"),
                            "",
                        )
                        .await
                        {
                            Ok((204, _)) => lat.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    Ok((status, body)) => {
                        if errors == 0 {
                            eprintln!("create failed: {status} {}", String::from_utf8_lossy(&body));
                        }
                        errors += 1
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("create failed: {e}");
                        }
                        errors += 1
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors, started.elapsed())
}

/// Which way a figure must stay of its budget.
#[derive(Clone, Copy, PartialEq)]
enum Bound {
    AtMost,
    AtLeast,
}

/// One line of the printout: a figure each run reports under `key`, and its budget (the scale
/// budget in docs/performance.md) at 1,000 engines × 30 containers and at 5,000 × 20, where it
/// has one.
struct Line {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    bound: Bound,
    /// At 1,000 × 30 and at 5,000 × 20.
    budgets: [Option<f64>; 2],
}

/// The fleet sizes the budgets are written for.
const SIZE_1000X30: (usize, usize) = (1000, 30);
const SIZE_5000X20: (usize, usize) = (5000, 20);

/// Every figure of a run, in the order printed, with the budget of each fleet size.
#[rustfmt::skip]
const BUDGETS: &[Line] = &[
    Line { key: "healthy", label: "all engines Healthy", unit: "s", bound: Bound::AtMost, budgets: [Some(3.0), Some(15.0)] },
    Line { key: "info_p99_1", label: "/info p99, 1 client", unit: "ms", bound: Bound::AtMost, budgets: [Some(5.0), None] },
    Line { key: "info_p99_8", label: "/info p99, 8 clients", unit: "ms", bound: Bound::AtMost, budgets: [Some(10.0), Some(40.0)] },
    Line { key: "ps_p99_1", label: "docker ps -a p99, 1 client", unit: "ms", bound: Bound::AtMost, budgets: [Some(60.0), Some(300.0)] },
    Line { key: "ps_p99_8", label: "docker ps -a p99, 8 clients", unit: "ms", bound: Bound::AtMost, budgets: [Some(400.0), None] },
    Line { key: "ps_cpu", label: "manager CPU per docker ps -a", unit: "ms", bound: Bound::AtMost, budgets: [Some(15.0), None] },
    Line { key: "ps_size", label: "docker ps -a size", unit: "MB", bound: Bound::AtMost, budgets: [None, None] },
    Line { key: "create_rate_1", label: "create+start, 1 client", unit: "/s", bound: Bound::AtLeast, budgets: [None, None] },
    Line { key: "create_rate_8", label: "create+start, 8 clients", unit: "/s", bound: Bound::AtLeast, budgets: [Some(600.0), Some(500.0)] },
    Line { key: "create_p99_8", label: "create+start p99, 8 clients", unit: "ms", bound: Bound::AtMost, budgets: [Some(30.0), None] },
    Line { key: "create_errors", label: "create+start errors", unit: "", bound: Bound::AtMost, budgets: [Some(0.0), Some(0.0)] },
    Line { key: "events_rate", label: "events fan-in", unit: "/s", bound: Bound::AtLeast, budgets: [None, None] },
    Line { key: "peak_rss", label: "manager peak RSS", unit: "MB", bound: Bound::AtMost, budgets: [Some(200.0), Some(800.0)] },
    Line { key: "cpu_total", label: "manager CPU, whole run", unit: "s", bound: Bound::AtMost, budgets: [None, None] },
    Line { key: "idle_cpu", label: "manager idle CPU, refreshes included", unit: "% of a core", bound: Bound::AtMost, budgets: [Some(1.0), Some(3.0)] },
];

impl Line {
    /// The budget at this fleet size, if the issue gives one.
    fn budget(&self, size: (usize, usize)) -> Option<f64> {
        match size {
            SIZE_1000X30 => self.budgets[0],
            SIZE_5000X20 => self.budgets[1],
            _ => None,
        }
    }

    fn met(&self, value: f64, budget: f64) -> bool {
        match self.bound {
            Bound::AtMost => value <= budget,
            Bound::AtLeast => value >= budget,
        }
    }

    fn show_budget(&self, budget: f64) -> String {
        let sign = match self.bound {
            Bound::AtMost => "≤",
            Bound::AtLeast => "≥",
        };
        format!("{sign} {budget} {}", self.unit)
    }
}

/// How a run hands its figures to the process that ran it: one line each, `key` and value.
const FIGURE_PREFIX: &str = "figure\t";

/// Set in the environment of the runs of `--runs`, so that they print their figures for it.
const RUN_OF_MANY: &str = "SHOAL_BENCH_RUN_OF_MANY";

/// The options of one run.
struct Options {
    engines: usize,
    containers: usize,
    creates: usize,
    manager_cmd: String,
}

/// The idle CPU is measured over this window…
const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// …starting this long after every engine turned Healthy. At the default intervals an engine
/// refreshes 30 to 60 s after its last refresh (the first one, a full re-list, 30 to 60 s after
/// it was validated), so the refreshes come in waves at first: a window at 65–75 s held 0.73 of
/// the steady rate (computed for a fleet validated over 9 s), 90–150 s holds 1.00 of it.
const IDLE_AFTER_HEALTHY: Duration = Duration::from_secs(90);

/// Time allowed for every engine to turn Healthy: two minutes, more for fleets above 2,400
/// engines (50 ms an engine), so a slow run reports a figure instead of giving up.
fn healthy_bound(engines: usize) -> Duration {
    Duration::from_secs(120).max(Duration::from_millis(50 * engines as u64))
}

/// One whole run: a fleet, a manager, every measurement. Prints the run's table and returns
/// its figures by key.
async fn run_once(opts: &Options) -> Vec<(&'static str, f64)> {
    let Options {
        engines,
        containers,
        creates,
        ref manager_cmd,
    } = *opts;
    let fleet = Arc::new(
        SimFleet::start(engines, containers)
            .await
            .expect("simulator"),
    );
    let manager = ManagerProcess::start(manager_cmd, &fleet.addrs()).expect("start the manager");
    let pid = manager.pid;
    let base = manager.base.clone();
    let client = http_client();
    let mut figures: Vec<(&'static str, f64)> = Vec::new();

    println!("Shoal benchmark: {engines} simulated engines x {containers} containers, manager: {manager_cmd}");
    // 1. Time until every engine is Healthy.
    let bound = healthy_bound(engines);
    let healthy_after = manager.wait_healthy(&client, engines, bound).await;
    let all_healthy = Instant::now();
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "all engines Healthy after".into(),
        healthy_after
            .map(ms)
            .unwrap_or_else(|| format!("not within {} s", bound.as_secs())),
    ));
    figures.push(("healthy", healthy_after.unwrap_or(bound).as_secs_f64()));
    // Let the first refreshes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push((
        "manager RSS once settled".into(),
        format!("{:.0} MB", current_rss(pid) as f64 / 1e6),
    ));

    // Lists of a large fleet are tens of megabytes each: fewer of them, same shape.
    let (ps1, ps8) = if engines * containers > 50_000 {
        (10, 3)
    } else {
        (20, 5)
    };
    for (path, key, per1, per8) in [
        ("/info", "info", 200, 50),
        ("/containers/json?all=1", "ps", ps1, ps8),
    ] {
        let cpu_before = proc_stats(pid).1;
        let mut served = 0;
        for (clients, per) in [(1, per1), (8, per8)] {
            let (lat, errors) = measure_get(&client, &format!("{base}{path}"), clients, per).await;
            served += lat.len();
            rows.push((
                format!("{path} p50/p90/p99, {clients} client(s)"),
                format!(
                    "{} / {} / {}{}",
                    ms(percentile(&lat, 0.5)),
                    ms(percentile(&lat, 0.9)),
                    ms(percentile(&lat, 0.99)),
                    if errors > 0 {
                        format!(" ({errors} errors)")
                    } else {
                        String::new()
                    }
                ),
            ));
            let p99 = percentile(&lat, 0.99).as_secs_f64() * 1000.0;
            figures.push(match (key, clients) {
                ("info", 1) => ("info_p99_1", p99),
                ("info", _) => ("info_p99_8", p99),
                ("ps", 1) => ("ps_p99_1", p99),
                _ => ("ps_p99_8", p99),
            });
        }
        if key == "ps" {
            // Everything the manager did while the lists were served, refreshes included,
            // shared out over the lists.
            let per_list = (proc_stats(pid).1 - cpu_before) * 1000.0 / served.max(1) as f64;
            rows.push((
                "manager CPU per /containers/json?all=1".into(),
                format!("{per_list:.1} ms ({served} lists)"),
            ));
            figures.push(("ps_cpu", per_list));
        }
    }
    let list_size = request(&client, "GET", &format!("{base}/containers/json?all=1"), "")
        .await
        .map(|(_, b)| b.len())
        .unwrap_or(0);
    rows.push((
        "/containers/json?all=1 size".into(),
        format!("{:.1} MB", list_size as f64 / 1e6),
    ));
    figures.push(("ps_size", list_size as f64 / 1e6));

    let peak_after_reads = proc_stats(pid).0;
    let mut create_errors = 0;
    for clients in [1usize, 8] {
        let (lat, errors, took) =
            measure_create(&client, &base, clients, creates, &format!("c{clients}")).await;
        let rate = lat.len() as f64 / took.as_secs_f64();
        rows.push((
            format!("create+start x{creates}, {clients} client(s)"),
            format!(
                "{rate:.0}/s, p50 {} p99 {}, {errors} errors",
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            ),
        ));
        create_errors += errors;
        if clients == 1 {
            figures.push(("create_rate_1", rate));
        } else {
            figures.push(("create_rate_8", rate));
            figures.push((
                "create_p99_8",
                percentile(&lat, 0.99).as_secs_f64() * 1000.0,
            ));
        }
    }
    figures.push(("create_errors", create_errors as f64));

    let peak_after_creates = proc_stats(pid).0;
    // Events fan-in: subscribe, then have every engine emit events.
    let events_url = format!("{base}/events");
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = counter.clone();
    let ev_client = client.clone();
    let reader = tokio::spawn(async move {
        let req = hyper::Request::get(events_url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let Ok(Ok(resp)) =
            tokio::time::timeout(measure::REQUEST_TIMEOUT, ev_client.request(req)).await
        else {
            return;
        };
        let mut body = resp.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                c2.fetch_add(
                    data.iter().filter(|b| **b == b'\n').count(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // At most 30,000 events in the burst: a listener's queue in the manager holds 32,768,
    // and a burst beyond it measures the cut, not the fan-in.
    let per_engine = (30_000 / engines.max(1)).clamp(1, 20);
    let t = Instant::now();
    for _ in 0..per_engine {
        for e in &fleet.engines {
            e.emit_test_event();
        }
    }
    let expected = per_engine * engines;
    while counter.load(std::sync::atomic::Ordering::Relaxed) < expected
        && t.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = counter.load(std::sync::atomic::Ordering::Relaxed);
    let events_rate = got as f64 / t.elapsed().as_secs_f64();
    rows.push((
        "events fan-in".into(),
        format!("{events_rate:.0} events/s ({got}/{expected} delivered)"),
    ));
    figures.push(("events_rate", events_rate));
    reader.abort();

    // The idle window holds periodic refreshes at their steady rate (see IDLE_AFTER_HEALTHY).
    tokio::time::sleep_until(all_healthy + IDLE_AFTER_HEALTHY).await;
    let (_, cpu_before) = proc_stats(pid);
    tokio::time::sleep(IDLE_WINDOW).await;
    let (rss, cpu_after) = proc_stats(pid);
    let idle = (cpu_after - cpu_before) / IDLE_WINDOW.as_secs_f64() * 100.0;
    rows.push((
        "manager peak RSS".into(),
        format!(
            "{:.0} MB (after reads {:.0}, creates {:.0}, events {:.0})",
            rss as f64 / 1e6,
            peak_after_reads as f64 / 1e6,
            peak_after_creates as f64 / 1e6,
            rss as f64 / 1e6
        ),
    ));
    rows.push((
        "manager CPU for the whole run".into(),
        format!("{cpu_after:.1} s"),
    ));
    rows.push((
        format!(
            "manager idle CPU ({} s from {} s after all Healthy)",
            IDLE_WINDOW.as_secs(),
            IDLE_AFTER_HEALTHY.as_secs()
        ),
        format!("{idle:.1}% of a core"),
    ));
    figures.push(("peak_rss", rss as f64 / 1e6));
    figures.push(("cpu_total", cpu_after));
    figures.push(("idle_cpu", idle));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
    drop(manager);
    figures
}

/// How long one run of `--runs` may take before it is stopped and counted as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Runs this program again with `--runs 1`, `runs` times one after the other, echoing each
/// run's table; the figures of every run that finished.
fn run_many(args: &[String], runs: usize) -> Vec<Vec<(String, f64)>> {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut child_args: Vec<String> = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        if a == "--runs" {
            rest.next();
        } else {
            child_args.push(a.clone());
        }
    }
    let mut all = Vec::new();
    for run in 1..=runs {
        println!("--- run {run} of {runs} ---");
        let mut child = Command::new(&exe)
            .args(&child_args)
            .args(["--runs", "1"])
            .env(RUN_OF_MANY, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a run");
        let pid = child.id();
        // The watchdog ends a run that hangs; the run's own waits are bounded, so it should
        // never have to.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx.recv_timeout(RUN_TIMEOUT).is_err() {
                eprintln!("run {run} took over {} s: stopped", RUN_TIMEOUT.as_secs());
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        });
        let mut figures = Vec::new();
        let stdout = child.stdout.take().expect("piped");
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            match text.strip_prefix(FIGURE_PREFIX) {
                Some(figure) => {
                    let mut parts = figure.split('\t');
                    if let (Some(key), Some(Ok(value))) =
                        (parts.next(), parts.next().map(str::parse::<f64>))
                    {
                        figures.push((key.to_string(), value));
                    }
                }
                None => println!("{text}"),
            }
        }
        let status = child.wait();
        let _ = done_tx.send(());
        let _ = watchdog.join();
        match status {
            Ok(s) if s.success() && !figures.is_empty() => all.push(figures),
            other => println!("run {run} failed ({other:?}): left out of the summary"),
        }
    }
    all
}

/// The summary of several runs: per line min / median / max, the budget, and whether every
/// run met it.
fn print_summary(size: (usize, usize), runs: usize, all: &[Vec<(String, f64)>]) {
    println!();
    println!(
        "Summary of {} run(s) of {runs}, {} engines x {} containers (budget: docs/performance.md{})",
        all.len(),
        size.0,
        size.1,
        if BUDGETS.iter().any(|l| l.budget(size).is_some()) {
            ""
        } else {
            ", none at this size"
        }
    );
    let header = ["line", "min", "median", "max", "budget", "met"];
    let mut table: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for l in BUDGETS {
        let mut values: Vec<f64> = all
            .iter()
            .filter_map(|run| run.iter().find(|(k, _)| k == l.key).map(|(_, v)| *v))
            .collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let show = |v: f64| format!("{v:.1}");
        let budget = l.budget(size);
        let met = match budget {
            None => String::new(),
            Some(b) => {
                let every = values.len() == runs && values.iter().all(|v| l.met(*v, b));
                let count = values.iter().filter(|v| l.met(**v, b)).count();
                format!("{} ({count}/{runs})", if every { "met" } else { "MISSED" })
            }
        };
        table.push([
            if l.unit.is_empty() {
                l.label.to_string()
            } else {
                format!("{} ({})", l.label, l.unit)
            },
            show(values[0]),
            show(values[values.len() / 2]),
            show(values[values.len() - 1]),
            budget.map(|b| l.show_budget(b)).unwrap_or_default(),
            met,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        println!("{}", cells.join("  "));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts = Options {
        engines: arg(&args, "--engines", "1000").parse().unwrap(),
        containers: arg(&args, "--containers", "30").parse().unwrap(),
        creates: arg(&args, "--creates", "1000").parse().unwrap(),
        manager_cmd: arg(&args, "--manager", "target/release/swarm manage"),
    };
    let runs: usize = arg(&args, "--runs", "1").parse().unwrap();
    let wanted = opts.engines as u64 * FILES_PER_ENGINE;
    let limit = raise_open_file_limit(wanted);
    if limit < wanted {
        eprintln!(
            "open-file limit {limit} is below the {wanted} this fleet may need (raise `ulimit -Hn`, or run with CAP_SYS_RESOURCE); going on"
        );
    }
    let size = (opts.engines, opts.containers);
    if runs > 1 {
        let all = run_many(&args, runs);
        print_summary(size, runs, &all);
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let figures = runtime.block_on(run_once(&opts));
    // The fleet's tasks end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(5));
    if std::env::var_os(RUN_OF_MANY).is_some() {
        for (key, value) in &figures {
            println!("{FIGURE_PREFIX}{key}\t{value}");
        }
    } else {
        let figures = figures.into_iter().map(|(k, v)| (k.to_string(), v));
        print_summary(size, 1, &[figures.collect()]);
    }
}
