//! Every answer the manager shapes itself in Docker's JSON form: the one mapping of every
//! manager-made error to Docker's error body, JSON `{"message": …}` with the classic status
//! code (SPEC §5.13; clients print the message as `Error response from daemon: <message>`),
//! the one 404 for routes that do not exist, the plain-text rejections of the router turned
//! into that form, and [`json_response`] for the manager's own JSON answers. Handlers return
//! an [`ApiError`] or convert their module's error into one here; they do not build error
//! bodies themselves. This module must not look at requests or call engines.
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

use crate::cluster::create::CreateError;
use crate::cluster::fanout::NodeFailures;
use crate::cluster::EngineError;
use crate::scheduler::SchedulerError;

/// An error answered by the manager itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the client sent something invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: the named object does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: the manager or an engine failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The classic answer for routes that do not exist.
    pub fn no_route() -> ApiError {
        Self::not_found("404 page not found")
    }

    /// A call made on several engines of which some failed: every failure in the message;
    /// 500 when `some_succeeded`, else the status the failures share (see
    /// [`NodeFailures::status`]).
    pub fn from_failures(failures: &NodeFailures, some_succeeded: bool) -> ApiError {
        ApiError::new(failures.status(some_succeeded), failures.message())
    }
}

/// The route handler for every path and method the manager does not serve: the classic 404.
/// Wrong methods on known paths are unknown routes for the classic too (SPEC §5.2).
pub async fn no_such_route() -> ApiError {
    ApiError::no_route()
}

/// A JSON response with a trailing newline, as Docker's encoder writes it.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    json_text_response(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A response of JSON already written as text, with the trailing newline of [`json_response`].
pub fn json_text_response(status: StatusCode, mut body: Vec<u8>) -> Response {
    body.push(b'\n');
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        match err {
            EngineError::Status { status, message } => ApiError::new(status, message),
            timed_out @ EngineError::TimedOut { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, timed_out.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A scheduling failure: 400 when the client's request is malformed (an expression that does
/// not parse, a bad reschedule policy), else the classic 500 with the scheduler's text.
impl From<SchedulerError> for ApiError {
    fn from(err: SchedulerError) -> ApiError {
        if err.is_client_error() {
            ApiError::bad_request(err.to_string())
        } else {
            ApiError::internal(err.to_string())
        }
    }
}

/// A failed create: a name clash is 409, a malformed request 400, a request no node can take
/// the classic 500, and an engine's failure is answered as that failure.
impl From<CreateError> for ApiError {
    fn from(err: CreateError) -> ApiError {
        match err {
            CreateError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            CreateError::BadRequest(m) => ApiError::bad_request(m),
            CreateError::Scheduling(m) => ApiError::internal(m),
            CreateError::Engine(e) => ApiError::from(e),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The largest plain-text error body [`in_json_form`] rewrites; larger or unsized bodies are not
/// errors the router made and pass untouched.
const PLAIN_ERROR_LIMIT: usize = 64 << 10;

/// How long [`in_json_form`] waits for a plain-text error body. The router's own are in memory
/// and ready at once; this only bounds one relayed from an engine.
const PLAIN_ERROR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives an error answered in plain text (an extractor's or the router's rejection: bad path
/// parameters, a bad query, a JSON body of the wrong type) Docker's JSON form, keeping its
/// status and its text as the message. Answers that are already JSON, successes, answers to
/// `HEAD`, answers relayed from an engine and bodies larger than [`PLAIN_ERROR_LIMIT`] are
/// returned as they are.
pub async fn in_json_form(resp: Response, head: bool) -> Response {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let status = resp.status();
    if head || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    // Every Docker engine answer carries `Ostype` (the manager adds its own only after this):
    // what an engine said is relayed as it said it.
    let relayed = resp.headers().contains_key("ostype");
    let plain = !relayed
        && match resp.headers().get(header::CONTENT_TYPE) {
            None => true,
            Some(v) => v.as_bytes().starts_with(b"text/plain"),
        };
    let small = resp
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= PLAIN_ERROR_LIMIT as u64);
    if !plain || !small {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = match tokio::time::timeout(PLAIN_ERROR_WAIT, body.collect()).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_string(),
        _ => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (json_parts, json_body) = ApiError::new(status, message).into_response().into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::call;
    use http::Method;
    use http_body_util::BodyExt;

    async fn json_of(resp: Response) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_plain_text_rejection_becomes_docker_json_with_its_status() {
        let plain = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string",
        )
            .into_response();
        let resp = in_json_form(plain, false).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            json_of(resp).await["message"],
            "Failed to deserialize query string"
        );
    }

    #[tokio::test]
    async fn an_empty_error_gets_its_reason_as_the_message() {
        let resp = in_json_form(StatusCode::METHOD_NOT_ALLOWED.into_response(), false).await;
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(json_of(resp).await["message"], "Method Not Allowed");
    }

    #[tokio::test]
    async fn json_errors_successes_and_head_answers_pass_untouched() {
        let json = ApiError::not_found("No such container: x").into_response();
        assert_eq!(
            json_of(in_json_form(json, false).await).await["message"],
            "No such container: x"
        );
        let ok = in_json_form((StatusCode::OK, "OK").into_response(), false).await;
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let head = in_json_form(StatusCode::NOT_FOUND.into_response(), true).await;
        assert!(head.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[tokio::test]
    async fn a_path_no_route_serves_is_a_docker_json_404() {
        for path in ["/nosuch", "/v1.47/containers", "/images"] {
            let answer = call(Method::GET, path, "").await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
            assert_eq!(&answer.body[..], br#"{"message":"404 page not found"}"#);
            // The outer layer's headers are on router answers too.
            assert_eq!(answer.headers["Api-Version"], "1.47");
        }
    }

    #[tokio::test]
    async fn a_method_the_router_refuses_is_the_same_json_404() {
        for (method, path) in [
            (Method::POST, "/info"),
            (Method::DELETE, "/_ping"),
            (Method::PUT, "/events"),
            (Method::GET, "/containers/create"),
            (Method::PATCH, "/networks"),
            (Method::DELETE, "/build"),
        ] {
            let answer = call(method.clone(), path, "").await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(answer.message(), "404 page not found", "{method} {path}");
        }
    }

    #[tokio::test]
    async fn a_client_error_found_by_a_handler_keeps_its_status_in_json_form() {
        let answer = call(Method::GET, "/containers/json?filters={bad", "").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
        assert!(!answer.message().is_empty());
    }
}
