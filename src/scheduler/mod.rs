//! The scheduler: given snapshots of the nodes and a [`SchedulingRequest`], decide where a
//! container (or a network, volume or build) goes, exactly as the classic Swarm manager does
//! (SPEC §4).
//!
//! It owns the expression language ([`expr`]), the scheduling request ([`request`]) taken from a
//! create body ([`create_body`]), the filters ([`filter`]: health, port, containerslots,
//! dependency, affinity, constraint, whitelist), the strategies ([`strategy`]: spread, binpack,
//! random), the two-pass selection with its error texts ([`Scheduler::select`]) and the ranking
//! kept between decisions for plain requests ([`view`]).
//!
//! It must not do I/O, await, read clocks or hold locks across calls: the cluster builds
//! [`NodeSnapshot`]s (pending creations included), serialises selection with its own lock, and
//! acts on the ranked list. "Random engine" routes take the first node ranked by the configured
//! strategy for an empty request, so they are not random (quirk 12).
//!
//! ```
//! use shoal::scheduler::{NodeSnapshot, Scheduler, SchedulingRequest, DEFAULT_FILTERS};
//!
//! let filters: Vec<String> = DEFAULT_FILTERS.iter().map(|f| f.to_string()).collect();
//! let scheduler = Scheduler::new("spread", &filters).unwrap();
//! let nodes = vec![NodeSnapshot {
//!     name: "node-0".into(),
//!     health_indicator: 100,
//!     total_cpus: 2,
//!     total_memory: 1 << 30,
//!     ..Default::default()
//! }];
//! let mut request = SchedulingRequest::default();
//! request.add_constraint("node==node-0");
//! let ranked = scheduler.select(&nodes, &request).unwrap();
//! assert_eq!(ranked[0].name, "node-0");
//! ```
#![warn(missing_docs)]

use std::fmt::Write as _;

pub mod create_body;
pub mod expr;
pub mod filter;
pub mod node;
pub mod request;
pub mod resources;
pub mod strategy;
pub mod view;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use create_body::extract;
pub use expr::{ExprError, Expression, Operator};
pub use filter::{filter_by_name, Filter, FilterError, DEFAULT_FILTERS};
pub use node::{ContainerSnapshot, ImageSnapshot, NodeSnapshot, SWARM_ID_LABEL};
pub use request::{MetadataKind, PortBinding, SchedulingRequest};
pub use resources::{cpus_to_shares, shares_to_cpus, total_with_overcommit};
pub use strategy::{strategy_by_name, Strategy, StrategyError};
pub use view::RankedView;

/// Start of the error text when a filter other than health leaves no node (trailing space kept).
pub const UNSATISFIABLE_PREFIX: &str =
    "Unable to find a node that satisfies the following conditions ";

/// Everything that can go wrong while configuring the scheduler or placing a container. The
/// `Display` texts are the classic ones, returned to clients as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// `--strategy` names no known strategy (fatal at startup).
    #[error("strategy not supported")]
    StrategyNotSupported,
    /// A `--filter` names no known filter (fatal at startup).
    #[error("filter not supported")]
    FilterNotSupported,
    /// The health filter found no healthy node; reported without the condition list.
    #[error("No healthy node available in the cluster")]
    NoHealthyNode,
    /// A filter left no node; `conditions` lists, one `\n[...]` line per filter up to the failing
    /// one, what the request required. `cause` is the failing filter's own message, for logs.
    #[error("{UNSATISFIABLE_PREFIX}{conditions}")]
    Unsatisfiable {
        /// The `\n[...]` lines after the prefix.
        conditions: String,
        /// What the failing filter said.
        cause: FilterError,
    },
    /// An expression of the request does not parse; the condition list ends with
    /// `error from <filter> filter: <message>`.
    #[error("{UNSATISFIABLE_PREFIX}{conditions}")]
    InvalidExpression {
        /// The `\n…` lines after the prefix.
        conditions: String,
        /// The parse error.
        cause: ExprError,
    },
    /// An expression of the request does not parse, found by [`Scheduler::check`] before any
    /// node is considered: the client's mistake, named with the expression and the reason.
    #[error("invalid {filter} expression '{expression}': {cause}")]
    MalformedExpression {
        /// The filter that reads the expression: `affinity`, `constraint` or `whitelist`.
        filter: &'static str,
        /// The expression as the client wrote it.
        expression: String,
        /// Why it does not parse.
        cause: ExprError,
    },
    /// The filters passed an empty node list through (only possible with an empty cluster and a
    /// filter list without health or containerslots).
    #[error("No nodes available in the cluster")]
    NoNodesAvailable,
    /// No candidate has room for the requested CPUs and memory.
    #[error("no resources available to schedule container")]
    NoResources,
    /// More than one reschedule policy on a create request.
    #[error("too many reschedule policies")]
    TooManyReschedulePolicies,
    /// A reschedule policy other than `off` or `on-node-failure`.
    #[error("invalid reschedule policy: {0}")]
    InvalidReschedulePolicy(String),
}

/// Who is to blame for a [`SchedulerError`]. The classic manager answered 500 for all of them at
/// request time; the API answers 400 for [`SchedulerErrorKind::InvalidRequest`] and 500 for the
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerErrorKind {
    /// The manager's own configuration is wrong (unknown strategy or filter).
    Configuration,
    /// The request is malformed (bad expression, bad reschedule policy).
    InvalidRequest,
    /// The request is well formed but no node can take it now.
    NoCapacity,
}

impl SchedulerError {
    /// Classifies the error.
    pub fn kind(&self) -> SchedulerErrorKind {
        match self {
            SchedulerError::StrategyNotSupported | SchedulerError::FilterNotSupported => {
                SchedulerErrorKind::Configuration
            }
            SchedulerError::InvalidExpression { .. }
            | SchedulerError::MalformedExpression { .. }
            | SchedulerError::TooManyReschedulePolicies
            | SchedulerError::InvalidReschedulePolicy(_) => SchedulerErrorKind::InvalidRequest,
            SchedulerError::NoHealthyNode
            | SchedulerError::Unsatisfiable { .. }
            | SchedulerError::NoNodesAvailable
            | SchedulerError::NoResources => SchedulerErrorKind::NoCapacity,
        }
    }

    /// Whether the client sent something invalid (as opposed to the cluster lacking room).
    pub fn is_client_error(&self) -> bool {
        self.kind() == SchedulerErrorKind::InvalidRequest
    }
}

impl From<StrategyError> for SchedulerError {
    fn from(err: StrategyError) -> SchedulerError {
        match err {
            StrategyError::NoResources => SchedulerError::NoResources,
        }
    }
}

/// A configured filter chain and strategy. Cheap to share (`Send + Sync`); selection takes
/// `&self`.
#[derive(Debug)]
pub struct Scheduler {
    /// Applied in order; each narrows the candidates of the previous one.
    filters: Vec<Box<dyn Filter>>,
    /// Ranks what the filters kept.
    strategy: Box<dyn Strategy>,
}

impl Scheduler {
    /// Builds a scheduler from `--strategy` and `--filter` values, in the order given. An empty
    /// filter list means no filters (the CLI substitutes [`DEFAULT_FILTERS`] when `--filter` is
    /// absent).
    pub fn new<S: AsRef<str>>(strategy: &str, filters: &[S]) -> Result<Scheduler, SchedulerError> {
        let strategy = strategy_by_name(strategy).ok_or(SchedulerError::StrategyNotSupported)?;
        let filters = filters
            .iter()
            .map(|name| filter_by_name(name.as_ref()).ok_or(SchedulerError::FilterNotSupported))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scheduler { filters, strategy })
    }

    /// A scheduler with explicit parts (e.g. a seeded [`strategy::RandomStrategy`] in tests).
    pub fn with_parts(filters: Vec<Box<dyn Filter>>, strategy: Box<dyn Strategy>) -> Scheduler {
        Scheduler { filters, strategy }
    }

    /// The canonical strategy name (`binpacking` shows as `binpack`).
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
    }

    /// The configured filter names, in order.
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Parses every expression the configured filters would read, in filter order, so that a
    /// malformed one is answered as the client's mistake before any node is considered (the
    /// classic manager only found it while filtering, after the health filter, and answered 500).
    /// Expressions no configured filter reads are not looked at, as before.
    pub fn check(&self, request: &SchedulingRequest) -> Result<(), SchedulerError> {
        for filter in &self.filters {
            for expression in filter.expressions(request) {
                if let Err(cause) = Expression::parse(expression) {
                    return Err(SchedulerError::MalformedExpression {
                        filter: filter.name(),
                        expression: expression.clone(),
                        cause,
                    });
                }
            }
        }
        Ok(())
    }

    /// Ranks the nodes that can take the request, best first; callers use the first one (or all
    /// of them, for volume creation with a whitelist). Runs the filters and strategy with soft
    /// expressions active, and if that fails, again with soft expressions ignored, returning the
    /// second error (SPEC §4.3).
    pub fn select<'a>(
        &self,
        nodes: &'a [NodeSnapshot],
        request: &SchedulingRequest,
    ) -> Result<Vec<&'a NodeSnapshot>, SchedulerError> {
        let nodes: Vec<&'a NodeSnapshot> = nodes.iter().collect();
        self.select_among(&nodes, request)
    }

    /// [`Scheduler::select`] for callers that keep their snapshots apart (e.g. one `Arc` per
    /// engine) rather than in one slice.
    pub fn select_among<'a>(
        &self,
        nodes: &[&'a NodeSnapshot],
        request: &SchedulingRequest,
    ) -> Result<Vec<&'a NodeSnapshot>, SchedulerError> {
        debug_assert!(
            !request.needs_containers() || nodes.iter().all(|n| n.unlisted == 0),
            "a request that reads containers was given snapshots that only count them"
        );
        self.select_pass(nodes, request, true)
            .or_else(|_| self.select_pass(nodes, request, false))
    }

    fn select_pass<'a>(
        &self,
        nodes: &[&'a NodeSnapshot],
        request: &SchedulingRequest,
        soft_active: bool,
    ) -> Result<Vec<&'a NodeSnapshot>, SchedulerError> {
        let mut candidates: Vec<&'a NodeSnapshot> = nodes.to_vec();
        for (position, filter) in self.filters.iter().enumerate() {
            candidates = filter
                .filter(request, candidates, soft_active)
                .map_err(|cause| self.filter_failure(position, cause, request))?;
        }
        if candidates.is_empty() {
            return Err(SchedulerError::NoNodesAvailable);
        }
        Ok(self.strategy.rank(request, candidates)?)
    }

    /// The error for the filter at `failed`: health's own text, or the condition list of every
    /// filter up to the failing one.
    fn filter_failure(
        &self,
        failed: usize,
        cause: FilterError,
        request: &SchedulingRequest,
    ) -> SchedulerError {
        if cause == FilterError::NoHealthyNode {
            return SchedulerError::NoHealthyNode;
        }
        let mut conditions = String::new();
        for filter in &self.filters[..=failed] {
            // Writing to a String cannot fail.
            let _ = match filter.describe(request) {
                Ok(list) if list.is_empty() => Ok(()),
                Ok(list) => write!(conditions, "\n[{}]", list.join(" ")),
                Err(err) => write!(conditions, "\nerror from {} filter: {err}", filter.name()),
            };
        }
        match cause {
            FilterError::InvalidExpression(cause) => {
                SchedulerError::InvalidExpression { conditions, cause }
            }
            cause => SchedulerError::Unsatisfiable { conditions, cause },
        }
    }
}
