//! Creating a container on the cluster (SPEC §4.6): extract the scheduling metadata, pick a node
//! under the scheduler lock while counting creations still in flight, create on that engine
//! (pulling the image there when it is missing), read the new container into the cache, and
//! retry the classic way on failure.
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde_json::{Map, Value};

use super::cache::{Container, ContainerDetails};
use super::cluster::Cluster;
use super::engine::{error_message, Engine, EngineError};
use super::membership::EngineMaps;
use super::names::split_reference;
use super::placement::{PendingSet, Placement};
use super::transport::{boxed, empty};
use crate::scheduler::node::{ContainerSnapshot, NodeSnapshot, SWARM_ID_LABEL};
use crate::scheduler::resources::cpus_to_shares;
use crate::scheduler::{extract, SchedulingRequest};
use crate::scheduler::{SchedulerError, SchedulerErrorKind};
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
        self.placement
            .node_snapshots(&self.engines(), request.needs_containers())
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
            let mut pull_failed = false;
            let result = self
                .create_once(&req, &sched, image_affinity, &image, &mut pull_failed)
                .await;
            let err = match result {
                Ok(created) => return Ok(created),
                Err(e) => e,
            };
            if matches!(err, CreateError::Conflict(_) | CreateError::BadRequest(_)) {
                return Err(err);
            }
            // A failed pull created nothing, whatever the error: an image that was built,
            // committed or loaded on some nodes only may be pullable from nowhere, and the nodes
            // holding it can still take the container.
            if pull_failed
                && !image_affinity
                && !hard_node_constraint
                && self.some_engine_has_image(&image)
            {
                tracing::info!(
                    image,
                    "Pull failed on the chosen node; retrying on a node holding the image"
                );
                image_affinity = true;
                continue;
            }
            if !pull_failed && may_have_created(&err) {
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

    pub fn some_engine_has_image(&self, image: &str) -> bool {
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
        if found.network.scope() != "local" {
            return;
        }
        let node = found.engine.name();
        let bare = match found.network.name() {
            "" => mode.clone(),
            name => name.to_string(),
        };
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

    /// One placement and create; sets `pull_failed` when the chosen node lacked the image and
    /// pulling it there failed (nothing was created then).
    async fn create_once(
        &self,
        req: &CreateRequest,
        sched: &SchedulingRequest,
        image_affinity: bool,
        image: &str,
        pull_failed: &mut bool,
    ) -> Result<Created, CreateError> {
        let mut body = req.body.clone();
        let placement = &self.placement;
        let (engine, guard, swarm_id) = {
            let mut sched = sched.clone();
            if image_affinity {
                sched.affinities.push(format!("image=={image}"));
            }
            let maps = self.engines();
            let mut set = placement.pending();
            if let Some(name) = req.name.as_deref().filter(|n| !n.is_empty()) {
                let wanted = name.trim_start_matches('/');
                let taken = super::names::name_taken(&maps, wanted, None) || set.has_name(wanted);
                if taken {
                    return Err(CreateError::Conflict(super::names::name_conflict(wanted)));
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
            // The request was checked before the loop; what fails here is placement (or the
            // image affinity of a retry, which the client did not write): a 500.
            let chosen = crate::metrics::scheduler_decision(|| {
                match placement.best_kept(&mut set, &maps, &sched) {
                    Some(kept) => {
                        // The view must agree with the full selection node for node; debug
                        // builds (and so the integration tests) check every plain decision
                        // taken while the cluster stood still. An engine that changed between
                        // the two (another request's call, a refresh) may rightly change the
                        // pick, so those are not compared.
                        #[cfg(debug_assertions)]
                        {
                            let full = full_selection(placement, &set, &maps, &sched);
                            if !placement.changed_since_catch_up() {
                                assert_eq!(
                                    Ok(vec![kept.id.clone()]),
                                    full,
                                    "the kept ranking and the full selection disagree"
                                );
                            }
                        }
                        Ok(vec![kept.id.clone()])
                    }
                    None => full_selection(placement, &set, &maps, &sched),
                }
            })
            .map_err(|e| CreateError::Scheduling(e.to_string()))?
            .pop()
            .ok_or_else(|| CreateError::Scheduling("No nodes available in the cluster".into()))?;
            let engine = maps.validated.get(&chosen).cloned().ok_or_else(|| {
                CreateError::Scheduling("No nodes available in the cluster".into())
            })?;
            let key = set.add(
                chosen,
                ContainerSnapshot::pending(&sched, req.name.as_deref(), Some(&swarm_id)),
            );
            (engine, placement.hold(key), swarm_id)
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
            if let Err(err) = self
                .pull_on(&engine, image, req.version, req.registry_auth.as_deref())
                .await
            {
                tracing::info!(engine = %engine.addr, image, error = %err, "Pulling the image on the chosen node failed");
                *pull_failed = true;
                return Err(err);
            }
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

/// The ID of the node the scheduler puts first for `sched` among every validated engine of
/// `maps` and the creations in flight of `set` (a walk over every engine's memoised snapshot);
/// empty when the ranking is.
fn full_selection(
    placement: &Placement,
    set: &PendingSet,
    maps: &EngineMaps,
    sched: &SchedulingRequest,
) -> Result<Vec<String>, SchedulerError> {
    let mut nodes = placement
        .snapshots()
        .of_validated(maps, sched.needs_containers());
    set.add_to(&mut nodes);
    let refs: Vec<&NodeSnapshot> = nodes.iter().map(|n| n.as_ref()).collect();
    let ranked = placement.scheduler.select_among(&refs, sched)?;
    Ok(ranked.first().map(|n| n.id.clone()).into_iter().collect())
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
