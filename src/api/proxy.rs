//! Forwarding one request to one engine: method, path (with the engine's API version), query,
//! headers and body go up; status, headers and body come back, streamed as they arrive and never
//! buffered whole. Every forward feeds the engine's health record. Container logs, which
//! engines send as one HTTP chunk per line, are read on a connection of their own and decoded
//! here, every read's chunks joined into one frame. Upgraded connections are spliced by
//! [`super::splice`], as the replica's relay to the primary is.
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderName, StatusCode};

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::state::{AppState, RequestedVersion};
use crate::cluster::engine::error_message;
use crate::cluster::raw_http::{self, ChunkDecoder};
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

/// Data frames smaller than this are gathered with whatever else is already there.
const COALESCE_BELOW: usize = 16 * 1024;
/// Gathered frames are passed on once they reach this size.
const COALESCE_UP_TO: usize = 64 * 1024;

/// An engine's body passed on with small frames that are already there joined into one.
/// Engines flush every log line (`docker logs`, `/events`) as an HTTP chunk of its own; relayed
/// one by one, each would cost the client a write, a chunk header and a wake-up of the task
/// serving it.
///
/// The engine connection hands its body over one frame at a time: it decodes the next chunk
/// from its buffer only after the previous one was taken, on a task of its own. So when the
/// body says "nothing yet" right after a frame, the next chunk is often already received and
/// merely not decoded. The relay then yields once to let that task run, and gathers what it
/// decoded; it goes on while every yield brings more, up to [`COALESCE_UP_TO`]. A yield that
/// brings nothing means the engine has sent nothing more: what was gathered goes at once, so
/// a line that arrives alone (`logs -f`) is passed on without waiting for the network.
///
/// Gathering reuses one buffer: once the frame made from it has been written and dropped, the
/// next gathering takes the same memory back.
struct Coalesce<B: http_body::Body> {
    inner: B,
    /// The first small frame of the next one passed on, kept as it is while it is alone.
    first: Option<bytes::Bytes>,
    /// Where the frames after `first` are joined to it.
    gathered: bytes::BytesMut,
    /// The relay has just yielded for the engine connection to decode more.
    yielded: bool,
    /// A trailers frame or an error met while gathering, passed on next.
    held: Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>,
    ended: bool,
}

impl<B: http_body::Body<Data = bytes::Bytes>> Coalesce<B> {
    fn new(inner: B) -> Coalesce<B> {
        Coalesce {
            inner,
            first: None,
            gathered: bytes::BytesMut::new(),
            yielded: false,
            held: None,
            ended: false,
        }
    }

    /// Bytes waiting to be passed on.
    fn waiting(&self) -> usize {
        self.first.as_ref().map_or(0, |f| f.len()) + self.gathered.len()
    }

    /// Adds a data frame to what waits.
    fn gather(&mut self, data: bytes::Bytes) {
        let Some(first) = self.first.as_ref() else {
            self.first = Some(data);
            return;
        };
        if self.gathered.is_empty() {
            // Takes back the memory of the last frame passed on if it is free again.
            self.gathered.reserve(COALESCE_UP_TO);
            self.gathered.extend_from_slice(first);
        }
        self.gathered.extend_from_slice(&data);
    }

    /// What waits, as one data frame.
    fn take(&mut self) -> http_body::Frame<bytes::Bytes> {
        let first = self.first.take().unwrap_or_default();
        if self.gathered.is_empty() {
            return http_body::Frame::data(first);
        }
        http_body::Frame::data(self.gathered.split().freeze())
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
        if this.first.is_none() {
            if let Some(held) = this.held.take() {
                return Poll::Ready(Some(held));
            }
            if this.ended {
                return Poll::Ready(None);
            }
        }
        loop {
            let waiting = this.waiting();
            let big_first = this.gathered.is_empty() && waiting >= COALESCE_BELOW;
            if big_first || waiting >= COALESCE_UP_TO {
                break;
            }
            match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.yielded = false;
                        this.gather(data);
                    }
                    Err(trailers) => {
                        this.held = Some(Ok(trailers));
                        break;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.held = Some(Err(e));
                    break;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    break;
                }
                Poll::Pending if waiting == 0 => return Poll::Pending,
                Poll::Pending if !this.yielded => {
                    // Runs again after the tasks already woken, the engine connection's
                    // among them; the inner body's waker is registered as well.
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
            }
        }
        this.yielded = false;
        if this.waiting() == 0 {
            this.first = None;
            return Poll::Ready(this.held.take());
        }
        Poll::Ready(Some(Ok(this.take())))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.held.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.first.is_some() || self.held.is_some() {
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
    if is_log_stream(req.method(), path_and_query) {
        let uri = engine_uri(engine, version, path_and_query);
        return relay_log_stream(engine, req, &uri).await;
    }
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

/// What one read from the engine's connection may take at most; one frame to the client each.
const STREAM_READ: usize = 64 * 1024;
/// A read of a log stream at least this large counts as bulk: the next is taken a tick later
/// ([`crate::cluster::transport::BULK_TICK`]) rather than at the next line's arrival.
const LOG_BULK_READ: usize = 16 * 1024;

/// Relays a log stream over a connection of its own, reading the engine's answer without
/// hyper's client: hyper hands a body over one HTTP chunk at a time, a task switch or two per
/// log line, which on a busy machine left `docker logs` through the manager at 70–80% of
/// direct. Here every read from the engine (up to [`STREAM_READ`] bytes, however many chunks)
/// is decoded at once and passed on as one frame, and a read that holds one line passes that
/// line on at once (`logs -f`). The answer head must come within the engine's call timeout
/// (without `follow`, as for any forwarded call); the body then runs as long as the client
/// reads it. The connection is the request's own (`Connection: close`) and is closed when the
/// client goes.
async fn relay_log_stream(engine: &Engine, req: Request, uri: &str) -> ApiResult<Response> {
    use crate::cluster::health::Outcome;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let uri: http::Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| ApiError::internal(e.to_string()))?;
    let mut stream = engine
        .transport()
        .connect_raw(&uri)
        .await
        .map_err(|e| unreachable(engine, e))?;
    let forwarded = req
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(name) && *name != header::CONTENT_LENGTH);
    let head = raw_http::get_head(&uri, forwarded);
    // The engine's answer starts within the call timeout, except for `follow`, where dockerd
    // may say nothing until the first line.
    let budget = engine.budget_of(&http::Request::get(uri.clone()).body(()).unwrap_or_default());
    let limit = budget.answer.unwrap_or(Duration::MAX);
    let answered = tokio::time::timeout(limit, async {
        stream.write_all(head.as_bytes()).await?;
        let mut buf = bytes::BytesMut::with_capacity(STREAM_READ);
        let head = raw_http::read_head(&mut stream, &mut buf, STREAM_READ).await?;
        Ok((head, buf))
    })
    .await;
    let (head, rest) = match answered {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(unreachable(engine, e)),
        Err(_) => return Err(engine.timed_out(limit).into()),
    };
    engine.record(Outcome::Answered);
    let (status, headers) = raw_http::parse_head(&head).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("invalid answer from engine {}", engine.addr),
        )
    })?;
    let chunked = raw_http::is_chunked(&headers);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = status;
    for (name, value) in headers.iter() {
        let dropped = HOP_BY_HOP.contains(name)
            || name == "api-version"
            || name == header::SERVER
            || name == "keep-alive"
            || (chunked && name == header::CONTENT_LENGTH);
        if !dropped {
            out.headers_mut().append(name, value.clone());
        }
    }
    let decoder = if chunked {
        Some(ChunkDecoder::default())
    } else {
        None
    };
    // (connection, bytes read and not decoded, decoder, ended, bulk)
    let state = (stream, rest, decoder, false, false);
    let body = futures_util::stream::unfold(
        state,
        |(mut stream, mut buf, mut decoder, ended, mut bulk)| async move {
            if ended {
                return None;
            }
            loop {
                let frame = match decoder.as_mut() {
                    Some(d) => match d.decode(&mut buf) {
                        Ok(frame) => frame,
                        Err(e) => return Some((Err(e), (stream, buf, decoder, true, bulk))),
                    },
                    None => buf.split().freeze(),
                };
                if !frame.is_empty() {
                    return Some((Ok(frame), (stream, buf, decoder, false, bulk)));
                }
                if decoder.as_ref().is_some_and(|d| d.done()) {
                    return None;
                }
                buf.reserve(STREAM_READ);
                let room = buf.capacity() - buf.len();
                match stream.read_relayed(&mut buf, bulk).await {
                    Err(e) => return Some((Err(e), (stream, buf, decoder, true, bulk))),
                    Ok(0) if decoder.is_some() => {
                        let e =
                            std::io::Error::other("engine closed the log stream before its end");
                        return Some((Err(e), (stream, buf, decoder, true, bulk)));
                    }
                    Ok(0) => return None,
                    // A read that filled the buffer left more behind: the next one is at once.
                    Ok(n) => bulk = n >= LOG_BULK_READ && n < room,
                }
            }
        },
    );
    *out.body_mut() = Body::from_stream(body);
    Ok(out)
}

/// Records that `engine` could not be reached on a connection of the request's own, and the
/// error the client gets.
fn unreachable(engine: &Engine, e: std::io::Error) -> ApiError {
    let err = EngineError::Unreachable {
        url: format!("tcp://{}", engine.addr),
        detail: e.to_string(),
    };
    engine.record(crate::cluster::health::Outcome::Unreachable(
        err.to_string(),
    ));
    err.into()
}

/// `GET /containers/{id}/logs`: the one stream engines send as one tiny HTTP chunk per line.
fn is_log_stream(method: &http::Method, path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or_default();
    method == http::Method::GET && path.starts_with("/containers/") && path.ends_with("/logs")
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
    let stream = engine
        .transport()
        .connect_raw(&uri)
        .await
        .map_err(|e| unreachable(engine, e))?;
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

    /// A body fed through a channel: pending, without waking anyone, until something is sent,
    /// as an engine connection is while the engine sends nothing.
    fn fed(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
    ) -> impl http_body::Body<Data = bytes::Bytes, Error = std::io::Error> + Unpin {
        http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|data| data.map(|d| Ok(http_body::Frame::data(d))))
        }))
    }

    #[tokio::test]
    async fn frames_decoded_while_the_relay_yields_are_joined() {
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
        assert_eq!(seen, ["abcde", "trailers 1"]);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_frame_that_arrives_alone_is_passed_on_without_waiting_for_more() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut body = Coalesce::new(fed(rx));
        let within = std::time::Duration::from_secs(10);
        let next = async |body: &mut Coalesce<_>| {
            let frame = tokio::time::timeout(within, body.frame()).await;
            let frame = frame.expect("a frame without waiting for more");
            frame.map(|f| f.unwrap().into_data().unwrap())
        };
        tx.send(bytes::Bytes::from_static(b"one\n")).unwrap();
        assert_eq!(next(&mut body).await.unwrap(), "one\n");
        tx.send(bytes::Bytes::from_static(b"two\n")).unwrap();
        tx.send(bytes::Bytes::from_static(b"three\n")).unwrap();
        assert_eq!(next(&mut body).await.unwrap(), "two\nthree\n");
        drop(tx);
        assert!(next(&mut body).await.is_none());
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

    #[test]
    fn only_container_logs_take_the_log_relay() {
        let get = http::Method::GET;
        assert!(is_log_stream(&get, "/containers/abc/logs?follow=1"));
        assert!(!is_log_stream(&http::Method::POST, "/containers/abc/logs"));
        assert!(!is_log_stream(&get, "/containers/abc/json"));
    }
}
