//! Key-value discovery end to end: `swarm join` agents registering engines in a real etcd (both
//! keyspaces), a real ZooKeeper and a Consul protocol fake; `swarm list`; a manager watching the
//! store; store TLS; bad data and unreachable stores; `token://` and `swarm create`.
mod support;

use std::time::{Duration, Instant};

use support::stores::{swarm_list, EtcdServer, FakeConsul, JoinAgent, TestCerts, ZkServer};
use support::{swarm, wait_for, wait_until, DockerCli, EngineSet, Manager};

/// Join flags that make registrations come and go within seconds.
const QUICK_JOIN: [&str; 4] = ["--heartbeat", "1s", "--ttl", "3s"];

fn list(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "--timeout", "5s"];
    args.extend_from_slice(extra);
    args.push(url);
    let mut lines = swarm_list(&args);
    lines.sort();
    lines
}

fn sorted(mut addrs: Vec<String>) -> Vec<String> {
    addrs.sort();
    addrs
}

#[test]
fn engines_joined_through_etcd_are_listed_managed_and_dropped_after_the_ttl() {
    let etcd = EtcdServer::start();
    let engines = EngineSet::builder(3).without_image().start();
    let url = etcd.url("cluster");
    let agents: Vec<JoinAgent> = engines
        .iter()
        .map(|engine| JoinAgent::start(&engine.addr(), &QUICK_JOIN, &url))
        .collect();
    let all = sorted(engines.addrs());
    wait_until(
        Duration::from_secs(10),
        "swarm list shows the three engines",
        || list(&url, &[]) == all,
    );
    assert_eq!(
        etcd.v3_value(&format!("cluster/docker/swarm/nodes/{}", engines[0].addr())),
        Some(engines[0].addr()),
        "v3 layout: <prefix>/docker/swarm/nodes/<addr> = <addr>"
    );

    let manager = Manager::builder().args(&["--heartbeat", "1s"]).start(&url);
    let cli = DockerCli::modern();
    wait_until(
        Duration::from_secs(30),
        "docker info shows three healthy nodes",
        || {
            let info = cli.run(&manager.host(), &["info"]).stdout;
            info.contains("Nodes: 3") && info.matches("Status: Healthy").count() == 3
        },
    );

    let stopped_at = Instant::now();
    agents[1].kill();
    let remaining = sorted(vec![engines[0].addr(), engines[2].addr()]);
    wait_until(
        Duration::from_secs(10),
        "the stopped agent's engine leaves swarm list",
        || list(&url, &[]) == remaining,
    );
    wait_until(
        Duration::from_secs(10),
        "docker info shows two nodes",
        || {
            cli.run(&manager.host(), &["info"])
                .stdout
                .contains("Nodes: 2")
        },
    );
    // The registration outlives the agent by its TTL, not much more.
    assert!(
        stopped_at.elapsed() >= Duration::from_secs(1),
        "gone before its TTL"
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(12));
}

#[test]
fn etcd_v2_keeps_the_classic_layout_and_is_chosen_explicitly() {
    let etcd = EtcdServer::start();
    let url = etcd.url("classic");
    let v2 = ["--discovery-opt", "kv.etcdapi=v2"];
    let mut args = QUICK_JOIN.to_vec();
    args.extend_from_slice(&v2);
    let _agent = JoinAgent::start("127.0.0.1:5001", &args, &url);
    wait_until(
        Duration::from_secs(10),
        "the v2 registration appears",
        || {
            etcd.v2_value("classic/docker/swarm/nodes/127.0.0.1:5001")
                .as_deref()
                == Some("127.0.0.1:5001")
        },
    );
    assert_eq!(list(&url, &v2), ["127.0.0.1:5001"]);
    // The v3 keyspace is separate: a v3 reader sees nothing, and a v3 manager says why.
    assert!(list(&url, &[]).is_empty());
    let manager = Manager::builder().args(&["--heartbeat", "1s"]).start(&url);
    wait_until(
        Duration::from_secs(10),
        "the manager hints at kv.etcdapi=v2",
        || manager.logs().contains("kv.etcdapi=v2"),
    );
    let bad = swarm(&["list", "--discovery-opt", "kv.etcdapi=v4", &url]).assert_failure();
    assert!(bad.stderr.contains("kv.etcdapi=v4: use v3 or v2"), "{bad}");
}

#[test]
fn zookeeper_registrations_are_ephemeral_and_watched() {
    let zk = ZkServer::start();
    let url = zk.url("zkc");
    let first = JoinAgent::start("127.0.0.1:6001", &QUICK_JOIN, &url);
    let second = JoinAgent::start("127.0.0.1:6002", &QUICK_JOIN, &url);
    wait_until(
        Duration::from_secs(15),
        "both registrations are listed",
        || list(&url, &[]) == ["127.0.0.1:6001", "127.0.0.1:6002"],
    );
    let manager = Manager::builder().args(&["--heartbeat", "1s"]).start(&url);
    let cli = DockerCli::modern();
    wait_until(Duration::from_secs(15), "the manager watches both", || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .contains("Nodes: 2")
    });
    // A stopped agent closes its session: its znode goes at once.
    let stopped_at = Instant::now();
    first.stop();
    wait_until(
        Duration::from_secs(5),
        "the stopped agent's znode is gone",
        || list(&url, &[]) == ["127.0.0.1:6002"],
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(5));
    wait_until(Duration::from_secs(10), "the manager drops it", || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .contains("Nodes: 1")
    });
    // A killed agent's session expires after its timeout (10 s).
    second.kill();
    wait_until(
        Duration::from_secs(20),
        "the killed agent's znode expires",
        || list(&url, &[]).is_empty(),
    );
}

#[test]
fn consul_protocol_fake_takes_registrations_and_watches() {
    let consul = FakeConsul::start();
    let url = consul.url("cons");
    let agent = JoinAgent::start(
        "127.0.0.1:7001",
        &["--heartbeat", "1s", "--ttl", "20s"],
        &url,
    );
    wait_until(
        Duration::from_secs(10),
        "the registration is listed",
        || list(&url, &[]) == ["127.0.0.1:7001"],
    );
    assert_eq!(
        consul
            .value("cons/docker/swarm/nodes/127.0.0.1:7001")
            .as_deref(),
        Some("127.0.0.1:7001")
    );
    assert!(
        consul.is_held("cons/docker/swarm/nodes/127.0.0.1:7001"),
        "held by the agent's session"
    );
    let manager = Manager::builder().args(&["--heartbeat", "1s"]).start(&url);
    let cli = DockerCli::modern();
    wait_until(Duration::from_secs(10), "the manager sees the node", || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .contains("Nodes: 1")
    });
    let _second = JoinAgent::start(
        "127.0.0.1:7002",
        &["--heartbeat", "1s", "--ttl", "20s"],
        &url,
    );
    wait_until(
        Duration::from_secs(20),
        "a blocking query brings the second node",
        || {
            cli.run(&manager.host(), &["info"])
                .stdout
                .contains("Nodes: 2")
        },
    );
    assert!(consul
        .requests()
        .iter()
        .any(|r| r == "PUT /v1/session/create"));
    wait_until(
        Duration::from_secs(5),
        "the agent renews its session every heartbeat",
        || {
            consul
                .requests()
                .iter()
                .any(|r| r.starts_with("PUT /v1/session/renew/"))
        },
    );
    drop(agent);
    let bad = swarm(&["list", "consul://127.0.0.1:1,127.0.0.1:2/x"]).assert_failure();
    assert!(
        bad.stderr
            .contains("consul does not support multiple endpoints"),
        "{bad}"
    );
}

#[test]
fn store_tls_is_used_when_all_three_files_are_given() {
    let certs = TestCerts::generate();
    let etcd = EtcdServer::start_tls(&certs);
    assert!(etcd.is_tls());
    let url = etcd.url("secure");
    let kv = certs.kv_args();
    let kv: Vec<&str> = kv.iter().map(String::as_str).collect();
    let mut join = QUICK_JOIN.to_vec();
    join.extend_from_slice(&kv);
    let agent = JoinAgent::start("127.0.0.1:8001", &join, &url);
    wait_until(
        Duration::from_secs(10),
        "the TLS registration is listed",
        || list(&url, &kv) == ["127.0.0.1:8001"],
    );
    let mut listed = vec!["list", "--timeout", "5s"];
    listed.extend_from_slice(&kv);
    listed.push(&url);
    assert!(swarm(&listed)
        .stdout
        .contains("Initializing discovery with TLS"));
    // Without the files the client speaks plain HTTP to a TLS port and gets nothing.
    let plain = swarm(&["list", "--timeout", "3s", &url]);
    assert!(
        !plain.success() || !plain.stdout.contains("127.0.0.1:8001"),
        "{plain}"
    );
    assert!(agent
        .logs()
        .contains("Registering on the discovery service"));
}

#[test]
fn malformed_store_data_and_unreachable_stores_do_not_break_anything() {
    let etcd = EtcdServer::start();
    let url = etcd.url("messy");
    let put = |key: &str, value: &[u8]| {
        let body = serde_json::json!({
            "key": support::stores::base64_encode(key.as_bytes()),
            "value": support::stores::base64_encode(value),
        })
        .to_string();
        let response = support::http::request(
            &etcd.endpoint(),
            "POST",
            "/v3/kv/put",
            Some(("application/json", body.as_bytes())),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
    };
    put("messy/docker/swarm/nodes/good", b"127.0.0.1:9001");
    put("messy/docker/swarm/nodes/no-port", b"not an address");
    put("messy/docker/swarm/nodes/binary", &[0xff, 0x00, 0xfe]);
    put("messy/docker/swarm/nodes/empty", b"");
    assert_eq!(list(&url, &[]), ["127.0.0.1:9001"]);
    let manager = Manager::builder().args(&["--heartbeat", "1s"]).start(&url);
    let cli = DockerCli::modern();
    wait_until(Duration::from_secs(10), "the good entry is managed", || {
        cli.run(&manager.host(), &["info"])
            .stdout
            .contains("Nodes: 1")
    });
    assert!(
        manager.logs().contains("malformed discovery entry"),
        "{}",
        manager.logs()
    );

    // A store nobody listens on: list fails within its timeout, a manager keeps serving.
    let closed = format!("etcd://127.0.0.1:{}/x", support::manager::free_port());
    let started = Instant::now();
    let out = swarm(&["list", "--timeout", "3s", &closed]).assert_failure();
    assert!(started.elapsed() < Duration::from_secs(10), "list hung");
    assert!(
        out.stderr.contains("unreachable") || out.stderr.contains("Timed out"),
        "{out}"
    );
    let lonely = Manager::builder()
        .args(&["--heartbeat", "1s"])
        .start(&closed);
    let info = wait_for(
        Duration::from_secs(10),
        "the manager reports the store error",
        || {
            lonely
                .logs()
                .contains("Discovery error")
                .then(|| cli.run(&lonely.host(), &["info"]))
        },
    );
    assert!(info.success(), "{info}");
    assert!(lonely.is_running());
}

#[test]
fn token_discovery_and_create_say_what_to_use_instead() {
    for args in [
        vec!["list", "token://abc123"],
        vec!["manage", "-H", "tcp://127.0.0.1:0", "token://abc123"],
        vec!["join", "--advertise", "127.0.0.1:2375", "token://abc123"],
    ] {
        let out = swarm(&args).assert_failure();
        assert!(
            out.stderr.contains("shut down in June 2019"),
            "{args:?}: {out}"
        );
        assert!(
            out.stderr.contains("etcd://, consul:// or zk://"),
            "{args:?}: {out}"
        );
    }
    let create = swarm(&["create"]).assert_failure();
    assert!(create.stderr.contains("no longer available"), "{create}");
}

/// Waits (at most 15 s) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two managers' elections in the store at `url`: one leads and keeps the lock through several
/// renewals while the other follows; when it resigns the other takes over at once.
fn the_lock_is_kept_and_changes_hands_on_resign(url: &str, opts: &[(&str, &str)]) {
    use shoal::discovery::{new_store, DiscoveryOptions};
    use shoal::leadership::{Leadership, Role};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = DiscoveryOptions {
            heartbeat: Duration::from_secs(1),
            ttl: Duration::ZERO,
            opts: opts
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        };
        let ttl = Duration::from_secs(3);
        let a = Leadership::start(
            &new_store(url, &options).unwrap(),
            "127.0.0.1:1".into(),
            ttl,
        );
        eventually("the first manager leads", || a.role() == Role::Primary).await;
        let b = Leadership::start(
            &new_store(url, &options).unwrap(),
            "127.0.0.1:2".into(),
            ttl,
        );
        eventually("the second manager knows the primary", || {
            b.primary().as_deref() == Some("127.0.0.1:1")
        })
        .await;
        // Two TTLs: the lock lives only through its renewals.
        tokio::time::sleep(ttl * 2).await;
        assert_eq!((a.role(), b.role()), (Role::Primary, Role::Replica));
        a.resign().await;
        eventually("the second manager takes over", || {
            b.role() == Role::Primary
        })
        .await;
        b.resign().await;
    });
}

#[test]
fn consul_and_etcd_v2_locks_are_renewed_and_released() {
    let consul = FakeConsul::start();
    the_lock_is_kept_and_changes_hands_on_resign(&consul.url("lead"), &[]);
    let etcd = EtcdServer::start();
    the_lock_is_kept_and_changes_hands_on_resign(&etcd.url("lead"), &[("kv.etcdapi", "v2")]);
}
