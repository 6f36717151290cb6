//! The health filter: only nodes with a positive health indicator receive containers.
use super::{Filter, FilterError};
use crate::scheduler::expr::ExprError;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Keeps nodes whose health indicator is above 0 (SPEC §3.2).
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthFilter;

impl Filter for HealthFilter {
    fn name(&self) -> &'static str {
        "health"
    }

    fn filter<'a>(
        &self,
        _request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
        _soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError> {
        nodes.retain(|node| node.health_indicator > 0);
        if nodes.is_empty() {
            return Err(FilterError::NoHealthyNode);
        }
        Ok(nodes)
    }

    fn describe(&self, _request: &SchedulingRequest) -> Result<Vec<String>, ExprError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{all, names, node};

    #[test]
    fn keeps_only_nodes_with_a_positive_health_indicator() {
        let mut sick = node("sick");
        sick.health_indicator = 0;
        let mut recovering = node("recovering");
        recovering.health_indicator = 34;
        let nodes = [sick, recovering, node("fine")];
        let kept = HealthFilter
            .filter(&SchedulingRequest::default(), all(&nodes), true)
            .unwrap();
        assert_eq!(names(&kept), ["recovering", "fine"]);
    }

    #[test]
    fn no_healthy_node_is_the_verbatim_error() {
        let err = HealthFilter
            .filter(&SchedulingRequest::default(), Vec::new(), true)
            .unwrap_err();
        assert_eq!(err, FilterError::NoHealthyNode);
        assert_eq!(err.to_string(), "No healthy node available in the cluster");
    }
}
