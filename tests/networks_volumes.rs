//! Networks and volumes through the manager with real engines and the real docker CLIs: create
//! on a named node or where the scheduler says, connect, disconnect, remove; volumes on every
//! node, one node or whitelisted nodes; the prune commands and `docker system df` over the whole
//! cluster; and the Docker errors for unknown names and clashes.
mod support;

use std::time::Duration;

use support::{http, DockerCli, EngineSet, Manager};

fn manager(engines: &EngineSet) -> Manager {
    Manager::start_healthy(engines, &[])
}

/// Names of the engines (asked directly) that have network `name`.
fn nodes_with_network(engines: &EngineSet, name: &str) -> Vec<String> {
    engines
        .iter()
        .filter(|e| e.docker(&["network", "inspect", name]).success())
        .map(|e| e.name().to_string())
        .collect()
}

/// Names of the engines (asked directly) that have volume `name`.
fn nodes_with_volume(engines: &EngineSet, name: &str) -> Vec<String> {
    engines
        .iter()
        .filter(|e| e.docker(&["volume", "inspect", name]).success())
        .map(|e| e.name().to_string())
        .collect()
}

/// The networks container `c` is attached to, as the manager reports them.
fn networks_of(cli: &DockerCli, host: &str, c: &str) -> Vec<String> {
    let format = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}";
    cli.run(host, &["inspect", "--format", format, c])
        .assert_success()
        .stdout
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Sends one raw request and returns status and the `message` of a JSON error body.
fn raw(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let resp = http::request(
        addr,
        method,
        path,
        body.map(|b| ("application/json", b.as_bytes())),
        Duration::from_secs(20),
    )
    .unwrap();
    let message = resp
        .json()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| resp.text());
    (resp.status, message)
}

#[test]
fn networks_are_created_where_asked_and_connect_disconnect_and_remove() {
    let engines = EngineSet::start(3);
    let m = manager(&engines);
    let host = m.host();
    for cli in DockerCli::all() {
        let net = format!("{}-net", cli.label());
        let pinned = format!("node-1/{net}");
        cli.run(&host, &["network", "create", &pinned])
            .assert_success();
        assert_eq!(nodes_with_network(&engines, &net), vec!["node-1"]);
        let ls = cli
            .run(
                &host,
                &["network", "ls", "--format", "{{.Name}} {{.Driver}}"],
            )
            .assert_success();
        assert!(
            ls.stdout.lines().any(|l| l == format!("{pinned} bridge")),
            "{ls}"
        );
        assert!(ls.stdout.contains("node-0/bridge"), "{ls}");

        // A container on that node joins and leaves it.
        let c = format!("{}-joiner", cli.label());
        cli.run(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &c,
                "-e",
                "constraint:node==node-1",
                "busybox",
                "sleep",
                "300",
            ],
        )
        .assert_success();
        cli.run(&host, &["network", "connect", &pinned, &c])
            .assert_success();
        assert!(networks_of(&cli, &host, &c).contains(&net));
        let inspect = cli
            .run(
                &host,
                &[
                    "network",
                    "inspect",
                    "--format",
                    "{{len .Containers}}",
                    &pinned,
                ],
            )
            .assert_success();
        assert_eq!(inspect.stdout_trimmed(), "1");
        cli.run(&host, &["network", "disconnect", &pinned, &c])
            .assert_success();
        assert!(!networks_of(&cli, &host, &c).contains(&net));
        cli.run(&host, &["rm", "-f", &c]).assert_success();
        cli.run(&host, &["network", "rm", &pinned]).assert_success();
        assert!(nodes_with_network(&engines, &net).is_empty());
    }

    // Without a node the scheduler picks one; the same name again is a clash.
    let cli = DockerCli::modern();
    cli.run(&host, &["network", "create", "anywhere"])
        .assert_success();
    assert_eq!(nodes_with_network(&engines, "anywhere").len(), 1);
    let again = cli
        .run(&host, &["network", "create", "anywhere"])
        .assert_failure();
    assert!(
        again
            .stderr
            .contains("network with name anywhere already exists"),
        "{again}"
    );
    let (status, _) = raw(
        &m.addr(),
        "POST",
        "/networks/create",
        Some(r#"{"Name":"anywhere"}"#),
    );
    assert_eq!(status, 409);
    // Containers that use a node's network go to that node.
    cli.run(
        &host,
        &[
            "run", "-d", "--name", "on-net", "--net", "anywhere", "busybox", "sleep", "300",
        ],
    )
    .assert_success();
    let node = cli
        .run(&host, &["inspect", "--format", "{{.Node.Name}}", "on-net"])
        .assert_success();
    assert_eq!(
        vec![node.stdout_trimmed().to_string()],
        nodes_with_network(&engines, "anywhere")
    );
    // Still in use: the engine's refusal comes back with its status.
    let busy = cli
        .run(&host, &["network", "rm", "anywhere"])
        .assert_failure();
    assert!(busy.stderr.contains("active endpoints"), "{busy}");
    cli.run(&host, &["rm", "-f", "on-net"]).assert_success();
    cli.run(&host, &["network", "rm", "anywhere"])
        .assert_success();
}

#[test]
fn network_errors_are_docker_errors_with_the_classic_status() {
    let engines = EngineSet::builder(2)
        .node_label(0, "containerslots", "0")
        .start();
    let m = manager(&engines);
    let addr = m.addr();
    let cases: [(&str, &str, Option<&str>, u16, &str); 7] = [
        ("GET", "/networks/nope", None, 404, "No such network: nope"),
        (
            "DELETE",
            "/networks/nope",
            None,
            404,
            "No such network nope",
        ),
        (
            "POST",
            "/networks/nope/connect",
            Some(r#"{"Container":"x"}"#),
            404,
            "No such network: nope",
        ),
        (
            "POST",
            "/networks/node-1/bridge/connect",
            Some(r#"{"Container":"ghost"}"#),
            404,
            "No such container: ghost",
        ),
        (
            "POST",
            "/networks/node-1/bridge/disconnect",
            Some("{}"),
            404,
            "Container is not specified",
        ),
        (
            "POST",
            "/networks/create",
            Some("[1,2]"),
            400,
            "invalid JSON: the network create body must be an object",
        ),
        // `bridge` exists on both nodes: ambiguous, so not found.
        (
            "DELETE",
            "/networks/bridge",
            None,
            404,
            "No such network bridge",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let (got, message) = raw(&addr, method, path, body);
        assert_eq!(got, status, "{method} {path}: {message}");
        assert_eq!(message, text, "{method} {path}");
    }
    // The containerslots filter applies to network creation too.
    let (status, message) = raw(
        &addr,
        "POST",
        "/networks/create",
        Some(r#"{"Name":"node-0/full"}"#),
    );
    assert_eq!(status, 500);
    assert!(message.contains("[available container slots]"), "{message}");
    let (status, message) = raw(
        &addr,
        "POST",
        "/networks/create",
        Some(r#"{"Name":"node-9/nowhere"}"#),
    );
    assert_eq!((status, message.as_str()), (404, "No such node: node-9"));
    let cli = DockerCli::legacy();
    let out = cli
        .run(&m.host(), &["network", "connect", "nope", "ghost"])
        .assert_failure();
    assert!(out.stderr.contains("No such network: nope"), "{out}");
}

#[test]
fn volumes_go_to_every_node_one_node_or_the_whitelisted_ones() {
    let engines = EngineSet::start(3);
    let m = manager(&engines);
    let host = m.host();
    let all = vec!["node-0", "node-1", "node-2"];
    for cli in DockerCli::all() {
        let everywhere = format!("{}-everywhere", cli.label());
        cli.run(&host, &["volume", "create", &everywhere])
            .assert_success();
        assert_eq!(nodes_with_volume(&engines, &everywhere), all);
        let ls = cli
            .run(&host, &["volume", "ls", "--format", "{{.Name}}"])
            .assert_success();
        for node in &all {
            assert!(
                ls.stdout
                    .lines()
                    .any(|l| l == format!("{node}/{everywhere}")),
                "{ls}"
            );
        }

        let single = format!("{}-single", cli.label());
        cli.run(&host, &["volume", "create", &format!("node-2/{single}")])
            .assert_success();
        assert_eq!(nodes_with_volume(&engines, &single), vec!["node-2"]);
        let inspect = cli
            .run(
                &host,
                &["volume", "inspect", "--format", "{{.Name}}", &single],
            )
            .assert_success();
        assert_eq!(inspect.stdout_trimmed(), single);

        let listed = format!("{}-listed", cli.label());
        cli.run(
            &host,
            &[
                "volume",
                "create",
                "--label",
                r#"com.docker.swarm.whitelists=["node==node-0|node-2"]"#,
                &listed,
            ],
        )
        .assert_success();
        assert_eq!(
            nodes_with_volume(&engines, &listed),
            vec!["node-0", "node-2"]
        );

        // `node/name` removes one copy; the bare name removes all the others.
        cli.run(&host, &["volume", "rm", &format!("node-0/{everywhere}")])
            .assert_success();
        assert_eq!(
            nodes_with_volume(&engines, &everywhere),
            vec!["node-1", "node-2"]
        );
        cli.run(&host, &["volume", "rm", &everywhere, &single, &listed])
            .assert_success();
        for v in [&everywhere, &single, &listed] {
            assert!(nodes_with_volume(&engines, v).is_empty(), "{v} left");
        }
    }
    // An anonymous volume gets a 64-hex name on every node.
    let cli = DockerCli::modern();
    let anon = cli.run(&host, &["volume", "create"]).assert_success();
    let name = anon.stdout_trimmed().to_string();
    assert_eq!(name.len(), 64, "{anon}");
    assert_eq!(nodes_with_volume(&engines, &name), all);
    cli.run(&host, &["volume", "rm", &name]).assert_success();

    // In use on one node: the others go, the error names the node.
    cli.run(&host, &["volume", "create", "kept"])
        .assert_success();
    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "-e",
            "constraint:node==node-1",
            "-v",
            "kept:/data",
            "busybox",
            "sleep",
            "300",
        ],
    )
    .assert_success();
    let out = cli.run(&host, &["volume", "rm", "kept"]).assert_failure();
    assert!(out.stderr.contains("node-1: "), "{out}");
    assert!(out.stderr.contains("in use"), "{out}");
    assert_eq!(nodes_with_volume(&engines, "kept"), vec!["node-1"]);
}

#[test]
fn volume_errors_are_docker_errors_with_the_classic_status() {
    let engines = EngineSet::builder(2)
        .node_label(1, "containerslots", "0")
        .start();
    let m = manager(&engines);
    let addr = m.addr();
    let (status, message) = raw(&addr, "DELETE", "/volumes/nosuch", None);
    assert_eq!((status, message.as_str()), (404, "No such volume nosuch"));
    let (status, message) = raw(&addr, "GET", "/volumes/nosuch", None);
    assert_eq!((status, message.as_str()), (404, "No such volume: nosuch"));
    let (status, message) = raw(&addr, "POST", "/volumes/create", Some("{not json"));
    assert_eq!(status, 400, "{message}");
    let (status, message) = raw(
        &addr,
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"node-1/v"}"#),
    );
    assert_eq!(status, 500);
    assert!(message.contains("[available container slots]"), "{message}");
    let (status, message) = raw(
        &addr,
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"v","Driver":"no-such-driver"}"#),
    );
    // Every node refused with the same status: that status, with one line per node.
    assert_eq!(status, 404, "{message}");
    assert!(
        message.contains("node-0: ") && message.contains("node-1: "),
        "{message}"
    );
    let cli = DockerCli::modern();
    let out = cli
        .run(&m.host(), &["volume", "rm", "nosuch"])
        .assert_failure();
    assert!(out.stderr.contains("No such volume nosuch"), "{out}");
}

#[test]
fn prune_and_disk_usage_cover_every_node() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let host = m.host();
    for cli in DockerCli::all() {
        for node in ["node-0", "node-1"] {
            let name = format!("{}-done-{node}", cli.label());
            let constraint = format!("constraint:node=={node}");
            cli.run(
                &host,
                &["run", "--name", &name, "-e", &constraint, "busybox", "true"],
            )
            .assert_success();
        }
        cli.run(&host, &["volume", "create", "litter"])
            .assert_success();
        cli.run(&host, &["network", "create", "node-0/litter"])
            .assert_success();
        cli.run(&host, &["tag", "busybox", "shoal/dangling:1"])
            .assert_success();

        let df = cli.run(&host, &["system", "df"]).assert_success();
        assert!(df.stdout.contains("Images"), "{df}");
        let containers_line = df
            .stdout
            .lines()
            .find(|l| l.starts_with("Containers"))
            .unwrap_or_default()
            .to_string();
        assert!(
            containers_line.split_whitespace().nth(1) == Some("2"),
            "both nodes' containers counted: {df}"
        );
        let verbose = cli.run(&host, &["system", "df", "-v"]).assert_success();
        assert!(verbose.stdout.contains("node-0/litter"), "{verbose}");

        let pruned = cli
            .run(&host, &["container", "prune", "-f"])
            .assert_success();
        assert_eq!(
            pruned.stdout.lines().filter(|l| l.len() == 64).count(),
            2,
            "{pruned}"
        );
        let left = cli.run(&host, &["ps", "-aq"]).assert_success();
        assert!(left.stdout_trimmed().is_empty(), "{left}");

        let pruned = cli.run(&host, &["volume", "prune", "-f"]).assert_success();
        assert!(pruned.stdout.contains("litter"), "{pruned}");
        let pruned = cli.run(&host, &["network", "prune", "-f"]).assert_success();
        assert!(pruned.stdout.contains("litter"), "{pruned}");
        assert!(nodes_with_network(&engines, "litter").is_empty());
        cli.run(&host, &["rmi", "shoal/dangling:1"])
            .assert_success();
        let pruned = cli.run(&host, &["image", "prune", "-f"]).assert_success();
        assert!(pruned.stdout.contains("Total reclaimed space"), "{pruned}");

        // `system prune` adds the build cache to the above.
        let name = format!("{}-again", cli.label());
        cli.run(&host, &["run", "--name", &name, "busybox", "true"])
            .assert_success();
        let pruned = cli.run(&host, &["system", "prune", "-f"]).assert_success();
        assert!(pruned.stdout.contains("Total reclaimed space"), "{pruned}");
        let left = cli.run(&host, &["ps", "-aq"]).assert_success();
        assert!(left.stdout_trimmed().is_empty(), "{left}");
    }
}
