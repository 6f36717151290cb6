//! Clients that try to take the manager down or confuse it: half-sent requests by the hundred
//! under a low open-file limit, bodies too large to read, HTTP/2 on a plain socket, paths that
//! are not UTF-8, wrong methods. The manager must answer in Docker's JSON error form, close what
//! it will not serve, and keep answering `/_ping`.
//!
//! The tests run the real `swarm` binary over an unreachable engine (the listener does not need
//! engines); one compares an answer with a real engine's. The JSON form given to rejections the
//! router answers in plain text is pinned by the unit tests of `api::error`.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use support::{EngineSet, Manager};

/// Discovery with one engine that never answers: the manager serves without engines.
const NO_ENGINE: &str = "nodes://127.0.0.1:1";

/// The default body budget (`ClientLimits::max_body_bytes`).
const BODY_BUDGET: usize = 16 << 20;

/// A response read off a raw socket.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_type(&self) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim())
        })
    }
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one response (head, then a `Content-Length` body or up to EOF).
fn read_response(stream: &mut impl Read) -> io::Result<RawResponse> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes", raw.len()),
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut body = raw[head_end..].to_vec();
    while length.is_none_or(|l| body.len() < l) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if length.is_none() && e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(RawResponse { status, head, body })
}

/// Sends `head` and reads the answer, without sending any body.
fn exchange(addr: &str, head: &str) -> RawResponse {
    let mut stream = connect(addr);
    stream.write_all(head.as_bytes()).unwrap();
    read_response(&mut stream).unwrap()
}

/// Whether the peer has closed `stream`: EOF or a reset, waiting at most `wait`.
fn closed_by_peer(stream: &mut TcpStream, wait: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An error answer before the close is fine; keep reading to the close.
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                )
            }
        }
    }
}

fn ping_answers(addr: &str) -> bool {
    support::http::request(addr, "GET", "/_ping", None, Duration::from_secs(2))
        .is_ok_and(|r| r.status == 200)
}

#[test]
fn half_sent_requests_are_closed_and_ping_answers_again_under_a_low_descriptor_limit() {
    let manager = Manager::builder().open_file_limit(256).start(NO_ENGINE);
    let addr = manager.addr();
    // More half-sent requests than the manager has descriptors: each sends half a request line.
    let mut slow: Vec<TcpStream> = (0..400)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&addr).ok()?;
            let _ = s.write_all(b"GET /_ping HT");
            Some(s)
        })
        .collect();
    assert!(slow.len() >= 300, "only {} connections opened", slow.len());

    let started = Instant::now();
    let answered = support::poll_until(Duration::from_secs(60), || ping_answers(&addr));
    assert!(
        answered,
        "GET /_ping got no answer within 60 s of the slowloris; log:\n{}",
        manager.logs()
    );
    eprintln!(
        "/_ping answered {:?} after 400 half-sent requests",
        started.elapsed()
    );

    let deadline = started + Duration::from_secs(60);
    let still_open = slow
        .iter_mut()
        .map(|s| closed_by_peer(s, deadline.saturating_duration_since(Instant::now())))
        .filter(|closed| !closed)
        .count();
    assert_eq!(still_open, 0, "half-sent requests the manager left open");

    let logs = manager.logs();
    let cap_warnings = logs.matches("connection limit reached").count();
    assert!(
        (1..=10).contains(&cap_warnings),
        "the connection cap should be logged once in a while, not per connection ({cap_warnings} lines)"
    );
    assert!(
        logs.matches("accept").count() <= 10,
        "the accept loop logs in a loop:\n{logs}"
    );
}

#[test]
fn a_declared_body_over_the_budget_is_refused_with_413_unread() {
    let manager = Manager::start(NO_ENGINE);
    for path in ["/containers/create", "/networks/create", "/volumes/create"] {
        let started = Instant::now();
        let resp = exchange(
            &manager.addr(),
            &format!(
                "POST {path} HTTP/1.1\r\nHost: swarm\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000000000\r\n\r\n"
            ),
        );
        assert_eq!(resp.status, 413, "{path}: {}", resp.head);
        assert_eq!(resp.content_type(), Some("application/json"));
        assert_eq!(
            resp.json()["message"],
            format!("request body is too large: the limit is {BODY_BUDGET} bytes")
        );
        // Not held open waiting for 100 GB: answered as soon as the head was read.
        assert!(started.elapsed() < Duration::from_secs(10), "{path}");
    }
}

#[test]
fn a_chunked_body_growing_past_the_budget_is_refused_with_413() {
    let manager = Manager::start(NO_ENGINE);
    let mut stream = connect(&manager.addr());
    stream
        .write_all(
            b"POST /containers/create HTTP/1.1\r\nHost: swarm\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    // 50 MB of a JSON document in 1 MiB chunks; writing stops when the manager closes.
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let _ = writer.write_all(b"6\r\n{\"a\":\"\r\n");
        for _ in 0..50 {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if writer.write_all(&frame).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"2\r\n\"}\r\n0\r\n\r\n");
    });
    let resp = read_response(&mut stream).unwrap();
    let _ = stream.shutdown(Shutdown::Both);
    sender.join().unwrap();
    assert_eq!(resp.status, 413, "{}", resp.head);
    assert_eq!(resp.content_type(), Some("application/json"));
    assert!(resp.json()["message"]
        .as_str()
        .unwrap()
        .contains("too large"));
}

#[test]
fn a_body_just_under_the_budget_is_read_as_before() {
    let manager = Manager::start(NO_ENGINE);
    // Valid up to its last byte, and one byte short of closing.
    let mut body = b"{\"Image\":\"busybox\",\"Labels\":{\"big\":\"".to_vec();
    body.resize(BODY_BUDGET - 1, b'a');
    let resp = support::http::request(
        &manager.addr(),
        "POST",
        "/containers/create",
        Some(("application/json", &body)),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    let message = resp.json().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("invalid JSON"), "{message}");
}

#[test]
fn an_http2_preface_on_plain_tcp_is_refused_and_http1_keeps_working() {
    let manager = Manager::start(NO_ENGINE);
    let mut stream = connect(&manager.addr());
    // The client preface, then an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the HTTP/2 connection was neither answered nor closed: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 505"),
        "an HTTP/2 preface got: {text:?}"
    );
    assert!(ping_answers(&manager.addr()));
}

#[test]
fn a_path_that_is_not_utf8_gets_the_engines_json_answer() {
    let engines = EngineSet::start(1);
    let manager = Manager::start_healthy(&engines, &[]);
    let path = "/containers/%FF/json";
    let from_engine = support::http::get(&engines[0].addr(), path).unwrap();
    let from_manager = support::http::get(&manager.addr(), path).unwrap();
    // dockerd looks the name up with the invalid byte replaced: 404 "No such container: \u{fffd}".
    assert_eq!(from_engine.status, 404);
    assert_eq!(from_manager.status, from_engine.status);
    assert_eq!(
        from_manager.header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        from_manager.json().unwrap()["message"],
        from_engine.json().unwrap()["message"],
    );
}

#[test]
fn a_wrong_method_gets_a_json_404() {
    let manager = Manager::start(NO_ENGINE);
    for (method, path) in [
        ("DELETE", "/info"),
        ("PUT", "/containers/json"),
        ("PATCH", "/_ping"),
    ] {
        let resp =
            support::http::request(&manager.addr(), method, path, None, Duration::from_secs(10))
                .unwrap();
        assert_eq!(resp.status, 404, "{method} {path}");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.json().unwrap()["message"], "404 page not found");
    }
}

#[test]
fn a_unix_listener_is_served_by_the_same_loop_with_the_same_limits() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("swarm.sock");
    let unix = format!("unix://{}", socket.display());
    let manager = Manager::builder().args(&["-H", &unix]).start(NO_ENGINE);
    assert!(ping_answers(&manager.addr()));
    let ping =
        support::http::request(&unix, "GET", "/_ping", None, Duration::from_secs(10)).unwrap();
    assert_eq!((ping.status, ping.text().as_str()), (200, "OK"));
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            format!(
                "POST /volumes/create HTTP/1.1\r\nHost: swarm\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                BODY_BUDGET + 1
            )
            .as_bytes(),
        )
        .unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.status, 413, "{}", resp.head);
    assert_eq!(resp.content_type(), Some("application/json"));
}

#[test]
fn shutdown_closes_idle_half_sent_and_streaming_connections_within_the_grace() {
    let manager = Manager::start(NO_ENGINE);
    let addr = manager.addr();
    let mut idle = connect(&addr);
    idle.write_all(b"GET /_ping HTTP/1.1\r\nHost: swarm\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);
    let mut half = connect(&addr);
    half.write_all(b"GET /_ping HTTP/1.1\r\nHost: sw").unwrap();
    let mut events = connect(&addr);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: swarm\r\n\r\n")
        .unwrap();
    // The stream has started once its head is there.
    let mut head = [0u8; 12];
    events.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let pid = manager.pid().expect("the manager runs");
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = manager.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "the manager did not exit cleanly within 15 s of SIGTERM: {status:?}\n{}",
        manager.logs()
    );
    for (name, stream) in [
        ("idle", &mut idle),
        ("half-sent", &mut half),
        ("events", &mut events),
    ] {
        assert!(
            closed_by_peer(stream, Duration::from_secs(5)),
            "the {name} connection is still open"
        );
    }
}

#[test]
fn the_client_limits_follow_their_flags() {
    let manager = Manager::builder()
        .args(&[
            "--api-header-timeout",
            "2s",
            "--api-max-connections",
            "3",
            "--api-max-body-size",
            "2048",
        ])
        .start(NO_ENGINE);
    let addr = manager.addr();
    // The header timeout: a half-sent request is closed after 2 s, not 30.
    let mut half = connect(&addr);
    half.write_all(b"GET /_ping HTTP/1.1\r\nHo").unwrap();
    assert!(closed_by_peer(&mut half, Duration::from_secs(15)));
    // The body budget: 2,049 declared bytes are too many.
    let resp = exchange(
        &addr,
        "POST /containers/create HTTP/1.1\r\nHost: swarm\r\nContent-Type: application/json\r\n\
         Content-Length: 2049\r\n\r\n",
    );
    assert_eq!(resp.status, 413, "{}", resp.head);
    assert_eq!(
        resp.json()["message"],
        "request body is too large: the limit is 2048 bytes"
    );
    // The connection cap: with three idle connections open, a fourth is closed unanswered.
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fourth = connect(&addr);
    let _ = fourth.write_all(b"GET /_ping HTTP/1.1\r\nHost: swarm\r\n\r\n");
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = fourth.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "over the cap, yet answered: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    // Slots come back once the idle connections are closed.
    assert!(support::poll_until(Duration::from_secs(10), || {
        ping_answers(&addr)
    }));
}
