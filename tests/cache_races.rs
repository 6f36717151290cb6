//! Changes made through the manager are never undone by a refresh or an event re-read that
//! started before them: right after a rename, a stop or a removal has been answered, the
//! manager shows the new name, the new state, or no container, hundreds of times in a row,
//! while refreshes run every second and containers change behind the manager's back.
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{http, EngineSet, Manager};

const ROUNDS: usize = 120;

fn call(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> http::HttpResponse {
    http::request(
        addr,
        method,
        path,
        body.map(|b| ("application/json", b)),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The `State` the merged list shows for container `id`, or `None` when it is not listed.
fn listed_state(addr: &str, id: &str) -> Option<String> {
    let list = call(addr, "GET", "/v1.41/containers/json?all=1", None);
    list.json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Id"] == id)
        .map(|c| c["State"].as_str().unwrap_or("").to_string())
}

#[test]
fn renames_stops_and_removals_are_never_undone_by_older_reads() {
    let engines = EngineSet::start(1);
    let manager = Manager::start_healthy(&engines, &["--engine-refresh-max-interval", "1s"]);
    let addr = manager.addr();

    // Containers come and go directly on the engine the whole time, so events and refreshes
    // keep re-reading.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let engine = engines[0].addr();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("churn-{}", n % 4);
                let _ = http::request(
                    &engine,
                    "DELETE",
                    &format!("/v1.41/containers/{name}?force=1"),
                    None,
                    Duration::from_secs(30),
                );
                let _ = http::request(
                    &engine,
                    "POST",
                    &format!("/v1.41/containers/create?name={name}"),
                    Some(("application/json", br#"{"Image":"busybox","Cmd":["true"]}"#)),
                    Duration::from_secs(30),
                );
                n += 1;
            }
        })
    };

    let mut stale = Vec::new();
    for i in 0..ROUNDS {
        let created = call(
            &addr,
            "POST",
            &format!("/v1.41/containers/create?name=race-{i}"),
            Some(br#"{"Image":"busybox","Cmd":["sleep","600"]}"#),
        );
        assert_eq!(created.status, 201, "{}", created.text());
        let id = created.json().unwrap()["Id"].as_str().unwrap().to_string();

        // Rename, then rename again by the old name: the old name must be gone.
        let renamed = call(
            &addr,
            "POST",
            &format!("/v1.41/containers/race-{i}/rename?name=renamed-{i}"),
            None,
        );
        assert_eq!(renamed.status, 204, "{}", renamed.text());
        let again = call(
            &addr,
            "POST",
            &format!("/v1.41/containers/race-{i}/rename?name=twice-{i}"),
            None,
        );
        if again.status != 404 {
            stale.push(format!(
                "round {i}: the old name still resolved ({})",
                again.status
            ));
        }
        let by_new = call(
            &addr,
            "GET",
            &format!("/v1.41/containers/renamed-{i}/json"),
            None,
        );
        if by_new.status != 200 {
            stale.push(format!(
                "round {i}: the new name did not resolve ({})",
                by_new.status
            ));
        }

        // Start, then stop: the list shows the state the answer promised.
        let started = call(
            &addr,
            "POST",
            &format!("/v1.41/containers/{id}/start"),
            None,
        );
        assert_eq!(started.status, 204, "{}", started.text());
        if listed_state(&addr, &id).as_deref() != Some("running") {
            stale.push(format!("round {i}: not running after start"));
        }
        let stopped = call(
            &addr,
            "POST",
            &format!("/v1.41/containers/{id}/stop?t=0"),
            None,
        );
        assert_eq!(stopped.status, 204, "{}", stopped.text());
        let state = listed_state(&addr, &id);
        if state.as_deref() != Some("exited") {
            stale.push(format!("round {i}: listed as {state:?} after stop"));
        }

        // Remove: gone from inspect and from the list.
        let removed = call(&addr, "DELETE", &format!("/v1.41/containers/{id}"), None);
        assert_eq!(removed.status, 204, "{}", removed.text());
        let inspect = call(&addr, "GET", &format!("/v1.41/containers/{id}/json"), None);
        if inspect.status != 404 || listed_state(&addr, &id).is_some() {
            stale.push(format!(
                "round {i}: still there after removal ({})",
                inspect.status
            ));
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(
        stale.is_empty(),
        "{} stale answers in {ROUNDS} rounds: {stale:#?}",
        stale.len()
    );
}
