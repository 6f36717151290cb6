//! Plain creates are decided from the ranking the manager keeps between decisions; over creates,
//! removals and health changes on simulated engines they land where the full selection puts
//! them (spread: a healthy engine with the fewest containers). A debug build of the manager
//! also runs the full selection beside every kept decision and stops on a disagreement, so the
//! creates of this test would fail then.
#[path = "../examples/simulator/mod.rs"]
mod simulator;
mod support;

use std::time::Duration;

use simulator::{Mode, SimFleet};
use support::{http, wait_until, Manager};

const ENGINES: usize = 6;

/// Fast refreshes and two failures to Unhealthy, so that health changes show within seconds.
const MANAGER_ARGS: [&str; 3] = [
    "--engine-refresh-min-interval=1s",
    "--engine-refresh-max-interval=2s",
    "--engine-failure-retry=2",
];

fn start() -> (tokio::runtime::Runtime, SimFleet, Manager) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fleet = rt.block_on(SimFleet::start(ENGINES, 2)).unwrap();
    let manager = Manager::builder()
        .args(&MANAGER_ARGS)
        .start(&fleet.nodes_url());
    wait_until(Duration::from_secs(30), "every engine healthy", || {
        statuses(&manager)
            .iter()
            .filter(|s| *s == "Healthy")
            .count()
            == ENGINES
    });
    (rt, fleet, manager)
}

/// Each node's status as `/info` shows it, in the fleet's order.
fn statuses(m: &Manager) -> Vec<String> {
    (0..ENGINES)
        .map(|i| m.node_status(&format!("sim-{i}")).unwrap_or_default())
        .collect()
}

fn counts(fleet: &SimFleet) -> Vec<usize> {
    fleet.engines.iter().map(|e| e.container_count()).collect()
}

fn create(m: &Manager, name: &str, body: &[u8]) -> String {
    let resp = http::request(
        &m.addr(),
        "POST",
        &format!("/v1.41/containers/create?name={name}"),
        Some(("application/json", body)),
        Duration::from_secs(30),
    )
    .expect("the create answers");
    assert_eq!(resp.status, 201, "{name}: {}", resp.text());
    resp.json().unwrap()["Id"].as_str().unwrap().to_string()
}

fn remove(m: &Manager, id: &str) {
    let resp = http::request(
        &m.addr(),
        "DELETE",
        &format!("/v1.41/containers/{id}?force=1"),
        None,
        Duration::from_secs(30),
    )
    .expect("the remove answers");
    assert_eq!(resp.status, 204, "{}", resp.text());
}

/// Creates a plain container and checks that it went to a schedulable engine with the fewest
/// containers; returns its ID and the engine's index.
fn create_plain(
    m: &Manager,
    fleet: &SimFleet,
    name: &str,
    schedulable: &[bool],
) -> (String, usize) {
    let before = counts(fleet);
    let id = create(m, name, br#"{"Image":"busybox"}"#);
    let after = counts(fleet);
    let chosen = (0..ENGINES)
        .find(|&i| after[i] == before[i] + 1)
        .expect("one engine got the container");
    let fewest = (0..ENGINES)
        .filter(|&i| schedulable[i])
        .map(|i| before[i])
        .min()
        .unwrap();
    assert!(
        schedulable[chosen] && before[chosen] == fewest,
        "{name} went to sim-{chosen}; counts before {before:?}, schedulable {schedulable:?}"
    );
    (id, chosen)
}

/// Waits until the manager lists every container the engines hold.
fn wait_listed(m: &Manager, fleet: &SimFleet) {
    wait_until(
        Duration::from_secs(20),
        "the manager's list current",
        || {
            http::get(&m.addr(), "/containers/json?all=1")
                .ok()
                .and_then(|r| r.json().ok())
                .and_then(|v| v.as_array().map(Vec::len))
                == Some(fleet.container_count())
        },
    );
}

#[test]
fn plain_creates_follow_the_full_selection_over_creates_removals_and_health_changes() {
    let (_rt, fleet, m) = start();
    let all = [true; ENGINES];
    let mut on_first = Vec::new();
    for i in 0..12 {
        let (id, chosen) = create_plain(&m, &fleet, &format!("ranked-a{i}"), &all);
        if chosen == 0 {
            on_first.push(id);
        }
    }
    // Requests the kept ranking declines (a constraint, a reservation) take the full
    // selection; the ranking must still account for where they went.
    create(
        &m,
        "constrained",
        br#"{"Image":"busybox","Env":["constraint:node!=nobody"]}"#,
    );
    create_plain(&m, &fleet, "after-constrained", &all);
    let reserving = create(
        &m,
        "reserving",
        br#"{"Image":"busybox","HostConfig":{"Memory":1048576}}"#,
    );
    // Its reservation would make its engine heavier than the others; take it away again.
    remove(&m, &reserving);
    wait_listed(&m, &fleet);
    create_plain(&m, &fleet, "after-reserving", &all);

    // Removals make room on one engine: the next creates go there first.
    assert!(on_first.len() >= 2, "sim-0 got {on_first:?}");
    for id in &on_first {
        remove(&m, id);
    }
    wait_listed(&m, &fleet);
    for i in 0..4 {
        create_plain(&m, &fleet, &format!("ranked-b{i}"), &all);
    }

    // An engine that stops answering leaves the ranking, and comes back to it.
    fleet.engines[1].set_mode(Mode::Refuse);
    wait_until(Duration::from_secs(30), "sim-1 unhealthy", || {
        statuses(&m)[1] == "Unhealthy"
    });
    let mut without_1 = all;
    without_1[1] = false;
    for i in 0..6 {
        create_plain(&m, &fleet, &format!("ranked-c{i}"), &without_1);
    }
    fleet.engines[1].set_mode(Mode::Up);
    wait_until(Duration::from_secs(60), "sim-1 healthy again", || {
        statuses(&m)[1] == "Healthy"
    });
    for i in 0..6 {
        create_plain(&m, &fleet, &format!("ranked-d{i}"), &all);
    }
    assert!(
        !m.logs().contains("disagree"),
        "the manager saw the kept ranking and the full selection disagree"
    );
}
