//! The lookup tables over one snapshot's containers: IDs, Swarm IDs and names, each hashed and
//! sorted so that resolving a name or checking it for conflicts is a binary search per engine.
//! It owns only the tables; it must not change or copy the containers it points at, and it is
//! built with its snapshot and dropped with it.
use std::collections::HashMap;
use std::sync::Arc;

use super::container::{entry_hash, Container};

/// One snapshot's containers sorted and keyed the ways clients name them, so that resolving a
/// name or checking a name for conflicts never scans every container of the cluster.
#[derive(Debug, Default)]
pub struct ContainerIndex {
    /// Sorted by ID (prefix searches).
    by_id: Vec<Arc<Container>>,
    /// Containers with a Swarm ID, sorted by it (prefix searches).
    by_swarm_id: Vec<Arc<Container>>,
    /// Full and 12-character IDs and Swarm IDs, listed names and own names, each as a hash
    /// and a position in `by_id`, sorted: an exact lookup is one binary search over a small
    /// contiguous array per engine, with the text compared only on a hash match.
    ids: Keys,
    swarm_ids: Keys,
    listed_names: Keys,
    own_names: Keys,
}

/// A lookup text and its hash, computed once for a search across many engines.
pub struct LookupKey<'a> {
    pub text: &'a str,
    hash: u64,
}

impl<'a> LookupKey<'a> {
    pub fn new(text: &'a str) -> LookupKey<'a> {
        LookupKey {
            text,
            hash: key_hash(text),
        }
    }

    /// The hash of the text.
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

fn key_hash(text: &str) -> u64 {
    entry_hash(text.as_bytes())
}

/// (hash, position) pairs sorted by hash.
#[derive(Debug, Default)]
struct Keys(Vec<(u64, u32)>);

impl Keys {
    fn build(mut pairs: Vec<(u64, u32)>) -> Keys {
        pairs.sort_unstable();
        Keys(pairs)
    }

    /// Positions whose key hashes like `key`.
    fn get(&self, key: &LookupKey) -> impl Iterator<Item = usize> + '_ {
        let start = self.0.partition_point(|(h, _)| *h < key.hash);
        let hash = key.hash;
        self.0[start..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, i)| *i as usize)
    }
}

/// The entries of `sorted` whose key starts with `prefix`.
fn prefix_range<'a>(
    sorted: &'a [Arc<Container>],
    key: impl Fn(&Container) -> &str,
    prefix: &str,
) -> &'a [Arc<Container>] {
    let start = sorted.partition_point(|c| key(c) < prefix);
    let len = sorted[start..]
        .iter()
        .take_while(|c| key(c).starts_with(prefix))
        .count();
    &sorted[start..start + len]
}

/// The 12-character form of an ID (the whole ID when shorter).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl ContainerIndex {
    pub(super) fn new(containers: &HashMap<String, Arc<Container>>) -> ContainerIndex {
        let mut by_id: Vec<Arc<Container>> = containers.values().cloned().collect();
        by_id.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_swarm_id: Vec<Arc<Container>> = by_id
            .iter()
            .filter(|c| c.swarm_id().is_some())
            .cloned()
            .collect();
        by_swarm_id.sort_by(|a, b| a.swarm_id().cmp(&b.swarm_id()));
        let (mut ids, mut swarm_ids, mut listed_names, mut own_names) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, c) in by_id.iter().enumerate() {
            let i = i as u32;
            ids.push((key_hash(&c.id), i));
            if short_id(&c.id) != c.id {
                ids.push((key_hash(short_id(&c.id)), i));
            }
            if let Some(s) = c.swarm_id() {
                swarm_ids.push((key_hash(s), i));
                if short_id(s) != s {
                    swarm_ids.push((key_hash(short_id(s)), i));
                }
            }
            for n in c.names() {
                listed_names.push((key_hash(n), i));
            }
            own_names.push((key_hash(c.name()), i));
        }
        ContainerIndex {
            by_id,
            by_swarm_id,
            ids: Keys::build(ids),
            swarm_ids: Keys::build(swarm_ids),
            listed_names: Keys::build(listed_names),
            own_names: Keys::build(own_names),
        }
    }

    /// Every container of the snapshot, by ID: positions in it stay valid as long as the
    /// snapshot.
    pub fn all(&self) -> &[Arc<Container>] {
        &self.by_id
    }

    fn at(&self, i: usize) -> &Arc<Container> {
        &self.by_id[i]
    }

    /// The container whose ID or 12-character ID is `key`.
    pub fn id(&self, key: &LookupKey) -> Option<&Arc<Container>> {
        self.ids
            .get(key)
            .map(|i| self.at(i))
            .find(|c| c.id == key.text || short_id(&c.id) == key.text)
    }

    /// The container whose Swarm ID or its first 12 characters is `key`.
    pub fn swarm_id(&self, key: &LookupKey) -> Option<&Arc<Container>> {
        self.swarm_ids.get(key).map(|i| self.at(i)).find(|c| {
            c.swarm_id()
                .is_some_and(|s| s == key.text || short_id(s) == key.text)
        })
    }

    /// Containers listing `key` (`/web`) among their names.
    pub fn listed_name<'s, 'k>(
        &'s self,
        key: &'k LookupKey<'k>,
    ) -> impl Iterator<Item = &'s Arc<Container>> + use<'s, 'k> {
        self.listed_names
            .get(key)
            .map(|i| self.at(i))
            .filter(|c| c.names().any(|n| n == key.text))
    }

    /// Containers whose own name is `key` (no leading `/`).
    pub fn own_name<'s, 'k>(
        &'s self,
        key: &'k LookupKey<'k>,
    ) -> impl Iterator<Item = &'s Arc<Container>> + use<'s, 'k> {
        self.own_names
            .get(key)
            .map(|i| self.at(i))
            .filter(|c| c.name() == key.text)
    }

    /// Containers whose ID starts with `prefix`.
    pub fn id_prefix(&self, prefix: &str) -> &[Arc<Container>] {
        prefix_range(&self.by_id, |c| &c.id, prefix)
    }

    /// Containers whose Swarm ID starts with `prefix`.
    pub fn swarm_id_prefix(&self, prefix: &str) -> &[Arc<Container>] {
        prefix_range(&self.by_swarm_id, |c| c.swarm_id().unwrap_or(""), prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerDetails, EngineCache};
    use super::*;
    use serde_json::json;

    fn container(id: &str, names: &[&str], swarm_id: Option<&str>) -> Arc<Container> {
        let labels = swarm_id.map(|s| json!({"com.docker.swarm.id": s}));
        let raw = json!({"Id": id, "Names": names, "Labels": labels}).to_string();
        Arc::new(Container::new(
            serde_json::from_str(&raw).unwrap(),
            ContainerDetails::default(),
            entry_hash(raw.as_bytes()),
        ))
    }

    #[test]
    fn the_index_answers_ids_prefixes_swarm_ids_and_names() {
        let mut cache = EngineCache::default();
        let mut map = HashMap::new();
        for c in [
            container("aa11", &["/web"], Some("s-web")),
            container("aa22", &["/db", "/web/db"], None),
            container("bb33", &["/cache"], Some("s-cache")),
        ] {
            map.insert(c.id.clone(), c);
        }
        cache.containers = Arc::new(map);
        let index = cache.index();
        let ids = |cs: &[Arc<Container>]| cs.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(index.id_prefix("aa")), ["aa11", "aa22"]);
        assert_eq!(ids(index.id_prefix("bb33")), ["bb33"]);
        assert!(index.id_prefix("c").is_empty());
        assert_eq!(ids(index.swarm_id_prefix("s-")), ["bb33", "aa11"]);
        let key = LookupKey::new;
        let listed: Vec<Arc<Container>> = index.listed_name(&key("/web/db")).cloned().collect();
        assert_eq!(ids(&listed), ["aa22"]);
        let own: Vec<Arc<Container>> = index.own_name(&key("db")).cloned().collect();
        assert_eq!(ids(&own), ["aa22"]);
        assert_eq!(index.own_name(&key("/db")).count(), 0);
        assert_eq!(index.id(&key("aa22")).map(|c| c.id.as_str()), Some("aa22"));
        assert!(index.id(&key("aa")).is_none());
        assert_eq!(
            index.swarm_id(&key("s-cache")).map(|c| c.id.as_str()),
            Some("bb33")
        );
        // A new snapshot starts without the old tables.
        let mut next = cache.clone();
        next.reset_index();
        next.containers = Arc::new(HashMap::new());
        assert_eq!(next.index().own_name(&key("db")).count(), 0);
    }
}
