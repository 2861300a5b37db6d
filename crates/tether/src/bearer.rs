//! Access tokens for upstream MCP requests: tether-mcp's `BearerSource` answered by
//! tether-oauth's `McpAuthorizer` (which refreshes single-flight and persists rotations).

use std::sync::{Arc, PoisonError, RwLock};
use tether_core::FastSet;

use async_trait::async_trait;
use tether_core::{ConnectError, ServerName, UserId};
use tether_mcp::{Bearer, BearerSource};
use tether_oauth::{McpAuthorizer, OAuthError};

#[derive(Debug, Clone)]
pub struct AuthorizerBearer {
    authorizer: Arc<McpAuthorizer>,
    /// Servers configured without OAuth: their requests go bare without a token lookup (which
    /// would be a store query per request, answered "no tokens" every time).
    without_oauth: Arc<RwLock<FastSet<ServerName>>>,
}

impl AuthorizerBearer {
    pub fn new(authorizer: Arc<McpAuthorizer>) -> Self {
        Self {
            authorizer,
            without_oauth: Arc::default(),
        }
    }

    /// Sends requests to `servers` without asking for a token.
    pub fn without_oauth(self, servers: impl IntoIterator<Item = ServerName>) -> Self {
        self.replace_without_oauth(servers);
        self
    }

    /// The servers without OAuth, after a configuration reload (every clone sees it).
    pub fn replace_without_oauth(&self, servers: impl IntoIterator<Item = ServerName>) {
        *self
            .without_oauth
            .write()
            .unwrap_or_else(PoisonError::into_inner) = servers.into_iter().collect();
    }

    fn is_without_oauth(&self, server: &ServerName) -> bool {
        self.without_oauth
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(server)
    }
}

/// What the model and the host may read about an OAuth failure: the error's own text, which
/// tether-oauth builds from safe parts and passes through the redactor.
fn to_connect_error(error: OAuthError) -> ConnectError {
    match error {
        OAuthError::NeedsAuthorization(_) | OAuthError::UnknownState => {
            ConnectError::NeedsAuthorization {
                authorization_url: None,
                scope: None,
            }
        }
        // The authorization server's or Tether's own trouble, not the MCP server's: `Unavailable`
        // is charged to no breaker and starts no cooldown (tether-core `Blame::Nobody`), and
        // tether-oauth backs off from the failing authorization server by itself.
        e if e.is_transient() => ConnectError::Unavailable(e.to_string()),
        e => ConnectError::Protocol(e.to_string()),
    }
}

#[async_trait]
impl BearerSource for AuthorizerBearer {
    async fn bearer(
        &self,
        user: &UserId,
        server: &ServerName,
        url: &str,
    ) -> Result<Option<Bearer>, ConnectError> {
        if self.is_without_oauth(server) {
            return Ok(None);
        }
        match self.authorizer.access_token(user, server, url).await {
            Ok(token) => Ok(Some(Bearer::new(token.expose()))),
            // No tokens yet (or only for another URL of the server): send the request bare; the
            // server's 401 says where to authorize.
            Err(OAuthError::NeedsAuthorization(_)) => Ok(None),
            Err(error) => Err(to_connect_error(error)),
        }
    }

    async fn rejected(
        &self,
        user: &UserId,
        server: &ServerName,
        url: &str,
        rejected: &Bearer,
    ) -> Result<Option<Bearer>, ConnectError> {
        // The refresh is single-flight in the authorizer: concurrent 401s of one session share it.
        let rejected = tether_oauth::Secret::new(rejected.secret());
        match self
            .authorizer
            .access_token_after_rejection(user, server, url, &rejected)
            .await
        {
            Ok(token) => Ok(Some(Bearer::new(token.expose()))),
            Err(error) => Err(to_connect_error(error)),
        }
    }

    async fn insufficient_scope(&self, user: &UserId, server: &ServerName, challenge: &str) {
        self.authorizer
            .note_insufficient_scope(user, server, challenge);
    }
}

#[cfg(test)]
mod tests {
    use tether_core::{Blame, StoreError};

    use super::*;

    /// Five transport failures open an origin's breaker for every user: a slow or failing
    /// authorization server (or Tether's own store) must not count as the MCP server's outage.
    #[test]
    fn transient_oauth_failures_are_not_blamed_on_the_mcp_origin() {
        for error in [
            OAuthError::Transient("token endpoint answered 503".into()),
            OAuthError::Store(StoreError::Unavailable("database away".into())),
        ] {
            let mapped = to_connect_error(error);
            assert_eq!(mapped.blame(), Blame::Nobody, "{mapped:?}");
            assert!(matches!(mapped, ConnectError::Unavailable(_)), "{mapped:?}");
        }
    }
}
