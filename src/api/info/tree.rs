//! The `/info` node tree: each engine's `SystemStatus` rows and counts ([`InfoPart`], rendered
//! from its health, cache and specs), the tree of every engine's rows in natural order of names
//! with the cluster totals ([`InfoTree`], kept while no engine changed), and the reservation
//! and size formatting those rows show.
//!
//! It reads engine state only: it must not contact an engine, build the `/info` body or know
//! any route; the handler in the parent module does that.
use std::sync::Arc;

use crate::cluster::cache::EngineCache;
use crate::cluster::memo::PerEngine;
use crate::cluster::{Engine, EngineSpecs, EngineState};
use crate::scheduler::resources::{shares_to_cpus, total_with_overcommit};

/// Formats a byte count as Docker does for `Reserved Memory`: `%.4g` and a binary unit.
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{} {}", format_g4(size), UNITS[i])
}

/// Go's `%.4g` for the non-negative values sizes take.
fn format_g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..4).contains(&exp) {
        let s = format!("{:.3e}", v);
        // Rust prints `1.235e5`; Go prints `1.235e+05` and trims zeros.
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = trim_zeros(mant);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (3 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, v))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Natural ordering of names: digit runs compare numerically (`node-2` < `node-10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut ai, mut bi) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let mut na = String::new();
                while let Some(c) = ai.peek().copied().filter(char::is_ascii_digit) {
                    na.push(c);
                    ai.next();
                }
                let mut nb = String::new();
                while let Some(c) = bi.peek().copied().filter(char::is_ascii_digit) {
                    nb.push(c);
                    bi.next();
                }
                let (ta, tb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                ai.next();
                bi.next();
            }
        }
    }
}

/// Used and total reservations of one engine.
pub struct Reservations {
    pub used_cpus: i64,
    pub total_cpus: i64,
    pub used_memory: i64,
    pub total_memory: i64,
}

/// Reservations of an engine, with overcommit applied to the totals (SPEC §3.6).
pub fn reservations(engine: &Engine, overcommit: f64) -> Reservations {
    reservations_of(&engine.cache(), engine.specs().as_deref(), overcommit)
}

/// Reservations of the containers in `cache` on an engine with `specs`, counted as the
/// scheduler counts them. The numbers are the engine's, so sums saturate instead of wrapping
/// (two containers reserving `i64::MAX` bytes once showed `Reserved Memory: -2 B`).
fn reservations_of(
    cache: &EngineCache,
    specs: Option<&EngineSpecs>,
    overcommit: f64,
) -> Reservations {
    let (cpus, memory) = specs.map(|s| (s.cpus, s.memory)).unwrap_or((0, 0));
    let mut used_cpus: i64 = 0;
    let mut used_memory: i64 = 0;
    for c in cache.containers.values() {
        used_memory = used_memory.saturating_add(c.details.memory);
        used_cpus = used_cpus.saturating_add(shares_to_cpus(c.details.cpu_shares, cpus));
    }
    Reservations {
        used_cpus,
        total_cpus: total_with_overcommit(cpus, overcommit),
        used_memory,
        total_memory: total_with_overcommit(memory, overcommit),
    }
}

/// How many distinct images `parts` hold: an image on several engines is one image in the
/// merged `docker images` list, and counts once.
fn distinct_images(parts: &[Arc<InfoPart>]) -> i64 {
    let ids: std::collections::HashSet<&str> = parts
        .iter()
        .flat_map(|p| p.image_ids.iter().map(|id| &**id))
        .collect();
    ids.len() as i64
}

/// Adds one engine's counts to the cluster totals, saturating (the counts are the engines').
fn add_to_totals(totals: &mut InfoPart, part: &InfoPart) {
    for (total, value) in [
        (&mut totals.containers, part.containers),
        (&mut totals.running, part.running),
        (&mut totals.paused, part.paused),
        (&mut totals.stopped, part.stopped),
        (&mut totals.images, part.images),
        (&mut totals.cpus, part.cpus),
        (&mut totals.memory, part.memory),
    ] {
        *total = total.saturating_add(value);
    }
}

/// One engine's `SystemStatus` rows and what it adds to the totals, rendered from its current
/// health, cache and specs.
fn node_rows(engine: &Engine, overcommit: f64) -> InfoPart {
    let (health, cache, specs) = (engine.health(), engine.cache(), engine.specs());
    let (health, cache, specs) = (&health, &*cache, specs.as_deref());
    let mut part = InfoPart::default();
    for c in cache.containers.values() {
        part.containers += 1;
        if c.details.state.paused {
            part.paused += 1;
        } else if c.details.state.running {
            part.running += 1;
        } else {
            part.stopped += 1;
        }
    }
    part.image_ids = cache.images.iter().map(|i| i.id.as_str().into()).collect();
    part.images = part.image_ids.len() as i64;
    let mut rows: Vec<[String; 2]> = Vec::with_capacity(11);
    let r = reservations_of(cache, specs, overcommit);
    part.cpus = r.total_cpus;
    part.memory = r.total_memory;
    let name = specs
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "(unknown)".into());
    rows.push([format!(" {name}"), engine.addr.clone()]);
    rows.push([
        "  └ ID".into(),
        specs.map(|s| s.id.clone()).unwrap_or_default(),
    ]);
    rows.push(["  └ Status".into(), health.state.as_str().into()]);
    let total = cache.containers.len();
    let containers = if health.state == EngineState::Healthy {
        let (running, paused, stopped) = (part.running, part.paused, part.stopped);
        format!("{total} ({running} Running, {paused} Paused, {stopped} Stopped)")
    } else {
        total.to_string()
    };
    rows.push(["  └ Containers".into(), containers]);
    rows.push([
        "  └ Reserved CPUs".into(),
        format!("{} / {}", r.used_cpus, r.total_cpus),
    ]);
    rows.push([
        "  └ Reserved Memory".into(),
        format!(
            "{} / {}",
            human_size(r.used_memory as f64),
            human_size(r.total_memory as f64)
        ),
    ]);
    let mut labels: Vec<String> = specs
        .map(|s| s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    labels.sort();
    rows.push(["  └ Labels".into(), labels.join(", ")]);
    if !health.error.is_empty() {
        rows.push(["  └ Error".into(), health.error.clone()]);
    }
    let updated: chrono::DateTime<chrono::Utc> = health.updated_at.into();
    rows.push([
        "  └ UpdatedAt".into(),
        updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ]);
    rows.push([
        "  └ ServerVersion".into(),
        specs.map(|s| s.version.clone()).unwrap_or_default(),
    ]);
    let json = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
    part.rows = json[1..json.len() - 1].to_string();
    part.name = specs
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "(unknown)".into());
    part
}

/// One engine's share of `/info`: its `SystemStatus` rows and what it adds to the totals.
#[derive(Debug, Default)]
pub struct InfoPart {
    /// The node name, the rows' sort key.
    pub name: String,
    /// The rows as JSON array elements joined by commas.
    pub rows: String,
    pub containers: i64,
    pub running: i64,
    pub paused: i64,
    pub stopped: i64,
    /// In a part: the engine's image count; in the totals: the number of distinct images
    /// across the validated engines (what one engine holding them all would report).
    pub images: i64,
    /// The IDs of the engine's images (every image, as an engine counts them), for the
    /// distinct count of the totals.
    pub image_ids: Vec<Box<str>>,
    /// CPUs and memory with overcommit applied.
    pub cpus: i64,
    pub memory: i64,
}

impl InfoPart {
    /// The counts alone, without name and rows.
    pub fn totals(&self) -> InfoPart {
        InfoPart {
            containers: self.containers,
            running: self.running,
            paused: self.paused,
            stopped: self.stopped,
            images: self.images,
            cpus: self.cpus,
            memory: self.memory,
            ..InfoPart::default()
        }
    }
}

/// What `/info` keeps between requests: each engine's part, rendered again only when the
/// engine's generation moved, and the node tree (every engine's rows, in natural order of
/// names) with the totals of the validated engines, kept until some engine's part changes:
/// most requests copy it.
#[derive(Default)]
pub struct InfoTree {
    /// Each engine's last part, with the engine generation it shows.
    parts: PerEngine<Option<(u64, Arc<InfoPart>)>>,
    tree: std::sync::Mutex<Option<InfoTreeMemo>>,
}

struct InfoTreeMemo {
    parts: Vec<Arc<InfoPart>>,
    validated: usize,
    tree: Arc<Vec<u8>>,
    totals: InfoPart,
}

impl InfoTree {
    /// The parts of `engines`, each rendered again only when its engine changed since.
    pub(super) fn parts<'a>(
        &self,
        engines: impl Iterator<Item = &'a Arc<Engine>>,
        overcommit: f64,
    ) -> Vec<Arc<InfoPart>> {
        self.parts.pass(|pass| {
            engines
                .map(|engine| {
                    // Read before the state: a change while rendering leaves the memo behind it.
                    let generation = engine.generation();
                    let slot = pass.slot(engine);
                    match slot {
                        Some((shown, part)) if *shown == generation => part.clone(),
                        _ => {
                            let part = Arc::new(node_rows(engine, overcommit));
                            *slot = Some((generation, part.clone()));
                            part
                        }
                    }
                })
                .collect()
        })
    }

    /// The tree and totals for `parts` (validated engines first).
    pub(super) fn get(
        &self,
        parts: Vec<Arc<InfoPart>>,
        validated: usize,
    ) -> (Arc<Vec<u8>>, InfoPart) {
        let mut memo = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = memo.as_ref() {
            let same = m.validated == validated
                && m.parts.len() == parts.len()
                && m.parts.iter().zip(&parts).all(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                return (m.tree.clone(), m.totals.totals());
            }
        }
        let mut totals = InfoPart::default();
        for p in &parts[..validated] {
            add_to_totals(&mut totals, p);
        }
        totals.images = distinct_images(&parts[..validated]);
        let mut sorted: Vec<&Arc<InfoPart>> = parts.iter().collect();
        sorted.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        let mut tree = Vec::with_capacity(sorted.iter().map(|p| p.rows.len() + 1).sum());
        for p in sorted {
            if !p.rows.is_empty() {
                tree.push(b',');
                tree.extend_from_slice(p.rows.as_bytes());
            }
        }
        let tree = Arc::new(tree);
        let out = (tree.clone(), totals.totals());
        *memo = Some(InfoTreeMemo {
            parts,
            validated,
            tree,
            totals,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::version::MAX_API;
    use crate::cluster::health::Outcome;

    #[test]
    fn sizes_format_like_docker() {
        assert_eq!(human_size(0.0), "0 B");
        assert_eq!(human_size(20.0 * 1024.0 * 1024.0), "20 MiB");
        assert_eq!(human_size(26_543_865_446.0), "24.72 GiB");
        assert_eq!(human_size(1023.0), "1023 B");
        assert_eq!(human_size(1536.0), "1.5 KiB");
    }

    /// A cache of containers reserving `(memory, cpu_shares)` each.
    fn cache_with(reservations: &[(i64, i64)]) -> EngineCache {
        use crate::cluster::cache::{Container, ContainerDetails};
        let containers = reservations
            .iter()
            .enumerate()
            .map(|(i, &(memory, cpu_shares))| {
                let id = format!("c{i}");
                let summary = serde_json::from_str(&json!({"Id": id}).to_string()).unwrap();
                let mut details = ContainerDetails::default();
                details.memory = memory;
                details.cpu_shares = cpu_shares;
                (id, Arc::new(Container::new(summary, details, i as u64)))
            })
            .collect();
        let mut cache = EngineCache::default();
        cache.containers = Arc::new(containers);
        cache
    }

    fn specs(cpus: i64, memory: i64) -> EngineSpecs {
        EngineSpecs {
            id: "ID|127.0.0.1:1".into(),
            daemon_id: "ID".into(),
            name: "node-0".into(),
            cpus,
            memory,
            labels: Default::default(),
            version: String::new(),
            api_version: MAX_API,
            ip: "127.0.0.1".into(),
            read_at: tokio::time::Instant::now(),
        }
    }

    #[test]
    fn reservations_count_like_the_scheduler() {
        let cache = cache_with(&[(1 << 20, 512), (2 << 20, 1024)]);
        let r = reservations_of(&cache, Some(&specs(4, 100 << 30)), 0.05);
        assert_eq!((r.used_memory, r.used_cpus), (3 << 20, 2 + 4));
        assert_eq!((r.total_memory, r.total_cpus), (105 << 30, 4));
    }

    #[test]
    fn huge_engine_reported_reservations_saturate_instead_of_wrapping() {
        let cache = cache_with(&[(i64::MAX, i64::MAX), (i64::MAX, i64::MAX)]);
        let r = reservations_of(&cache, Some(&specs(i64::MAX, i64::MAX)), 0.05);
        assert_eq!(r.used_memory, i64::MAX);
        assert_eq!(r.used_cpus, i64::MAX);
        assert_eq!((r.total_memory, r.total_cpus), (i64::MAX, i64::MAX));
        assert_eq!(human_size(r.used_memory as f64), "8 EiB");
    }

    #[test]
    fn cluster_totals_saturate_instead_of_wrapping() {
        let huge = InfoPart {
            containers: i64::MAX,
            running: i64::MAX,
            paused: 1,
            stopped: 2,
            images: i64::MAX,
            cpus: i64::MAX,
            memory: i64::MAX,
            ..Default::default()
        };
        let mut totals = InfoPart::default();
        add_to_totals(&mut totals, &huge);
        add_to_totals(&mut totals, &huge);
        assert_eq!(
            (totals.containers, totals.running, totals.images),
            (i64::MAX, i64::MAX, i64::MAX)
        );
        assert_eq!((totals.cpus, totals.memory), (i64::MAX, i64::MAX));
        assert_eq!((totals.paused, totals.stopped), (2, 4));
    }

    #[test]
    fn an_image_on_several_engines_counts_once_as_in_the_merged_list() {
        let part = |name: &str, ids: &[&str]| {
            Arc::new(InfoPart {
                name: name.into(),
                images: ids.len() as i64,
                image_ids: ids.iter().map(|id| (*id).into()).collect(),
                ..Default::default()
            })
        };
        let parts = vec![
            part("node-1", &["sha256:busybox", "sha256:app"]),
            part("node-2", &["sha256:busybox"]),
            part("pending", &["sha256:other"]),
        ];
        let (_, totals) = InfoTree::default().get(parts, 2);
        assert_eq!(
            totals.images, 2,
            "busybox once, app once; a pending engine's not at all"
        );
    }

    #[tokio::test]
    async fn node_rows_are_rendered_again_after_every_change_and_only_then() {
        let e = crate::cluster::engine::test_engine();
        let info = InfoTree::default();
        let part = || info.parts(std::iter::once(&e), 0.05).remove(0);
        let status = |part: &InfoPart| part.rows.contains(r#""  └ Status","Healthy""#);
        let first = part();
        assert!(first.rows.contains("Pending"), "{}", first.rows);
        assert!(Arc::ptr_eq(&first, &part()), "nothing changed");
        e.activate();
        assert!(status(&part()));
        e.record(Outcome::Unreachable("refused".into()));
        assert!(part().rows.contains("Unhealthy"));
        e.record(Outcome::Answered);
        let healthy = part();
        assert!(status(&healthy));
        e.forget_container("nothing");
        assert!(!Arc::ptr_eq(&healthy, &part()), "the cache changed");
        e.disconnect();
        assert!(part().rows.contains("Disconnected"));
    }

    #[test]
    fn natural_sort_compares_numbers_numerically() {
        let mut v = vec!["node-10", "node-2", "(unknown)", "node-1", "alpha"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["(unknown)", "alpha", "node-1", "node-2", "node-10"]);
    }
}
