//! `etcd://<addr>[,<addr>…]/<prefix>`: node discovery, `swarm join` registrations and the leader
//! lock in etcd, over etcd's HTTP APIs.
//!
//! Two keyspaces exist and a manager reads exactly one of them, chosen with
//! `--discovery-opt kv.etcdapi=v3|v2` (default `v3`):
//!
//! - **v3** (every etcd since 3.4 serves it, 3.6 serves nothing else) through etcd's JSON gateway
//!   (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`). Keys carry no leading slash:
//!   `<prefix>/docker/swarm/nodes/<addr>`. Registrations and the leader key are bound to a lease
//!   whose TTL is `--ttl` (join) or `--replication-ttl` (leader); resigning revokes the lease.
//! - **v2**, the classic layout that `swarm join` agents of Docker Swarm write (SPEC §2.4):
//!   `/v2/keys/<prefix>/docker/swarm/nodes/<addr>` set with a TTL on every heartbeat, the leader
//!   key created if absent with a TTL and refreshed with a compare-and-swap. Needs an etcd that
//!   serves v2 (`--enable-v2` on 3.4 and 3.5).
//!
//! The two keyspaces are separate inside etcd: keys written through one API are invisible to the
//! other, which is why the choice is explicit. When a v3 manager sees an empty directory and
//! the v2 keyspace holds registrations, it logs a hint naming the option.
//!
//! Each API is one type: [`v3::EtcdV3`] and [`v2::EtcdV2`], each a discovery backend and a leader
//! store of its own; this module picks one (`backend`) and holds what they share.
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::kv::{self, LeaderStore, StoreHttp};
use super::{Backend, DiscoveryError, DiscoveryOptions};

pub mod v2;
pub mod v3;

/// Per-request limit for everything but watches (the classic used 3 s response headers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A watch that stays silent this long is re-established: a connection that died without a
/// reset (a partition) would otherwise hang forever.
const WATCH_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Which etcd API a backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdApi {
    /// The v3 API through the JSON gateway.
    V3,
    /// The v2 keys API (classic Swarm's layout).
    V2,
}

impl EtcdApi {
    /// Reads `kv.etcdapi` (`v3` when absent).
    pub fn from_options(opts: &DiscoveryOptions) -> Result<Self, DiscoveryError> {
        match opts.get("kv.etcdapi").map(str::trim) {
            None | Some("") | Some("v3") | Some("3") => Ok(EtcdApi::V3),
            Some("v2") | Some("2") => Ok(EtcdApi::V2),
            Some(other) => Err(DiscoveryError::Store(format!(
                "invalid --discovery-opt kv.etcdapi={other}: use v3 or v2"
            ))),
        }
    }
}

/// What both API clients hold: the connection and the layout of one store.
pub struct Etcd {
    /// HTTP to the endpoints.
    http: StoreHttp,
    /// `<prefix>/<kv.path>`, without leading or trailing slashes.
    nodes_dir: String,
    /// Watch retry delay (`--heartbeat`).
    heartbeat: Duration,
    /// Registration lifetime (`swarm join --ttl`).
    ttl: Duration,
}

impl Etcd {
    /// The store at `endpoints`, keeping nodes under `nodes_dir`.
    pub fn new(
        endpoints: Vec<String>,
        nodes_dir: String,
        opts: &DiscoveryOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Etcd {
            http: StoreHttp::new(endpoints, tls),
            nodes_dir,
            heartbeat: opts.heartbeat,
            ttl: opts.ttl,
        }
    }
}

/// A 64-bit integer that the gateway may write as a string (it does for int64 fields) or as a
/// number; absent means zero, as in protobuf.
fn int_field(value: &Value, name: &str) -> i64 {
    match value.get(name) {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The discovery backend and the leader store of an etcd URL: one object seen both ways, a v3 or a
/// v2 client as `kv.etcdapi` says.
pub(crate) type EtcdStore = (Arc<dyn Backend>, Arc<dyn LeaderStore>);

/// Builds an etcd client from a parsed URL, speaking the API `kv.etcdapi` names.
pub(crate) fn backend(
    url: &kv::KvUrl,
    opts: &DiscoveryOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<EtcdStore, DiscoveryError> {
    let api = EtcdApi::from_options(opts)?;
    let etcd = Arc::new(Etcd::new(
        url.endpoints.clone(),
        url.nodes_dir(opts.kv_path()),
        opts,
        tls,
    ));
    tracing::debug!(?api, "etcd discovery");
    Ok(match api {
        EtcdApi::V3 => {
            let client = Arc::new(v3::EtcdV3::new(etcd));
            (client.clone(), client)
        }
        EtcdApi::V2 => {
            let client = Arc::new(v2::EtcdV2::new(etcd));
            (client.clone(), client)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_api_is_v3_unless_v2_is_asked_for() {
        let mut opts = DiscoveryOptions::default();
        assert_eq!(EtcdApi::from_options(&opts).unwrap(), EtcdApi::V3);
        opts.opts.push(("kv.etcdapi".into(), "v2".into()));
        assert_eq!(EtcdApi::from_options(&opts).unwrap(), EtcdApi::V2);
        opts.opts.push(("kv.etcdapi".into(), "v9".into()));
        assert_eq!(
            EtcdApi::from_options(&opts).unwrap_err().to_string(),
            "invalid --discovery-opt kv.etcdapi=v9: use v3 or v2"
        );
    }

    #[test]
    fn gateway_integers_come_as_strings_or_numbers() {
        let value = json!({ "a": "12", "b": 7, "c": "x", "d": null });
        assert_eq!(int_field(&value, "a"), 12);
        assert_eq!(int_field(&value, "b"), 7);
        assert_eq!(int_field(&value, "c"), 0);
        assert_eq!(int_field(&value, "d"), 0);
        assert_eq!(int_field(&value, "missing"), 0);
    }
}
