//! The one mapping of every manager-made error to Docker's error body: JSON `{"message": …}`
//! with the classic status code (SPEC §5.13). Docker clients print the message as
//! `Error response from daemon: <message>`.
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

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

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
