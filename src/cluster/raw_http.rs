//! Plain HTTP/1.1 over a connection of its own, without hyper's client: writing a `GET` head,
//! reading the answer head within a byte bound, and decoding the body (chunked, or read to the
//! end of the connection). The log relay and the events monitor use it for streams that run
//! long: hyper's client hands a body over one chunk at a time on a task of its own and keeps
//! two 8 KiB buffers per connection, while these streams are read here by the task that uses
//! them, with the buffers they need at the moment.
//!
//! It owns no connection and no engine state: callers open the stream
//! ([`super::transport::Transport::connect_raw`]), bound the waits and record the engine's
//! health. It must not know about API clients.
use std::io;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::transport::EngineStream;

/// The most an answer head (status line and headers) may take.
pub const MAX_HEAD: usize = 64 * 1024;

/// The longest chunk-size or trailer line accepted; a longer one is a broken stream.
pub const MAX_CHUNK_LINE: usize = 4096;

/// What the frame of decoded data reserves when it starts ([`ChunkDecoder::decode`]).
const FRAME_CAPACITY: usize = 64 * 1024;

/// What a [`BodyReader`] reads at once: an idle events stream holds no more than this (and
/// on tcp and unix sockets nothing at all while it waits).
pub const SMALL_READ: usize = 4 * 1024;

/// The head of a `GET` of `uri` on a connection that closes after the answer, with `headers`
/// after the host (values that are not text are left out).
pub fn get_head<'a>(
    uri: &Uri,
    headers: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
) -> String {
    let host = match uri.scheme_str() {
        Some("unix") => "docker".to_string(),
        _ => uri.authority().map(|a| a.to_string()).unwrap_or_default(),
    };
    let origin = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut head = format!("GET {origin} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

/// Reads from `stream` into `buf` until it holds a whole answer head, reserving `step` bytes
/// whenever `buf` is full; returns the head, and leaves in `buf` what came after it. A head
/// longer than [`MAX_HEAD`], or a connection closed before the head ended, is an error.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    step: usize,
) -> io::Result<BytesMut> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Ok(buf.split_to(end + 4));
        }
        if buf.len() >= MAX_HEAD {
            return Err(io::Error::other("answer head too large"));
        }
        if buf.capacity() == buf.len() {
            buf.reserve(step);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::Error::other("connection closed before an answer"));
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and headers of an HTTP/1.1 answer head (status line to the empty line).
pub fn parse_head(head: &[u8]) -> Option<(StatusCode, HeaderMap)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next()?.split(' ');
    if !status_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = StatusCode::from_bytes(status_line.next()?.as_bytes()).ok()?;
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    Some((status, headers))
}

/// Whether an answer with `headers` has a chunked body.
pub fn is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        })
}

/// Where a chunked body's decoding stands.
#[derive(Default)]
enum ChunkState {
    /// Before a chunk's size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last chunk, reading trailer lines (passed over).
    Trailers,
    /// The body has ended.
    Done,
}

/// Decodes HTTP/1.1 chunked bodies from a buffer of received bytes.
#[derive(Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    /// Data decoded in this call of [`ChunkDecoder::decode`].
    out: BytesMut,
}

impl ChunkDecoder {
    /// Whether the last chunk and the trailers have been read.
    pub fn done(&self) -> bool {
        matches!(self.state, ChunkState::Done)
    }

    /// Consumes what it can of `buf`; the data of every complete chunk found joined into one
    /// frame (empty if none yet).
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<bytes::Bytes> {
        let mut out = std::mem::take(&mut self.out);
        let decoded = self.decode_with(buf, |data| {
            if out.is_empty() {
                out.reserve(FRAME_CAPACITY);
            }
            out.extend_from_slice(data);
        });
        let frame = out.split().freeze();
        self.out = out;
        decoded.map(|()| frame)
    }

    /// Consumes what it can of `buf`, handing each piece of chunk data to `sink` as it is
    /// found, without copying it.
    pub fn decode_with(
        &mut self,
        buf: &mut BytesMut,
        mut sink: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let broken = |what: &str| io::Error::other(format!("broken chunked body: {what}"));
        loop {
            match self.state {
                ChunkState::Size | ChunkState::Trailers => {
                    let Some(end) = find(buf, b"\r\n") else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(broken("line too long"));
                        }
                        break;
                    };
                    let line = buf.split_to(end + 2);
                    let line = &line[..end];
                    if matches!(self.state, ChunkState::Trailers) {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let size = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                        .ok_or_else(|| broken("invalid chunk size"))?;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        break;
                    }
                    let take = left.min(buf.len() as u64) as usize;
                    sink(&buf[..take]);
                    let _ = buf.split_to(take);
                    self.state = match left - take as u64 {
                        0 => ChunkState::DataEnd,
                        rest => ChunkState::Data(rest),
                    };
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        break;
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(broken("no line end after a chunk"));
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => break,
            }
        }
        Ok(())
    }
}

/// A body read from an engine connection of its own with as little memory as the moment
/// needs: reads of at most [`SMALL_READ`] bytes (more only while a chunk-size line is cut
/// across them), decoded data handed on without a copy, and, between reads on tcp and unix
/// sockets, no buffer at all: it waits for the socket to become readable before taking one.
/// Over TLS the read waits with its small buffer, as the TLS stream must have one to decrypt
/// into.
pub struct BodyReader {
    stream: EngineStream,
    /// Received bytes not decoded yet; unallocated when there are none.
    buf: BytesMut,
    /// `None`: the body is not chunked and runs to the end of the connection.
    decoder: Option<ChunkDecoder>,
}

impl BodyReader {
    /// The body on `stream` whose first bytes, received with the head, are `rest`.
    pub fn new(stream: EngineStream, rest: BytesMut, chunked: bool) -> BodyReader {
        BodyReader {
            stream,
            buf: rest,
            decoder: chunked.then(ChunkDecoder::default),
        }
    }

    /// Reads until some data has been decoded and hands it to `sink` (in one piece or more);
    /// `Ok(false)` when the body has ended. A chunked body whose connection closes before its
    /// last chunk is an error.
    pub async fn read(&mut self, mut sink: impl FnMut(&[u8])) -> io::Result<bool> {
        loop {
            let mut decoded = false;
            match self.decoder.as_mut() {
                Some(decoder) => {
                    decoder.decode_with(&mut self.buf, |data| {
                        decoded = true;
                        sink(data);
                    })?;
                    if decoder.done() {
                        return Ok(decoded);
                    }
                }
                None if !self.buf.is_empty() => {
                    sink(&self.buf);
                    self.buf.clear();
                    decoded = true;
                }
                None => {}
            }
            if self.buf.is_empty() {
                // Gives the memory back while the stream is idle.
                self.buf = BytesMut::new();
            }
            if decoded {
                return Ok(true);
            }
            self.readable().await?;
            if self.buf.capacity() - self.buf.len() < SMALL_READ {
                self.buf.reserve(SMALL_READ);
            }
            let read = (&mut self.stream)
                .take(SMALL_READ as u64)
                .read_buf(&mut self.buf)
                .await?;
            if read == 0 {
                if self.decoder.is_some() {
                    return Err(io::Error::other("connection closed before the body's end"));
                }
                return Ok(false);
            }
        }
    }

    /// Waits until the socket has something to read (at once over TLS, whose stream may hold
    /// decrypted bytes already).
    async fn readable(&self) -> io::Result<()> {
        match &self.stream {
            EngineStream::Tcp(s) => s.readable().await,
            EngineStream::Unix(s) => s.readable().await,
            EngineStream::Tls(_) => Ok(()),
        }
    }

    /// The bytes of buffer this reader holds.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_whatever_way_they_are_split() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-end: 1\r\n\r\n";
        for cut in 1..wire.len() {
            let mut decoder = ChunkDecoder::default();
            let mut buf = bytes::BytesMut::new();
            let mut seen = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                seen.extend_from_slice(&decoder.decode(&mut buf).unwrap());
            }
            assert_eq!(seen, b"hello world", "cut at {cut}");
            assert!(decoder.done(), "cut at {cut}");
        }
    }

    #[test]
    fn every_complete_chunk_of_a_read_becomes_one_frame() {
        let mut decoder = ChunkDecoder::default();
        let mut buf = bytes::BytesMut::from(&b"3\r\none\r\n3\r\ntwo\r\n5\r\nthr"[..]);
        assert_eq!(&decoder.decode(&mut buf).unwrap()[..], b"onetwothr");
        buf.extend_from_slice(b"ee\r\n");
        assert_eq!(&decoder.decode(&mut buf).unwrap()[..], b"ee");
        assert!(!decoder.done());
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for wire in [&b"zz\r\n"[..], b"3\r\nabcXY", &[b'1'; MAX_CHUNK_LINE + 1]] {
            let mut buf = bytes::BytesMut::from(wire);
            assert!(ChunkDecoder::default().decode(&mut buf).is_err());
        }
    }

    #[test]
    fn answer_heads_give_status_and_headers() {
        let head = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n\r\n";
        let (status, headers) = parse_head(head).unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "application/json");
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_none());
    }

    #[test]
    fn a_get_head_names_the_host_and_closes_the_connection() {
        let uri: Uri = "http://10.0.0.1:2375/v1.41/events?since=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        assert_eq!(
            get_head(&uri, &headers),
            "GET /v1.41/events?since=1 HTTP/1.1\r\nHost: 10.0.0.1:2375\r\nConnection: close\r\nx-a: 1\r\n\r\n"
        );
        let unix: Uri = "unix://2f78/v1.41/events".parse().unwrap();
        assert!(get_head(&unix, &HeaderMap::new()).contains("\r\nHost: docker\r\n"));
    }

    #[tokio::test]
    async fn answer_heads_longer_than_the_bound_are_errors() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
        tokio::io::AsyncWriteExt::write_all(&mut server, long.as_bytes())
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let err = read_head(&mut client, &mut buf, SMALL_READ)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(buf.len() < MAX_HEAD + SMALL_READ);
    }

    /// A reader of the body the local server sends after `head`, and the server's side.
    async fn body_from(head: &'static [u8], chunked: bool) -> (BodyReader, tokio::net::TcpStream) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let mut server = accepted.unwrap().0;
        server.write_all(head).await.unwrap();
        let mut stream = EngineStream::Tcp(client.unwrap());
        let mut buf = BytesMut::new();
        let head = read_head(&mut stream, &mut buf, SMALL_READ).await.unwrap();
        assert!(parse_head(&head).is_some());
        (BodyReader::new(stream, buf, chunked), server)
    }

    #[tokio::test]
    async fn an_idle_body_holds_no_buffer_after_a_large_chunk() {
        use tokio::io::AsyncWriteExt;
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (mut body, mut server) = body_from(head, true).await;
        let large = vec![b'x'; 1 << 20];
        let wire = [format!("{:x}\r\n", large.len()).as_bytes(), &large, b"\r\n"].concat();
        let writer = tokio::spawn(async move {
            server.write_all(&wire).await.unwrap();
            server
        });
        let mut got = 0;
        let mut most_held = 0;
        while got < large.len() {
            assert!(body.read(|data| got += data.len()).await.unwrap());
            most_held = most_held.max(body.held());
        }
        let mut server = writer.await.unwrap();
        assert_eq!(got, large.len());
        assert!(most_held <= 2 * SMALL_READ, "held {most_held} bytes");
        assert_eq!(body.held(), 0, "an idle stream holds no buffer");
        server.write_all(b"0\r\n\r\n").await.unwrap();
        assert!(!body.read(|_| {}).await.unwrap(), "the last chunk ends it");
    }

    #[tokio::test]
    async fn a_body_that_is_not_chunked_runs_to_the_end_of_the_connection() {
        use tokio::io::AsyncWriteExt;
        let (mut body, mut server) = body_from(b"HTTP/1.1 200 OK\r\n\r\nfirst ", false).await;
        server.write_all(b"second").await.unwrap();
        drop(server);
        let mut seen = Vec::new();
        while body
            .read(|data| seen.extend_from_slice(data))
            .await
            .unwrap()
        {}
        assert_eq!(seen, b"first second");
    }

    #[tokio::test]
    async fn a_chunked_body_cut_before_its_end_is_an_error() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab";
        let (mut body, server) = body_from(head, true).await;
        drop(server);
        let mut seen = Vec::new();
        let mut result = Ok(true);
        while let Ok(true) = result {
            result = body.read(|data| seen.extend_from_slice(data)).await;
        }
        assert!(result.is_err());
        assert_eq!(seen, b"ab");
    }
}
