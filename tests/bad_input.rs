//! Bad input through the manager with a real engine: every client mistake is answered with
//! Docker's JSON error and the status that says whose fault it is. Malformed scheduling
//! expressions are 400 with the expression and the reason, a node nobody knows is 404
//! `No such node: x`, malformed bodies and filters are 400, while a well-formed request that no
//! node can take keeps the classic 500. Engines reporting absurd reservations do not wrap the
//! `/info` sums.
mod support;

use std::time::Duration;

use support::{http, DockerCli, EngineSet, Manager};

/// Sends one raw request; the status, the `message` of the JSON error body (or the body), and
/// whether the body was Docker's JSON error form.
fn raw(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, bool) {
    let resp = http::request(
        addr,
        method,
        path,
        body.map(|b| ("application/json", b.as_bytes())),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let message = resp
        .json()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string));
    let json_error = message.is_some()
        && resp
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
    (
        resp.status,
        message.unwrap_or_else(|| resp.text()),
        json_error,
    )
}

/// One request and what must come back: the status and words the message must hold.
struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    words: &'static [&'static str],
}

fn case(
    method: &'static str,
    path: &str,
    body: Option<&str>,
    status: u16,
    words: &'static [&'static str],
) -> Case {
    Case {
        method,
        path: path.to_string(),
        body: body.map(str::to_string),
        status,
        words,
    }
}

/// A container create body for busybox with extra JSON fields (`"Env": [...]`, …).
fn create_body(extra: &str) -> String {
    if extra.is_empty() {
        r#"{"Image":"busybox","Cmd":["true"]}"#.to_string()
    } else {
        format!(r#"{{"Image":"busybox","Cmd":["true"],{extra}}}"#)
    }
}

/// Percent-encodes a query value.
fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Runs every case and fails once, listing each mismatch with what came back, so one run shows
/// every status at once.
fn check_all(addr: &str, cases: &[Case]) {
    let mut wrong = Vec::new();
    for c in cases {
        let (status, message, json_error) = raw(addr, c.method, &c.path, c.body.as_deref());
        let words_ok = c.words.iter().all(|w| message.contains(w));
        if status != c.status || !words_ok || !json_error {
            wrong.push(format!(
                "{} {} {}: got {status} {message:?} (json: {json_error}), want {} with {:?}",
                c.method,
                c.path,
                c.body.as_deref().unwrap_or(""),
                c.status,
                c.words
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn client_mistakes_get_docker_json_errors_with_the_right_status() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    let addr = m.addr();
    let build_args = |args: &str| format!("/build?buildargs={}", enc(args));
    let cases = [
        // Malformed expressions: 400, naming the expression and the reason.
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["constraint:node=="]"#)),
            400,
            &["constraint", "'node=='", "Value '' is invalid"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["constraint:node=~["]"#)),
            400,
            &["'node=~['", "One of operator ==, != is expected"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(
                r#""Labels":{"com.docker.swarm.constraints":"[\"node==\"]"}"#,
            )),
            400,
            &["constraint", "'node=='", "Value '' is invalid"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["affinity:container=="]"#)),
            400,
            &["affinity", "'container=='", "Value '' is invalid"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["affinity:image=~["]"#)),
            400,
            &[
                "affinity",
                "'image=~['",
                "One of operator ==, != is expected",
            ],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(
                r#""Labels":{"com.docker.swarm.affinities":"[\"image=~[\"]"}"#,
            )),
            400,
            &["affinity", "'image=~['"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["whitelist:node==a,b"]"#)),
            400,
            &["whitelist", "'node==a,b'", "Value 'a,b' is invalid"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["reschedule:sometimes"]"#)),
            400,
            &["invalid reschedule policy: sometimes"],
        ),
        case(
            "POST",
            &build_args(r#"{"constraint:node":"="}"#),
            None,
            400,
            &["constraint", "'node=='", "Value '' is invalid"],
        ),
        case(
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"v","Labels":{"com.docker.swarm.whitelists":"[\"node\"]"}}"#),
            400,
            &["whitelist", "'node'", "One of operator ==, != is expected"],
        ),
        // Well formed, but no node satisfies it: the classic 500 and condition list.
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""Env":["constraint:node==nope"]"#)),
            500,
            &[
                "Unable to find a node that satisfies the following conditions",
                "[node==nope]",
            ],
        ),
        case(
            "POST",
            &build_args(r#"{"constraint:node":"=nope"}"#),
            None,
            500,
            &["[node==nope]"],
        ),
        // Nodes nobody knows: 404.
        case(
            "POST",
            "/networks/create",
            Some(r#"{"Name":"nosuch/net"}"#),
            404,
            &["No such node: nosuch"],
        ),
        case(
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"nosuch/vol"}"#),
            404,
            &["No such node: nosuch"],
        ),
        case(
            "POST",
            "/networks/create",
            Some(r#"{"Name":"a,b/net"}"#),
            404,
            &["No such node: a,b"],
        ),
        // Malformed bodies and filters: 400.
        case(
            "POST",
            "/containers/create",
            Some(&create_body(r#""HostConfig":{"Memory":"lots"}"#)),
            400,
            &["invalid"],
        ),
        case(
            "POST",
            "/containers/create",
            Some(r#"{"Image":"busybox","#),
            400,
            &["invalid"],
        ),
        case(
            "POST",
            "/networks/create",
            Some(r#"["not","an","object"]"#),
            400,
            &["invalid"],
        ),
        case(
            "GET",
            &format!("/containers/json?filters={}", enc("{bad")),
            None,
            400,
            &["invalid filter"],
        ),
        case(
            "GET",
            &format!("/images/json?filters={}", enc("[1]")),
            None,
            400,
            &["invalid filter"],
        ),
        case(
            "GET",
            &format!("/volumes?filters={}", enc(r#"{"name":5}"#)),
            None,
            400,
            &["invalid filter"],
        ),
        case(
            "GET",
            &format!("/networks?filters={}", enc("nope")),
            None,
            400,
            &["invalid filter"],
        ),
    ];
    check_all(&addr, &cases);

    // Nothing was created by the refused requests, and the manager still answers.
    let ps = engines[0].docker(&["ps", "-aq"]).assert_success();
    assert!(ps.stdout.trim().is_empty(), "{}", ps.stdout);
    assert!(http::ping(&addr));
}

#[test]
fn docker_run_with_a_malformed_constraint_fails_with_the_parse_error() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    for cli in DockerCli::all() {
        for (env, words) in [
            (
                "constraint:node==",
                [
                    "invalid constraint expression 'node=='",
                    "Value '' is invalid",
                ],
            ),
            (
                "affinity:image=~[",
                [
                    "invalid affinity expression 'image=~['",
                    "One of operator ==, != is expected",
                ],
            ),
        ] {
            let out = cli
                .run(&m.host(), &["run", "-e", env, "busybox", "true"])
                .assert_failure();
            for w in words {
                assert!(out.stderr.contains(w), "{} {env}: {out}", cli.label());
            }
        }
        let out = cli
            .run(&m.host(), &["network", "create", "nosuch/net"])
            .assert_failure();
        assert!(
            out.stderr.contains("No such node: nosuch"),
            "{}: {out}",
            cli.label()
        );
    }
}

#[test]
fn huge_engine_reported_reservations_do_not_wrap_the_info_sums() {
    let engines = EngineSet::start(1);
    let m = Manager::start_healthy(&engines, &[]);
    // Two containers reserving i64::MAX bytes each, made on the engine directly (the scheduler
    // would refuse them): their sum is what used to wrap to -2 B.
    let body = format!(
        r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Memory":{}}}}}"#,
        i64::MAX
    );
    for _ in 0..2 {
        let (status, message, _) = raw(
            &engines[0].addr(),
            "POST",
            "/containers/create",
            Some(&body),
        );
        assert_eq!(status, 201, "{message}");
    }
    let mut reserved = String::new();
    support::wait_until(Duration::from_secs(30), "the manager sees both", || {
        let info = http::get(&m.addr(), "/info").unwrap().json().unwrap();
        let rows = info["SystemStatus"].as_array().cloned().unwrap_or_default();
        reserved = rows
            .iter()
            .find(|r| {
                r[0].as_str()
                    .is_some_and(|k| k.ends_with("Reserved Memory"))
            })
            .and_then(|r| r[1].as_str())
            .unwrap_or("")
            .to_string();
        info["Containers"] == 2
    });
    assert_eq!(reserved.split(" / ").next(), Some("8 EiB"), "{reserved}");
    assert!(!reserved.contains('-'), "{reserved}");
    // A create through the manager still answers, without panicking on the sums.
    let (status, message, _) = raw(
        &m.addr(),
        "POST",
        "/containers/create",
        Some(&create_body("")),
    );
    assert_eq!(status, 201, "{message}");
}
