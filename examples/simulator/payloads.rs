//! The bodies a simulated engine answers with, shaped like dockerd 20.10's: every key, the same
//! nesting, the same nulls and sizes within a few percent, derived from the container's create
//! request the way the engine derives them (ports, labels, binds and volumes, networks, limits,
//! env, cmd). It owns rendering only: which containers, networks and volumes exist is the
//! engine's business (`mod.rs`), and nothing here is called per request for container bodies,
//! which are rendered once per change and kept as bytes.
//!
//! `tests/simulator_fidelity.rs` holds these shapes to a real engine's: when a key or a size
//! changes there, it changes here.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The image every simulated container runs, by its full content digest as dockerd reports it.
pub const IMAGE_ID: &str =
    "sha256:a917ab5eb8669d0909281fb7d696406399c8f41755706c4a7396b7b72bdc0aec";
/// `Created` of that image (2020-01-01).
const IMAGE_CREATED: i64 = 1_577_836_800;
/// Its size in bytes.
const IMAGE_SIZE: i64 = 1_984_234;
/// What dockerd puts in `Env` when neither the image nor the request set `PATH`.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The zero time as Go prints it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Where a simulated engine pretends to keep its files; the paths in inspect bodies, volume
/// mount points and `/info` are made from these, so their lengths follow a real engine's.
#[derive(Debug, Clone)]
pub struct EnginePaths {
    /// dockerd's `--data-root` (`DockerRootDir`).
    pub data_root: String,
    /// dockerd's `--exec-root` (network namespaces live in `<exec_root>/netns`).
    pub exec_root: String,
}

impl Default for EnginePaths {
    fn default() -> Self {
        EnginePaths {
            data_root: "/var/lib/docker".into(),
            exec_root: "/var/run/docker".into(),
        }
    }
}

/// What a create request asked for, as dockerd keeps it (its `Config` and `HostConfig`).
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The image as the request named it (`Config.Image`, the list's `Image`).
    pub image: String,
    /// The command; the image's default (`sh`) when the request gave none.
    pub cmd: Vec<String>,
    /// The request's env followed by the default `PATH`, as dockerd merges them.
    pub env: Vec<String>,
    /// Container labels, sorted as Go marshals maps.
    pub labels: BTreeMap<String, String>,
    /// `80/tcp` → the bindings requested for it (host IP, host port); exposed ports without a
    /// binding map to an empty list.
    pub ports: BTreeMap<String, Vec<(String, String)>>,
    /// `source:destination[:mode]` as given.
    pub binds: Vec<String>,
    /// `default`, `host`, `none` or a user network's name.
    pub network_mode: String,
    /// Resource limits as `HostConfig` reports them (bytes, bytes, billionths of a CPU, shares).
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
}

impl ContainerSpec {
    /// The spec of `docker run -d busybox sleep 3600`: what the fleet is seeded with.
    pub fn seeded() -> Self {
        ContainerSpec {
            image: "busybox".into(),
            cmd: vec!["sleep".into(), "3600".into()],
            env: vec![DEFAULT_PATH.into()],
            network_mode: "default".into(),
            ..Default::default()
        }
    }

    /// Reads a create request body the way dockerd fills its defaults in.
    pub fn from_create(body: &Value) -> Self {
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let host = body.get("HostConfig").unwrap_or(&Value::Null);
        let int = |key: &str| host.get(key).and_then(Value::as_i64).unwrap_or(0);
        let mut env = strings(body.get("Env"));
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.into());
        }
        let mut cmd = strings(body.get("Cmd"));
        if cmd.is_empty() {
            cmd.push("sh".into()); // the test image's default command
        }
        let labels = body
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut ports: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        if let Some(exposed) = body.get("ExposedPorts").and_then(Value::as_object) {
            for port in exposed.keys() {
                ports.entry(port.clone()).or_default();
            }
        }
        if let Some(bindings) = host.get("PortBindings").and_then(Value::as_object) {
            for (port, list) in bindings {
                let entry = ports.entry(port.clone()).or_default();
                for b in list.as_array().into_iter().flatten() {
                    let field =
                        |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    entry.push((field("HostIp"), field("HostPort")));
                }
            }
        }
        let memory = int("Memory");
        let memory_swap = match int("MemorySwap") {
            // dockerd gives a memory limit twice that much memory+swap unless told otherwise.
            0 if memory > 0 => memory * 2,
            swap => swap,
        };
        ContainerSpec {
            image: body
                .get("Image")
                .and_then(Value::as_str)
                .unwrap_or("busybox")
                .to_string(),
            cmd,
            env,
            labels,
            ports,
            binds: strings(host.get("Binds")),
            network_mode: host
                .get("NetworkMode")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or("default")
                .to_string(),
            memory,
            memory_swap,
            nano_cpus: int("NanoCpus"),
            cpu_shares: int("CpuShares"),
        }
    }

    /// `docker ps`'s `Command`: the command line joined by spaces.
    fn command(&self) -> String {
        self.cmd.join(" ")
    }

    /// Named volumes among the binds.
    pub fn volume_names(&self) -> impl Iterator<Item = &str> {
        self.binds
            .iter()
            .filter_map(|b| b.split(':').next())
            .filter(|s| !s.is_empty() && !s.starts_with('/'))
    }
}

/// The network a container joins and, while it runs, its endpoint there.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The network's name, the key of `NetworkSettings.Networks`.
    pub network: String,
    pub network_id: String,
    /// `172.x.0.1`; shown only while the container runs.
    pub gateway: String,
    /// Set while the container runs: IP address, endpoint ID, sandbox ID.
    pub endpoint: Option<Endpoint>,
    /// User networks give the container its short ID as an alias.
    pub user_network: bool,
}

/// A running container's endpoint on its network.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// IPv4 address in the network's subnet.
    pub ip: [u8; 4],
    pub endpoint_id: String,
    pub sandbox_id: String,
}

impl Endpoint {
    fn ip(&self) -> String {
        let [a, b, c, d] = self.ip;
        format!("{a}.{b}.{c}.{d}")
    }

    /// dockerd 20.10 derives the MAC address from the IPv4 address.
    fn mac(&self) -> String {
        let [a, b, c, d] = self.ip;
        format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
    }
}

/// What the bodies of one container are made from.
pub struct ContainerView<'a> {
    /// The fields of the engine's container record, borrowed.
    pub id: &'a str,
    pub name: &'a str,
    pub spec: &'a ContainerSpec,
    pub state: &'a str,
    pub created_nanos: i64,
    pub started_at: &'a str,
    pub finished_at: &'a str,
    pub exit_code: i64,
    pub pid: i64,
    /// The container's read-write layer in the graph driver.
    pub layer_id: &'a str,
    pub attachment: &'a Attachment,
    pub paths: &'a EnginePaths,
}

/// RFC 3339 with nanoseconds, as Go prints times.
pub fn rfc3339_nanos(nanos: i64) -> String {
    chrono::DateTime::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    .unwrap_or_else(|| ZERO_TIME.into())
}

/// `docker ps`'s human duration ("Less than a second", "5 minutes", "About an hour", …).
fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn parse_time_secs(rfc: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// `Status` of the list entry, as of `now_secs`.
fn status_line(v: &ContainerView, now_secs: i64) -> String {
    match v.state {
        "running" => format!(
            "Up {}",
            human_duration(now_secs - parse_time_secs(v.started_at))
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            v.exit_code,
            human_duration(now_secs - parse_time_secs(v.finished_at))
        ),
        _ => "Created".into(),
    }
}

/// The `Mounts` array, from the binds.
fn mounts(v: &ContainerView) -> Value {
    let list: Vec<Value> = v
        .spec
        .binds
        .iter()
        .filter_map(|bind| {
            let mut parts = bind.splitn(3, ':');
            let source = parts.next()?;
            let destination = parts.next()?;
            let mode = parts.next().unwrap_or("");
            let rw = !mode.split(',').any(|m| m == "ro");
            Some(if source.starts_with('/') {
                json!({"Type": "bind", "Source": source, "Destination": destination, "Mode": mode,
                       "RW": rw, "Propagation": "rprivate"})
            } else {
                json!({"Type": "volume", "Name": source,
                       "Source": format!("{}/volumes/{source}/_data", v.paths.data_root),
                       "Destination": destination, "Driver": "local",
                       "Mode": if mode.is_empty() { "z" } else { mode }, "RW": rw, "Propagation": ""})
            })
        })
        .collect();
    Value::Array(list)
}

/// The bindings actually made: an unspecified host IP binds both IPv4 and IPv6.
fn bound_ports<'a>(v: &ContainerView<'a>) -> Vec<(&'a str, String, String)> {
    let mut out = Vec::new();
    if v.state != "running" {
        return out;
    }
    for (port, bindings) in &v.spec.ports {
        for (host_ip, host_port) in bindings {
            if host_ip.is_empty() {
                out.push((port.as_str(), "0.0.0.0".into(), host_port.clone()));
                out.push((port.as_str(), "::".into(), host_port.clone()));
            } else {
                out.push((port.as_str(), host_ip.clone(), host_port.clone()));
            }
        }
    }
    out
}

/// The list entry's `Ports`.
fn list_ports(v: &ContainerView) -> Value {
    let split = |port: &str| -> (i64, String) {
        let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        (number.parse().unwrap_or(0), proto.to_string())
    };
    let mut list: Vec<Value> = bound_ports(v)
        .into_iter()
        .map(|(port, ip, host_port)| {
            let (private, proto) = split(port);
            json!({"IP": ip, "PrivatePort": private, "PublicPort": host_port.parse::<i64>().unwrap_or(0), "Type": proto})
        })
        .collect();
    for (port, bindings) in &v.spec.ports {
        if bindings.is_empty() || v.state != "running" {
            let (private, proto) = split(port);
            list.push(json!({"PrivatePort": private, "Type": proto}));
        }
    }
    Value::Array(list)
}

/// One endpoint of `NetworkSettings.Networks`.
fn endpoint_settings(v: &ContainerView, with_aliases: bool) -> Value {
    let a = v.attachment;
    let e = a.endpoint.as_ref();
    let aliases = match (with_aliases && a.user_network, e) {
        (true, Some(_)) => json!([&v.id[..12]]),
        _ => Value::Null,
    };
    json!({
        "IPAMConfig": null, "Links": null, "Aliases": aliases,
        "NetworkID": a.network_id,
        "EndpointID": e.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": if e.is_some() { a.gateway.as_str() } else { "" },
        "IPAddress": e.map(Endpoint::ip).unwrap_or_default(),
        "IPPrefixLen": if e.is_some() { 16 } else { 0 },
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "MacAddress": e.map(Endpoint::mac).unwrap_or_default(),
        "DriverOpts": null,
    })
}

fn networks_map(v: &ContainerView, with_aliases: bool) -> Value {
    let mut m = Map::new();
    m.insert(
        v.attachment.network.clone(),
        endpoint_settings(v, with_aliases),
    );
    Value::Object(m)
}

/// One entry of `GET /containers/json?all=1`.
pub fn list_entry(v: &ContainerView, now_secs: i64) -> Value {
    json!({
        "Id": v.id, "Names": [format!("/{}", v.name)], "Image": v.spec.image, "ImageID": IMAGE_ID,
        "Command": v.spec.command(), "Created": v.created_nanos / 1_000_000_000,
        "Ports": list_ports(v), "Labels": v.spec.labels, "State": v.state,
        "Status": status_line(v, now_secs),
        "HostConfig": {"NetworkMode": v.spec.network_mode},
        "NetworkSettings": {"Networks": networks_map(v, false)},
        "Mounts": mounts(v),
    })
}

/// Appends the keys of object `more` to object `base`, in order.
fn extend(base: &mut Value, more: Value) {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
}

fn null_if_empty<T: serde::Serialize>(items: &[T]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    }
}

/// `GET /containers/{id}/json`.
pub fn inspect(v: &ContainerView) -> Value {
    let root = &v.paths.data_root;
    let dir = format!("{root}/containers/{}", v.id);
    let layer = format!("{root}/overlay2/{}", v.layer_id);
    let running = v.state == "running";
    let port_bindings: Map<String, Value> = v
        .spec
        .ports
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(port, b)| {
            let list: Vec<Value> = b
                .iter()
                .map(|(ip, hp)| json!({"HostIp": ip, "HostPort": hp}))
                .collect();
            (port.clone(), Value::Array(list))
        })
        .collect();
    let exposed: Map<String, Value> = v
        .spec
        .ports
        .keys()
        .map(|p| (p.clone(), json!({})))
        .collect();
    let mut published: Map<String, Value> = Map::new();
    if running {
        for port in v.spec.ports.keys() {
            published.insert(port.clone(), Value::Null);
        }
        for (port, ip, host_port) in bound_ports(v) {
            let slot = published.entry(port.to_string()).or_insert(json!([]));
            if !slot.is_array() {
                *slot = json!([]);
            }
            if let Some(list) = slot.as_array_mut() {
                list.push(json!({"HostIp": ip, "HostPort": host_port}));
            }
        }
    }
    let a = v.attachment;
    let e = a.endpoint.as_ref();
    // The top-level endpoint fields describe the default bridge only.
    let on_bridge = e.filter(|_| a.network == "bridge");
    let (path, args) = v
        .spec
        .cmd
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    // Built apart from the rest: one json! of the whole body, or of the whole HostConfig, is too deep for the macro.
    let host_config = json!({
        "Binds": null_if_empty(&v.spec.binds), "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": v.spec.network_mode,
        "PortBindings": if port_bindings.is_empty() { Value::Null } else { Value::Object(port_bindings) },
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
        "CgroupnsMode": "host", "Dns": null, "DnsOptions": null, "DnsSearch": null, "ExtraHosts": null,
        "GroupAdd": null, "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0,
        "PidMode": "", "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
        "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 67_108_864, "Runtime": "runc",
        "ConsoleSize": [0, 0], "Isolation": "",
    });
    let resources = json!({
        "CpuShares": v.spec.cpu_shares, "Memory": v.spec.memory,
        "NanoCpus": v.spec.nano_cpus, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": null,
        "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null, "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": null,
        "DeviceCgroupRules": null, "DeviceRequests": null, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": 0, "MemorySwap": v.spec.memory_swap, "MemorySwappiness": null,
        "OomKillDisable": false, "PidsLimit": null, "Ulimits": null, "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                        "/sys/firmware"],
        "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    let mut host_config = host_config;
    extend(&mut host_config, resources);
    let mut config = json!({
        "Hostname": &v.id[..12], "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false,
    });
    // dockerd leaves ExposedPorts out when there are none.
    if !exposed.is_empty() {
        extend(&mut config, json!({ "ExposedPorts": exposed }));
    }
    extend(
        &mut config,
        json!({
            "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": v.spec.env, "Cmd": v.spec.cmd,
            "Image": v.spec.image, "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
            "Labels": v.spec.labels,
        }),
    );
    json!({
        "Id": v.id, "Created": rfc3339_nanos(v.created_nanos), "Path": path, "Args": args,
        "State": {
            "Status": v.state, "Running": running, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": if running { v.pid } else { 0 },
            "ExitCode": v.exit_code, "Error": "", "StartedAt": v.started_at, "FinishedAt": v.finished_at,
        },
        "Image": IMAGE_ID,
        "ResolvConfPath": format!("{dir}/resolv.conf"),
        "HostnamePath": format!("{dir}/hostname"),
        "HostsPath": format!("{dir}/hosts"),
        "LogPath": format!("{dir}/{}-json.log", v.id),
        "Name": format!("/{}", v.name), "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Data": {
                "LowerDir": format!("{layer}-init/diff:{root}/overlay2/{}/diff", &IMAGE_ID[7..]),
                "MergedDir": format!("{layer}/merged"),
                "UpperDir": format!("{layer}/diff"),
                "WorkDir": format!("{layer}/work"),
            },
            "Name": "overlay2",
        },
        "Mounts": mounts(v),
        "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": e.map(|e| e.sandbox_id.clone()).unwrap_or_default(),
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": published,
            "SandboxKey": e.map(|e| format!("{}/netns/{}", v.paths.exec_root, &e.sandbox_id[..12])).unwrap_or_default(),
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
            "EndpointID": on_bridge.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
            "Gateway": if on_bridge.is_some() { a.gateway.as_str() } else { "" },
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": on_bridge.map(Endpoint::ip).unwrap_or_default(),
            "IPPrefixLen": if on_bridge.is_some() { 16 } else { 0 },
            "IPv6Gateway": "",
            "MacAddress": on_bridge.map(Endpoint::mac).unwrap_or_default(),
            "Networks": networks_map(v, true),
        },
    })
}

/// A network of a simulated engine, as `GET /networks` lists it.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    /// `bridge`, `host`, `none` or the name given at create.
    pub name: String,
    pub id: String,
    /// `bridge`, `host` or `null`.
    pub driver: &'static str,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The second octet of its 172.x.0.0/16 subnet; `None` for `host` and `none`.
    pub subnet: Option<u8>,
    /// The last host number handed out in the subnet.
    pub last_host: u16,
}

impl SimNetwork {
    /// `172.x.0.1`.
    pub fn gateway(&self) -> String {
        self.subnet
            .map(|s| format!("172.{s}.0.1"))
            .unwrap_or_default()
    }
}

/// `GET /networks`.
pub fn networks(list: &[SimNetwork]) -> Value {
    let entries: Vec<Value> = list
        .iter()
        .map(|n| {
            let config = match (n.subnet, n.name.as_str()) {
                (Some(s), "bridge") => json!([{"Subnet": format!("172.{s}.0.0/16")}]),
                (Some(s), _) => {
                    json!([{"Subnet": format!("172.{s}.0.0/16"), "Gateway": n.gateway()}])
                }
                (None, _) => json!([]),
            };
            let options = if n.name == "bridge" {
                json!({
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": "docker0",
                    "com.docker.network.driver.mtu": "1500"})
            } else {
                json!({})
            };
            json!({
                "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": n.driver,
                "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": null, "Config": config},
                "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
                "ConfigOnly": false, "Containers": {}, "Options": options, "Labels": {},
            })
        })
        .collect();
    Value::Array(entries)
}

/// `GET /volumes`, from (name, creation time) pairs.
pub fn volumes(list: &[(String, String)], paths: &EnginePaths) -> Value {
    let entries: Vec<Value> = list
        .iter()
        .map(|(name, created)| {
            json!({
                "CreatedAt": created, "Driver": "local", "Labels": null,
                "Mountpoint": format!("{}/volumes/{name}/_data", paths.data_root),
                "Name": name, "Options": null, "Scope": "local",
            })
        })
        .collect();
    json!({"Volumes": entries, "Warnings": null})
}

/// `GET /images/json`: the one image every simulated container runs.
pub fn images() -> Value {
    json!([{
        "Containers": -1, "Created": IMAGE_CREATED, "Id": IMAGE_ID, "Labels": null, "ParentId": "",
        "RepoDigests": null, "RepoTags": ["busybox:latest"], "SharedSize": -1, "Size": IMAGE_SIZE,
        "VirtualSize": IMAGE_SIZE,
    }])
}

/// The engine version the simulator claims.
pub const SERVER_VERSION: &str = "20.10.24+dfsg1";
const KERNEL_VERSION: &str = "6.1.0-28-amd64";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "Platform": {"Name": ""},
        "Components": [
            {"Name": "Engine", "Version": SERVER_VERSION, "Details": {
                "ApiVersion": "1.41", "Arch": "amd64", "BuildTime": "2024-05-07T21:09:36.000000000+00:00",
                "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.8",
                "KernelVersion": KERNEL_VERSION, "MinAPIVersion": "1.12", "Os": "linux"}},
            {"Name": "containerd", "Version": "1.6.20~ds1", "Details": {"GitCommit": "1.6.20~ds1-1+deb12u1"}},
            {"Name": "runc", "Version": "1.1.5+ds1", "Details": {"GitCommit": "1.1.5+ds1-1+deb12u1"}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": ""}},
        ],
        "Version": SERVER_VERSION, "ApiVersion": "1.41", "MinAPIVersion": "1.12", "GitCommit": "5d6db84",
        "GoVersion": "go1.19.8", "Os": "linux", "Arch": "amd64", "KernelVersion": KERNEL_VERSION,
        "BuildTime": "2024-05-07T21:09:36.000000000+00:00",
    })
}

/// Container counts for `/info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// All containers, running ones, the others.
    pub total: usize,
    pub running: usize,
    pub stopped: usize,
}

/// Stands in for `SystemTime` in the cached `/info` body; the time is spliced in per request.
pub const SYSTEM_TIME_MARK: &str = "\u{1}system-time\u{1}";

/// `GET /info`, with [`SYSTEM_TIME_MARK`] in place of the current time.
pub fn info(
    daemon_id: &str,
    name: &str,
    labels: &[String],
    counts: Counts,
    paths: &EnginePaths,
) -> Value {
    // In parts: one json! of the whole body is too deep for the macro.
    let mut info = json!({
        "ID": daemon_id, "Containers": counts.total, "ContainersRunning": counts.running,
        "ContainersPaused": 0, "ContainersStopped": counts.stopped, "Images": 1, "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {
            "Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
            "Authorization": null,
            "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries",
                    "splunk", "syslog"],
        },
    });
    let features = json!({
        "MemoryLimit": true, "SwapLimit": true, "KernelMemory": true, "KernelMemoryTCP": true,
        "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true, "PidsLimit": true,
        "IPv4Forwarding": true, "BridgeNfIptables": true, "BridgeNfIp6tables": true, "Debug": false,
        "NFd": 24 + 2 * counts.running, "OomKillDisable": true, "NGoroutines": 34 + 2 * counts.running,
    });
    let system = json!({
        "SystemTime": SYSTEM_TIME_MARK, "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "1", "NEventsListener": 1, "KernelVersion": KERNEL_VERSION,
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSVersion": "12", "OSType": "linux",
        "Architecture": "x86_64", "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}},
            "Mirrors": [],
        },
    });
    let rest = json!({
        "NCPU": 4, "MemTotal": 8_i64 << 30, "GenericResources": null, "DockerRootDir": paths.data_root,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": name, "Labels": labels,
        "ExperimentalBuild": false, "ServerVersion": SERVER_VERSION,
        "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "io.containerd.runtime.v1.linux": {"path": "runc"},
                     "runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false,
                  "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": false, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "1.6.20~ds1-1+deb12u1", "Expected": "1.6.20~ds1-1+deb12u1"},
        "RuncCommit": {"ID": "1.1.5+ds1-1+deb12u1", "Expected": "1.1.5+ds1-1+deb12u1"},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"], "Warnings": null,
    });
    for part in [features, system, rest] {
        extend(&mut info, part);
    }
    info
}

/// A container event as dockerd 20.10 sends it: the container's labels ride in the attributes.
pub fn container_event(
    action: &str,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
    nanos: i64,
) -> Value {
    let mut attributes: Map<String, Value> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    attributes.insert("image".into(), Value::String(spec.image.clone()));
    attributes.insert("name".into(), Value::String(name.into()));
    json!({
        "status": action, "id": id, "from": spec.image, "Type": "container", "Action": action,
        "Actor": {"ID": id, "Attributes": attributes}, "scope": "local",
        "time": nanos / 1_000_000_000, "timeNano": nanos,
    })
}
