//! The container life cycle through the manager with real engines and real docker CLIs:
//! interactive runs and execs under a terminal, attach, streaming logs, copy both ways, stats,
//! top, wait, rename, update, removal, and the byte-level behaviour of hijacked connections.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use support::terminal::in_terminal;
use support::{http, wait_until, DockerCli, EngineSet, Manager};

fn cluster(n: usize) -> (EngineSet, Manager) {
    let engines = EngineSet::start(n);
    let m = Manager::builder()
        .args(&[
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "2s",
        ])
        .start(&engines.nodes_url());
    let cli = DockerCli::modern();
    wait_until(Duration::from_secs(30), "every node healthy", || {
        cli.run(&m.host(), &["info"])
            .stdout
            .matches("Status: Healthy")
            .count()
            == n
    });
    (engines, m)
}

#[test]
fn interactive_run_and_exec_work_under_a_terminal() {
    let (_engines, m) = cluster(2);
    for cli in DockerCli::all() {
        let out = in_terminal(
            &cli,
            &m.host(),
            "run -it --rm busybox sh",
            &["echo tty=$((40+2))\n", "exit\n"],
        );
        assert!(out.contains("tty=42"), "{} run -it: {out}", cli.label());

        let name = format!("{}-box", cli.label());
        cli.run(
            &m.host(),
            &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
        )
        .assert_success();
        let out = in_terminal(
            &cli,
            &m.host(),
            &format!("exec -it {name} sh"),
            &["echo in=$((6*7))\n", "exit\n"],
        );
        assert!(out.contains("in=42"), "{} exec -it: {out}", cli.label());

        let piped = cli
            .run_with_stdin(
                &m.host(),
                &["exec", "-i", &name, "cat"],
                b"through stdin\n".to_vec(),
            )
            .assert_success();
        assert_eq!(piped.stdout_trimmed(), "through stdin");
        let code = cli.run(&m.host(), &["exec", &name, "sh", "-c", "exit 7"]);
        assert_eq!(code.status, Some(7), "exec exit codes come back: {code:?}");
        cli.run(&m.host(), &["exec", "-d", &name, "touch", "/tmp/detached"])
            .assert_success();
        wait_until(Duration::from_secs(5), "the detached exec ran", || {
            cli.run(&m.host(), &["exec", &name, "ls", "/tmp/detached"])
                .success()
        });
    }
}

#[test]
fn attach_logs_follow_and_wait_stream_through_the_manager() {
    let (_engines, m) = cluster(2);
    let cli = DockerCli::modern();
    let host = m.host();
    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    )
    .assert_success();

    let mut follow = cli.command(&host);
    follow
        .args(["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follow = follow.spawn().unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Lines keep arriving while the container runs: the stream is relayed, not buffered.
    let later: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(first.starts_with("tick"), "{first}");
    assert!(later.iter().all(|l| l.starts_with("tick")), "{later:?}");

    cli.run(
        &host,
        &["run", "-d", "-i", "--name", "talker", "busybox", "sh"],
    )
    .assert_success();
    let mut attach = cli.command(&host);
    attach
        .args(["attach", "talker"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut attach = attach.spawn().unwrap();
    let mut stdin = attach.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"echo attached $((1+1))\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"exit 5\n").unwrap();
    drop(stdin);
    let out = attach.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("attached 2"),
        "{out:?}"
    );

    cli.run(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "quitter",
            "busybox",
            "sh",
            "-c",
            "sleep 1; exit 3",
        ],
    )
    .assert_success();
    let waited = cli.run(&host, &["wait", "quitter"]).assert_success();
    assert_eq!(waited.stdout_trimmed(), "3");
}

#[test]
fn copy_stats_top_rename_update_and_remove() {
    let (_engines, m) = cluster(2);
    let host = m.host();
    for cli in DockerCli::all() {
        let name = format!("{}-work", cli.label());
        cli.run(
            &host,
            &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
        )
        .assert_success();

        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.txt");
        std::fs::write(&src, "round trip\n").unwrap();
        cli.run(
            &host,
            &["cp", src.to_str().unwrap(), &format!("{name}:/tmp/in.txt")],
        )
        .assert_success();
        let dst = dir.path().join("out.txt");
        cli.run(
            &host,
            &["cp", &format!("{name}:/tmp/in.txt"), dst.to_str().unwrap()],
        )
        .assert_success();
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), "round trip\n");

        let stats = cli
            .run(
                &host,
                &[
                    "stats",
                    "--no-stream",
                    "--format",
                    "{{.Name}} {{.PIDs}}",
                    &name,
                ],
            )
            .assert_success();
        assert!(stats.stdout.contains(&name), "{}", stats.stdout);
        let top = cli.run(&host, &["top", &name]).assert_success();
        assert!(top.stdout.contains("sleep 300"), "{}", top.stdout);

        cli.run(
            &host,
            &["update", "--memory", "64m", "--memory-swap", "128m", &name],
        )
        .assert_success();
        let mem = cli
            .run(
                &host,
                &["inspect", "--format", "{{.HostConfig.Memory}}", &name],
            )
            .assert_success();
        assert_eq!(mem.stdout_trimmed(), (64 * 1024 * 1024).to_string());

        let renamed = format!("{name}-2");
        cli.run(&host, &["rename", &name, &renamed])
            .assert_success();
        let ps = cli
            .run(&host, &["ps", "--format", "{{.Names}}"])
            .assert_success();
        assert!(
            ps.stdout
                .lines()
                .any(|l| l.ends_with(&format!("/{renamed}"))),
            "{}",
            ps.stdout
        );

        cli.run(&host, &["pause", &renamed]).assert_success();
        let ps = cli
            .run(
                &host,
                &[
                    "ps",
                    "--filter",
                    &format!("name={renamed}"),
                    "--format",
                    "{{.Status}}",
                ],
            )
            .assert_success();
        assert!(ps.stdout.contains("(Paused)"), "{}", ps.stdout);
        cli.run(&host, &["unpause", &renamed]).assert_success();
        cli.run(&host, &["restart", "-t", "1", &renamed])
            .assert_success();
        cli.run(&host, &["kill", &renamed]).assert_success();
        cli.run(&host, &["rm", "-f", &renamed]).assert_success();
        let ps = cli
            .run(&host, &["ps", "-a", "--format", "{{.Names}}"])
            .assert_success();
        assert!(!ps.stdout.contains(&renamed), "gone at once: {}", ps.stdout);
    }
}

#[test]
fn unknown_containers_execs_and_bad_bodies_get_docker_errors() {
    let (_engines, m) = cluster(1);
    let cli = DockerCli::modern();
    let host = m.host();
    for args in [
        &["logs", "nosuch"][..],
        &["stop", "nosuch"],
        &["exec", "nosuch", "true"],
        &["rm", "nosuch"],
    ] {
        let out = cli.run(&host, args);
        assert!(!out.success(), "{args:?}");
        assert!(out.stderr.contains("nosuch"), "{args:?}: {}", out.stderr);
    }
    let addr = m.addr();
    let exec = http::get(&addr, "/exec/nosuch/json").unwrap();
    assert_eq!(exec.status, 404);
    assert_eq!(exec.json().unwrap()["message"], "Exec nosuch not found");
    let bodies: [(&[u8], u16); 4] = [
        (b"{", 400),
        (b"[]", 400),
        (br#"{"Cmd":["true"]}"#, 400),
        (
            br#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#,
            400,
        ),
    ];
    for (body, status) in bodies {
        let resp = http::request(
            &addr,
            "POST",
            "/containers/create",
            Some(("application/json", body)),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            resp.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            resp.text()
        );
        assert!(resp.json().unwrap()["message"].is_string());
    }
    let bad_name = http::request(
        &addr,
        "POST",
        "/containers/create?name=a%20b",
        Some(("application/json", br#"{"Image":"busybox"}"#)),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(bad_name.status, 400);
    cli.run(
        &host,
        &["run", "-d", "--name", "c1", "busybox", "sleep", "300"],
    )
    .assert_success();
    let no_cmd = http::request(
        &addr,
        "POST",
        "/containers/c1/exec",
        Some(("application/json", br#"{"Cmd":[]}"#)),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(no_cmd.status, 400);
    assert_eq!(
        no_cmd.json().unwrap()["message"],
        "No exec command specified"
    );
    assert!(http::ping(&addr));
}

/// Creates an exec of `cat` in `container` and returns its ID.
fn exec_cat(addr: &str, container: &str, tty: bool) -> String {
    let body = format!(
        r#"{{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":{tty},"Cmd":["cat"]}}"#
    );
    let resp = http::request(
        addr,
        "POST",
        &format!("/v1.47/containers/{container}/exec"),
        Some(("application/json", body.as_bytes())),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json().unwrap()["Id"].as_str().unwrap().to_string()
}

/// Sends an upgrading exec start and returns the socket positioned after the response head.
fn start_hijacked(addr: &str, exec: &str, tty: bool) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
    let req = format!(
        "POST /v1.47/exec/{exec}/start HTTP/1.1\r\nHost: shoal\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside the response head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn hijacked_streams_switch_protocols_relay_both_ways_and_pass_half_close() {
    let (_engines, m) = cluster(1);
    let cli = DockerCli::modern();
    cli.run(
        &m.host(),
        &["run", "-d", "--name", "relay", "busybox", "sleep", "300"],
    )
    .assert_success();
    let addr = m.addr();

    let exec = exec_cat(&addr, "relay", false);
    let (mut s, head) = start_hijacked(&addr, &exec, false);
    let status = head.lines().next().unwrap_or("");
    assert!(status.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: tcp"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");

    s.write_all(b"ping through the relay\n").unwrap();
    // Without a TTY the engine multiplexes: 8-byte frame header, then the payload.
    let mut frame = [0u8; 8];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 1, "stdout stream");
    let len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    assert_eq!(payload, b"ping through the relay\n");

    // Half-close: cat sees end of input, exits, and the engine closes its side.
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the echo: {rest:?}");
    let inspect = http::get(&addr, &format!("/exec/{exec}/json"))
        .unwrap()
        .json()
        .unwrap();
    wait_until(Duration::from_secs(5), "the exec finished", || {
        http::get(&addr, &format!("/exec/{exec}/json"))
            .unwrap()
            .json()
            .unwrap()["Running"]
            == false
    });
    assert_eq!(inspect["ID"], exec.as_str());

    // A client that drops a hijacked connection midway does not hurt the manager.
    let exec2 = exec_cat(&addr, "relay", true);
    let (mut s2, head2) = start_hijacked(&addr, &exec2, true);
    assert!(head2.starts_with("HTTP/1.1 101"), "{head2}");
    s2.write_all(b"half a line").unwrap();
    drop(s2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(http::ping(&addr));
    let again = cli
        .run(&m.host(), &["exec", "relay", "echo", "still fine"])
        .assert_success();
    assert_eq!(again.stdout_trimmed(), "still fine");
}
