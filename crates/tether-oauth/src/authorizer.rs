//! [`McpAuthorizer`]: authorization of Tether's users at the OAuth-protected MCP servers they
//! use — starting a flow, completing it from the callback, and handing out fresh access tokens.
//!
//! Every operation builds a short-lived rmcp `AuthorizationManager` bound to one server and one
//! pair: rmcp does discovery, registration, PKCE, the code exchange and the refresh; Tether's
//! stores keep everything between operations (and between replicas).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oauth2::TokenResponse;
use rmcp::transport::auth::{
    AuthorizationManager, AuthorizationMetadata, OAuthClientConfig, WWWAuthenticateParams,
};
use tether_core::{PairKey, ServerName, Timestamp, UserId};
use tracing::{info, warn};
use url::Url;

use crate::classify::classify;
use crate::error::OAuthError;
use crate::http::{GuardedHttpClient, HttpClients, RequestObserver};
use crate::lease::Lease;
use crate::refresh_policy::{is_expired, needs_refresh};
use crate::rmcp_adapter::{FlowStateStore, PairCredentialStore};
use crate::secret::Secret;
use crate::ssrf::NetworkPolicy;
use crate::store::{
    ClientSource, Endpoints, FlowRecord, FlowStore, MemoryFlowStore, MemoryRefreshLock,
    MemoryRegistrationStore, MemoryTokenVault, RefreshLock, RegistrationRecord, RegistrationStore,
    TokenEndpointAuthMethod, TokenVault,
};

/// The scope that makes OIDC-flavoured authorization servers issue refresh tokens.
const OFFLINE_ACCESS: &str = "offline_access";

#[derive(Clone)]
pub struct AuthorizerConfig {
    pub network: NetworkPolicy,
    /// `client_name` for dynamic client registration.
    pub client_name: String,
    /// Tether's client ID metadata document URL, used where the authorization server
    /// advertises support (`client_id_metadata_document_supported`).
    pub client_metadata_url: Option<String>,
    /// Per request to an OAuth endpoint.
    pub request_timeout: Duration,
    /// Lifetime of a refresh lease: longer than a token request can take.
    pub refresh_lease_ttl: Duration,
    /// How long a caller waits for someone else's refresh before giving up (transient).
    pub refresh_wait: Duration,
    /// An access token is refreshed before use once less than this (or a tenth of its
    /// lifetime) is left. Default 60 s.
    pub refresh_ahead: Duration,
    /// Re-authorizations for `insufficient_scope` per pair before giving up.
    pub max_scope_upgrades: u32,
    /// Sees every request actually sent (method, URL without query): for metrics and tests.
    pub request_observer: Option<RequestObserver>,
}

impl Default for AuthorizerConfig {
    fn default() -> Self {
        Self {
            network: NetworkPolicy::default(),
            client_name: "Tether".into(),
            client_metadata_url: None,
            request_timeout: Duration::from_secs(15),
            refresh_lease_ttl: Duration::from_secs(30),
            refresh_wait: Duration::from_secs(35),
            refresh_ahead: crate::refresh_policy::MIN_REMAINING,
            max_scope_upgrades: 2,
            request_observer: None,
        }
    }
}

impl fmt::Debug for AuthorizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerConfig")
            .field("network", &self.network)
            .field("client_name", &self.client_name)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("request_timeout", &self.request_timeout)
            .field("refresh_lease_ttl", &self.refresh_lease_ttl)
            .field("refresh_wait", &self.refresh_wait)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("max_scope_upgrades", &self.max_scope_upgrades)
            .finish_non_exhaustive()
    }
}

/// The four stores the authorizer works on.
#[derive(Debug, Clone)]
pub struct OAuthStores {
    pub vault: Arc<dyn TokenVault>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub flows: Arc<dyn FlowStore>,
    pub locks: Arc<dyn RefreshLock>,
}

impl OAuthStores {
    pub fn in_memory() -> Self {
        Self {
            vault: Arc::new(MemoryTokenVault::new()),
            registrations: Arc::new(MemoryRegistrationStore::new()),
            flows: Arc::new(MemoryFlowStore::new()),
            locks: Arc::new(MemoryRefreshLock::new()),
        }
    }
}

/// A client registered with the authorization server out of band (from Tether's config).
#[derive(Debug, Clone)]
pub struct PreregisteredClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// `None`: `client_secret_basic` with a secret if the server allows it, else
    /// `client_secret_post`; `none` without a secret.
    pub auth_method: Option<TokenEndpointAuthMethod>,
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Where the authorization server sends the user back (Tether's callback).
    pub redirect_uri: String,
    /// The `WWW-Authenticate` value of the MCP server's 401, when there was one.
    pub challenge: Option<String>,
    pub client: Option<PreregisteredClient>,
    /// Explicit scopes; empty: from the challenge, else the resource's `scopes_supported`.
    pub scopes: Vec<String>,
    /// Overrides [`AuthorizerConfig::client_metadata_url`].
    pub client_metadata_url: Option<String>,
}

impl StartOptions {
    pub fn new(redirect_uri: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            ..Self::default()
        }
    }

    pub fn with_challenge(mut self, www_authenticate: impl Into<String>) -> Self {
        self.challenge = Some(www_authenticate.into());
        self
    }

    pub fn with_client(mut self, client: PreregisteredClient) -> Self {
        self.client = Some(client);
        self
    }

    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// Where to send the user, and the flow's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationStart {
    pub authorization_url: String,
    pub state: String,
}

/// (server, issuer): the key of a client registration.
type RegistrationKey = (ServerName, String);

pub struct McpAuthorizer {
    config: AuthorizerConfig,
    stores: OAuthStores,
    http: HttpClients,
    /// One dynamic registration at a time per (server, issuer) in this process, so that users
    /// connecting at once share one registration.
    registering: Mutex<HashMap<RegistrationKey, Arc<tokio::sync::Mutex<()>>>>,
    /// `insufficient_scope` re-authorizations per pair since its scopes last sufficed.
    scope_upgrades: Mutex<HashMap<PairKey, u32>>,
    refreshes: RefreshCounters,
}

/// Token refreshes sent to authorization servers, by outcome (for metrics).
#[derive(Debug, Default)]
pub struct RefreshCounters {
    pub refreshed: std::sync::atomic::AtomicU64,
    /// `invalid_grant` and other refusals that need a new authorization.
    pub rejected: std::sync::atomic::AtomicU64,
    /// Network failures, timeouts, 5xx: tokens kept, retried later.
    pub transient: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for McpAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthorizer")
            .field("config", &self.config)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn parse_url(text: &str, what: &str) -> Result<Url, OAuthError> {
    Url::parse(text).map_err(|e| OAuthError::protocol(format!("{what} is not a URL: {e}")))
}

fn advertised_strings(metadata: &AuthorizationMetadata, field: &str) -> Vec<String> {
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

fn advertised_flag(metadata: &AuthorizationMetadata, field: &str) -> bool {
    metadata
        .additional_fields
        .get(field)
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}

fn metadata_from(endpoints: &Endpoints) -> AuthorizationMetadata {
    let mut metadata = AuthorizationMetadata::default();
    metadata.authorization_endpoint = endpoints.authorization_endpoint.clone();
    metadata.token_endpoint = endpoints.token_endpoint.clone();
    metadata.registration_endpoint = endpoints.registration_endpoint.clone();
    metadata.issuer = endpoints.issuer.clone();
    metadata
}

/// The method a pre-registered client uses when the configuration does not say.
fn default_auth_method(has_secret: bool, supported: &[String]) -> TokenEndpointAuthMethod {
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
fn configure_client(
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

fn add_offline_access(scopes: &mut Vec<String>, metadata: &AuthorizationMetadata) {
    let supported = metadata
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == OFFLINE_ACCESS));
    if supported && !scopes.is_empty() && !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        scopes.push(OFFLINE_ACCESS.into());
    }
}

fn asks_offline_access_from_openid_provider(
    scopes: &[String],
    metadata: &AuthorizationMetadata,
) -> bool {
    scopes.iter().any(|s| s == OFFLINE_ACCESS)
        && metadata
            .scopes_supported
            .as_ref()
            .is_some_and(|supported| supported.iter().any(|s| s == "openid"))
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

impl McpAuthorizer {
    pub fn new(config: AuthorizerConfig, stores: OAuthStores) -> Result<Self, OAuthError> {
        let http = HttpClients::new(
            config.network.clone(),
            config.request_timeout,
            config.request_observer.clone(),
        )
        .map_err(|e| OAuthError::protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            config,
            stores,
            http,
            registering: Mutex::new(HashMap::new()),
            scope_upgrades: Mutex::new(HashMap::new()),
            refreshes: RefreshCounters::default(),
        })
    }

    /// Refresh requests by outcome since start.
    pub fn refresh_counters(&self) -> &RefreshCounters {
        &self.refreshes
    }

    pub fn stores(&self) -> &OAuthStores {
        &self.stores
    }

    async fn manager(
        &self,
        base_url: &Url,
        http: &GuardedHttpClient,
    ) -> Result<AuthorizationManager, OAuthError> {
        AuthorizationManager::new_with_oauth_http_client(base_url.clone(), Arc::new(http.clone()))
            .await
            .map_err(|e| classify(e, http))
    }

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
            created_at: now(),
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

    /// Every endpoint the metadata names is checked before it is stored or used: rmcp checks
    /// the authorization server's host but not the endpoints its metadata lists.
    fn checked_endpoints(
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

    #[allow(clippy::too_many_arguments)]
    async fn client_identity(
        &self,
        manager: &mut AuthorizationManager,
        server: &ServerName,
        issuer: &str,
        endpoints: &Endpoints,
        metadata: &AuthorizationMetadata,
        options: &StartOptions,
        http: &GuardedHttpClient,
    ) -> Result<RegistrationRecord, OAuthError> {
        let record =
            |client_id: String, secret: Option<Secret>, method, source| RegistrationRecord {
                client_id,
                client_secret: secret,
                auth_method: method,
                source,
                redirect_uris: vec![options.redirect_uri.clone()],
                endpoints: endpoints.clone(),
                registered_at: now(),
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
        // rmcp registers as a public client (`none`); a server that issues a secret anyway
        // gets the RFC 7591 default.
        let method = if secret.is_some() {
            TokenEndpointAuthMethod::ClientSecretBasic
        } else {
            TokenEndpointAuthMethod::None
        };
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
        let http = self.http.for_resource(&server_url);
        let mut manager = self.manager(&resource, &http).await?;
        manager.set_state_store(FlowStateStore::serving(
            state,
            &flow,
            registration.endpoints.issuer.clone(),
            registration.endpoints.iss_parameter_supported,
        ));
        manager.set_credential_store(PairCredentialStore::new(
            self.stores.vault.clone(),
            self.stores.locks.clone(),
            pair.clone(),
            flow.issuer.clone(),
            flow.resource.clone(),
        ));
        configure_client(
            &mut manager,
            &metadata_from(&registration.endpoints),
            &registration,
            &flow.redirect_uri,
        )?;
        let response = manager
            .exchange_code_for_token_with_issuer(code, state, issuer)
            .await
            .map_err(|e| classify(e, &http))?;
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
            // The scopes asked for were granted: a later insufficient_scope is a new story.
            if let Ok(mut upgrades) = self.scope_upgrades.lock() {
                upgrades.remove(&pair);
            }
        }
        info!(%pair, "authorization completed");
        Ok((flow.user, flow.server))
    }

    /// A usable access token for the pair, refreshed first when less than 60 s or 10 % of its
    /// lifetime is left. Refreshes are single-flight per pair through the [`RefreshLock`].
    pub async fn access_token(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<Secret, OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        let Some(seen) = self.stores.vault.get(&pair).await? else {
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        if !needs_refresh(&seen, now(), self.config.refresh_ahead) {
            return Ok(seen.access_token);
        }
        self.refresh_single_flight(&pair, seen, false).await
    }

    /// After the MCP server answered 401 to `rejected`: a replacement if someone already made
    /// one, else one refresh (single-flight); without a refresh token the pair needs
    /// authorization. Call once per 401, then retry the request once (SPEC §5).
    pub async fn access_token_after_rejection(
        &self,
        user: &UserId,
        server: &ServerName,
        rejected: &Secret,
    ) -> Result<Secret, OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        let Some(seen) = self.stores.vault.get(&pair).await? else {
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        if seen.access_token != *rejected {
            return usable_or_reauthorize(seen);
        }
        self.refresh_single_flight(&pair, seen, true).await
    }

    /// `seen` is the record that prompted the refresh; `rejected`: its access token is known
    /// not to work any more, so it is never handed out again.
    async fn refresh_single_flight(
        &self,
        pair: &PairKey,
        seen: crate::store::TokenRecord,
        rejected: bool,
    ) -> Result<Secret, OAuthError> {
        let without_refresh = |record: crate::store::TokenRecord| {
            if rejected {
                Err(OAuthError::needs_authorization(
                    "the access token was rejected and there is no refresh token",
                ))
            } else {
                usable_or_reauthorize(record)
            }
        };
        if seen.refresh_token.is_none() {
            return without_refresh(seen);
        }
        let Some(lease) = Lease::acquire(
            self.stores.locks.clone(),
            pair,
            self.config.refresh_lease_ttl,
            self.config.refresh_wait,
        )
        .await?
        else {
            return Err(OAuthError::transient(
                "another refresh of this pair is still running",
            ));
        };
        // Re-read under the lease: whoever held it before us may have refreshed already, and
        // refreshing again would spend the rotated refresh token a second time.
        let current = self.stores.vault.get(pair).await?;
        let Some(current) = current else {
            lease.release().await?;
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        let replaced =
            current.obtained_at != seen.obtained_at || current.access_token != seen.access_token;
        if replaced && !is_expired(&current, now()) {
            lease.release().await?;
            return Ok(current.access_token);
        }
        if current.refresh_token.is_none() {
            lease.release().await?;
            return without_refresh(current);
        }
        self.refresh_under_lease(pair, current, lease).await
    }

    async fn refresh_under_lease(
        &self,
        pair: &PairKey,
        record: crate::store::TokenRecord,
        lease: Lease,
    ) -> Result<Secret, OAuthError> {
        let registration = self
            .stores
            .registrations
            .get(&pair.server, &record.issuer)
            .await?
            // Tokens are refreshed only with the client they were issued to.
            .filter(|r| r.client_id == record.client_id);
        let Some(registration) = registration else {
            lease.release().await?;
            return Err(OAuthError::needs_authorization(
                "the client registration these tokens belong to is gone",
            ));
        };
        let resource = parse_url(&record.resource, "the resource indicator")?;
        let http = self.http.for_resource(&resource);
        let mut manager = self.manager(&resource, &http).await?;
        let store = PairCredentialStore::new(
            self.stores.vault.clone(),
            self.stores.locks.clone(),
            pair.clone(),
            record.issuer.clone(),
            record.resource.clone(),
        )
        .with_lease(lease);
        let lease_slot = store.lease_handle();
        manager.set_credential_store(store);
        let redirect_uri = registration
            .redirect_uris
            .first()
            .cloned()
            .unwrap_or_else(|| record.resource.clone());
        configure_client(
            &mut manager,
            &metadata_from(&registration.endpoints),
            &registration,
            &redirect_uri,
        )?;
        // rmcp persists the response (rotated refresh token included) through the store before
        // returning it, so the new access token is only used once its refresh token is saved.
        let result = manager.refresh_token().await;
        drop(manager);
        PairCredentialStore::release_lease(&lease_slot).await?;
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(response) => {
                self.refreshes.refreshed.fetch_add(1, Relaxed);
                info!(%pair, "access token refreshed");
                Ok(Secret::new(response.access_token().secret().clone()))
            }
            Err(error) => {
                let error = classify(error, &http);
                let counter = match &error {
                    OAuthError::NeedsAuthorization(_) => &self.refreshes.rejected,
                    e if e.is_transient() => &self.refreshes.transient,
                    _ => &self.refreshes.failed,
                };
                counter.fetch_add(1, Relaxed);
                warn!(%pair, %error, "refresh failed");
                Err(error)
            }
        }
    }

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

    /// Forgets the pair's tokens (user disconnects).
    pub async fn revoke_local(&self, user: &UserId, server: &ServerName) -> Result<(), OAuthError> {
        Ok(self
            .stores
            .vault
            .delete(&PairKey::new(user.clone(), server.clone()))
            .await?)
    }
}

fn usable_or_reauthorize(record: crate::store::TokenRecord) -> Result<Secret, OAuthError> {
    if is_expired(&record, now()) {
        Err(OAuthError::needs_authorization(
            "the access token expired and there is no refresh token",
        ))
    } else {
        Ok(record.access_token)
    }
}

/// The key registrations are stored under: the issuer, or for servers without metadata
/// (2025-03-26 default endpoints) the token endpoint's origin.
fn issuer_key(endpoints: &Endpoints) -> String {
    endpoints.issuer.clone().unwrap_or_else(|| {
        Url::parse(&endpoints.token_endpoint)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| endpoints.token_endpoint.clone())
    })
}
