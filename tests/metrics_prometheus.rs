//! `--metrics-addr` scraped by a real Prometheus server: two real engines behind a manager
//! serving `/metrics`, containers run and listed through it with the docker CLI, and the
//! figures read back through Prometheus' query API, so that the text is known to parse as
//! Prometheus parses it and the counters to move as the manager works.
mod support;

use std::time::Duration;

use support::manager::free_port;
use support::stores::PrometheusServer;
use support::{http, wait_until, DockerCli, EngineSet, Manager};

/// How long Prometheus may take to scrape and show a figure (it scrapes every second).
const SCRAPED_WITHIN: Duration = Duration::from_secs(60);

#[test]
fn prometheus_scrapes_engines_requests_scheduling_and_process_figures() {
    let engines = EngineSet::start(2);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let manager = Manager::start_healthy(&engines, &["--metrics-addr", &metrics_addr]);
    assert!(
        manager
            .logs()
            .contains(&format!("metrics_addr=tcp://{metrics_addr}")),
        "the bound metrics address is logged:\n{}",
        manager.logs()
    );

    let cli = DockerCli::default_cli();
    for _ in 0..3 {
        cli.run(&manager.host(), &["run", "-d", "busybox", "sleep", "300"])
            .assert_success();
    }
    let listed = cli.run(&manager.host(), &["ps", "-q"]).assert_success();
    assert_eq!(listed.stdout_lines().len(), 3);

    let prometheus = PrometheusServer::start("shoal", std::slice::from_ref(&metrics_addr));
    let version = env!("CARGO_PKG_VERSION");
    for (query, holds) in [
        ("up{job=\"shoal\"}", (|v| v == 1.0) as fn(f64) -> bool),
        ("shoal_engines{state=\"healthy\"}", |v| v == 2.0),
        ("shoal_engines{state=\"unhealthy\"}", |v| v == 0.0),
        (
            "sum(shoal_api_requests_total{route=\"/containers/create\",method=\"POST\",status=\"201\"})",
            |v| v >= 3.0,
        ),
        // Routes that take an object name are labelled by action, never by the name.
        (
            "sum(shoal_api_requests_total{route=\"/containers/{name}/start\",status=\"204\"})",
            |v| v >= 3.0,
        ),
        (
            "count(shoal_api_requests_total{route=~\"/containers/[0-9a-f]{12,}.*\"}) or vector(0)",
            |v| v == 0.0,
        ),
        (
            "sum(shoal_api_request_duration_seconds_count{route=\"/containers/json\"})",
            |v| v >= 1.0,
        ),
        ("shoal_scheduler_decisions_total{outcome=\"placed\"}", |v| v >= 3.0),
        (
            "shoal_scheduler_decision_duration_seconds_count{outcome=\"placed\"}",
            |v| v >= 3.0,
        ),
        ("sum(shoal_containers{state=\"running\"})", |v| v == 3.0),
        ("count(shoal_containers{state=\"running\"})", |v| v >= 1.0),
        ("shoal_engine_calls_total{outcome=\"answered\"}", |v| v > 0.0),
        ("shoal_events_received_total", |v| v > 0.0),
        ("shoal_discovery_refreshes_total{backend=\"nodes\"}", |v| v >= 1.0),
        ("shoal_manager_role{role=\"standalone\"}", |v| v == 1.0),
        ("process_resident_memory_bytes{job=\"shoal\"}", |v| v > 0.0),
        ("process_open_fds{job=\"shoal\"}", |v| v > 0.0),
        ("process_start_time_seconds{job=\"shoal\"}", |v| v > 1.0e9),
    ] {
        let mut last = None;
        let seen = support::poll_until(SCRAPED_WITHIN, || {
            last = prometheus.query(query);
            last.is_some_and(holds)
        });
        assert!(
            seen,
            "{query}: last value {last:?}; prometheus log:\n{}",
            prometheus.log_tail()
        );
    }
    let build_info = format!("shoal_build_info{{version=\"{version}\"}}");
    assert_eq!(prometheus.query(&build_info), Some(1.0), "{build_info}");

    // The listener answers only GET /metrics, in Docker's JSON error form otherwise.
    let missing = http::get(&metrics_addr, "/containers/json").unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json().unwrap()["message"], "page not found");
    let wrong_method = http::request(
        &metrics_addr,
        "POST",
        "/metrics",
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.json().unwrap()["message"],
        "method not allowed"
    );
    // The API is not served on the metrics address, and /metrics not on the API's.
    assert_eq!(http::get(&manager.addr(), "/metrics").unwrap().status, 404);
    wait_until(Duration::from_secs(5), "the manager still serves", || {
        http::ping(&manager.addr())
    });
}
