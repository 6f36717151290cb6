//! The constraint filter: place a container only on nodes whose name, ID or engine labels match.
use super::ExpressionFilter;
use crate::scheduler::expr::Expression;
use crate::scheduler::node::NodeSnapshot;
use crate::scheduler::request::SchedulingRequest;

/// Applies `constraint:` expressions (SPEC §4.2). Key `node` matches the node's ID and name; any
/// other key matches that engine label, a missing label counting as the empty string (so
/// `key!=x` holds on nodes without the label).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstraintFilter;

/// The constraint key that names a node instead of an engine label.
pub const NODE_KEY: &str = "node";

impl ExpressionFilter for ConstraintFilter {
    const NAME: &'static str = "constraint";

    fn expressions(request: &SchedulingRequest) -> &[String] {
        &request.constraints
    }

    /// Constraints are shown without their soft marker, unlike affinities.
    fn describe_expression(constraint: &Expression) -> String {
        constraint.to_string()
    }

    fn node_satisfies(constraint: &Expression, node: &NodeSnapshot) -> bool {
        if constraint.key == NODE_KEY {
            constraint.matches([node.id.as_str(), node.name.as_str()])
        } else {
            constraint.matches([node
                .labels
                .get(&constraint.key)
                .map(String::as_str)
                .unwrap_or("")])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::filter::{Filter, FilterError};
    use crate::scheduler::fixtures::{all, labelled_node, names};
    use proptest::prelude::*;

    fn request(constraints: &[&str]) -> SchedulingRequest {
        SchedulingRequest {
            constraints: constraints.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    fn cluster() -> Vec<NodeSnapshot> {
        vec![
            labelled_node("node-0", &[("storage", "ssd"), ("region", "us-east")]),
            labelled_node("node-1", &[("storage", "disk"), ("region", "us-west")]),
            labelled_node("node-2", &[]),
        ]
    }

    fn kept(constraints: &[&str], soft_active: bool) -> Result<Vec<String>, FilterError> {
        let nodes = cluster();
        ConstraintFilter
            .filter(&request(constraints), all(&nodes), soft_active)
            .map(|kept| names(&kept).into_iter().map(str::to_string).collect())
    }

    #[test]
    fn node_key_matches_name_and_id() {
        assert_eq!(kept(&["node==node-1"], true).unwrap(), ["node-1"]);
        assert_eq!(
            kept(&["node==ID-node-2|node-2:2375"], true).unwrap(),
            ["node-2"]
        );
        // `|` is not escaped in globs (quirk 10): this is `^ID-node-2` or `node-1:2375$`.
        assert_eq!(
            kept(&["node==ID-node-2|node-1:2375"], true).unwrap(),
            ["node-1", "node-2"]
        );
        assert_eq!(kept(&["node!=node-1"], true).unwrap(), ["node-0", "node-2"]);
        assert_eq!(
            kept(&["node==/node-[01]/"], true).unwrap(),
            ["node-0", "node-1"]
        );
    }

    #[test]
    fn other_keys_match_engine_labels_and_missing_labels_are_empty() {
        assert_eq!(kept(&["storage==ssd"], true).unwrap(), ["node-0"]);
        assert_eq!(kept(&["storage!=ssd"], true).unwrap(), ["node-1", "node-2"]);
        assert_eq!(
            kept(&["region==us-*", "storage==disk"], true).unwrap(),
            ["node-1"]
        );
        assert!(kept(&["storage==tape"], true).is_err());
    }

    #[test]
    fn soft_constraints_only_apply_in_the_first_pass() {
        assert!(kept(&["node==~node-9"], true).is_err());
        assert_eq!(kept(&["node==~node-9"], false).unwrap().len(), 3);
        assert_eq!(
            ConstraintFilter
                .describe(&request(&["node==~node-9"]))
                .unwrap(),
            ["node==node-9"]
        );
    }

    #[test]
    fn invalid_constraints_are_errors_not_panics() {
        for (text, message) in [
            ("node", "One of operator ==, != is expected"),
            ("n!==x", "Key 'n!' is invalid"),
            ("node==a{b}", "Value 'a{b}' is invalid"),
        ] {
            assert_eq!(kept(&[text], true).unwrap_err().to_string(), message);
            assert_eq!(
                ConstraintFilter
                    .describe(&request(&[text]))
                    .unwrap_err()
                    .to_string(),
                message
            );
        }
    }

    proptest! {
        #[test]
        fn never_keeps_a_node_violating_a_hard_constraint(
            regions in proptest::collection::vec(proptest::option::of(0u8..3), 1..8),
            wanted in 0u8..3,
            negate in any::<bool>(),
        ) {
            let nodes: Vec<NodeSnapshot> = regions.iter().enumerate().map(|(i, region)| {
                let region = region.map(|r| format!("r{r}"));
                let labels: Vec<(&str, &str)> = region.iter().map(|r| ("region", r.as_str())).collect();
                labelled_node(&format!("n{i}"), &labels)
            }).collect();
            let op = if negate { "!=" } else { "==" };
            let req = request(&[&format!("region{op}r{wanted}")]);
            if let Ok(kept) = ConstraintFilter.filter(&req, all(&nodes), true) {
                let wanted = format!("r{wanted}");
                for node in kept {
                    prop_assert_eq!(node.labels.get("region") == Some(&wanted), !negate);
                }
            }
        }
    }
}
