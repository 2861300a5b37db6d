//! The two OAuth routes of the gateway: `POST /v1/me/servers/{name}/authorize` (host JWT) starts
//! a flow and answers the URL to send the user to; `GET /oauth/callback` (the user's browser)
//! completes it, resets the pair's failure state and breaker, connects, caches the tools, then
//! redirects to the configured return URL or shows a small page.
//!
//! The callback is idempotent: a repeated callback for a flow that completed here answers as the
//! first did (browsers retry, users reload — LibreChat #15876). A forged, replayed-elsewhere or
//! expired `state` gets a 400 page and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tether::gateway::AppState;
use tether::gateway::auth::{AuthUser, require_user};
use tether_core::redact::redact;
use tether_core::{
    AttemptOutcome, AuthorizationLinks, PairKey, ReconnectionManager, ServerName, TransportConfig,
    UserId,
};
use tether_oauth::{McpAuthorizer, OAuthError, PreregisteredClient, Secret, StartOptions};

use crate::config::ServerEntry;

/// How long a completed flow's callback is answered again, and how many are remembered.
const COMPLETED_TTL: Duration = Duration::from_secs(600);
const COMPLETED_MAX: usize = 10_000;

/// Starts authorization flows for configured servers: behind `POST …/authorize`, and for the
/// "needs authorization" stubs (through [`AuthorizationLinks`]).
pub struct FlowStarter {
    pub authorizer: Arc<McpAuthorizer>,
    pub servers: BTreeMap<ServerName, ServerEntry>,
    /// `{public_url}/oauth/callback`
    pub redirect_uri: String,
    pub client_metadata_url: Option<String>,
    /// Links handed to stubs, per pair, reused while their flow is young: a model retrying a
    /// tool must not start a discovery and a flow on every call.
    links: Mutex<HashMap<PairKey, (String, Instant)>>,
}

/// Shorter than the flow's own lifetime, so a link in a stub is still valid when clicked.
const LINK_REUSE: Duration = Duration::from_secs(5 * 60);

impl fmt::Debug for FlowStarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowStarter")
            .field("servers", &self.servers.len())
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl FlowStarter {
    pub fn new(
        authorizer: Arc<McpAuthorizer>,
        servers: BTreeMap<ServerName, ServerEntry>,
        redirect_uri: String,
        client_metadata_url: Option<String>,
    ) -> Self {
        Self {
            authorizer,
            servers,
            redirect_uri,
            client_metadata_url,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a flow for the pair and returns the URL to send the user to.
    pub async fn start(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<String, (StatusCode, String)> {
        let Some(entry) = self.servers.get(server) else {
            return Err((StatusCode::NOT_FOUND, "no such server".to_owned()));
        };
        let url = match &entry.server.transport {
            TransportConfig::StreamableHttp { url } | TransportConfig::Sse { url } => url.clone(),
            TransportConfig::Stdio { .. } => {
                return Err((
                    StatusCode::CONFLICT,
                    "this server runs locally and needs no authorization".to_owned(),
                ));
            }
        };
        if !entry.server.oauth {
            return Err((
                StatusCode::CONFLICT,
                "this server is not configured for OAuth".to_owned(),
            ));
        }
        let options = self
            .start_options(entry)
            .map_err(|m| (StatusCode::INTERNAL_SERVER_ERROR, m))?;
        match self.authorizer.start(user, server, &url, options).await {
            Ok(start) => Ok(start.authorization_url),
            Err(error) => {
                tracing::info!(%user, %server, %error, "authorization could not start");
                Err((oauth_status(&error), error.to_string()))
            }
        }
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
        {
            let links = self
                .links
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((url, at)) = links.get(pair)
                && at.elapsed() < LINK_REUSE
            {
                return Some(url.clone());
            }
        }
        let url = self.start(&pair.user, &pair.server).await.ok()?;
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|_, (_, at)| at.elapsed() < LINK_REUSE);
        links.insert(pair.clone(), (url.clone(), Instant::now()));
        Some(url)
    }
}

pub struct OAuthRoutes {
    pub flows: Arc<FlowStarter>,
    pub manager: ReconnectionManager,
    pub return_url: Option<String>,
    completed: Mutex<HashMap<String, (UserId, ServerName, Instant)>>,
}

impl OAuthRoutes {
    pub fn new(
        flows: Arc<FlowStarter>,
        manager: ReconnectionManager,
        return_url: Option<String>,
    ) -> Self {
        Self {
            flows,
            manager,
            return_url,
            completed: Mutex::new(HashMap::new()),
        }
    }

    pub fn router(self: Arc<Self>, app: AppState) -> Router {
        let authorize = Router::new()
            .route("/v1/me/servers/{name}/authorize", post(authorize))
            .layer(from_fn_with_state(app, require_user))
            .with_state(self.clone());
        Router::new()
            .route("/oauth/callback", get(callback))
            .with_state(self)
            .merge(authorize)
    }

    fn remember(&self, state: &str, user: &UserId, server: &ServerName) {
        let mut completed = self
            .completed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        completed.retain(|_, (_, _, at)| at.elapsed() < COMPLETED_TTL);
        if completed.len() >= COMPLETED_MAX {
            // Under a flood, forgetting some answers only costs those users a "link expired".
            completed.clear();
        }
        completed.insert(
            state.to_owned(),
            (user.clone(), server.clone(), Instant::now()),
        );
    }

    fn completed(&self, state: &str) -> Option<(UserId, ServerName)> {
        let completed = self
            .completed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        completed
            .get(state)
            .filter(|(_, _, at)| at.elapsed() < COMPLETED_TTL)
            .map(|(u, s, _)| (u.clone(), s.clone()))
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn oauth_status(error: &OAuthError) -> StatusCode {
    match error {
        OAuthError::Transient(_) | OAuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::UnknownState => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

async fn authorize(
    State(routes): State<Arc<OAuthRoutes>>,
    AuthUser(user): AuthUser,
    Path(name): Path<String>,
) -> Response {
    match routes.flows.start(&user, &ServerName::new(&name)).await {
        Ok(url) => Json(json!({ "authorization_url": url })).into_response(),
        Err((status, message)) => json_error(status, &message),
    }
}

async fn callback(
    State(routes): State<Arc<OAuthRoutes>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization refused",
            &format!(
                "The authorization server said: {} {}",
                redact(error),
                redact(description)
            ),
        );
    }
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not an authorization response",
            "This address is where an authorization server sends you back; the request lacked its code or state.",
        );
    };
    let issuer = params.get("iss").map(String::as_str);
    match routes.flows.authorizer.complete(state, code, issuer).await {
        Ok((user, server)) => {
            routes.remember(state, &user, &server);
            // A fresh authorization wipes the pair's failures and breaker, then connects now.
            routes.manager.authorized(&user, &server).await;
            let outcome = routes
                .manager
                .reconnect_server_outcome(&user, &server)
                .await
                .unwrap_or(AttemptOutcome::Cancelled);
            tracing::info!(%user, %server, ?outcome, "authorization completed");
            finish(&routes, &server, &outcome)
        }
        Err(OAuthError::UnknownState) => match routes.completed(state) {
            Some((user, server)) => {
                let connected = routes.manager.state(&user, &server).await.is_connected();
                let outcome = if connected {
                    AttemptOutcome::Connected
                } else {
                    AttemptOutcome::Cancelled
                };
                finish(&routes, &server, &outcome)
            }
            None => page(
                StatusCode::BAD_REQUEST,
                "This authorization link is not valid",
                "It expired, was already used elsewhere, or was not issued by this Tether. Start the connection again from the application.",
            ),
        },
        Err(error) => {
            tracing::info!(%error, "authorization callback failed");
            page(
                oauth_status(&error),
                "Authorization failed",
                &error.to_string(),
            )
        }
    }
}

fn finish(routes: &OAuthRoutes, server: &ServerName, outcome: &AttemptOutcome) -> Response {
    let connected = *outcome == AttemptOutcome::Connected;
    if let Some(return_url) = &routes.return_url {
        let separator = if return_url.contains('?') { '&' } else { '?' };
        let location = format!(
            "{return_url}{separator}server={}&status={}",
            url::form_urlencoded::byte_serialize(server.as_str().as_bytes()).collect::<String>(),
            if connected { "connected" } else { "authorized" }
        );
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    }
    let detail = match outcome {
        AttemptOutcome::Connected => {
            "Its tools are available now. You can close this window.".to_owned()
        }
        AttemptOutcome::Failed { error, .. } => format!(
            "Tether is authorized, but connecting failed ({error}); it will retry by itself. You can close this window."
        ),
        _ => "Tether is authorized and will connect shortly. You can close this window.".to_owned(),
    };
    page(StatusCode::OK, &format!("Connected to {server}"), &detail)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{b}</p></body></html>",
        t = escape(title),
        b = escape(body)
    );
    (status, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
