//! The text a scrape renders and the `/metrics` endpoint's answers, in-process. The handle is
//! process-wide, so every test enables it and asserts on what only it could have counted.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn figures() -> ClusterFigures {
    ClusterFigures {
        engines: vec![("healthy", 2), ("pending", 1), ("unhealthy", 0)],
        containers: vec![
            ("node-1".into(), "running", 3),
            ("node-2".into(), "exited", 1),
        ],
        event_listeners: 4,
        role: "standalone",
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn cluster_figures_are_rendered_as_gauges_with_bounded_labels() {
    let text = render(&figures());
    for line in [
        "# TYPE shoal_engines gauge",
        "shoal_engines{state=\"healthy\"} 2",
        "shoal_engines{state=\"pending\"} 1",
        "shoal_engines{state=\"unhealthy\"} 0",
        "shoal_containers{node=\"node-1\",state=\"running\"} 3",
        "shoal_containers{node=\"node-2\",state=\"exited\"} 1",
        "shoal_events_listeners 4",
        "shoal_manager_role{role=\"standalone\"} 1",
        "shoal_manager_role{role=\"primary\"} 0",
        "shoal_manager_role{role=\"replica\"} 0",
    ] {
        assert!(has_line(&text, line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn process_figures_use_the_standard_names() {
    let text = render(&ClusterFigures::default());
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "missing {name:?} in\n{text}"
        );
    }
}

#[test]
fn counters_build_info_and_histograms_are_rendered_once_enabled() {
    enable();
    api_request(
        "/containers/{*rest}",
        &Method::POST,
        201,
        Duration::from_millis(3),
    );
    api_request(
        "/_ping",
        &Method::from_bytes(b"BREW").unwrap(),
        404,
        Duration::ZERO,
    );
    engine_call(CallOutcome::TimedOut);
    let placed: Result<Vec<u8>, ()> = scheduler_decision(|| Ok(vec![1]));
    assert_eq!(placed, Ok(vec![1]));
    let refused: Result<Vec<u8>, &str> = scheduler_decision(|| Err("no"));
    assert_eq!(refused, Err("no"));
    discovery_report("nodes", true);
    let text = render(&figures());
    for line in [
        "# TYPE shoal_api_requests_total counter",
        "# TYPE shoal_api_request_duration_seconds histogram",
        "# TYPE shoal_build_info gauge",
        "# TYPE shoal_engine_calls_total counter",
    ] {
        assert!(has_line(&text, line), "missing {line:?} in\n{text}");
    }
    let starts = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
    assert!(starts(
        "shoal_api_requests_total{route=\"/containers/{*rest}\",method=\"POST\",status=\"201\"} "
    ));
    // A method outside the known ones is one label value, whatever the client sent.
    assert!(starts(
        "shoal_api_requests_total{route=\"/_ping\",method=\"other\",status=\"404\"} "
    ));
    assert!(starts(
        "shoal_api_request_duration_seconds_bucket{route=\"/containers/{*rest}\",method=\"POST\",le=\"0.005\"} "
    ));
    // Every outcome has its series from the start, counted or not.
    assert!(starts("shoal_engine_calls_total{outcome=\"answered\"} "));
    assert!(starts("shoal_engine_calls_total{outcome=\"timed_out\"} "));
    assert!(starts(
        "shoal_scheduler_decisions_total{outcome=\"placed\"} "
    ));
    assert!(starts(
        "shoal_scheduler_decisions_total{outcome=\"refused\"} "
    ));
    assert!(starts(
        "shoal_scheduler_decision_duration_seconds_count{outcome=\"placed\"} "
    ));
    assert!(starts(
        "shoal_discovery_refreshes_total{backend=\"nodes\"} "
    ));
    assert!(starts(&format!(
        "shoal_build_info{{version=\"{}\",api_version=\"{}\"}} 1",
        crate::VERSION,
        crate::version::MAX_API_STR
    )));
}

#[test]
fn unknown_container_states_are_counted_as_other() {
    assert_eq!(container_state_label("running"), "running");
    assert_eq!(container_state_label("Exited"), "exited");
    assert_eq!(container_state_label("something-new"), "other");
}

async fn call(method: Method, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let source: ScrapeSource = Arc::new(figures);
    let resp = router(source)
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn get_metrics_answers_the_prometheus_text() {
    let (status, headers, body) = call(Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        has_line(&body, "shoal_engines{state=\"healthy\"} 2"),
        "{body}"
    );
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405_in_docker_json_form() {
    let (status, _, body) = call(Method::GET, "/containers/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"message":"page not found"}"#);
    let (status, _, body) = call(Method::GET, "/metrics/extra").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"message":"page not found"}"#);
    let (status, headers, body) = call(Method::POST, "/metrics").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, r#"{"message":"method not allowed"}"#);
    assert_eq!(headers[http::header::ALLOW], "GET, HEAD");
}

/// The value of a counter of the handle (enabled by the caller).
fn counted(counter: impl Fn(&Metrics) -> &Counter) -> u64 {
    counter(METRICS.get().expect("enabled")).get()
}

#[test]
fn a_new_primary_in_the_leader_key_counts_as_an_election() {
    enable();
    let before = counted(|m| &m.primary_changes);
    let election = crate::discovery::kv::ElectionEvents::new();
    election.leader_is("a:1");
    election.leader_is("b:2");
    // Other tests of this process may elect too: at least these two count.
    assert!(counted(|m| &m.primary_changes) >= before + 2);
}

#[test]
fn events_queued_and_thrown_away_with_a_stalled_listener_are_counted() {
    use crate::cluster::events::{ClusterEvent, EventBus, EventLimits, NodeRef};
    enable();
    let bus = EventBus::with_limits(EventLimits {
        listener_events: 2,
        ..EventLimits::default()
    });
    let (_, mut stalled) = bus.subscribe(None, "stalled");
    let node = NodeRef {
        name: "node-1".into(),
        id: "ID1".into(),
        addr: "127.0.0.1:1".into(),
        ip: "127.0.0.1".into(),
    };
    let (delivered, dropped, cut) = (
        counted(|m| &m.events_delivered),
        counted(|m| &m.events_dropped),
        counted(|m| &m.listeners_dropped),
    );
    for time in 0..3 {
        bus.publish(ClusterEvent::swarm("engine_connect", &node, time));
    }
    assert!(counted(|m| &m.events_delivered) >= delivered + 2);
    // The third event found the queue full: the listener went, with its two queued events.
    assert!(counted(|m| &m.events_dropped) >= dropped + 3);
    assert!(counted(|m| &m.listeners_dropped) > cut);
    assert!(stalled.try_recv().is_none());
}

#[tokio::test]
async fn api_requests_are_counted_by_route_template_through_the_whole_api() {
    use crate::api::testing::call;
    enable();
    let count = |route: &str, status: u16| {
        METRICS
            .get()
            .expect("enabled")
            .requests
            .get(&RequestLabels {
                route: route.to_string(),
                method: "GET",
                status,
            })
            .map_or(0, |counter| counter.get())
    };
    for (path, route, status) in [
        ("/v1.41/_ping", "/_ping", 200),
        ("/containers/nope/json", "/containers/{name}/json", 404),
        ("/no/such/route", "unmatched", 404),
        ("/v0.1/info", "unmatched", 400),
    ] {
        let before = count(route, status);
        assert_eq!(call(Method::GET, path, "").await.status.as_u16(), status);
        assert!(count(route, status) > before, "{path} counted as {route}");
    }
}
