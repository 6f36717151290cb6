//! Soak run: holds a steady mixed load on a manager for a given time and prints, once per
//! interval, its memory, open files and latencies, so that growth over time shows.
//!
//! ```sh
//! cargo build --release --bin swarm --example soak
//! target/release/examples/soak --engines 200 --containers 30 --minutes 30 \
//!     --manager "target/release/swarm manage"
//! ```
//!
//! The engines are simulated in this process (`examples/simulator`); the manager is started as
//! a separate process like `bench` does, and killed at the end. The load, all on 127.0.0.1, at
//! fixed rates (a client that falls behind sends less, never more):
//!
//! - reads: `/info` 20/s, `/containers/json?all=1` 1/s, `/containers/{id}/json` 20/s over
//!   the fleet's containers, `/images/json` 5/s;
//! - churn: 2 create+start/s, each followed by a forced remove, so the count stays steady;
//! - events: the simulated engines emit `--events-per-sec` (250) `exec_start` events, besides
//!   the churn's own; one listener reads `/events` as fast as it can;
//! - one stalled `/events` listener, connected and never read from (reconnected if the manager
//!   cuts it);
//! - one slow reader taking `/containers/json?all=1` (or `/events` with `--slow-reader events`)
//!   at `--slow-bytes-per-sec` (8 KB/s).
//!
//! Each interval prints one row of a Markdown table: manager RSS and its peak, its open fds,
//! requests answered and failed, p50/p99/max latency per kind of request, events received,
//! what the stalled listener has queued (in its socket and in the manager's) and what the slow
//! reader read. The summary compares the first interval with the last. The exit status is 1
//! if any request failed or the normal listener's stream broke.
mod measure;
mod simulator;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use measure::{arg, http_client, open_fds, percentile, proc_stats, request, HttpClient};
use serde_json::Value;
use simulator::SimFleet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

/// How long one request may take before it counts as failed.
const REQUEST_BOUND: Duration = Duration::from_secs(30);
/// How many failures are described on stderr (the rest are only counted).
const FAILURES_DESCRIBED: u64 = 10;

/// The kinds of request whose latency is reported.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Info,
    List,
    Inspect,
    Images,
    CreateStart,
    Remove,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Info,
        Kind::List,
        Kind::Inspect,
        Kind::Images,
        Kind::CreateStart,
        Kind::Remove,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Info => "info",
            Kind::List => "ps -a",
            Kind::Inspect => "inspect",
            Kind::Images => "images",
            Kind::CreateStart => "create+start",
            Kind::Remove => "rm -f",
        }
    }
}

/// What the load records between two reports.
#[derive(Default)]
struct Tally {
    /// Latencies of answered requests per kind, taken at each report.
    latencies: Mutex<[Vec<Duration>; Kind::ALL.len()]>,
    /// Requests answered as expected, over the whole run.
    answered: AtomicU64,
    /// Requests that failed and streams that broke, over the whole run.
    failures: AtomicU64,
    /// Events the normal listener received since the last report.
    events: AtomicU64,
}

impl Tally {
    fn answered(&self, kind: Kind, latency: Duration) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.latencies.lock().unwrap()[kind as usize].push(latency);
    }

    fn failed(&self, what: &str, err: &str) {
        if self.failures.fetch_add(1, Ordering::Relaxed) < FAILURES_DESCRIBED {
            eprintln!("{what} failed: {err}");
        }
    }

    /// Latencies since the last report, sorted, per kind.
    fn take_latencies(&self) -> [Vec<Duration>; Kind::ALL.len()] {
        let mut taken = std::mem::take(&mut *self.latencies.lock().unwrap());
        for l in &mut taken {
            l.sort();
        }
        taken
    }
}

/// A request bounded by [`REQUEST_BOUND`]; its body if the status is `expected`.
async fn bounded(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: &str,
    expected: u16,
) -> Result<Bytes, String> {
    match tokio::time::timeout(REQUEST_BOUND, request(client, method, url, body)).await {
        Err(_) => Err(format!("no answer within {REQUEST_BOUND:?}")),
        Ok(Err(e)) => Err(e),
        Ok(Ok((status, body))) if status == expected => Ok(body),
        Ok(Ok((status, body))) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
    }
}

/// A tick every `1 / per_second`; late ticks are not made up for.
fn steady(per_second: f64) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// GETs `urls` in turn at `per_second`.
async fn read_steadily(
    client: HttpClient,
    tally: Arc<Tally>,
    kind: Kind,
    per_second: f64,
    urls: Arc<Vec<String>>,
) {
    let mut tick = steady(per_second);
    for url in urls.iter().cycle() {
        tick.tick().await;
        let t = Instant::now();
        match bounded(&client, "GET", url, "", 200).await {
            Ok(_) => tally.answered(kind, t.elapsed()),
            Err(e) => tally.failed(kind.label(), &e),
        }
    }
}

/// Creates and starts a container, then removes it by force, `per_second` times a second.
async fn churn_steadily(client: HttpClient, tally: Arc<Tally>, base: String, per_second: f64) {
    let mut tick = steady(per_second);
    for n in 0u64.. {
        tick.tick().await;
        let t = Instant::now();
        let created = bounded(
            &client,
            "POST",
            &format!("{base}/v1.41/containers/create?name=soak-{n}"),
            r#"{"Image":"busybox","Cmd":["sleep","1000"]}"#,
            201,
        )
        .await
        .and_then(|body| {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["Id"].as_str().map(str::to_string))
                .ok_or_else(|| "no Id in the answer".to_string())
        });
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                tally.failed("create", &e);
                continue;
            }
        };
        let start_url = format!("{base}/v1.41/containers/{id}/start");
        match bounded(&client, "POST", &start_url, "", 204).await {
            Ok(_) => tally.answered(Kind::CreateStart, t.elapsed()),
            Err(e) => tally.failed("start", &e),
        }
        let t = Instant::now();
        let remove_url = format!("{base}/v1.41/containers/{id}?force=1");
        match bounded(&client, "DELETE", &remove_url, "", 204).await {
            Ok(_) => tally.answered(Kind::Remove, t.elapsed()),
            Err(e) => tally.failed("remove", &e),
        }
    }
}

/// Reads `/events` as fast as it comes and counts the events; a stream that ends or breaks is
/// a failure (a listener that keeps up must never be cut), and is opened again.
async fn listen(client: HttpClient, tally: Arc<Tally>, base: String) {
    loop {
        let req = hyper::Request::get(format!("{base}/events"))
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        match tokio::time::timeout(REQUEST_BOUND, client.request(req)).await {
            Ok(Ok(resp)) if resp.status() == 200 => {
                let mut body = resp.into_body();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        let lines = memchr::memchr_iter(b'\n', &data).count();
                        tally.events.fetch_add(lines as u64, Ordering::Relaxed);
                    }
                }
                tally.failed("events listener", "the stream ended");
            }
            Ok(Ok(resp)) => tally.failed("events listener", &format!("{}", resp.status())),
            Ok(Err(e)) => tally.failed("events listener", &e.to_string()),
            Err(_) => tally.failed("events listener", "no answer"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Connects and sends `GET path`; with `Connection: close` so that the end of a finite answer
/// is the end of the stream.
async fn send_get(port: u16, path: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

/// What the slow reader did over the whole run.
#[derive(Default)]
struct SlowReader {
    bytes: AtomicU64,
    /// Answers read to their end (the chunked terminator).
    finished: AtomicU64,
    /// Answers that ended before that: the manager cut the reader.
    cut: AtomicU64,
}

/// Reads `GET path` at `bytes_per_sec`, a quarter of a second's share at a time; starts again
/// when the answer ends.
async fn read_slowly(
    port: u16,
    path: String,
    bytes_per_sec: usize,
    slow: Arc<SlowReader>,
    tally: Arc<Tally>,
) {
    let mut buf = vec![0u8; (bytes_per_sec / 4).max(1)];
    loop {
        let mut stream = match send_get(port, &path).await {
            Ok(s) => s,
            Err(e) => {
                tally.failed("slow reader connect", &e.to_string());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut tail = Vec::new();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    slow.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    tail.extend_from_slice(&buf[..n]);
                    let keep = tail.len().saturating_sub(5);
                    tail.drain(..keep);
                }
            }
        }
        let counter = if tail == b"0\r\n\r\n" {
            &slow.finished
        } else {
            &slow.cut
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One side of a loopback TCP connection as `/proc/net/tcp` shows it.
struct SocketState {
    /// `st`: 01 established, 04 FIN_WAIT1, 08 CLOSE_WAIT, ...
    state: u8,
    tx_queue: u64,
    rx_queue: u64,
}

/// The socket bound to `local_port` and connected to `remote_port`, if it exists.
fn socket_state(local_port: u16, remote_port: u16) -> Option<SocketState> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || port(f[1])? != local_port || port(f[2])? != remote_port {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some(SocketState {
            state: u8::from_str_radix(f[3], 16).ok()?,
            tx_queue: u64::from_str_radix(tx, 16).ok()?,
            rx_queue: u64::from_str_radix(rx, 16).ok()?,
        })
    })
}

/// The `/events` listener that never reads.
struct StalledListener {
    stream: TcpStream,
    local_port: u16,
    /// Times the manager cut it (it is connected again each time).
    cut: u64,
}

const TCP_ESTABLISHED: u8 = 1;

impl StalledListener {
    async fn connect(port: u16) -> std::io::Result<StalledListener> {
        let stream = send_get(port, "/events").await?;
        let local_port = stream.local_addr()?.port();
        Ok(StalledListener {
            stream,
            local_port,
            cut: 0,
        })
    }

    /// Bytes queued for it (in its own socket, in the manager's); connects again if the
    /// manager has cut it.
    async fn queued(&mut self, manager_port: u16) -> (u64, u64) {
        let ours = socket_state(self.local_port, manager_port);
        let theirs = socket_state(manager_port, self.local_port);
        let queued = (
            ours.as_ref().map_or(0, |s| s.rx_queue),
            theirs.as_ref().map_or(0, |s| s.tx_queue),
        );
        let open = [ours, theirs]
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.state == TCP_ESTABLISHED));
        if !open {
            if let Ok(fresh) = StalledListener::connect(manager_port).await {
                self.stream = fresh.stream;
                self.local_port = fresh.local_port;
            }
            self.cut += 1;
        }
        queued
    }
}

/// Milliseconds, with a decimal below ten.
fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

/// One report row's figures kept for the summary.
struct Row {
    rss: u64,
    fds: usize,
    p99: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |name: &str, default: &str| -> u64 {
        let text = arg(&args, name, default);
        text.parse().unwrap_or_else(|_| {
            eprintln!("{name} takes a whole number, not {text:?}");
            std::process::exit(2)
        })
    };
    let engines = number("--engines", "200") as usize;
    let containers = number("--containers", "30") as usize;
    let minutes = number("--minutes", "30");
    let interval = Duration::from_secs(number("--interval-secs", "60").max(1));
    let events_per_sec = number("--events-per-sec", "250") as u32;
    let slow_rate = number("--slow-bytes-per-sec", "8192") as usize;
    let slow_path = match arg(&args, "--slow-reader", "list").as_str() {
        "events" => "/events",
        _ => "/containers/json?all=1",
    };
    let manager_cmd = arg(&args, "--manager", "target/release/swarm manage");

    let fleet = Arc::new(
        SimFleet::start(engines, containers)
            .await
            .expect("simulator"),
    );
    let manager =
        measure::ManagerProcess::start(&manager_cmd, &fleet.addrs()).expect("start the manager");
    let client = http_client();
    let base = manager.base.clone();
    println!(
        "Soak: {engines} simulated engines x {containers} containers, {minutes} min, \
         manager: {manager_cmd}"
    );
    let Some(healthy) = manager
        .wait_healthy(&client, engines, Duration::from_secs(120))
        .await
    else {
        eprintln!("the engines were not all Healthy within 120 s");
        drop(manager);
        std::process::exit(1);
    };
    println!("all engines Healthy after {:.1} s", healthy.as_secs_f64());

    let ids: Vec<String> = match bounded(
        &client,
        "GET",
        &format!("{base}/containers/json?all=1"),
        "",
        200,
    )
    .await
    {
        Ok(body) => serde_json::from_slice::<Vec<Value>>(&body)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect(),
        Err(e) => {
            eprintln!("listing the containers failed: {e}");
            drop(manager);
            std::process::exit(1);
        }
    };
    let inspect_urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{base}/containers/{id}/json"))
        .collect();
    if inspect_urls.is_empty() {
        eprintln!("the fleet has no containers to inspect (--containers 0?)");
        drop(manager);
        std::process::exit(2);
    }

    let tally = Arc::new(Tally::default());
    let slow = Arc::new(SlowReader::default());
    let mut load = tokio::task::JoinSet::new();
    for (kind, per_second, urls) in [
        (Kind::Info, 20.0, vec![format!("{base}/info")]),
        (
            Kind::List,
            1.0,
            vec![format!("{base}/containers/json?all=1")],
        ),
        (Kind::Inspect, 20.0, inspect_urls),
        (Kind::Images, 5.0, vec![format!("{base}/images/json")]),
    ] {
        load.spawn(read_steadily(
            client.clone(),
            tally.clone(),
            kind,
            per_second,
            Arc::new(urls),
        ));
    }
    load.spawn(churn_steadily(
        client.clone(),
        tally.clone(),
        base.clone(),
        2.0,
    ));
    load.spawn(listen(client.clone(), tally.clone(), base.clone()));
    load.spawn(read_slowly(
        manager.port,
        slow_path.to_string(),
        slow_rate,
        slow.clone(),
        tally.clone(),
    ));
    {
        let fleet = fleet.clone();
        load.spawn(async move { fleet.emit_events_steadily(events_per_sec).await });
    }
    let mut stalled = StalledListener::connect(manager.port)
        .await
        .expect("connect the stalled listener");

    println!(
        "\n| time | RSS | peak | fds | answered | failed | {} | events | stalled (its socket + manager's) | slow reader |",
        Kind::ALL.map(|k| format!("{} p50/p99/max ms", k.label())).join(" | ")
    );
    println!("|{}", " --- |".repeat(10 + Kind::ALL.len()));
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let mut report = tokio::time::interval_at(started + interval, interval);
    let mut rows: Vec<Row> = Vec::new();
    while Instant::now() < end {
        report.tick().await;
        let elapsed = started.elapsed().as_secs();
        let latencies = tally.take_latencies();
        let (peak, _) = proc_stats(manager.pid);
        let rss = measure::current_rss(manager.pid);
        let fds = open_fds(manager.pid);
        let (ours, theirs) = stalled.queued(manager.port).await;
        let cells: Vec<String> = latencies
            .iter()
            .map(|l| {
                format!(
                    "{} / {} / {}",
                    millis(percentile(l, 0.5)),
                    millis(percentile(l, 0.99)),
                    millis(l.last().copied().unwrap_or_default())
                )
            })
            .collect();
        println!(
            "| {}:{:02} | {} | {} | {fds} | {} | {} | {} | {} | {:.1} + {:.1} MB{} | {} KB, {} done, {} cut |",
            elapsed / 60,
            elapsed % 60,
            megabytes(rss),
            megabytes(peak),
            tally.answered.load(Ordering::Relaxed),
            tally.failures.load(Ordering::Relaxed),
            cells.join(" | "),
            tally.events.swap(0, Ordering::Relaxed),
            ours as f64 / 1e6,
            theirs as f64 / 1e6,
            if stalled.cut > 0 {
                format!(", cut {}×", stalled.cut)
            } else {
                String::new()
            },
            slow.bytes.load(Ordering::Relaxed) / 1000,
            slow.finished.load(Ordering::Relaxed),
            slow.cut.load(Ordering::Relaxed),
        );
        rows.push(Row {
            rss,
            fds,
            p99: latencies.iter().map(|l| percentile(l, 0.99)).collect(),
        });
    }
    load.shutdown().await;
    let (peak, cpu) = proc_stats(manager.pid);
    drop(manager);

    let failures = tally.failures.load(Ordering::Relaxed);
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "\nRSS first / last interval: {} / {} (peak {}); open fds: {} / {}",
            megabytes(first.rss),
            megabytes(last.rss),
            megabytes(peak),
            first.fds,
            last.fds
        );
        let p99: Vec<String> = Kind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| {
                format!(
                    "{} {} / {}",
                    k.label(),
                    millis(first.p99[i]),
                    millis(last.p99[i])
                )
            })
            .collect();
        println!("p99 first / last interval (ms): {}", p99.join(", "));
    }
    println!(
        "{} requests answered, {failures} failed; manager CPU {cpu:.0} s; stalled listener cut {}×; \
         slow reader {} KB, {} answers read to the end, {} cut",
        tally.answered.load(Ordering::Relaxed),
        stalled.cut,
        slow.bytes.load(Ordering::Relaxed) / 1000,
        slow.finished.load(Ordering::Relaxed),
        slow.cut.load(Ordering::Relaxed),
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
