//! Chaos with real engines: an engine's dockerd killed with SIGKILL while 16 named creates are in
//! flight, and the manager itself killed with SIGKILL during 50 named creates and restarted.
//! Whatever the timing, every create either succeeded once (the container exists, on one node,
//! under the name asked for) or failed with Docker's JSON error, and no name ends up on two
//! nodes, through the manager and directly on every engine.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{http, wait_until, Engine, EngineSet, Manager};

/// How long one create may take before the test calls it a hang.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags that make an engine's death visible within seconds.
const FAST_FAILURE: [&str; 4] = ["--engine-failure-retry", "2", "--heartbeat", "1s"];

/// What one client was told.
#[derive(Debug, Clone)]
enum Answer {
    /// 201 with this ID.
    Created(String),
    /// An error status with Docker's JSON error body.
    Refused { status: u16, message: String },
    /// No HTTP answer at all (the connection broke or timed out); the error, for the report.
    Unanswered(String),
}

/// `POST /containers/create?name=NAME` on `addr`, classified.
fn create(addr: &str, name: &str, env: &[&str]) -> Answer {
    let body = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["sleep", "300"],
        "Env": env,
    })
    .to_string();
    let path = format!("/containers/create?name={name}");
    match http::request(
        addr,
        "POST",
        &path,
        Some(("application/json", body.as_bytes())),
        CREATE_TIMEOUT,
    ) {
        Ok(r) if r.status == 201 => {
            let id = r
                .json()
                .ok()
                .and_then(|v| v["Id"].as_str().map(str::to_string));
            match id {
                Some(id) if !id.is_empty() => Answer::Created(id),
                _ => panic!("{name}: 201 without an Id: {}", r.text()),
            }
        }
        Ok(r) => {
            let message = r
                .json()
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string));
            match message {
                Some(message) => Answer::Refused {
                    status: r.status,
                    message,
                },
                None => panic!(
                    "{name}: status {} without Docker's JSON error: {:?}",
                    r.status,
                    r.text()
                ),
            }
        }
        Err(e) => Answer::Unanswered(e.to_string()),
    }
}

/// One container as an engine or the manager lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    id: String,
    /// The name without any `/node/` prefix.
    name: String,
}

/// `GET /containers/json?all=1` on `addr`; names reduced to their last path segment.
fn list(addr: &str) -> Option<Vec<Listed>> {
    let response = http::get(addr, "/containers/json?all=1").ok()?;
    if response.status != 200 {
        return None;
    }
    let rows = response.json().ok()?;
    let rows = rows.as_array()?;
    Some(
        rows.iter()
            .map(|c| Listed {
                id: c["Id"].as_str().unwrap_or("").to_string(),
                name: c["Names"][0]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })
            .collect(),
    )
}

/// Every container on each engine that answers, read directly: name → (engine, ID) holders.
fn holders_on_engines(engines: &[&Engine]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut holders: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for engine in engines {
        let listed = list(&engine.addr())
            .unwrap_or_else(|| panic!("{} does not list its containers", engine.name()));
        for c in listed {
            holders
                .entry(c.name.clone())
                .or_default()
                .push((engine.name().to_string(), c.id.clone()));
        }
    }
    holders
}

/// Checks a container directly on its engine: it inspects whole, under `name`, in a state a
/// finished create leaves (created), with the Swarm ID label the manager adds.
fn assert_whole(engine: &Engine, id: &str, name: &str) {
    let r = http::get(&engine.addr(), &format!("/containers/{id}/json"))
        .unwrap_or_else(|e| panic!("inspect {id} on {}: {e}", engine.name()));
    assert_eq!(
        r.status,
        200,
        "inspect {id} on {}: {}",
        engine.name(),
        r.text()
    );
    let v = r.json().expect("inspect JSON");
    assert_eq!(v["Name"], format!("/{name}"), "{id} on {}", engine.name());
    assert_eq!(
        v["State"]["Status"],
        "created",
        "{name} ({id}) on {} is not a whole created container: {}",
        engine.name(),
        v["State"]
    );
    assert!(
        v["Config"]["Labels"]["com.docker.swarm.id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{name} ({id}) on {} has no Swarm ID",
        engine.name()
    );
}

/// The manager's list, once every node is Healthy and the list holds exactly `want` (the
/// containers read directly from the engines); panics naming the difference otherwise.
fn assert_manager_agrees(manager: &Manager, want: &BTreeSet<Listed>) {
    let mut last = None;
    let agreed = support::poll_until(Duration::from_secs(30), || {
        let got: Option<BTreeSet<Listed>> = list(&manager.addr()).map(|l| l.into_iter().collect());
        let same = got.as_ref() == Some(want);
        last = got;
        same
    });
    assert!(
        agreed,
        "the manager lists {last:?}\nbut the engines hold {want:?}"
    );
}

/// Waits until the manager reports `healthy` nodes as Healthy.
fn wait_healthy(manager: &Manager, healthy: usize) {
    wait_until(
        Duration::from_secs(40),
        &format!("{healthy} nodes are Healthy"),
        || manager.healthy_nodes() == Some(healthy),
    );
}

/// Runs `count` named creates `chaos-0`… at once against the manager, the i-th starting after
/// `i × stagger`; once `kill_after` of them have been answered, runs `kill`. Returns each name
/// with its answer.
fn creates_with_a_kill(
    manager_addr: &str,
    count: usize,
    stagger: Duration,
    env_of: impl Fn(usize) -> Vec<&'static str> + Sync,
    kill_after: usize,
    kill: impl FnOnce(),
) -> Vec<(String, Answer)> {
    let answered = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..count)
            .map(|i| {
                let answered = &answered;
                let env_of = &env_of;
                scope.spawn(move || {
                    std::thread::sleep(stagger * i as u32);
                    let name = format!("chaos-{i}");
                    let answer = create(manager_addr, &name, &env_of(i));
                    answered.fetch_add(1, Ordering::SeqCst);
                    (name, answer)
                })
            })
            .collect();
        // Polled tightly: the kill must land while the other creates are still in flight.
        let deadline = std::time::Instant::now() + CREATE_TIMEOUT;
        while answered.load(Ordering::SeqCst) < kill_after {
            assert!(
                std::time::Instant::now() < deadline,
                "{kill_after} creates were not answered within {CREATE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        kill();
        clients
            .into_iter()
            .map(|c| c.join().expect("a client thread panicked"))
            .collect()
    })
}

/// Prints the outcome counts of one run (kept in the test's output for the record).
fn report(what: &str, answers: &[(String, Answer)]) {
    let created = answers
        .iter()
        .filter(|(_, a)| matches!(a, Answer::Created(_)))
        .count();
    let refused: Vec<String> = answers
        .iter()
        .filter_map(|(n, a)| match a {
            Answer::Refused { status, message } => Some(format!("{n}: {status} {message}")),
            _ => None,
        })
        .collect();
    let unanswered: Vec<&str> = answers
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Unanswered(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    eprintln!(
        "{what}: {created} created, {} refused, {} unanswered (first: {:?})\n  {}",
        refused.len(),
        unanswered.len(),
        unanswered.first(),
        refused.join("\n  ")
    );
}

/// The invariants after creates that raced a death, checked on the engines in `alive` and
/// through the manager:
/// - no name is held by two containers (on one node or two);
/// - every create answered 201 left exactly that container, whole, under its name;
/// - every other container of the run is whole and holds a name that was asked for.
///
/// Returns what the engines hold.
fn assert_each_name_once(
    answers: &[(String, Answer)],
    alive: &[&Engine],
    dead: Option<&str>,
) -> BTreeSet<Listed> {
    let holders = holders_on_engines(alive);
    let mut per_node = BTreeMap::<&str, usize>::new();
    for found in holders.values() {
        for (node, _) in found {
            *per_node.entry(node.as_str()).or_default() += 1;
        }
    }
    let made_anyway = answers
        .iter()
        .filter(|(n, a)| !matches!(a, Answer::Created(_)) && holders.contains_key(n))
        .count();
    eprintln!("  containers per node: {per_node:?}; {made_anyway} made although not answered 201");
    for (name, found) in &holders {
        assert_eq!(found.len(), 1, "{name} is held more than once: {found:?}");
    }
    let asked: BTreeSet<&str> = answers.iter().map(|(n, _)| n.as_str()).collect();
    for (name, found) in &holders {
        assert!(asked.contains(name.as_str()), "unexpected container {name}");
        let (node, id) = &found[0];
        let engine = alive
            .iter()
            .find(|e| e.name() == node)
            .expect("listed node");
        assert_whole(engine, id, name);
    }
    for (name, answer) in answers {
        let Answer::Created(id) = answer else {
            continue;
        };
        match holders.get(name) {
            Some(found) => assert_eq!(
                &found[0].1, id,
                "{name}: the client was told {id}, the engines hold {found:?}"
            ),
            None => assert!(
                dead.is_some(),
                "{name}: the client was told {id} but no engine holds it"
            ),
        }
    }
    holders
        .into_iter()
        .map(|(name, found)| Listed {
            id: found[0].1.clone(),
            name,
        })
        .collect()
}

/// Every container a client was told about is in the manager's list exactly once (also those on
/// a node that is down, from the manager's memory of it).
fn assert_manager_lists_every_created(manager: &Manager, answers: &[(String, Answer)]) {
    let listed = list(&manager.addr()).expect("the manager lists containers");
    for (name, answer) in answers {
        if let Answer::Created(id) = answer {
            let found = listed.iter().filter(|c| &c.id == id).count();
            assert_eq!(found, 1, "{name} ({id}) listed {found} times: {listed:?}");
        }
    }
}

/// The names the manager lists more than once (a name on two nodes shows up here even while one
/// of the nodes is down, from the manager's memory of it).
fn names_listed_twice(manager: &Manager) -> Vec<String> {
    let listed = list(&manager.addr()).expect("the manager lists containers");
    let mut seen = BTreeMap::<String, usize>::new();
    for c in listed {
        *seen.entry(c.name).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name)
        .collect()
}

/// Soft-constrains every other create to the engine that will die, so several are in flight
/// there when it does; the rest spread over the cluster.
fn towards_node_0(i: usize) -> Vec<&'static str> {
    if i % 2 == 0 {
        vec!["constraint:node==~node-0"]
    } else {
        Vec::new()
    }
}

/// Three engines and a manager allowing one retry elsewhere; 16 creates, node-0 killed after
/// the 4th answer.
fn kill_node_0_during_creates(what: &str) -> (EngineSet, Manager, Vec<(String, Answer)>) {
    let engines = EngineSet::start(3);
    let manager = Manager::start_healthy(
        &engines,
        &[&FAST_FAILURE[..], &["--cluster-opt", "swarm.createretry=1"]].concat(),
    );
    let answers = creates_with_a_kill(
        &manager.addr(),
        16,
        Duration::ZERO,
        towards_node_0,
        4,
        || engines[0].kill(),
    );
    report(what, &answers);
    for (name, answer) in &answers {
        assert!(
            !matches!(answer, Answer::Unanswered(_)),
            "{name}: the manager gave no answer: {answer:?}"
        );
    }
    (engines, manager, answers)
}

#[test]
fn an_engine_killed_mid_create_and_restarted_leaves_each_name_on_one_node() {
    let (engines, manager, answers) = kill_node_0_during_creates("engine killed, restarted");
    engines[0].restart();
    wait_healthy(&manager, 3);
    let all: Vec<&Engine> = engines.iter().collect();
    let held = assert_each_name_once(&answers, &all, None);
    assert_manager_agrees(&manager, &held);
}

#[test]
fn an_engine_killed_mid_create_and_left_dead_then_restarted_leaves_each_name_on_one_node() {
    let (engines, manager, answers) = kill_node_0_during_creates("engine killed, left dead");
    // While it is dead: the live engines and the manager's list hold each name once.
    wait_healthy(&manager, 2);
    let alive: Vec<&Engine> = engines.iter().skip(1).collect();
    assert_each_name_once(&answers, &alive, Some(engines[0].name()));
    assert_eq!(names_listed_twice(&manager), Vec::<String>::new());
    assert_manager_lists_every_created(&manager, &answers);
    // A name given out on the dead node stays taken: creating it again is refused, not placed
    // on a live node (where it would clash once the dead one is back).
    let on_live: BTreeSet<String> = holders_on_engines(&alive).into_keys().collect();
    for (name, answer) in &answers {
        if matches!(answer, Answer::Created(_)) && !on_live.contains(name) {
            let again = create(&manager.addr(), name, &[]);
            assert!(
                matches!(again, Answer::Refused { status: 409, .. }),
                "{name} is held on the dead node, yet: {again:?}"
            );
        }
    }
    // Creates after the death land on the live nodes.
    let late = create(&manager.addr(), "chaos-late", &["constraint:node==~node-0"]);
    assert!(matches!(late, Answer::Created(_)), "{late:?}");

    // Back with the same data: still once each, on the engines and through the manager.
    engines[0].restart();
    wait_healthy(&manager, 3);
    let mut answers = answers;
    answers.push(("chaos-late".to_string(), late));
    let all: Vec<&Engine> = engines.iter().collect();
    let held = assert_each_name_once(&answers, &all, None);
    assert_manager_agrees(&manager, &held);
}

#[test]
fn the_manager_killed_during_50_creates_and_restarted_never_duplicates_a_container() {
    let engines = EngineSet::start(3);
    let manager = Manager::start_healthy(&engines, &FAST_FAILURE);
    let answers = creates_with_a_kill(
        &manager.addr(),
        50,
        Duration::ZERO,
        |_| Vec::new(),
        10,
        || manager.kill(),
    );
    report("manager killed", &answers);

    manager.restart();
    wait_healthy(&manager, 3);
    let all: Vec<&Engine> = engines.iter().collect();
    let held = assert_each_name_once(&answers, &all, None);
    assert_manager_agrees(&manager, &held);

    // A client that was not answered tries again: the name is either free (201) or already
    // taken by the create the dead manager made (409); either way it exists once afterwards.
    let mut retried = answers.clone();
    for (name, answer) in retried.iter_mut() {
        if matches!(answer, Answer::Created(_)) {
            continue;
        }
        let again = create(&manager.addr(), name, &[]);
        match &again {
            Answer::Created(_) => {}
            Answer::Refused { status: 409, .. } => {
                assert!(
                    held.iter().any(|c| &c.name == name),
                    "{name}: 409 {again:?}"
                );
                continue;
            }
            other => panic!("{name}: retry after the restart: {other:?}"),
        }
        *answer = again;
    }
    let held = assert_each_name_once(&retried, &all, None);
    assert_eq!(held.len(), 50, "every name exists once: {held:?}");
    assert_manager_agrees(&manager, &held);
}
