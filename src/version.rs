//! API versions: what Shoal advertises to clients, what it accepts, what it settles on with each
//! engine, and the one rule for the version a call to an engine is sent at.
//!
//! Shoal advertises [`MAX_API`] so that current docker CLIs (which refuse servers older than 1.44)
//! talk to it, accepts any `/vX.Y/` prefix from [`MIN_API`] up, speaks to each engine at most at
//! the version that engine reports ([`negotiate`]), and sends each call at
//! `min(requested, engine's version)` ([`for_engine`]) so old engines keep working. Pure: no I/O,
//! and nothing here knows about engines or requests.
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

/// The version Shoal speaks to an engine that reported `reported` (its `/version` `ApiVersion`):
/// that version, capped at [`MAX_API`]; [`MIN_API`] when it reported none Shoal can read.
pub fn negotiate(reported: Option<&str>) -> ApiVersion {
    reported
        .and_then(|v| v.parse::<ApiVersion>().ok())
        .unwrap_or(MIN_API)
        .min(MAX_API)
}

/// The version a call is sent at to an engine that speaks `engine`: the client's `requested`
/// version when the engine speaks it, else the engine's; without a requested version (the
/// manager's own calls, a client without a `/vX.Y` prefix), the engine's.
pub fn for_engine(requested: Option<ApiVersion>, engine: ApiVersion) -> ApiVersion {
    requested.unwrap_or(MAX_API).min(engine)
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
    }

    #[test]
    fn an_engine_gets_the_older_of_the_requested_and_its_own_version() {
        let engine = ApiVersion::new(1, 41);
        assert_eq!(
            for_engine(Some(ApiVersion::new(1, 30)), engine),
            ApiVersion::new(1, 30)
        );
        assert_eq!(for_engine(Some(MAX_API), engine), engine);
        assert_eq!(for_engine(None, engine), engine);
    }

    #[test]
    fn an_engine_is_spoken_to_at_its_version_capped_at_the_advertised_one() {
        assert_eq!(negotiate(Some("1.41")), ApiVersion::new(1, 41));
        assert_eq!(negotiate(Some("1.99")), MAX_API);
        assert_eq!(negotiate(Some("garbage")), MIN_API);
        assert_eq!(negotiate(None), MIN_API);
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
