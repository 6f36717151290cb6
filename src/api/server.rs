//! The HTTP side: the router and the layer every request passes (API version prefix, headers,
//! CORS, the body budget, errors in Docker's JSON form). Listening and connections are
//! [`super::listener`].
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};

use super::error::{in_json_form, no_such_route, ApiError};
use super::state::{AppState, RequestedVersion};
use super::version::{split_version_prefix, ApiVersion, MAX_API, MAX_API_STR, MIN_API};
use super::{containers, events, exec, images, info, networks, volumes};

/// Builds the whole application: routes plus the outer layer.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
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
        .merge(info::routes())
        .merge(events::routes())
        .merge(images::routes())
        .merge(networks::routes())
        .merge(volumes::routes())
        .merge(super::build::routes())
        .merge(super::prune::routes())
        .merge(super::swarm::routes())
        .route_layer(axum::middleware::from_fn(crate::metrics::tag_route))
        // OPTIONS reaches these only with CORS off: the outer layer answers it when CORS is on.
        .fallback(no_such_route)
        .method_not_allowed_fallback(no_such_route)
        .with_state(state.clone());
    // The prefix must be stripped before routing, so this layer wraps the router from outside.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, outer_layer))
        .layer(axum::middleware::from_fn(crate::metrics::count_requests))
}

/// Strips and checks the `/vX.Y` prefix, answers CORS pre-flight, and adds the headers every
/// Docker daemon sends.
async fn outer_layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // A replica relays the request untouched (prefix, headers, upgrades): the primary answers.
    if let Some(replication) = &state.replication {
        match replication.route(&path).await {
            super::replica::Route::Local => {}
            super::replica::Route::Primary(primary) => {
                match replication.relay(&primary, req).await {
                    super::replica::Relayed::Answer(response) => return response,
                    // Elected while the request was held: this manager serves it.
                    super::replica::Relayed::Local(held) => req = held,
                }
            }
            super::replica::Route::Unavailable(message) => {
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
    let lossy = lossy_utf8_path(rest);
    if version.is_some() || lossy.is_some() {
        let rest = lossy.as_deref().unwrap_or(rest);
        let new_uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        if let Ok(uri) = new_uri.parse() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(RequestedVersion(requested));
    req.extensions_mut().insert(state.opts.limits.body_budget());
    if state.opts.cors && req.method() == Method::OPTIONS {
        return finish(&state, StatusCode::OK.into_response());
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let resp = in_json_form(next.run(req).await, method == Method::HEAD).await;
    tracing::debug!(%method, path = %path, status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "Request served");
    finish(&state, resp)
}

/// `path` with every segment that percent-decodes to invalid UTF-8 decoded lossily (invalid
/// bytes become U+FFFD) and encoded again, or `None` when every segment is valid. dockerd
/// looks such names up as they are and answers "No such container: \u{fffd}"; the router would
/// refuse them, so they are made valid first.
fn lossy_utf8_path(path: &str) -> Option<String> {
    use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
    /// What cannot stand unescaped inside one path segment (non-ASCII is always escaped).
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let invalid = |segment: &&str| {
        std::str::from_utf8(&percent_decode_str(segment).collect::<Vec<u8>>()).is_err()
    };
    if !path.split('/').any(|segment| invalid(&segment)) {
        return None;
    }
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| {
            if invalid(&segment) {
                let decoded: Vec<u8> = percent_decode_str(segment).collect();
                utf8_percent_encode(&String::from_utf8_lossy(&decoded), SEGMENT).to_string()
            } else {
                segment.to_string()
            }
        })
        .collect();
    Some(segments.join("/"))
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
    fn invalid_utf8_in_a_path_segment_becomes_the_replacement_character() {
        assert_eq!(lossy_utf8_path("/containers/abc/json"), None);
        assert_eq!(lossy_utf8_path("/containers/%C3%A9t%C3%A9/json"), None);
        assert_eq!(
            lossy_utf8_path("/containers/%FF/json").as_deref(),
            Some("/containers/%EF%BF%BD/json")
        );
        // Only the broken segment changes; an escaped slash elsewhere stays escaped.
        assert_eq!(
            lossy_utf8_path("/images/a%2Fb/x%FFy").as_deref(),
            Some("/images/a%2Fb/x%EF%BF%BDy")
        );
    }
}
