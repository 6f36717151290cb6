//! The engine simulator answers like a real dockerd 20.10: the same `docker run` variants,
//! sent as the same API calls to a real engine and to a simulated one, give list entries and
//! inspect bodies with the same keys at every level and serialized sizes within 10%; so do
//! `/info`, `/version`, `/images/json`, `/networks`, `/volumes` and a container event.
//!
//! Values that legitimately differ (IDs, times, names, addresses) may differ; their kinds and
//! the body sizes may not, so benchmarks on the simulator move engine-sized payloads.
#[path = "../examples/simulator/mod.rs"]
mod simulator;
mod support;

use std::time::Duration;

use serde_json::Value;
use simulator::{EnginePaths, SimFleet};
use support::{http, EngineSet};

/// How far a simulated body's size may be from the real one's, as a fraction of the real one.
const SIZE_TOLERANCE: f64 = 0.10;

/// A `docker run -d` variant as the create request the CLI sends.
struct Variant {
    name: &'static str,
    create: String,
}

/// plain; `-p 8080:80`; `--label a=b --label c=d`; `-v vol:/data` and a bind; `--network`;
/// `--memory 64m --cpus 0.5`; an env and a command.
fn variants(bind_source: &str) -> Vec<Variant> {
    let sleep = r#""Image":"busybox","Cmd":["sleep","600"]"#;
    let v = |name, rest: &str| Variant {
        name,
        create: format!("{{{rest}}}"),
    };
    vec![
        v("plain", sleep),
        v(
            "ports",
            &format!(
                r#"{sleep},"ExposedPorts":{{"80/tcp":{{}}}},"HostConfig":{{"PortBindings":{{"80/tcp":[{{"HostIp":"","HostPort":"8080"}}]}}}}"#
            ),
        ),
        v(
            "labels",
            &format!(r#"{sleep},"Labels":{{"a":"b","c":"d"}}"#),
        ),
        v(
            "volumes",
            &format!(r#"{sleep},"HostConfig":{{"Binds":["vol:/data","{bind_source}:/host"]}}"#),
        ),
        v(
            "network",
            &format!(
                r#"{sleep},"HostConfig":{{"NetworkMode":"fidelity"}},"NetworkingConfig":{{"EndpointsConfig":{{"fidelity":{{}}}}}}"#
            ),
        ),
        v(
            "limits",
            &format!(r#"{sleep},"HostConfig":{{"Memory":67108864,"NanoCpus":500000000}}"#),
        ),
        v(
            "env_and_command",
            r#""Image":"busybox","Cmd":["sh","-c","sleep 600"],"Env":["A=1","B=two"]"#,
        ),
    ]
}

/// Raw bodies an engine answered with.
struct Capture {
    /// Per variant: its list entry and inspect body.
    containers: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
    /// Per engine-wide endpoint: its path and body.
    endpoints: Vec<(&'static str, Vec<u8>)>,
    /// The `start` event of the `labels` container.
    start_event: Value,
}

fn call(addr: &str, method: &str, path: &str, body: Option<&str>) -> http::HttpResponse {
    let body = body.map(|b| ("application/json", b.as_bytes()));
    http::request(addr, method, path, body, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// dockerd writes some lists from Go maps, in an order that changes from call to call: the
/// networks of `/networks` and a container's `Mounts`. Sorted here (by name, by destination)
/// so that the comparison meets like with like.
fn in_set_order(mut body: Value) -> Value {
    fn by(key: &'static str) -> impl Fn(&Value, &Value) -> std::cmp::Ordering {
        move |a, b| a[key].as_str().cmp(&b[key].as_str())
    }
    if let Some(list) = body.as_array_mut() {
        list.sort_by(by("Name"));
    }
    if let Some(mounts) = body.get_mut("Mounts").and_then(Value::as_array_mut) {
        mounts.sort_by(by("Destination"));
    }
    body
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends every variant to the engine at `addr` and reads back what it says about them.
fn capture(addr: &str, bind_source: &str) -> Capture {
    let since = now_secs() - 1;
    let net = call(
        addr,
        "POST",
        "/v1.41/networks/create",
        Some(r#"{"Name":"fidelity","CheckDuplicate":true}"#),
    );
    assert_eq!(net.status, 201, "network create on {addr}: {}", net.text());
    let mut containers = Vec::new();
    for variant in variants(bind_source) {
        let path = format!("/v1.41/containers/create?name={}", variant.name);
        let created = call(addr, "POST", &path, Some(&variant.create));
        assert_eq!(
            created.status,
            201,
            "{} on {addr}: {}",
            variant.name,
            created.text()
        );
        let id = created.json().unwrap()["Id"].as_str().unwrap().to_string();
        let started = call(addr, "POST", &format!("/v1.41/containers/{id}/start"), None);
        assert_eq!(
            started.status,
            204,
            "{} on {addr}: {}",
            variant.name,
            started.text()
        );
        let filter = format!(r#"{{"id":["{id}"]}}"#);
        let filter: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let list = call(
            addr,
            "GET",
            &format!("/v1.41/containers/json?all=1&filters={filter}"),
            None,
        );
        let entries = list.json().expect("the list is JSON");
        assert_eq!(entries.as_array().map(Vec::len), Some(1), "{}", list.text());
        let entry = serde_json::to_vec(&in_set_order(entries[0].clone())).unwrap();
        let inspect = call(addr, "GET", &format!("/v1.41/containers/{id}/json"), None);
        assert_eq!(inspect.status, 200, "{}", inspect.text());
        // Re-serialized compactly, like the entry, so both sides are measured the same way.
        let inspect = serde_json::to_vec(&in_set_order(inspect.json().unwrap())).unwrap();
        containers.push((variant.name, entry, inspect));
    }
    let endpoints = ["/info", "/version", "/images/json", "/networks", "/volumes"]
        .into_iter()
        .map(|path| {
            let r = call(addr, "GET", &format!("/v1.41{path}"), None);
            assert_eq!(r.status, 200, "{path} on {addr}: {}", r.text());
            (
                path,
                serde_json::to_vec(&in_set_order(r.json().unwrap())).unwrap(),
            )
        })
        .collect();
    // `until` in the past makes the engine replay and end the stream at once.
    std::thread::sleep(Duration::from_millis(1100));
    let until = now_secs();
    let events = call(
        addr,
        "GET",
        &format!("/v1.41/events?since={since}&until={until}"),
        None,
    );
    let start_event = events
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["Action"] == "start" && e["Actor"]["Attributes"]["name"] == "labels")
        .unwrap_or_else(|| panic!("no start event of `labels` on {addr}: {}", events.text()));
    Capture {
        containers,
        endpoints,
        start_event,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `simulated` differs in shape from `real`: missing or extra keys, other kinds, arrays
/// of other lengths (compared element by element).
fn shape_differences(path: &str, real: &Value, simulated: &Value, out: &mut Vec<String>) {
    match (real, simulated) {
        (Value::Object(r), Value::Object(s)) => {
            for key in r.keys().filter(|k| !s.contains_key(*k)) {
                out.push(format!("{path}.{key}: missing"));
            }
            for key in s.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{path}.{key}: not in the real body"));
            }
            for (key, value) in r {
                if let Some(other) = s.get(key) {
                    shape_differences(&format!("{path}.{key}"), value, other, out);
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            if r.len() != s.len() {
                out.push(format!(
                    "{path}: {} elements, real has {}",
                    s.len(),
                    r.len()
                ));
            }
            for (i, (a, b)) in r.iter().zip(s).enumerate() {
                shape_differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (r, s) if kind(r) != kind(s) => {
            out.push(format!(
                "{path}: {} where real has {} ({r})",
                kind(s),
                kind(r)
            ));
        }
        _ => {}
    }
}

/// Same shape and a size within [`SIZE_TOLERANCE`], or a line saying what differs.
fn compare(what: &str, real: &[u8], simulated: &[u8], failures: &mut Vec<String>) {
    let r: Value = serde_json::from_slice(real).unwrap();
    let s: Value = serde_json::from_slice(simulated).unwrap();
    let mut differences = Vec::new();
    shape_differences("", &r, &s, &mut differences);
    for d in differences {
        failures.push(format!("{what}: {d}"));
    }
    let ratio = simulated.len() as f64 / real.len() as f64;
    println!(
        "{what}: real {} bytes, simulated {} bytes",
        real.len(),
        simulated.len()
    );
    if (ratio - 1.0).abs() > SIZE_TOLERANCE {
        failures.push(format!(
            "{what}: {} bytes, real {} ({:+.0}%)",
            simulated.len(),
            real.len(),
            (ratio - 1.0) * 100.0
        ));
    }
}

#[test]
fn simulated_engine_bodies_have_the_keys_and_sizes_of_a_real_engine() {
    // The same engine label on both sides, so `/info` lists the same number of labels.
    let engines = EngineSet::builder(1).label("sim", "true").start();
    let real_addr = engines[0].addr();
    let bind = tempfile::tempdir().unwrap();
    let bind_source = bind.path().to_str().unwrap().to_string();
    let real = capture(&real_addr, &bind_source);

    // The simulator's paths as long as this engine's: its data root, and the exec root its
    // sandboxes live under.
    let info: Value = serde_json::from_slice(&real.endpoints[0].1).unwrap();
    let plain: Value = serde_json::from_slice(&real.containers[0].2).unwrap();
    let sandbox_key = plain["NetworkSettings"]["SandboxKey"].as_str().unwrap();
    let paths = EnginePaths {
        data_root: info["DockerRootDir"].as_str().unwrap().to_string(),
        exec_root: sandbox_key
            .rsplit_once("/netns/")
            .map(|(root, _)| root.to_string())
            .unwrap(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fleet = rt
        .block_on(SimFleet::start_with_paths(1, 0, paths))
        .unwrap();
    let simulated = capture(&fleet.engines[0].addr.to_string(), &bind_source);

    let mut failures = Vec::new();
    for ((name, real_entry, real_inspect), (_, sim_entry, sim_inspect)) in
        real.containers.iter().zip(&simulated.containers)
    {
        compare(
            &format!("{name} list entry"),
            real_entry,
            sim_entry,
            &mut failures,
        );
        compare(
            &format!("{name} inspect"),
            real_inspect,
            sim_inspect,
            &mut failures,
        );
    }
    for ((path, real_body), (_, sim_body)) in real.endpoints.iter().zip(&simulated.endpoints) {
        compare(path, real_body, sim_body, &mut failures);
    }
    compare(
        "start event",
        &serde_json::to_vec(&real.start_event).unwrap(),
        &serde_json::to_vec(&simulated.start_event).unwrap(),
        &mut failures,
    );
    assert!(
        failures.is_empty(),
        "the simulator differs from dockerd:\n{}",
        failures.join("\n")
    );
    drop(fleet);
    rt.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn shape_comparison_catches_missing_keys_other_kinds_and_lengths() {
    let real = serde_json::json!({"A": {"B": 1, "C": null}, "D": [1, 2], "E": "x"});
    let simulated = serde_json::json!({"A": {"B": "1"}, "D": [1], "E": "yy", "F": 0});
    let mut differences = Vec::new();
    shape_differences("", &real, &simulated, &mut differences);
    differences.sort();
    assert_eq!(
        differences,
        [
            ".A.B: string where real has number (1)",
            ".A.C: missing",
            ".D: 1 elements, real has 2",
            ".F: not in the real body",
        ]
    );
}
