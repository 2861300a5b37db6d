//! Client identity per (server, issuer): pre-registered, client ID metadata document, or
//! dynamic registration; and pointing rmcp's client at it.

use rmcp::transport::auth::{AuthorizationManager, AuthorizationMetadata, OAuthClientConfig};
use tether_core::ServerName;
use tracing::info;

use super::discovery::{advertised_flag, advertised_strings};
use super::{McpAuthorizer, StartOptions};
use crate::classify::classify;
use crate::error::OAuthError;
use crate::http::GuardedHttpClient;
use crate::secret::Secret;
use crate::store::{ClientSource, Endpoints, RegistrationRecord, TokenEndpointAuthMethod};

/// The method a pre-registered client uses when the configuration does not say.
pub(super) fn default_auth_method(
    has_secret: bool,
    supported: &[String],
) -> TokenEndpointAuthMethod {
    if !has_secret {
        return TokenEndpointAuthMethod::None;
    }
    let supports = |m: TokenEndpointAuthMethod| supported.iter().any(|s| s == m.as_str());
    if supported.is_empty() || supports(TokenEndpointAuthMethod::ClientSecretBasic) {
        // RFC 8414: the default when the server lists nothing.
        TokenEndpointAuthMethod::ClientSecretBasic
    } else {
        TokenEndpointAuthMethod::ClientSecretPost
    }
}

/// Points rmcp's client at `registration`, authenticating the way it was registered.
///
/// rmcp (through oauth2) sends `client_secret_basic` unless the metadata lists
/// `client_secret_post` without `client_secret_basic`, and `none` when it has no secret. So the
/// registered method is presented as the only one the server supports, and the secret is
/// withheld for `none`.
pub(super) fn configure_client(
    manager: &mut AuthorizationManager,
    metadata: &AuthorizationMetadata,
    registration: &RegistrationRecord,
    redirect_uri: &str,
) -> Result<(), OAuthError> {
    let mut steered = metadata.clone();
    steered.additional_fields.insert(
        "token_endpoint_auth_methods_supported".into(),
        serde_json::json!([registration.auth_method.as_str()]),
    );
    manager.set_metadata(steered);
    let mut config = OAuthClientConfig::new(registration.client_id.clone(), redirect_uri);
    if registration.auth_method != TokenEndpointAuthMethod::None
        && let Some(secret) = &registration.client_secret
    {
        config = config.with_client_secret(secret.expose());
    }
    manager
        .configure_client(config)
        .map_err(|e| OAuthError::protocol(e.to_string()))
}

impl McpAuthorizer {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn client_identity(
        &self,
        manager: &mut AuthorizationManager,
        server: &ServerName,
        issuer: &str,
        endpoints: &Endpoints,
        metadata: &AuthorizationMetadata,
        options: &StartOptions,
        http: &GuardedHttpClient,
    ) -> Result<RegistrationRecord, OAuthError> {
        let registered_at = self.now();
        let record =
            |client_id: String, secret: Option<Secret>, method, source| RegistrationRecord {
                client_id,
                client_secret: secret,
                auth_method: method,
                source,
                redirect_uris: vec![options.redirect_uri.clone()],
                endpoints: endpoints.clone(),
                registered_at,
            };

        // 1. Pre-registered (configuration).
        if let Some(client) = &options.client {
            let supported = advertised_strings(metadata, "token_endpoint_auth_methods_supported");
            let method = client
                .auth_method
                .unwrap_or_else(|| default_auth_method(client.client_secret.is_some(), &supported));
            let registration = record(
                client.client_id.clone(),
                client.client_secret.clone(),
                method,
                ClientSource::Preregistered,
            );
            // Stored so that the callback and refreshes (which get no options) find it.
            self.stores
                .registrations
                .put(server, issuer, registration.clone())
                .await?;
            return Ok(registration);
        }

        // 2. Client ID metadata document, where the server supports it.
        let metadata_url = options
            .client_metadata_url
            .clone()
            .or_else(|| self.config.client_metadata_url.clone());
        if let Some(url) = metadata_url
            && advertised_flag(metadata, "client_id_metadata_document_supported")
        {
            let registration = record(
                url,
                None,
                TokenEndpointAuthMethod::None,
                ClientSource::MetadataDocument,
            );
            self.stores
                .registrations
                .put(server, issuer, registration.clone())
                .await?;
            return Ok(registration);
        }

        // 3. Dynamic registration, once per (server, issuer).
        let gate = {
            let mut registering = self
                .registering
                .lock()
                .map_err(|_| OAuthError::protocol("registration gate poisoned"))?;
            registering
                .entry((server.clone(), issuer.to_owned()))
                .or_default()
                .clone()
        };
        let _registering = gate.lock().await;
        if let Some(existing) = self.stores.registrations.get(server, issuer).await? {
            if existing.source == ClientSource::Dynamic
                && existing.redirect_uris.contains(&options.redirect_uri)
                && existing.endpoints.token_endpoint == endpoints.token_endpoint
            {
                return Ok(existing);
            }
            // Registered for another redirect URI or endpoint: replaced below.
            self.stores.registrations.delete(server, issuer).await?;
        }
        // No `scope` on the registration: it is shared by all users and must not cap the
        // scopes a later step-up asks for.
        let config = manager
            .register_client(&self.config.client_name, &options.redirect_uri, &[])
            .await
            .map_err(|e| classify(e, http))?;
        let secret = config.client_secret.map(Secret::new);
        // rmcp registers as a public client (`none`) and does not say what the server made of
        // it; a server that issues a secret anyway is sent it the way its metadata allows.
        let supported = advertised_strings(metadata, "token_endpoint_auth_methods_supported");
        let method = default_auth_method(secret.is_some(), &supported);
        let registration = record(config.client_id, secret, method, ClientSource::Dynamic);
        // The gate above is per process: another replica may have registered at the same time.
        // The first stored registration wins everywhere, so every replica refreshes a token with
        // the client it was issued to; ours is left unused at the authorization server.
        let stored = self
            .stores
            .registrations
            .insert(server, issuer, registration.clone())
            .await?;
        if stored.client_id == registration.client_id {
            info!(%server, %issuer, "registered a client dynamically");
        } else {
            info!(%server, %issuer, "another replica registered a client first; using that one");
        }
        Ok(stored)
    }
}
