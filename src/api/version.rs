//! The API versions the HTTP side uses, from [`crate::version`] (which owns them).
pub use crate::version::{split_version_prefix, ApiVersion, MAX_API, MAX_API_STR, MIN_API};
