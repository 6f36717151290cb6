//! Discovery: turns a discovery URL into a stream of engine address sets.
//!
//! Owns the URL syntax (`<scheme>://<body>`, a bare list meaning `nodes://`) and the backends
//! behind the [`Backend`] trait; [`Entry`] (`host:port` with Go's `SplitHostPort` rules) and the
//! `[a:b]` range expansion of `nodes://` and `file://` items live in `entries` and are re-exported
//! here. It reports addresses only: it knows nothing about engines, their health or the cluster
//! that consumes the stream.
//!
//! Backends: [`nodes`] (a fixed list), [`file`](mod@file) (a polled file), and the key-value
//! stores [`etcd`], [`consul`] and [`zk`], which also take `swarm join` registrations and carry
//! leader election ([`kv::LeaderStore`], through [`new_store`]). `token://` URLs are understood
//! ([`token`]) but the hosted service behind them is gone, so building one is an error that says
//! what to use instead.
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod entries;

pub mod consul;
pub mod etcd;
pub mod file;
pub mod kv;
pub mod nodes;
pub mod token;
pub mod zk;

/// The directory (below the URL prefix) where key-value backends keep node entries unless the
/// `kv.path` discovery option says otherwise. The classic `swarm` binary always passed this value.
pub const DEFAULT_KV_PATH: &str = "docker/swarm/nodes";

pub use entries::{
    expand_ranges, push_expanded, split_host_port, AddrError, Entry, MAX_LIST_ADDRESSES,
    MAX_RANGE_VALUES,
};

/// The discovery backends a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `nodes://a:1,b:2` or a bare list: a fixed set of addresses.
    Nodes,
    /// `file://path`: a file of addresses, re-read every heartbeat.
    File,
    /// `token://<token>`: Docker Hub's hosted discovery (shut down in 2019).
    Token,
    /// `consul://<addr>/<prefix>`.
    Consul,
    /// `etcd://<addr>[,<addr>…]/<prefix>` (v3 API, or the classic v2 keys API on request).
    Etcd,
    /// `zk://<addr>[,<addr>…]/<prefix>`.
    Zk,
}

impl Scheme {
    /// The scheme as written in URLs (`zk`, not `zookeeper`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Nodes => "nodes",
            Scheme::File => "file",
            Scheme::Token => "token",
            Scheme::Consul => "consul",
            Scheme::Etcd => "etcd",
            Scheme::Zk => "zk",
        }
    }

    /// Whether the backend is a key-value store, the only kind that supports leader election
    /// (`--replication`).
    pub fn is_key_value(self) -> bool {
        matches!(self, Scheme::Consul | Scheme::Etcd | Scheme::Zk)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A discovery URL split into its scheme and the text after `://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryUrl {
    /// Which backend the URL names.
    pub scheme: Scheme,
    /// Everything after the first `://` (the whole text for a bare list).
    pub body: String,
}

impl DiscoveryUrl {
    /// Splits at the first `://`; without one the whole text is a `nodes` list. Only checks that
    /// the scheme is known; see [`validate`] for the backend-specific checks.
    pub fn parse(url: &str) -> Result<Self, DiscoveryError> {
        let Some((scheme, body)) = url.split_once("://") else {
            return Ok(DiscoveryUrl {
                scheme: Scheme::Nodes,
                body: url.to_string(),
            });
        };
        let scheme = match scheme {
            "nodes" => Scheme::Nodes,
            "file" => Scheme::File,
            "token" => Scheme::Token,
            "consul" => Scheme::Consul,
            "etcd" => Scheme::Etcd,
            "zk" => Scheme::Zk,
            _ => return Err(DiscoveryError::NotSupported),
        };
        Ok(DiscoveryUrl {
            scheme,
            body: body.to_string(),
        })
    }
}

/// Everything that can go wrong when setting up or using discovery. The texts are the classic
/// `swarm` messages that users and scripts know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The URL's scheme is not one of the known backends.
    #[error("discovery service not supported")]
    NotSupported,
    /// A `nodes://` item (or bare list item) is not `host:port`; the hint catches the common
    /// mistake of passing a token without `token://`.
    #[error("{0}, please check you are using the correct discovery (missing token:// ?)")]
    NodeAddress(AddrError),
    /// `token://` with nothing after the last `/`.
    #[error("token is empty")]
    EmptyToken,
    /// `consul://a,b`: Consul takes exactly one agent address.
    #[error("consul does not support multiple endpoints")]
    ConsulMultipleEndpoints,
    /// Registration (`swarm join`) on a backend that has no store to register in.
    #[error("not implemented in this discovery service")]
    NotImplemented,
    /// `token://`: Docker Hub's hosted discovery service no longer exists.
    #[error(
        "token:// discovery is no longer available: Docker Hub's hosted discovery service was \
         shut down in June 2019. Register engines in etcd://, consul:// or zk:// with `swarm join`, \
         or list them with file:// or nodes:// instead"
    )]
    TokenServiceGone,
    /// `--replication` with a backend that has no store to hold a lock in.
    #[error("Leader election is only supported with consul, etcd and zookeeper discovery.")]
    NoLeaderElection,
    /// A key-value store could not be set up or used (bad option, unreadable certificate, store
    /// error while registering).
    #[error("{0}")]
    Store(String),
}

/// Checks a discovery URL without doing any I/O: the scheme is known, a `nodes` list parses
/// (ranges expanded), a token is present, Consul has a single endpoint.
pub fn validate(url: &str) -> Result<DiscoveryUrl, DiscoveryError> {
    let parsed = DiscoveryUrl::parse(url)?;
    match parsed.scheme {
        Scheme::Nodes => {
            nodes::parse_list(&parsed.body)?;
        }
        Scheme::File => {}
        Scheme::Token => {
            token::TokenUrl::parse(&parsed.body)?;
        }
        Scheme::Consul | Scheme::Etcd | Scheme::Zk => {
            kv::KvUrl::parse(parsed.scheme, &parsed.body)?;
        }
    }
    Ok(parsed)
}

/// Settings every backend receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryOptions {
    /// Poll period of `file://`/`token://` and retry delay of key-value watches; for `swarm join`,
    /// the registration period.
    pub heartbeat: Duration,
    /// How long a registration lives in the store (`swarm join --ttl`); zero when only watching.
    pub ttl: Duration,
    /// `--discovery-opt key=value` pairs in the order given.
    pub opts: Vec<(String, String)>,
}

impl DiscoveryOptions {
    /// The value of a discovery option; when a key is repeated the last one wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The node directory below the URL prefix: `kv.path` or [`DEFAULT_KV_PATH`].
    pub fn kv_path(&self) -> &str {
        match self.get("kv.path") {
            Some(path) if !path.is_empty() => path,
            _ => DEFAULT_KV_PATH,
        }
    }
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The complete current list of addresses, in the backend's order.
    Entries(Vec<Entry>),
    /// A transient problem (unreadable file, store unreachable); the watch keeps going.
    Error(String),
}

/// How long [`Watch::stop`] waits for the watch task: every watch loop ends at its next step
/// once its reports are no longer read, so this is reached only when a store or file read hangs.
const WATCH_STOP_GRACE: Duration = Duration::from_secs(5);

/// A running watch: its reports, and the task that makes them. The holder ends it with
/// [`Watch::stop`]; dropped instead, the task still ends at its next step, when it finds nobody
/// reading.
pub struct Watch {
    events: mpsc::Receiver<WatchEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Makes a channel of `capacity` reports and spawns the future `run` builds around its
    /// sending half. Must be called inside a Tokio runtime.
    pub(crate) fn spawn<F>(
        capacity: usize,
        run: impl FnOnce(mpsc::Sender<WatchEvent>) -> F,
    ) -> Watch
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (sender, events) = mpsc::channel(capacity);
        let task = tokio::spawn(run(sender));
        Watch { events, task }
    }

    /// The next report; `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// A report already waiting, without waiting for one.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Result<WatchEvent, mpsc::error::TryRecvError> {
        self.events.try_recv()
    }

    /// Stops reading and waits for the task to end, at most [`WATCH_STOP_GRACE`].
    pub async fn stop(self) {
        let Watch { events, task } = self;
        drop(events);
        if tokio::time::timeout(WATCH_STOP_GRACE, task).await.is_err() {
            tracing::warn!(grace = ?WATCH_STOP_GRACE, "Discovery watch did not stop in time");
        }
    }
}

/// The future returned by [`Backend::register`].
pub type RegisterFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DiscoveryError>> + Send + 'a>>;

/// A discovery backend as the manager, `swarm list` and `swarm join` use it.
pub trait Backend: Send + Sync + 'static {
    /// Starts watching; the task ends when `shutdown` is cancelled or the [`Watch`] is stopped or
    /// dropped. A list is sent first, then again whenever it changes. Must be called inside a
    /// Tokio runtime.
    fn watch(self: Arc<Self>, shutdown: CancellationToken) -> Watch;

    /// Registers an address (swarm join). nodes/file: error
    /// `not implemented in this discovery service`.
    fn register<'a>(&'a self, addr: &'a str) -> RegisterFuture<'a>;

    /// Called when `swarm join` stops. Registrations with a TTL are left to expire, as in the
    /// classic; a backend whose registrations live as long as a session (ZooKeeper) ends it here
    /// so they go at once, since the process would exit before the session could close itself.
    fn leave<'a>(&'a self, _addr: &'a str) -> RegisterFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds the backend a discovery URL names. Does no I/O beyond reading the `kv.*` certificate
/// files; the first store access happens in [`Backend::watch`] or [`Backend::register`].
pub fn new_backend(url: &str, opts: &DiscoveryOptions) -> Result<Arc<dyn Backend>, DiscoveryError> {
    let parsed = DiscoveryUrl::parse(url)?;
    match parsed.scheme {
        Scheme::Nodes => Ok(Arc::new(nodes::NodesBackend::new(&parsed.body)?)),
        Scheme::File => Ok(Arc::new(file::FileBackend::new(
            parsed.body,
            opts.heartbeat,
        ))),
        Scheme::Token => {
            token::TokenUrl::parse(&parsed.body)?;
            Err(DiscoveryError::TokenServiceGone)
        }
        Scheme::Consul | Scheme::Etcd | Scheme::Zk => Ok(new_store(url, opts)?.discovery),
    }
}

/// A key-value store seen both ways: as a discovery backend and as the home of the leader lock.
/// Both handles point at the same object, so they share its connections.
#[derive(Clone)]
pub struct KvStore {
    /// Node discovery and registration.
    pub discovery: Arc<dyn Backend>,
    /// Leader election.
    pub election: Arc<dyn kv::LeaderStore>,
    /// The leader key of this URL (`<prefix>/docker/swarm/leader`).
    pub leader_key: String,
}

/// Builds the key-value store a `consul://`, `etcd://` or `zk://` URL names; any other URL is
/// [`DiscoveryError::NoLeaderElection`] (after the URL's own errors).
pub fn new_store(url: &str, opts: &DiscoveryOptions) -> Result<KvStore, DiscoveryError> {
    let parsed = DiscoveryUrl::parse(url)?;
    if !parsed.scheme.is_key_value() {
        validate(url)?;
        return Err(DiscoveryError::NoLeaderElection);
    }
    let kv_url = kv::KvUrl::parse(parsed.scheme, &parsed.body)?;
    let leader_key = kv_url.leader_key();
    match parsed.scheme {
        Scheme::Etcd => {
            let (discovery, election) = etcd::backend(&kv_url, opts, kv::store_tls(opts)?)?;
            Ok(KvStore {
                discovery,
                election,
                leader_key,
            })
        }
        Scheme::Consul => {
            let backend = consul::backend(&kv_url, opts, kv::store_tls(opts)?);
            Ok(KvStore {
                discovery: backend.clone(),
                election: backend,
                leader_key,
            })
        }
        _ => {
            tracing::info!("Initializing discovery without TLS");
            let backend = zk::backend(&kv_url, opts);
            Ok(KvStore {
                discovery: backend.clone(),
                election: backend,
                leader_key,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn urls_split_at_the_first_separator() {
        let url = DiscoveryUrl::parse("file:///tmp/x://y").unwrap();
        assert_eq!(url.scheme, Scheme::File);
        assert_eq!(url.body, "/tmp/x://y");
        let bare = DiscoveryUrl::parse("a:1,b:2").unwrap();
        assert_eq!(bare.scheme, Scheme::Nodes);
        assert_eq!(bare.body, "a:1,b:2");
        for (url, scheme) in [
            ("nodes://a:1", Scheme::Nodes),
            ("token://x", Scheme::Token),
            ("consul://a:1/p", Scheme::Consul),
            ("etcd://a:1/p", Scheme::Etcd),
            ("zk://a:1/p", Scheme::Zk),
        ] {
            assert_eq!(DiscoveryUrl::parse(url).unwrap().scheme, scheme);
        }
        assert_eq!(
            DiscoveryUrl::parse("http://a:1").unwrap_err().to_string(),
            "discovery service not supported"
        );
        assert_eq!(
            DiscoveryUrl::parse("://a:1").unwrap_err(),
            DiscoveryError::NotSupported
        );
    }

    #[test]
    fn only_store_schemes_are_key_value() {
        assert!(Scheme::Consul.is_key_value());
        assert!(Scheme::Etcd.is_key_value());
        assert!(Scheme::Zk.is_key_value());
        assert!(!Scheme::Nodes.is_key_value());
        assert!(!Scheme::File.is_key_value());
        assert!(!Scheme::Token.is_key_value());
    }

    #[test]
    fn validation_catches_each_backends_url_errors() {
        assert_eq!(
            validate("1.2.3.4").unwrap_err().to_string(),
            "address 1.2.3.4: missing port in address, please check you are using the correct \
             discovery (missing token:// ?)"
        );
        assert_eq!(
            validate("token://").unwrap_err(),
            DiscoveryError::EmptyToken
        );
        assert_eq!(
            validate("consul://a:8500,b:8500/x")
                .unwrap_err()
                .to_string(),
            "consul does not support multiple endpoints"
        );
        assert_eq!(
            validate("bogus://x").unwrap_err().to_string(),
            "discovery service not supported"
        );
        assert_eq!(
            validate("file:///nonexistent").unwrap().scheme,
            Scheme::File
        );
        assert_eq!(validate("etcd://a:1,b:2/p").unwrap().scheme, Scheme::Etcd);
        assert_eq!(validate("zk://a:1,b:2").unwrap().scheme, Scheme::Zk);
        assert_eq!(validate("token://abc").unwrap().scheme, Scheme::Token);
        assert_eq!(validate("10.0.0.[1:3]:2375").unwrap().scheme, Scheme::Nodes);
    }

    #[tokio::test]
    async fn store_backends_are_built_and_token_explains_itself() {
        let opts = DiscoveryOptions::default();
        for url in [
            "consul://a:8500/p",
            "etcd://a:2379,b:2379/p",
            "zk://a:2181/p",
        ] {
            assert!(new_backend(url, &opts).is_ok(), "{url}");
            assert!(new_store(url, &opts).is_ok(), "{url}");
        }
        assert_eq!(
            new_store("etcd://a:2379/p", &opts).unwrap().leader_key,
            "p/docker/swarm/leader"
        );
        let token = new_backend("token://abc", &opts).err().unwrap().to_string();
        assert!(token.contains("shut down in June 2019"), "{token}");
        assert!(token.contains("etcd://"), "{token}");
        assert_eq!(
            new_backend("consul://a,b", &opts).err(),
            Some(DiscoveryError::ConsulMultipleEndpoints)
        );
        assert_eq!(
            new_backend("token://", &opts).err(),
            Some(DiscoveryError::EmptyToken)
        );
        assert_eq!(
            new_backend("ftp://x", &opts).err(),
            Some(DiscoveryError::NotSupported)
        );
        assert_eq!(
            new_store("a:1,b:2", &opts).err(),
            Some(DiscoveryError::NoLeaderElection)
        );
        assert!(new_backend("a:1,b:2", &opts).is_ok());
        assert!(new_backend("file:///x", &opts).is_ok());
    }

    #[test]
    fn unreadable_store_certificates_are_reported() {
        let opts = DiscoveryOptions {
            opts: vec![
                ("kv.cacertfile".into(), "/nonexistent/ca.pem".into()),
                ("kv.certfile".into(), "/nonexistent/cert.pem".into()),
                ("kv.keyfile".into(), "/nonexistent/key.pem".into()),
            ],
            ..DiscoveryOptions::default()
        };
        let error = new_backend("etcd://a:2379", &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("discovery TLS: "), "{error}");
    }

    #[test]
    fn discovery_options_last_value_wins_and_kv_path_defaults() {
        let mut opts = DiscoveryOptions::default();
        assert_eq!(opts.kv_path(), "docker/swarm/nodes");
        opts.opts.push(("kv.path".into(), "a".into()));
        opts.opts.push(("kv.path".into(), "b".into()));
        assert_eq!(opts.get("kv.path"), Some("b"));
        assert_eq!(opts.kv_path(), "b");
        assert_eq!(opts.get("kv.certfile"), None);
    }
}
