//! The port filter: a node cannot take a container whose host ports are already taken there.
use super::{Filter, FilterError};
use crate::scheduler::expr::ExprError;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::PortBinding;
use crate::scheduler::request::SchedulingRequest;

/// Drops nodes where a requested host port is in use (SPEC §4.2). Host network mode compares
/// exposed ports with other host-mode containers; other modes compare host ports of bindings,
/// ignoring the protocol (quirk 6). The two modes do not see each other's reservations.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortFilter;

const HOST_NETWORK_MODE: &str = "host";

impl Filter for PortFilter {
    fn name(&self) -> &'static str {
        "port"
    }

    fn filter<'a>(
        &self,
        request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
        _soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError> {
        if request.network_mode == HOST_NETWORK_MODE {
            for port in &request.exposed_ports {
                nodes.retain(|node| !exposes_in_host_mode(node, port));
                if nodes.is_empty() {
                    return Err(FilterError::Unsatisfied(format!(
                        "unable to find a node with port {port} available in the Host mode"
                    )));
                }
            }
        } else {
            for requested in &request.port_bindings {
                nodes.retain(|node| !binds_host_port(node, requested));
                if nodes.is_empty() {
                    return Err(FilterError::Unsatisfied(format!(
                        "unable to find a node with port {} available",
                        requested.host_port
                    )));
                }
            }
        }
        Ok(nodes)
    }

    fn describe(&self, request: &SchedulingRequest) -> Result<Vec<String>, ExprError> {
        Ok(if request.network_mode == HOST_NETWORK_MODE {
            request
                .exposed_ports
                .iter()
                .map(|port| format!("port {port} (Host mode)"))
                .collect()
        } else {
            request
                .port_bindings
                .iter()
                .map(|binding| format!("port {} (Bridge mode)", binding.host_port))
                .collect()
        })
    }
}

/// Whether a host-mode container on the node already exposes `port`. Pending creations are not
/// seen here, as in the classic manager (their inspect data does not exist yet).
fn exposes_in_host_mode(node: &NodeSnapshot, port: &str) -> bool {
    node.containers.iter().any(|c| {
        !c.pending
            && c.network_mode == HOST_NETWORK_MODE
            && c.exposed_ports.iter().any(|p| p == port)
    })
}

/// Whether some container on the node binds the requested host port on an overlapping interface.
/// Bindings without a host port (`-p 80`) never conflict, on either side.
fn binds_host_port(node: &NodeSnapshot, requested: &PortBinding) -> bool {
    if requested.host_port.is_empty() {
        return false;
    }
    node.containers.iter().any(|c| {
        c.port_bindings.iter().any(|existing| {
            existing.host_port == requested.host_port
                && (existing.host_ip == requested.host_ip
                    || existing.binds_all_interfaces()
                    || requested.binds_all_interfaces())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, container, names, node};
    use proptest::prelude::*;

    fn binding(port: &str, host_ip: &str, host_port: &str) -> PortBinding {
        PortBinding {
            port: port.to_string(),
            host_ip: host_ip.to_string(),
            host_port: host_port.to_string(),
        }
    }

    fn bridge_request(bindings: Vec<PortBinding>) -> SchedulingRequest {
        SchedulingRequest {
            network_mode: "default".into(),
            port_bindings: bindings,
            ..Default::default()
        }
    }

    fn node_binding(name: &str, bindings: Vec<PortBinding>) -> NodeSnapshot {
        let mut n = node(name);
        n.containers
            .push(crate::scheduler::node::ContainerSnapshot {
                port_bindings: bindings,
                ..container(&format!("{name}-c"), &format!("{name}-c"))
            });
        n
    }

    #[test]
    fn a_taken_host_port_excludes_the_node_whatever_the_protocol() {
        let nodes = [
            node_binding("busy", vec![binding("53/udp", "", "80")]),
            node("free"),
        ];
        let kept = PortFilter
            .filter(
                &bridge_request(vec![binding("80/tcp", "", "80")]),
                all(&nodes),
                true,
            )
            .unwrap();
        assert_eq!(names(&kept), ["free"]);
    }

    #[test]
    fn different_specific_interfaces_do_not_conflict_but_all_interfaces_do() {
        let nodes = [node_binding("n", vec![binding("80/tcp", "10.0.0.1", "80")])];
        let request = |ip: &str| bridge_request(vec![binding("80/tcp", ip, "80")]);
        assert!(PortFilter
            .filter(&request("10.0.0.2"), all(&nodes), true)
            .is_ok());
        assert!(PortFilter
            .filter(&request("10.0.0.1"), all(&nodes), true)
            .is_err());
        assert!(PortFilter
            .filter(&request("0.0.0.0"), all(&nodes), true)
            .is_err());
        assert!(PortFilter.filter(&request(""), all(&nodes), true).is_err());
        let everywhere = [node_binding("n", vec![binding("80/tcp", "::", "80")])];
        assert!(PortFilter
            .filter(&request("10.0.0.2"), all(&everywhere), true)
            .is_err());
    }

    #[test]
    fn bindings_without_host_port_never_conflict() {
        let nodes = [node_binding("n", vec![binding("80/tcp", "", "")])];
        assert!(PortFilter
            .filter(
                &bridge_request(vec![binding("80/tcp", "", "")]),
                all(&nodes),
                true
            )
            .is_ok());
        assert!(PortFilter
            .filter(
                &bridge_request(vec![binding("80/tcp", "", "80")]),
                all(&nodes),
                true
            )
            .is_ok());
    }

    #[test]
    fn pending_creations_reserve_their_requested_bridge_ports() {
        let mut n = node("n");
        n.containers
            .push(crate::scheduler::node::ContainerSnapshot::pending(
                &bridge_request(vec![binding("80/tcp", "", "8080")]),
                Some("web"),
                None,
            ));
        let nodes = [n];
        let err = PortFilter
            .filter(
                &bridge_request(vec![binding("80/tcp", "", "8080")]),
                all(&nodes),
                true,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find a node with port 8080 available"
        );
    }

    #[test]
    fn host_mode_checks_exposed_ports_of_host_mode_containers_only() {
        let host_request = SchedulingRequest {
            network_mode: "host".into(),
            exposed_ports: vec!["80/tcp".into()],
            ..Default::default()
        };
        let mut host_user = node("host-user");
        host_user
            .containers
            .push(crate::scheduler::node::ContainerSnapshot {
                network_mode: "host".into(),
                exposed_ports: vec!["80/tcp".into()],
                ..container("a", "a")
            });
        let bridge_user = node_binding("bridge-user", vec![binding("80/tcp", "", "80")]);
        let nodes = [host_user, bridge_user];
        let kept = PortFilter.filter(&host_request, all(&nodes), true).unwrap();
        assert_eq!(names(&kept), ["bridge-user"]);
        // A bridge request does not see the host-mode container either.
        let kept = PortFilter
            .filter(
                &bridge_request(vec![binding("80/tcp", "", "81")]),
                all(&nodes),
                true,
            )
            .unwrap();
        assert_eq!(names(&kept), ["host-user", "bridge-user"]);
        assert_eq!(
            PortFilter.describe(&host_request).unwrap(),
            ["port 80/tcp (Host mode)"]
        );
    }

    #[test]
    fn describes_requested_bridge_ports() {
        let request = bridge_request(vec![
            binding("80/tcp", "", "8080"),
            binding("81/tcp", "", ""),
        ]);
        assert_eq!(
            PortFilter.describe(&request).unwrap(),
            ["port 8080 (Bridge mode)", "port  (Bridge mode)"]
        );
    }

    proptest! {
        #[test]
        fn never_keeps_a_node_with_a_conflicting_binding(
            used in proptest::collection::vec(proptest::collection::vec((0u8..4, 80u16..84), 0..4), 1..6),
            wanted in (0u8..4, 80u16..84),
        ) {
            let ips = ["", "0.0.0.0", "10.0.0.1", "10.0.0.2"];
            let nodes: Vec<NodeSnapshot> = used.iter().enumerate().map(|(i, bindings)| {
                node_binding(&format!("n{i}"), bindings.iter()
                    .map(|(ip, port)| binding("80/tcp", ips[*ip as usize], &port.to_string()))
                    .collect())
            }).collect();
            let requested = binding("80/tcp", ips[wanted.0 as usize], &wanted.1.to_string());
            if let Ok(kept) = PortFilter.filter(&bridge_request(vec![requested.clone()]), all(&nodes), true) {
                for node in kept {
                    for existing in node.containers.iter().flat_map(|c| &c.port_bindings) {
                        let overlaps = existing.host_ip == requested.host_ip
                            || existing.binds_all_interfaces() || requested.binds_all_interfaces();
                        prop_assert!(!(existing.host_port == requested.host_port && overlaps));
                    }
                }
            }
        }
    }
}
