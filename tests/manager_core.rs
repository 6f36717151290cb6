//! The manager core against real engines and real docker CLIs: `docker version`, `docker info`,
//! the merged container list and events, engine health, `file://` discovery, and bad input.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{http, swarm, wait_for, wait_until, DockerCli, EngineSet, Manager};

/// Flags that make health changes visible within seconds.
const FAST: [&str; 8] = [
    "--engine-refresh-min-interval",
    "1s",
    "--engine-refresh-max-interval",
    "2s",
    "--engine-failure-retry",
    "2",
    "--heartbeat",
    "1s",
];

fn fast_manager(discovery: &str) -> Manager {
    Manager::builder().args(&FAST).start(discovery)
}

/// The `└ Status` of `node` in `docker info` output.
fn node_status(info: &str, node: &str) -> Option<String> {
    let mut lines = info
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{node}:")));
    lines.next()?;
    lines
        .take_while(|l| l.contains('└'))
        .find(|l| l.contains("└ Status:"))
        .map(|l| l.split("└ Status:").nth(1).unwrap_or("").trim().to_string())
}

#[test]
fn docker_version_and_info_show_the_cluster_to_every_cli() {
    let engines = EngineSet::start(3);
    let manager = fast_manager(&engines.nodes_url());
    for cli in DockerCli::all() {
        let version = cli.run(&manager.host(), &["version"]).assert_success();
        assert!(
            version.stdout.contains("swarm/"),
            "{} version: {}",
            cli.label(),
            version.stdout
        );

        let info = wait_for(Duration::from_secs(20), "three healthy nodes", || {
            let out = cli.run(&manager.host(), &["info"]);
            let healthy = engines
                .iter()
                .all(|e| node_status(&out.stdout, e.name()).as_deref() == Some("Healthy"));
            (out.success() && healthy).then_some(out.stdout)
        });
        assert!(info.contains("Nodes: 3"), "{}: {info}", cli.label());
        assert!(info.contains("Role: primary"), "{info}");
        assert!(info.contains("Strategy: spread"), "{info}");
        for engine in engines.iter() {
            assert!(
                info.contains(&format!("{}: {}", engine.name(), engine.addr())),
                "{info}"
            );
        }
        for key in [
            "└ ID:",
            "└ Containers: 0 (0 Running, 0 Paused, 0 Stopped)",
            "└ Reserved CPUs:",
            "└ Reserved Memory: 0 B /",
            "└ Labels:",
            "storagedriver=",
            "└ UpdatedAt:",
            "└ ServerVersion:",
        ] {
            assert!(
                info.contains(key),
                "{} missing {key:?}: {info}",
                cli.label()
            );
        }
    }
}

#[test]
fn ping_answers_get_and_head_with_the_headers_clients_read() {
    let engines = EngineSet::start(1);
    let manager = Manager::start(&engines.nodes_url());
    for method in ["GET", "HEAD"] {
        let resp = http::request(
            &manager.addr(),
            method,
            "/_ping",
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{method}");
        assert_eq!(resp.header("api-version"), Some("1.47"));
        assert_eq!(resp.header("ostype"), Some("linux"));
        assert!(resp.header("docker-experimental").is_some());
        assert!(resp.header("builder-version").is_some());
        if method == "GET" {
            assert_eq!(resp.text(), "OK");
        }
    }
    let v = http::get(&manager.addr(), "/v1.24/version")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["ApiVersion"], "1.47");
    assert_eq!(v["MinAPIVersion"], "1.24");
}

#[test]
fn a_container_started_on_an_engine_shows_in_ps_and_events() {
    let engines = EngineSet::start(3);
    let manager = Manager::start_healthy(&engines, &FAST[4..]);
    let cli = DockerCli::modern();

    // Follow the merged event stream with the real CLI.
    let mut events = cli.command(&manager.host());
    events
        .args(["events", "--format", "{{json .}}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut events = events.spawn().expect("docker events");
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    let target = &engines.engines()[1];
    let started = Instant::now();
    let id = target
        .docker(&["run", "-d", "--name", "web", "busybox", "sleep", "300"])
        .assert_success()
        .stdout_trimmed()
        .to_string();
    let expected = format!("{}/web", target.name());
    wait_until(
        Duration::from_secs(5),
        "the container in docker ps -a",
        || {
            cli.run(&manager.host(), &["ps", "-a", "--format", "{{.Names}}"])
                .stdout
                .lines()
                .any(|l| l == expected)
        },
    );
    eprintln!(
        "container visible through the manager after {:?}",
        started.elapsed()
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen_start = false;
    while Instant::now() < deadline && !seen_start {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let ev: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if ev["Action"] == "start" && ev["Actor"]["ID"] == id.as_str() {
                assert_eq!(ev["Actor"]["Attributes"]["node.name"], target.name());
                assert_eq!(
                    ev["Actor"]["Attributes"]["node.addr"],
                    target.addr().as_str()
                );
                seen_start = true;
            }
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(seen_start, "no start event for {id} in docker events");

    // The legacy CLI lists it too, and inspect works by every name form.
    let legacy = DockerCli::legacy();
    let ps = legacy
        .run(
            &manager.host(),
            &["ps", "--format", "{{.Names}} {{.Status}}"],
        )
        .assert_success();
    assert!(
        ps.stdout.contains(&format!("{expected} Up")),
        "{}",
        ps.stdout
    );
    for name in [id.as_str(), &id[..12], "web", &expected] {
        let out = legacy
            .run(
                &manager.host(),
                &["inspect", "--format", "{{.Id}} {{.Node.Name}}", name],
            )
            .assert_success();
        assert_eq!(
            out.stdout_trimmed(),
            format!("{id} {}", target.name()),
            "inspect {name}"
        );
    }
}

#[test]
fn a_killed_engine_turns_unhealthy_and_recovers_without_a_manager_restart() {
    let engines = EngineSet::start(2);
    let manager = fast_manager(&engines.nodes_url());
    let cli = DockerCli::modern();
    let victim = engines.engines()[0].name().to_string();
    let status =
        |cli: &DockerCli| node_status(&cli.run(&manager.host(), &["info"]).stdout, &victim);
    wait_until(Duration::from_secs(20), "the node healthy", || {
        status(&cli).as_deref() == Some("Healthy")
    });

    engines.engines()[0].kill();
    wait_until(Duration::from_secs(20), "the killed node unhealthy", || {
        status(&cli).as_deref() == Some("Unhealthy")
    });
    let info = cli.run(&manager.host(), &["info"]).stdout;
    assert!(
        info.contains("└ Error: Cannot connect to the Docker daemon"),
        "{info}"
    );

    engines.engines()[0].restart();
    wait_until(Duration::from_secs(30), "the node healthy again", || {
        status(&cli).as_deref() == Some("Healthy")
    });
    assert!(manager.is_running());
}

#[test]
fn file_discovery_adds_and_removes_nodes_as_the_file_changes() {
    let engines = EngineSet::start(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster");
    std::fs::write(
        &file,
        format!("# engines\n{}\n", engines.engines()[0].addr()),
    )
    .unwrap();
    let manager = fast_manager(&format!("file://{}", file.display()));
    let cli = DockerCli::modern();
    let nodes = || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Nodes: ").map(str::to_string))
    };
    wait_until(Duration::from_secs(20), "one node", || {
        nodes().as_deref() == Some("1")
    });

    std::fs::write(
        &file,
        format!(
            "{}\n{} # second\n",
            engines.engines()[0].addr(),
            engines.engines()[1].addr()
        ),
    )
    .unwrap();
    wait_until(Duration::from_secs(20), "two nodes", || {
        nodes().as_deref() == Some("2")
    });
    wait_until(Duration::from_secs(20), "the second node healthy", || {
        node_status(
            &cli.run(&manager.host(), &["info"]).stdout,
            engines.engines()[1].name(),
        )
        .as_deref()
            == Some("Healthy")
    });

    std::fs::write(&file, format!("{}\n", engines.engines()[1].addr())).unwrap();
    wait_until(Duration::from_secs(20), "back to one node", || {
        let info = cli.run(&manager.host(), &["info"]).stdout;
        info.contains("Nodes: 1") && !info.contains(&format!("{}:", engines.engines()[0].name()))
    });
}

#[test]
fn an_unreachable_engine_stays_pending_with_its_error() {
    let engines = EngineSet::start(1);
    let dead = format!("127.0.0.1:{}", support::manager::free_port());
    let manager = fast_manager(&format!("{},{dead}", engines.engines()[0].addr()));
    let cli = DockerCli::modern();
    let info = wait_for(
        Duration::from_secs(20),
        "the dead engine listed as pending",
        || {
            let out = cli.run(&manager.host(), &["info"]).stdout;
            (out.contains("Nodes: 2")
                && out.contains("Status: Pending")
                && out.contains("Status: Healthy"))
            .then_some(out)
        },
    );
    assert!(info.contains(&format!("(unknown): {dead}")), "{info}");
    assert!(
        info.contains("└ Error: Cannot connect to the Docker daemon"),
        "{info}"
    );
}

#[test]
fn bad_http_input_gets_docker_errors_and_never_kills_the_manager() {
    let engines = EngineSet::start(1);
    let manager = Manager::start(&engines.nodes_url());
    let addr = manager.addr();

    // Garbage instead of HTTP.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x00\x01 this is not http\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    let cases: [(&str, &str, u16, &str); 8] = [
        ("GET", "/nope", 404, "page not found"),
        ("GET", "/v1.12/info", 400, "too old"),
        ("GET", "/v9.99/info", 400, "too new"),
        (
            "GET",
            "/containers/json?filters=%7Bnot-json",
            400,
            "invalid filter",
        ),
        (
            "GET",
            "/containers/nosuch/json",
            404,
            "No such container: nosuch",
        ),
        ("GET", "/events?since=yesterday", 400, "since"),
        ("GET", "/images/nosuch/json", 404, "No such image: nosuch"),
        ("GET", "/volumes/nosuch", 404, "No such volume: nosuch"),
    ];
    for (method, path, status, text) in cases {
        let resp = http::request(&addr, method, path, None, Duration::from_secs(5)).unwrap();
        assert_eq!(resp.status, status, "{method} {path}: {}", resp.text());
        let body = resp
            .json()
            .unwrap_or_else(|_| panic!("{path} body is not JSON: {}", resp.text()));
        let msg = body["message"].as_str().unwrap_or("");
        assert!(msg.contains(text), "{path}: {msg}");
    }
    let viz = http::get(&addr, "/images/viz").unwrap();
    assert_eq!(viz.status, 501);
    assert!(http::ping(&addr), "the manager still answers");
    assert!(manager.is_running());
}

#[test]
fn the_swarm_command_rejects_bad_flags_and_discovery_with_clear_errors() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["manage", "--no-such-flag", "nodes://127.0.0.1:1"],
            "no-such-flag",
        ),
        (
            &["manage", "--strategy", "best", "nodes://127.0.0.1:1"],
            "strategy not supported",
        ),
        (&["manage", "nope://x"], "discovery service not supported"),
        (&["manage", "1.2.3.4"], "missing port in address"),
        (&["manage"], "discovery required to manage a cluster"),
        (
            &["manage", "--heartbeat", "10ms", "nodes://127.0.0.1:1"],
            "--heartbeat should be at least one second",
        ),
    ];
    for (args, text) in cases {
        let out = swarm(args);
        assert_eq!(out.status, Some(1), "{args:?}: {out:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains(text), "{args:?} should say {text:?}: {all}");
        assert!(!all.contains("panicked"), "{args:?}: {all}");
    }
    for args in [
        &["--help"][..],
        &["manage", "--help"],
        &["help", "join"],
        &["list", "-h"],
    ] {
        let out = swarm(args);
        assert_eq!(out.status, Some(0), "{args:?}: {out:?}");
        assert!(out.stdout.contains("Usage"), "{args:?}: {}", out.stdout);
    }
    let list = swarm(&["list", "nodes://10.0.0.[1:3]:2375"]);
    assert_eq!(
        list.stdout_lines(),
        vec!["10.0.0.1:2375", "10.0.0.2:2375", "10.0.0.3:2375"]
    );
}

#[test]
fn events_honour_since_until_and_filters() {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &FAST[4..]);
    let cli = DockerCli::modern();
    let since = chrono_now_secs() - 1;
    engines.engines()[0]
        .docker(&["run", "--name", "ea", "busybox", "true"])
        .assert_success();
    engines.engines()[1]
        .docker(&["run", "--name", "eb", "busybox", "true"])
        .assert_success();
    std::thread::sleep(Duration::from_millis(500));
    let until = chrono_now_secs() + 1;
    let node0 = engines.engines()[0].name();
    let out = cli
        .run(
            &manager.host(),
            &[
                "events",
                "--since",
                &since.to_string(),
                "--until",
                &until.to_string(),
                "--filter",
                "event=start",
                "--filter",
                &format!("node={node0}"),
                "--format",
                "{{json .}}",
            ],
        )
        .assert_success();
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    assert_eq!(events[0]["Actor"]["Attributes"]["name"], "ea");
    assert_eq!(events[0]["Actor"]["Attributes"]["node.name"], node0);
}

#[test]
fn merged_lists_show_node_prefixed_names() {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &FAST[4..]);
    let cli = DockerCli::modern();
    engines.engines()[0]
        .docker(&["volume", "create", "data"])
        .assert_success();
    engines.engines()[1]
        .docker(&["network", "create", "--driver", "bridge", "backend"])
        .assert_success();
    let n0 = engines.engines()[0].name();
    let n1 = engines.engines()[1].name();
    wait_until(Duration::from_secs(10), "the volume listed", || {
        cli.run(&manager.host(), &["volume", "ls", "--format", "{{.Name}}"])
            .stdout
            .lines()
            .any(|l| l == format!("{n0}/data"))
    });
    wait_until(Duration::from_secs(10), "the network listed", || {
        cli.run(&manager.host(), &["network", "ls", "--format", "{{.Name}}"])
            .stdout
            .lines()
            .any(|l| l == format!("{n1}/backend"))
    });
    let nets = cli
        .run(&manager.host(), &["network", "ls", "--format", "{{.Name}}"])
        .stdout;
    for n in [n0, n1] {
        assert!(nets.lines().any(|l| l == format!("{n}/bridge")), "{nets}");
    }
    cli.run(
        &manager.host(),
        &["network", "inspect", &format!("{n1}/backend")],
    )
    .assert_success();
    cli.run(
        &manager.host(),
        &["volume", "inspect", &format!("{n0}/data")],
    )
    .assert_success();
    // The image is on both nodes with the same ID: listed once.
    let images = cli
        .run(
            &manager.host(),
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        )
        .assert_success();
    assert_eq!(
        images
            .stdout
            .lines()
            .filter(|l| *l == "busybox:latest")
            .count(),
        1,
        "{}",
        images.stdout
    );
    cli.run(&manager.host(), &["image", "inspect", "busybox"])
        .assert_success();
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn container_lifecycle_calls_are_routed_to_the_owning_engine() {
    let engines = EngineSet::start(2);
    let manager = Manager::start_healthy(&engines, &FAST[4..]);
    let cli = DockerCli::modern();
    engines.engines()[1]
        .docker(&[
            "run",
            "-d",
            "--name",
            "svc",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 300",
        ])
        .assert_success();
    let host = manager.host();
    wait_until(Duration::from_secs(5), "svc listed", || {
        cli.run(&host, &["ps", "--format", "{{.Names}}"])
            .stdout
            .contains("/svc")
    });
    wait_until(Duration::from_secs(5), "logs", || {
        cli.run(&host, &["logs", "svc"]).stdout.contains("ready")
    });
    assert_eq!(
        cli.run(&host, &["exec", "svc", "echo", "hi"])
            .assert_success()
            .stdout_trimmed(),
        "hi"
    );
    cli.run(&host, &["stop", "-t", "1", "svc"]).assert_success();
    let ps = cli
        .run(&host, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .stdout;
    assert!(
        ps.contains("/svc Exited"),
        "the stop is visible at once: {ps}"
    );
    cli.run(&host, &["start", "svc"]).assert_success();
    let ps = cli
        .run(&host, &["ps", "--format", "{{.Names}} {{.Status}}"])
        .stdout;
    assert!(ps.contains("/svc Up"), "{ps}");
    cli.run(&host, &["rename", "svc", "svc2"]).assert_success();
    cli.run(&host, &["rm", "-f", "svc2"]).assert_success();
    let ps = cli
        .run(&host, &["ps", "-a", "--format", "{{.Names}}"])
        .stdout;
    assert!(!ps.contains("svc"), "{ps}");
    let missing = cli.run(&host, &["stop", "svc2"]);
    assert!(!missing.success());
    assert!(
        missing.stderr.contains("No such container"),
        "{}",
        missing.stderr
    );
}
