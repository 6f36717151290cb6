//! Creating a container on the cluster (SPEC §4.6): extract the scheduling metadata, pick a node
//! under the scheduler lock while counting creations still in flight, create on that engine
//! (pulling the image there when it is missing), read the new container into the cache, and
//! retry the classic way on failure.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde_json::{Map, Value};

use super::cache::{Container, ContainerDetails, EngineCache};
use super::cluster::Cluster;
use super::engine::{error_message, Engine, EngineError};
use super::names::split_reference;
use super::transport::{boxed, empty};
use crate::scheduler::config::{extract, SchedulingRequest};
use crate::scheduler::node::{
    ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding, SWARM_ID_LABEL,
};
use crate::scheduler::resources::{cpus_to_shares, shares_to_cpus, total_with_overcommit};
use crate::scheduler::{Scheduler, SchedulerError, SchedulerErrorKind};
use crate::version::ApiVersion;

/// Why a create failed, classified for the API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateError {
    /// The name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed (400): bad JSON, a scheduling expression that does not parse,
    /// an unknown reschedule policy.
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request no node can take (500, classic text).
    #[error("{0}")]
    Scheduling(String),
    /// The engine refused or failed.
    #[error("{0}")]
    Engine(EngineError),
}

/// The client's mistakes (malformed metadata) are 400; a request no node can take is 500.
impl From<SchedulerError> for CreateError {
    fn from(e: SchedulerError) -> CreateError {
        if e.is_client_error() {
            CreateError::BadRequest(e.to_string())
        } else {
            CreateError::Scheduling(e.to_string())
        }
    }
}

/// A creation in flight: counted by the scheduler until the engine has answered.
#[derive(Debug, Clone)]
pub struct PendingContainer {
    /// Unique key of this creation.
    pub key: u64,
    /// Engine ID the container is being created on.
    pub engine_id: String,
    pub snapshot: ContainerSnapshot,
}

/// The scheduler and the creations it is currently accounting for.
pub struct Placement {
    pub scheduler: Scheduler,
    /// Held while choosing a node and registering the pending creation; never across an await.
    pending: Mutex<PendingSet>,
}

#[derive(Default)]
struct PendingSet {
    next_key: u64,
    items: Vec<PendingContainer>,
}

impl Placement {
    /// A placement with no creation in flight.
    pub fn new(scheduler: Scheduler) -> Placement {
        Placement {
            scheduler,
            pending: Mutex::new(PendingSet::default()),
        }
    }

    fn release(&self, key: u64) {
        let mut set = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        set.items.retain(|p| p.key != key);
    }

    /// Names of containers being created right now.
    pub fn pending_names(&self) -> Vec<String> {
        let set = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        set.items
            .iter()
            .filter_map(|p| p.snapshot.name.clone())
            .collect()
    }
}

/// Releases a pending creation when dropped, so an error or a cancelled request never leaves
/// a phantom reservation behind.
struct PendingGuard<'a> {
    placement: &'a Placement,
    key: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.placement.release(self.key);
    }
}

/// The scheduler's view of one engine, rebuilt only when the engine's cache or health changed
/// since the last call (creates at scale must not rebuild 1,000 snapshots each). `listed`
/// snapshots list every container; the others only count them and their reservations.
pub fn cached_node_snapshot(
    engine: &Engine,
    overcommit: f64,
    retry: u32,
    listed: bool,
) -> Option<Arc<NodeSnapshot>> {
    let health = engine.health_indicator(retry);
    if let Some(hit) = engine.with_cache(|cache| engine.snapshot_memo(listed, cache, health)) {
        return Some(hit);
    }
    let cache = engine.cache();
    let fresh = Arc::new(node_snapshot(engine, &cache, overcommit, health, listed)?);
    engine.remember_snapshot(listed, cache, health, fresh.clone());
    Some(fresh)
}

/// Builds the scheduler's view of one engine from `cache`, one of its snapshots, and its health
/// indicator.
pub fn node_snapshot(
    engine: &Engine,
    cache: &EngineCache,
    overcommit: f64,
    health_indicator: i64,
    listed: bool,
) -> Option<NodeSnapshot> {
    let specs = engine.specs()?;
    let mut node = NodeSnapshot {
        id: specs.id.clone(),
        name: specs.name.clone(),
        addr: engine.addr.clone(),
        ip: specs.ip.clone(),
        labels: specs.labels.clone(),
        health_indicator,
        total_cpus: total_with_overcommit(specs.cpus, overcommit),
        total_memory: total_with_overcommit(specs.memory, overcommit),
        used_cpus: 0,
        used_memory: 0,
        containers: Vec::with_capacity(if listed { cache.containers.len() } else { 0 }),
        unlisted: 0,
        images: cache
            .images
            .iter()
            .map(|i| ImageSnapshot {
                id: i.id.clone(),
                repo_tags: i.repo_tags.clone(),
                repo_digests: i.repo_digests.clone(),
            })
            .collect(),
    };
    for c in cache.containers.values() {
        if listed {
            node.add_container(container_snapshot(c, specs.cpus));
        } else {
            node.unlisted += 1;
            node.used_cpus = node
                .used_cpus
                .saturating_add(shares_to_cpus(c.details.cpu_shares, specs.cpus));
            node.used_memory = node.used_memory.saturating_add(c.details.memory);
        }
    }
    Some(node)
}

fn container_snapshot(c: &Container, engine_cpus: i64) -> ContainerSnapshot {
    let labels: BTreeMap<String, String> = c
        .labels()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let port_bindings = c
        .details
        .port_bindings()
        .iter()
        .map(|b| PortBinding {
            port: b.port.to_string(),
            host_ip: b.host_ip.to_string(),
            host_port: b.host_port.to_string(),
        })
        .collect();
    let name = c.name();
    ContainerSnapshot {
        id: c.id.clone(),
        swarm_id: c.swarm_id().map(str::to_string),
        name: (!name.is_empty()).then(|| name.to_string()),
        names: c.names().map(str::to_string).collect(),
        labels,
        network_mode: c.details.network_mode.to_string(),
        exposed_ports: c.details.exposed_ports().map(str::to_string).collect(),
        port_bindings,
        pending: false,
        reserved_cpus: shares_to_cpus(c.details.cpu_shares, engine_cpus),
        reserved_memory: c.details.memory,
    }
}

/// A random 64-hex ID.
fn random_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

/// What a create call needs besides the body.
pub struct CreateRequest {
    /// `?name=`, if any.
    pub name: Option<String>,
    /// The create body (Config + HostConfig + NetworkingConfig).
    pub body: Map<String, Value>,
    /// The client's `X-Registry-Auth`, used to pull the image when the node lacks it.
    pub registry_auth: Option<String>,
    /// The client's API version.
    pub version: Option<ApiVersion>,
}

/// A created container.
pub struct Created {
    pub engine: Arc<Engine>,
    pub id: String,
    pub warnings: Value,
}

impl Cluster {
    /// Snapshots of every validated engine for `request`, with the creations in flight added.
    pub fn node_snapshots(&self, request: &SchedulingRequest) -> Vec<Arc<NodeSnapshot>> {
        let listed = request.needs_containers();
        let maps = self.engines();
        let mut nodes: Vec<Arc<NodeSnapshot>> = maps
            .validated
            .values()
            .filter_map(|e| {
                cached_node_snapshot(
                    e,
                    self.opts.overcommit,
                    self.opts.engine.failure_retry,
                    listed,
                )
            })
            .collect();
        let set = self
            .placement
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        add_pending(&mut nodes, &set.items);
        nodes
    }

    /// The engines the scheduler ranks for `request`, best first (used by build, network and
    /// volume creation, and routes that want "some good engine"). A malformed expression is
    /// reported before any node is looked at.
    pub fn rank_engines(
        &self,
        request: &SchedulingRequest,
    ) -> Result<Vec<Arc<Engine>>, SchedulerError> {
        self.placement.scheduler.check(request)?;
        let nodes = self.node_snapshots(request);
        let refs: Vec<&NodeSnapshot> = nodes.iter().map(|n| n.as_ref()).collect();
        let ranked = self.placement.scheduler.select_among(&refs, request)?;
        let maps = self.engines();
        Ok(ranked
            .into_iter()
            .filter_map(|n| maps.validated.get(&n.id).cloned())
            .collect())
    }

    /// Creates a container on the node the scheduler picks (SPEC §4.6).
    pub async fn create_container(&self, mut req: CreateRequest) -> Result<Created, CreateError> {
        let mut sched = extract(&mut req.body)?;
        self.placement.scheduler.check(&sched)?;
        let image = req
            .body
            .get("Image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.pin_to_network_node(&mut req.body, &mut sched);
        let hard_node_constraint = sched
            .constraints
            .iter()
            .any(|c| c.starts_with("node==") && !c.starts_with("node==~"));
        let mut retries = 0i64;
        let mut image_affinity = false;
        loop {
            let result = self.create_once(&req, &sched, image_affinity, &image).await;
            let err = match result {
                Ok(created) => return Ok(created),
                Err(e) => e,
            };
            if matches!(err, CreateError::Conflict(_) | CreateError::BadRequest(_)) {
                return Err(err);
            }
            if may_have_created(&err) {
                // The engine may hold the container although its answer was lost: a retry
                // elsewhere would put the name on two nodes once that engine is back.
                return Err(err);
            }
            if let CreateError::Scheduling(_) = &err {
                // A scheduling failure does not change by retrying at once, except through
                // the classic createretry count.
                if retries >= self.opts.create_retry {
                    return Err(err);
                }
                retries += 1;
                continue;
            }
            let not_found = matches!(&err, CreateError::Engine(e) if e.is_not_found() || is_image_missing(&e.to_string()));
            if not_found
                && !image_affinity
                && !hard_node_constraint
                && self.some_engine_has_image(&image)
            {
                image_affinity = true;
                continue;
            }
            if retries >= self.opts.create_retry {
                return Err(err);
            }
            retries += 1;
        }
    }

    fn some_engine_has_image(&self, image: &str) -> bool {
        self.validated().iter().any(|e| {
            e.cache()
                .images
                .iter()
                .any(|i| super::names::image_matches(i, image, true))
        })
    }

    /// `--net node-1/mynet`: pin softly to that network's node and send the bare name.
    fn pin_to_network_node(&self, body: &mut Map<String, Value>, sched: &mut SchedulingRequest) {
        let mode = body
            .get("HostConfig")
            .and_then(|h| h.get("NetworkMode"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if mode.is_empty()
            || matches!(mode.as_str(), "bridge" | "host" | "none" | "default")
            || mode.starts_with("container:")
        {
            return;
        }
        let Some(found) = super::names::find_network(&self.engines(), &mode) else {
            return;
        };
        if found.network.get("Scope").and_then(Value::as_str) != Some("local") {
            return;
        }
        let node = found.engine.name();
        let bare = found
            .network
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or(&mode)
            .to_string();
        let has_hard_node = sched
            .constraints
            .iter()
            .any(|c| c.starts_with("node==") && !c.starts_with("node==~"));
        if !has_hard_node {
            sched.add_constraint(format!("node==~{node}"));
            sched.write_labels(body);
        }
        if let Some(h) = body.get_mut("HostConfig").and_then(Value::as_object_mut) {
            h.insert("NetworkMode".into(), Value::String(bare));
        }
        // Endpoint keys may carry the node prefix too.
        if let Some(eps) = body
            .get_mut("NetworkingConfig")
            .and_then(|n| n.get_mut("EndpointsConfig"))
            .and_then(Value::as_object_mut)
        {
            let keys: Vec<String> = eps.keys().cloned().collect();
            for k in keys {
                if let Some(stripped) = k.strip_prefix(&format!("{node}/")) {
                    if let Some(v) = eps.remove(&k) {
                        eps.insert(stripped.to_string(), v);
                    }
                }
            }
        }
    }

    async fn create_once(
        &self,
        req: &CreateRequest,
        sched: &SchedulingRequest,
        image_affinity: bool,
        image: &str,
    ) -> Result<Created, CreateError> {
        let mut body = req.body.clone();
        let placement = &self.placement;
        let (engine, guard, swarm_id) = {
            let mut sched = sched.clone();
            if image_affinity {
                sched.affinities.push(format!("image=={image}"));
            }
            let maps = self.engines();
            let mut set = placement.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(name) = req.name.as_deref().filter(|n| !n.is_empty()) {
                let wanted = name.trim_start_matches('/');
                let taken = super::names::name_taken(&maps, wanted, None)
                    || set
                        .items
                        .iter()
                        .any(|p| p.snapshot.name.as_deref() == Some(wanted));
                if taken {
                    return Err(CreateError::Conflict(format!(
                        "Conflict: The name {wanted} is already assigned. You have to delete (or rename) that container to be able to assign {wanted} to a container again."
                    )));
                }
            }
            let swarm_id = match labels_of(&body)
                .and_then(|l| l.get(SWARM_ID_LABEL))
                .and_then(Value::as_str)
            {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => {
                    let id = random_id();
                    set_label(&mut body, SWARM_ID_LABEL, &id);
                    id
                }
            };
            let listed = sched.needs_containers();
            let mut nodes: Vec<Arc<NodeSnapshot>> = maps
                .validated
                .values()
                .filter_map(|e| {
                    cached_node_snapshot(
                        e,
                        self.opts.overcommit,
                        self.opts.engine.failure_retry,
                        listed,
                    )
                })
                .collect();
            add_pending(&mut nodes, &set.items);
            let refs: Vec<&NodeSnapshot> = nodes.iter().map(|n| n.as_ref()).collect();
            // The request was checked before the loop; what fails here is placement (or the
            // image affinity of a retry, which the client did not write): a 500.
            let ranked = placement
                .scheduler
                .select_among(&refs, &sched)
                .map_err(|e| CreateError::Scheduling(e.to_string()))?;
            let chosen = ranked.first().ok_or_else(|| {
                CreateError::Scheduling("No nodes available in the cluster".into())
            })?;
            let engine = maps.validated.get(&chosen.id).cloned().ok_or_else(|| {
                CreateError::Scheduling("No nodes available in the cluster".into())
            })?;
            set.next_key += 1;
            let key = set.next_key;
            set.items.push(PendingContainer {
                key,
                engine_id: chosen.id.clone(),
                snapshot: ContainerSnapshot::pending(&sched, req.name.as_deref(), Some(&swarm_id)),
            });
            (engine, PendingGuard { placement, key }, swarm_id)
        };

        // CpuShares in the request is a number of CPUs; the engine wants real shares.
        let cpus = sched.cpus;
        if cpus > 0 {
            let engine_cpus = engine.specs().map(|s| s.cpus).unwrap_or(1);
            let shares = cpus_to_shares(cpus, engine_cpus);
            let host = body
                .entry("HostConfig")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(h) = host.as_object_mut() {
                h.insert("CpuShares".into(), Value::from(shares));
            }
            body.remove("CpuShares");
        }

        let encoded = serde_json::to_vec(&Value::Object(body))
            .map_err(|e| CreateError::BadRequest(e.to_string()))?;
        let expected = engine.expect_event(&swarm_id, "create");
        let mut attempt = self.engine_create(&engine, req, &encoded).await;
        if matches!(&attempt, Err(CreateError::Engine(e)) if e.is_not_found()) && !image.is_empty()
        {
            tracing::info!(engine = %engine.addr, image, "Image missing on the chosen node; pulling it there");
            self.pull_on(&engine, image, req.version, req.registry_auth.as_deref())
                .await?;
            attempt = self.engine_create(&engine, req, &encoded).await;
        }
        let (id, warnings) = attempt?;
        expected.settle();
        if let Err(err) = engine.refresh_container(&id).await {
            tracing::debug!(container = %id, error = %err, "Reading the new container failed");
            // The engine made it (and may have died since): until a refresh of that engine
            // reads it, the manager must still list it and hold its name.
            if let Some(record) = provisional_record(&id, req.name.as_deref(), &encoded) {
                engine.restore_container(Arc::new(record));
            }
        }
        drop(guard);
        Ok(Created {
            engine,
            id,
            warnings,
        })
    }

    async fn engine_create(
        &self,
        engine: &Engine,
        req: &CreateRequest,
        body: &[u8],
    ) -> Result<(String, Value), CreateError> {
        let mut path = "/containers/create".to_string();
        if let Some(name) = req.name.as_deref().filter(|n| !n.is_empty()) {
            path.push_str("?name=");
            path.push_str(
                &percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        let uri = engine.uri(req.version, &path);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(boxed(http_body_util::Full::new(Bytes::copy_from_slice(
                body,
            ))))
            .map_err(|e| CreateError::BadRequest(e.to_string()))?;
        let (status, bytes) = engine.call(request).await.map_err(CreateError::Engine)?;
        if status != StatusCode::CREATED {
            let message = error_message(&bytes);
            if status == StatusCode::CONFLICT {
                return Err(CreateError::Conflict(message));
            }
            if status == StatusCode::BAD_REQUEST {
                return Err(CreateError::BadRequest(message));
            }
            return Err(CreateError::Engine(EngineError::Status { status, message }));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            CreateError::Engine(EngineError::Invalid {
                addr: engine.addr.clone(),
                detail: e.to_string(),
            })
        })?;
        let id = v
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let warnings = v.get("Warnings").cloned().unwrap_or(Value::Null);
        Ok((id, warnings))
    }

    /// Pulls `image` on one engine at the client's `version`, reading the progress stream to
    /// its end.
    pub async fn pull_on(
        &self,
        engine: &Engine,
        image: &str,
        version: Option<ApiVersion>,
        auth: Option<&str>,
    ) -> Result<(), CreateError> {
        let (repo, tag) = split_reference(image);
        let tag = tag.unwrap_or("latest");
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let uri = engine.uri(
            version,
            &format!("/images/create?fromImage={}&tag={}", enc(repo), enc(tag)),
        );
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(a) = auth {
            builder = builder.header("X-Registry-Auth", a);
        }
        let request = builder
            .body(empty())
            .map_err(|e| CreateError::BadRequest(e.to_string()))?;
        let (status, bytes) = engine.call(request).await.map_err(CreateError::Engine)?;
        if !status.is_success() {
            return Err(CreateError::Engine(EngineError::Status {
                status,
                message: error_message(&bytes),
            }));
        }
        for msg in serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Value>()
            .flatten()
        {
            if let Some(err) = msg.get("error").and_then(Value::as_str) {
                return Err(CreateError::Engine(EngineError::Status {
                    status: StatusCode::NOT_FOUND,
                    message: err.to_string(),
                }));
            }
        }
        let _ = engine.refresh_images().await;
        Ok(())
    }
}

/// Adds creations in flight to the snapshots of their engines (copying only those snapshots).
fn add_pending(nodes: &mut [Arc<NodeSnapshot>], pending: &[PendingContainer]) {
    for p in pending {
        if let Some(n) = nodes.iter_mut().find(|n| n.id == p.engine_id) {
            Arc::make_mut(n).add_container(p.snapshot.clone());
        }
    }
}

/// A record of a container the engine created but that could not be read back, from what the
/// create asked for (name, image, labels with the Swarm ID). Its list-entry hash and `Status`
/// match no real entry, so the engine's next container refresh inspects the container and
/// replaces the record with what the engine says.
fn provisional_record(id: &str, name: Option<&str>, body: &[u8]) -> Option<Container> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let names: Vec<String> = name
        .filter(|n| !n.is_empty())
        .map(|n| format!("/{}", n.trim_start_matches('/')))
        .into_iter()
        .collect();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let entry = serde_json::json!({
        "Id": id,
        "Names": names,
        "Image": body.get("Image").cloned().unwrap_or(Value::Null),
        "Created": created,
        "State": "created",
        "Status": "Created (not read back yet)",
        "Labels": body.get("Labels").cloned().unwrap_or(Value::Null),
    });
    let summary = serde_json::from_str(&entry.to_string()).ok()?;
    Some(Container::new(summary, ContainerDetails::default(), 0))
}

/// Whether a failed create may still have made the container: the request may have reached
/// the engine and only the answer was lost (the connection broke, or the answer was unreadable).
/// Only a failure to connect, or an error the engine answered, proves nothing was made.
fn may_have_created(err: &CreateError) -> bool {
    match err {
        CreateError::Engine(EngineError::Unreachable { detail, .. }) => {
            // hyper's client says so when the connection could not be opened at all.
            !detail.starts_with("client error (Connect)")
        }
        CreateError::Engine(EngineError::Status { .. } | EngineError::Rejected(_)) => false,
        CreateError::Engine(_) => true,
        CreateError::Conflict(_) | CreateError::BadRequest(_) | CreateError::Scheduling(_) => false,
    }
}

fn is_image_missing(text: &str) -> bool {
    text.contains("not found") && (text.contains("image") || text.contains("repository"))
        || text.contains("repository does not exist")
}

fn labels_of(body: &Map<String, Value>) -> Option<&Map<String, Value>> {
    body.get("Labels").and_then(Value::as_object)
}

fn set_label(body: &mut Map<String, Value>, key: &str, value: &str) {
    let labels = body
        .entry("Labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Whether a scheduler error is the client's fault.
pub fn is_client_error(e: &SchedulerError) -> bool {
    e.kind() == SchedulerErrorKind::InvalidRequest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::transport::Transport;
    use tokio::io::AsyncReadExt;

    /// What the engine's health and create paths see when `addr` fails a create.
    async fn unreachable_detail(addr: std::net::SocketAddr) -> CreateError {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/containers/create?name=x"))
            .body(boxed(http_body_util::Full::new(Bytes::from_static(b"{}"))))
            .unwrap();
        let err = Transport::new(None).request(request).await.unwrap_err();
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        CreateError::Engine(EngineError::Unreachable {
            url: format!("tcp://{addr}"),
            detail,
        })
    }

    #[tokio::test]
    async fn a_refused_connection_proves_no_container_was_made() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let err = unreachable_detail(addr).await;
        assert!(!may_have_created(&err), "{err:?}");
    }

    #[tokio::test]
    async fn a_connection_that_breaks_after_the_request_may_have_made_the_container() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            // Dies like a killed engine: the request was read, no answer follows.
        });
        let err = unreachable_detail(addr).await;
        assert!(may_have_created(&err), "{err:?}");
    }

    #[test]
    fn a_container_not_read_back_is_recorded_with_its_name_and_swarm_id() {
        let body = br#"{"Image":"busybox","Labels":{"com.docker.swarm.id":"s1"}}"#;
        let c = provisional_record("abc", Some("/web"), body).unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.name(), "web");
        assert_eq!(c.swarm_id(), Some("s1"));
        assert_eq!(c.image(), "busybox");
        assert_eq!(c.state(), "created");
        let unnamed = provisional_record("abc", None, b"{}").unwrap();
        assert_eq!(unnamed.names().count(), 0);
    }

    #[test]
    fn answered_errors_and_unreadable_answers_are_told_apart() {
        let status = CreateError::Engine(EngineError::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "no".into(),
        });
        assert!(!may_have_created(&status));
        let unreadable = CreateError::Engine(EngineError::Invalid {
            addr: "a".into(),
            detail: "not JSON".into(),
        });
        assert!(may_have_created(&unreadable));
    }
}
