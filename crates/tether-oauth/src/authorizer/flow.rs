//! The authorization flow: starting it (discovery, client identity, authorization URL) and
//! completing it from the callback (code exchange).

use oauth2::TokenResponse;
use tether_core::{PairKey, ServerName, UserId};
use tracing::{info, warn};
use url::Url;

use super::client_identity::configure_client;
use super::discovery::{
    add_offline_access, asks_offline_access_from_openid_provider, issuer_key, metadata_from,
};
use super::{AuthorizationStart, McpAuthorizer, OFFLINE_ACCESS, StartOptions, parse_url};
use crate::classify::classify;
use crate::error::OAuthError;
use crate::rmcp_adapter::{FlowStateStore, PairCredentialStore};
use crate::secret::Secret;
use crate::store::FlowRecord;

pub(super) fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

impl McpAuthorizer {
    /// Discovers the authorization server, settles the client identity and returns the URL to
    /// send the user to. Nothing is sent to an endpoint the network policy refuses.
    pub async fn start(
        &self,
        user: &UserId,
        server: &ServerName,
        server_url: &str,
        options: StartOptions,
    ) -> Result<AuthorizationStart, OAuthError> {
        let server_url = parse_url(server_url, "the MCP server URL")?;
        let http = self.http.for_resource(&server_url);
        let mut manager = self.manager(&server_url, &http).await?;
        let flow_state = FlowStateStore::capturing();
        manager.set_state_store(flow_state.clone());

        let resolution = manager
            .resolve_metadata_from_challenge(options.challenge.as_deref())
            .await
            .map_err(|e| classify(e, &http))?;
        let metadata = resolution.metadata;
        let endpoints = self.checked_endpoints(&metadata, &http)?;
        let issuer = issuer_key(&endpoints);
        manager.set_metadata(metadata.clone());
        self.drop_tokens_of_another_issuer(user, server, &issuer)
            .await?;

        let scopes = if options.scopes.is_empty() {
            // Challenge scope, else the resource's scopes_supported, else none (+ offline_access).
            manager.select_initial_scopes(&[]).await
        } else {
            let mut scopes = options.scopes.clone();
            add_offline_access(&mut scopes, &metadata);
            scopes
        };

        let registration = self
            .client_identity(
                &mut manager,
                server,
                &issuer,
                &endpoints,
                &metadata,
                &options,
                &http,
            )
            .await?;
        configure_client(
            &mut manager,
            &metadata,
            &registration,
            &options.redirect_uri,
        )?;
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let authorization_url = manager
            .get_authorization_url(&scope_refs)
            .await
            .map_err(|e| classify(e, &http))?;

        let mut parsed = parse_url(&authorization_url, "the authorization URL")?;
        if asks_offline_access_from_openid_provider(&scopes, &metadata)
            && query_param(&parsed, "prompt").is_none()
        {
            // OpenID Connect Core §11: `offline_access` is ignored unless `prompt` contains
            // `consent` (oidc-provider strips it), so without this no refresh token is issued
            // and the user would be sent back to log in at every expiry. rmcp does not add it.
            parsed.query_pairs_mut().append_pair("prompt", "consent");
        }
        let authorization_url = parsed.to_string();
        let resource = query_param(&parsed, "resource").unwrap_or_else(|| server_url.to_string());
        let (state, stored) = flow_state
            .captured()
            .ok_or_else(|| OAuthError::protocol("rmcp saved no authorization state"))?;
        let record = FlowRecord {
            user: user.clone(),
            server: server.clone(),
            server_url: server_url.to_string(),
            resource,
            issuer: issuer.clone(),
            client_id: registration.client_id.clone(),
            pkce_verifier: Secret::new(stored.pkce_verifier.clone()),
            redirect_uri: options.redirect_uri.clone(),
            requested_scopes: stored.requested_scopes.clone(),
            created_at: self.now(),
            authorization_url: Some(authorization_url.clone()),
            browser_binding: None,
            callback: None,
        };
        self.stores.flows.put(&state, record).await?;
        info!(%user, %server, %issuer, scopes = ?scopes, "authorization started");
        Ok(AuthorizationStart {
            authorization_url,
            state,
        })
    }

    /// The resource's metadata now names another authorization server: tokens of the old one
    /// cannot work at the resource any more, and refreshing them would keep a dead pair looking
    /// alive. They are dropped as the authorization at the new server starts.
    async fn drop_tokens_of_another_issuer(
        &self,
        user: &UserId,
        server: &ServerName,
        issuer: &str,
    ) -> Result<(), OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        if let Some(held) = self.stores.vault.get(&pair).await?
            && held.issuer != issuer
        {
            self.stores.vault.delete(&pair).await?;
            info!(%pair, old = %held.issuer, new = %issuer, "the authorization server changed; the old tokens are dropped");
        }
        Ok(())
    }

    /// Handles the callback: exchanges `code` for tokens and stores them. The flow is taken
    /// from the store first, so a replayed or forged `state` is [`OAuthError::UnknownState`].
    /// `issuer` is the callback's RFC 9207 `iss`, required when the server advertises it.
    pub async fn complete(
        &self,
        state: &str,
        code: &str,
        issuer: Option<&str>,
    ) -> Result<(UserId, ServerName), OAuthError> {
        let Some(flow) = self.stores.flows.take(state).await? else {
            warn!("authorization callback with an unknown, used or expired state");
            return Err(OAuthError::UnknownState);
        };
        let pair = PairKey::new(flow.user.clone(), flow.server.clone());
        let registration = self
            .stores
            .registrations
            .get(&flow.server, &flow.issuer)
            .await?
            .filter(|r| r.client_id == flow.client_id)
            .ok_or_else(|| {
                OAuthError::protocol("the client registration changed while the user was away")
            })?;
        let server_url = parse_url(&flow.server_url, "the MCP server URL")?;
        // The manager's base URL is what rmcp sends as `resource` on the token request; it must
        // be what the authorization request carried.
        let resource = parse_url(&flow.resource, "the resource indicator")?;
        let http = self
            .http
            .for_resource(&server_url)
            .with_resource_indicator(flow.resource.clone());
        let mut manager = self.manager(&resource, &http).await?;
        manager.set_state_store(FlowStateStore::serving(
            state,
            &flow,
            registration.endpoints.issuer.clone(),
            registration.endpoints.iss_parameter_supported,
        ));
        manager.set_credential_store(
            PairCredentialStore::new(
                self.stores.vault.clone(),
                self.stores.locks.clone(),
                pair.clone(),
                flow.issuer.clone(),
                flow.resource.clone(),
            )
            .with_clock(self.config.clock.clone()),
        );
        configure_client(
            &mut manager,
            &metadata_from(&registration.endpoints),
            &registration,
            &flow.redirect_uri,
        )?;
        let response = manager
            .exchange_code_for_token_with_issuer(code, state, issuer)
            .await
            .map_err(|e| {
                // The answer may quote the code, the verifier or the client secret back.
                let secret = registration.client_secret.as_ref().map(Secret::expose);
                let sent = [Some(code), Some(flow.pkce_verifier.expose()), secret];
                classify(e, &http).without_secrets(&sent.into_iter().flatten().collect::<Vec<_>>())
            })?;
        let granted: Vec<String> = response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| flow.requested_scopes.clone());
        // offline_access and openid shape the grant, not the access token's `scope`.
        let satisfied = flow
            .requested_scopes
            .iter()
            .filter(|s| *s != OFFLINE_ACCESS && *s != "openid")
            .all(|s| granted.contains(s));
        if satisfied {
            self.step_ups.satisfied(&pair);
        }
        info!(%pair, "authorization completed");
        Ok((flow.user, flow.server))
    }
}
