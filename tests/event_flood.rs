//! An event flood against the real manager: containers with ~120 KB of labels on a real engine,
//! paused and unpaused 1,000 times (2,000 events of ~120 KB), while one `/events` client never
//! reads. The manager's memory stays bounded, the stalled listener is dropped, and a listener
//! that connects afterwards still receives new events.
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{http, wait_until, EngineSet, Manager};

/// How many containers are paused and unpaused in parallel.
const CONTAINERS: usize = 4;
/// Pause + unpause cycles in all: two events each.
const CYCLES: usize = 1_000;
/// Labels per container, of [`LABEL_VALUE`] bytes each: ~120 KB of labels.
const LABELS: usize = 120;
const LABEL_VALUE: usize = 1_000;
/// The growth of the manager's resident memory the flood may cause.
const RSS_BUDGET: u64 = 100 << 20;

/// The manager's resident set size in bytes, while it runs.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `POST path` on `addr`, expecting `want`; returns the body.
fn post(addr: &str, path: &str, body: Option<&[u8]>, want: u16) -> Vec<u8> {
    let resp = http::request(
        addr,
        "POST",
        path,
        body.map(|b| ("application/json", b)),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert_eq!(resp.status, want, "POST {path}: {}", resp.text());
    resp.body
}

/// Pauses or unpauses a container on the engine. The engine records the new state a moment
/// after it answers, so a call right after the previous one may be refused as a no-op: retried.
fn toggle(engine: &str, id: &str, action: &str) {
    let path = format!("/containers/{id}/{action}");
    for _ in 0..200 {
        let resp = http::request(engine, "POST", &path, None, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        match resp.status {
            204 => return,
            409 | 500 => std::thread::sleep(Duration::from_millis(5)),
            _ => panic!("POST {path}: {} {}", resp.status, resp.text()),
        }
    }
    panic!("POST {path} refused 200 times");
}

/// Creates and starts a container with ~120 KB of labels on the engine; returns its ID.
fn labelled_container(engine: &str, index: usize) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = (0..LABELS)
        .map(|i| {
            let value = format!("{i:0>width$}", width = LABEL_VALUE);
            (format!("flood.label.{i}"), value.into())
        })
        .collect();
    let body = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["sleep", "600"],
        "Labels": labels,
    });
    let created = post(
        engine,
        &format!("/containers/create?name=flood-{index}"),
        Some(body.to_string().as_bytes()),
        201,
    );
    let id = serde_json::from_slice::<serde_json::Value>(&created).expect("create answer")["Id"]
        .as_str()
        .expect("Id")
        .to_string();
    post(engine, &format!("/containers/{id}/start"), None, 204);
    id
}

/// Opens `/events` on the manager; `Connection: close` so the end of the body ends the
/// connection.
fn open_events(manager: &str) -> TcpStream {
    let mut stream = TcpStream::connect(manager).expect("connect to the manager");
    stream
        .write_all(
            format!("GET /events HTTP/1.1\r\nHost: {manager}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("send the events request");
    stream
}

/// `NEventsListener` of the manager's `/info`.
fn listeners(manager: &str) -> Option<u64> {
    http::get(manager, "/info").ok()?.json().ok()?["NEventsListener"].as_u64()
}

#[test]
fn a_stalled_listener_is_dropped_and_memory_stays_bounded_under_an_event_flood() {
    let engines = EngineSet::start(1);
    let engine = engines[0].addr();
    let manager = Manager::start_healthy(&engines, &[]);
    let addr = manager.addr();
    let pid = manager.pid().expect("manager pid");

    let ids: Vec<String> = (0..CONTAINERS)
        .map(|i| labelled_container(&engine, i))
        .collect();
    let probe = String::from_utf8(post(
        &engine,
        "/containers/create?name=probe",
        Some(br#"{"Image": "busybox", "Cmd": ["sleep", "600"]}"#),
        201,
    ))
    .expect("create answer");
    let probe = serde_json::from_str::<serde_json::Value>(&probe).expect("create answer")["Id"]
        .as_str()
        .expect("Id")
        .to_string();
    post(&engine, &format!("/containers/{probe}/start"), None, 204);
    // The creates and starts are in the manager's cache and history before the baseline.
    wait_until(
        Duration::from_secs(30),
        "the manager lists the containers",
        || {
            http::get(&addr, "/containers/json")
                .ok()
                .and_then(|r| r.json().ok())
                .and_then(|v| v.as_array().map(Vec::len))
                == Some(CONTAINERS + 1)
        },
    );

    let stalled = open_events(&addr);
    wait_until(
        Duration::from_secs(10),
        "the stalled listener is counted",
        || listeners(&addr) == Some(1),
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = rss(pid).expect("manager RSS");

    let peak = Arc::new(AtomicU64::new(before));
    let flooding = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, flooding) = (peak.clone(), flooding.clone());
        std::thread::spawn(move || {
            while flooding.load(Ordering::Relaxed) {
                if let Some(now) = rss(pid) {
                    peak.fetch_max(now, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    let flooders: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for _ in 0..CYCLES / CONTAINERS {
                    toggle(&engine, &id, "pause");
                    toggle(&engine, &id, "unpause");
                }
            })
        })
        .collect();
    for flooder in flooders {
        flooder.join().expect("flood thread");
    }
    eprintln!(
        "flood of {} events took {:?}",
        CYCLES * 2,
        started.elapsed()
    );

    // A fresh listener, then one more pause and unpause: it sees both. The manager may still
    // be reading the flood from the engine, so the new events can take a while.
    let fresh = open_events(&addr);
    wait_until(
        Duration::from_secs(10),
        "the fresh listener is counted",
        || listeners(&addr) == Some(2),
    );
    toggle(&engine, &probe, "pause");
    toggle(&engine, &probe, "unpause");
    fresh
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut seen = Vec::new();
    let mut lines = BufReader::new(fresh);
    let mut line = String::new();
    while seen.len() < 2 {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => panic!("the fresh listener's stream ended; saw {seen:?}"),
            Ok(_) => {}
            Err(e) => panic!("the fresh listener got no new events ({e}); saw {seen:?}"),
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            continue; // the status line, headers and chunk sizes
        };
        if event["Actor"]["ID"] == probe.as_str() {
            seen.push(event["Action"].as_str().unwrap_or("").to_string());
        }
    }

    assert_eq!(seen, ["pause", "unpause"], "the new events, in order");

    flooding.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    let after = rss(pid).expect("manager RSS");
    eprintln!(
        "manager RSS: {} MiB before the flood, peak {} MiB (+{} MiB), {} MiB after",
        before >> 20,
        peak >> 20,
        (peak - before) >> 20,
        after >> 20
    );
    assert!(
        peak - before <= RSS_BUDGET,
        "manager RSS grew by {} MiB (from {} MiB)",
        (peak - before) >> 20,
        before >> 20
    );

    // The stalled listener, read now: what was already sent, then the end of the connection.
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut received = 0usize;
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match stalled.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                received += n;
                tail.extend_from_slice(&buf[..n]);
                let keep = tail.len().saturating_sub(16);
                tail.drain(..keep);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    eprintln!("the stalled listener had {} KiB waiting", received >> 10);
    let logs = manager.logs();
    let dropped_logged = logs.matches("Events listener fell behind").count();
    assert!(
        ended.is_ok(),
        "the stalled listener's connection was not ended: {ended:?}"
    );
    assert!(
        tail.ends_with(b"0\r\n\r\n"),
        "the stalled listener's response did not end cleanly"
    );
    assert_eq!(dropped_logged, 1, "one warning per dropped listener");
    // The fresh listener is still open; the stalled one is not counted any more.
    wait_until(
        Duration::from_secs(10),
        "the stalled listener is uncounted",
        || listeners(&addr) == Some(1),
    );
}
