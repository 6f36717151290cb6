//! Which engines hold a container under a given full ID, Swarm ID or own name, cluster-wide.
//! Checking a new name for conflicts and resolving a full ID then look at the engines that hold
//! it instead of at every engine's cache: at a thousand engines those walks were most of a
//! create's CPU.
//!
//! Entries are hashes pointing at engines; every hit is checked against that engine's cache, so
//! a hash collision or a stale entry costs one look, never a wrong answer. An engine adds the
//! keys of new containers before it publishes the cache that shows them and removes the keys of
//! gone ones after, so the directory never misses a container a cache already shows.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::cache::{Container, LookupKey};

/// An engine as the directory knows it: the address of its `Arc<Engine>`. The directory is
/// generic over what it tags, so it does not depend on the engine type that depends on it.
pub type EngineTag = usize;

/// The tag of an engine (of anything shared behind an `Arc` that keeps its address).
pub fn tag<E>(engine: &E) -> EngineTag {
    engine as *const E as usize
}

/// The directory. One per cluster, shared by its engines.
#[derive(Default)]
pub struct Directory {
    entries: Mutex<HashMap<u64, Holders>>,
}

/// The engines holding one key, each with how many of its containers do.
enum Holders {
    One(EngineTag, u32),
    Many(Vec<(EngineTag, u32)>),
}

impl Directory {
    /// Records that `engine` holds `containers` (in addition to what it held).
    pub fn add<'a>(&self, engine: EngineTag, containers: impl IntoIterator<Item = &'a Container>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for c in containers {
            for key in keys(c) {
                match entries.get_mut(&key) {
                    None => {
                        entries.insert(key, Holders::One(engine, 1));
                    }
                    Some(Holders::One(e, n)) if *e == engine => *n += 1,
                    Some(holders @ Holders::One(..)) => {
                        if let Holders::One(e, n) = *holders {
                            *holders = Holders::Many(vec![(e, n), (engine, 1)]);
                        }
                    }
                    Some(Holders::Many(list)) => {
                        match list.iter_mut().find(|(e, _)| *e == engine) {
                            Some((_, n)) => *n += 1,
                            None => list.push((engine, 1)),
                        }
                    }
                }
            }
        }
    }

    /// Records that `engine` no longer holds `containers`.
    pub fn remove<'a>(
        &self,
        engine: EngineTag,
        containers: impl IntoIterator<Item = &'a Container>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for c in containers {
            for key in keys(c) {
                let emptied = match entries.get_mut(&key) {
                    Some(Holders::One(e, n)) if *e == engine => {
                        *n -= 1;
                        *n == 0
                    }
                    Some(Holders::Many(list)) => {
                        if let Some(at) = list.iter().position(|(e, _)| *e == engine) {
                            list[at].1 -= 1;
                            if list[at].1 == 0 {
                                list.swap_remove(at);
                            }
                        }
                        if let [(e, n)] = list[..] {
                            entries.insert(key, Holders::One(e, n));
                        }
                        false
                    }
                    _ => false,
                };
                if emptied {
                    entries.remove(&key);
                }
            }
        }
    }

    /// The engines that may hold a container whose full ID, Swarm ID or own name is `key`.
    pub fn holders(&self, key: &LookupKey) -> Vec<EngineTag> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key.hash()) {
            None => Vec::new(),
            Some(Holders::One(e, _)) => vec![*e],
            Some(Holders::Many(list)) => list.iter().map(|(e, _)| *e).collect(),
        }
    }

    /// Of `engines`, in their order, those that may hold `key`.
    pub fn narrow<'e, E: 'e>(
        &self,
        engines: impl Iterator<Item = &'e Arc<E>>,
        key: &LookupKey,
    ) -> Vec<&'e Arc<E>> {
        let holders = self.holders(key);
        if holders.is_empty() {
            return Vec::new();
        }
        engines.filter(|e| holders.contains(&tag::<E>(e))).collect()
    }

    /// Number of keys held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// The keys a container is found under: its full ID, its Swarm ID and its own name.
fn keys(c: &Container) -> impl Iterator<Item = u64> + '_ {
    let name = c.name();
    [
        Some(c.id.as_str()),
        c.swarm_id(),
        (!name.is_empty()).then_some(name),
    ]
    .into_iter()
    .flatten()
    .map(|k| LookupKey::new(k).hash())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cache::{entry_hash, ContainerDetails};

    fn container(id: &str, name: &str, swarm_id: &str) -> Container {
        let raw = format!(
            r#"{{"Id":"{id}","Names":["/{name}"],"Labels":{{"com.docker.swarm.id":"{swarm_id}"}}}}"#
        );
        Container::new(
            serde_json::from_str(&raw).unwrap(),
            ContainerDetails::default(),
            entry_hash(raw.as_bytes()),
        )
    }

    #[test]
    fn holders_follow_adds_and_removes_across_engines() {
        let dir = Directory::default();
        let web = container("aaa", "web", "s1");
        let web_copy = container("bbb", "web", "s2");
        dir.add(1, [&web]);
        assert_eq!(dir.holders(&LookupKey::new("web")), [1]);
        assert_eq!(dir.holders(&LookupKey::new("aaa")), [1]);
        assert_eq!(dir.holders(&LookupKey::new("s1")), [1]);
        assert!(dir.holders(&LookupKey::new("db")).is_empty());

        dir.add(2, [&web_copy]);
        let mut both = dir.holders(&LookupKey::new("web"));
        both.sort();
        assert_eq!(both, [1, 2]);
        // A record replaced by a newer one of the same container: added, then removed.
        dir.add(1, [&web]);
        dir.remove(1, [&web]);
        assert_eq!(dir.holders(&LookupKey::new("aaa")), [1]);

        dir.remove(1, [&web]);
        assert_eq!(dir.holders(&LookupKey::new("web")), [2]);
        assert!(dir.holders(&LookupKey::new("aaa")).is_empty());
        dir.remove(2, [&web_copy]);
        assert_eq!(dir.len(), 0, "nothing is left behind");
        // Removing what was never added changes nothing.
        dir.remove(3, [&web]);
        assert_eq!(dir.len(), 0);
    }
}
