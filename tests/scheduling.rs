//! Scheduling through the manager with real engines and the real docker CLI: strategies,
//! constraints, affinities, ports, name clashes and concurrent reservations.
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{DockerCli, EngineSet, Manager};

fn manager(engines: &EngineSet, extra: &[&str]) -> Manager {
    Manager::start_healthy(engines, extra)
}

/// Containers per node, from `docker ps -a` names (`node-N/name`).
fn per_node(cli: &DockerCli, host: &str) -> BTreeMap<String, usize> {
    let out = cli
        .run(host, &["ps", "-a", "--format", "{{.Names}}"])
        .assert_success();
    let mut counts = BTreeMap::new();
    for line in out.stdout.lines() {
        if let Some((node, _)) = line.split_once('/') {
            *counts.entry(node.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn node_of(cli: &DockerCli, host: &str, name: &str) -> String {
    cli.run(host, &["inspect", "--format", "{{.Node.Name}}", name])
        .assert_success()
        .stdout_trimmed()
        .to_string()
}

#[test]
fn spread_places_six_containers_two_per_node() {
    let engines = EngineSet::start(3);
    let m = manager(&engines, &[]);
    for cli in DockerCli::all() {
        for i in 0..6 {
            let name = format!("{}-s{i}", cli.label());
            cli.run(
                &m.host(),
                &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
            )
            .assert_success();
        }
        let counts = per_node(&cli, &m.host());
        let expected = if cli.label() == "legacy" { 2 } else { 4 };
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(
            counts.values().all(|&n| n == expected),
            "{} after its runs: {counts:?}",
            cli.label()
        );
    }
}

#[test]
fn binpack_fills_one_node_first() {
    let engines = EngineSet::start(3);
    let m = manager(&engines, &["--strategy", "binpack"]);
    let cli = DockerCli::modern();
    for i in 0..6 {
        cli.run(
            &m.host(),
            &[
                "run",
                "-d",
                "--name",
                &format!("b{i}"),
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
    }
    let counts = per_node(&cli, &m.host());
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts.values().next(), Some(&6));
}

#[test]
fn constraints_and_affinities_choose_the_node() {
    let engines = EngineSet::builder(3)
        .node_label(0, "zone", "east")
        .node_label(1, "zone", "west")
        .node_label(2, "zone", "west")
        .start();
    let m = manager(&engines, &[]);
    let host = m.host();
    for cli in DockerCli::all() {
        let l = cli.label();
        let n2 = engines.engines()[2].name();
        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &format!("{l}-pinned"),
                "-e",
                &format!("constraint:node=={n2}"),
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
        assert_eq!(node_of(&cli, &host, &format!("{l}-pinned")), n2);

        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &format!("{l}-east"),
                "-e",
                "constraint:zone==east",
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
        assert_eq!(
            node_of(&cli, &host, &format!("{l}-east")),
            engines.engines()[0].name()
        );

        // The label form works too.
        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &format!("{l}-west"),
                "--label",
                "com.docker.swarm.constraints=[\"zone==west\"]",
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
        let west = node_of(&cli, &host, &format!("{l}-west"));
        assert!(west == engines.engines()[1].name() || west == n2, "{west}");

        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &format!("{l}-friend"),
                "-e",
                &format!("affinity:container=={l}-east"),
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
        assert_eq!(
            node_of(&cli, &host, &format!("{l}-friend")),
            engines.engines()[0].name()
        );

        // The constraint stays on the container as a label.
        let label = cli
            .run(
                &host,
                &[
                    "inspect",
                    "--format",
                    "{{index .Config.Labels \"com.docker.swarm.constraints\"}}",
                    &format!("{l}-east"),
                ],
            )
            .assert_success();
        assert_eq!(label.stdout_trimmed(), "[\"zone==east\"]");
        let env = cli
            .run(
                &host,
                &[
                    "inspect",
                    "--format",
                    "{{json .Config.Env}}",
                    &format!("{l}-east"),
                ],
            )
            .assert_success();
        assert!(
            !env.stdout.contains("constraint:"),
            "scheduling env is removed: {}",
            env.stdout
        );

        let failed = cli.run(
            &host,
            &[
                "run",
                "-d",
                "-e",
                "constraint:zone==north",
                "busybox",
                "true",
            ],
        );
        assert!(!failed.success());
        assert!(
            failed
                .stderr
                .contains("Unable to find a node that satisfies the following conditions")
                && failed.stderr.contains("[zone==north]"),
            "{}",
            failed.stderr
        );
    }
}

#[test]
fn containers_publishing_the_same_port_land_on_different_nodes() {
    let engines = EngineSet::start(2);
    let m = manager(&engines, &[]);
    let cli = DockerCli::modern();
    let host = m.host();
    cli.run(
        &host,
        &[
            "run", "-d", "--name", "p1", "-p", "8080:80", "busybox", "sleep", "300",
        ],
    )
    .assert_success();
    cli.run(
        &host,
        &[
            "run", "-d", "--name", "p2", "-p", "8080:80", "busybox", "sleep", "300",
        ],
    )
    .assert_success();
    assert_ne!(node_of(&cli, &host, "p1"), node_of(&cli, &host, "p2"));
    let third = cli.run(
        &host,
        &[
            "run", "-d", "--name", "p3", "-p", "8080:80", "busybox", "sleep", "300",
        ],
    );
    assert!(!third.success());
    assert!(
        third.stderr.contains("port 8080 (Bridge mode)"),
        "{}",
        third.stderr
    );
    // The published port shows the node IP.
    let ps = cli
        .run(
            &host,
            &["ps", "--filter", "name=p1", "--format", "{{.Ports}}"],
        )
        .assert_success();
    assert!(
        ps.stdout.contains("127.0.0.1:8080->80/tcp"),
        "{}",
        ps.stdout
    );
}

#[test]
fn a_name_clash_is_a_409_conflict() {
    let engines = EngineSet::start(2);
    let m = manager(&engines, &[]);
    for cli in DockerCli::all() {
        let name = format!("{}-dup", cli.label());
        cli.run(
            &m.host(),
            &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
        )
        .assert_success();
        let again = cli.run(
            &m.host(),
            &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
        );
        assert!(!again.success());
        assert!(
            again
                .stderr
                .contains(&format!("Conflict: The name {name} is already assigned")),
            "{}",
            again.stderr
        );
    }
    let raw = support::http::request(
        &m.addr(),
        "POST",
        "/containers/create?name=modern-dup",
        Some(("application/json", br#"{"Image":"busybox","Cmd":["true"]}"#)),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(raw.status, 409);
}

#[test]
fn twenty_parallel_memory_reservations_never_overfill_a_node() {
    let engines = EngineSet::start(3);
    let m = manager(&engines, &[]);
    let host = m.host();
    // Each engine has the machine's memory (plus 5% overcommit); a third of it per container
    // means at most three fit on a node, whatever the machine.
    let mem_total: u64 = engines.engines()[0].info().unwrap()["MemTotal"]
        .as_u64()
        .unwrap();
    let per_container = mem_total * 105 / 100 / 3;
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let host = host.clone();
            let mem = per_container.to_string();
            std::thread::spawn(move || {
                DockerCli::modern().run(
                    &host,
                    &[
                        "run",
                        "-d",
                        "--name",
                        &format!("m{i}"),
                        "-m",
                        &mem,
                        "busybox",
                        "sleep",
                        "300",
                    ],
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.success()).count();
    for r in results.iter().filter(|r| !r.success()) {
        assert!(
            r.stderr
                .contains("no resources available to schedule container"),
            "{}",
            r.stderr
        );
    }
    let counts = per_node(&DockerCli::modern(), &host);
    assert!(counts.values().all(|&n| n <= 3), "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), ok);
    assert_eq!(ok, 9, "three per node on three nodes: {counts:?}");
    let info = DockerCli::modern().run(&host, &["info"]).assert_success();
    assert!(
        info.stdout.contains("└ Reserved Memory:"),
        "{}",
        info.stdout
    );
}

#[test]
fn invalid_scheduling_expressions_are_answered_with_their_reason() {
    let engines = EngineSet::start(1);
    let m = manager(&engines, &[]);
    let cli = DockerCli::modern();
    let cases = [
        ("constraint:node", "One of operator ==, != is expected"),
        ("constraint:n@de==x", "Key 'n@de' is invalid"),
        ("constraint:node==a,b", "Value 'a,b' is invalid"),
        ("affinity:container", "One of operator ==, != is expected"),
        (
            "reschedule:sometimes",
            "invalid reschedule policy: sometimes",
        ),
    ];
    for (env, text) in cases {
        let out = cli.run(&m.host(), &["run", "-d", "-e", env, "busybox", "true"]);
        assert!(!out.success(), "{env}");
        assert!(out.stderr.contains(text), "{env}: {}", out.stderr);
    }
    // An invalid regex never matches: the request cannot be placed.
    let out = cli.run(
        &m.host(),
        &["run", "-d", "-e", "constraint:node==/(/", "busybox", "true"],
    );
    assert!(
        out.stderr.contains("Unable to find a node"),
        "{}",
        out.stderr
    );
    assert!(support::http::ping(&m.addr()));
}

#[test]
fn a_node_without_the_image_pulls_it_when_a_container_is_created_there() {
    let registry = support::Registry::start();
    let engines = EngineSet::builder(2).registry(registry.socket()).start();
    let reference = registry.reference("shoal/pulled:1");
    let image = support::image::build_busybox_image(
        std::path::Path::new("/bin/busybox"),
        &reference,
        &["sleep", "300"],
    )
    .unwrap();
    // Only node-0 has it; push it from there, then remove it there too.
    image.load_into(&engines[0].addr()).unwrap();
    engines[0].docker(&["push", &reference]).assert_success();
    engines[0].docker(&["rmi", &reference]).assert_success();

    let m = manager(&engines, &[]);
    let cli = DockerCli::modern();
    let target = engines[1].name();
    cli.run(
        &m.host(),
        &[
            "run",
            "-d",
            "--name",
            "fresh",
            "-e",
            &format!("constraint:node=={target}"),
            &reference,
        ],
    )
    .assert_success();
    assert_eq!(node_of(&cli, &m.host(), "fresh"), target);
    // Pulled on the chosen node only.
    let here = engines[1]
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .assert_success();
    assert!(here.stdout.contains(&reference), "{}", here.stdout);
    let there = engines[0]
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .assert_success();
    assert!(!there.stdout.contains(&reference), "{}", there.stdout);
}
