//! Discovery: turns a discovery URL into a stream of engine address sets.
use std::fmt;

/// One discovered engine address, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub host: String,
    pub port: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One message from a watching backend.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Entries(Vec<Entry>),
    Error(String),
}

/// A discovery backend.
pub trait Backend: Send + Sync + 'static {
    /// Starts watching.
    fn watch(
        self: std::sync::Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::sync::mpsc::Receiver<WatchEvent>;
}

/// Options for backends.
pub struct DiscoveryOptions {
    pub heartbeat: std::time::Duration,
    pub ttl: std::time::Duration,
    pub opts: Vec<(String, String)>,
}

struct TempNodes(Vec<Entry>);
impl Backend for TempNodes {
    fn watch(
        self: std::sync::Arc<Self>,
        _shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::sync::mpsc::Receiver<WatchEvent> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = tx.try_send(WatchEvent::Entries(self.0.clone()));
        std::mem::forget(tx);
        rx
    }
}

/// Temporary.
pub fn new_backend(
    url: &str,
    _o: &DiscoveryOptions,
) -> Result<std::sync::Arc<dyn Backend>, String> {
    let body = url.strip_prefix("nodes://").unwrap_or(url);
    Ok(std::sync::Arc::new(TempNodes(
        body.split(',')
            .map(|s| {
                let (h, p) = s.rsplit_once(':').unwrap();
                Entry {
                    host: h.into(),
                    port: p.into(),
                }
            })
            .collect(),
    )))
}
