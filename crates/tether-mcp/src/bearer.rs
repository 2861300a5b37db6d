//! Access tokens as the connector receives them: the [`Bearer`] value and the [`BearerSource`]
//! that hands them out.
//!
//! This module owns only the contract. Where tokens live, how they are refreshed and how
//! concurrent refreshes of one pair are coalesced is the source's business (tether-oauth); the
//! HTTP side that attaches them to requests is [`crate::authorized`].
//!
//! What it must not do: let a token value reach a log, an error text or a `Debug` dump. The
//! value leaves a [`Bearer`] only through [`Bearer::secret`], at the moment a header is set.

use std::fmt;

use async_trait::async_trait;
use tether_core::{ConnectError, ServerName, UserId};

/// An OAuth access token, sent as `Authorization: Bearer <token>`. `Debug` and `Display`
/// print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(String);

impl Bearer {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the `Authorization` header and nothing else.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the connector gets a pair's access token, for every HTTP request it sends (so a token
/// refreshed in the background is used by the next request of an open session).
///
/// Both methods run on the request path: they should answer from memory or a store, and do
/// network I/O only to refresh. Errors are shown to users and models, so their texts follow
/// [`ConnectError`]'s rules (no token, code or secret).
#[async_trait]
pub trait BearerSource: Send + Sync + fmt::Debug + 'static {
    /// The current token of (user, server) for a request to `url`, the server's URL as its
    /// session was opened with (a source must not answer with a token issued for another URL
    /// of the server); `None` sends the request without one (a server that needs one answers
    /// 401, which becomes `NeedsAuthorization`).
    async fn bearer(
        &self,
        user: &UserId,
        server: &ServerName,
        url: &str,
    ) -> Result<Option<Bearer>, ConnectError>;

    /// The server at `url` answered 401 to a request that carried `rejected`. Called at most once per
    /// request: return a new token (the request is retried once with it), or
    /// `Err(NeedsAuthorization)` when only the user can help. `Ok(None)`, or the same token
    /// again, ends the request with `NeedsAuthorization` too.
    ///
    /// Concurrent requests of one session can each see the 401, so this can be called several
    /// times at once for one pair; the implementation should refresh once and share the result.
    async fn rejected(
        &self,
        user: &UserId,
        server: &ServerName,
        url: &str,
        rejected: &Bearer,
    ) -> Result<Option<Bearer>, ConnectError>;

    /// The server answered 403 with a `WWW-Authenticate` challenge: the token is good but not
    /// wide enough for the request (`error="insufficient_scope"`, RFC 6750 §3.1). The request
    /// fails with `NeedsAuthorization` naming the scope; the source may remember the challenge
    /// so that the user's next authorization asks for the wider scope (step-up).
    async fn insufficient_scope(&self, _user: &UserId, _server: &ServerName, _challenge: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_never_print() {
        let token = Bearer::new("very-secret-token");
        assert_eq!(format!("{token}"), "[redacted]");
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&token)), "Some([redacted])");
        assert_eq!(token.secret(), "very-secret-token");
    }
}
