//! Operating the manager: `--log-format json` writes nothing but JSON lines, an unknown format is
//! refused at start-up, and the start-up progress line says when every engine is validated.
mod support;

use std::time::Duration;

use support::{swarm, wait_until, EngineSet, Manager};

/// The JSON log lines in `log`, each checked for the layout log collectors rely on.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
            assert!(value["timestamp"].is_string(), "no timestamp: {line}");
            assert!(value["level"].is_string(), "no level: {line}");
            assert!(value["fields"]["message"].is_string(), "no message: {line}");
            value
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_and_report_every_engine_validated() {
    let engines = EngineSet::start(2);
    let manager = Manager::builder()
        .global_arg("--log-format")
        .global_arg("json")
        .start(&engines.nodes_url());
    wait_until(
        Duration::from_secs(60),
        "the start-up progress line",
        || manager.logs().contains("All 2 engines validated in"),
    );
    let lines = json_lines(&manager.logs());
    let done: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("All 2 engines validated in "))
        })
        .collect();
    assert_eq!(done.len(), 1, "one completion line in {lines:#?}");
    assert_eq!(done[0]["level"], "INFO");
    assert_eq!(done[0]["fields"]["total"], 2);
    assert_eq!(manager.healthy_nodes(), Some(2));
}

#[test]
fn an_unknown_log_format_is_refused_before_start() {
    let out = swarm(&["--log-format", "xml", "manage", "nodes://127.0.0.1:1"]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("FATAL invalid log format: \"xml\" (use text or json)"),
        "{out:?}"
    );
}
