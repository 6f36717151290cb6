//! Splicing an upgraded client connection to an upgraded upstream one (an engine for attach,
//! exec and BuildKit sessions; the primary manager for a replica's relay): bytes both ways, with
//! half-closes passed through. It knows nothing of requests, engines or the election.
//!
//! When both connections are plain TCP or unix sockets, the bytes go from one socket to the
//! other through a pipe with `splice(2)` and never enter this process; a TLS side, or a
//! connection that cannot be taken back from hyper, is copied through buffers instead.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

use tokio_util::either::Either;

use super::listener::{plain_socket, ClientIo, ClientSocket};
use crate::cluster::transport::{EngineStream, BULK_TICK};

/// The buffer of each direction of a connection copied through this process.
const SPLICE_BUFFER: usize = 64 << 10;

/// The most one `splice(2)` call moves; the pipe between the sockets holds what the kernel
/// gives it (64 KiB by default, [`BULK_PIPE`] in bulk), so this only bounds a single call.
const SPLICE_CHUNK: usize = 1 << 20;

/// A direction whose last read filled the default pipe (64 KiB) is moving bulk data: its pipe
/// is enlarged to this (the most an unprivileged process may ask for by default)…
const BULK_PIPE: usize = 1 << 20;
/// …and is read once a [`BULK_TICK`] instead of at each arrival (about every 64 KiB of an
/// exec's output), until a tick finds less than [`BULK_READ`]; the client too is then woken for
/// larger reads. A 256 MB exec through the manager took about 4,000 wake-ups and 0.26–0.31 s of
/// the manager's CPU; by ticks 0.18–0.23 s, and the client reading it was faster through the
/// manager than directly. Interactive streams (a shell's keystrokes and echoes) never fill a
/// pipe and are moved as they come.
/// A read at least this large counts as bulk.
const BULK_READ: usize = 64 << 10;

/// Once the client's connection and the one to `peer` (an engine, or the primary manager) have
/// both switched protocols, moves bytes both ways as they come until both directions end or
/// `stop`. When one side stops sending, the other side's write half is closed and the other
/// direction runs to its end, so half-closes pass through.
pub async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    peer: String,
    stop: CancellationToken,
) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        (c, u) => {
            tracing::debug!(%peer, client_ok = c.is_ok(), peer_ok = u.is_ok(), "Upgrade failed");
            return;
        }
    };
    let client = Side::<ClientIo>::of(client);
    let upstream = Side::<EngineStream>::of(upstream);
    let moved = tokio::select! {
        () = stop.cancelled() => return,
        moved = relay(client, upstream) => moved,
    };
    match moved {
        Ok(Moved { up, down, spliced }) => {
            tracing::debug!(%peer, up, down, spliced, "Upgraded stream ended")
        }
        Err(e) => tracing::debug!(%peer, error = %e, "Upgraded stream broke"),
    }
}

/// What a relay moved: bytes from the client (`up`) and to it (`down`), and whether the kernel
/// moved them.
struct Moved {
    up: u64,
    down: u64,
    spliced: bool,
}

/// One upgraded connection: taken back from hyper as the stream it was built on (with the bytes
/// hyper had already read past the switch), or left as hyper's when it cannot be.
enum Side<T> {
    Taken { io: T, read: Bytes },
    Opaque(Upgraded),
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Side<T> {
    fn of(upgraded: Upgraded) -> Side<T> {
        match upgraded.downcast::<TokioIo<T>>() {
            Ok(parts) => Side::Taken {
                io: parts.io.into_inner(),
                read: parts.read_buf,
            },
            Err(upgraded) => Side::Opaque(upgraded),
        }
    }

    /// The connection as a byte stream for the buffered copy, bytes already read first.
    fn into_stream(self) -> Prefixed {
        match self {
            Side::Taken { io, read } => Prefixed {
                head: read,
                io: Box::new(io),
            },
            Side::Opaque(upgraded) => Prefixed {
                head: Bytes::new(),
                io: Box::new(TokioIo::new(upgraded)),
            },
        }
    }
}

/// A socket the kernel can splice from and to, with tokio's readiness for it.
#[derive(Clone, Copy)]
enum Socket<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl Socket<'_> {
    fn of_client(socket: &ClientSocket) -> Socket<'_> {
        match socket {
            Either::Left(s) => Socket::Tcp(s),
            Either::Right(s) => Socket::Unix(s),
        }
    }

    fn of_engine(stream: &EngineStream) -> Option<Socket<'_>> {
        match stream {
            EngineStream::Tcp(s) => Some(Socket::Tcp(s)),
            EngineStream::Unix(s) => Some(Socket::Unix(s)),
            EngineStream::Tls(_) => None,
        }
    }

    async fn ready(self, interest: Interest) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.ready(interest).await.map(drop),
            Socket::Unix(s) => s.ready(interest).await.map(drop),
        }
    }

    fn try_io<R>(self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Socket::Tcp(s) => s.try_io(interest, f),
            Socket::Unix(s) => s.try_io(interest, f),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }

    /// Closes the write half: the peer reads end-of-stream. A peer already gone has nothing
    /// left to tell.
    fn shutdown_write(self) -> io::Result<()> {
        match socket2::SockRef::from(&self.fd()).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        }
    }

    /// Waits until the socket may take more bytes; `stall` bounds the wait.
    async fn writable(self, stall: Option<Duration>) -> io::Result<()> {
        let Some(limit) = stall else {
            return self.ready(Interest::WRITABLE).await;
        };
        match tokio::time::timeout(limit, self.ready(Interest::WRITABLE)).await {
            Ok(ready) => ready,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read for too long",
            )),
        }
    }

    /// Writes all of `bytes` with ordinary writes (the bytes hyper read past the switch).
    async fn write_all(self, mut bytes: &[u8], stall: Option<Duration>) -> io::Result<()> {
        while !bytes.is_empty() {
            self.writable(stall).await?;
            let written = self.try_io(Interest::WRITABLE, || {
                rustix::io::write(self.fd(), bytes).map_err(io::Error::from)
            });
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A pipe's reading and writing ends.
type Pipe = (OwnedFd, OwnedFd);

fn pipe() -> io::Result<Pipe> {
    use rustix::pipe::{pipe_with, PipeFlags};
    Ok(pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?)
}

/// Moves bytes both ways between the two connections: in the kernel when both are plain
/// sockets, through buffers otherwise (or when no descriptors are left for the two pipes).
async fn relay(client: Side<ClientIo>, upstream: Side<EngineStream>) -> io::Result<Moved> {
    if let (
        Side::Taken {
            io: client_io,
            read: client_read,
        },
        Side::Taken {
            io: upstream_io,
            read: upstream_read,
        },
    ) = (&client, &upstream)
    {
        if let (Some((client_socket, stall)), Some(upstream_socket)) =
            (plain_socket(client_io), Socket::of_engine(upstream_io))
        {
            match (pipe(), pipe()) {
                (Ok(up_pipe), Ok(down_pipe)) => {
                    let client_socket = Socket::of_client(client_socket);
                    // Writes to the client keep the listener's stall limit; the engine's
                    // connection has TCP's own timeouts.
                    let (up, down) = tokio::try_join!(
                        pump(client_socket, upstream_socket, client_read, up_pipe, None),
                        pump(
                            upstream_socket,
                            client_socket,
                            upstream_read,
                            down_pipe,
                            Some(stall)
                        ),
                    )?;
                    return Ok(Moved {
                        up,
                        down,
                        spliced: true,
                    });
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(error = %e, "No pipe for a hijacked stream; copying it");
                }
            }
        }
    }
    let mut client = client.into_stream();
    let mut upstream = upstream.into_stream();
    let (up, down) = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        SPLICE_BUFFER,
        SPLICE_BUFFER,
    )
    .await?;
    Ok(Moved {
        up,
        down,
        spliced: false,
    })
}

/// One direction of a spliced connection: `head` (bytes already read from `from`) first, then
/// everything `from` sends, through `pipe`, until `from` ends; then `to`'s write half is
/// closed. Returns the bytes moved.
async fn pump(
    from: Socket<'_>,
    to: Socket<'_>,
    head: &Bytes,
    (pipe_out, pipe_in): Pipe,
    stall: Option<Duration>,
) -> io::Result<u64> {
    use rustix::pipe::{splice, SpliceFlags};
    to.write_all(head, stall).await?;
    let mut moved = head.len() as u64;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let read =
        || splice(from.fd(), None, &pipe_in, None, SPLICE_CHUNK, flags).map_err(io::Error::from);
    // Bulk: the pipe was enlarged and reads come every tick instead of at each arrival.
    let mut bulk = false;
    // Whether the pipe was enlarged: not tried yet, or the answer (an unprivileged process past
    // its pipe quota keeps the default size and moves bytes as they come).
    let mut grown: Option<bool> = None;
    loop {
        // The pipe is empty here, so a read that would block is the socket's doing.
        let filled = if bulk {
            tokio::time::sleep(BULK_TICK).await;
            // Whatever has come in since the last tick, readiness or not.
            read()
        } else {
            from.ready(Interest::READABLE).await?;
            from.try_io(Interest::READABLE, read)
        };
        let mut pending = match filled {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                bulk = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        moved += pending as u64;
        // A read that filled the enlarged pipe left more behind: the next one is at once.
        bulk = (BULK_READ..BULK_PIPE).contains(&pending)
            && *grown.get_or_insert_with(|| {
                rustix::pipe::fcntl_setpipe_size(&pipe_in, BULK_PIPE)
                    .is_ok_and(|size| size >= BULK_PIPE)
            });
        // The pipe holds bytes here, so a write that would block is the socket's doing.
        while pending > 0 {
            to.writable(stall).await?;
            let drained = to.try_io(Interest::WRITABLE, || {
                splice(&pipe_out, None, to.fd(), None, pending, flags).map_err(io::Error::from)
            });
            match drained {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => pending -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    to.shutdown_write()?;
    Ok(moved)
}

/// A connection for the buffered copy: bytes already read from it first, then the connection.
struct Prefixed {
    head: Bytes,
    io: Box<dyn Stream>,
}

/// A byte stream the buffered copy can use.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of loopback TCP sockets.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Bounds every wait on the pump in these tests.
    const BOUND: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_pump_moves_bulk_then_a_few_bytes_then_the_end() {
        // writer -> from ==pump==> to -> reader
        let (mut writer, from) = tcp_pair().await;
        let (to, mut reader) = tcp_pair().await;
        let pump = tokio::spawn(async move {
            let moved = pump(
                Socket::Tcp(&from),
                Socket::Tcp(&to),
                &Bytes::from_static(b"head:"),
                pipe().unwrap(),
                Some(BOUND),
            )
            .await;
            (moved, from, to)
        });
        // Bulk: 8 MiB written as fast as the pump takes it (it switches to reading by ticks).
        let bulk: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let sent = bulk.clone();
        let write_bulk = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
            writer
        });
        let mut got = vec![0u8; 5 + bulk.len()];
        tokio::time::timeout(BOUND, reader.read_exact(&mut got))
            .await
            .expect("the bulk within the bound")
            .unwrap();
        assert_eq!(&got[..5], b"head:");
        assert!(got[5..] == bulk[..], "the bulk arrives intact");
        let mut writer = write_bulk.await.unwrap();

        // A pause, then a few bytes, as a shell's prompt after a long output: they come
        // through, not held back waiting for more.
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.write_all(b"$ ").await.unwrap();
        let mut prompt = [0u8; 2];
        tokio::time::timeout(BOUND, reader.read_exact(&mut prompt))
            .await
            .expect("the prompt within the bound")
            .unwrap();
        assert_eq!(&prompt, b"$ ");

        // The writer's end passes through as the reader's end of stream.
        drop(writer);
        let mut rest = Vec::new();
        tokio::time::timeout(BOUND, reader.read_to_end(&mut rest))
            .await
            .expect("the end within the bound")
            .unwrap();
        assert!(rest.is_empty());
        let (moved, _, _) = tokio::time::timeout(BOUND, pump).await.unwrap().unwrap();
        assert_eq!(moved.unwrap(), 5 + bulk.len() as u64 + 2);
    }
}
