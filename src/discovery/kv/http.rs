//! HTTP to the stores that speak it (etcd and Consul): a client with endpoint failover
//! ([`StoreHttp`]) whose answers are read whole within a budget, a reader for streamed
//! newline-separated JSON ([`JsonLines`]), the TLS settings from the `kv.*` options, and the
//! percent-encoding of keys and query values. It knows no store protocol; `etcd/` and
//! `consul.rs` build their requests on it.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::cluster::transport::{boxed, empty, error_chain, Endpoint, Transport};
use crate::discovery::{DiscoveryError, DiscoveryOptions};

/// The TLS settings for reaching the store, from `kv.cacertfile`, `kv.certfile` and
/// `kv.keyfile`. As in the classic, TLS is used only when all three are given.
pub fn store_tls(
    opts: &DiscoveryOptions,
) -> Result<Option<Arc<rustls::ClientConfig>>, DiscoveryError> {
    let file = |key: &str| {
        opts.get(key)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    let (Some(ca), Some(cert), Some(key)) = (
        file("kv.cacertfile"),
        file("kv.certfile"),
        file("kv.keyfile"),
    ) else {
        tracing::info!("Initializing discovery without TLS");
        return Ok(None);
    };
    tracing::info!("Initializing discovery with TLS");
    let tls = crate::tls::TlsOptions {
        tls: true,
        verify: true,
        ca: Some(ca),
        cert: Some(cert),
        key: Some(key),
    };
    crate::tls::client_config(&tls)
        .map(Some)
        .map_err(|e| DiscoveryError::Store(format!("discovery TLS: {e}")))
}

/// The largest response body read whole from a store; a directory listing beyond this is
/// refused rather than buffered.
const MAX_STORE_BODY: usize = 16 << 20;

/// A complete answer from a store.
#[derive(Debug, Clone)]
pub(crate) struct StoreResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers (etcd and Consul put their indexes there).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl StoreResponse {
    /// The body as JSON, or an error naming what was expected.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "unreadable answer from the store ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })
    }

    /// A header as an unsigned number (`X-Etcd-Index`, `X-Consul-Index`).
    pub fn index_header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }
}

/// HTTP to a store with several endpoints: requests go to the endpoint that last answered and
/// move on to the next one when it cannot be reached.
pub(crate) struct StoreHttp {
    /// `host:port` of every endpoint, in URL order.
    endpoints: Vec<String>,
    /// Index of the endpoint to try first.
    current: AtomicUsize,
    /// The pooled client (TLS when the `kv.*` files are given).
    transport: Transport,
}

impl StoreHttp {
    /// A client for `endpoints`, over TLS with `tls`.
    pub fn new(endpoints: Vec<String>, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        StoreHttp {
            endpoints,
            current: AtomicUsize::new(0),
            transport: Transport::new(tls),
        }
    }

    /// One request whose whole exchange, body included, must finish within `timeout`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&str, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<StoreResponse, String> {
        let exchange = async {
            let response = self.open(method, path_and_query, body).await?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_STORE_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the store's answer: {e}"))?
                .to_bytes();
            Ok(StoreResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the store did not answer {path_and_query} within {timeout:?}"
            )),
        }
    }

    /// Sends a request and returns as soon as the headers arrive, for streamed answers
    /// (watches). The caller bounds the time it waits.
    pub async fn open(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<http::Response<Incoming>, String> {
        let count = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut last_error = String::from("no store endpoint");
        for attempt in 0..count {
            let index = (first + attempt) % count;
            let Some(endpoint) = self.endpoints.get(index) else {
                break;
            };
            let base = self.transport.base_uri(&Endpoint::Tcp(endpoint.clone()));
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(format!("{base}{path_and_query}"));
            let request_body = match &body {
                Some((content_type, bytes)) => {
                    builder = builder.header(http::header::CONTENT_TYPE, *content_type);
                    boxed(http_body_util::Full::new(Bytes::from(bytes.clone())))
                }
                None => empty(),
            };
            let request = builder
                .body(request_body)
                .map_err(|e| format!("bad store request {path_and_query}: {e}"))?;
            match self.transport.request(request).await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) => {
                    last_error = format!("store {endpoint} unreachable: {}", error_chain(&error));
                }
            }
        }
        Err(last_error)
    }
}

/// Reads a streamed body of newline-separated JSON documents (the etcd v3 watch stream).
pub(crate) struct JsonLines {
    /// The body still being received.
    body: Incoming,
    /// Bytes received after the last complete line.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline, so each byte is searched once.
    scanned: usize,
}

/// The longest line [`JsonLines`] accepts; a longer one is a broken stream.
const MAX_JSON_LINE: usize = 4 << 20;

impl JsonLines {
    /// Reads documents from `body`.
    pub fn new(body: Incoming) -> Self {
        JsonLines {
            body,
            pending: Vec::new(),
            scanned: 0,
        }
    }

    /// The next document; `Ok(None)` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<serde_json::Value>, String> {
        loop {
            let unscanned = self.pending.get(self.scanned..).unwrap_or_default();
            let newline = memchr::memchr(b'\n', unscanned).map(|at| self.scanned + at);
            self.scanned = if newline.is_some() {
                0
            } else {
                self.pending.len()
            };
            if let Some(end) = newline {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return serde_json::from_slice(line)
                    .map(Some)
                    .map_err(|e| format!("unreadable watch message from the store: {e}"));
            }
            match self.body.frame().await {
                None => {
                    let rest = std::mem::take(&mut self.pending);
                    let rest = rest.trim_ascii();
                    if rest.is_empty() {
                        return Ok(None);
                    }
                    return serde_json::from_slice(rest)
                        .map(Some)
                        .map_err(|e| format!("unreadable watch message from the store: {e}"));
                }
                Some(Err(error)) => return Err(format!("watch stream broke: {error}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                        if self.pending.len() > MAX_JSON_LINE {
                            return Err("watch message from the store is too large".into());
                        }
                    }
                }
            }
        }
    }
}

/// Percent-encodes each segment of a key for use in a URL path (IPv6 entries hold brackets).
pub(crate) fn encode_key_path(key: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    key.split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes a query parameter value.
pub(crate) fn encode_query(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_keep_slashes_and_colons_and_escape_brackets() {
        assert_eq!(encode_key_path("a/b/1.2.3.4:5"), "a/b/1.2.3.4:5");
        assert_eq!(encode_key_path("d/[::1]:2375"), "d/%5B::1%5D:2375");
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
