//! Calls made on a client's behalf: a request at the client's API version (the one rule of
//! [`crate::version::for_engine`], through [`Engine::uri`]) with the client's headers, sent
//! with its answer unread (streams) or read whole within the call's budget
//! ([`crate::cluster::budget`]: the call timeout, or 10 minutes for prunes). Fanned-out
//! routes call each engine through here; which engines take part is decided above.
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::super::transport::TransportBody;
use super::{error_message, Engine, EngineError};
use crate::version::ApiVersion;

impl Engine {
    /// Sends `method path_and_query` at the client's API version and returns the engine's
    /// answer, error statuses included, with the body unread (for streams).
    pub async fn send_at(
        &self,
        method: Method,
        requested: Option<ApiVersion>,
        path_and_query: &str,
        headers: &HeaderMap,
        body: TransportBody,
    ) -> Result<Response<Incoming>, EngineError> {
        self.send(self.request_at(method, requested, path_and_query, headers, body)?)
            .await
    }

    /// Sends `method path_and_query` at the client's API version and reads the whole (small)
    /// answer: the body on a success status, the engine's message as [`EngineError::Status`]
    /// otherwise. Bounded like every whole read ([`Engine::call`]).
    pub async fn call_at(
        &self,
        method: Method,
        requested: Option<ApiVersion>,
        path_and_query: &str,
        headers: &HeaderMap,
        body: TransportBody,
    ) -> Result<(StatusCode, Bytes), EngineError> {
        let req = self.request_at(method, requested, path_and_query, headers, body)?;
        let (status, bytes) = self.call(req).await?;
        if !status.is_success() {
            return Err(EngineError::Status {
                status,
                message: error_message(&bytes),
            });
        }
        Ok((status, bytes))
    }

    fn request_at(
        &self,
        method: Method,
        requested: Option<ApiVersion>,
        path_and_query: &str,
        headers: &HeaderMap,
        body: TransportBody,
    ) -> Result<Request<TransportBody>, EngineError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(self.uri(requested, path_and_query));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(body).map_err(|e| EngineError::Invalid {
            addr: self.addr.clone(),
            detail: e.to_string(),
        })
    }
}
