//! Filters: each one narrows the candidate nodes for a request and can describe, for the
//! scheduling error text, what it required (SPEC §4.2, §4.3). One file per filter; all pure.
use super::expr::{ExprError, Expression};
use super::node::NodeSnapshot;
use super::request::SchedulingRequest;

mod affinity;
mod constraint;
mod dependency;
mod health;
mod port;
mod slots;
mod whitelist;

pub use affinity::AffinityFilter;
pub use constraint::ConstraintFilter;
pub use dependency::DependencyFilter;
pub use health::HealthFilter;
pub use port::PortFilter;
pub(crate) use slots::has_free_slot;
pub use slots::SlotsFilter;
pub use whitelist::WhitelistFilter;

/// The filters `swarm manage` runs when no `--filter` is given, in order.
pub const DEFAULT_FILTERS: [&str; 7] = [
    "health",
    "port",
    "containerslots",
    "dependency",
    "affinity",
    "constraint",
    "whitelist",
];

/// Why a filter left no node (or could not run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Every node is unhealthy; the scheduler returns this text unwrapped.
    #[error("No healthy node available in the cluster")]
    NoHealthyNode,
    /// One of the request's expressions does not parse.
    #[error(transparent)]
    InvalidExpression(#[from] ExprError),
    /// No node satisfies the filter; the text is for logs (clients see the condition list).
    #[error("{0}")]
    Unsatisfied(String),
}

/// One step of node selection.
pub trait Filter: Send + Sync + std::fmt::Debug {
    /// The name used by `--filter` and in `error from <name> filter: …`.
    fn name(&self) -> &'static str;

    /// Keeps the nodes that satisfy the request. `soft_active` is false in the second pass, when
    /// soft (`~`) expressions are ignored. An empty result is an error.
    fn filter<'a>(
        &self,
        request: &SchedulingRequest,
        nodes: Vec<&'a NodeSnapshot>,
        soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError>;

    /// What this filter requires of a node for this request, one entry per condition, as listed
    /// in the scheduling error text; empty when it requires nothing worth showing.
    fn describe(&self, request: &SchedulingRequest) -> Result<Vec<String>, ExprError>;

    /// The request's expressions this filter parses (none for filters that read no
    /// expressions), so a malformed one is found before any node is looked at.
    fn expressions<'r>(&self, request: &'r SchedulingRequest) -> &'r [String] {
        let _ = request;
        &[]
    }
}

/// The filter registered under `name`, if any.
pub fn filter_by_name(name: &str) -> Option<Box<dyn Filter>> {
    let filter: Box<dyn Filter> = match name {
        "health" => Box::new(HealthFilter),
        "port" => Box::new(PortFilter),
        "containerslots" => Box::new(SlotsFilter),
        "dependency" => Box::new(DependencyFilter),
        "affinity" => Box::new(AffinityFilter),
        "constraint" => Box::new(ConstraintFilter),
        "whitelist" => Box::new(WhitelistFilter),
        _ => return None,
    };
    Some(filter)
}

/// A filter driven by one list of the request's expressions (affinity, constraint, whitelist):
/// a node stays when every expression that applies in this pass holds on it, and each expression
/// must keep at least one node. Implementing this trait implements [`Filter`].
pub trait ExpressionFilter: Send + Sync + std::fmt::Debug {
    /// The name used by `--filter`.
    const NAME: &'static str;

    /// The request's expressions this filter applies.
    fn expressions(request: &SchedulingRequest) -> &[String];

    /// Whether one expression holds on one node.
    fn node_satisfies(expression: &Expression, node: &NodeSnapshot) -> bool;

    /// How one expression is shown in the scheduling error text.
    fn describe_expression(expression: &Expression) -> String;
}

impl<T: ExpressionFilter> Filter for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn filter<'a>(
        &self,
        request: &SchedulingRequest,
        mut nodes: Vec<&'a NodeSnapshot>,
        soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, FilterError> {
        let expressions = Expression::parse_all(T::expressions(request))?;
        for expression in expressions.iter().filter(|e| e.applies(soft_active)) {
            nodes.retain(|node| T::node_satisfies(expression, node));
            if nodes.is_empty() {
                return Err(FilterError::Unsatisfied(format!(
                    "unable to find a node that satisfies {expression}"
                )));
            }
        }
        Ok(nodes)
    }

    fn describe(&self, request: &SchedulingRequest) -> Result<Vec<String>, ExprError> {
        let expressions = Expression::parse_all(T::expressions(request))?;
        Ok(expressions.iter().map(T::describe_expression).collect())
    }

    fn expressions<'r>(&self, request: &'r SchedulingRequest) -> &'r [String] {
        T::expressions(request)
    }
}

/// `key<op>value (soft=<bool>)`, the description affinities and whitelists use.
fn describe_with_softness(expression: &Expression) -> String {
    format!("{expression} (soft={})", expression.soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_filter_is_registered_under_its_name() {
        for name in DEFAULT_FILTERS {
            assert_eq!(filter_by_name(name).map(|f| f.name()), Some(name));
        }
        assert!(filter_by_name("bogus").is_none());
    }
}
