//! The HTTP side: the router, the layer every request passes (API version prefix, headers,
//! CORS), and serving on bound tcp and unix listeners until shutdown.
//!
//! The library never binds on its own initiative: [`bind`] turns `-H` addresses into listeners
//! and [`serve`] takes those and a shutdown future, so tests can bind port 0.
use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};

use super::error::ApiError;
use super::version::{split_version_prefix, ApiVersion, MAX_API, MIN_API};
use super::{containers, exec, images, networks, system, volumes};
use crate::cluster::Cluster;

/// Options of the API server.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// `--api-enable-cors`.
    pub cors: bool,
    /// `--experimental`.
    pub experimental: bool,
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub cluster: Arc<Cluster>,
    pub opts: Arc<ApiOptions>,
    /// Cancelled when the manager shuts down; ends long streams such as `/events`.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// With `--replication`: the election, which sends a replica's requests to the primary.
    pub replication: Option<Arc<crate::leadership::Leadership>>,
    /// The last `/info` node tree, reused while no engine changed.
    pub info: Arc<system::InfoTree>,
}

/// The API version a request asked for (its `/vX.Y` prefix), or `None` without a prefix.
#[derive(Debug, Clone, Copy)]
pub struct RequestedVersion(pub Option<ApiVersion>);

impl RequestedVersion {
    /// The version to use towards an engine that supports up to `engine`.
    pub fn for_engine(self, engine: ApiVersion) -> ApiVersion {
        self.0.unwrap_or(MAX_API).min(engine)
    }
}

/// Builds the whole application: routes plus the outer layer.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/containers/json", get(containers::list))
        .route("/containers/ps", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route(
            "/containers/{*rest}",
            get(containers::get_route)
                .head(containers::archive_route)
                .put(containers::archive_route)
                .post(containers::post_route)
                .delete(containers::delete_route),
        )
        .route("/exec/{*rest}", get(exec::get_route).post(exec::post_route))
        .merge(images::routes())
        .merge(networks::routes())
        .merge(volumes::routes())
        .merge(super::build::routes())
        .merge(super::prune::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state.clone());
    // The prefix must be stripped before routing, so this layer wraps the router from outside.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, outer_layer))
}

async fn not_found(method: Method) -> Response {
    if method == Method::OPTIONS {
        // Only reached with CORS off: the outer layer answers OPTIONS when CORS is on.
        return ApiError::no_route().into_response();
    }
    ApiError::no_route().into_response()
}

/// Strips and checks the `/vX.Y` prefix, answers CORS pre-flight, and adds the headers every
/// Docker daemon sends.
async fn outer_layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // A replica relays the request untouched (prefix, headers, upgrades): the primary answers.
    if let Some(replication) = &state.replication {
        match replication.route(&path).await {
            crate::leadership::Route::Local => {}
            crate::leadership::Route::Primary(primary) => {
                return replication.relay(&primary, req).await;
            }
            crate::leadership::Route::Unavailable(message) => {
                return finish(&state, ApiError::internal(message).into_response());
            }
        }
    }
    if let Some(clean) = cleaned_path(&path) {
        let location = match req.uri().query() {
            Some(q) => format!("{clean}?{q}"),
            None => clean,
        };
        let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return finish(&state, resp);
    }
    let (version, rest) = split_version_prefix(&path);
    let requested = match version {
        None => None,
        Some(text) => match text.parse::<ApiVersion>() {
            Ok(v) if v < MIN_API => {
                return finish(
                    &state,
                    ApiError::bad_request(format!(
                        "client version {v} is too old. Minimum supported API version is {MIN_API}, please upgrade your client to a newer version"
                    ))
                    .into_response(),
                )
            }
            Ok(v) if v > MAX_API => {
                return finish(
                    &state,
                    ApiError::bad_request(format!(
                        "client version {v} is too new. Maximum supported API version is {MAX_API}"
                    ))
                    .into_response(),
                )
            }
            Ok(v) => Some(v),
            Err(()) => {
                return finish(
                    &state,
                    ApiError::bad_request(format!("invalid API version: {text}")).into_response(),
                )
            }
        },
    };
    if version.is_some() {
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        if let Ok(uri) = new_uri.parse() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(RequestedVersion(requested));
    if state.opts.cors && req.method() == Method::OPTIONS {
        return finish(&state, StatusCode::OK.into_response());
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let resp = next.run(req).await;
    tracing::debug!(%method, path = %path, status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "Request served");
    finish(&state, resp)
}

/// The cleaned form of a path with empty, `.` or `..` segments, or `None` when already clean.
fn cleaned_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let unclean = segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last));
    if !unclean {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for s in segments {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Some(format!("/{}", out.join("/")))
}

fn finish(state: &AppState, mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert("Api-Version", HeaderValue::from_static(MAX_API_STR));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert(
        "Docker-Experimental",
        HeaderValue::from_static(if state.opts.experimental {
            "true"
        } else {
            "false"
        }),
    );
    headers.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Shoal/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    if state.opts.cors {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Origin, X-Requested-With, Content-Type, Accept"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, PUT, OPTIONS, HEAD"),
        );
    }
    resp
}

/// [`MAX_API`] as a header value.
const MAX_API_STR: &str = "1.47";

/// A bound listener.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    /// Where it listens, as `tcp://ip:port` or `unix:///path`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

/// Binds one `-H` address (`tcp://host:port` or `unix:///path`).
pub async fn bind(addr: &str) -> Result<Listener, String> {
    if let Some(path) = addr.strip_prefix("unix://") {
        let path = std::path::PathBuf::from(path);
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| format!("listen unix {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        return Ok(Listener::Unix(listener, path));
    }
    let hostport = addr.strip_prefix("tcp://").unwrap_or(addr);
    let listener = tokio::net::TcpListener::bind(hostport).await.map_err(|e| {
        let mut msg = format!("listen tcp {hostport}: {e}");
        if e.kind() == std::io::ErrorKind::AddrInUse && hostport.contains(":2375") {
            msg.push_str(": is Docker already running on this machine? Try using a different port");
        }
        msg
    })?;
    Ok(Listener::Tcp(listener))
}

/// Serves `app` on `listener` until `shutdown` completes; with `tls`, every connection is a TLS
/// connection first (unix sockets included, as in the classic).
pub async fn serve(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    if let Some(tls) = tls {
        return serve_tls(listener, app, shutdown, tls).await;
    }
    match listener {
        Listener::Tcp(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
        Listener::Unix(l, path) => {
            let r = axum::serve(l, app).with_graceful_shutdown(shutdown).await;
            let _ = std::fs::remove_file(path);
            r
        }
    }
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve_tls(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let accepted: std::io::Result<Box<dyn Stream>> = tokio::select! {
            _ = &mut shutdown => break,
            r = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        Box::new(s) as Box<dyn Stream>
                    }),
                    Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Stream>),
                }
            } => r,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls_stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .http1_only()
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls_stream), service)
                .await
            {
                tracing::debug!(error = %e, "Connection ended with an error");
            }
        });
    }
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A byte stream a client connected over.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclean_paths_are_cleaned() {
        assert_eq!(cleaned_path("/info"), None);
        assert_eq!(cleaned_path("/containers/json"), None);
        assert_eq!(cleaned_path("//info").as_deref(), Some("/info"));
        assert_eq!(cleaned_path("/a/../info").as_deref(), Some("/info"));
        assert_eq!(cleaned_path("/./info").as_deref(), Some("/info"));
    }

    #[test]
    fn the_header_constant_matches_the_advertised_version() {
        assert_eq!(MAX_API_STR, MAX_API.to_string());
    }
}
