//! Support for handler tests that run in-process: the whole API ([`super::app`]) over a
//! cluster that has no engine, and one call through it with its answer collected. Built for
//! tests only; what needs a real engine stays in the integration tests under `tests/`.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::server::app;
use super::state::{ApiOptions, AppState};
use crate::cluster::transport::Transport;
use crate::cluster::{Cluster, ClusterOptions, EngineOptions};
use crate::scheduler::{Scheduler, DEFAULT_FILTERS};

/// The whole API over a cluster that has no engine at all.
pub(crate) fn app_without_engines() -> axum::Router {
    replicated_app_without_engines(None)
}

/// The same, routing by `replication` when given (a replicated manager).
pub(crate) fn replicated_app_without_engines(
    replication: Option<Arc<super::replica::Replication>>,
) -> axum::Router {
    app(state_without_engines(replication))
}

/// The state of an API over a cluster that has no engine yet (tests may add some), with
/// `replication` when given.
pub(crate) fn state_without_engines(
    replication: Option<Arc<super::replica::Replication>>,
) -> AppState {
    let opts = ClusterOptions {
        engine: EngineOptions {
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(60),
            failure_retry: 3,
            call_timeout: Duration::from_secs(30),
        },
        heartbeat: Duration::from_secs(60),
        overcommit: 0.05,
        strategy: "spread".into(),
        filters: DEFAULT_FILTERS.iter().map(|f| f.to_string()).collect(),
        experimental: false,
        refresh_on_node_filter: false,
        container_name_refresh_filter: None,
        create_retry: 0,
    };
    let scheduler = Scheduler::new("spread", &opts.filters).unwrap();
    let transport = Transport::new(None);
    AppState {
        cluster: Cluster::new(opts, transport, scheduler),
        opts: Arc::new(ApiOptions::default()),
        shutdown: Default::default(),
        tasks: Default::default(),
        replication,
    }
}

/// What the API answered to one call.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `message` of a Docker error body.
    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_string()
    }
}

/// Sends `method path` with `body` (as JSON when not empty) to an API without engines.
pub(crate) async fn call(method: Method, path: &str, body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    answer(app_without_engines(), request).await
}

/// Sends `request` to `app` and collects the answer.
pub(crate) async fn answer(app: axum::Router, request: Request<Body>) -> Answer {
    let resp = app.oneshot(request).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}
