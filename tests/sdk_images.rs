//! Images through the manager as Docker SDKs see them, with two real engines and docker-py
//! (Debian's `python3-docker`): a build returns its image, which can be looked up at once; the
//! build stream holds only what the engine sent; a load reports each image once however many
//! nodes loaded it; a new tag can be inspected as soon as tagging returns.
mod support;

use std::time::Duration;

use serde_json::Value;
use support::cli::docker_py;
use support::image::build_busybox_image;
use support::{http, DockerCli, EngineSet, Manager};

fn manager(engines: &EngineSet) -> Manager {
    Manager::start_healthy(engines, &[])
}

/// The JSON messages of a streamed answer, one per line.
fn messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {text}")))
        .collect()
}

/// A build context holding only `dockerfile`.
fn context(dockerfile: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    b.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_docker_py_build_returns_its_image_and_the_stream_holds_only_engine_messages() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);

    let built = docker_py(
        &m.host(),
        "image, _ = client.images.build(\n\
         \x20   fileobj=io.BytesIO(b'FROM busybox\\nLABEL sdk=built\\n'), tag='sdk-built')\n\
         got = client.images.get('sdk-built')\n\
         assert got.id == image.id, (got.id, image.id)\n\
         print(image.id)",
    )
    .assert_success();
    assert!(built.stdout_trimmed().starts_with("sha256:"), "{built}");

    // The raw stream: every message is one the engine wrote (the node only in `id`).
    let resp = http::request(
        &m.addr(),
        "POST",
        "/build?t=sdk-raw:1",
        Some((
            "application/x-tar",
            &context("FROM busybox\nLABEL sdk=raw\n"),
        )),
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let node = resp.header("X-Swarm-Node").unwrap_or_default().to_string();
    assert!(
        engines.iter().any(|e| e.name() == node),
        "X-Swarm-Node names no node: {node:?}"
    );
    let text = resp.text();
    let sent = messages(&text);
    assert!(!sent.is_empty(), "no build output");
    for message in &sent {
        let fields = ["stream", "aux", "error", "status"];
        assert!(
            fields.iter().any(|f| message.get(f).is_some()),
            "a message the engine did not send: {message} in\n{text}"
        );
    }
    assert!(
        text.contains("Successfully tagged sdk-raw:1"),
        "build did not finish:\n{text}"
    );
    let inspect = http::get(&m.addr(), "/images/sdk-raw:1/json").unwrap();
    assert_eq!(inspect.status, 200, "{}", inspect.text());
}

#[test]
fn a_load_reports_each_image_once_and_a_new_tag_is_inspectable_at_once() {
    let engines = EngineSet::start(2);
    let m = manager(&engines);
    let dir = tempfile::tempdir().unwrap();
    let image = build_busybox_image(
        &std::path::PathBuf::from("/bin/busybox"),
        "sdk-loaded:1",
        &["true"],
    )
    .unwrap();
    let tar = dir.path().join("loaded.tar");
    image.write_to(&tar).unwrap();

    let loaded = docker_py(
        &m.host(),
        &format!(
            "images = client.images.load(open({:?}, 'rb').read())\n\
             print(len(images), ' '.join(t for i in images for t in i.tags))",
            tar.to_str().unwrap()
        ),
    )
    .assert_success();
    assert_eq!(loaded.stdout_trimmed(), "1 sdk-loaded:1", "{loaded}");
    for engine in &engines {
        assert!(
            engine
                .docker(&["image", "inspect", "sdk-loaded:1"])
                .success(),
            "not loaded on {}",
            engine.name()
        );
    }

    let resp = http::request(
        &m.addr(),
        "POST",
        "/images/load?quiet=1",
        Some(("application/x-tar", &image.tarball)),
        Duration::from_secs(120),
    )
    .unwrap();
    let text = resp.text();
    assert_eq!(resp.status, 200, "{text}");
    assert_eq!(
        text.matches("Loaded image: sdk-loaded:1").count(),
        1,
        "each Loaded image line once:\n{text}"
    );

    // Tag then inspect at once, through the CLI and through docker-py.
    let cli = DockerCli::default_cli();
    cli.run(&m.host(), &["tag", "busybox", "sdk-tagged:1"])
        .assert_success();
    let inspect = cli
        .run(
            &m.host(),
            &["image", "inspect", "--format", "{{.Id}}", "sdk-tagged:1"],
        )
        .assert_success();
    assert_eq!(inspect.stdout_trimmed(), support::busybox_image().id);
    docker_py(
        &m.host(),
        "assert client.images.get('busybox').tag('sdk-tagged', '2')\n\
         print(client.images.get('sdk-tagged:2').id)",
    )
    .assert_success();
}
