//! API versions: what Shoal advertises to clients, what it accepts, and what it sends each engine.
//!
//! Shoal advertises [`MAX_API`] so that current docker CLIs (which refuse servers older than 1.44)
//! talk to it, accepts any `/vX.Y/` prefix from [`MIN_API`] up, and sends each engine
//! `min(requested, engine's own API version)` so old engines keep working.
use std::fmt;
use std::str::FromStr;

/// A Docker API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// Reads `major.minor` at compile time, so a constant can be written once as text; a
    /// malformed constant stops the build.
    const fn from_const_str(text: &str) -> ApiVersion {
        let bytes = text.as_bytes();
        let mut parts = [0u32; 2];
        let mut part = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' if part == 0 && i > 0 => part = 1,
                digit @ b'0'..=b'9' => parts[part] = parts[part] * 10 + (digit - b'0') as u32,
                _ => panic!("an API version constant is not major.minor"),
            }
            i += 1;
        }
        assert!(part == 1 && bytes[bytes.len() - 1] != b'.');
        ApiVersion::new(parts[0], parts[1])
    }
}

/// [`MAX_API`] as text, for header values that must be `'static`.
pub const MAX_API_STR: &str = "1.47";
/// The API version Shoal advertises (`Api-Version` header, `/version`).
pub const MAX_API: ApiVersion = ApiVersion::from_const_str(MAX_API_STR);
/// The oldest API version Shoal accepts in a `/vX.Y/` prefix.
pub const MIN_API: ApiVersion = ApiVersion::new(1, 24);

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s.split_once('.').ok_or(())?;
        if major.is_empty() || minor.is_empty() {
            return Err(());
        }
        Ok(ApiVersion {
            major: major.parse().map_err(|_| ())?,
            minor: minor.parse().map_err(|_| ())?,
        })
    }
}

/// Splits a `/vX.Y` prefix off a path: `("/v1.41/info")` → `(Some("1.41"), "/info")`. A path
/// without a prefix comes back unchanged. The version text is returned raw so the caller can
/// say what was wrong with it.
pub fn split_version_prefix(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let candidate = &rest[..end];
    let looks_like_version = !candidate.is_empty()
        && candidate.chars().next().is_some_and(|c| c.is_ascii_digit())
        && candidate.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !looks_like_version {
        return (None, path);
    }
    let remainder = &rest[end..];
    (
        Some(candidate),
        if remainder.is_empty() { "/" } else { remainder },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let v: ApiVersion = "1.41".parse().unwrap();
        assert_eq!(v, ApiVersion::new(1, 41));
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 10));
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
        assert_eq!(MAX_API.to_string(), "1.47");
        assert_eq!(MAX_API.to_string(), MAX_API_STR);
    }

    #[test]
    fn version_prefixes_are_split_off() {
        assert_eq!(split_version_prefix("/v1.41/info"), (Some("1.41"), "/info"));
        assert_eq!(
            split_version_prefix("/v1.24/containers/a/json"),
            (Some("1.24"), "/containers/a/json")
        );
        assert_eq!(split_version_prefix("/info"), (None, "/info"));
        assert_eq!(split_version_prefix("/volumes"), (None, "/volumes"));
        assert_eq!(split_version_prefix("/v1.40"), (Some("1.40"), "/"));
        assert_eq!(split_version_prefix("/v1..4/x"), (Some("1..4"), "/x"));
    }
}
