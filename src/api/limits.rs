//! What one client may cost the manager: how long it may take to send its request headers, how
//! many connections all clients may hold at once, and how large and how slow a request body the
//! manager reads whole may be. This module owns those numbers and the one function that reads a
//! body within them; it does not accept connections (that is [`super::listener`]) and does not
//! cap bodies that are streamed on to an engine (build contexts, image loads and imports,
//! archive uploads), which only pass through.
use std::time::Duration;

use axum::extract::Request;
use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::{ApiError, ApiResult};

/// The limits a client connection and its requests are held to; see `docs/api.md` ("Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// How long a client may take to send a request's headers, counted from the moment the
    /// manager starts waiting for them (a new connection, or the end of the previous response
    /// on a kept-alive one). The connection is closed when it runs out.
    pub header_read_timeout: Duration,
    /// How many client connections may be open at once, over all listeners; `None` derives it
    /// from the open-file limit ([`ClientLimits::connection_cap`]). Connections over the cap
    /// are closed as soon as they are accepted.
    pub max_connections: Option<usize>,
    /// The largest request body the manager reads whole (JSON bodies of creates, exec,
    /// connects, attach). A larger declared `Content-Length` is refused with `413` before any
    /// of the body is read; a chunked body that grows past it gets `413` too.
    pub max_body_bytes: usize,
    /// How long reading such a body may take once the headers are in; `408` after that.
    pub body_read_timeout: Duration,
    /// How long open connections get to finish their requests at shutdown before they are
    /// closed.
    pub shutdown_grace: Duration,
    /// How long a client may leave the manager unable to write to it (it stopped reading, and
    /// the socket's buffers are full) before the connection is closed: an `/events` listener
    /// that never reads, a `docker logs -f` whose reader hung. What such a client holds is then
    /// given back instead of kept for as long as the client lives.
    pub write_stall_timeout: Duration,
}

/// File descriptors kept out of the derived connection cap for everything that is not a
/// client connection before the per-connection share: listeners, logs, discovery, the first
/// engine connections.
const RESERVED_FDS: u64 = 128;

/// The derived connection cap never goes below this, however low the open-file limit.
const MIN_DERIVED_CONNECTIONS: u64 = 16;

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: None,
            max_body_bytes: 16 << 20,
            body_read_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            write_stall_timeout: Duration::from_secs(120),
        }
    }
}

impl ClientLimits {
    /// The connection cap: [`ClientLimits::max_connections`], or half of the file descriptors
    /// left by the soft open-file limit after [`RESERVED_FDS`], since a proxied or hijacked
    /// request holds an engine connection for each client connection.
    pub fn connection_cap(&self, open_file_limit: Option<u64>) -> usize {
        if let Some(cap) = self.max_connections {
            return cap.max(1);
        }
        let Some(limit) = open_file_limit else {
            // No limit at all: the cap only guards memory then.
            return 1 << 20;
        };
        let derived = (limit.saturating_sub(RESERVED_FDS) / 2).max(MIN_DERIVED_CONNECTIONS);
        usize::try_from(derived).unwrap_or(usize::MAX)
    }

    /// The part of these limits each request carries to the handlers that read bodies.
    pub fn body_budget(&self) -> BodyBudget {
        BodyBudget {
            max_bytes: self.max_body_bytes,
            read_timeout: self.body_read_timeout,
        }
    }
}

/// How large and how slow a request body read whole may be; a request extension set by the
/// outer layer, so any handler can read its body within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyBudget {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

impl Default for BodyBudget {
    fn default() -> Self {
        ClientLimits::default().body_budget()
    }
}

/// Reads the whole body of `req` within its [`BodyBudget`]: `413` when the declared length or
/// the bytes received go over, `408` when it takes too long, `400` when the client's stream
/// breaks. The declared length is checked first, so an oversize body is refused unread.
pub async fn read_whole_body(req: Request) -> ApiResult<(http::request::Parts, Bytes)> {
    let budget = req
        .extensions()
        .get::<BodyBudget>()
        .copied()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is too large: the limit is {} bytes",
                budget.max_bytes
            ),
        )
    };
    // `Content-Length` sets the body's lower size bound before any of it is read.
    if body.size_hint().lower() > budget.max_bytes as u64 {
        return Err(too_large());
    }
    let read = Limited::new(body, budget.max_bytes).collect();
    match tokio::time::timeout(budget.read_timeout, read).await {
        Ok(Ok(collected)) => Ok((parts, collected.to_bytes())),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "timed out reading the request body after {} s",
                budget.read_timeout.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(body: Body, budget: BodyBudget) -> Request {
        let mut req = Request::new(body);
        req.extensions_mut().insert(budget);
        req
    }

    fn budget(max_bytes: usize) -> BodyBudget {
        BodyBudget {
            max_bytes,
            read_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_derived_cap_leaves_room_for_engine_connections() {
        let limits = ClientLimits::default();
        assert_eq!(limits.connection_cap(Some(256)), 64);
        assert_eq!(limits.connection_cap(Some(1024)), 448);
        assert_eq!(limits.connection_cap(Some(100)), 16);
        let fixed = ClientLimits {
            max_connections: Some(10),
            ..ClientLimits::default()
        };
        assert_eq!(fixed.connection_cap(Some(256)), 10);
    }

    #[tokio::test]
    async fn a_body_within_the_budget_is_read() {
        let (_, bytes) = read_whole_body(request(Body::from("{}"), budget(2)))
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"{}");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_budget_is_refused_unread() {
        // A body that would fail if read: only its declared size may be looked at.
        struct Declared;
        impl http_body::Body for Declared {
            type Data = Bytes;
            type Error = std::io::Error;
            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
                panic!("the body was read")
            }
            fn size_hint(&self) -> http_body::SizeHint {
                http_body::SizeHint::with_exact(100_000_000_000)
            }
        }
        let err = read_whole_body(request(Body::new(Declared), budget(16)))
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_streamed_body_growing_past_the_budget_is_refused() {
        let chunks = futures_util::stream::iter(
            (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789"))),
        );
        let err = read_whole_body(request(Body::from_stream(chunks), budget(25)))
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(err.message.contains("25 bytes"), "{}", err.message);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_times_out_with_408() {
        let stalled = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let err = read_whole_body(request(Body::from_stream(stalled), budget(16)))
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_TIMEOUT);
    }
}
