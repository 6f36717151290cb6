//! One cached image: an engine's `GET /images/json` entry kept raw, with the fields the manager
//! matches on parsed once. It must not fetch or rewrite the entry.
use serde_json::{Map, Value};

/// One image list entry, raw, with its identifying fields parsed.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub raw: Map<String, Value>,
}

impl Image {
    /// Parses a `GET /images/json` entry.
    pub fn from_raw(raw: Map<String, Value>) -> Image {
        let strings = |key: &str| -> Vec<String> {
            raw.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Image {
            id: raw
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            repo_tags: strings("RepoTags")
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            repo_digests: strings("RepoDigests")
                .into_iter()
                .filter(|t| t != "<none>@<none>")
                .collect(),
            created: raw.get("Created").and_then(Value::as_i64).unwrap_or(0),
            raw,
        }
    }

    /// Whether the image has at least one tag.
    pub fn is_tagged(&self) -> bool {
        !self.repo_tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untagged_images_have_no_tags() {
        let img = Image::from_raw(
            json!({"Id": "sha256:1", "RepoTags": ["<none>:<none>"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(!img.is_tagged());
    }
}
