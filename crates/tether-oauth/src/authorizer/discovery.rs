//! Discovery: what the authorization server's metadata says, checked against the network
//! policy before anything is stored or sent.

use rmcp::transport::auth::AuthorizationMetadata;
use tracing::warn;
use url::Url;

use super::{McpAuthorizer, OFFLINE_ACCESS, parse_url};
use crate::error::OAuthError;
use crate::http::GuardedHttpClient;
use crate::store::Endpoints;

pub(super) fn advertised_strings(metadata: &AuthorizationMetadata, field: &str) -> Vec<String> {
    metadata
        .additional_fields
        .get(field)
        .and_then(|value| value.as_array())
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn advertised_flag(metadata: &AuthorizationMetadata, field: &str) -> bool {
    metadata
        .additional_fields
        .get(field)
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}

pub(super) fn metadata_from(endpoints: &Endpoints) -> AuthorizationMetadata {
    let mut metadata = AuthorizationMetadata::default();
    metadata.authorization_endpoint = endpoints.authorization_endpoint.clone();
    metadata.token_endpoint = endpoints.token_endpoint.clone();
    metadata.registration_endpoint = endpoints.registration_endpoint.clone();
    metadata.issuer = endpoints.issuer.clone();
    metadata
}

pub(super) fn add_offline_access(scopes: &mut Vec<String>, metadata: &AuthorizationMetadata) {
    let supported = metadata
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == OFFLINE_ACCESS));
    if supported && !scopes.is_empty() && !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        scopes.push(OFFLINE_ACCESS.into());
    }
}

pub(super) fn asks_offline_access_from_openid_provider(
    scopes: &[String],
    metadata: &AuthorizationMetadata,
) -> bool {
    scopes.iter().any(|s| s == OFFLINE_ACCESS)
        && metadata
            .scopes_supported
            .as_ref()
            .is_some_and(|supported| supported.iter().any(|s| s == "openid"))
}

impl McpAuthorizer {
    /// Every endpoint the metadata names is checked before it is stored or used: rmcp checks
    /// the authorization server's host but not the endpoints its metadata lists.
    pub(super) fn checked_endpoints(
        &self,
        metadata: &AuthorizationMetadata,
        http: &GuardedHttpClient,
    ) -> Result<Endpoints, OAuthError> {
        let mut urls = vec![&metadata.authorization_endpoint, &metadata.token_endpoint];
        if let Some(registration) = &metadata.registration_endpoint {
            urls.push(registration);
        }
        for text in urls {
            let url = parse_url(text, "an authorization server endpoint")?;
            http.check(&url).map_err(|reason| {
                warn!(endpoint = %url.origin().ascii_serialization(), %reason, "refused endpoint");
                OAuthError::Refused(reason)
            })?;
        }
        Ok(Endpoints {
            authorization_endpoint: metadata.authorization_endpoint.clone(),
            token_endpoint: metadata.token_endpoint.clone(),
            registration_endpoint: metadata.registration_endpoint.clone(),
            issuer: metadata.issuer.clone(),
            iss_parameter_supported: advertised_flag(
                metadata,
                "authorization_response_iss_parameter_supported",
            ),
        })
    }
}

/// The key registrations are stored under: the issuer, or for servers without metadata
/// (2025-03-26 default endpoints) the token endpoint's origin.
pub(super) fn issuer_key(endpoints: &Endpoints) -> String {
    endpoints.issuer.clone().unwrap_or_else(|| {
        Url::parse(&endpoints.token_endpoint)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| endpoints.token_endpoint.clone())
    })
}
