//! A frozen engine (dockerd stopped with SIGSTOP: its port still accepts, nothing answers) is
//! found out and changes nothing for anyone else: it turns Unhealthy within a few refresh
//! periods, calls about its containers get a 504 naming it within `--engine-call-timeout`,
//! every other node keeps answering and taking new containers, and it comes back by itself
//! when it thaws.
mod support;

use std::time::{Duration, Instant};

use support::{http, wait_for, wait_until, DockerCli, EngineSet, Manager};

/// With the fast refresh of `Manager::start_healthy`, the flags the robustness budget is stated
/// for, plus a short call timeout to keep the test short.
const FLAGS: [&str; 6] = [
    "--heartbeat",
    "1s",
    "--engine-failure-retry",
    "2",
    "--engine-call-timeout",
    "4s",
];

fn request(m: &Manager, method: &str, path: &str, body: Option<&[u8]>) -> http::HttpResponse {
    http::request(
        &m.addr(),
        method,
        path,
        body.map(|b| ("application/json", b)),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[test]
fn a_frozen_engine_turns_unhealthy_answers_504_and_comes_back_when_thawed() {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &FLAGS);
    let (frozen, other) = (&engines[0], &engines[1]);
    let cli = DockerCli::legacy();
    let host = manager.host();
    for (engine, name) in [(frozen, "on-frozen"), (other, "on-other")] {
        let constraint = format!("constraint:node=={}", engine.name());
        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                name,
                "-e",
                &constraint,
                "busybox",
                "sleep",
                "600",
            ],
        )
        .assert_success();
    }

    frozen.freeze();
    let frozen_at = Instant::now();

    // A call about a container on the frozen engine gets a JSON 504 naming the engine within
    // the call timeout, instead of waiting for ever.
    let started = Instant::now();
    let inspect = request(&manager, "GET", "/v1.41/containers/on-frozen/top", None);
    let waited = started.elapsed();
    assert_eq!(inspect.status, 504, "{}", inspect.text());
    let message = inspect.json().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(frozen.name()) && message.contains("did not answer within 4s"),
        "{message}"
    );
    println!("504 after {waited:?}: {message}");

    // Everyone else is served as before, while the frozen engine is being found out.
    assert!(http::ping(&manager.addr()));
    let other_inspect = request(&manager, "GET", "/v1.41/containers/on-other/json", None);
    assert_eq!(other_inspect.status, 200);
    let list = request(&manager, "GET", "/v1.41/containers/json?all=1", None);
    assert_eq!(list.status, 200);

    wait_until(
        Duration::from_secs(15),
        "the frozen engine shown Unhealthy within 15 s",
        || manager.node_status(frozen.name()).as_deref() == Some("Unhealthy"),
    );
    println!("Unhealthy {:?} after the freeze", frozen_at.elapsed());

    // New containers go to the node that answers, and none waits on the frozen one.
    for i in 0..4 {
        let created = request(
            &manager,
            "POST",
            &format!("/v1.41/containers/create?name=while-frozen-{i}"),
            Some(br#"{"Image":"busybox","Cmd":["sleep","600"]}"#),
        );
        assert_eq!(created.status, 201, "{}", created.text());
        let inspect = request(
            &manager,
            "GET",
            &format!("/v1.41/containers/while-frozen-{i}/json"),
            None,
        );
        let node = inspect.json().unwrap()["Node"]["Name"].clone();
        assert_eq!(node, other.name(), "placed on the engine that answers");
    }
    // `docker ps` lists the frozen engine's containers from the cache, as classic does for an
    // unhealthy node.
    let ps = cli
        .run(&host, &["ps", "-a", "--format", "{{.Names}}"])
        .assert_success();
    assert!(ps.stdout.contains("on-frozen"), "{}", ps.stdout);

    frozen.thaw();
    wait_until(
        Duration::from_secs(30),
        "the thawed engine Healthy again",
        || manager.node_status(frozen.name()).as_deref() == Some("Healthy"),
    );
    let top = wait_for(
        Duration::from_secs(10),
        "the container answers again",
        || {
            let r = request(&manager, "GET", "/v1.41/containers/on-frozen/json", None);
            (r.status == 200).then_some(r)
        },
    );
    assert_eq!(top.json().unwrap()["State"]["Running"], true);
}

#[test]
fn a_long_stop_is_not_cut_short_by_the_call_timeout() {
    // `docker stop -t 6` takes about six seconds before the engine answers: longer than the
    // 4 s call timeout, which counts only from the end of the stop's own wait.
    let engines = EngineSet::start(1);
    let manager = Manager::start_healthy(&engines, &FLAGS);
    let cli = DockerCli::legacy();
    let host = manager.host();
    // `sh` as PID 1 ignores SIGTERM, so the engine waits out the whole timeout.
    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "slow-stop",
            "busybox",
            "sh",
            "-c",
            "sleep 600",
        ],
    )
    .assert_success();
    let stop = cli.run(&host, &["stop", "-t", "6", "slow-stop"]);
    stop.assert_success();
    let status = manager.node_status(engines[0].name());
    assert_eq!(
        status.as_deref(),
        Some("Healthy"),
        "a slow answer is no failure"
    );
}
