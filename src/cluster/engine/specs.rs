//! What an engine says about itself (SPEC §3.3): `/version` and `/info` read through bollard
//! over the shared transport, checked (resources, labels, a daemon ID that must not change)
//! and published as [`EngineSpecs`]. A refusal keeps the engine out of the cluster.
use std::collections::BTreeMap;
use std::sync::Arc;

use bollard::Docker;
use http::{Request, StatusCode};
use tokio::time::Instant;

use super::super::health::Outcome;
use super::super::transport::boxed;
use super::{error_chain, Engine, EngineError};
use crate::version::{negotiate, ApiVersion, MIN_API};

/// What an engine told about itself (SPEC §3.3).
#[derive(Debug, Clone)]
pub struct EngineSpecs {
    /// `<daemon ID>|<addr>`.
    pub id: String,
    pub daemon_id: String,
    /// The daemon's hostname.
    pub name: String,
    pub cpus: i64,
    pub memory: i64,
    /// Built-in labels (storagedriver, kernelversion, operatingsystem, ostype) and daemon labels.
    pub labels: BTreeMap<String, String>,
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// The API version used towards this engine.
    pub api_version: ApiVersion,
    /// The IP the address resolved to (shown as the node IP).
    pub ip: String,
    /// When these specs were read.
    pub read_at: Instant,
}

impl Engine {
    /// A bollard client over the shared transport, speaking `version`.
    fn bollard(&self, version: ApiVersion) -> Result<Docker, EngineError> {
        let transport = self.transport.clone();
        Docker::connect_with_custom_transport(
            move |req: bollard::BollardRequest| {
                let transport = transport.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let req = Request::from_parts(parts, boxed(body));
                    transport
                        .request(req)
                        .await
                        .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
                }
            },
            Some(self.base.clone()),
            self.opts.call_timeout.as_secs().max(1),
            &bollard::ClientVersion {
                major_version: version.major as usize,
                minor_version: version.minor as usize,
            },
        )
        .map_err(|e| self.invalid(e))
    }

    fn bollard_error(&self, err: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as B;
        let e = match err {
            B::DockerResponseServerError {
                status_code,
                message,
            } => {
                self.record(Outcome::Answered);
                return EngineError::Status {
                    status: StatusCode::from_u16(status_code).unwrap_or(StatusCode::BAD_GATEWAY),
                    message,
                };
            }
            B::JsonDataError { .. } | B::JsonSerdeError { .. } | B::APIVersionParseError {} => {
                self.record(Outcome::Answered);
                return self.invalid(err);
            }
            B::HyperLegacyError { err } => self.unreachable(error_chain(&err)),
            B::RequestTimeoutError => return self.timed_out(self.opts.call_timeout),
            other => self.unreachable(other),
        };
        self.record(Outcome::Unreachable(e.to_string()));
        e
    }

    /// Reads `/version` and `/info` and publishes new specs (SPEC §3.3).
    pub async fn update_specs(&self) -> Result<(), EngineError> {
        let probe = self.bollard(MIN_API)?;
        let version = probe.version().await.map_err(|e| self.bollard_error(e))?;
        let api_version = negotiate(version.api_version.as_deref());
        let info = self
            .bollard(api_version)?
            .info()
            .await
            .map_err(|e| self.bollard_error(e))?;

        let cpus = info.ncpu.unwrap_or(0);
        let memory = info.mem_total.unwrap_or(0);
        if cpus == 0 || memory == 0 {
            return Err(EngineError::Rejected(format!(
                "cannot get resources for this engine, make sure {} is a Docker Engine, not a Swarm manager",
                self.addr
            )));
        }
        let mut labels = BTreeMap::new();
        for (key, value) in [
            ("storagedriver", info.driver.clone()),
            ("kernelversion", info.kernel_version.clone()),
            ("operatingsystem", info.operating_system.clone()),
            ("ostype", info.os_type.clone()),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                labels.insert(key.to_string(), v);
            }
        }
        for label in info.labels.clone().unwrap_or_default() {
            let Some((k, v)) = label.split_once('=') else {
                return Err(EngineError::Rejected(format!(
                    "Engine {} contains an invalid label ({label}) not formatted as \"key=value\".",
                    self.addr
                )));
            };
            if k == "node" {
                tracing::warn!(engine = %self.addr, "Engine label \"node\" is reserved for the node name; ignored");
                continue;
            }
            if labels.contains_key(k) {
                tracing::warn!(engine = %self.addr, label = k, "Engine label overrides a built-in label; ignored");
                continue;
            }
            labels.insert(k.to_string(), v.to_string());
        }
        let daemon_id = info.id.clone().unwrap_or_default();
        let id = format!("{daemon_id}|{}", self.addr);
        if let Some(old) = self.specs() {
            if old.daemon_id != daemon_id {
                let msg = format!(
                    "Engine (ID: {}, Addr: {}) shows up with another ID:{id}. Please remove it from cluster, it can be added back.",
                    old.id, self.addr
                );
                self.write_health(|h| h.other_daemon(&msg));
                return Err(EngineError::Rejected(msg));
            }
        }
        let ip = match self.specs() {
            Some(old) if !old.ip.is_empty() => old.ip.clone(),
            _ => resolve_ip(&self.addr).await,
        };
        self.specs.store(Some(Arc::new(EngineSpecs {
            id,
            daemon_id,
            name: info.name.clone().unwrap_or_default(),
            cpus,
            memory,
            labels,
            version: version
                .version
                .clone()
                .or(info.server_version.clone())
                .unwrap_or_default(),
            api_version,
            ip,
            read_at: Instant::now(),
        })));
        self.changed();
        Ok(())
    }
}

async fn resolve_ip(addr: &str) -> String {
    if addr.starts_with("unix://") {
        return String::new();
    }
    match tokio::net::lookup_host(addr).await {
        Ok(mut addrs) => addrs.next().map(|a| a.ip().to_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}
