//! Fault injection and concurrency with the engine simulator: a dead or hanging engine goes
//! Unhealthy without slowing reads of the others, a broken events stream reconnects, and
//! concurrent creates never lose or duplicate a container.
#[path = "../examples/simulator/mod.rs"]
mod simulator;
mod support;

use std::time::Duration;

use simulator::{Mode, SimFleet};
use support::{http, wait_for, wait_until, Manager};

fn start(engines: usize, containers: usize) -> (tokio::runtime::Runtime, SimFleet, Manager) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fleet = rt.block_on(SimFleet::start(engines, containers)).unwrap();
    let manager = Manager::builder()
        .args(&[
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "2s",
            "--engine-failure-retry",
            "2",
        ])
        .start(&fleet.nodes_url());
    wait_until(
        Duration::from_secs(30),
        "every simulated engine healthy",
        || healthy(&manager) == engines,
    );
    (rt, fleet, manager)
}

fn info(m: &Manager) -> serde_json::Value {
    http::get(&m.addr(), "/info").unwrap().json().unwrap()
}

fn healthy(m: &Manager) -> usize {
    info(m)["SystemStatus"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r[1] == "Healthy").count())
        .unwrap_or(0)
}

fn list_len(m: &Manager) -> usize {
    let resp = http::request(
        &m.addr(),
        "GET",
        "/containers/json?all=1",
        None,
        Duration::from_secs(10),
    )
    .expect("the list answers");
    assert_eq!(resp.status, 200);
    resp.json().unwrap().as_array().unwrap().len()
}

#[test]
fn dead_and_hanging_engines_go_unhealthy_without_slowing_the_list() {
    let (_rt, fleet, m) = start(6, 10);
    assert_eq!(list_len(&m), 60);

    fleet.engines[0].set_mode(Mode::Refuse);
    fleet.engines[1].set_mode(Mode::Hang);
    // Reads come from the cache: they keep answering while one engine refuses and one hangs.
    for _ in 0..5 {
        assert_eq!(list_len(&m), 60);
    }
    wait_until(
        Duration::from_secs(30),
        "the refusing engine unhealthy",
        || m.node_status("sim-0").as_deref() == Some("Unhealthy"),
    );
    wait_until(
        Duration::from_secs(90),
        "the hanging engine unhealthy",
        || m.node_status("sim-1").as_deref() == Some("Unhealthy"),
    );
    let running = http::get(&m.addr(), "/containers/json")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        running.as_array().unwrap().len(),
        40,
        "only healthy nodes' containers run"
    );

    fleet.engines[0].set_mode(Mode::Up);
    fleet.engines[1].set_mode(Mode::Up);
    wait_until(
        Duration::from_secs(60),
        "both engines healthy again",
        || healthy(&m) == 6,
    );
}

#[test]
fn a_broken_events_stream_reconnects_and_catches_up() {
    let (_rt, fleet, m) = start(2, 0);
    fleet.engines[0].break_events();
    // Created directly on the engine: the manager learns of it from the resumed stream or the
    // re-list that follows a reconnect.
    let created = http::request(
        &fleet.engines[0].addr.to_string(),
        "POST",
        "/v1.41/containers/create?name=direct",
        Some(("application/json", br#"{"Image":"busybox"}"#)),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(created.status, 201);
    wait_until(
        Duration::from_secs(20),
        "the container through the manager",
        || list_len(&m) == 1,
    );
    // The stream works again: a second container shows up by its event.
    let second = http::request(
        &fleet.engines[0].addr.to_string(),
        "POST",
        "/v1.41/containers/create?name=direct2",
        Some(("application/json", br#"{"Image":"busybox"}"#)),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(second.status, 201);
    wait_until(Duration::from_secs(10), "the second container", || {
        list_len(&m) == 2
    });
}

#[test]
fn sixteen_clients_creating_two_thousand_containers_end_with_exactly_two_thousand() {
    let (_rt, fleet, m) = start(20, 0);
    let addr = m.addr();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for i in 0..125 {
                    let path = format!("/v1.41/containers/create?name=load-{t}-{i}");
                    match http::request(
                        &addr,
                        "POST",
                        &path,
                        Some(("application/json", br#"{"Image":"busybox"}"#)),
                        Duration::from_secs(30),
                    ) {
                        Ok(r) if r.status == 201 => {}
                        Ok(r) => failures.push(format!("{}: {}", r.status, r.text())),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(fleet.container_count(), 2000);
    let listed = wait_for(Duration::from_secs(20), "2,000 containers listed", || {
        let n = list_len(&m);
        (n == 2000).then_some(n)
    });
    assert_eq!(listed, 2000);
    // Spread keeps them even: 100 per engine.
    for e in &fleet.engines {
        assert_eq!(e.container_count(), 100, "{}", e.name);
    }
    assert!(http::ping(&addr));
}
