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
mod measure;
mod simulator;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use measure::{
    arg, current_rss, http_client, ms, percentile, proc_stats, request, HttpClient, ManagerProcess,
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
                match request(&client, "GET", &url, "").await {
                    Ok((200, _)) => lat.push(t.elapsed()),
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engines: usize = arg(&args, "--engines", "1000").parse().unwrap();
    let containers: usize = arg(&args, "--containers", "30").parse().unwrap();
    let creates: usize = arg(&args, "--creates", "1000").parse().unwrap();
    let manager_cmd = arg(&args, "--manager", "target/release/swarm manage");

    let fleet = Arc::new(
        SimFleet::start(engines, containers)
            .await
            .expect("simulator"),
    );
    let manager = ManagerProcess::start(&manager_cmd, &fleet.addrs()).expect("start the manager");
    let pid = manager.pid;
    let base = manager.base.clone();
    let client = http_client();

    println!("Shoal benchmark: {engines} simulated engines x {containers} containers, manager: {manager_cmd}");
    // 1. Time until every engine is Healthy.
    let healthy_after = manager
        .wait_healthy(&client, engines, Duration::from_secs(120))
        .await;
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "all engines Healthy after".into(),
        healthy_after
            .map(ms)
            .unwrap_or_else(|| "not within 120 s".into()),
    ));
    // Let the first refreshes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push((
        "manager RSS once settled".into(),
        format!("{:.0} MB", current_rss(pid) as f64 / 1e6),
    ));

    for (path, label, per1, per8) in [
        ("/info", "/info", 200, 50),
        ("/containers/json?all=1", "/containers/json?all=1", 20, 5),
    ] {
        for (clients, per) in [(1, per1), (8, per8)] {
            let (lat, errors) = measure_get(&client, &format!("{base}{path}"), clients, per).await;
            rows.push((
                format!("{label} p50/p90/p99, {clients} client(s)"),
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

    let peak_after_reads = proc_stats(pid).0;
    for clients in [1usize, 8] {
        let (lat, errors, took) =
            measure_create(&client, &base, clients, creates, &format!("c{clients}")).await;
        rows.push((
            format!("create+start x{creates}, {clients} client(s)"),
            format!(
                "{:.0}/s, p50 {} p99 {}, {errors} errors",
                lat.len() as f64 / took.as_secs_f64(),
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            ),
        ));
    }

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
        let Ok(resp) = ev_client.request(req).await else {
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
    let per_engine = 20;
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
    rows.push((
        "events fan-in".into(),
        format!(
            "{:.0} events/s ({got}/{expected} delivered)",
            got as f64 / t.elapsed().as_secs_f64()
        ),
    ));
    reader.abort();

    let (_, cpu_before) = proc_stats(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, cpu_after) = proc_stats(pid);
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
        "manager idle CPU".into(),
        format!("{:.1}% of a core", (cpu_after - cpu_before) / 10.0 * 100.0),
    ));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
    drop(manager);
}
