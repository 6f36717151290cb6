//! The refresh loop and the cache writer. The loop probes the engine, re-reads stale specs and
//! re-lists containers, with jitter and back-off; images, networks and volumes only when the
//! events stream may have missed a change of them ([`others_due`]). Every write of
//! the engine's cache goes through [`Engine::update_cache`] (one writer at a time), and container
//! reads carry tickets so that an older read never overwrites a newer one's write
//! ([`super::super::order`]). The directory of names and IDs is updated in step with the cache.
//! Nothing outside this file writes the cache: the events monitor asks for a [`Reread`], and
//! call flows use [`Engine::forget_container`], [`Engine::restore_container`] and
//! [`Engine::add_exec_id`].
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::super::cache::listing::{prerender, NodeText};
use super::super::cache::{entry_hash, Container, ContainerDetails, EngineCache, Image, Summary};
use super::super::directory::tag;
use super::super::health::{refresh_delay, EngineState};
use super::super::order::WriteOrder;
use super::super::transport::empty;
use super::{Engine, EngineError};
use crate::cluster::cache::Record;
use tokio::time::Instant;

/// A container list that came back within this share of the ping's limit (an eighth: 250 ms
/// to 625 ms) lets the next refresh skip the ping and hold its list to that limit instead.
const PROMPT_SHARE: u32 = 8;
/// Specs of a healthy engine are re-read this often.
const SPECS_REFRESH: Duration = Duration::from_secs(300);
/// Images, networks and volumes kept current by the events stream are still re-listed this
/// often: a safety net for a change whose event never came or whose re-read went wrong
/// unnoticed. Fixed in this build.
pub(super) const OTHERS_RELIST_MAX: Duration = Duration::from_secs(300);
/// Slots of [`Engine::list_hashes`].
const IMAGES: usize = 0;
const NETWORKS: usize = 1;
const VOLUMES: usize = 2;

impl Engine {
    /// Whether the engine answers `GET /_ping` within the probe timeout (the refresh loop's
    /// liveness check: a frozen engine accepts connections but answers nothing).
    async fn probe(&self) -> Result<(), EngineError> {
        let req = Request::builder()
            .uri(self.uri(None, "/_ping"))
            .body(empty())
            .map_err(|e| self.invalid(e))?;
        let limit = self.opts.probe_timeout();
        let read = async {
            let resp = self.send_within(req, Some(limit)).await?;
            // The body is two bytes; reading it returns the connection to the pool.
            let _ = resp.into_body().collect().await;
            Ok(())
        };
        match tokio::time::timeout(limit, read).await {
            Ok(r) => r,
            Err(_) => Err(self.timed_out(limit)),
        }
    }

    /// The refresh loop, from activation until the engine is disconnected.
    pub(super) async fn refresh_loop(self: Arc<Self>) {
        loop {
            let failures = self.health().failures;
            let delay = refresh_delay(
                self.opts.refresh_min,
                self.opts.refresh_max,
                failures,
                self.opts.failure_retry,
                rand::random::<f64>(),
            );
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake.notified() => {}
            }
            // Boxed: the loop's task is allocated at the size of its largest state, and it
            // sleeps far longer than it refreshes, so the refresh's state lives on the heap only
            // while it runs (a few KB per engine, times thousands of engines).
            Box::pin(self.refresh_once()).await;
        }
    }

    /// One pass of the refresh loop: ping, specs when due, containers, then the other objects
    /// when the events may not have kept them current.
    async fn refresh_once(&self) {
        let limit = self.opts.probe_timeout();
        let stale = self
            .specs()
            .is_none_or(|s| s.read_at.elapsed() >= SPECS_REFRESH);
        let healthy = self.state() == EngineState::Healthy;
        let listed = if healthy && !stale && self.lists_promptly(limit) {
            // The list stands in for the ping: it must come back within the ping's limit, so
            // a frozen engine is found out as soon as the ping would have found it out.
            self.refresh_containers_within(Some(limit)).await
        } else {
            if let Err(err) = self.probe().await {
                tracing::debug!(engine = %self.addr, error = %err, "Engine did not answer its ping");
                return;
            }
            if !healthy || stale {
                if let Err(err) = self.update_specs().await {
                    tracing::debug!(engine = %self.addr, error = %err, "Update engine specs failed");
                    return;
                }
            }
            self.refresh_containers().await
        };
        if listed.is_ok() && self.others_due() {
            self.refresh_others().await;
        }
    }

    /// Whether the engine's last container list came back whole within a small share of
    /// `limit` ([`PROMPT_SHARE`]), so that the next one may be held to `limit`.
    fn lists_promptly(&self, limit: Duration) -> bool {
        let took = self.last_list_micros.load(Ordering::Relaxed);
        took != 0 && Duration::from_micros(took) * PROMPT_SHARE <= limit
    }

    /// Whether this refresh re-lists images, networks and volumes (see [`others_due`]).
    fn others_due(&self) -> bool {
        let last = *self.others_listed.lock().unwrap_or_else(|e| e.into_inner());
        others_due(
            last,
            self.events_epoch.load(Ordering::Acquire),
            Instant::now(),
        )
    }

    /// The events stream is up: from now on it carries every change.
    pub(super) fn events_stream_up(&self) {
        self.bump_events_epoch(true);
    }

    /// The events stream broke: changes may be missed until it is up again and a refresh has
    /// re-listed.
    pub(super) fn events_stream_down(&self) {
        self.bump_events_epoch(false);
    }

    /// Has the next refresh re-list images, networks and volumes: the engine was just
    /// validated or came back, or an event's re-read failed. A re-list in flight does not
    /// count either (its events count is behind).
    pub(super) fn others_may_be_stale(&self) {
        let streaming = self.events_epoch.load(Ordering::Acquire) % 2 == 1;
        self.bump_events_epoch(streaming);
        *self.others_listed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Moves the events count on to its next odd (`streaming`) or even value.
    fn bump_events_epoch(&self, streaming: bool) {
        let _ = self
            .events_epoch
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                Some(next_epoch(e, streaming))
            });
    }

    /// Re-lists every container; inspects new ones and ones whose state changed. Entries the
    /// engine lists exactly as before keep their records, and an unchanged list publishes
    /// nothing (the memoised snapshots and `/info` rows stay valid).
    pub async fn refresh_containers(&self) -> Result<(), EngineError> {
        self.refresh_containers_within(None).await
    }

    /// [`Engine::refresh_containers`], with the list itself (not the inspects that follow)
    /// held to `limit` when one is given; a list that takes longer counts as a timed-out call.
    async fn refresh_containers_within(&self, limit: Option<Duration>) -> Result<(), EngineError> {
        let ticket = self.read_ticket();
        let asked = Instant::now();
        let listing = self.get_body("/containers/json?all=1");
        let body = match limit {
            None => listing.await?,
            Some(limit) => match tokio::time::timeout(limit, listing).await {
                Ok(body) => body?,
                Err(_) => return Err(self.timed_out(limit)),
            },
        };
        let took = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_list_micros.store(took.max(1), Ordering::Relaxed);
        let entries: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(&body).map_err(|e| self.invalid(e))?;
        let known = self.cache().containers.clone();
        let mut kept: Vec<Arc<Container>> = Vec::with_capacity(entries.len());
        let mut todo: Vec<(Summary, u64, Option<Arc<Container>>)> = Vec::new();
        for raw in entries {
            let hash = entry_hash(raw.get().as_bytes());
            let id = serde_json::from_str::<IdOnly>(raw.get())
                .map(|i| i.id)
                .unwrap_or_default();
            let cached = known.get(id.as_str()).cloned();
            match cached {
                Some(c) if c.entry_hash == hash => kept.push(c),
                cached => {
                    let summary: Summary =
                        serde_json::from_str(raw.get()).map_err(|e| self.invalid(e))?;
                    todo.push((summary, hash, cached));
                }
            }
        }
        if todo.is_empty() && kept.len() == known.len() {
            return Ok(());
        }
        drop(body);
        // One inspect at a time: each one in flight holds a pooled connection (about 25 KB of
        // buffers), and across a thousand engines the CPU is saturated long before per-engine
        // parallelism would matter (measured: one at a time validates 1,000 engines as fast as
        // eight, with 40% of the memory).
        let mut records: Vec<Arc<Container>> = Vec::with_capacity(todo.len());
        for (summary, hash, cached) in todo {
            match cached {
                Some(c) if !needs_inspect(&c, &summary) => {
                    records.push(Arc::new(Container::new(summary, c.details.clone(), hash)));
                }
                _ if summary.id.is_empty() => {}
                _ => match self.inspect(&summary.id).await {
                    Ok(details) => records.push(Arc::new(Container::new(summary, details, hash))),
                    Err(err) => {
                        tracing::debug!(engine = %self.addr, container = %summary.id, error = %err, "Inspect failed during refresh");
                    }
                },
            }
        }
        let map: HashMap<String, Arc<Container>> = kept
            .into_iter()
            .chain(records)
            .map(|c| (c.id.clone(), c))
            .collect();
        self.write_containers(&ticket, ContainerWrite::All(map));
        Ok(())
    }

    /// A ticket for a container read about to start (see [`super::order`]).
    fn read_ticket(&self) -> ReadTicket<'_> {
        let ticket = self
            .write_order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue();
        ReadTicket {
            order: &self.write_order,
            ticket,
        }
    }

    /// Writes what the read with `ticket` found, except for containers a newer read has
    /// written since: those keep what the cache shows.
    fn write_containers(&self, ticket: &ReadTicket<'_>, write: ContainerWrite) {
        self.prerender_list_entries(&write);
        let ticket = ticket.ticket;
        self.update_cache(|cache| {
            let mut order = self.write_order.lock().unwrap_or_else(|e| e.into_inner());
            match write {
                ContainerWrite::All(mut listed) => {
                    for id in order.newer_than(ticket) {
                        match cache.containers.get(id) {
                            Some(c) => listed.insert(id.to_string(), c.clone()),
                            None => listed.remove(id),
                        };
                    }
                    if order.older_in_flight(ticket) {
                        for id in cache.containers.keys().chain(listed.keys()) {
                            order.wrote(id, ticket);
                        }
                    }
                    cache.containers = Arc::new(listed);
                }
                ContainerWrite::One(id, record) => {
                    if !order.may_write(&id, ticket) {
                        return;
                    }
                    order.wrote(&id, ticket);
                    let mut map = (*cache.containers).clone();
                    match record {
                        Some(c) => map.insert(id, c),
                        None => map.remove(&id),
                    };
                    cache.containers = Arc::new(map);
                }
            }
        });
    }

    /// Renders the fixed parts of the `docker ps` entries of records about to be written, here
    /// rather than in the first list that shows them: that list would otherwise pay for every
    /// record written since the last one. Records that already hold them are skipped.
    fn prerender_list_entries(&self, write: &ContainerWrite) {
        let Some(specs) = self.specs() else {
            return;
        };
        let node = NodeText::of(&specs.name, specs.ip.clone(), true);
        match write {
            ContainerWrite::All(listed) => listed.values().for_each(|c| prerender(c, &node)),
            ContainerWrite::One(_, Some(c)) => prerender(c, &node),
            ContainerWrite::One(_, None) => {}
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerDetails, EngineError> {
        let raw = self.get_body(&format!("/containers/{id}/json")).await?;
        ContainerDetails::from_inspect(&raw).map_err(|e| self.invalid(e))
    }

    /// Refreshes one container from a filtered list plus an inspect; drops it when gone.
    pub async fn refresh_container(&self, id: &str) -> Result<(), EngineError> {
        if id.is_empty() {
            return Ok(());
        }
        let ticket = self.read_ticket();
        let filters = format!("{{\"id\":[\"{}\"]}}", id.replace(['"', '\\'], ""));
        let path = format!(
            "/containers/json?all=1&filters={}",
            percent_encoding::utf8_percent_encode(&filters, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = self.get_body(&path).await?;
        let entries: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(&body).map_err(|e| self.invalid(e))?;
        let mut found = None;
        for raw in entries {
            let summary: Summary = serde_json::from_str(raw.get()).map_err(|e| self.invalid(e))?;
            if summary.id == id {
                found = Some((summary, entry_hash(raw.get().as_bytes())));
                break;
            }
        }
        let record = match found {
            Some((summary, hash)) => match self.inspect(id).await {
                Ok(details) => Some(Arc::new(Container::new(summary, details, hash))),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        self.write_containers(&ticket, ContainerWrite::One(id.to_string(), record));
        Ok(())
    }

    /// Drops a container from the cache (rescheduling frees its name before re-creating it).
    /// Reads already in flight cannot bring it back.
    pub fn forget_container(&self, id: &str) {
        let ticket = self.read_ticket();
        self.write_containers(&ticket, ContainerWrite::One(id.to_string(), None));
    }

    /// Puts a container record back into the cache.
    pub fn restore_container(&self, c: Arc<Container>) {
        let ticket = self.read_ticket();
        self.write_containers(&ticket, ContainerWrite::One(c.id.clone(), Some(c)));
    }

    /// Records an exec created through the manager, so `/exec/{id}/…` can be routed at once.
    pub fn add_exec_id(&self, container_id: &str, exec_id: &str) {
        self.update_cache(|cache| {
            if let Some(c) = cache.containers.get(container_id) {
                let mut c = (**c).clone();
                c.details.add_exec(exec_id);
                let mut map = (*cache.containers).clone();
                map.insert(container_id.to_string(), Arc::new(c));
                cache.containers = Arc::new(map);
            }
        });
    }

    /// Re-reads what an event says changed (the events monitor's only way to the cache).
    pub(super) async fn reread(self: &Arc<Self>, what: Reread<'_>) -> Result<(), EngineError> {
        match what {
            Reread::Nothing => Ok(()),
            Reread::Container(id) => self.refresh_container(id).await,
            Reread::Images => {
                self.schedule_images_refresh();
                Ok(())
            }
            Reread::Specs => self.update_specs().await,
            Reread::Network(id) => self.missed_on_error(self.refresh_network(id).await),
            Reread::Volume(name) => self.missed_on_error(self.refresh_volume(name).await),
            Reread::Networks => self.missed_on_error(self.refresh_networks().await),
            Reread::Volumes => self.missed_on_error(self.refresh_volumes().await),
        }
    }

    /// Passes on the result of an event's re-read; a failed one leaves the change its event
    /// announced out of the cache, so the next refresh re-lists.
    fn missed_on_error(&self, result: Result<(), EngineError>) -> Result<(), EngineError> {
        if result.is_err() {
            self.others_may_be_stale();
        }
        result
    }

    /// Refreshes images, networks and volumes; errors are logged and ignored, and leave the
    /// next refresh to re-list them again.
    pub async fn refresh_others(&self) {
        let listed = OthersListed {
            at: Instant::now(),
            epoch: self.events_epoch.load(Ordering::Acquire),
        };
        // One after the other: one pooled connection per engine serves the whole refresh.
        let images = self.refresh_images().await;
        let networks = self.refresh_networks().await;
        let volumes = self.refresh_volumes().await;
        let mut complete = true;
        for (what, result) in [
            ("images", images),
            ("networks", networks),
            ("volumes", volumes),
        ] {
            if let Err(err) = result {
                complete = false;
                tracing::debug!(engine = %self.addr, error = %err, "Refreshing {what} failed");
            }
        }
        *self.others_listed.lock().unwrap_or_else(|e| e.into_inner()) = complete.then_some(listed);
    }

    /// Re-lists images shortly, once for a whole burst of image events.
    pub(super) fn schedule_images_refresh(self: &Arc<Self>) {
        if self.images_refresh_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let engine = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = engine.cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            engine
                .images_refresh_pending
                .store(false, Ordering::Release);
            if let Err(err) = engine.refresh_images().await {
                tracing::debug!(engine = %engine.addr, error = %err, "Refreshing images failed");
                engine.others_may_be_stale();
            }
        });
    }

    /// Re-lists images.
    pub async fn refresh_images(&self) -> Result<(), EngineError> {
        let body = self.get_body("/images/json?all=1").await?;
        if self.list_unchanged(IMAGES, &body) {
            return Ok(());
        }
        let list: Vec<Map<String, Value>> =
            serde_json::from_slice(&body).map_err(|e| self.invalid(e))?;
        let images: Vec<Arc<Image>> = list
            .into_iter()
            .map(|m| Arc::new(Image::from_raw(m)))
            .collect();
        self.update_cache(|cache| cache.images = Arc::new(images));
        Ok(())
    }

    /// Re-lists networks.
    pub async fn refresh_networks(&self) -> Result<(), EngineError> {
        let body = self.get_body("/networks").await?;
        if self.list_unchanged(NETWORKS, &body) {
            return Ok(());
        }
        let list: Vec<Map<String, Value>> =
            serde_json::from_slice(&body).map_err(|e| self.invalid(e))?;
        let map = list
            .iter()
            .filter_map(|n| {
                let id = n.get("Id")?.as_str()?.to_string();
                Some((id, Arc::new(Record::from_object(n))))
            })
            .collect();
        self.update_cache(|cache| cache.networks = Arc::new(map));
        Ok(())
    }

    /// Re-lists volumes.
    pub async fn refresh_volumes(&self) -> Result<(), EngineError> {
        let raw = self.get_body("/volumes").await?;
        if self.list_unchanged(VOLUMES, &raw) {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(&raw).map_err(|e| self.invalid(e))?;
        let map = body
            .get("Volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let name = v.get("Name")?.as_str()?.to_string();
                Some((name, Arc::new(Record::from_object(v.as_object()?))))
            })
            .collect();
        self.update_cache(|cache| cache.volumes = Arc::new(map));
        Ok(())
    }

    /// Whether a list body is the one read last time for `which`; remembers it otherwise.
    fn list_unchanged(&self, which: usize, body: &[u8]) -> bool {
        let hash = entry_hash(body).max(1);
        self.list_hashes[which].swap(hash, Ordering::AcqRel) == hash
    }

    /// Re-inspects one network; drops it when the engine no longer has it.
    pub async fn refresh_network(&self, id: &str) -> Result<(), EngineError> {
        if id.is_empty() {
            // `/networks/` is the list, not one network: it must never be cached as one.
            return self.refresh_networks().await;
        }
        self.list_hashes[NETWORKS].store(0, Ordering::Release);
        let fresh = self.inspect_record(&format!("/networks/{id}")).await?;
        self.update_cache(|cache| {
            let mut map = (*cache.networks).clone();
            match fresh {
                Some(n) => {
                    let key = if n.id().is_empty() { id } else { n.id() };
                    map.insert(key.to_string(), Arc::new(n));
                }
                None => {
                    map.retain(|k, n| k != id && n.name() != id);
                }
            }
            cache.networks = Arc::new(map);
        });
        Ok(())
    }

    /// Re-inspects one volume; drops it when the engine no longer has it.
    pub async fn refresh_volume(&self, name: &str) -> Result<(), EngineError> {
        if name.is_empty() {
            // `/volumes/` is the list, not one volume: it must never be cached as one.
            return self.refresh_volumes().await;
        }
        self.list_hashes[VOLUMES].store(0, Ordering::Release);
        let fresh = self.inspect_record(&format!("/volumes/{name}")).await?;
        self.update_cache(|cache| {
            let mut map = (*cache.volumes).clone();
            match fresh {
                Some(v) => {
                    map.insert(name.to_string(), Arc::new(v));
                }
                None => {
                    map.remove(name);
                }
            }
            cache.volumes = Arc::new(map);
        });
        Ok(())
    }

    /// A network or volume inspect at `path`; `None` when the engine no longer has it.
    async fn inspect_record(&self, path: &str) -> Result<Option<Record>, EngineError> {
        match self.get_json::<Map<String, Value>>(path).await {
            Ok(object) => Ok(Some(Record::from_object(&object))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the engine's containers out of the cluster's directory once it is disconnected
    /// (under the writer's lock, so that no write in flight puts one back).
    pub(super) fn release_directory(&self) {
        let _writer = self.cache_write.lock().unwrap_or_else(|e| e.into_inner());
        let cache = self.cache.load();
        self.directory
            .remove(tag::<Engine>(self), cache.containers.values().map(|c| &**c));
    }

    fn update_cache(&self, f: impl FnOnce(&mut EngineCache)) {
        let _writer = self.cache_write.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.cache.load_full();
        let mut next = (*old).clone();
        next.reset_index();
        f(&mut next);
        // New keys go in before the cache that shows them, gone ones out after: the directory
        // never misses a container a cache shows. A stopped engine adds nothing any more.
        let containers = next.containers.clone();
        let (added, removed) = changed_records(&old.containers, &containers);
        if !self.cancel.is_cancelled() {
            self.directory.add(tag::<Engine>(self), added);
        }
        self.cache.store(Arc::new(next));
        self.directory.remove(tag::<Engine>(self), removed);
        self.changed();
    }
}

/// When images, networks and volumes were last re-listed (all three without an error), and
/// the events count ([`Engine::events_stream_up`]) when that re-list started.
#[derive(Debug, Clone, Copy)]
pub(super) struct OthersListed {
    pub(super) at: Instant,
    pub(super) epoch: u64,
}

/// Whether a refresh at `now` re-lists images, networks and volumes, given their last re-list
/// and the events count now. The events monitor re-reads each of them on its events, so the
/// re-list is only a safety net: it is due when there was none since the engine was validated
/// or came back, when the events stream was not up at that re-list or has broken since (an
/// odd count that still stands means it streamed without a break), or when the re-list is
/// [`OTHERS_RELIST_MAX`] old.
pub(super) fn others_due(last: Option<OthersListed>, epoch: u64, now: Instant) -> bool {
    match last {
        None => true,
        Some(l) => {
            l.epoch % 2 == 0
                || l.epoch != epoch
                || now.saturating_duration_since(l.at) >= OTHERS_RELIST_MAX
        }
    }
}

/// The first events count after `epoch` that is odd (`streaming`) or even.
fn next_epoch(epoch: u64, streaming: bool) -> u64 {
    let next = epoch.wrapping_add(1);
    if (next % 2 == 1) == streaming {
        next
    } else {
        next.wrapping_add(1)
    }
}

/// What an engine event asks to be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reread<'a> {
    Nothing,
    /// One container, by ID.
    Container(&'a str),
    /// The image list, once for a burst of image events.
    Images,
    /// One network, by ID or name (never empty).
    Network(&'a str),
    /// One volume, by name (never empty).
    Volume(&'a str),
    /// The whole network list (a prune names no network).
    Networks,
    /// The whole volume list (a prune names no volume).
    Volumes,
    /// The engine's specs (its configuration was reloaded).
    Specs,
}

/// What one container read found.
enum ContainerWrite {
    /// The whole list: containers it does not hold are gone.
    All(HashMap<String, Arc<Container>>),
    /// One container, or `None` when it is gone.
    One(String, Option<Arc<Container>>),
}

/// A read's place in the order of container writes; handed back when the read ends.
struct ReadTicket<'a> {
    order: &'a Mutex<WriteOrder>,
    ticket: u64,
}

impl Drop for ReadTicket<'_> {
    fn drop(&mut self) {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .done(self.ticket);
    }
}

/// The records of `next` that `old` does not have as they are, and those of `old` that `next`
/// does not.
fn changed_records<'a>(
    old: &'a Arc<HashMap<String, Arc<Container>>>,
    next: &'a Arc<HashMap<String, Arc<Container>>>,
) -> (Vec<&'a Container>, Vec<&'a Container>) {
    if Arc::ptr_eq(old, next) {
        return (Vec::new(), Vec::new());
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (id, c) in next.iter() {
        match old.get(id) {
            Some(o) if Arc::ptr_eq(o, c) => {}
            Some(o) => {
                added.push(&**c);
                removed.push(&**o);
            }
            None => added.push(&**c),
        }
    }
    for (id, o) in old.iter() {
        if !next.contains_key(id) {
            removed.push(&**o);
        }
    }
    (added, removed)
}

fn needs_inspect(cached: &Container, summary: &Summary) -> bool {
    &*summary.state == "restarting"
        || cached.list_state() != &*summary.state
        || cached.list_status() != &*summary.status
            && !cached.state().eq_ignore_ascii_case("running")
}

/// Just the `Id` of a list entry.
#[derive(serde::Deserialize)]
struct IdOnly {
    #[serde(rename = "Id", default)]
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::engine::test_engine;

    #[test]
    fn only_a_prompt_last_list_lets_the_next_one_stand_in_for_the_ping() {
        let engine = test_engine();
        let limit = Duration::from_secs(2);
        assert!(!engine.lists_promptly(limit), "no list yet");
        engine.last_list_micros.store(20_000, Ordering::Relaxed);
        assert!(engine.lists_promptly(limit), "20 ms against 2 s");
        engine.last_list_micros.store(250_000, Ordering::Relaxed);
        assert!(engine.lists_promptly(limit), "an eighth of the limit");
        engine.last_list_micros.store(250_001, Ordering::Relaxed);
        assert!(!engine.lists_promptly(limit), "more than an eighth");
    }

    #[tokio::test]
    async fn the_directory_follows_the_cache() {
        let e = test_engine();
        let raw = r#"{"Id":"c1","Names":["/web"]}"#;
        let record = |hash| {
            Arc::new(Container::new(
                serde_json::from_str(raw).unwrap(),
                ContainerDetails::default(),
                hash,
            ))
        };
        let web = crate::cluster::cache::LookupKey::new("web");
        e.restore_container(record(1));
        assert_eq!(e.directory.holders(&web), [tag::<Engine>(&e)]);
        // A newer record of the same container keeps it listed once.
        e.restore_container(record(2));
        e.forget_container("c1");
        assert!(e.directory.holders(&web).is_empty());
        e.restore_container(record(3));
        e.disconnect();
        assert!(
            e.directory.holders(&web).is_empty(),
            "a stopped engine holds nothing"
        );
        e.restore_container(record(4));
        assert!(e.directory.holders(&web).is_empty(), "and adds nothing");
    }

    #[tokio::test]
    async fn a_refresh_that_listed_before_a_change_does_not_undo_it() {
        let e = test_engine();
        let record = |id: &str, name: &str| {
            let raw = format!(r#"{{"Id":"{id}","Names":["/{name}"]}}"#);
            Arc::new(Container::new(
                serde_json::from_str(&raw).unwrap(),
                ContainerDetails::default(),
                1,
            ))
        };
        let names = |e: &Engine| {
            let mut n: Vec<String> = e
                .cache()
                .containers
                .values()
                .map(|c| format!("{}={}", c.id, c.names().next().unwrap_or("")))
                .collect();
            n.sort();
            n
        };
        e.restore_container(record("c1", "test"));
        e.restore_container(record("c2", "gone"));
        // A full refresh lists the containers…
        let refresh = e.read_ticket();
        let listed: HashMap<String, Arc<Container>> = [
            ("c1".to_string(), record("c1", "test")),
            ("c2".to_string(), record("c2", "gone")),
        ]
        .into();
        // …then a rename and a removal are read and written…
        e.restore_container(record("c1", "renamed"));
        e.forget_container("c2");
        // …and the refresh's write, which finishes last, keeps them.
        e.write_containers(&refresh, ContainerWrite::All(listed));
        assert_eq!(names(&e), ["c1=/renamed"]);
        // A single re-read that started before the rename cannot undo it either.
        let stale = e.read_ticket();
        e.restore_container(record("c1", "again"));
        e.write_containers(
            &stale,
            ContainerWrite::One("c1".into(), Some(record("c1", "renamed"))),
        );
        drop(stale);
        drop(refresh);
        assert_eq!(names(&e), ["c1=/again"]);
    }

    #[test]
    fn images_networks_and_volumes_are_relisted_only_when_events_may_have_missed_a_change() {
        let t0 = Instant::now();
        let listed = |epoch| Some(OthersListed { at: t0, epoch });
        let soon = t0 + Duration::from_secs(45);
        assert!(
            others_due(None, 1, soon),
            "first refresh after validation or a return"
        );
        assert!(
            !others_due(listed(3), 3, soon),
            "the stream was up at the re-list and has not broken since"
        );
        assert!(
            others_due(listed(2), 2, soon),
            "the stream was down at the re-list"
        );
        assert!(others_due(listed(3), 4, soon), "the stream is down now");
        assert!(
            others_due(listed(3), 5, soon),
            "the stream broke and came back since the re-list"
        );
        assert!(
            others_due(listed(3), 3, t0 + OTHERS_RELIST_MAX),
            "the safety period is over"
        );
    }

    #[test]
    fn the_events_count_is_odd_exactly_while_the_stream_is_up() {
        assert_eq!(next_epoch(0, true), 1);
        assert_eq!(next_epoch(1, false), 2);
        assert_eq!(next_epoch(1, true), 3, "a new stream, never the same count");
        assert_eq!(next_epoch(2, false), 4);
    }

    #[tokio::test]
    async fn a_stream_break_a_failed_reread_or_a_return_makes_the_next_refresh_relist() {
        let e = test_engine();
        let listed_now = |e: &Engine| {
            *e.others_listed.lock().unwrap() = Some(OthersListed {
                at: Instant::now(),
                epoch: e.events_epoch.load(Ordering::Acquire),
            });
        };
        e.events_stream_up();
        listed_now(&e);
        assert!(!e.others_due(), "kept current by the stream");
        e.events_stream_down();
        e.events_stream_up();
        assert!(e.others_due(), "events may have been missed in between");
        listed_now(&e);
        assert!(!e.others_due());
        // The engine is unreachable: the re-read of a network event fails.
        assert!(e.reread(Reread::Network("n1")).await.is_err());
        assert!(e.others_due(), "the change that event announced is missing");
        listed_now(&e);
        e.others_may_be_stale();
        assert!(e.others_due());
        assert_eq!(e.events_epoch.load(Ordering::Acquire) % 2, 1, "still up");
        // A re-list that fails leaves the next one due.
        e.refresh_others().await;
        assert!(e.others_listed.lock().unwrap().is_none());
        assert!(e.others_due());
    }
}
