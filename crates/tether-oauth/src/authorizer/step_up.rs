//! Step-up: re-authorization after a 403 `insufficient_scope`, bounded per pair, and the
//! challenges the MCP connection reported so that the user's next authorization asks for the
//! wider scope.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::transport::auth::WWWAuthenticateParams;
use tether_core::{PairKey, ServerName, Timestamp, UserId};
use tracing::info;

use super::{AuthorizationStart, McpAuthorizer, StartOptions, parse_url};
use crate::error::OAuthError;

/// Per pair: re-authorizations for `insufficient_scope` since its scopes last sufficed, and the
/// challenge still waiting for one.
#[derive(Debug, Default)]
pub(super) struct StepUps {
    upgrades: Mutex<HashMap<PairKey, Upgrades>>,
    pending: Mutex<HashMap<PairKey, String>>,
}

#[derive(Debug, Default)]
struct Upgrades {
    attempts: u32,
    /// When the tokens the last step-up started from were obtained: starting again from the
    /// same tokens (the user did not finish, or clicked twice) is the same attempt.
    from: Option<Timestamp>,
}

impl StepUps {
    /// The pair's grant covers what was asked: a later `insufficient_scope` is a new story.
    pub(super) fn satisfied(&self, pair: &PairKey) {
        if let Ok(mut upgrades) = self.upgrades.lock() {
            upgrades.remove(pair);
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(pair);
        }
    }
}

impl McpAuthorizer {
    /// The MCP server refused a request of the pair with a 403 `insufficient_scope` challenge
    /// (`www_authenticate`). Remembered until an authorization satisfies it, so that
    /// [`Self::pending_step_up`] can make the user's next authorization ask for the wider scope.
    pub fn note_insufficient_scope(
        &self,
        user: &UserId,
        server: &ServerName,
        www_authenticate: &str,
    ) {
        let Ok(base) = url::Url::parse("http://insufficient-scope.invalid/") else {
            return;
        };
        if !WWWAuthenticateParams::parse(www_authenticate, &base).is_insufficient_scope() {
            return;
        }
        let pair = PairKey::new(user.clone(), server.clone());
        info!(%pair, "the server wants a wider scope; the next authorization asks for it");
        if let Ok(mut pending) = self.step_ups.pending.lock() {
            pending.insert(pair, www_authenticate.to_owned());
        }
    }

    /// The `insufficient_scope` challenge of the pair that no authorization has answered yet.
    pub fn pending_step_up(&self, user: &UserId, server: &ServerName) -> Option<String> {
        let pair = PairKey::new(user.clone(), server.clone());
        self.step_ups.pending.lock().ok()?.get(&pair).cloned()
    }

    /// Starts a re-authorization for a 403 `insufficient_scope`, asking for the scopes held so
    /// far plus the challenged ones. Bounded: after [`AuthorizerConfig::max_scope_upgrades`]
    /// authorizations whose grant still fell short, it fails instead of looping. Starting
    /// again from the same tokens (an unfinished flow) does not count.
    ///
    /// [`AuthorizerConfig::max_scope_upgrades`]: super::AuthorizerConfig::max_scope_upgrades
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
        let held = self.stores.vault.get(&pair).await?;
        let from = held.as_ref().map(|record| record.obtained_at);
        {
            let mut upgrades = self
                .step_ups
                .upgrades
                .lock()
                .map_err(|_| OAuthError::protocol("scope upgrade counter poisoned"))?;
            let upgrade = upgrades.entry(pair.clone()).or_default();
            let repeated = upgrade.attempts > 0 && upgrade.from == from;
            if !repeated {
                if upgrade.attempts >= self.config.max_scope_upgrades {
                    return Err(OAuthError::protocol(format!(
                        "the server still answers insufficient_scope after {} re-authorizations \
                         for a wider scope",
                        upgrade.attempts
                    )));
                }
                upgrade.attempts += 1;
                upgrade.from = from;
            }
        }
        // Records stored before empty grants were filtered may hold an empty scope.
        let mut scopes: Vec<String> = held
            .map(|record| record.scopes)
            .unwrap_or_default()
            .into_iter()
            .filter(|scope| !scope.trim().is_empty())
            .collect();
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
