//! [`McpAuthorizer`]: authorization of Tether's users at the OAuth-protected MCP servers they
//! use — starting a flow, completing it from the callback, and handing out fresh access tokens.
//!
//! Every operation builds a short-lived rmcp `AuthorizationManager` bound to one server and one
//! pair: rmcp does discovery, registration, PKCE, the code exchange and the refresh; Tether's
//! stores keep everything between operations (and between replicas).

mod as_backoff;
mod client_identity;
mod discovery;
mod flow;
mod refresh;
mod revocation;
mod step_up;

pub use revocation::Revocation;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::transport::auth::AuthorizationManager;
use tether_core::{Clock, PairKey, ServerName, SystemClock, Timestamp, UserId};
use url::Url;

use crate::classify::classify;
use crate::error::OAuthError;
use crate::http::{GuardedHttpClient, HttpClients, RequestObserver};
use crate::secret::Secret;
use crate::ssrf::NetworkPolicy;
use crate::store::{
    FlowStore, MemoryFlowStore, MemoryRefreshLock, MemoryRegistrationStore, MemoryTokenVault,
    RecentTokens, RefreshLock, RegistrationStore, TokenEndpointAuthMethod, TokenVault,
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
    /// After a transient token-endpoint failure, that authorization server is not asked again
    /// for a jittered delay starting at this and doubling per failure...
    pub token_endpoint_backoff_min: Duration,
    /// ...up to this.
    pub token_endpoint_backoff_max: Duration,
    /// On shutdown, how long [`McpAuthorizer::drain`] waits for refreshes in flight.
    pub refresh_drain_timeout: Duration,
    /// How long an access token read for an upstream request is remembered for the pair's
    /// next requests ([`RecentTokens`]); zero reads the store every time. Default 5 s.
    pub remember_tokens_for: Duration,
    /// The wall clock every expiry decision reads (tests: `TokioClock`, on paused time).
    pub clock: Arc<dyn Clock>,
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
            token_endpoint_backoff_min: Duration::from_secs(2),
            token_endpoint_backoff_max: Duration::from_secs(120),
            refresh_drain_timeout: Duration::from_secs(20),
            remember_tokens_for: crate::store::KEEP_RECENT_FOR,
            clock: Arc::new(SystemClock),
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
            .field(
                "token_endpoint_backoff_min",
                &self.token_endpoint_backoff_min,
            )
            .field(
                "token_endpoint_backoff_max",
                &self.token_endpoint_backoff_max,
            )
            .field("refresh_drain_timeout", &self.refresh_drain_timeout)
            .field("remember_tokens_for", &self.remember_tokens_for)
            .field("clock", &self.clock)
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
    step_ups: step_up::StepUps,
    /// The vault of [`Self::stores`], which remembers the tokens of busy pairs for a moment.
    recent: Arc<RecentTokens>,
    refreshes: Arc<RefreshCounters>,
    token_endpoint_backoff: Arc<as_backoff::AsBackoff>,
    /// Refreshes run in their own tasks once their request may be sent, so that a caller going
    /// away cannot lose a rotated refresh token; shutdown waits for them ([`Self::drain`]).
    in_flight: tokio_util::task::TaskTracker,
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

fn parse_url(text: &str, what: &str) -> Result<Url, OAuthError> {
    Url::parse(text).map_err(|e| OAuthError::protocol(format!("{what} is not a URL: {e}")))
}

impl McpAuthorizer {
    pub fn new(config: AuthorizerConfig, mut stores: OAuthStores) -> Result<Self, OAuthError> {
        let http = HttpClients::new(
            config.network.clone(),
            config.request_timeout,
            config.request_observer.clone(),
        )
        .map_err(|e| OAuthError::protocol(format!("cannot build the HTTP client: {e}")))?;
        // Every write of the authorizer (and of rmcp through it) goes through this vault, so
        // each one drops what it remembered.
        let recent = Arc::new(RecentTokens::new(
            stores.vault.clone(),
            config.remember_tokens_for,
        ));
        stores.vault = recent.clone();
        Ok(Self {
            recent,
            registering: Mutex::new(HashMap::new()),
            step_ups: step_up::StepUps::default(),
            refreshes: Arc::default(),
            token_endpoint_backoff: Arc::new(as_backoff::AsBackoff::new(
                config.token_endpoint_backoff_min,
                config.token_endpoint_backoff_max,
            )),
            in_flight: tokio_util::task::TaskTracker::new(),
            config,
            stores,
            http,
        })
    }

    /// Refresh requests by outcome since start.
    pub fn refresh_counters(&self) -> &RefreshCounters {
        &self.refreshes
    }

    pub fn stores(&self) -> &OAuthStores {
        &self.stores
    }

    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// Waits up to `timeout` for the refreshes in flight to finish (their rotated tokens
    /// stored). Returns whether all finished; refreshes started later are waited for too.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.in_flight.close();
        let drained = tokio::time::timeout(timeout, self.in_flight.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                in_flight = self.in_flight.len(),
                "shutdown: refreshes still in flight after the drain timeout"
            );
        }
        drained
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

    /// Drops the remembered tokens of `server`: it was removed or changed (the tokens may be
    /// for what it was), or its tokens were deleted in the store directly (a catalog delete),
    /// so that a server added again under its name is never sent them.
    pub fn forget_remembered(&self, server: &ServerName) {
        self.recent.forget_server(server);
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
