//! Resolving what a client names (full ID, short ID, Swarm ID, name, `node/name`) to the cached
//! object and the engine that owns it (SPEC §5.4). Reads snapshots only; no I/O.
use std::sync::Arc;

use super::cache::{short_id as short, Container, ContainerIndex, Image, LookupKey, Record};
use super::engine::Engine;
use super::membership::EngineMaps;

/// A container and the engine that owns it.
#[derive(Clone)]
pub struct ContainerRef {
    pub engine: Arc<Engine>,
    pub container: Arc<Container>,
}

/// Finds a container by the classic rules: full or 12-char ID, Swarm ID, unique name match
/// (`name`, `/name`, `<engine ID>/name`, `<engine name>/name`), then unique ID prefix.
pub fn find_container(maps: &EngineMaps, name: &str) -> Option<ContainerRef> {
    if name.is_empty() {
        return None;
    }
    let engines: Vec<&Arc<Engine>> = maps.validated.values().collect();
    let key = LookupKey::new(name);
    // A full ID or Swarm ID can only be on the engines the directory names; short ones are
    // looked for everywhere.
    let exact = if name.len() == 64 {
        find_exact(&maps.directory.narrow(engines.iter().copied(), &key), &key)
    } else {
        find_exact(&engines, &key)
    };
    exact.or_else(|| find_loose(&engines, name))
}

/// Finds a container among the containers of one engine only.
pub fn find_container_on(engine: &Arc<Engine>, name: &str) -> Option<ContainerRef> {
    if name.is_empty() {
        return None;
    }
    find_exact(&[engine], &LookupKey::new(name)).or_else(|| find_loose(&[engine], name))
}

/// The classic answer to a name clash (a 409), worded as Docker words it.
pub fn name_conflict(name: &str) -> String {
    format!(
        "Conflict: The name {name} is already assigned. You have to delete (or rename) that container to be able to assign {name} to a container again."
    )
}

/// Whether a container other than `except` has the own name `name` (leading `/` ignored) on
/// any validated engine.
pub fn name_taken(maps: &EngineMaps, name: &str, except: Option<&str>) -> bool {
    let wanted = LookupKey::new(name.trim_start_matches('/'));
    let holders = maps.directory.narrow(maps.validated.values(), &wanted);
    holders.into_iter().any(|e| {
        e.with_cache(|cache| {
            cache
                .index()
                .own_name(&wanted)
                .any(|c| Some(c.id.as_str()) != except)
        })
    })
}

/// An exact match of one index, on the first of `engines` that has one.
type ExactPass = fn(&ContainerIndex, &LookupKey) -> Option<Arc<Container>>;

fn by_id(index: &ContainerIndex, key: &LookupKey) -> Option<Arc<Container>> {
    index.id(key).cloned()
}

fn by_swarm_id(index: &ContainerIndex, key: &LookupKey) -> Option<Arc<Container>> {
    index.swarm_id(key).cloned()
}

fn first_exact(engines: &[&Arc<Engine>], key: &LookupKey, pass: ExactPass) -> Option<ContainerRef> {
    engines.iter().find_map(|engine| {
        engine
            .with_cache(|cache| pass(cache.index(), key))
            .map(|container| ContainerRef {
                engine: (*engine).clone(),
                container,
            })
    })
}

/// The first passes of the classic resolution order, each over every engine's current cache:
/// full or short ID, then Swarm ID.
fn find_exact(engines: &[&Arc<Engine>], key: &LookupKey) -> Option<ContainerRef> {
    first_exact(engines, key, by_id).or_else(|| first_exact(engines, key, by_swarm_id))
}

/// The last passes of the classic resolution order: a unique name, then a unique ID or Swarm
/// ID prefix.
fn find_loose(engines: &[&Arc<Engine>], name: &str) -> Option<ContainerRef> {
    let found = |engine: &Arc<Engine>, c: &Arc<Container>| ContainerRef {
        engine: engine.clone(),
        container: c.clone(),
    };
    let key = LookupKey::new(name);
    // Names: `/web` or `web`, or prefixed by the engine's ID or name (`node-1/web`).
    let mut by_name: Vec<ContainerRef> = Vec::new();
    let bare = format!("/{name}");
    let bare = LookupKey::new(&bare);
    for engine in engines {
        engine.with_cache(|cache| {
            let index = cache.index();
            let mut hits: Vec<&Arc<Container>> = Vec::new();
            hits.extend(index.listed_name(&key));
            hits.extend(index.listed_name(&bare));
            if name.contains('/') {
                for prefix in [engine.id(), engine.name()] {
                    if let Some(rest) = name.strip_prefix(prefix.as_str()) {
                        if rest.starts_with('/') {
                            let rest = LookupKey::new(rest);
                            hits.extend(index.listed_name(&rest));
                        }
                    }
                }
            }
            for c in hits {
                if !by_name
                    .iter()
                    .any(|r| Arc::ptr_eq(&r.container, c) && Arc::ptr_eq(&r.engine, engine))
                {
                    by_name.push(found(engine, c));
                }
            }
        });
    }
    match by_name.len() {
        1 => return by_name.pop(),
        0 => {}
        _ => return None,
    }
    let mut by_prefix: Vec<ContainerRef> = Vec::new();
    for engine in engines {
        let ambiguous = engine.with_cache(|cache| {
            let index = cache.index();
            for c in index
                .id_prefix(name)
                .iter()
                .chain(index.swarm_id_prefix(name))
            {
                if !by_prefix.iter().any(|r| Arc::ptr_eq(&r.container, c)) {
                    by_prefix.push(found(engine, c));
                }
                if by_prefix.len() > 1 {
                    return true;
                }
            }
            false
        });
        if ambiguous {
            return None;
        }
    }
    by_prefix.pop()
}

/// Finds the container whose cached `ExecIDs` hold `exec_id`.
pub fn find_exec(maps: &EngineMaps, exec_id: &str) -> Option<ContainerRef> {
    maps.validated.values().find_map(|engine| {
        let cache = engine.cache();
        cache
            .containers
            .values()
            .find(|c| c.details.has_exec(exec_id))
            .map(|c| ContainerRef {
                engine: engine.clone(),
                container: c.clone(),
            })
    })
}

/// Splits an image reference into repository and tag or digest: at `@` for digests, else at
/// the last `:` that is not followed by a `/` (so registry ports stay in the repository).
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    if let Some((repo, digest)) = reference.split_once('@') {
        return (repo, Some(digest));
    }
    match reference.rfind(':') {
        Some(i) if !reference[i + 1..].contains('/') => {
            (&reference[..i], Some(&reference[i + 1..]))
        }
        _ => (reference, None),
    }
}

/// Whether an image matches `name`: exact ID or an ID prefix longer than 2 characters (with or
/// without `sha256:`), else by repository and — with `with_tag` — tag or digest.
pub fn image_matches(image: &Image, name: &str, with_tag: bool) -> bool {
    if name.is_empty() {
        return false;
    }
    let bare_id = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
    if image.id == name {
        return true;
    }
    let bare_name = name.strip_prefix("sha256:").unwrap_or(name);
    if bare_name.len() > 2
        && bare_name.chars().all(|c| c.is_ascii_hexdigit())
        && bare_id.starts_with(bare_name)
    {
        return true;
    }
    let (repo, tag) = split_reference(name);
    let check = |candidate: &str| {
        let (crepo, ctag) = split_reference(candidate);
        if crepo != repo {
            return false;
        }
        if !with_tag {
            return true;
        }
        match tag {
            None => true,
            Some(t) => ctag == Some(t),
        }
    };
    image.repo_tags.iter().any(|t| check(t)) || image.repo_digests.iter().any(|d| check(d))
}

/// A network and the engine it was found on.
#[derive(Clone)]
pub struct NetworkRef {
    pub engine: Arc<Engine>,
    pub network: Arc<Record>,
}

impl NetworkRef {
    /// The network ID.
    pub fn id(&self) -> &str {
        self.network.id()
    }
}

/// Finds a network: exact or 12-char ID; then a name, `<engine ID>/name` or `<engine name>/name`
/// that is unique by network ID; then `/name`; then a unique ID prefix.
pub fn find_network(maps: &EngineMaps, name: &str) -> Option<NetworkRef> {
    if name.is_empty() {
        return None;
    }
    let all: Vec<NetworkRef> = maps
        .validated
        .values()
        .flat_map(|engine| {
            let cache = engine.cache();
            cache
                .networks
                .values()
                .map(|n| NetworkRef {
                    engine: engine.clone(),
                    network: n.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if let Some(n) = all.iter().find(|n| n.id() == name || short(n.id()) == name) {
        return Some(n.clone());
    }
    let unique = |matches: Vec<&NetworkRef>| -> Option<NetworkRef> {
        let first = matches.first()?;
        if matches.iter().all(|m| m.id() == first.id()) {
            Some((*first).clone())
        } else {
            None
        }
    };
    let by_name: Vec<&NetworkRef> = all
        .iter()
        .filter(|n| {
            let nname = n.network.name();
            nname == name
                || format!("{}/{nname}", n.engine.id()) == name
                || format!("{}/{nname}", n.engine.name()) == name
        })
        .collect();
    if !by_name.is_empty() {
        return unique(by_name);
    }
    if let Some(stripped) = name.strip_prefix('/') {
        let by_slash: Vec<&NetworkRef> = all
            .iter()
            .filter(|n| n.network.name() == stripped)
            .collect();
        if !by_slash.is_empty() {
            return unique(by_slash);
        }
    }
    let by_prefix: Vec<&NetworkRef> = all.iter().filter(|n| n.id().starts_with(name)).collect();
    if by_prefix.is_empty() {
        return None;
    }
    unique(by_prefix)
}

/// A volume and the engine it was found on.
#[derive(Clone)]
pub struct VolumeRef {
    pub engine: Arc<Engine>,
    pub volume: Arc<Record>,
}

/// Finds volumes named `name`, `<engine ID>/name` or `<engine name>/name` (all of them).
pub fn find_volumes(maps: &EngineMaps, name: &str) -> Vec<VolumeRef> {
    let mut found = Vec::new();
    for engine in maps.validated.values() {
        let cache = engine.cache();
        for (vname, v) in cache.volumes.iter() {
            if vname == name
                || format!("{}/{vname}", engine.id()) == name
                || format!("{}/{vname}", engine.name()) == name
            {
                found.push(VolumeRef {
                    engine: engine.clone(),
                    volume: v.clone(),
                });
            }
        }
    }
    if found.is_empty() {
        if let Some(stripped) = name.strip_prefix('/') {
            return find_volumes(maps, stripped);
        }
    }
    found
}

/// Finds one volume: a unique match, or among several the first with a non-`local` driver and
/// exactly the name asked for.
pub fn find_volume(maps: &EngineMaps, name: &str) -> Option<VolumeRef> {
    let found = find_volumes(maps, name);
    if found.len() == 1 {
        return found.into_iter().next();
    }
    found
        .into_iter()
        .find(|v| v.volume.driver() != "local" && v.volume.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(id: &str, tags: &[&str]) -> Image {
        Image::from_raw(
            json!({"Id": id, "RepoTags": tags, "RepoDigests": []})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[test]
    fn references_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_reference("busybox:1"), ("busybox", Some("1")));
        assert_eq!(
            split_reference("localhost:5000/busybox"),
            ("localhost:5000/busybox", None)
        );
        assert_eq!(
            split_reference("localhost:5000/b:2"),
            ("localhost:5000/b", Some("2"))
        );
        assert_eq!(split_reference("b@sha256:ab"), ("b", Some("sha256:ab")));
    }

    #[test]
    fn images_match_by_id_prefix_repository_and_tag() {
        let img = image("sha256:abcdef0123", &["busybox:latest", "me/busy:1"]);
        assert!(image_matches(&img, "sha256:abcdef0123", true));
        assert!(image_matches(&img, "abcd", true));
        assert!(!image_matches(&img, "ab", true));
        assert!(image_matches(&img, "busybox", true));
        assert!(image_matches(&img, "busybox:latest", true));
        assert!(!image_matches(&img, "busybox:2", true));
        assert!(image_matches(&img, "busybox:2", false));
        assert!(!image_matches(&img, "docker.io/library/busybox", true));
        assert!(image_matches(&img, "me/busy:1", true));
    }
}
