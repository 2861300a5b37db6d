//! Step-up: re-authorization after a 403 `insufficient_scope`, bounded per pair.

use rmcp::transport::auth::WWWAuthenticateParams;
use tether_core::{PairKey, ServerName, UserId};

use super::{AuthorizationStart, McpAuthorizer, StartOptions, parse_url};
use crate::error::OAuthError;

impl McpAuthorizer {
    /// Starts a re-authorization for a 403 `insufficient_scope`, asking for the scopes held so
    /// far plus the challenged ones. Bounded: after [`AuthorizerConfig::max_scope_upgrades`]
    /// attempts whose grant still fell short, it fails instead of looping.
    pub async fn step_up(
        &self,
        user: &UserId,
        server: &ServerName,
        server_url: &str,
        www_authenticate: &str,
        mut options: StartOptions,
    ) -> Result<AuthorizationStart, OAuthError> {
        let base = parse_url(server_url, "the MCP server URL")?;
        let params = WWWAuthenticateParams::parse(www_authenticate, &base);
        if !params.is_insufficient_scope() {
            return Err(OAuthError::protocol(
                "step-up needs an insufficient_scope challenge",
            ));
        }
        let pair = PairKey::new(user.clone(), server.clone());
        {
            let mut upgrades = self
                .scope_upgrades
                .lock()
                .map_err(|_| OAuthError::protocol("scope upgrade counter poisoned"))?;
            let attempts = upgrades.entry(pair.clone()).or_default();
            if *attempts >= self.config.max_scope_upgrades {
                return Err(OAuthError::protocol(format!(
                    "insufficient_scope persists after {attempts} re-authorizations"
                )));
            }
            *attempts += 1;
        }
        let mut scopes = self
            .stores
            .vault
            .get(&pair)
            .await?
            .map(|record| record.scopes)
            .unwrap_or_default();
        for scope in params
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
        {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        options.scopes = scopes;
        options.challenge = Some(www_authenticate.to_owned());
        self.start(user, server, server_url, options).await
    }
}
