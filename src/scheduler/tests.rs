//! Whole-scheduler scenarios: placements the classic manager makes and its exact error texts.
use super::fixtures::{container, labelled_node, names, node};
use super::strategy::RandomStrategy;
use super::*;

fn default_scheduler(strategy: &str) -> Scheduler {
    Scheduler::new(strategy, &DEFAULT_FILTERS).unwrap()
}

fn constrained(constraints: &[&str]) -> SchedulingRequest {
    SchedulingRequest {
        constraints: constraints.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

/// The nodes the default spread scheduler ranks for the request, best first.
fn spread_choice<'a>(nodes: &'a [NodeSnapshot], request: &SchedulingRequest) -> Vec<&'a str> {
    names(&default_scheduler("spread").select(nodes, request).unwrap())
}

/// Places `count` containers one after another, recording each as a pending creation on the
/// chosen node as the cluster does, and returns how many each node got.
fn place(
    scheduler: &Scheduler,
    nodes: &mut [NodeSnapshot],
    request: &SchedulingRequest,
    count: usize,
) -> Vec<usize> {
    for i in 0..count {
        let chosen = scheduler.select(nodes, request).unwrap()[0].name.clone();
        let node = nodes.iter_mut().find(|n| n.name == chosen).unwrap();
        let name = format!("c{i}");
        node.add_container(ContainerSnapshot::pending(request, Some(&name), None));
    }
    nodes.iter().map(|n| n.containers.len()).collect()
}

#[test]
fn spread_balances_six_containers_over_three_empty_nodes() {
    let mut nodes = vec![node("node-0"), node("node-1"), node("node-2")];
    let placed = place(
        &default_scheduler("spread"),
        &mut nodes,
        &SchedulingRequest::default(),
        6,
    );
    assert_eq!(placed, [2, 2, 2]);
}

#[test]
fn binpack_piles_six_containers_onto_one_node() {
    let mut nodes = vec![node("node-0"), node("node-1"), node("node-2")];
    let placed = place(
        &default_scheduler("binpack"),
        &mut nodes,
        &SchedulingRequest::default(),
        6,
    );
    let mut sorted = placed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 0, 6], "{placed:?}");
}

#[test]
fn one_cpu_containers_land_on_different_nodes_with_spread_and_together_with_binpack() {
    let request = SchedulingRequest {
        cpus: 1,
        ..Default::default()
    };
    let mut nodes = vec![node("node-0"), node("node-1")];
    assert_eq!(
        place(&default_scheduler("spread"), &mut nodes, &request, 2),
        [1, 1]
    );
    let mut nodes = vec![node("node-0"), node("node-1")];
    let placed = place(&default_scheduler("binpack"), &mut nodes, &request, 2);
    assert!(placed == [2, 0] || placed == [0, 2], "{placed:?}");
}

#[test]
fn binpack_moves_on_when_the_fullest_node_is_out_of_cpus() {
    let request = SchedulingRequest {
        cpus: 1,
        ..Default::default()
    };
    let mut nodes = vec![node("node-0"), node("node-1")];
    let mut placed = place(&default_scheduler("binpack"), &mut nodes, &request, 4);
    placed.sort_unstable();
    assert_eq!(placed, [2, 2]);
    let err = default_scheduler("binpack")
        .select(&nodes, &request)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no resources available to schedule container"
    );
}

#[test]
fn memory_overcommit_lets_105_gib_fit_a_100_gib_node_but_not_106() {
    const GIB: i64 = 1 << 30;
    let mut big = node("big");
    big.total_memory = total_with_overcommit(100 * GIB, 0.05);
    let nodes = [big];
    let scheduler = default_scheduler("spread");
    let fits = SchedulingRequest {
        memory: 105 * GIB,
        ..Default::default()
    };
    assert_eq!(names(&scheduler.select(&nodes, &fits).unwrap()), ["big"]);
    let too_big = SchedulingRequest {
        memory: 106 * GIB,
        ..Default::default()
    };
    let err = scheduler.select(&nodes, &too_big).unwrap_err();
    assert_eq!(err, SchedulerError::NoResources);
    assert_eq!(err.kind(), SchedulerErrorKind::NoCapacity);
}

#[test]
fn the_condition_list_matches_the_verified_classic_text() {
    let nodes = [node("node-0"), node("node-1")];
    let request = SchedulingRequest {
        affinities: vec!["container==~x".into()],
        ..constrained(&["node==nope"])
    };
    let err = default_scheduler("spread")
        .select(&nodes, &request)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Unable to find a node that satisfies the following conditions \n\
         [available container slots]\n\
         [container==x (soft=true)]\n\
         [node==nope]"
    );
    assert!(!err.is_client_error());
}

#[test]
fn the_condition_list_stops_at_the_failing_filter() {
    let binding = PortBinding {
        port: "80/tcp".into(),
        host_ip: String::new(),
        host_port: "80".into(),
    };
    let mut busy = node("node-0");
    busy.containers.push(ContainerSnapshot {
        port_bindings: vec![binding.clone()],
        ..container("a", "a")
    });
    let nodes = [busy];
    let request = SchedulingRequest {
        port_bindings: vec![binding],
        ..constrained(&["node==node-0"])
    };
    let err = default_scheduler("spread")
        .select(&nodes, &request)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Unable to find a node that satisfies the following conditions \n[port 80 (Bridge mode)]"
    );
}

#[test]
fn a_bad_expression_ends_the_list_with_the_filter_error() {
    let nodes = [node("node-0")];
    let scheduler = default_scheduler("spread");
    for (constraint, message) in [
        ("node", "One of operator ==, != is expected"),
        ("n==x", "Key 'n' is invalid"),
        ("node==a,b", "Value 'a,b' is invalid"),
    ] {
        let err = scheduler
            .select(&nodes, &constrained(&[constraint]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Unable to find a node that satisfies the following conditions \n\
                 [available container slots]\n\
                 error from constraint filter: {message}"
            )
        );
        assert!(err.is_client_error());
    }
    let request = SchedulingRequest {
        affinities: vec!["image".into()],
        ..Default::default()
    };
    let err = scheduler.select(&nodes, &request).unwrap_err();
    assert!(err
        .to_string()
        .ends_with("\nerror from affinity filter: One of operator ==, != is expected"));
}

#[test]
fn an_invalid_regex_is_not_an_error_but_never_matches() {
    let nodes = [node("node-0")];
    let err = default_scheduler("spread")
        .select(&nodes, &constrained(&["node==/node-[/"]))
        .unwrap_err();
    assert!(err.to_string().ends_with("\n[node==/node-[/]"), "{err}");
    assert!(!err.is_client_error());
    let ranked = default_scheduler("spread")
        .select(&nodes, &constrained(&["node!=/node-[/"]))
        .unwrap();
    assert_eq!(names(&ranked), ["node-0"]);
}

#[test]
fn unhealthy_or_missing_nodes_give_the_health_text_unwrapped() {
    let mut sick = node("node-0");
    sick.health_indicator = 0;
    let scheduler = default_scheduler("spread");
    let request = constrained(&["node==node-0"]);
    assert_eq!(
        scheduler.select(&[sick], &request).unwrap_err(),
        SchedulerError::NoHealthyNode
    );
    assert_eq!(
        scheduler.select(&[], &request).unwrap_err().to_string(),
        "No healthy node available in the cluster"
    );
}

#[test]
fn without_filters_an_empty_cluster_has_no_nodes_available() {
    let scheduler = Scheduler::new::<&str>("spread", &[]).unwrap();
    assert_eq!(
        scheduler
            .select(&[], &SchedulingRequest::default())
            .unwrap_err()
            .to_string(),
        "No nodes available in the cluster"
    );
}

#[test]
fn soft_expressions_fall_back_to_any_node() {
    let nodes = [node("node-0"), node("node-1")];
    let scheduler = default_scheduler("spread");
    assert_eq!(
        names(
            &scheduler
                .select(&nodes, &constrained(&["node==~node-1"]))
                .unwrap()
        ),
        ["node-1"]
    );
    assert_eq!(
        scheduler
            .select(&nodes, &constrained(&["node==~node-9"]))
            .unwrap()
            .len(),
        2
    );
    let request = SchedulingRequest {
        affinities: vec!["container==~nothing".into()],
        whitelists: vec!["node==~node-7".into()],
        ..Default::default()
    };
    assert_eq!(scheduler.select(&nodes, &request).unwrap().len(), 2);
}

#[test]
fn a_soft_affinity_to_a_full_node_is_dropped_in_the_second_pass() {
    let mut full = node("node-0");
    full.used_cpus = 2;
    full.containers
        .push(container("0123456789ab0123456789ab", "web"));
    let nodes = [full, node("node-1")];
    let request = SchedulingRequest {
        cpus: 1,
        affinities: vec!["container==~web".into()],
        ..Default::default()
    };
    assert_eq!(spread_choice(&nodes, &request), ["node-1"]);
    let hard = SchedulingRequest {
        affinities: vec!["container==web".into()],
        ..request
    };
    assert_eq!(
        default_scheduler("spread")
            .select(&nodes, &hard)
            .unwrap_err(),
        SchedulerError::NoResources
    );
}

#[test]
fn a_soft_network_pin_yields_to_a_full_node() {
    let mut pinned = labelled_node("node-0", &[("containerslots", "1")]);
    pinned.containers.push(container("a", "a"));
    let nodes = [pinned, node("node-1")];
    let mut request = SchedulingRequest::default();
    request.add_constraint("node==~node-0");
    assert_eq!(spread_choice(&nodes, &request), ["node-1"]);
}

#[test]
fn constraints_from_build_arguments_schedule_the_build() {
    let nodes = [node("node-0"), node("node-1")];
    let (request, forwarded) =
        SchedulingRequest::from_env_like(&["constraint:node==node-9", "VERSION=1"]);
    assert_eq!(forwarded, ["VERSION=1"]);
    let err = default_scheduler("spread")
        .select(&nodes, &request)
        .unwrap_err();
    assert_eq!(err.to_string().lines().nth(2), Some("[node==node-9]"));
}

#[test]
fn the_whole_create_flow_request_places_by_label_constraint() {
    let nodes = [
        labelled_node("node-0", &[("storage", "disk")]),
        labelled_node("node-1", &[("storage", "ssd")]),
    ];
    let mut body = match serde_json::json!({"Image": "redis", "Env": ["constraint:storage==ssd"]}) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    let request = extract(&mut body).unwrap();
    assert_eq!(spread_choice(&nodes, &request), ["node-1"]);
}

#[test]
fn random_strategy_keeps_every_candidate_the_filters_allowed() {
    let nodes = [node("node-0"), node("node-1"), node("node-2")];
    let filters = DEFAULT_FILTERS
        .iter()
        .filter_map(|f| filter_by_name(f))
        .collect();
    let scheduler = Scheduler::with_parts(filters, Box::new(RandomStrategy::seeded(3)));
    let mut ranked = names(
        &scheduler
            .select(&nodes, &constrained(&["node!=node-1"]))
            .unwrap(),
    );
    ranked.sort_unstable();
    assert_eq!(ranked, ["node-0", "node-2"]);
    assert_eq!(scheduler.strategy_name(), "random");
}

#[test]
fn unknown_strategies_and_filters_are_rejected() {
    assert_eq!(
        Scheduler::new("fair", &DEFAULT_FILTERS)
            .unwrap_err()
            .to_string(),
        "strategy not supported"
    );
    let err = Scheduler::new("spread", &["health", "bogus"]).unwrap_err();
    assert_eq!(err.to_string(), "filter not supported");
    assert_eq!(err.kind(), SchedulerErrorKind::Configuration);
    let scheduler = Scheduler::new("binpacking", &["constraint", "health"]).unwrap();
    assert_eq!(scheduler.strategy_name(), "binpack");
    assert_eq!(scheduler.filter_names(), ["constraint", "health"]);
}

#[test]
fn filters_run_in_the_configured_order() {
    // With constraint first, its failure lists only itself even though slots would also fail.
    let mut full = labelled_node("node-0", &[("containerslots", "0")]);
    full.health_indicator = 100;
    let nodes = [full];
    let scheduler = Scheduler::new("spread", &["constraint", "containerslots"]).unwrap();
    let err = scheduler
        .select(&nodes, &constrained(&["node==x"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{UNSATISFIABLE_PREFIX}\n[node==x]")
    );
    let err = scheduler
        .select(&nodes, &SchedulingRequest::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{UNSATISFIABLE_PREFIX}\n[available container slots]")
    );
}

#[test]
fn select_among_borrowed_snapshots_matches_select() {
    let nodes = [node("node-0"), node("node-1")];
    let shared: Vec<std::sync::Arc<NodeSnapshot>> =
        nodes.iter().cloned().map(std::sync::Arc::new).collect();
    let refs: Vec<&NodeSnapshot> = shared.iter().map(|n| n.as_ref()).collect();
    let request = constrained(&["node==node-1"]);
    let scheduler = default_scheduler("spread");
    assert_eq!(
        names(&scheduler.select_among(&refs, &request).unwrap()),
        ["node-1"]
    );
    assert_eq!(
        names(&scheduler.select(&nodes, &request).unwrap()),
        ["node-1"]
    );
}

#[test]
fn a_volume_whitelist_label_selects_every_listed_node() {
    let nodes = [node("node-0"), node("node-1"), node("node-2")];
    let labels =
        super::fixtures::pairs(&[("com.docker.swarm.whitelists", "[\"node==node-0|node-2\"]")]);
    let request = SchedulingRequest::from_labels(&labels);
    let mut chosen = names(
        &default_scheduler("spread")
            .select(&nodes, &request)
            .unwrap(),
    );
    chosen.sort_unstable();
    assert_eq!(chosen, ["node-0", "node-2"]);
}

#[test]
fn check_names_the_malformed_expression_before_any_node_is_considered() {
    let scheduler = default_scheduler("spread");
    for (request, message) in [
        (
            constrained(&["node=="]),
            "invalid constraint expression 'node==': Value '' is invalid",
        ),
        (
            constrained(&["region==west", "node=~["]),
            "invalid constraint expression 'node=~[': One of operator ==, != is expected",
        ),
        (
            SchedulingRequest {
                affinities: vec!["container==".into()],
                ..Default::default()
            },
            "invalid affinity expression 'container==': Value '' is invalid",
        ),
        (
            SchedulingRequest {
                affinities: vec!["image=~[".into()],
                ..Default::default()
            },
            "invalid affinity expression 'image=~[': One of operator ==, != is expected",
        ),
        (
            SchedulingRequest {
                whitelists: vec!["node==a,b".into()],
                ..Default::default()
            },
            "invalid whitelist expression 'node==a,b': Value 'a,b' is invalid",
        ),
    ] {
        let err = scheduler.check(&request).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(err.is_client_error(), "{err}");
        // With no node at all, selection would only have said no node is healthy.
        assert_eq!(
            scheduler.select(&[], &request).unwrap_err(),
            SchedulerError::NoHealthyNode
        );
    }
}

#[test]
fn check_reports_expressions_in_filter_order() {
    let request = SchedulingRequest {
        affinities: vec!["container".into()],
        ..constrained(&["node"])
    };
    let err = default_scheduler("spread").check(&request).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid affinity expression"),
        "{err}"
    );
}

#[test]
fn check_accepts_well_formed_requests_and_unmatchable_regexes() {
    let scheduler = default_scheduler("spread");
    let request = SchedulingRequest {
        affinities: vec!["container==~web".into(), "image==busy*".into()],
        whitelists: vec!["node==node-0|node-1".into()],
        ..constrained(&["node==/node-[/", "region!=eu"])
    };
    assert_eq!(scheduler.check(&request), Ok(()));
    assert_eq!(scheduler.check(&SchedulingRequest::default()), Ok(()));
}

#[test]
fn check_skips_expressions_no_configured_filter_reads() {
    let scheduler = Scheduler::new("spread", &["health", "affinity"]).unwrap();
    assert_eq!(scheduler.check(&constrained(&["node=="])), Ok(()));
    let request = SchedulingRequest {
        affinities: vec!["container==".into()],
        ..Default::default()
    };
    assert!(scheduler.check(&request).is_err());
}
