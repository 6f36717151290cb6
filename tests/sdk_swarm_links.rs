//! What SDKs and the CLI meet on routes the manager answers like an engine: the swarm-mode
//! routes (503 like an engine not in swarm mode, compared with a real engine), the network
//! cache after a prune, and removing a link.
mod support;

use std::time::Duration;

use serde_json::Value;
use support::cli::docker_py;
use support::{http, DockerCli, EngineSet, Manager};

/// Status and JSON body (`None` when the body is not JSON) of one request.
fn answer(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Option<Value>) {
    let payload = body.map(|b| ("application/json", b.as_bytes()));
    let resp = http::request(addr, method, path, payload, Duration::from_secs(20)).unwrap();
    (resp.status, resp.json().ok())
}

/// Bodies a real engine decodes, so that it answers its swarm-mode check.
const SERVICE: Option<&str> =
    Some(r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}"#);
const SECRET: Option<&str> = Some(r#"{"Name":"s","Data":"eA=="}"#);
const EMPTY: Option<&str> = Some("{}");

/// Swarm-mode routes, each with a body the real engine accepts where it reads one.
const SWARM_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/swarm", None),
    ("POST", "/swarm/leave?force=1", None),
    ("POST", "/swarm/leave", None),
    ("POST", "/swarm/update?version=1", EMPTY),
    ("POST", "/swarm/unlock", Some(r#"{"UnlockKey":"x"}"#)),
    ("GET", "/swarm/unlockkey", None),
    ("GET", "/nodes", None),
    ("GET", "/nodes/abc", None),
    ("DELETE", "/nodes/abc", None),
    ("POST", "/nodes/abc/update?version=1", EMPTY),
    ("GET", "/services", None),
    ("POST", "/services/create", SERVICE),
    ("GET", "/services/abc", None),
    ("DELETE", "/services/abc", None),
    ("POST", "/services/abc/update?version=1", SERVICE),
    ("GET", "/services/abc/logs?stdout=1", None),
    ("GET", "/tasks", None),
    ("GET", "/tasks/abc", None),
    ("GET", "/tasks/abc/logs?stdout=1", None),
    ("GET", "/secrets", None),
    ("POST", "/secrets/create", SECRET),
    ("GET", "/secrets/abc", None),
    ("DELETE", "/secrets/abc", None),
    ("POST", "/secrets/abc/update?version=1", SECRET),
    ("GET", "/configs", None),
    ("POST", "/configs/create", SECRET),
    ("GET", "/configs/abc", None),
    ("DELETE", "/configs/abc", None),
    ("POST", "/configs/abc/update?version=1", SECRET),
    ("GET", "/v1.40/swarm", None),
];

const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

#[test]
fn swarm_mode_routes_answer_as_an_engine_outside_swarm_mode_does() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    let engine = engines.engines()[0].addr();
    for (method, path, body) in SWARM_ROUTES {
        let real = answer(&engine, method, path, *body);
        let ours = answer(&m.addr(), method, path, *body);
        assert_eq!(real.0, 503, "{method} {path}: the engine said {real:?}");
        assert_eq!(ours, real, "{method} {path}");
    }

    // docker-py takes a 503 to a forced leave for "not in a swarm" and returns; a 404 raises.
    // An unforced leave raises the 503.
    let script = r#"
import docker
client = docker.from_env()
print(client.swarm.leave(force=True))
try:
    client.swarm.leave()
    print("no error")
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
"#;
    let want = "True\n503 This node is not part of a swarm";
    let real = docker_py(&engines.engines()[0].host(), script).assert_success();
    assert_eq!(real.stdout_trimmed(), want);
    let py = docker_py(&m.host(), script).assert_success();
    assert_eq!(py.stdout_trimmed(), want);

    for cli in DockerCli::all() {
        let out = cli.run(&m.host(), &["node", "ls"]).assert_failure();
        assert!(
            out.stderr.contains(NOT_A_MANAGER),
            "{}: {}",
            cli.label(),
            out.stderr
        );
    }
}

/// The manager's network list: each entry's `Name`, after checking every entry is one network
/// object with an `Id` string.
fn network_names(addr: &str) -> Vec<String> {
    let list = http::get(addr, "/networks").unwrap().json().unwrap();
    let list = list.as_array().expect("a JSON array");
    list.iter()
        .map(|n| {
            assert!(n["Id"].is_string(), "not a network: {n}");
            n["Name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_network_prune_leaves_a_list_of_networks_without_the_pruned_ones() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    let cli = DockerCli::default_cli();
    for name in ["prune-a", "prune-b"] {
        cli.run(&m.host(), &["network", "create", name])
            .assert_success();
    }
    let py = docker_py(
        &m.host(),
        "import docker\nprint(sorted(docker.from_env().networks.prune()['NetworksDeleted']))",
    )
    .assert_success();
    assert!(
        py.stdout.contains("prune-a") && py.stdout.contains("prune-b"),
        "{}",
        py.stdout
    );
    // Made on the engine itself, the marker reaches the manager only through the engine's
    // events, after the prune event: once it is listed, the prune event was handled.
    engines.engines()[0]
        .docker(&["network", "create", "marker"])
        .assert_success();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !network_names(&m.addr())
        .iter()
        .any(|n| n.ends_with("marker"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the marker network never showed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let names = network_names(&m.addr());
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("prune-a") || n.ends_with("prune-b")),
        "{names:?}"
    );
    let ls = cli
        .run(&m.host(), &["network", "ls", "--format", "{{.Name}}"])
        .assert_success();
    assert!(
        ls.stdout.contains("marker") && !ls.stdout.contains("prune-"),
        "{}",
        ls.stdout
    );
}

#[test]
fn a_link_is_removed_through_the_manager() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    let host = m.host();
    for cli in DockerCli::all() {
        let (a, b) = (format!("{}-a", cli.label()), format!("{}-b", cli.label()));
        cli.run(
            &host,
            &["run", "-d", "--name", &a, "busybox", "sleep", "600"],
        )
        .assert_success();
        let link = format!("{a}:al");
        cli.run(
            &host,
            &[
                "run", "-d", "--name", &b, "--link", &link, "busybox", "sleep", "600",
            ],
        )
        .assert_success();
        let link_name = format!("{b}/al");
        cli.run(&host, &["rm", "--link", &link_name])
            .assert_success();
        let links = engines.engines()[0]
            .docker(&["inspect", "--format", "{{.HostConfig.Links}}", &b])
            .assert_success();
        assert_eq!(links.stdout_trimmed(), "[]", "{}", cli.label());
        // The linked container no longer carries the link's name in the manager's list.
        let names = cli
            .run(
                &host,
                &[
                    "ps",
                    "--format",
                    "{{.Names}}",
                    "--filter",
                    &format!("name={a}"),
                ],
            )
            .assert_success();
        assert!(
            !names.stdout.contains("/al"),
            "{}: {}",
            cli.label(),
            names.stdout
        );
        let missing = cli
            .run(&host, &["rm", "--link", "nothere/al"])
            .assert_failure();
        assert!(
            missing.stderr.contains("No such container: nothere"),
            "{}",
            missing.stderr
        );
        cli.run(&host, &["rm", "-f", &a, &b]).assert_success();
    }
}
