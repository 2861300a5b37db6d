//! Completing an authorization request without a browser, for authorization servers that
//! approve without user interaction (tests, `tether connect --headless` against a server that
//! remembers consent).
//!
//! The request is replayed with a cookie jar and redirects are followed by hand, only while they
//! stay on the authorization server's origin (its login and consent steps), until the first
//! redirect to the redirect URI, whose query carries the outcome. Nothing is followed to any
//! other origin, so a hostile server cannot use this to make Tether fetch arbitrary URLs.

use std::fmt;
use std::time::Duration;

use tether_core::redact::redact;
use url::Url;

use crate::secret::Secret;

/// Redirects followed on the authorization server's origin (login, consent, resume).
pub const MAX_REDIRECTS: usize = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The authorization response delivered to the redirect URI.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    pub code: Secret,
    pub state: String,
    /// RFC 9207 `iss`, when the server sends it; pass it on to `complete`.
    pub issuer: Option<String>,
}

impl fmt::Debug for AuthorizationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationResponse")
            .field("code", &self.code)
            .field("state", &"[redacted]")
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadlessError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("the authorization server refused: {error} {description}")]
    Denied { error: String, description: String },
    #[error("the authorization server answered {0} instead of redirecting (it wants a person)")]
    NotRedirected(u16),
    #[error("redirected away from the authorization server to {0}")]
    LeftOrigin(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("the redirect to the redirect URI carries neither code nor error")]
    MissingCode,
    #[error("request failed: {0}")]
    Http(String),
}

fn is_redirect_target(url: &Url, redirect_uri: &Url) -> bool {
    url.scheme() == redirect_uri.scheme()
        && url.host_str() == redirect_uri.host_str()
        && url.port_or_known_default() == redirect_uri.port_or_known_default()
        && url.path() == redirect_uri.path()
}

fn read_response(url: &Url) -> Result<AuthorizationResponse, HeadlessError> {
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if let Some(error) = param("error") {
        return Err(HeadlessError::Denied {
            error: redact(&error),
            description: redact(&param("error_description").unwrap_or_default()),
        });
    }
    match (param("code"), param("state")) {
        (Some(code), Some(state)) => Ok(AuthorizationResponse {
            code: Secret::new(code),
            state,
            issuer: param("iss"),
        }),
        _ => Err(HeadlessError::MissingCode),
    }
}

/// Performs the authorization request at `authorization_url` and returns what the server sends
/// to `redirect_uri`. The redirect URI itself is never requested.
pub async fn authorize(
    authorization_url: &str,
    redirect_uri: &str,
) -> Result<AuthorizationResponse, HeadlessError> {
    let start =
        Url::parse(authorization_url).map_err(|e| HeadlessError::InvalidUrl(e.to_string()))?;
    let target = Url::parse(redirect_uri).map_err(|e| HeadlessError::InvalidUrl(e.to_string()))?;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| HeadlessError::Http(redact(&e.to_string())))?;
    let origin = start.origin();
    let mut current = start;
    for _ in 0..MAX_REDIRECTS {
        let response = client
            .get(current.clone())
            .send()
            .await
            .map_err(|e| HeadlessError::Http(redact(&crate::http::error_chain(&e))))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok());
        let (true, Some(location)) = (status.is_redirection(), location) else {
            return Err(HeadlessError::NotRedirected(status.as_u16()));
        };
        let next = current
            .join(location)
            .map_err(|e| HeadlessError::InvalidUrl(e.to_string()))?;
        if is_redirect_target(&next, &target) {
            return read_response(&next);
        }
        if next.origin() != origin {
            return Err(HeadlessError::LeftOrigin(
                next.origin().ascii_serialization(),
            ));
        }
        current = next;
    }
    Err(HeadlessError::TooManyRedirects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_code_state_and_issuer_or_the_error() {
        let ok = Url::parse("http://127.0.0.1:9/cb?code=c0de&state=st&iss=http%3A%2F%2Fas")
            .expect("url");
        let response = read_response(&ok).expect("code");
        assert_eq!(response.code.expose(), "c0de");
        assert_eq!(response.state, "st");
        assert_eq!(response.issuer.as_deref(), Some("http://as"));
        assert!(!format!("{response:?}").contains("c0de"));

        let denied = Url::parse("http://127.0.0.1:9/cb?error=access_denied&state=st").expect("url");
        assert!(matches!(
            read_response(&denied),
            Err(HeadlessError::Denied { error, .. }) if error == "access_denied"
        ));
    }
}
