//! Access tokens for upstream MCP requests: tether-mcp's `BearerSource` answered by
//! tether-oauth's `McpAuthorizer` (which refreshes single-flight and persists rotations).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use tether_core::{ConnectError, ServerName, StoreError, TransportFailure, UserId};
use tether_mcp::{Bearer, BearerSource};
use tether_oauth::{McpAuthorizer, OAuthError};

#[derive(Debug, Clone)]
pub struct AuthorizerBearer {
    authorizer: Arc<McpAuthorizer>,
    /// Servers configured without OAuth: their requests go bare without a token lookup (which
    /// would be a store query per request, answered "no tokens" every time).
    without_oauth: Arc<HashSet<ServerName>>,
}

impl AuthorizerBearer {
    pub fn new(authorizer: Arc<McpAuthorizer>) -> Self {
        Self {
            authorizer,
            without_oauth: Arc::default(),
        }
    }

    /// Sends requests to `servers` without asking for a token.
    pub fn without_oauth(mut self, servers: impl IntoIterator<Item = ServerName>) -> Self {
        self.without_oauth = Arc::new(servers.into_iter().collect());
        self
    }
}

/// What the model and the host may read about an OAuth failure: the error's own text, which
/// tether-oauth builds from safe parts and passes through the redactor.
fn to_connect_error(error: OAuthError) -> ConnectError {
    match error {
        OAuthError::NeedsAuthorization(_) | OAuthError::UnknownState => {
            ConnectError::NeedsAuthorization {
                authorization_url: None,
            }
        }
        OAuthError::Store(e @ StoreError::Unavailable(_)) => {
            ConnectError::Unavailable(e.to_string())
        }
        e if e.is_transient() => ConnectError::transport(TransportFailure::Network, e.to_string()),
        e => ConnectError::Protocol(e.to_string()),
    }
}

#[async_trait]
impl BearerSource for AuthorizerBearer {
    async fn bearer(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<Option<Bearer>, ConnectError> {
        if self.without_oauth.contains(server) {
            return Ok(None);
        }
        match self.authorizer.access_token(user, server).await {
            Ok(token) => Ok(Some(Bearer::new(token.expose()))),
            // No tokens yet: send the request bare; the server's 401 says where to authorize.
            Err(OAuthError::NeedsAuthorization(_)) => Ok(None),
            Err(error) => Err(to_connect_error(error)),
        }
    }

    async fn rejected(
        &self,
        user: &UserId,
        server: &ServerName,
        rejected: &Bearer,
    ) -> Result<Option<Bearer>, ConnectError> {
        // The refresh is single-flight in the authorizer: concurrent 401s of one session share it.
        let rejected = tether_oauth::Secret::new(rejected.secret());
        match self
            .authorizer
            .access_token_after_rejection(user, server, &rejected)
            .await
        {
            Ok(token) => Ok(Some(Bearer::new(token.expose()))),
            Err(error) => Err(to_connect_error(error)),
        }
    }
}
