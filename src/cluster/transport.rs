//! The one pooled HTTP transport every engine connection goes through.
//!
//! A single hyper client (one connection pool keyed by scheme and authority) carries the control
//! plane (bollard's typed calls), the data plane (lists, inspects) and proxied requests to every
//! engine; long-lived streams (hijacked connections, log relays, each engine's events) take a
//! connection of their own from [`Transport::connect_raw`]. Engines are addressed as `http://host:port`, `https://host:port` or
//! `unix://<hex of the socket path>`; the connector below turns each into a stream. This module
//! owns no engine state.
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Error type carried by request bodies sent through the transport.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Request body type of the transport: anything that streams bytes.
pub type TransportBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long establishing a connection to an engine may take before it counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An engine connection idle this long is probed with TCP keepalives, plus a whole number of
/// seconds below [`KEEPALIVE_SPREAD`] drawn per connection…
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// …so that connections whose last data came at the same moment (every events stream after an
/// event sent to all engines at once) are not probed all in the same instant: five thousand
/// probes at once overflow the kernel's loopback backlog (1,000 packets by default) and the
/// connections whose probes were dropped three times broke with ETIMEDOUT, in one burst of
/// reconnects and re-lists. Spread over 15 s, a second's slot holds a fifteenth of them.
const KEEPALIVE_SPREAD: u64 = 15;
/// Probes then come this often…
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// …and closed after this many unanswered probes: a half-open connection to a host that
/// vanished (an events stream, a `logs -f`) ends within about 75 s instead of never.
const KEEPALIVE_PROBES: u32 = 3;
/// Data sent to an engine that stays unacknowledged this long breaks the connection (keepalives
/// only probe idle connections).
const USER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an idle engine connection stays in the pool unless the manager says otherwise
/// ([`Transport::with_pool_idle`]): past the default longest refresh interval (60 s), so that
/// each refresh finds the connection the previous one used. Reconnecting at every refresh
/// measured half of a steady refresh's CPU (5,000 engines: 4.0% of a core against 2.0%),
/// keeping the connection ~27 KB per engine.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `host:port` over plain TCP, or over TLS when the transport has a client TLS config.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `host:port`, `tcp://host:port` or `unix:///path`.
    pub fn parse(addr: &str) -> Endpoint {
        if let Some(path) = addr.strip_prefix("unix://") {
            Endpoint::Unix(PathBuf::from(path))
        } else {
            Endpoint::Tcp(addr.strip_prefix("tcp://").unwrap_or(addr).to_string())
        }
    }
}

/// The shared, cloneable transport.
#[derive(Clone)]
pub struct Transport {
    client: Client<Connector, TransportBody>,
    tls: Option<TlsConnector>,
}

impl Transport {
    /// Builds the transport; with `tls`, every TCP engine is reached over TLS with that config.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Transport {
        Transport::with_pool_idle(tls, POOL_IDLE_TIMEOUT)
    }

    /// [`Transport::new`], with idle connections closed after `idle` (the manager passes its
    /// longest refresh interval and a margin, so that refreshes reuse their connection).
    pub fn with_pool_idle(tls: Option<Arc<rustls::ClientConfig>>, idle: Duration) -> Transport {
        let tls = tls.map(TlsConnector::from);
        let connector = Connector { tls: tls.clone() };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            // Without a timer the pool only notices an expired connection when it is asked for
            // one to the same engine: idle engines would keep theirs for ever.
            .pool_timer(hyper_util::rt::TokioTimer::new())
            // The refresh loop makes one call at a time, so one idle connection per engine
            // serves it and most proxied requests. Each kept connection costs about 27 KB
            // (its task, hyper's read and header buffers, its request channel), times a
            // thousand engines (measured: a second one adds 40 MB at 1,000 engines without
            // making creates faster).
            .pool_max_idle_per_host(1)
            .build(connector);
        Transport { client, tls }
    }

    /// The base URI (scheme and authority, no path) under which `endpoint` is reached.
    pub fn base_uri(&self, endpoint: &Endpoint) -> String {
        match endpoint {
            Endpoint::Tcp(addr) if self.tls.is_some() => format!("https://{addr}"),
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Unix(path) => {
                format!("unix://{}", hex_encode(path.as_os_str().as_encoded_bytes()))
            }
        }
    }

    /// Sends one request. The URI must start with a base URI from [`Transport::base_uri`].
    pub async fn request(
        &self,
        req: http::Request<TransportBody>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }
}

impl Transport {
    /// Opens a connection of its own to the engine behind `uri` (for hijacked and long-lived
    /// streams, which must not go back to the pool).
    pub async fn connect_raw(&self, uri: &Uri) -> io::Result<EngineStream> {
        connect(uri, self.tls.as_ref()).await
    }
}

/// Boxes any body whose errors convert into [`BoxError`].
pub fn boxed<B>(body: B) -> TransportBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty request body.
pub fn empty() -> TransportBody {
    boxed(http_body_util::Empty::<Bytes>::new())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Opens a raw stream to the engine behind a base URI (used by the pooled client and by
/// connection hijacking, which needs a stream of its own).
pub async fn connect(uri: &Uri, tls: Option<&TlsConnector>) -> io::Result<EngineStream> {
    let fut = async {
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri
            .authority()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "engine URI has no host"))?;
        match scheme {
            "unix" => {
                let bytes = hex_decode(authority.as_str()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "bad unix socket address")
                })?;
                let path = PathBuf::from(String::from_utf8_lossy(&bytes).into_owned());
                Ok(EngineStream::Unix(UnixStream::connect(path).await?))
            }
            "http" | "https" => {
                let host = authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let port = authority
                    .port_u16()
                    .unwrap_or(if scheme == "https" { 443 } else { 80 });
                let tcp = TcpStream::connect((host, port)).await?;
                let _ = tcp.set_nodelay(true);
                detect_dead_peers(&tcp);
                if scheme == "https" {
                    let tls = tls.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "TLS is not configured")
                    })?;
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    Ok(EngineStream::Tls(Box::new(tls.connect(name, tcp).await?)))
                } else {
                    Ok(EngineStream::Tcp(tcp))
                }
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported engine scheme {other:?}"),
            )),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connection timed out",
        )),
    }
}

/// Turns on TCP keepalive and the user timeout, so a connection to a host that is gone (no
/// reset ever comes) is noticed. Best effort: a socket that refuses the options still works.
fn detect_dead_peers(tcp: &TcpStream) {
    let socket = socket2::SockRef::from(tcp);
    let idle = KEEPALIVE_IDLE + Duration::from_secs(rand::random::<u64>() % KEEPALIVE_SPREAD);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "Cannot set TCP keepalive on an engine connection");
    }
    if let Err(e) = socket.set_tcp_user_timeout(Some(USER_TIMEOUT)) {
        tracing::debug!(error = %e, "Cannot set the TCP user timeout on an engine connection");
    }
}

/// The connector behind the pooled client.
#[derive(Clone)]
pub struct Connector {
    tls: Option<TlsConnector>,
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<EngineStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move { connect(&uri, tls.as_ref()).await.map(TokioIo::new) })
    }
}

/// A connection to an engine over TCP, TLS or a unix socket.
pub enum EngineStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// A stream relayed in bulk (the last read was large) is read once a tick, whatever has come
/// in since, instead of at each arrival: an engine writes an exec's output 32 KiB at a time and
/// flushes every log line on its own, and waking for each of them cost a relaying manager more
/// CPU than moving the bytes. Bytes of a bulk stream wait at most a tick (1 to 2 ms with tokio's
/// timer); a stream that slows down is read at each arrival again.
pub const BULK_TICK: Duration = Duration::from_millis(1);

impl EngineStream {
    /// Reads into `buf` (at least a byte, or 0 at the end). With `bulk`, over tcp and unix
    /// sockets, first waits a [`BULK_TICK`] and takes whatever has come in since, waiting for
    /// the next arrival only if nothing has.
    pub async fn read_relayed(
        &mut self,
        buf: &mut bytes::BytesMut,
        bulk: bool,
    ) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        if bulk && !matches!(self, EngineStream::Tls(_)) {
            tokio::time::sleep(BULK_TICK).await;
            let taken = match self {
                EngineStream::Tcp(s) => s.try_read_buf(buf),
                EngineStream::Unix(s) => s.try_read_buf(buf),
                EngineStream::Tls(_) => Err(io::ErrorKind::WouldBlock.into()),
            };
            match taken {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        self.read_buf(buf).await
    }
}

impl Connection for EngineStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for EngineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            EngineStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EngineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            EngineStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            EngineStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Tls(s) => Pin::new(s).poll_flush(cx),
            EngineStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            EngineStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An error and its sources, joined with `: ` (a source whose text the message already holds is
/// not repeated): what a connection failure says, down to the operating system's reason.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bulk_read_takes_what_came_in_and_still_waits_for_the_next_arrival() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut stream = EngineStream::Tcp(client.unwrap());
        let mut writer = server.unwrap().0;
        let bound = Duration::from_secs(30);
        let mut buf = bytes::BytesMut::with_capacity(64 << 10);

        writer.write_all(&[7u8; 40_000]).await.unwrap();
        let mut got = 0;
        while got < 40_000 {
            got += tokio::time::timeout(bound, stream.read_relayed(&mut buf, true))
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(buf.len(), 40_000);

        // Nothing there at the tick: the read waits for the next bytes instead of ending.
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.write_all(b"late").await.unwrap();
            writer
        });
        buf.clear();
        let n = tokio::time::timeout(bound, stream.read_relayed(&mut buf, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"late");

        // The end of the stream is a read of 0, in bulk or not.
        drop(late.await.unwrap());
        buf.clear();
        let n = tokio::time::timeout(bound, stream.read_relayed(&mut buf, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn keepalive_probes_start_at_a_delay_drawn_per_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut delays = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let (client, _server) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let client = client.unwrap();
            detect_dead_peers(&client);
            let socket = socket2::SockRef::from(&client);
            assert!(socket.keepalive().unwrap());
            let idle = socket.tcp_keepalive_time().unwrap();
            assert!(idle >= KEEPALIVE_IDLE, "{idle:?}");
            assert!(
                idle < KEEPALIVE_IDLE + Duration::from_secs(KEEPALIVE_SPREAD),
                "{idle:?}"
            );
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
            assert_eq!(socket.tcp_user_timeout().unwrap(), Some(USER_TIMEOUT));
            delays.insert(idle);
        }
        // Forty connections drawing from fifteen delays: all alike would mean no spread.
        assert!(delays.len() > 1, "{delays:?}");
    }

    #[test]
    fn unix_paths_round_trip_through_the_authority() {
        let t = Transport::new(None);
        let base = t.base_uri(&Endpoint::Unix(PathBuf::from("/run/docker.sock")));
        let uri: Uri = format!("{base}/_ping").parse().unwrap();
        let bytes = hex_decode(uri.authority().unwrap().as_str()).unwrap();
        assert_eq!(bytes, b"/run/docker.sock");
    }

    #[test]
    fn endpoints_parse_tcp_and_unix_forms() {
        assert_eq!(
            Endpoint::parse("1.2.3.4:2375"),
            Endpoint::Tcp("1.2.3.4:2375".into())
        );
        assert_eq!(Endpoint::parse("tcp://h:1"), Endpoint::Tcp("h:1".into()));
        assert_eq!(
            Endpoint::parse("unix:///x.sock"),
            Endpoint::Unix("/x.sock".into())
        );
    }
}
