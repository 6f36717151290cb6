//! `docker build` through the manager with real engines: the legacy builder and BuildKit (the
//! 20.10 CLI with `DOCKER_BUILDKIT=1`, whose session is hijacked to the build's node), a
//! context from a directory and from stdin, placement by a `constraint` build argument, and the
//! scheduler's error when no node qualifies.
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::cli::run_command;
use support::{CliOutput, DockerCli, EngineSet, Manager};

fn manager(engines: &EngineSet) -> Manager {
    Manager::start_healthy(engines, &[])
}

/// A build context: a Dockerfile FROM the test busybox that copies a file, runs a command and
/// takes a build argument.
fn context(dir: &Path) {
    std::fs::write(dir.join("greeting.txt"), "hello from the context\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nARG FLAVOUR=plain\nCOPY greeting.txt /greeting.txt\n\
         RUN echo \"flavour=$FLAVOUR\" > /flavour && cat /greeting.txt\nCMD [\"cat\", \"/flavour\"]\n",
    )
    .unwrap();
}

/// `docker build args…` with `DOCKER_BUILDKIT` set to `buildkit`, in `dir`, with `stdin`.
fn build(
    cli: &DockerCli,
    host: &str,
    buildkit: &str,
    dir: &Path,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> CliOutput {
    let mut command: Command = cli.command(host);
    command
        .arg("build")
        .args(args)
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", buildkit);
    run_command(command, stdin, Duration::from_secs(120))
}

fn engine_has(engine: &support::Engine, image: &str) -> bool {
    engine.docker(&["image", "inspect", image]).success()
}

/// Runs `image` through the manager (on a node that has it: the engines here cannot pull from
/// anywhere) and returns what it printed.
fn run_image(cli: &DockerCli, host: &str, image: &str) -> String {
    let affinity = format!("affinity:image=={image}");
    cli.run(host, &["run", "--rm", "-e", &affinity, image])
        .assert_success()
        .stdout_trimmed()
        .to_string()
}

#[test]
fn legacy_builds_run_on_the_node_a_constraint_names() {
    let engines = EngineSet::start(3);
    let m = manager(&engines);
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    for (i, cli) in DockerCli::all().into_iter().enumerate() {
        let node = &engines[i + 1];
        let tag = format!("shoal/legacy-{}:1", cli.label());
        let constraint = format!("constraint:node=={}", node.name());
        let out = build(
            &cli,
            &m.host(),
            "0",
            dir.path(),
            &[
                "--build-arg",
                &constraint,
                "--build-arg",
                "FLAVOUR=legacy",
                "-t",
                &tag,
                ".",
            ],
            None,
        )
        .assert_success();
        assert!(
            out.stdout
                .contains(&format!("{}: Step 1/5 : FROM busybox", node.name())),
            "{out}"
        );
        assert!(out.stdout.contains("hello from the context"), "{out}");
        for engine in &engines {
            assert_eq!(
                engine_has(engine, &tag),
                engine.name() == node.name(),
                "{tag} on {}",
                engine.name()
            );
        }
        assert_eq!(run_image(&cli, &m.host(), &tag), "flavour=legacy");
    }
}

#[test]
fn buildkit_builds_relay_their_session_to_the_build_node() {
    let engines = EngineSet::start(3);
    let m = manager(&engines);
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    let cli = DockerCli::legacy();
    let out = build(
        &cli,
        &m.host(),
        "1",
        dir.path(),
        &[
            "--progress",
            "plain",
            "--build-arg",
            "constraint:node==node-2",
            "--build-arg",
            "FLAVOUR=buildkit",
            "-t",
            "shoal/kit:1",
            ".",
        ],
        None,
    )
    .assert_success();
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("hello from the context"), "{out}");
    assert!(engine_has(&engines[2], "shoal/kit:1"), "{out}");
    assert!(!engine_has(&engines[0], "shoal/kit:1"));
    assert!(!engine_has(&engines[1], "shoal/kit:1"));
    assert_eq!(
        run_image(&cli, &m.host(), "shoal/kit:1"),
        "flavour=buildkit"
    );
}

#[test]
fn contexts_from_stdin_build_with_both_builders() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    let tarball = {
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", dir.path()).unwrap();
        b.into_inner().unwrap()
    };
    let cli = DockerCli::legacy();
    for (buildkit, node) in [("0", "node-0"), ("1", "node-1")] {
        let tag = format!("shoal/stdin-{buildkit}:1");
        let constraint = format!("constraint:node=={node}");
        let out = build(
            &cli,
            &m.host(),
            buildkit,
            dir.path(),
            &["--build-arg", &constraint, "-t", &tag, "-"],
            Some(tarball.clone()),
        )
        .assert_success();
        let on: Vec<&str> = engines
            .iter()
            .filter(|e| engine_has(e, &tag))
            .map(|e| e.name())
            .collect();
        assert_eq!(on, vec![node], "{out}");
    }
}

#[test]
fn a_build_no_node_can_take_fails_with_the_scheduler_conditions() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    for cli in DockerCli::all() {
        for buildkit in ["0", "1"] {
            if buildkit == "1" && cli.is_distinct() {
                // The modern CLI builds with BuildKit only through buildx, absent here.
                continue;
            }
            let out = build(
                &cli,
                &m.host(),
                buildkit,
                dir.path(),
                &["--build-arg", "constraint:node==node-9", "."],
                None,
            )
            .assert_failure();
            assert!(
                out.stderr
                    .contains("Unable to find a node that satisfies the following conditions"),
                "{out}"
            );
            assert!(out.stderr.contains("[node==node-9]"), "{out}");
        }
    }
    // A BuildKit session no build claims is turned away after the wait.
    let started = std::time::Instant::now();
    let resp = support::http::request(&m.addr(), "POST", "/session", None, Duration::from_secs(20))
        .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("no session ID provided"));
    assert!(started.elapsed() < Duration::from_secs(3));
    let resp = support::http::request(
        &m.addr(),
        "POST",
        "/build?version=3",
        None,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    let resp = support::http::request(
        &m.addr(),
        "POST",
        "/build/cancel",
        None,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("build ID not provided"));
}
