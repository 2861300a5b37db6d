//! [`FlowStarter`]: starts authorization flows for configured servers, behind `POST …/authorize`
//! and for the "needs authorization" stubs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::StatusCode;
use tether_core::{AuthorizationLinks, PairKey, ServerName, TransportConfig, UserId};
use tether_oauth::{McpAuthorizer, PreregisteredClient, Secret, StartOptions};

use super::{oauth_code, oauth_status};
use crate::config::ServerEntry;

/// Starts authorization flows for configured servers: behind `POST …/authorize`, and for the
/// "needs authorization" stubs (through [`AuthorizationLinks`]).
pub struct FlowStarter {
    pub authorizer: Arc<McpAuthorizer>,
    /// Replaced whole on a configuration reload ([`Self::replace_servers`]).
    servers: std::sync::RwLock<Arc<BTreeMap<ServerName, ServerEntry>>>,
    /// `{public_url}/oauth/callback`
    pub redirect_uri: String,
    /// `{public_url}`: links point at `{public_url}/oauth/begin/{state}`.
    pub public_url: String,
    pub client_metadata_url: Option<String>,
    /// `oauth.start_url`: a host page (with `{server}`) that stubs link to instead of starting a
    /// flow themselves.
    pub start_url: Option<String>,
    /// Links handed to stubs, per pair, reused while their flow is young: a model retrying a
    /// tool must not start a discovery and a flow on every call. A link is kept with the
    /// step-up challenge it answers, so a later `insufficient_scope` gets a new one.
    links: Mutex<HashMap<PairKey, CachedLink>>,
}

#[derive(Debug)]
struct CachedLink {
    url: String,
    at: Instant,
    step_up: Option<String>,
}

/// Shorter than the flow's own lifetime, so a link in a stub is still valid when clicked.
const LINK_REUSE: Duration = Duration::from_secs(5 * 60);

impl fmt::Debug for FlowStarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowStarter")
            .field("servers", &self.entries().len())
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl FlowStarter {
    pub fn new(
        authorizer: Arc<McpAuthorizer>,
        servers: BTreeMap<ServerName, ServerEntry>,
        public_url: String,
        client_metadata_url: Option<String>,
        start_url: Option<String>,
    ) -> Self {
        Self {
            authorizer,
            servers: std::sync::RwLock::new(Arc::new(servers)),
            redirect_uri: format!("{public_url}/oauth/callback"),
            public_url,
            client_metadata_url,
            start_url,
            links: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> Arc<BTreeMap<ServerName, ServerEntry>> {
        self.servers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The servers flows are started for, after a configuration reload.
    pub fn replace_servers(&self, servers: BTreeMap<ServerName, ServerEntry>) {
        *self
            .servers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(servers);
    }

    /// Starts a flow for the pair and returns the link to send the user to: Tether's
    /// `/oauth/begin`, which binds the flow to the browser that opens it.
    pub async fn start(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<String, (StatusCode, &'static str, String)> {
        let entries = self.entries();
        let Some(entry) = entries.get(server) else {
            return Err((
                StatusCode::NOT_FOUND,
                "unknown_server",
                "no such server".to_owned(),
            ));
        };
        let url = match &entry.server.transport {
            TransportConfig::StreamableHttp { url } | TransportConfig::Sse { url } => url.clone(),
            TransportConfig::Stdio { .. } => {
                return Err((
                    StatusCode::CONFLICT,
                    "not_oauth",
                    "this server runs locally and needs no authorization".to_owned(),
                ));
            }
        };
        if !entry.server.oauth {
            return Err((
                StatusCode::CONFLICT,
                "not_oauth",
                "this server is not configured for OAuth".to_owned(),
            ));
        }
        let options = self
            .start_options(entry)
            .map_err(|m| (StatusCode::INTERNAL_SERVER_ERROR, "misconfigured", m))?;
        // After a 403 insufficient_scope the user authorizes again for the wider scope.
        let started = match self.authorizer.pending_step_up(user, server) {
            Some(challenge) => {
                self.authorizer
                    .step_up(user, server, &url, &challenge, options)
                    .await
            }
            None => self.authorizer.start(user, server, &url, options).await,
        };
        match started {
            Ok(start) => Ok(self.begin_link(&start.state)),
            Err(error) => {
                tracing::info!(%user, %server, %error, "authorization could not start");
                Err((oauth_status(&error), oauth_code(&error), error.to_string()))
            }
        }
    }

    fn begin_link(&self, state: &str) -> String {
        let state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
        format!("{}/oauth/begin/{state}", self.public_url)
    }

    fn start_options(&self, entry: &ServerEntry) -> Result<StartOptions, String> {
        let mut options = StartOptions::new(self.redirect_uri.clone());
        if !entry.client.scopes.is_empty() {
            options = options.with_scopes(entry.client.scopes.iter().cloned());
        }
        if let Some(client_id) = &entry.client.client_id {
            let client_secret = match &entry.client.client_secret_env {
                Some(var) => {
                    Some(Secret::new(std::env::var(var).map_err(|_| {
                        format!("the client secret variable {var} is not set")
                    })?))
                }
                None => None,
            };
            options = options.with_client(PreregisteredClient {
                client_id: client_id.clone(),
                client_secret,
                auth_method: None,
            });
        }
        options.client_metadata_url = entry
            .client
            .client_metadata_url
            .clone()
            .or_else(|| self.client_metadata_url.clone());
        Ok(options)
    }
}

#[async_trait]
impl AuthorizationLinks for FlowStarter {
    async fn authorization_url(&self, pair: &PairKey) -> Option<String> {
        if let Some(template) = &self.start_url {
            // The host's page starts the flow itself, for the user logged in there.
            let server: String =
                url::form_urlencoded::byte_serialize(pair.server.as_str().as_bytes()).collect();
            return Some(template.replace("{server}", &server));
        }
        let step_up = self.authorizer.pending_step_up(&pair.user, &pair.server);
        {
            let links = self
                .links
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(link) = links.get(pair)
                && link.at.elapsed() < LINK_REUSE
                && link.step_up == step_up
            {
                return Some(link.url.clone());
            }
        }
        let url = self.start(&pair.user, &pair.server).await.ok()?;
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|_, link| link.at.elapsed() < LINK_REUSE);
        links.insert(
            pair.clone(),
            CachedLink {
                url: url.clone(),
                at: Instant::now(),
                step_up,
            },
        );
        Some(url)
    }
}
