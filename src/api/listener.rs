//! The listening sockets and the client connections on them: binding `-H` addresses, one accept
//! loop for tcp, unix and TLS, and the defences every connection gets (a header-read timeout,
//! HTTP/1.1 only, a cap on open connections, back-off when the process runs out of file
//! descriptors, graceful shutdown with a bound). What a request may cost once it is read is
//! [`super::limits`]; what it means is the router's business.
//!
//! The library never binds on its own initiative: [`bind`] turns `-H` addresses into listeners
//! and [`serve`] takes those and a shutdown future, so tests can bind port 0.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use super::limits::ClientLimits;

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

    async fn accept(&self) -> io::Result<ClientSocket> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Either::Left(s))
            }
            Listener::Unix(l, _) => Ok(Either::Right(l.accept().await?.0)),
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
        if e.kind() == io::ErrorKind::AddrInUse && hostport.contains(":2375") {
            msg.push_str(": is Docker already running on this machine? Try using a different port");
        }
        msg
    })?;
    Ok(Listener::Tcp(listener))
}

/// Raises the soft open-file limit to the hard one, as Go programs (the classic among them) do
/// at start-up, so that the connection cap derived from it is not needlessly low. Returns the
/// soft limit in force afterwards (`None`: unlimited).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one for open files (the kernel caps it), so
    // the soft limit stays where it is then.
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(error = %e, current, maximum, "Cannot raise the open-file limit");
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// How often at most each kind of listener warning is logged.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first pause after an accept failed for want of resources; it doubles up to
/// [`MAX_ACCEPT_PAUSE`] while accepts keep failing.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause between accepts that fail for want of resources.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The client connections all listeners may hold at once, shared by every [`serve`] call.
pub struct ConnectionGate {
    cap: usize,
    slots: Arc<Semaphore>,
    limits: ClientLimits,
    /// Connections closed at the cap since the last warning about it.
    refused: Mutex<Throttled>,
}

impl ConnectionGate {
    /// A gate for `limits`, whose cap is derived from `open_file_limit` when not set.
    pub fn new(limits: ClientLimits, open_file_limit: Option<u64>) -> Arc<ConnectionGate> {
        let cap = limits.connection_cap(open_file_limit);
        Arc::new(ConnectionGate {
            cap,
            slots: Arc::new(Semaphore::new(cap)),
            limits,
            refused: Mutex::new(Throttled::default()),
        })
    }

    /// The connection cap in force.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for a new connection, or `None` at the cap (which is logged now and then).
    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(closed) = refused.occurred(WARN_INTERVAL) {
            tracing::warn!(
                limit = self.cap,
                closed,
                "Client connection limit reached; closing new connections until some end"
            );
        }
        None
    }
}

/// Counts occurrences of something worth a warning and says when to log it: the first time,
/// then at most once per interval, with how many occurred since.
#[derive(Default)]
struct Throttled {
    last_logged: Option<Instant>,
    since: u64,
}

impl Throttled {
    /// Records one occurrence; `Some(count since the last log)` when it should be logged now.
    fn occurred(&mut self, interval: Duration) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self.last_logged.is_some_and(|t| now < t + interval) {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// Whether a failed accept means the process or system is out of something (descriptors,
/// memory, buffers): retrying at once would fail again, so the loop pauses.
fn out_of_resources(err: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(err),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM | Errno::NOBUFS)
    )
}

/// Serves `app` on `listener` until `shutdown` completes; with `tls`, every connection is a TLS
/// connection first (unix sockets included, as in the classic). At shutdown the listener is
/// closed at once, open connections finish their current request within the shutdown grace,
/// and whatever is left is closed.
pub async fn serve(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<Arc<rustls::ServerConfig>>,
    gate: Arc<ConnectionGate>,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // HTTP/1.1 only, and no version sniffing: Docker clients never speak HTTP/2 to a daemon,
    // and hyper-util's automatic detection waits for 24 bytes before any timeout applies. An
    // HTTP/2 preface ends the connection.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(gate.limits.header_read_timeout);
    let builder = Arc::new(builder);
    // Cancelled at shutdown: each connection finishes the request in flight, then closes.
    let closing = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut pause = FIRST_ACCEPT_PAUSE;
    let mut accept_failures = Throttled::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok(stream) => {
                pause = FIRST_ACCEPT_PAUSE;
                stream
            }
            Err(e) if out_of_resources(&e) => {
                if let Some(failures) = accept_failures.occurred(WARN_INTERVAL) {
                    tracing::warn!(error = %e, failures, pause_ms = pause.as_millis() as u64,
                        "Cannot accept connections; pausing between attempts");
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
                continue;
            }
            Err(e) => {
                // A connection that failed before it was accepted (reset, aborted): its own
                // problem, not the listener's.
                tracing::debug!(error = %e, "Accept failed");
                continue;
            }
        };
        let Some(slot) = gate.admit() else {
            // Closed unread: the client sees its connection closed or reset.
            continue;
        };
        let io = Admitted {
            stream,
            _slot: slot,
            stall_limit: gate.limits.write_stall_timeout,
            stalled: None,
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let closing = closing.clone();
        connections.spawn(async move {
            let io = match acceptor {
                None => Either::Left(io),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => Either::Right(Box::new(tls)),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "Connection ended with an error");
            }
        });
    }
    // Closing the listening socket first: new clients are refused while the others finish.
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
    drop(listener);
    closing.cancel();
    let drained = tokio::time::timeout(gate.limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::debug!(
            open = connections.len(),
            "Closing the connections still open after the shutdown grace"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// The socket a client connected over: TCP (left) or unix (right).
pub type ClientSocket = Either<tokio::net::TcpStream, tokio::net::UnixStream>;

/// A client connection as hyper serves it: plain (left) or TLS (right). An upgraded connection
/// (attach, exec) can be taken back from hyper as this type, so that its relay may move bytes
/// between the sockets themselves ([`super::splice`]).
pub type ClientIo = Either<Admitted, Box<tokio_rustls::server::TlsStream<Admitted>>>;

/// The socket under a plain (not TLS) client connection, and how long a write to it may stall
/// ([`ClientLimits::write_stall_timeout`]) before the connection is given up.
pub fn plain_socket(io: &ClientIo) -> Option<(&ClientSocket, Duration)> {
    match io {
        Either::Left(admitted) => Some((&admitted.stream, admitted.stall_limit)),
        Either::Right(_) => None,
    }
}

/// An accepted connection holding its slot under the cap: the slot is given back when the
/// stream is dropped, which for an upgraded connection (attach, exec) is when the relay ends,
/// not when hyper hands the stream over.
pub struct Admitted<S = ClientSocket> {
    stream: S,
    _slot: OwnedSemaphorePermit,
    /// [`ClientLimits::write_stall_timeout`].
    stall_limit: Duration,
    /// Set while writes to the client cannot proceed: fires when the stall has lasted too long.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Admitted<S> {
    /// Passes a write's result on, watching for a client that stopped reading: a write still
    /// pending after the stall limit fails the connection (hyper then closes it). The timer is
    /// polled with the same waker, so the connection is woken when it fires even though the
    /// socket never becomes writable again.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.stall_limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::debug!(stall = ?limit, "Client stopped reading; closing its connection");
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read for too long",
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_repeated_warning_is_logged_once_per_interval_with_a_count() {
        let mut t = Throttled::default();
        assert_eq!(t.occurred(WARN_INTERVAL), Some(1));
        assert_eq!(t.occurred(WARN_INTERVAL), None);
        assert_eq!(t.occurred(WARN_INTERVAL), None);
        tokio::time::advance(WARN_INTERVAL).await;
        assert_eq!(t.occurred(WARN_INTERVAL), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_off_after_the_stall_limit() {
        use tokio::io::AsyncWriteExt;
        let (ours, theirs) = tokio::io::duplex(1024);
        let slot = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let mut conn = Admitted {
            stream: ours,
            _slot: slot,
            stall_limit: Duration::from_secs(120),
            stalled: None,
        };
        // The client reads a little, then nothing more.
        conn.write_all(&[0; 1024]).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = conn.write_all(&[0; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(120));
        drop(theirs);
    }

    #[test]
    fn running_out_of_descriptors_or_memory_pauses_the_accept_loop() {
        use rustix::io::Errno;
        for errno in [Errno::MFILE, Errno::NFILE, Errno::NOMEM, Errno::NOBUFS] {
            assert!(out_of_resources(&io::Error::from_raw_os_error(
                errno.raw_os_error()
            )));
        }
        let aborted = io::Error::from_raw_os_error(Errno::CONNABORTED.raw_os_error());
        assert!(!out_of_resources(&aborted));
    }
}
