//! Placement by what only some nodes hold, with real engines, the real docker CLI and docker-py: a
//! container mounting a named volume lands where that volume is, one created from an image that
//! only some nodes have (tagged or committed there, pullable from nowhere) lands on one of them,
//! and a build with `cache_from` goes where its cache images are.
mod support;

use std::time::Duration;

use support::cli::docker_py;
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

/// Waits until the manager's merged image list shows `reference` (`repo:tag`).
fn until_listed(cli: &DockerCli, host: &str, reference: &str) {
    wait_until(
        WAIT,
        &format!("the manager lists image {reference}"),
        || {
            cli.run(host, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
                .stdout_lines()
                .contains(&reference)
        },
    );
}

#[test]
fn docker_py_runs_committed_images_and_volumes_where_they_are_and_counts_images_as_listed() {
    let (engines, m, cli) = two_nodes();
    let host = m.host();
    let holder = &engines.engines()[1];
    holder
        .docker(&["volume", "create", "pyvolume"])
        .assert_success();
    let source = holder
        .docker(&["run", "-d", "busybox", "sleep", "60"])
        .assert_success()
        .stdout_trimmed()
        .to_string();
    wait_until(WAIT, "the manager lists the source container", || {
        cli.run(&host, &["inspect", &source]).success()
    });
    // Committed through the manager, the image exists on the holder only; every container run
    // from it, and every one mounting the holder's volume, must land there.
    let out = docker_py(
        &host,
        &format!(
            "client.containers.get({source:?}).commit('sdk-committed', 'v1')\n\
             for _ in range(3):\n\
             \x20   c = client.containers.run('sdk-committed:v1', 'sleep 60', detach=True)\n\
             \x20   print(c.id)\n\
             for _ in range(3):\n\
             \x20   c = client.containers.run('busybox', 'sleep 60', detach=True,\n\
             \x20       volumes={{'pyvolume': {{'bind': '/data', 'mode': 'rw'}}}})\n\
             \x20   print(c.id)\n\
             info = client.info()['Images']\n\
             listed = len(client.images.list(all=True))\n\
             print('images', info, listed)"
        ),
    )
    .assert_success();
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 7, "{out}");
    for id in &lines[..6] {
        assert_eq!(node_of(&cli, &host, id), holder.name(), "{out}");
    }
    let counts: Vec<&str> = lines[6].split(' ').collect();
    assert_eq!(
        counts[1], counts[2],
        "info Images vs the merged list: {out}"
    );
}

#[test]
fn a_docker_py_build_with_cache_from_goes_where_its_cache_images_are() {
    let (engines, m, cli) = two_nodes();
    let host = m.host();
    let holder = &engines.engines()[1];
    holder
        .docker(&["tag", "busybox:latest", "onlyhere-base:v1"])
        .assert_success();
    // Spread alone would send the build to the other, emptier node, which cannot pull the base.
    for _ in 0..3 {
        holder
            .docker(&["run", "-d", "busybox", "sleep", "60"])
            .assert_success();
    }
    until_listed(&cli, &host, "onlyhere-base:v1");
    let out = docker_py(
        &host,
        "dockerfile = b'FROM onlyhere-base:v1\\nLABEL cached=yes\\n'\n\
         tar = io.BytesIO()\n\
         import tarfile\n\
         with tarfile.open(fileobj=tar, mode='w') as t:\n\
         \x20   info = tarfile.TarInfo('Dockerfile')\n\
         \x20   info.size = len(dockerfile)\n\
         \x20   t.addfile(info, io.BytesIO(dockerfile))\n\
         tar.seek(0)\n\
         image, _ = client.images.build(fileobj=tar, custom_context=True, tag='sdk-cached:v1',\n\
         \x20   cache_from=['onlyhere-base:v1'])\n\
         print(image.labels.get('cached'))",
    )
    .assert_success();
    assert_eq!(out.stdout_trimmed(), "yes", "{out}");
    holder
        .docker(&["image", "inspect", "sdk-cached:v1"])
        .assert_success();
}
