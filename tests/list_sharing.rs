//! `docker ps` answers are rendered once per cluster change and second and shared by every
//! request that reads the same state: a shared answer is byte for byte what a fresh render
//! writes, concurrent clients get the same bytes, and a change made through the manager shows
//! in the very next list.
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{http, EngineSet, Manager};

/// `method path` on the manager, which must answer `status`.
fn expect(addr: &str, method: &str, path: &str, body: &[u8], status: u16) -> http::HttpResponse {
    let json = Some(("application/json", body)).filter(|_| !body.is_empty());
    let answer = http::request(addr, method, path, json, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(answer.status, status, "{method} {path}: {}", answer.text());
    answer
}

fn list(addr: &str, path: &str) -> Vec<u8> {
    expect(addr, "GET", path, b"", 200).body
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creates a container through the manager, started when `start`; its ID.
fn create(addr: &str, name: &str, start: bool) -> String {
    let body = br#"{"Image":"busybox","Cmd":["sleep","600"],"Labels":{"list":"shared"}}"#;
    let create = format!("/v1.41/containers/create?name={name}");
    let created = expect(addr, "POST", &create, body, 201);
    let id = created.json().unwrap()["Id"].as_str().unwrap().to_string();
    if start {
        expect(
            addr,
            "POST",
            &format!("/v1.41/containers/{id}/start"),
            b"",
            204,
        );
    }
    id
}

/// The `State` the list in `body` shows for container `id`, or `None` when it is not listed.
fn state_in(body: &[u8], id: &str) -> Option<String> {
    let entries: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
    let entry = entries.into_iter().find(|c| c["Id"] == id)?;
    Some(entry["State"].as_str()?.to_string())
}

#[test]
fn shared_lists_are_the_bytes_of_a_fresh_render_and_follow_every_change() {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &[]);
    let addr = manager.addr();
    for i in 0..6 {
        create(&addr, &format!("shared-{i}"), i % 2 == 0);
    }

    // Eight clients at once and one whose query differs (so its answer is rendered anew) must
    // read the same bytes when they all ask within one second: status texts change per second.
    let mut compared = 0;
    for round in 0..30 {
        let before = unix_second();
        let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
            let clients: Vec<_> = (0..8)
                .map(|_| s.spawn(|| list(&addr, "/v1.41/containers/json?all=1")))
                .collect();
            let mut bodies: Vec<Vec<u8>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
            bodies.push(list(
                &addr,
                &format!("/v1.41/containers/json?all=1&fresh={round}"),
            ));
            bodies
        });
        if unix_second() != before {
            continue;
        }
        for body in &bodies[1..] {
            assert_eq!(
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&bodies[0])
            );
        }
        let entries = serde_json::from_slice::<serde_json::Value>(&bodies[0]).unwrap();
        assert_eq!(entries.as_array().unwrap().len(), 6);
        compared += 1;
        if compared == 3 {
            break;
        }
    }
    assert!(compared > 0, "no round fitted in one second");

    // Read-your-writes: each change made through the manager shows in the next list, however
    // quickly it follows the one before.
    let path = "/v1.41/containers/json?all=1";
    let listed = |id: &str| state_in(&list(&addr, path), id);
    for i in 0..5 {
        list(&addr, path);
        let id = create(&addr, &format!("ryw-{i}"), false);
        assert_eq!(listed(&id).as_deref(), Some("created"));
        expect(
            &addr,
            "POST",
            &format!("/v1.41/containers/{id}/start"),
            b"",
            204,
        );
        assert_eq!(listed(&id).as_deref(), Some("running"));
        expect(
            &addr,
            "DELETE",
            &format!("/v1.41/containers/{id}?force=1"),
            b"",
            204,
        );
        assert_eq!(listed(&id), None);
    }

    // Filtered lists are kept under their own query: a filter never gets another's answer.
    let all = list(&addr, "/v1.41/containers/json?all=1");
    let running = list(&addr, "/v1.41/containers/json");
    let count = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&all), 6);
    assert_eq!(count(&running), 3);
    assert_eq!(count(&list(&addr, "/v1.41/containers/json?all=1")), 6);
}
