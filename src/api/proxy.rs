//! Forwarding one request to one engine: method, path (with the engine's API version), query,
//! headers and body go up; status, headers and body come back, streamed as they arrive and never
//! buffered whole. Every forward feeds the engine's health record. Upgraded connections are
//! spliced by [`super::splice`], as the replica's relay to the primary is.
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderName, StatusCode};

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::state::{AppState, RequestedVersion};
use crate::cluster::engine::error_message;
use crate::cluster::transport::{boxed, empty};
use crate::cluster::{Engine, EngineError};

/// Headers that belong to one connection and are not forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::HOST,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
];

/// An engine's answer as the client's answer: status, end-to-end headers (the manager sets its
/// own `Api-Version` and `Server`), and the body streamed as it comes.
fn relay_response(resp: http::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(Coalesce::new(body)));
    *out.status_mut() = parts.status;
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(name) && name != "api-version" && name != header::SERVER {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

/// Data frames smaller than this are gathered with whatever else has already arrived.
const COALESCE_BELOW: usize = 16 * 1024;
/// Gathered frames are passed on once they reach this size.
const COALESCE_UP_TO: usize = 64 * 1024;

/// An engine's body passed on with small frames that are already there joined into one.
/// Engines flush every log line (`docker logs`, `/events`) as an HTTP chunk of its own; relayed
/// one by one, each costs a frame and a chunk header. Nothing waits for more data: what is
/// ready goes at once.
struct Coalesce<B: http_body::Body> {
    inner: B,
    /// A trailers frame or an error met while gathering, passed on next.
    held: Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>,
    ended: bool,
}

impl<B: http_body::Body<Data = bytes::Bytes>> Coalesce<B> {
    fn new(inner: B) -> Coalesce<B> {
        Coalesce {
            inner,
            held: None,
            ended: false,
        }
    }
}

impl<B> http_body::Body for Coalesce<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(held));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let mut first: Option<bytes::Bytes> = None;
        let mut gathered: Option<bytes::BytesMut> = None;
        loop {
            let big_first =
                gathered.is_none() && first.as_ref().is_some_and(|f| f.len() >= COALESCE_BELOW);
            if big_first || gathered.as_ref().is_some_and(|g| g.len() >= COALESCE_UP_TO) {
                break;
            }
            match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if first.is_none() => first = Some(data),
                    Ok(data) => {
                        let buf = gathered.get_or_insert_with(|| {
                            let mut b = bytes::BytesMut::with_capacity(COALESCE_UP_TO);
                            b.extend_from_slice(first.as_deref().unwrap_or_default());
                            b
                        });
                        buf.extend_from_slice(&data);
                    }
                    Err(trailers) => {
                        if first.is_none() {
                            return Poll::Ready(Some(Ok(trailers)));
                        }
                        this.held = Some(Ok(trailers));
                        break;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    if first.is_none() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    this.held = Some(Err(e));
                    break;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    if first.is_none() {
                        return Poll::Ready(None);
                    }
                    break;
                }
                Poll::Pending => {
                    if first.is_none() {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        let data = match gathered {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.held.is_some() {
            return http_body::SizeHint::default();
        }
        self.inner.size_hint()
    }
}

/// The URI of `path_and_query` on `engine`, at the version this request may use there.
pub fn engine_uri(engine: &Engine, version: RequestedVersion, path_and_query: &str) -> String {
    engine.uri(version.0, path_and_query)
}

/// Forwards `req` to `engine` at `path_and_query` and streams the answer back.
pub async fn forward(engine: &Engine, req: Request, path_and_query: &str) -> ApiResult<Response> {
    let version = RequestedVersion::of(req.extensions());
    let (parts, body) = req.into_parts();
    let mut builder = http::Request::builder()
        .method(parts.method)
        .uri(engine_uri(engine, version, path_and_query));
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(name) {
            builder = builder.header(name, value);
        }
    }
    let upstream = builder
        .body(boxed(body))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = engine.send(upstream).await.map_err(ApiError::from)?;
    Ok(relay_response(resp))
}

/// `GET`s a JSON document from `engine`; an engine error status comes back as that status.
pub async fn fetch_json(
    engine: &Engine,
    version: RequestedVersion,
    path_and_query: &str,
) -> ApiResult<Value> {
    let req = http::Request::builder()
        .uri(engine_uri(engine, version, path_and_query))
        .body(empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (status, body) = engine.call(req).await.map_err(ApiError::from)?;
    if !status.is_success() {
        return Err(EngineError::Status {
            status,
            message: error_message(&body),
        }
        .into());
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("invalid response from engine {}: {e}", engine.addr),
        )
    })
}

/// Relays an upgraded connection (attach, exec start, websocket attach) to `engine`: the
/// request goes up on a connection of its own; when the engine switches protocols, the client
/// gets the same `101` and then bytes are copied both ways as they come. When one side stops
/// sending, the other side's write half is closed and the other direction runs to its end, so
/// half-closes pass through. Anything but `101` is relayed as a normal response. The relay runs
/// on the state's tasks and ends at shutdown.
pub async fn hijack(
    state: &AppState,
    engine: &Engine,
    mut req: Request,
    path_and_query: &str,
) -> ApiResult<Response> {
    use crate::cluster::health::Outcome;
    let version = RequestedVersion::of(req.extensions());
    let client_upgrade = hyper::upgrade::on(&mut req);
    // Attach and exec start bodies are tiny; they are read whole before the hijack.
    let (parts, body) = super::limits::read_whole_body(req).await?;

    let uri: http::Uri = engine_uri(engine, version, path_and_query)
        .parse()
        .map_err(|e: http::uri::InvalidUri| ApiError::internal(e.to_string()))?;
    let stream = match engine.transport().connect_raw(&uri).await {
        Ok(s) => s,
        Err(e) => {
            let err = EngineError::Unreachable {
                url: format!("tcp://{}", engine.addr),
                detail: e.to_string(),
            };
            engine.record(Outcome::Unreachable(err.to_string()));
            return Err(err.into());
        }
    };
    // The engine switches protocols at once: the answer to an upgrade is bounded like any other.
    let limit = engine.call_timeout();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ApiError::internal(format!("engine handshake: {e}")))?;
    let stop = state.shutdown.clone();
    state.tasks.spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            _ = conn.with_upgrades() => {}
        }
    });
    let origin = match uri.path_and_query() {
        Some(pq) => pq.as_str().to_string(),
        None => "/".to_string(),
    };
    let mut builder = http::Request::builder().method(parts.method).uri(origin);
    for (name, value) in parts.headers.iter() {
        if name != header::HOST
            && name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
        {
            builder = builder.header(name, value);
        }
    }
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    builder = builder.header(
        header::HOST,
        if uri.scheme_str() == Some("unix") {
            "docker".to_string()
        } else {
            host
        },
    );
    let upstream = builder
        .body(http_body_util::Full::new(body))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = match tokio::time::timeout(limit, sender.send_request(upstream)).await {
        Ok(Ok(r)) => {
            engine.record(Outcome::Answered);
            r
        }
        Ok(Err(e)) => {
            return Err(ApiError::internal(format!("engine {}: {e}", engine.addr)));
        }
        Err(_) => return Err(engine.timed_out(limit).into()),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay_response(resp));
    }
    let engine_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in resp.headers().iter() {
        if name != "api-version" && name != header::SERVER {
            out.headers_mut().append(name, value.clone());
        }
    }
    state.tasks.spawn(super::splice::splice(
        client_upgrade,
        engine_upgrade,
        engine.addr.clone(),
        state.shutdown.clone(),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    /// A body whose frames arrive in the given groups: each group is ready at once, and the
    /// body is pending between groups.
    struct Groups {
        groups: std::collections::VecDeque<
            std::collections::VecDeque<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>,
        >,
    }

    impl http_body::Body for Groups {
        type Data = bytes::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>>
        {
            let Some(group) = self.groups.front_mut() else {
                return std::task::Poll::Ready(None);
            };
            if let Some(frame) = group.pop_front() {
                return std::task::Poll::Ready(Some(frame));
            }
            self.groups.pop_front();
            if self.groups.is_empty() {
                return std::task::Poll::Ready(None);
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    fn data(text: &str) -> Result<http_body::Frame<bytes::Bytes>, std::io::Error> {
        Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(
            text.as_bytes(),
        )))
    }

    #[tokio::test]
    async fn ready_small_frames_are_joined_and_nothing_waits_for_more() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-end", http::HeaderValue::from_static("1"));
        let groups = vec![
            vec![data("a"), data("b"), data("c")],
            vec![data("d")],
            vec![data("e"), Ok(http_body::Frame::trailers(trailers))],
        ];
        let body = Groups {
            groups: groups.into_iter().map(Into::into).collect(),
        };
        let mut body = Coalesce::new(body);
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            match frame.into_data() {
                Ok(d) => seen.push(String::from_utf8(d.to_vec()).unwrap()),
                Err(f) => seen.push(format!(
                    "trailers {}",
                    f.trailers_ref().unwrap()["x-end"].to_str().unwrap()
                )),
            }
        }
        assert_eq!(seen, ["abc", "d", "e", "trailers 1"]);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn big_frames_pass_as_they_are_and_errors_follow_the_data() {
        let big = "x".repeat(COALESCE_BELOW);
        let groups = vec![vec![
            data(&big),
            data("tail"),
            Err(std::io::Error::other("cut")),
        ]];
        let body = Groups {
            groups: groups.into_iter().map(Into::into).collect(),
        };
        let mut body = Coalesce::new(body);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), COALESCE_BELOW);
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"tail");
        assert!(body.frame().await.unwrap().is_err());
    }
}
