//! TLS end to end: a manager with `--tlsverify` in front of engines that run `--tlsverify`, the
//! real docker CLIs with client certificates, clients without a valid certificate refused at
//! the handshake, replicas relaying over TLS, and clear errors for certificates without IP SANs.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::manager::free_port;
use support::stores::{EtcdServer, JoinAgent, TestCerts};
use support::{wait_until, DockerCli, EngineSet, Manager};

fn tls_engines(certs: &TestCerts, count: usize) -> EngineSet {
    EngineSet::builder(count)
        .tls_verify(&certs.ca_cert, &certs.server_cert, &certs.server_key)
        .start()
}

fn tls_manager(certs: &TestCerts, discovery: &str, extra: &[&str]) -> Manager {
    let mut args: Vec<String> = certs.manager_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(
        [
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "2s",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Manager::builder().tls().args(&args).start(discovery)
}

/// `docker <client TLS flags> args…` against `manager`.
fn secure(cli: &DockerCli, certs: &TestCerts, host: &str, args: &[&str]) -> support::CliOutput {
    let mut all: Vec<String> = certs.client_args();
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    cli.run(host, &all)
}

#[test]
fn tlsverify_works_end_to_end_and_refuses_clients_without_a_valid_certificate() {
    let certs = TestCerts::generate();
    let engines = tls_engines(&certs, 2);
    let manager = tls_manager(&certs, &engines.nodes_url(), &[]);
    let host = manager.host();
    for cli in DockerCli::all() {
        wait_until(
            Duration::from_secs(40),
            "both TLS engines are healthy",
            || {
                secure(&cli, &certs, &host, &["info"])
                    .stdout
                    .matches("Status: Healthy")
                    .count()
                    == 2
            },
        );
        let run = secure(
            &cli,
            &certs,
            &host,
            &["run", "--rm", "busybox", "echo", "over tls"],
        )
        .assert_success();
        assert_eq!(run.stdout_trimmed(), "over tls", "{}", cli.label());
        secure(&cli, &certs, &host, &["ps", "-a"]).assert_success();
        // Logs take a relay of their own to the engine, over TLS here too.
        let name = format!("tls-logs-{}", cli.label());
        secure(
            &cli,
            &certs,
            &host,
            &["run", "--name", &name, "busybox", "echo", "logged over tls"],
        )
        .assert_success();
        let logs = secure(&cli, &certs, &host, &["logs", &name]).assert_success();
        assert_eq!(logs.stdout_trimmed(), "logged over tls", "{}", cli.label());
    }

    let cli = DockerCli::modern();
    // No client certificate at all.
    let ca = format!("--tlscacert={}", certs.ca_cert.display());
    let anonymous = cli.run(&host, &["--tlsverify", &ca, "ps"]).assert_failure();
    assert!(!anonymous.stdout.contains("CONTAINER ID"), "{anonymous}");
    // A certificate from another CA.
    let rogue = cli
        .run(
            &host,
            &[
                "--tlsverify",
                &ca,
                &format!("--tlscert={}", certs.rogue_cert.display()),
                &format!("--tlskey={}", certs.rogue_key.display()),
                "ps",
            ],
        )
        .assert_failure();
    assert!(!rogue.stdout.contains("CONTAINER ID"), "{rogue}");
    // Plain HTTP: no HTTP answer ever comes back, only the end of the connection.
    let mut plain = TcpStream::connect(manager.addr()).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "{answer:?}"
    );
    assert!(manager.is_running());
}

#[test]
fn replicas_relay_to_the_primary_over_tls() {
    let certs = TestCerts::generate();
    let engines = tls_engines(&certs, 1);
    let etcd = EtcdServer::start();
    let url = etcd.url("tlsha");
    let _agent = JoinAgent::start(
        &engines[0].addr(),
        &["--heartbeat", "1s", "--ttl", "5s"],
        &url,
    );
    let start = |port: u16| {
        let advertise = format!("127.0.0.1:{port}");
        let mut args = certs.manager_args();
        args.extend(
            [
                "--replication",
                "--replication-ttl",
                "4s",
                "--advertise",
                &advertise,
                "--heartbeat",
                "1s",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Manager::builder().tls().port(port).args(&args).start(&url)
    };
    let a = start(free_port());
    let b = start(free_port());
    let cli = DockerCli::modern();
    let replica = wait_until_replica(&cli, &certs, &a, &b);
    wait_until(
        Duration::from_secs(40),
        "the engine is healthy through the replica",
        || {
            secure(&cli, &certs, &replica.host(), &["info"])
                .stdout
                .contains("Status: Healthy")
        },
    );
    let run = secure(
        &cli,
        &certs,
        &replica.host(),
        &["run", "--rm", "busybox", "echo", "relayed over tls"],
    )
    .assert_success();
    assert_eq!(run.stdout_trimmed(), "relayed over tls");
}

fn wait_until_replica<'a>(
    cli: &DockerCli,
    certs: &TestCerts,
    a: &'a Manager,
    b: &'a Manager,
) -> &'a Manager {
    support::wait_for(Duration::from_secs(20), "one replica", || {
        let a_info = secure(cli, certs, &a.host(), &["info"]).stdout;
        let b_info = secure(cli, certs, &b.host(), &["info"]).stdout;
        match (
            a_info.contains("Role: replica"),
            b_info.contains("Role: replica"),
        ) {
            (true, false) if b_info.contains("Role: primary") => Some(a),
            (false, true) if a_info.contains("Role: primary") => Some(b),
            _ => None,
        }
    })
}

#[test]
fn certificates_without_ip_sans_get_a_clear_error() {
    let certs = TestCerts::generate();
    // Engines whose certificates name only "localhost", reached at 127.0.0.1.
    let engines = EngineSet::builder(1)
        .without_image()
        .tls_verify(&certs.ca_cert, &certs.no_ip_cert, &certs.no_ip_key)
        .start();
    let manager = tls_manager(&certs, &engines.nodes_url(), &[]);
    wait_until(
        Duration::from_secs(20),
        "the manager explains the missing IP SAN",
        || {
            manager
                .logs()
                .contains("must carry the address as an IP SAN (subjectAltName IP:127.0.0.1)")
        },
    );
    let info = secure(&DockerCli::modern(), &certs, &manager.host(), &["info"]).assert_success();
    assert!(!info.stdout.contains("Status: Healthy"), "{info}");

    // The manager's own certificate without an IP SAN for its listening address: a warning at
    // start, since clients that verify it will refuse it.
    let port = free_port();
    let args = [
        "--tlsverify".to_string(),
        format!("--tlscacert={}", certs.ca_cert.display()),
        format!("--tlscert={}", certs.no_ip_cert.display()),
        format!("--tlskey={}", certs.no_ip_key.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let named = Manager::builder()
        .tls()
        .port(port)
        .args(&args)
        .start(&engines.nodes_url());
    wait_until(Duration::from_secs(10), "the start-up warning", || {
        named.logs().contains("does not name 127.0.0.1")
            && named.logs().contains("add IP:127.0.0.1")
    });
}
