//! Revoking a pair's grant at its authorization server (RFC 7009) before Tether forgets the
//! tokens: a server deleted from the catalog, a user removing a server. Deleting the tokens
//! locally stops Tether from using them; revoking makes them worthless to anyone who copied
//! them, and ends the grant the user sees at the provider.
//!
//! Best effort and bounded: the authorization server is found again through the MCP server's
//! metadata (rmcp's discovery, through the guarded HTTP client), and only one that publishes a
//! `revocation_endpoint` is asked, once, with the client the tokens were issued to. Any failure
//! is reported to the caller, who deletes the tokens anyway.

use oauth2::http::{Method, Request, header};
use rmcp::transport::auth::{AuthorizationManager, OAuthHttpRedirectPolicy};
use tether_core::{PairKey, ServerName, UserId};
use tracing::info;

use super::{McpAuthorizer, parse_url};
use crate::error::OAuthError;
use crate::store::TokenEndpointAuthMethod;

/// What a revocation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The authorization server accepted it (HTTP 200).
    Revoked,
    /// Nothing to revoke: no tokens, or no revocation endpoint published.
    NotOffered,
}

impl McpAuthorizer {
    /// Revokes the pair's refresh token (its access token when it has none) at the
    /// authorization server that issued it. The tokens stay stored: see [`Self::revoke_local`].
    pub async fn revoke_remote(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<Revocation, OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        let Some(record) = self.stores.vault.get(&pair).await? else {
            return Ok(Revocation::NotOffered);
        };
        let registration = self
            .stores
            .registrations
            .get(server, &record.issuer)
            .await?
            .filter(|r| r.client_id == record.client_id);
        let resource = parse_url(&record.resource, "the resource indicator")?;
        let http = self.http.for_resource(&resource);
        let manager = AuthorizationManager::new_with_oauth_http_client(
            resource,
            std::sync::Arc::new(http.clone()),
        )
        .await
        .map_err(|e| crate::classify::classify(e, &http))?;
        let metadata = manager
            .resolve_metadata()
            .await
            .map_err(|e| crate::classify::classify(e, &http))?
            .metadata;
        let Some(endpoint) = metadata
            .additional_fields
            .get("revocation_endpoint")
            .and_then(serde_json::Value::as_str)
        else {
            return Ok(Revocation::NotOffered);
        };
        let (token, hint) = match &record.refresh_token {
            Some(refresh) => (refresh.expose(), "refresh_token"),
            None => (record.access_token.expose(), "access_token"),
        };
        let secret = registration.as_ref().and_then(|r| r.client_secret.as_ref());
        let method = registration
            .as_ref()
            .map_or(TokenEndpointAuthMethod::None, |r| r.auth_method);
        // Built apart from the awaits: the form serializer is not `Send`.
        let (body, basic) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", hint);
            let basic = match (method, secret) {
                (TokenEndpointAuthMethod::ClientSecretBasic, Some(secret)) => {
                    use base64::Engine as _;
                    let encode = |text: &str| {
                        url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
                    };
                    let credentials =
                        format!("{}:{}", encode(&record.client_id), encode(secret.expose()));
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(credentials)
                    ))
                }
                (TokenEndpointAuthMethod::ClientSecretPost, Some(secret)) => {
                    form.append_pair("client_id", &record.client_id)
                        .append_pair("client_secret", secret.expose());
                    None
                }
                _ => {
                    form.append_pair("client_id", &record.client_id);
                    None
                }
            };
            (form.finish(), basic)
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(basic) = basic {
            request = request.header(header::AUTHORIZATION, basic);
        }
        let request = request
            .body(body.into_bytes())
            .map_err(|_| OAuthError::protocol("the revocation request could not be built"))?;
        let response = http
            .send_request(request, OAuthHttpRedirectPolicy::Stop)
            .await
            .map_err(|_| OAuthError::transient("the revocation endpoint could not be reached"))?;
        if response.status().is_success() {
            info!(%pair, "grant revoked at the authorization server");
            Ok(Revocation::Revoked)
        } else {
            Err(OAuthError::protocol(format!(
                "the revocation endpoint answered HTTP {}",
                response.status().as_u16()
            )))
        }
    }
}
