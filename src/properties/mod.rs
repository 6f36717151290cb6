//! Property tests over every parser that reads outside input: scheduler expressions and create
//! bodies, the `filters` query, discovery URLs, ranges and files, Go durations and numbers, the
//! command line, and the JSON engines send (list entries, inspect bodies, events, `/info`,
//! `/version`). Each property feeds random bytes and near-valid structures (valid JSON with the
//! wrong types, huge numbers, deep nesting, unicode, empty strings) and asserts that the parser
//! returns a value or a clean error, never panics, and keeps what it returns within its bounds.
//!
//! Test-only; owns the shared generators below. Case counts are small enough for the whole suite
//! to run in seconds in a debug build; `PROPTEST_CASES=N` raises every one of them.
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Number, Value};

mod cli;
mod discovery;
mod engine_json;
mod expressions;
mod requests;

/// `cases` runs per property unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> Config {
    let from_env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    Config {
        cases: from_env.unwrap_or(cases),
        // Failures are turned into plain regression tests next to the parser, not kept in files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings that trip parsers: empty, whitespace, unicode (multi-byte, combining, RTL, NUL),
/// numbers out of every range, separators, and anything at all.
fn tricky_string() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\u{0}".to_string()),
        Just("é".to_string()),
        Just("\u{202e}\u{0301}µ".to_string()),
        Just("9223372036854775808".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e400".to_string()),
        Just("NaN".to_string()),
        Just("on-node-failure".to_string()),
        Just("2006-01-02T15:04:05.999999999Z".to_string()),
        Just("+275760-09-13T00:00:00Z".to_string()),
        Just("0001-01-01T00:00:00Z".to_string()),
        "[a-z0-9:=!~/.*\\[\\]-]{0,24}",
        any::<String>(),
        "\\PC{0,40}",
    ]
    .boxed()
}

/// JSON numbers at and beyond the edges of `i64`, `u64` and `f64`.
fn json_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(i64::MIN)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(u64::MAX)),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(1e308)),
        Just(Value::from(-1e308)),
        Just(Value::from(-0.0)),
    ]
    .boxed()
}

/// Any JSON value whose object keys are mostly taken from `keys` (the members a parser looks
/// for), so that the right names turn up with the wrong types, at the right depth or not.
fn json_value(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            json_object_of(keys, inner),
        ]
    })
    .boxed()
}

/// An object whose keys are mostly from `keys`, with values from `values`.
fn json_object_of(
    keys: &'static [&'static str],
    values: impl Strategy<Value = Value> + Clone + 'static,
) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_string),
        1 => tricky_string(),
    ];
    prop::collection::vec((key, values), 0..8)
        .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
        .boxed()
}

/// A JSON object (as a map) with members named from `keys`.
fn json_map(keys: &'static [&'static str]) -> BoxedStrategy<Map<String, Value>> {
    json_object_of(keys, json_value(keys))
        .prop_map(|v| match v {
            Value::Object(map) => map,
            _ => Map::new(),
        })
        .boxed()
}

/// Text that is JSON, nearly JSON, or not JSON: a serialised value, the same cut short or with
/// one byte changed, nesting far past serde_json's recursion limit, huge number literals, and
/// random bytes read as text.
fn json_text(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    let value = json_value(keys).prop_map(|v| v.to_string());
    prop_oneof![
        4 => value.clone(),
        1 => (value.clone(), any::<prop::sample::Index>())
            .prop_map(|(text, at)| truncate(&text, at.index(text.len() + 1))),
        1 => (value, any::<prop::sample::Index>(), any::<char>())
            .prop_map(|(text, at, c)| replace_char(&text, at, c)),
        1 => deep_nesting(),
        1 => prop::sample::select(&[
            "1e400", "-1e400", "123456789012345678901234567890", "[1e400]", "{\"a\":1e999}",
            "\"\\ud800\"", "\"\\u00\"", "{\"a\" 1}", "[,]", "", "null", "\u{feff}{}",
        ][..])
        .prop_map(str::to_string),
        1 => prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
    .boxed()
}

/// Arrays, objects or a mix nested 100 to 5,000 deep.
fn deep_nesting() -> BoxedStrategy<String> {
    (100usize..5_000, 0..3u8)
        .prop_map(|(depth, shape)| {
            let (open, close) = match shape {
                0 => ("[", "]"),
                1 => ("{\"a\":", "}"),
                _ => ("[{\"Labels\":", "}]"),
            };
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        })
        .boxed()
}

fn truncate(text: &str, at: usize) -> String {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn replace_char(text: &str, at: prop::sample::Index, with: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return with.to_string();
    }
    let i = at.index(chars.len());
    chars[..i]
        .iter()
        .chain(std::iter::once(&with))
        .chain(&chars[i + 1..])
        .collect()
}

#[test]
fn serde_json_keeps_its_recursion_limit() {
    // The engine and client parsers rely on serde_json refusing nesting beyond 128 levels (a
    // feature such as `unbounded_depth` would turn deep input into a stack overflow).
    let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
    let err = serde_json::from_str::<Value>(&deep).unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");
    let shallow = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert!(serde_json::from_str::<Value>(&shallow).is_ok());
}
