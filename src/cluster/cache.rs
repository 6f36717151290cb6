//! What the manager knows about one engine's objects between refreshes: containers, images,
//! networks and volumes. Raw JSON is kept for everything re-emitted to clients; typed fields only
//! for what the manager decides on. Readers load an immutable snapshot (`Arc<EngineCache>`); one
//! writer at a time publishes a new one, so reads never wait on the events monitor.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

/// An immutable snapshot of one engine's objects.
#[derive(Debug, Default, Clone)]
pub struct EngineCache {
    /// Containers by full ID.
    pub containers: Arc<HashMap<String, Arc<Container>>>,
    /// `GET /images/json?all=1` entries.
    pub images: Arc<Vec<Arc<Image>>>,
    /// `GET /networks` entries, by network ID.
    pub networks: Arc<BTreeMap<String, Arc<Value>>>,
    /// `GET /volumes` entries, by volume name.
    pub volumes: Arc<BTreeMap<String, Arc<Value>>>,
    /// Lookup tables over `containers`, built on first use; every new snapshot starts without.
    index: OnceLock<Arc<ContainerIndex>>,
}

impl EngineCache {
    /// The lookup tables over this snapshot's containers.
    pub fn index(&self) -> &ContainerIndex {
        self.index
            .get_or_init(|| Arc::new(ContainerIndex::new(&self.containers)))
    }

    /// Forgets the lookup tables (the containers are about to change).
    pub fn reset_index(&mut self) {
        self.index = OnceLock::new();
    }
}

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
    fn new(containers: &HashMap<String, Arc<Container>>) -> ContainerIndex {
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

/// List-entry members that `docker ps` rewrites on every request.
pub const DYNAMIC_MEMBERS: [&str; 4] = ["Names", "Status", "State", "Ports"];

/// One published port of a list entry (`Ports[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Port {
    #[serde(rename = "IP")]
    pub ip: Option<Box<str>>,
    pub private_port: u16,
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: Box<str>,
}

/// One mount of a list entry, as far as the `volume` filter reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Mount {
    pub name: Option<Box<str>>,
    pub destination: Box<str>,
}

/// One network of a list entry, as far as the `network` filter reads it.
#[derive(Debug, Clone, Default)]
pub struct NetworkRef {
    pub name: Box<str>,
    pub network_id: Box<str>,
}

/// A container's labels, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// One label's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// Every label, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        // Engines write `null` for no labels; values are strings (anything else is dropped).
        let map: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
        Ok(Labels(
            map.into_iter()
                .flatten()
                .filter_map(|(k, v)| match v {
                    Value::String(v) => Some((k.into_boxed_str(), v.into_boxed_str())),
                    _ => None,
                })
                .collect(),
        ))
    }
}

/// The engine's `GET /containers/json` entry, read in one pass: the members the manager
/// decides on or rewrites are typed; every other member is kept as the engine wrote it.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub id: String,
    pub names: Vec<Box<str>>,
    pub image: Box<str>,
    pub image_id: Box<str>,
    pub state: Box<str>,
    pub status: Box<str>,
    pub created: i64,
    pub ports: Vec<Port>,
    pub labels: Labels,
    pub mounts: Vec<Mount>,
    pub networks: Vec<NetworkRef>,
    /// The members other than [`DYNAMIC_MEMBERS`], serialised (`"Id":…,"Image":…`, no braces).
    pub static_json: String,
}

/// A JSON object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Summary, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Summary;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a container list entry")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Summary, A::Error> {
                use serde::de::Error;
                let mut s = Summary::default();
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    let text = |o: Option<String>| o.unwrap_or_default().into_boxed_str();
                    match &*key {
                        "Names" => {
                            let names: Option<Vec<String>> = map.next_value()?;
                            s.names = names
                                .into_iter()
                                .flatten()
                                .map(String::into_boxed_str)
                                .collect();
                        }
                        "State" => s.state = text(map.next_value()?),
                        "Status" => s.status = text(map.next_value()?),
                        "Ports" => s.ports = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        _ => {
                            let raw: &serde_json::value::RawValue = map.next_value()?;
                            let json = raw.get();
                            let parse = |what: &str| A::Error::custom(format!("invalid {what}"));
                            match &*key {
                                "Id" => {
                                    s.id = serde_json::from_str::<Option<String>>(json)
                                        .map_err(|_| parse("Id"))?
                                        .unwrap_or_default()
                                }
                                "Image" => {
                                    s.image = text(serde_json::from_str(json).unwrap_or_default())
                                }
                                "ImageID" => {
                                    s.image_id =
                                        text(serde_json::from_str(json).unwrap_or_default())
                                }
                                "Created" => s.created = serde_json::from_str(json).unwrap_or(0),
                                "Labels" => {
                                    s.labels =
                                        serde_json::from_str(json).map_err(|_| parse("Labels"))?
                                }
                                "Mounts" => {
                                    s.mounts = serde_json::from_str::<Option<_>>(json)
                                        .unwrap_or_default()
                                        .unwrap_or_default()
                                }
                                "NetworkSettings" => s.networks = networks_of(json),
                                _ => {}
                            }
                            if !s.static_json.is_empty() {
                                s.static_json.push(',');
                            }
                            s.static_json
                                .push_str(&serde_json::to_string(&*key).map_err(A::Error::custom)?);
                            s.static_json.push(':');
                            s.static_json.push_str(json);
                        }
                    }
                }
                Ok(s)
            }
        }
        d.deserialize_map(V)
    }
}

/// `NetworkSettings.Networks` of a list entry: names and network IDs.
fn networks_of(json: &str) -> Vec<NetworkRef> {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "PascalCase")]
    struct Settings {
        networks: Option<BTreeMap<String, Endpoint>>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Endpoint {
        #[serde(rename = "NetworkID")]
        network_id: Option<String>,
    }
    let settings: Settings = serde_json::from_str(json).unwrap_or_default();
    settings
        .networks
        .into_iter()
        .flatten()
        .map(|(name, e)| NetworkRef {
            name: name.into_boxed_str(),
            network_id: e.network_id.unwrap_or_default().into_boxed_str(),
        })
        .collect()
}

/// One container: the engine's list entry (typed where the manager reads it, pre-serialised
/// elsewhere) plus the inspect fields the manager uses.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// Creation time in nanoseconds (parsed once; `docker ps` sorts by it).
    created_ns: i64,
    /// Names as the engine lists them (`/web`, `/other/alias`).
    names: Box<[Box<str>]>,
    image: Box<str>,
    image_id: Box<str>,
    /// `State` and `Status` of the list entry.
    list_state: Box<str>,
    list_status: Box<str>,
    pub ports: Box<[Port]>,
    labels: Labels,
    pub mounts: Box<[Mount]>,
    pub networks: Box<[NetworkRef]>,
    /// The list entry's members that `docker ps` passes through unchanged, serialised once
    /// (`"Id":…,"Image":…`, no braces): lists of tens of thousands are then mostly copies.
    pub static_json: Box<str>,
    /// A hash of the engine's list entry as it was read: a refresh that reads the same bytes
    /// keeps this record as it is.
    pub entry_hash: u64,
    /// Typed subset of `GET /containers/{id}/json`.
    pub details: ContainerDetails,
}

/// The hash [`Container::entry_hash`] is compared with.
pub fn entry_hash(raw: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(raw);
    h.finish()
}

impl Container {
    /// Builds a record from a list entry and an inspect body.
    pub fn new(summary: Summary, details: ContainerDetails, entry_hash: u64) -> Container {
        let id = summary.id;
        let created_ns = details
            .created_ns
            .unwrap_or_else(|| summary.created.saturating_mul(1_000_000_000));
        Container {
            id,
            created_ns,
            names: summary.names.into_boxed_slice(),
            image: summary.image,
            image_id: summary.image_id,
            list_state: summary.state,
            list_status: summary.status,
            ports: summary.ports.into_boxed_slice(),
            labels: summary.labels,
            mounts: summary.mounts.into_boxed_slice(),
            networks: summary.networks.into_boxed_slice(),
            static_json: summary.static_json.into_boxed_str(),
            entry_hash,
            details,
        }
    }

    /// Names as the engine lists them (`/web`, `/other/alias`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// The container's own name without the leading `/`.
    pub fn name(&self) -> &str {
        let own = self.details.name.trim_start_matches('/');
        if !own.is_empty() {
            return own;
        }
        self.names()
            .find(|n| n.matches('/').count() == 1)
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or("")
    }

    /// Labels from the list entry (same as `Config.Labels`).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    /// The `com.docker.swarm.id` label, when set.
    pub fn swarm_id(&self) -> Option<&str> {
        self.label("com.docker.swarm.id").filter(|s| !s.is_empty())
    }

    /// `running`, `paused`, `exited`, … (from inspect; the list entry as a fallback).
    pub fn state(&self) -> &str {
        if !self.details.state.status.is_empty() {
            return &self.details.state.status;
        }
        &self.list_state
    }

    /// `State` of the engine's list entry.
    pub fn list_state(&self) -> &str {
        &self.list_state
    }

    /// `Status` of the engine's list entry (`Up 5 minutes`).
    pub fn list_status(&self) -> &str {
        &self.list_status
    }

    /// The image as the container was created with it.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The image ID of the list entry (`sha256:…`).
    pub fn image_id(&self) -> &str {
        &self.image_id
    }

    /// Creation time in nanoseconds since the epoch (ordering key of `docker ps`).
    pub fn created_nanos(&self) -> i128 {
        i128::from(self.created_ns)
    }
}

/// What the manager keeps of an inspect body (`GET /containers/{id}/json`). Tens of thousands
/// are cached, so members most containers leave empty sit behind one pointer.
#[derive(Debug, Clone, Default)]
pub struct ContainerDetails {
    /// `Name` (`/web`).
    pub name: Box<str>,
    /// `Created` in nanoseconds since the epoch, when readable.
    pub created_ns: Option<i64>,
    /// `State.StartedAt` and `State.FinishedAt` in seconds (`None` when unset).
    pub started_secs: Option<i64>,
    pub finished_secs: Option<i64>,
    pub state: ContainerState,
    /// `HostConfig.Memory` in bytes.
    pub memory: i64,
    /// `HostConfig.CpuShares`.
    pub cpu_shares: i64,
    /// `HostConfig.NetworkMode` (`default`, `host`, `container:<x>`, a network name).
    pub network_mode: Box<str>,
    rare: Option<Box<RareDetails>>,
}

/// `State` of an inspected container.
#[derive(Debug, Clone, Default)]
pub struct ContainerState {
    /// `running`, `paused`, `exited`, …
    pub status: Box<str>,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub dead: bool,
    pub exit_code: i64,
}

/// Inspect members that most containers leave empty.
#[derive(Debug, Clone, Default)]
struct RareDetails {
    health: Option<Box<str>>,
    port_bindings: Vec<BoundPort>,
    exposed_ports: Vec<Box<str>>,
    exec_ids: Vec<Box<str>>,
    full: Option<Arc<Value>>,
}

/// One host binding of a container port, from `HostConfig.PortBindings` or
/// `NetworkSettings.Ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundPort {
    /// `80/tcp`.
    pub port: Box<str>,
    pub host_ip: Box<str>,
    pub host_port: Box<str>,
}

impl ContainerDetails {
    /// Reads an inspect body. The whole body is kept only for a container that asks to be
    /// rescheduled on node failure: once its engine is dead, nobody can be asked for it.
    pub fn from_inspect(raw: &[u8]) -> serde_json::Result<ContainerDetails> {
        let body: InspectBody = serde_json::from_slice(raw)?;
        let mut details = body.into_details();
        if memchr::memmem::find(raw, b"reschedule-policies").is_some() {
            let full: Value = serde_json::from_slice(raw)?;
            let wants_rescheduling = full
                .pointer("/Config/Labels/com.docker.swarm.reschedule-policies")
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains("on-node-failure"));
            if wants_rescheduling {
                details.rare_mut().full = Some(Arc::new(full));
            }
        }
        Ok(details)
    }

    /// `State.Health.Status`, when the container has a health check.
    pub fn health(&self) -> Option<&str> {
        self.rare.as_ref()?.health.as_deref()
    }

    /// Host bindings from `HostConfig.PortBindings` followed by those of `NetworkSettings.Ports`.
    pub fn port_bindings(&self) -> &[BoundPort] {
        self.rare
            .as_ref()
            .map(|r| r.port_bindings.as_slice())
            .unwrap_or_default()
    }

    /// Keys of `Config.ExposedPorts` (`80/tcp`).
    pub fn exposed_ports(&self) -> impl Iterator<Item = &str> {
        self.rare
            .as_ref()
            .map(|r| r.exposed_ports.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|p| &**p)
    }

    /// Whether `ExecIDs` (or an exec created through the manager since) holds `exec_id`.
    pub fn has_exec(&self, exec_id: &str) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|r| r.exec_ids.iter().any(|i| &**i == exec_id))
    }

    /// Records an exec created through the manager.
    pub fn add_exec(&mut self, exec_id: &str) {
        self.rare_mut().exec_ids.push(exec_id.into());
    }

    /// The whole inspect body, kept for containers with a reschedule policy.
    pub fn full(&self) -> Option<&Arc<Value>> {
        self.rare.as_ref()?.full.as_ref()
    }

    fn rare_mut(&mut self) -> &mut RareDetails {
        self.rare.get_or_insert_with(Default::default)
    }
}

/// The inspect body as read, borrowing its strings where it can.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectBody<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    created: Cow<'a, str>,
    #[serde(borrow)]
    state: InspectState<'a>,
    #[serde(borrow)]
    host_config: InspectHostConfig<'a>,
    #[serde(borrow)]
    config: InspectConfig<'a>,
    #[serde(rename = "ExecIDs", borrow)]
    exec_ids: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    network_settings: InspectNetworkSettings<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectState<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    running: bool,
    paused: bool,
    restarting: bool,
    dead: bool,
    exit_code: i64,
    #[serde(borrow)]
    started_at: Cow<'a, str>,
    #[serde(borrow)]
    finished_at: Cow<'a, str>,
    #[serde(borrow)]
    health: Option<InspectHealth<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectHealth<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
}

/// Port → bindings, as in `HostConfig.PortBindings` and `NetworkSettings.Ports`.
type InspectPortMap<'a> = Option<BTreeMap<Cow<'a, str>, Option<Vec<InspectBinding<'a>>>>>;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectHostConfig<'a> {
    memory: i64,
    cpu_shares: i64,
    #[serde(borrow)]
    network_mode: Cow<'a, str>,
    #[serde(borrow)]
    port_bindings: InspectPortMap<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectBinding<'a> {
    #[serde(borrow)]
    host_ip: Cow<'a, str>,
    #[serde(borrow)]
    host_port: Cow<'a, str>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectConfig<'a> {
    #[serde(borrow)]
    exposed_ports: Option<BTreeMap<Cow<'a, str>, serde::de::IgnoredAny>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct InspectNetworkSettings<'a> {
    #[serde(borrow)]
    ports: InspectPortMap<'a>,
}

impl InspectBody<'_> {
    fn into_details(self) -> ContainerDetails {
        let secs = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.timestamp())
                .filter(|s| *s > 0)
        };
        let created_ns = chrono::DateTime::parse_from_rfc3339(&self.created)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt());
        let mut port_bindings = Vec::new();
        for map in [self.host_config.port_bindings, self.network_settings.ports] {
            for (port, bindings) in map.into_iter().flatten() {
                for b in bindings.into_iter().flatten() {
                    port_bindings.push(BoundPort {
                        port: (*port).into(),
                        host_ip: b.host_ip.into(),
                        host_port: b.host_port.into(),
                    });
                }
            }
        }
        let rare = RareDetails {
            health: self.state.health.map(|h| h.status.into()),
            port_bindings,
            exposed_ports: self
                .config
                .exposed_ports
                .into_iter()
                .flatten()
                .map(|(k, _)| k.into())
                .collect(),
            exec_ids: self
                .exec_ids
                .into_iter()
                .flatten()
                .map(Into::into)
                .collect(),
            full: None,
        };
        let empty = rare.health.is_none()
            && rare.port_bindings.is_empty()
            && rare.exposed_ports.is_empty()
            && rare.exec_ids.is_empty();
        ContainerDetails {
            name: self.name.into(),
            created_ns,
            started_secs: secs(&self.state.started_at),
            finished_secs: secs(&self.state.finished_at),
            state: ContainerState {
                status: self.state.status.into(),
                running: self.state.running,
                paused: self.state.paused,
                restarting: self.state.restarting,
                dead: self.state.dead,
                exit_code: self.state.exit_code,
            },
            memory: self.host_config.memory,
            cpu_shares: self.host_config.cpu_shares,
            network_mode: self.host_config.network_mode.into(),
            rare: (!empty).then(|| Box::new(rare)),
        }
    }
}

/// One image list entry, raw, with its identifying fields parsed.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub raw: Map<String, Value>,
}

impl Image {
    /// Parses a `GET /images/json` entry.
    pub fn from_raw(raw: Map<String, Value>) -> Image {
        let strings = |key: &str| -> Vec<String> {
            raw.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Image {
            id: raw
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            repo_tags: strings("RepoTags")
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            repo_digests: strings("RepoDigests")
                .into_iter()
                .filter(|t| t != "<none>@<none>")
                .collect(),
            created: raw.get("Created").and_then(Value::as_i64).unwrap_or(0),
            raw,
        }
    }

    /// Whether the image has at least one tag.
    pub fn is_tagged(&self) -> bool {
        !self.repo_tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_record_reads_names_labels_and_state() {
        let summary = json!({"Id": "abc", "Names": ["/other/alias", "/web"], "Image": "busybox",
            "State": "running", "Labels": {"com.docker.swarm.id": "s1"}, "Created": 5});
        let details = ContainerDetails::from_inspect(json!({"Id": "abc", "Name": "/web",
            "Created": "2020-01-01T00:00:01.5Z", "State": {"Status": "paused", "Paused": true},
            "HostConfig": {"Memory": 10, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}})
            .to_string().as_bytes())
        .unwrap();
        let raw = summary.to_string();
        let c = Container::new(
            serde_json::from_str(&raw).unwrap(),
            details,
            entry_hash(raw.as_bytes()),
        );
        assert_eq!(c.name(), "web");
        assert_eq!(c.swarm_id(), Some("s1"));
        assert_eq!(c.state(), "paused");
        assert_eq!(c.details.memory, 10);
        assert_eq!(
            c.details.port_bindings(),
            [BoundPort {
                port: "80/tcp".into(),
                host_ip: "".into(),
                host_port: "8080".into()
            }]
        );
        assert_eq!(c.details.health(), None);
        assert!(c.details.full().is_none());
        assert_eq!(c.created_nanos(), 1_577_836_801_500_000_000);
    }

    #[test]
    fn an_inspect_body_keeps_what_the_manager_reads() {
        let plain = ContainerDetails::from_inspect(
            br#"{"Id":"abc","Name":"/we\u0062","Created":"bad","State":{"Status":"running",
                "Running":true,"StartedAt":"2020-01-01T00:00:10Z","FinishedAt":"0001-01-01T00:00:00Z"},
                "HostConfig":{"NetworkMode":"default","CpuShares":512}}"#,
        )
        .unwrap();
        assert_eq!(&*plain.name, "/web");
        assert_eq!(plain.created_ns, None);
        assert_eq!(plain.started_secs, Some(1_577_836_810));
        assert_eq!(plain.finished_secs, None);
        assert!(plain.state.running);
        assert_eq!(&*plain.network_mode, "default");
        assert_eq!(plain.cpu_shares, 512);
        assert!(plain.rare.is_none(), "nothing rare was set");

        let mut rich = ContainerDetails::from_inspect(
            json!({"Name": "/db", "State": {"Status": "running", "Health": {"Status": "healthy"}},
                "ExecIDs": ["e1"], "Config": {"ExposedPorts": {"80/tcp": {}},
                "Labels": {"com.docker.swarm.reschedule-policies": "[\"on-node-failure\"]"}},
                "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}],
                "81/tcp": null}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(rich.health(), Some("healthy"));
        assert_eq!(rich.exposed_ports().collect::<Vec<_>>(), ["80/tcp"]);
        assert_eq!(rich.port_bindings().len(), 1);
        assert_eq!(&*rich.port_bindings()[0].host_ip, "0.0.0.0");
        assert!(rich.has_exec("e1") && !rich.has_exec("e2"));
        rich.add_exec("e2");
        assert!(rich.has_exec("e2"));
        assert_eq!(rich.full().unwrap()["Name"], "/db");

        let asks_nothing = ContainerDetails::from_inspect(
            br#"{"Config":{"Labels":{"com.docker.swarm.reschedule-policies":"[]"}}}"#,
        )
        .unwrap();
        assert!(asks_nothing.full().is_none());
        assert!(ContainerDetails::from_inspect(b"[1]").is_err());
    }

    #[test]
    fn a_list_entry_splits_into_typed_and_pass_through_members() {
        let raw = r#"{"Id":"abc","Names":["/web"],"Image":"busybox","ImageID":"sha256:1",
            "Command":"sh","Created":7,"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":53,"Type":"udp"}],"Labels":{"a":"1","\u0062":"2","n":5},"State":"running",
            "Status":"Up 2 minutes","Mounts":[{"Name":"data","Destination":"/data"}],
            "NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}}"#;
        let s: Summary = serde_json::from_str(raw).unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(&*s.state, "running");
        assert_eq!(&*s.status, "Up 2 minutes");
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.ports[0].public_port, Some(8080));
        assert_eq!(s.ports[1].ip, None);
        assert_eq!(s.labels.get("a"), Some("1"));
        assert_eq!(s.labels.get("b"), Some("2"));
        assert_eq!(s.labels.get("n"), None);
        assert_eq!(s.created, 7);
        assert_eq!(&*s.mounts[0].destination, "/data");
        assert_eq!(&*s.networks[0].network_id, "n1");
        let rest: Value = serde_json::from_str(&format!("{{{}}}", s.static_json)).unwrap();
        let keys: Vec<&str> = rest
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "Id",
                "Image",
                "ImageID",
                "Command",
                "Created",
                "Labels",
                "Mounts",
                "NetworkSettings"
            ]
        );
        assert!(serde_json::from_str::<Summary>("[1]").is_err());
    }

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

    #[test]
    fn untagged_images_have_no_tags() {
        let img = Image::from_raw(
            json!({"Id": "sha256:1", "RepoTags": ["<none>:<none>"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(!img.is_tagged());
    }
}
