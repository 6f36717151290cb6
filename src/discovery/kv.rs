//! The URL syntax shared by the key-value backends (`consul://`, `etcd://`, `zk://`):
//! `<addr1>[,<addr2>…][/<prefix>]`. The store clients themselves are not built yet; this module
//! only validates URLs and derives the paths the backends and leader election will use.
use super::{DiscoveryError, Scheme};

/// Where leader election keeps its lock, below the URL prefix (never below `kv.path`).
pub const LEADER_PATH: &str = "docker/swarm/leader";

/// A parsed key-value discovery URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvUrl {
    /// Which store: [`Scheme::Consul`], [`Scheme::Etcd`] or [`Scheme::Zk`].
    pub store: Scheme,
    /// Store addresses, in the order given.
    pub endpoints: Vec<String>,
    /// Everything after the first `/` (may be empty).
    pub prefix: String,
}

impl KvUrl {
    /// Parses the body of a key-value URL. Consul takes exactly one endpoint.
    pub fn parse(store: Scheme, body: &str) -> Result<Self, DiscoveryError> {
        let (addresses, prefix) = body.split_once('/').unwrap_or((body, ""));
        let endpoints: Vec<String> = addresses.split(',').map(str::to_string).collect();
        if store == Scheme::Consul && endpoints.len() > 1 {
            return Err(DiscoveryError::ConsulMultipleEndpoints);
        }
        Ok(KvUrl {
            store,
            endpoints,
            prefix: prefix.to_string(),
        })
    }

    /// The directory holding node entries: `<prefix>/<kv_path>`, without empty segments.
    pub fn nodes_dir(&self, kv_path: &str) -> String {
        join_key(&self.prefix, kv_path)
    }

    /// The leader-election key: `<prefix>/docker/swarm/leader`.
    pub fn leader_key(&self) -> String {
        join_key(&self.prefix, LEADER_PATH)
    }
}

/// Joins key segments with single slashes, dropping empty segments (like Go's `path.Join` for the
/// inputs that occur here).
fn join_key(prefix: &str, path: &str) -> String {
    prefix
        .split('/')
        .chain(path.split('/'))
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefix_are_split() {
        let url = KvUrl::parse(Scheme::Etcd, "10.0.0.1:2379,10.0.0.2:2379/test/x").unwrap();
        assert_eq!(url.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(url.prefix, "test/x");
        assert_eq!(
            url.nodes_dir("docker/swarm/nodes"),
            "test/x/docker/swarm/nodes"
        );
        assert_eq!(url.leader_key(), "test/x/docker/swarm/leader");
    }

    #[test]
    fn the_prefix_is_optional() {
        let url = KvUrl::parse(Scheme::Zk, "a:2181").unwrap();
        assert_eq!(url.prefix, "");
        assert_eq!(url.nodes_dir("custom/"), "custom");
    }

    #[test]
    fn consul_takes_one_endpoint() {
        assert_eq!(
            KvUrl::parse(Scheme::Consul, "a:8500,b:8500/p"),
            Err(DiscoveryError::ConsulMultipleEndpoints)
        );
        assert!(KvUrl::parse(Scheme::Consul, "a:8500/p").is_ok());
    }
}
