//! Docker's `filters` query parameter: a JSON object from keys to values, either as a map of
//! values to `true` (current clients) or as a list (older clients).
use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{ApiError, ApiResult};

/// Parsed filters: key → values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the parameter; absent or empty means no filters.
    pub fn parse(text: Option<&str>) -> ApiResult<Filters> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Filters::default());
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request(
                "invalid filter: filters must be a JSON object",
            ));
        };
        let mut out = BTreeMap::new();
        for (key, v) in map {
            let values: Vec<String> = match v {
                Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s),
                        other => Err(ApiError::bad_request(format!(
                            "invalid filter: value of '{key}' must be a string, not {other}"
                        ))),
                    })
                    .collect::<ApiResult<_>>()?,
                Value::String(s) => vec![s],
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: value of '{key}' must be a list or map, not {other}"
                    )))
                }
            };
            out.insert(key, values);
        }
        Ok(Filters(out))
    }

    /// Builds filters from pairs (tests, internal callers).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Filters {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        Filters(out)
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values of `key`.
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `key` is absent or any of its values satisfies `f`.
    pub fn match_any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) => vals.iter().any(|v| f(v)),
        }
    }

    /// True when `key` is absent or every one of its values satisfies `f`.
    pub fn match_all(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) => vals.iter().all(|v| f(v)),
        }
    }

    /// Keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Whether `labels` satisfy one `label` filter value (`key` or `key=value`).
pub fn label_matches(labels: Option<&serde_json::Map<String, Value>>, filter: &str) -> bool {
    label_filter_matches(
        |k| labels.and_then(|l| l.get(k)).and_then(Value::as_str),
        filter,
    )
}

/// Whether the labels `get` looks up satisfy one `label` filter value (`key` or `key=value`).
pub fn label_filter_matches<'a>(get: impl Fn(&str) -> Option<&'a str>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => get(k) == Some(v),
        None => get(filter).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filter_forms_parse() {
        let a = Filters::parse(Some(r#"{"name":{"web":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(a.values("name"), ["web"]);
        assert_eq!(a.values("label"), ["a=b"]);
        assert!(a.match_any("status", |_| false));
        assert!(!a.match_any("name", |v| v == "db"));
    }

    #[test]
    fn bad_filters_are_client_errors() {
        for bad in ["{", "[1]", r#"{"name":5}"#, r#"{"name":[5]}"#] {
            let err = Filters::parse(Some(bad)).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(Filters::parse(Some("")).unwrap(), Filters::default());
    }
}
