//! How long an engine may take over one call, by kind of call (`--engine-call-timeout`).
//!
//! A frozen engine (its process stopped, its kernel still accepting connections) answers
//! nothing and closes nothing, so every wait on an engine needs a deadline of its own. Most calls
//! must start answering within the call timeout and, when the manager reads the answer whole,
//! finish within it too. Streams that legitimately run long (logs, stats, pull, push) only have to
//! start answering in time. A few calls do all their work before the first byte of the answer
//! (build, load, import, commit, prune, `docker stop -t`): those get a longer or no deadline for
//! their answer to start. Pure: no I/O, no clocks.
use std::time::Duration;

use http::Method;

/// How long reading an answer whole may take for calls whose answer is a long stream (a pull's
/// progress, read to its end by the create flow).
pub const LONG_BODY: Duration = Duration::from_secs(600);

/// How long `stop` and `restart` are assumed to wait for the container when the call names no
/// `t`: the engine then uses the container's own stop timeout (10 s unless it was set at create).
const DEFAULT_STOP_WAIT: Duration = Duration::from_secs(60);

/// The deadlines of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    /// Until the answer's status line and headers arrive; `None`: no deadline (the engine
    /// reads a large upload or does the whole job first, or the stream may stay silent).
    pub answer: Option<Duration>,
    /// Until an answer read whole has been read to its end, counted from the start of the call.
    pub whole: Duration,
}

/// The budget of `method path_and_query` (with or without a `/vX.Y` prefix) when the call
/// timeout is `timeout`.
pub fn budget(method: &Method, path_and_query: &str, timeout: Duration) -> CallBudget {
    let quick = CallBudget {
        answer: Some(timeout),
        whole: timeout,
    };
    let stream = CallBudget {
        answer: Some(timeout),
        whole: LONG_BODY.max(timeout),
    };
    let unbounded = CallBudget {
        answer: None,
        whole: LONG_BODY.max(timeout),
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path = strip_version(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let last = segments.last().copied().unwrap_or("");
    match (method, segments.as_slice()) {
        (&Method::POST, ["build"]) | (&Method::POST, ["images", "load"]) => unbounded,
        (&Method::POST, ["images", "create"]) if has_param(query, "fromSrc") => unbounded,
        (&Method::POST, ["images", "create"]) | (&Method::POST, ["images", _, "push"]) => stream,
        (&Method::POST, ["commit"]) | (&Method::GET, ["system", "df"]) => unbounded,
        (&Method::POST, [_, "prune"]) => unbounded,
        (&Method::PUT, ["containers", _, "archive"]) => unbounded,
        (&Method::POST, ["containers", _, "wait"]) => unbounded,
        (&Method::POST, ["containers", _, "attach"])
        | (&Method::GET, ["containers", _, "attach", "ws"]) => unbounded,
        (&Method::POST, ["exec", _, "start"]) | (&Method::POST, ["session"]) => unbounded,
        (&Method::GET, ["containers", _, "logs"]) if truthy(query, "follow") => unbounded,
        (&Method::GET, ["containers", _, "stats"]) if !falsy(query, "stream") => stream,
        (&Method::GET, ["events"]) => stream,
        (&Method::GET, ["containers", _, "export"]) | (&Method::GET, ["images", ..])
            if last == "get" =>
        {
            stream
        }
        (&Method::GET, ["containers", _, "archive"]) => stream,
        (&Method::POST, ["containers", _, action]) if *action == "stop" || *action == "restart" => {
            let wait = param(query, "t")
                .or_else(|| param(query, "timeout"))
                .and_then(|t| t.parse::<i64>().ok())
                .map(|t| Duration::from_secs(t.clamp(0, 24 * 3600) as u64))
                .unwrap_or(DEFAULT_STOP_WAIT);
            CallBudget {
                answer: Some(timeout.saturating_add(wait)),
                whole: timeout.saturating_add(wait),
            }
        }
        _ => quick,
    }
}

/// `path` without a leading `/vX.Y`.
fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        &rest[end..]
    } else {
        path
    }
}

/// The raw value of query parameter `name`, if present.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn has_param(query: &str, name: &str) -> bool {
    param(query, name).is_some()
}

/// Whether query parameter `name` is present and true.
fn truthy(query: &str, name: &str) -> bool {
    param(query, name).is_some_and(docker_bool)
}

/// Whether query parameter `name` is present and false (`0`, `false`, `no`, `none`, empty).
fn falsy(query: &str, name: &str) -> bool {
    param(query, name).is_some_and(|v| !docker_bool(v))
}

/// Docker's reading of a boolean query value: empty, `0`, `no`, `false` and `none` (any case)
/// are false, anything else is true.
pub fn docker_bool(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !(v.is_empty() || v == "0" || v == "no" || v == "false" || v == "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);

    fn answer(method: Method, pq: &str) -> Option<Duration> {
        budget(&method, pq, T).answer
    }

    #[test]
    fn ordinary_calls_must_answer_and_finish_within_the_timeout() {
        for pq in [
            "/v1.41/containers/abc/json",
            "/containers/json?all=1",
            "/v1.41/_ping",
            "/info",
            "/networks/x",
        ] {
            assert_eq!(
                budget(&Method::GET, pq, T),
                CallBudget {
                    answer: Some(T),
                    whole: T
                },
                "{pq}"
            );
        }
        assert_eq!(
            answer(Method::POST, "/v1.44/containers/create?name=x"),
            Some(T)
        );
        assert_eq!(answer(Method::DELETE, "/containers/x?force=1"), Some(T));
    }

    #[test]
    fn streams_must_start_in_time_but_may_run_long() {
        let pull = budget(
            &Method::POST,
            "/v1.41/images/create?fromImage=busybox&tag=latest",
            T,
        );
        assert_eq!(pull.answer, Some(T));
        assert!(pull.whole >= LONG_BODY);
        assert_eq!(answer(Method::GET, "/v1.41/containers/x/stats"), Some(T));
        assert_eq!(answer(Method::GET, "/v1.41/events?since=1"), Some(T));
        assert_eq!(
            budget(&Method::GET, "/containers/x/stats?stream=0", T).whole,
            T,
            "a one-shot stats read is an ordinary call"
        );
    }

    #[test]
    fn calls_that_work_before_answering_have_no_answer_deadline() {
        for (m, pq) in [
            (Method::POST, "/v1.41/build?t=x"),
            (Method::POST, "/images/load"),
            (Method::POST, "/images/create?fromSrc=-&repo=x"),
            (Method::POST, "/commit?container=x"),
            (Method::POST, "/v1.41/containers/prune"),
            (Method::GET, "/system/df"),
            (Method::PUT, "/containers/x/archive?path=/"),
            (Method::POST, "/containers/x/wait"),
            (Method::POST, "/containers/x/attach?stream=1"),
            (Method::POST, "/exec/x/start"),
            (Method::GET, "/v1.41/containers/x/logs?follow=1&stdout=1"),
        ] {
            assert_eq!(answer(m.clone(), pq), None, "{m} {pq}");
        }
        assert_eq!(
            answer(Method::GET, "/containers/x/logs?follow=0"),
            Some(T),
            "logs without follow end by themselves"
        );
    }

    #[test]
    fn stop_waits_for_the_container_first() {
        assert_eq!(
            answer(Method::POST, "/v1.41/containers/x/stop?t=100"),
            Some(T + Duration::from_secs(100))
        );
        assert_eq!(
            answer(Method::POST, "/containers/x/restart"),
            Some(T + DEFAULT_STOP_WAIT)
        );
        assert_eq!(
            answer(Method::POST, "/containers/x/stop?t=-1"),
            Some(T),
            "a negative wait is no wait"
        );
    }

    #[test]
    fn prefixes_are_stripped_only_when_they_are_versions() {
        assert_eq!(strip_version("/v1.41/info"), "/info");
        assert_eq!(strip_version("/volumes/x"), "/volumes/x");
        assert_eq!(strip_version("/vx/info"), "/vx/info");
    }
}
