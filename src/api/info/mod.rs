//! `/_ping`, `/version` and `/info`: answered by the manager itself from its own state (SPEC
//! §5.5). No engine is contacted here: `/info` reads each engine's cached rows and counts and
//! keeps the rendered node tree ([`InfoTree`]) while no engine changed. This module owns the
//! handlers and the `/info` body; the node tree's rendering and memo live in `tree`. It must not
//! import another handler module.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::error::{json_response, no_such_route, ApiError};
use super::state::AppState;
use super::version::{MAX_API, MIN_API};
use crate::cluster::startup::Tally;

mod tree;

pub use tree::{human_size, natural_cmp, reservations, InfoPart, InfoTree, Reservations};

/// `GET|HEAD /_ping`: `OK` whatever the manager's state, as Docker answers. With `ready=1` it is
/// a readiness check for load balancers instead: a 503 with the reason while this manager
/// should get no requests (see [`readiness`]).
pub async fn ping(
    State(state): State<AppState>,
    Extension(started): Extension<Arc<StartedOnce>>,
    method: Method,
    uri: http::Uri,
) -> Response {
    let ready_asked = uri.query().is_some_and(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .any(|(key, value)| key == "ready" && crate::cluster::budget::docker_bool(&value))
    });
    if ready_asked {
        if let Err(why) = readiness(&state, &started) {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        }
    }
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    resp
}

/// The classic version string clients see, followed by Shoal's own.
pub const SWARM_VERSION: &str = "swarm/1.2.9";

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "<unknown>".to_string())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /version`.
pub async fn version(State(state): State<AppState>) -> Response {
    let mut v = json!({
        "Platform": {"Name": "Docker Swarm - Community"},
        "Version": SWARM_VERSION,
        "ApiVersion": MAX_API.to_string(),
        "MinAPIVersion": MIN_API.to_string(),
        "GitCommit": concat!("shoal-", env!("CARGO_PKG_VERSION")),
        "GoVersion": "rust",
        "Os": std::env::consts::OS,
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "<unknown>",
    });
    if state.opts.experimental {
        v["Experimental"] = Value::Bool(true);
    }
    json_response(StatusCode::OK, &v)
}

/// `GET /info`.
pub async fn info(
    State(state): State<AppState>,
    Extension(tree): Extension<Arc<InfoTree>>,
) -> Response {
    let cluster = &state.cluster;
    let maps = cluster.engines();
    let overcommit = cluster.opts.overcommit;
    let parts = tree.parts(maps.all(), overcommit);
    let (tree, totals) = tree.get(parts, maps.validated.len());

    // Role (and Primary on a replica) come from the election when replication is on.
    let mut rows: Vec<[String; 2]> = match &state.replication {
        Some(replication) => replication.status_rows(),
        None => vec![["Role".into(), "primary".into()]],
    };
    rows.extend([
        ["Strategy".into(), cluster.opts.strategy.clone()],
        ["Filters".into(), cluster.opts.filters.join(", ")],
        ["Nodes".into(), maps.all().count().to_string()],
    ]);
    let (containers, running, paused, stopped, images) = (
        totals.containers,
        totals.running,
        totals.paused,
        totals.stopped,
        totals.images,
    );
    let (ncpu, memtotal) = (totals.cpus, totals.memory);
    let name = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let env = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_uppercase()))
            .unwrap_or_default()
    };
    let now: chrono::DateTime<chrono::Utc> = SystemTime::now().into();
    let body = json!({
        "ID": "",
        "Containers": containers,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "",
        "DriverStatus": null,
        "Plugins": {"Volume": null, "Network": null, "Authorization": null, "Log": null},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": false,
        "IPv4Forwarding": true,
        "BridgeNfIptables": true,
        "BridgeNfIp6tables": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": true,
        "NGoroutines": 0,
        "SystemTime": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "",
        "CgroupDriver": "",
        "NEventsListener": cluster.bus().listeners(),
        "KernelVersion": kernel_version(),
        "OperatingSystem": std::env::consts::OS,
        "OSVersion": "",
        "OSType": "",
        "Architecture": arch(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": null,
        "NCPU": ncpu,
        "MemTotal": memtotal,
        "GenericResources": null,
        "DockerRootDir": "",
        "HttpProxy": env("http_proxy"),
        "HttpsProxy": env("https_proxy"),
        "NoProxy": env("no_proxy"),
        "Name": name,
        "Labels": null,
        "ExperimentalBuild": state.opts.experimental,
        "ServerVersion": SWARM_VERSION,
        "Runtimes": null,
        "DefaultRuntime": "",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "", "ControlAvailable": false,
                  "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": null,
        "Warnings": null,
    });
    // The node tree is most of the body at scale: serialise it directly and splice it in
    // rather than building a JSON value of it first.
    let mut out = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut status = b"{\"SystemStatus\":".to_vec();
    let head = serde_json::to_vec(&rows).unwrap_or_else(|_| b"[]".to_vec());
    status.extend_from_slice(&head[..head.len() - 1]);
    status.extend_from_slice(&tree);
    status.push(b']');
    if out.len() > 2 {
        status.push(b',');
    }
    status.extend_from_slice(&out[1..]);
    out = status;
    out.push(b'\n');
    let mut resp = (StatusCode::OK, out).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Whether start-up validation was seen complete once: from then on engines that join later
/// never make the manager unready.
#[derive(Debug, Default)]
pub struct StartedOnce(AtomicBool);

/// Why this manager should get no requests now, if so: it is still validating the engines it
/// started with (some were never tried yet), or it is a replica that knows no primary.
fn readiness(state: &AppState, started: &StartedOnce) -> Result<(), String> {
    if !started.0.load(Ordering::Relaxed) {
        let tally = Tally::of(&state.cluster.engines());
        let untried = tally.total - tally.validated - tally.failing;
        if untried > 0 {
            return Err(format!(
                "This manager is still validating its engines at start-up ({} of {} validated, \
                 {untried} not tried yet)",
                tally.validated, tally.total
            ));
        }
        started.0.store(true, Ordering::Relaxed);
    }
    match &state.replication {
        Some(replication) => replication.readiness(),
        None => Ok(()),
    }
}

/// The routes answered from the manager's own state, sharing one [`InfoTree`].
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .method_not_allowed_fallback(no_such_route)
        .layer(Extension(Arc::new(InfoTree::default())))
        .layer(Extension(Arc::new(StartedOnce::default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::testing::call;
    use crate::scheduler::DEFAULT_FILTERS;

    #[tokio::test]
    async fn ping_answers_ok_with_the_headers_every_daemon_sends() {
        let get = call(Method::GET, "/_ping", "").await;
        assert_eq!((get.status, &get.body[..]), (StatusCode::OK, &b"OK"[..]));
        assert_eq!(get.headers["Api-Version"], MAX_API.to_string());
        assert_eq!(get.headers["Ostype"], "linux");
        assert_eq!(get.headers["Docker-Experimental"], "false");
        assert_eq!(
            get.headers[header::CACHE_CONTROL],
            "no-cache, no-store, must-revalidate"
        );
        let head = call(Method::HEAD, "/v1.24/_ping", "").await;
        assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0));
    }

    #[tokio::test]
    async fn ping_ready_is_503_while_the_engines_of_the_start_are_untried_but_not_for_later_ones() {
        use crate::api::testing::{answer, state_without_engines};
        // An engine that accepts connections and never answers stays untried.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let state = state_without_engines(None);
        let app = crate::api::server::app(state.clone());
        let ready = answer(app.clone(), request("/_ping?ready=1")).await;
        assert_eq!(ready.status, StatusCode::OK, "no engine to validate");
        state.cluster.add_engine(&address);
        let later = answer(app, request("/_ping?ready=1")).await;
        assert_eq!(later.status, StatusCode::OK, "an engine joining later");
        // A manager starting now, with an engine it has not tried yet.
        let app = crate::api::server::app(state);
        let not_ready = answer(app.clone(), request("/_ping?ready=1")).await;
        assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            not_ready.message().contains("still validating its engines"),
            "{}",
            not_ready.message()
        );
        let plain = answer(app, request("/_ping")).await;
        assert_eq!(
            (plain.status, &plain.body[..]),
            (StatusCode::OK, &b"OK"[..])
        );
        drop(listener);
    }

    #[tokio::test]
    async fn version_advertises_the_api_range_and_the_classic_version() {
        let answer = call(Method::GET, "/version", "").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
        let v = answer.json();
        assert_eq!(v["ApiVersion"], MAX_API.to_string());
        assert_eq!(v["MinAPIVersion"], MIN_API.to_string());
        assert_eq!(v["Version"], SWARM_VERSION);
        assert!(v.get("Experimental").is_none());
    }

    #[tokio::test]
    async fn info_without_nodes_counts_nothing_and_lists_no_node() {
        let answer = call(Method::GET, "/v1.41/info", "").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.ends_with(b"\n"));
        let v = answer.json();
        assert_eq!(
            v["SystemStatus"],
            json!([
                ["Role", "primary"],
                ["Strategy", "spread"],
                ["Filters", DEFAULT_FILTERS.join(", ")],
                ["Nodes", "0"],
            ])
        );
        for key in [
            "Containers",
            "ContainersRunning",
            "Images",
            "NCPU",
            "MemTotal",
        ] {
            assert_eq!(v[key], 0, "{key}");
        }
        assert_eq!(v["ServerVersion"], SWARM_VERSION);
    }
}
