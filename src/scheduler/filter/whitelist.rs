//! The whitelist filter: restrict placement to nodes named in a `|`-separated list.
use super::{describe_with_softness, ExpressionFilter};
use crate::scheduler::expr::Expression;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Applies `whitelist:` expressions (SPEC §4.2): the value is split on `|` and the node name must
/// equal one part exactly. The key and the operator are ignored (`!=` acts like `==`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WhitelistFilter;

impl ExpressionFilter for WhitelistFilter {
    const NAME: &'static str = "whitelist";

    fn expressions(request: &SchedulingRequest) -> &[String] {
        &request.whitelists
    }

    fn node_satisfies(whitelist: &Expression, node: &NodeSnapshot) -> bool {
        whitelist.value.split('|').any(|name| name == node.name)
    }

    fn describe_expression(whitelist: &Expression) -> String {
        describe_with_softness(whitelist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::filter::{Filter, FilterError};
    use crate::scheduler::fixtures::{all, names, node};

    fn kept(whitelists: &[&str], soft_active: bool) -> Result<Vec<String>, FilterError> {
        let nodes = [node("node-0"), node("node-1"), node("node-2")];
        let request = SchedulingRequest {
            whitelists: whitelists.iter().map(|w| w.to_string()).collect(),
            ..Default::default()
        };
        WhitelistFilter
            .filter(&request, all(&nodes), soft_active)
            .map(|kept| names(&kept).into_iter().map(str::to_string).collect())
    }

    #[test]
    fn keeps_exactly_the_listed_names() {
        assert_eq!(
            kept(&["node==node-0|node-2"], true).unwrap(),
            ["node-0", "node-2"]
        );
        assert!(kept(&["node==node-*"], true).is_err());
    }

    #[test]
    fn key_and_operator_are_ignored() {
        assert_eq!(kept(&["anything!=node-1"], true).unwrap(), ["node-1"]);
    }

    #[test]
    fn soft_whitelists_are_dropped_in_the_second_pass() {
        assert!(kept(&["node==~node-9"], true).is_err());
        assert_eq!(kept(&["node==~node-9"], false).unwrap().len(), 3);
        let request = SchedulingRequest {
            whitelists: vec!["node==~a|b".into()],
            ..Default::default()
        };
        assert_eq!(
            WhitelistFilter.describe(&request).unwrap(),
            ["node==a|b (soft=true)"]
        );
    }
}
