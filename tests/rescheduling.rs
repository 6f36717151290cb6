//! Rescheduling: containers that ask for `reschedule:on-node-failure` are re-created on another
//! node when theirs fails, and the stale copy is removed when the failed node returns.
mod support;

use std::time::Duration;

use support::{wait_for, wait_until, DockerCli, EngineSet, Manager};

/// Waits for two Healthy nodes, then runs `keeper` with `policy` (the flags asking for
/// rescheduling).
fn start_keeper(cli: &DockerCli, host: &str, policy: &[&str]) {
    wait_until(Duration::from_secs(30), "two healthy nodes", || {
        cli.run(host, &["info"])
            .stdout
            .matches("Status: Healthy")
            .count()
            == 2
    });
    let mut args = vec!["run", "-d", "--name", "keeper"];
    args.extend_from_slice(policy);
    args.extend_from_slice(&["busybox", "sleep", "300"]);
    cli.run(host, &args).assert_success();
}

#[test]
fn a_container_is_rescheduled_when_its_node_dies_and_the_stale_copy_goes_when_it_returns() {
    let engines = EngineSet::start(2);
    let m = Manager::builder()
        .args(&[
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "1s",
            "--engine-failure-retry",
            "2",
        ])
        .start(&engines.nodes_url());
    let cli = DockerCli::modern();
    let host = m.host();
    start_keeper(&cli, &host, &["-e", "reschedule:on-node-failure"]);
    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "bystander",
            "busybox",
            "sleep",
            "300",
        ],
    )
    .assert_success();
    let node = |name: &str| {
        cli.run(&host, &["inspect", "--format", "{{.Node.Name}}", name])
            .stdout_trimmed()
            .to_string()
    };
    let first = node("keeper");
    let (dead, alive) = if first == engines[0].name() {
        (&engines[0], &engines[1])
    } else {
        (&engines[1], &engines[0])
    };
    let swarm_id = cli
        .run(
            &host,
            &[
                "inspect",
                "--format",
                "{{index .Config.Labels \"com.docker.swarm.id\"}}",
                "keeper",
            ],
        )
        .stdout_trimmed()
        .to_string();

    dead.kill();
    let moved = wait_for(
        Duration::from_secs(60),
        "keeper running on the other node",
        || {
            let ps = cli
                .run(&host, &["ps", "--format", "{{.Names}} {{.Status}}"])
                .stdout;
            ps.lines()
                .find(|l| l.starts_with(&format!("{}/keeper Up", alive.name())))
                .map(str::to_string)
        },
    );
    assert!(moved.contains("keeper"));
    let moved_id = cli
        .run(
            &host,
            &[
                "inspect",
                "--format",
                "{{index .Config.Labels \"com.docker.swarm.id\"}}",
                &format!("{}/keeper", alive.name()),
            ],
        )
        .stdout_trimmed()
        .to_string();
    assert_eq!(moved_id, swarm_id, "the Swarm ID is kept");

    dead.restart();
    wait_until(
        Duration::from_secs(60),
        "the stale copy removed from the returning node",
        || {
            let on_dead = dead.docker(&["ps", "-a", "--format", "{{.Names}}"]).stdout;
            !on_dead.lines().any(|l| l == "keeper")
        },
    );
    let all = cli
        .run(&host, &["ps", "-a", "--format", "{{.Names}}"])
        .stdout;
    assert_eq!(
        all.lines().filter(|l| l.ends_with("/keeper")).count(),
        1,
        "{all}"
    );
}

#[test]
fn a_container_is_rescheduled_when_its_node_leaves_discovery() {
    let engines = EngineSet::start(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster");
    let list = |set: &[&support::Engine]| {
        let lines: Vec<String> = set.iter().map(|e| e.addr()).collect();
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    };
    list(&[&engines[0], &engines[1]]);
    let m = Manager::builder()
        .args(&["--heartbeat", "1s"])
        .start(&format!("file://{}", file.display()));
    let cli = DockerCli::modern();
    let host = m.host();
    start_keeper(
        &cli,
        &host,
        &[
            "--label",
            "com.docker.swarm.reschedule-policies=[\"on-node-failure\"]",
        ],
    );
    let first = cli
        .run(&host, &["inspect", "--format", "{{.Node.Name}}", "keeper"])
        .stdout_trimmed()
        .to_string();
    let (leaving, staying) = if first == engines[0].name() {
        (&engines[0], &engines[1])
    } else {
        (&engines[1], &engines[0])
    };

    list(&[staying]);
    wait_until(
        Duration::from_secs(60),
        "keeper running on the remaining node",
        || {
            cli.run(&host, &["ps", "--format", "{{.Names}} {{.Status}}"])
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("{}/keeper Up", staying.name())))
        },
    );
    // The node that left is not managed any more: its copy is still there, untouched.
    let on_leaving = leaving.docker(&["ps", "--format", "{{.Names}}"]).stdout;
    assert!(on_leaving.lines().any(|l| l == "keeper"), "{on_leaving}");
}
