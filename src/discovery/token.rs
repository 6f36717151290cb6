//! `token://` URLs of Docker Hub's hosted discovery service. The service was shut down in June
//! 2019, so only the URL syntax is understood here: a well-formed `token://` URL builds no
//! backend but [`DiscoveryError::TokenServiceGone`](super::DiscoveryError::TokenServiceGone),
//! which tells users to register engines in a key-value store or to list them instead.
use super::DiscoveryError;

/// Where `token://<token>` pointed by default.
pub const HOSTED_SERVICE: &str = "https://discovery.hub.docker.com/v1";

/// A parsed `token://` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUrl {
    /// Base URL of the discovery service (`https://` plus everything before the last `/`, or
    /// [`HOSTED_SERVICE`]).
    pub service: String,
    /// The cluster token (after the last `/`).
    pub token: String,
}

impl TokenUrl {
    /// `<token>` or `<host/path>/<token>`; the token must not be empty.
    pub fn parse(body: &str) -> Result<Self, DiscoveryError> {
        let (service, token) = match body.rsplit_once('/') {
            Some((service, token)) => (format!("https://{service}"), token),
            None => (HOSTED_SERVICE.to_string(), body),
        };
        if token.is_empty() {
            return Err(DiscoveryError::EmptyToken);
        }
        Ok(TokenUrl {
            service,
            token: token.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_token_uses_the_hosted_service() {
        let url = TokenUrl::parse("abc123").unwrap();
        assert_eq!(url.service, "https://discovery.hub.docker.com/v1");
        assert_eq!(url.token, "abc123");
    }

    #[test]
    fn a_path_names_another_service() {
        let url = TokenUrl::parse("disco.example/v1/abc").unwrap();
        assert_eq!(url.service, "https://disco.example/v1");
        assert_eq!(url.token, "abc");
    }

    #[test]
    fn an_empty_token_is_refused() {
        assert_eq!(TokenUrl::parse(""), Err(DiscoveryError::EmptyToken));
        assert_eq!(
            TokenUrl::parse("disco.example/").unwrap_err().to_string(),
            "token is empty"
        );
    }
}
