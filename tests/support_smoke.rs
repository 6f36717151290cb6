//! Checks the integration-test support itself against real engines: names, containers, kill and
//! restart, cleanup, the test image, the docker CLIs and the manager helper.

mod support;

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use support::engines::processes_of_set;
use support::{busybox_image, image, DockerCli, EngineSet, Manager, TAG_VAR};

#[test]
fn engines_are_named_after_their_position() {
    let engines = EngineSet::start(2);
    for (engine, expected) in engines.iter().zip(["node-0", "node-1"]) {
        let name = engine
            .docker(&["info", "--format", "{{.Name}}"])
            .assert_success();
        assert_eq!(name.stdout_trimmed(), expected);
    }
    assert_ne!(engines[0].port(), engines[1].port());
    assert_eq!(
        engines.nodes_url(),
        format!("nodes://{},{}", engines[0].addr(), engines[1].addr())
    );
    // Each engine keeps its own key, hence its own engine ID.
    let id = |i: usize| {
        engines[i].info().unwrap()["ID"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(id(0), id(1));
}

#[test]
fn engines_take_labels_and_serve_their_unix_socket() {
    let engines = EngineSet::builder(2)
        .label("zone", "test")
        .node_label(1, "storage", "ssd")
        .first_index(5)
        .without_image()
        .start();
    assert_eq!(engines[0].name(), "node-5");
    let labels = |i: usize| {
        let info = engines[i].info().unwrap();
        let mut labels: Vec<String> = serde_json::from_value(info["Labels"].clone()).unwrap();
        labels.sort();
        labels
    };
    assert_eq!(labels(0), ["zone=test"]);
    assert_eq!(labels(1), ["storage=ssd", "zone=test"]);
    let socket = format!("unix://{}", engines[1].unix_socket().display());
    let name = DockerCli::default_cli().run(&socket, &["info", "--format", "{{.Name}}"]);
    assert_eq!(name.assert_success().stdout_trimmed(), "node-6");
    let images = engines[0].docker(&["images", "-q"]).assert_success();
    assert_eq!(images.stdout_trimmed(), "", "without_image() loads nothing");
}

#[test]
fn a_busybox_container_runs_on_the_engine_it_was_started_on() {
    let engines = EngineSet::start(2);
    let run = engines[0]
        .docker(&["run", "-d", "busybox", "sleep", "30"])
        .assert_success();
    let id = run.stdout_trimmed().to_string();
    let running = engines[0]
        .docker(&["ps", "-q", "--no-trunc"])
        .assert_success();
    assert_eq!(running.stdout_lines(), vec![id.as_str()]);
    let elsewhere = engines[1].docker(&["ps", "-q"]).assert_success();
    assert!(elsewhere.stdout_lines().is_empty());
    // The image is the same everywhere, byte for byte.
    for engine in &engines {
        let image = engine
            .docker(&["image", "inspect", "--format", "{{.Id}}", "busybox"])
            .assert_success();
        assert_eq!(image.stdout_trimmed(), busybox_image().id);
    }
    let output = engines[1]
        .docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo hello from $(hostname -s)",
        ])
        .assert_success();
    assert!(output.stdout.starts_with("hello from "), "{output}");
}

#[test]
fn a_killed_engine_refuses_connections_until_restarted_with_its_data() {
    let engines = EngineSet::start(2);
    let engine = &engines[1];
    engine
        .docker(&["create", "--name", "kept", "busybox", "true"])
        .assert_success();
    let first_pid = engine.pid().expect("dockerd runs");

    engine.kill();
    assert!(!engine.is_running());
    assert_eq!(engine.pid(), None);
    let refused = TcpStream::connect(engine.addr()).map_err(|e| e.kind());
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "a killed engine's port must refuse connections"
    );
    assert!(engines[0].ping(), "the other engine is untouched");

    engine.restart();
    assert!(engine.ping());
    assert_ne!(engine.pid(), Some(first_pid));
    let image = engine
        .docker(&["image", "inspect", "--format", "{{.Id}}", "busybox"])
        .assert_success();
    assert_eq!(image.stdout_trimmed(), busybox_image().id);
    let kept = engine
        .docker(&[
            "ps",
            "-a",
            "--filter",
            "name=kept",
            "--format",
            "{{.Names}}",
        ])
        .assert_success();
    assert_eq!(kept.stdout_trimmed(), "kept");
    let name = engine
        .docker(&["info", "--format", "{{.Name}}"])
        .assert_success();
    assert_eq!(name.stdout_trimmed(), "node-1");
}

#[test]
fn dropping_the_set_stops_every_process_and_removes_its_files() {
    let engines = EngineSet::start(1);
    engines[0]
        .docker(&["run", "-d", "busybox", "sleep", "300"])
        .assert_success();
    let set_id = engines.id().to_string();
    let dir = engines.dir().to_path_buf();
    let addr = engines[0].addr();
    let pids = processes_of_set(&set_id);
    assert!(
        pids.len() >= 2,
        "dockerd, containerd and the launcher carry the set id: {pids:?}"
    );

    drop(engines);

    assert_eq!(processes_of_set(&set_id), Vec::<u32>::new());
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(TcpStream::connect(&addr).is_err());
    let cgroups: Vec<_> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .flat_map(|hierarchy| {
            fs::read_dir(hierarchy.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|group| group.file_name().to_string_lossy().starts_with(&set_id))
        .map(|group| group.path())
        .collect();
    assert!(cgroups.is_empty(), "leftover cgroups: {cgroups:?}");
}

#[test]
fn an_engine_that_cannot_start_is_reported_with_its_log() {
    let error = EngineSet::builder(2)
        .node_dockerd_arg(1, "--no-such-dockerd-flag")
        .without_image()
        .start_timeout(Duration::from_secs(20))
        .try_start()
        .err()
        .expect("dockerd rejects an unknown flag");
    let message = error.to_string();
    assert!(message.contains("engine node-1"), "{message}");
    assert!(
        message.contains("no-such-dockerd-flag"),
        "the log tail shows why: {message}"
    );
    assert!(
        !message.contains("engine node-0"),
        "node-0 started fine: {message}"
    );
}

#[test]
fn engines_are_stopped_when_a_test_panics() {
    let (report, set_id) = std::sync::mpsc::channel();
    let failing_test = std::thread::spawn(move || {
        let engines = EngineSet::builder(1).without_image().start();
        report.send(engines.id().to_string()).unwrap();
        panic!("a test fails while its engines run");
    });
    assert!(failing_test.join().is_err());
    let set_id = set_id.recv().unwrap();
    assert_eq!(processes_of_set(&set_id), Vec::<u32>::new());
}

#[test]
fn the_test_image_is_the_same_on_every_build() {
    let cached = busybox_image();
    let again = image::build_busybox_image(
        std::path::Path::new("/bin/busybox"),
        image::BUSYBOX_REFERENCE,
        &["sh"],
    )
    .unwrap();
    assert_eq!(again.id, cached.id);
    assert_eq!(again.tarball, cached.tarball);
    let other = image::build_busybox_image(
        std::path::Path::new("/bin/busybox"),
        "busybox:other",
        &["sleep", "1"],
    )
    .unwrap();
    assert_ne!(other.id, cached.id, "the command is part of the config");
    assert_eq!(
        other.layer_digest, cached.layer_digest,
        "same root file system"
    );
}

#[test]
fn both_docker_clis_talk_to_an_engine() {
    let engines = EngineSet::builder(1).without_image().start();
    for cli in DockerCli::all() {
        let version = engines[0]
            .docker_with(&cli, &["version", "--format", "{{.Server.Version}}"])
            .assert_success();
        assert!(
            version.stdout_trimmed().starts_with("20.10"),
            "{} CLI: {version}",
            cli.label()
        );
        assert!(!cli.client_version().is_empty());
    }
}

#[test]
fn leftovers_of_a_dead_run_are_swept_by_tag() {
    // A tag whose owner cannot exist: pids never reach 2^22 + 1.
    let dead_tag = "4194305.1";
    let mut orphan = Command::new("sleep")
        .arg("300")
        .env(TAG_VAR, dead_tag)
        .spawn()
        .unwrap();
    let leftover_dir = std::env::temp_dir().join(format!("shoal-{dead_tag}-leftover"));
    fs::create_dir_all(leftover_dir.join("data")).unwrap();
    // `spawn` returns once the exec has begun, slightly before the kernel publishes the new
    // environment in /proc; a sweep in that window would not see the tag.
    support::wait_until(Duration::from_secs(5), "the orphan's tag shows", || {
        support::processes_with(TAG_VAR, dead_tag).contains(&orphan.id())
    });

    support::sweep_leftovers_now();

    let exited = support::poll_until(Duration::from_secs(10), || {
        matches!(orphan.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = orphan.kill();
        let _ = orphan.wait();
    }
    assert!(exited, "the sweep stops processes of dead runs");
    assert!(
        !leftover_dir.exists(),
        "the sweep removes directories of dead runs"
    );
}

#[test]
#[should_panic(expected = "timed out after")]
fn wait_until_names_what_it_waited_for() {
    support::wait_until(Duration::from_millis(50), "pigs fly", || false);
}

#[test]
fn a_manager_that_exits_early_is_reported_with_its_log() {
    let error = Manager::builder()
        .arg("--no-such-option-anywhere")
        .start_timeout(Duration::from_secs(20))
        .try_start("nodes://127.0.0.1:1")
        .err()
        .expect("a manager given an unknown option must not come up");
    let message = error.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("--no-such-option-anywhere"), "{message}");
}

#[test]
fn a_manager_is_pinged_until_ready_and_stopped_on_drop() {
    // Stands in for `swarm manage`: serves GET /_ping on the -H address with busybox httpd.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-swarm");
    fs::write(
        &script,
        "#!/bin/sh\n\
         while [ $# -gt 0 ]; do\n\
           case \"$1\" in -H) addr=${2#tcp://}; shift 2 ;; *) shift ;; esac\n\
         done\n\
         root=$(dirname \"$0\")/www\n\
         mkdir -p \"$root\" && echo OK > \"$root/_ping\"\n\
         echo \"fake manager on $addr\"\n\
         exec /bin/busybox httpd -f -p \"$addr\" -h \"$root\"\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

    let manager = Manager::builder()
        .binary(&script)
        .start("nodes://127.0.0.1:1");
    assert!(manager.host().starts_with("tcp://127.0.0.1:"));
    assert!(manager.is_running());
    let pid = manager.pid().unwrap();
    assert!(manager
        .logs()
        .contains(&format!("fake manager on {}", manager.addr())));
    let ping = support::http::get(&manager.addr(), "/_ping").unwrap();
    assert_eq!((ping.status, ping.text().trim()), (200, "OK"));

    let addr = manager.addr();
    drop(manager);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the manager process is gone"
    );
    assert!(TcpStream::connect(&addr).is_err());
}
