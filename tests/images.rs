//! Images through the manager with real engines, a real local registry and the real docker CLIs:
//! pull onto every node with per-node progress, the merged list, removal everywhere, push, tag,
//! save, load, import, commit, login, and the errors for images that do not exist.
mod support;

use std::time::Duration;

use support::image::build_busybox_image;
use support::{http, wait_until, DockerCli, EngineSet, Manager, Registry};

fn manager(engines: &EngineSet) -> Manager {
    Manager::start_healthy(engines, &[])
}

/// Whether the engine itself (not the manager) has `image`.
fn engine_has(engine: &support::Engine, image: &str) -> bool {
    engine.docker(&["image", "inspect", image]).success()
}

/// `repository:tag` lines of `docker images` through the manager.
fn listed(cli: &DockerCli, host: &str) -> Vec<String> {
    cli.run(host, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .assert_success()
        .stdout_lines()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn pull_lands_on_every_node_with_progress_and_rmi_removes_it_everywhere() {
    let registry = Registry::start();
    let engines = EngineSet::builder(3).registry(registry.socket()).start();
    let m = manager(&engines);
    let host = m.host();
    let reference = registry.reference("shoal/hello:1");
    let image = build_busybox_image(
        &std::path::PathBuf::from("/bin/busybox"),
        &reference,
        &["echo", "hello from the registry"],
    )
    .unwrap();
    image.load_into(&engines[0].addr()).unwrap();

    // Push goes to the one node that holds the image.
    let cli = DockerCli::modern();
    let wait = |what: &str, cond: &mut dyn FnMut() -> bool| {
        wait_until(Duration::from_secs(10), what, cond);
    };
    wait("the manager sees the loaded image", &mut || {
        listed(&cli, &host).contains(&reference)
    });
    cli.run(&host, &["push", &reference]).assert_success();
    assert_eq!(registry.tags("shoal/hello"), vec!["1".to_string()]);
    cli.run(&host, &["rmi", &reference]).assert_success();
    assert!(!engine_has(&engines[0], &reference));

    for cli in DockerCli::all() {
        let pulled = cli.run(&host, &["pull", &reference]).assert_success();
        for engine in &engines {
            let line = format!("{}: Pulling {reference}...", engine.name());
            assert!(
                pulled.stdout.contains(&line),
                "{} pull shows no progress for {}:\n{pulled}",
                cli.label(),
                engine.name()
            );
            assert!(engine_has(engine, &reference), "not on {}", engine.name());
        }
        let list = listed(&cli, &host);
        assert_eq!(
            list.iter().filter(|r| **r == reference).count(),
            1,
            "listed once: {list:?}"
        );
        let run = cli
            .run(&host, &["run", "--rm", &reference])
            .assert_success();
        assert_eq!(run.stdout_trimmed(), "hello from the registry");

        let removed = cli.run(&host, &["rmi", &reference]).assert_success();
        assert!(removed.stdout.contains("Untagged"), "{removed}");
        for engine in &engines {
            assert!(!engine_has(engine, &reference), "left on {}", engine.name());
        }
        assert!(!listed(&cli, &host).contains(&reference));
    }
}

#[test]
fn pulling_a_missing_image_fails_on_every_node_with_the_registry_error() {
    let registry = Registry::start();
    let engines = EngineSet::builder(2).registry(registry.socket()).start();
    let m = manager(&engines);
    let missing = registry.reference("shoal/nothing:here");
    for cli in DockerCli::all() {
        let out = cli.run(&m.host(), &["pull", &missing]).assert_failure();
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            all.contains("not found") || all.contains("manifest unknown"),
            "{out}"
        );
    }
    // The raw stream: a line per node, then the final error object.
    let resp = http::request(
        &m.addr(),
        "POST",
        &format!("/images/create?fromImage={missing}"),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let messages: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&resp.body)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let last = messages.last().unwrap();
    assert!(last["error"].as_str().is_some(), "{messages:?}");
    assert_eq!(last["errorDetail"]["code"], 1);
    for engine in &engines {
        assert!(
            messages.iter().any(|m| m["id"] == engine.name()
                && m["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&format!("Pulling {missing}... : ")))),
            "no failure line for {}: {messages:?}",
            engine.name()
        );
    }
}

#[test]
fn tag_save_load_import_commit_and_inspect_work_across_the_cluster() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let host = m.host();
    let cli = DockerCli::modern();
    let dir = tempfile::tempdir().unwrap();

    // Tag: every node holding busybox gets the new tag; 404 for a missing source.
    cli.run(&host, &["tag", "busybox", "shoal/tagged:1"])
        .assert_success();
    for engine in &engines {
        assert!(engine_has(engine, "shoal/tagged:1"));
    }
    let inspect = cli
        .run(
            &host,
            &["image", "inspect", "--format", "{{.Id}}", "shoal/tagged:1"],
        )
        .assert_success();
    assert_eq!(inspect.stdout_trimmed(), support::busybox_image().id);
    let history = cli.run(&host, &["history", "busybox"]).assert_success();
    assert!(history.stdout.contains("static busybox"), "{history}");

    // Save through the manager and load it back under another name everywhere.
    let saved = dir.path().join("saved.tar");
    cli.run(&host, &["save", "-o", saved.to_str().unwrap(), "busybox"])
        .assert_success();
    assert!(std::fs::metadata(&saved).unwrap().len() > 100_000);
    let other = build_busybox_image(
        &std::path::PathBuf::from("/bin/busybox"),
        "shoal/loaded:1",
        &["true"],
    )
    .unwrap();
    let tar = dir.path().join("loaded.tar");
    other.write_to(&tar).unwrap();
    for cli in DockerCli::all() {
        let loaded = cli
            .run(&host, &["load", "-i", tar.to_str().unwrap()])
            .assert_success();
        assert!(loaded.stdout.contains("Loaded image"), "{loaded}");
        for engine in &engines {
            assert!(engine_has(engine, "shoal/loaded:1"), "{loaded}");
        }
        cli.run(&host, &["rmi", "shoal/loaded:1"]).assert_success();
    }

    // Import a root file system from stdin onto every node.
    let rootfs = {
        let mut b = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let data = b"imported\n";
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, "greeting.txt", &data[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    let imported = cli
        .run_with_stdin(&host, &["import", "-", "shoal/imported:1"], rootfs)
        .assert_success();
    assert!(imported.stdout.contains("sha256:"), "{imported}");
    for engine in &engines {
        assert!(engine_has(engine, "shoal/imported:1"));
    }

    // Commit on the container's node only; the list shows it at once.
    cli.run(
        &host,
        &[
            "run",
            "--name",
            "to-commit",
            "-e",
            "constraint:node==node-1",
            "busybox",
            "touch",
            "/made",
        ],
    )
    .assert_success();
    cli.run(&host, &["commit", "to-commit", "shoal/committed:1"])
        .assert_success();
    assert!(engine_has(&engines[1], "shoal/committed:1"));
    assert!(!engine_has(&engines[0], "shoal/committed:1"));
    assert!(listed(&cli, &host).contains(&"shoal/committed:1".to_string()));
    let filtered = cli
        .run(
            &host,
            &[
                "images",
                "--filter",
                "node=node-0",
                "--format",
                "{{.Repository}}",
            ],
        )
        .assert_success();
    assert!(!filtered.stdout.contains("shoal/committed"), "{filtered}");
}

#[test]
fn missing_images_get_docker_errors_with_the_right_status() {
    let engines = EngineSet::start(1);
    let m = manager(&engines);
    let addr = m.addr();
    let cases: [(&str, &str, u16, &str); 7] = [
        ("DELETE", "/images/nosuch", 404, "No such image nosuch"),
        (
            "POST",
            "/images/nosuch/tag?repo=x&tag=1",
            404,
            "No such image: nosuch",
        ),
        (
            "GET",
            "/images/nosuch/history",
            404,
            "No such image: nosuch",
        ),
        ("GET", "/images/nosuch/get", 404, "No such image: nosuch"),
        ("POST", "/images/nosuch/push", 404, "No such image: nosuch"),
        (
            "GET",
            "/images/get?names=busybox&names=nosuch",
            404,
            "Unable to find a healthy engine containing all images: [busybox nosuch]",
        ),
        (
            "POST",
            "/commit?container=nosuch",
            404,
            "No such container: nosuch",
        ),
    ];
    for (method, path, status, text) in cases {
        let resp = http::request(&addr, method, path, None, Duration::from_secs(10)).unwrap();
        assert_eq!(resp.status, status, "{method} {path}: {}", resp.text());
        let body = resp.json().unwrap_or_default();
        assert_eq!(body["message"].as_str(), Some(text), "{method} {path}");
    }
    // A wrong method on a known path is an unknown route.
    let resp = http::request(&addr, "GET", "/images/create", None, Duration::from_secs(5)).unwrap();
    assert_eq!(resp.status, 404);
    let resp = http::request(
        &addr,
        "POST",
        "/images/create",
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());

    let cli = DockerCli::modern();
    let out = cli.run(&m.host(), &["rmi", "nosuch"]).assert_failure();
    assert!(out.stderr.contains("No such image nosuch"), "{out}");
    let out = cli.run(&m.host(), &["save", "nosuch"]).assert_failure();
    assert!(
        out.stderr.contains("Unable to find a healthy engine"),
        "{out}"
    );
    // In use on the node: the engine's conflict comes back with its status.
    cli.run(
        &m.host(),
        &["run", "-d", "--name", "user", "busybox", "sleep", "300"],
    )
    .assert_success();
    let resp = http::request(
        &addr,
        "DELETE",
        "/images/busybox",
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(resp.status, 409, "{}", resp.text());
}

#[test]
fn login_reaches_the_registry_through_some_engine() {
    let registry = Registry::start();
    let engines = EngineSet::builder(2).registry(registry.socket()).start();
    let m = manager(&engines);
    let cli = DockerCli::legacy();
    let out = cli
        .run(
            &m.host(),
            &[
                "login",
                support::REGISTRY_ADDRESS,
                "-u",
                "someone",
                "-p",
                "secret",
            ],
        )
        .assert_success();
    assert!(out.stdout.contains("Login Succeeded"), "{out}");
    // Search goes to an engine too; these cannot reach any index, and say so.
    let out = cli.run(&m.host(), &["search", "busybox"]).assert_failure();
    assert!(out.stderr.contains("Error response from daemon"), "{out}");
}
