//! Scheduler expressions (constraints, affinities, whitelists) and whole placements with
//! arbitrary expressions and arbitrary node figures.
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{config, tricky_string};
use crate::scheduler::expr::{user_regex, MAX_USER_REGEX_BYTES};
use crate::scheduler::{
    ContainerSnapshot, Expression, NodeSnapshot, Operator, Scheduler, SchedulerErrorKind,
    SchedulingRequest, DEFAULT_FILTERS,
};

/// Keys as users write them, and a few that are not keys.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(&["node", "container", "image", "region", "storage", "ostype"][..])
            .prop_map(str::to_string),
        "[a-zA-Z_][a-zA-Z0-9._-]{0,16}",
        tricky_string(),
    ]
    .boxed()
}

/// Values from the characters the value syntax allows (regex metacharacters included), as
/// globs, as `/regex/` and with the soft marker, plus anything at all.
fn value() -> BoxedStrategy<String> {
    let allowed = "[a-z0-9:_ .*/()?+\\[\\]\\\\^$|-]{0,24}";
    let regexish = prop::collection::vec(
        prop::sample::select(
            &[
                "a", ".", "*", "+", "?", "(", ")", "(?i)", "[", "]", "[a-z]", "\\", "\\w", "\\pL",
                "\\b", "^", "$", "|", "node-", "\\d", "\\W", "(?s)", "(?-u)", ".*",
            ][..],
        ),
        0..12,
    )
    .prop_map(|parts| parts.concat());
    let body = prop_oneof![
        allowed.prop_map(|s| s.to_string()),
        regexish.clone(),
        regexish.prop_map(|r| format!("/{r}/")),
        tricky_string(),
    ];
    (
        prop::sample::select(&["", "~", "~~", "=", "!", "/"][..]),
        body,
    )
        .prop_map(|(marker, body)| format!("{marker}{body}"))
        .boxed()
}

fn expression() -> BoxedStrategy<String> {
    let operator = prop::sample::select(&["==", "!=", "=", "!==", "===", "=~", "", "!"][..]);
    prop_oneof![
        4 => (key(), operator, value()).prop_map(|(k, o, v)| format!("{k}{o}{v}")),
        1 => tricky_string(),
    ]
    .boxed()
}

/// A node with arbitrary figures (negative, zero, huge) and a few labelled containers.
fn node() -> BoxedStrategy<NodeSnapshot> {
    let figure = prop_oneof![
        Just(0i64),
        Just(i64::MAX),
        Just(i64::MIN),
        -4i64..4,
        any::<i64>()
    ];
    let label = (key(), tricky_string());
    let container = (
        tricky_string(),
        prop::collection::btree_map(key(), tricky_string(), 0..3),
    )
        .prop_map(|(name, labels)| ContainerSnapshot {
            id: format!("{:064x}", name.len()),
            name: Some(name.clone()),
            names: vec![format!("/{name}")],
            labels,
            network_mode: "default".into(),
            ..Default::default()
        });
    (
        "[a-z0-9-]{1,8}",
        prop::collection::btree_map(label.0, label.1, 0..3),
        (
            figure.clone(),
            figure.clone(),
            figure.clone(),
            figure.clone(),
        ),
        -200i64..200,
        prop::collection::vec(container, 0..3),
    )
        .prop_map(
            |(name, labels, (cpus, memory, used_cpus, used_memory), health, cs)| {
                let mut node = NodeSnapshot {
                    id: format!("ID-{name}"),
                    addr: format!("{name}:2375"),
                    name,
                    labels,
                    health_indicator: health,
                    total_cpus: cpus,
                    total_memory: memory,
                    used_cpus,
                    used_memory,
                    ..Default::default()
                };
                for c in cs {
                    node.add_container(c);
                }
                node
            },
        )
        .boxed()
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn any_expression_parses_or_fails_with_a_classic_message(
        text in expression(),
        candidates in prop::collection::vec(tricky_string(), 0..4),
    ) {
        match Expression::parse(&text) {
            Ok(e) => {
                let _ = e.to_string();
                let _ = e.matches(candidates.iter().map(String::as_str));
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn client_regexes_compile_within_their_limits_or_say_why(
        pattern in prop_oneof![value(), "\\PC{0,64}", tricky_string()],
        repeat in 1usize..400,
    ) {
        let long = pattern.repeat(repeat);
        match user_regex(&long) {
            Ok(regex) => {
                prop_assert!(long.len() <= MAX_USER_REGEX_BYTES);
                let _ = regex.is_match(&long);
            }
            Err(err) => prop_assert!(!err.is_empty()),
        }
    }

    #[test]
    fn equal_and_not_equal_disagree_on_every_candidate_list(
        key in "[a-z_][a-z0-9._-]{1,8}",
        value in value(),
        candidates in prop::collection::vec(tricky_string(), 0..4),
    ) {
        // Otherwise `!=` is not where the text is split (the first `==` wins). Removing `==`
        // leaves every run of `=` at most one long.
        let value = value.replace("==", "");
        let value = value.trim_start_matches('=');
        let equal = Expression::parse(&format!("{key}=={value}"));
        let not_equal = Expression::parse(&format!("{key}!={value}"));
        match (equal, not_equal) {
            (Ok(equal), Ok(not_equal)) => {
                prop_assert_eq!(equal.operator, Operator::Equal);
                let list = || candidates.iter().map(String::as_str);
                prop_assert_ne!(equal.matches(list()), not_equal.matches(list()));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "only one operator parsed: {a:?} {b:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn placement_with_arbitrary_expressions_and_nodes_never_panics(
        constraints in prop::collection::vec(expression(), 0..3),
        affinities in prop::collection::vec(expression(), 0..3),
        whitelists in prop::collection::vec(expression(), 0..2),
        cpus in prop_oneof![Just(0i64), any::<i64>()],
        memory in prop_oneof![Just(0i64), any::<i64>()],
        strategy in prop::sample::select(&["spread", "binpack", "random"][..]),
        nodes in prop::collection::vec(node(), 0..4),
    ) {
        let filters: Vec<&str> = DEFAULT_FILTERS.iter().copied().chain(["whitelist"]).collect();
        let scheduler = Scheduler::new(strategy, &filters).unwrap();
        let request = SchedulingRequest {
            constraints: constraints.clone(),
            affinities: affinities.clone(),
            whitelists: whitelists.clone(),
            cpus,
            memory,
            labels: BTreeMap::new(),
            ..Default::default()
        };
        let _ = request.needs_containers();
        let all_parse = constraints
            .iter()
            .chain(&affinities)
            .chain(&whitelists)
            .all(|e| Expression::parse(e).is_ok());
        match scheduler.select(&nodes, &request) {
            Ok(ranked) => {
                prop_assert!(all_parse);
                prop_assert!(ranked.len() <= nodes.len());
            }
            Err(err) => {
                // A bad expression is the client's fault and says why; anything else is the
                // cluster's lack of room.
                if err.kind() == SchedulerErrorKind::InvalidRequest {
                    prop_assert!(!all_parse, "{err}");
                }
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}
