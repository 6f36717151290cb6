//! Placement by what only some nodes hold, with real engines and the real docker CLI: a container
//! mounting a named volume lands where that volume is, and one created from an image that only
//! some nodes have (tagged there, pullable from nowhere) lands on one of them.
mod support;

use std::time::Duration;

use support::{wait_until, DockerCli, EngineSet, Manager};

const WAIT: Duration = Duration::from_secs(30);

fn node_of(cli: &DockerCli, host: &str, id: &str) -> String {
    cli.run(host, &["inspect", "--format", "{{.Node.Name}}", id])
        .assert_success()
        .stdout_trimmed()
        .to_string()
}

/// Two engines behind a manager, and the CLI to drive it.
fn two_nodes() -> (EngineSet, Manager, DockerCli) {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &[]);
    (engines, manager, DockerCli::default_cli())
}

#[test]
fn a_named_volume_on_one_node_draws_every_container_mounting_it() {
    let (engines, m, cli) = two_nodes();
    let host = m.host();
    let holder = &engines.engines()[1];
    holder
        .docker(&["volume", "create", "onlyhere"])
        .assert_success();
    wait_until(WAIT, "the manager lists volume onlyhere", || {
        cli.run(&host, &["volume", "ls", "--format", "{{.Name}}"])
            .stdout_lines()
            .iter()
            .any(|name| name.ends_with("onlyhere"))
    });
    for _ in 0..5 {
        let run = cli
            .run(
                &host,
                &[
                    "run",
                    "-d",
                    "-v",
                    "onlyhere:/data",
                    "busybox",
                    "sleep",
                    "60",
                ],
            )
            .assert_success();
        let id = run.stdout_trimmed().to_string();
        assert_eq!(node_of(&cli, &host, &id), holder.name());
    }
    // A volume no node has yet is created wherever the container lands.
    cli.run(
        &host,
        &["run", "-d", "-v", "fresh:/data", "busybox", "sleep", "60"],
    )
    .assert_success();
}

#[test]
fn an_image_only_one_node_holds_is_created_there_without_a_constraint() {
    let (engines, m, cli) = two_nodes();
    let host = m.host();
    let holder = &engines.engines()[1];
    holder
        .docker(&["tag", "busybox:latest", "onlyhere-image:v1"])
        .assert_success();
    wait_until(WAIT, "the manager lists image onlyhere-image:v1", || {
        cli.run(&host, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .stdout_lines()
            .contains(&"onlyhere-image:v1")
    });
    // Spread would put every other container on the node lacking the image: each of those
    // first fails to pull there, then goes to the holder.
    for _ in 0..3 {
        let run = cli
            .run(&host, &["run", "-d", "onlyhere-image:v1", "sleep", "60"])
            .assert_success();
        let id = run.stdout_trimmed().to_string();
        assert_eq!(node_of(&cli, &host, &id), holder.name());
    }
}
