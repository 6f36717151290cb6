//! docker-compose (v1) against the manager with real engines: the example projects under
//! `examples/compose/` come up across the cluster, `ps` and `logs` see them, a linked service
//! lands with the one it depends on, a project network and volume are made and removed, and
//! `down` removes it all.
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::cli::run_command;
use support::{wait_until, CliOutput, DockerCli, EngineSet, Manager};

fn manager(engines: &EngineSet) -> Manager {
    Manager::start_healthy(engines, &[])
}

/// The compose file `name` of `examples/compose/`.
fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/compose")
        .join(name)
}

/// Runs `docker-compose -p <project> -f examples/compose/<file> args…` against `host`.
fn compose(host: &str, file: &str, project: &str, args: &[&str]) -> CliOutput {
    let config = tempfile::tempdir().unwrap();
    let mut command = Command::new("docker-compose");
    command
        .args(["-H", host, "-p", project, "-f"])
        .arg(example(file))
        .args(args)
        .env("DOCKER_CONFIG", config.path())
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .env_remove("DOCKER_HOST")
        .env_remove("COMPOSE_PROJECT_NAME");
    run_command(command, None, Duration::from_secs(120))
}

const LINKED: &str = "docker-compose.yml";

fn node_of(cli: &DockerCli, host: &str, container: &str) -> String {
    cli.run(host, &["inspect", "--format", "{{.Node.Name}}", container])
        .assert_success()
        .stdout_trimmed()
        .to_string()
}

#[test]
fn a_compose_project_comes_up_together_and_goes_down() {
    let engines = EngineSet::start(3);
    let m = manager(&engines);
    let host = m.host();
    let cli = DockerCli::modern();
    // Something on the first node, so spread alone would not put both services together.
    cli.run(
        &host,
        &["run", "-d", "--name", "ballast", "busybox", "sleep", "300"],
    )
    .assert_success();

    for round in 0..2 {
        let project = format!("demo{round}");
        let up = compose(&host, LINKED, &project, &["up", "-d"]);
        assert!(up.success(), "{up}");
        let store = format!("{project}_store_1");
        let web = format!("{project}_web_1");
        assert_eq!(
            node_of(&cli, &host, &web),
            node_of(&cli, &host, &store),
            "links and volumes_from keep web with store"
        );

        let ps = compose(&host, LINKED, &project, &["ps"]).assert_success();
        for name in [&store, &web] {
            assert!(
                ps.stdout
                    .lines()
                    .any(|l| l.starts_with(name.as_str()) && l.contains("Up")),
                "{ps}"
            );
        }
        wait_until(
            Duration::from_secs(20),
            "web printed the store's greeting",
            || {
                let logs = compose(&host, LINKED, &project, &["logs", "--no-color", "web"]);
                logs.stdout.contains("hello from the store")
                    && logs.stdout.contains("store reachable")
            },
        );
        let logs = compose(&host, LINKED, &project, &["logs", "--no-color"]).assert_success();
        assert!(logs.stdout.contains("store ready"), "{logs}");

        let down = compose(&host, LINKED, &project, &["down"]);
        assert!(down.success(), "{down}");
        let left = cli
            .run(
                &host,
                &[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("label=com.docker.compose.project={project}"),
                    "-q",
                ],
            )
            .assert_success();
        assert!(left.stdout_trimmed().is_empty(), "{left}");
    }
}

#[test]
fn a_project_network_and_volume_are_made_through_the_manager_and_removed_by_down() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let host = m.host();
    let cli = DockerCli::legacy();
    let file = "networked.yml";
    let up = compose(&host, file, "shop", &["up", "-d"]);
    assert!(up.success(), "{up}");
    let net_node = engines
        .iter()
        .find(|e| e.docker(&["network", "inspect", "shop_default"]).success())
        .map(|e| e.name().to_string())
        .expect("the project network exists on one node");
    for service in ["shop_db_1", "shop_app_1"] {
        assert_eq!(node_of(&cli, &host, service), net_node, "{service}");
    }
    for engine in &engines {
        assert!(engine.docker(&["volume", "inspect", "shop_data"]).success());
    }
    wait_until(Duration::from_secs(20), "app reached db by name", || {
        compose(&host, file, "shop", &["logs", "--no-color", "app"])
            .stdout
            .contains("db reachable")
    });
    let down = compose(&host, file, "shop", &["down", "-v"]);
    assert!(down.success(), "{down}");
    for engine in &engines {
        assert!(!engine
            .docker(&["network", "inspect", "shop_default"])
            .success());
        assert!(!engine.docker(&["volume", "inspect", "shop_data"]).success());
    }
}
