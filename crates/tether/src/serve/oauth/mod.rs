//! The OAuth routes of the gateway, and the rule that protects them: tokens are stored for a
//! user only once the person who finished the flow is shown to be that user.
//!
//! - `POST /v1/me/servers/{name}/authorize` (host JWT) starts a flow and answers Tether's own
//!   link `{public_url}/oauth/begin/{state}`, never the authorization server's URL;
//! - `GET /oauth/begin/{state}` binds the flow to the first browser that opens it (a cookie) and
//!   sends it on to the authorization server ([`begin`]);
//! - `GET /oauth/callback` accepts only that browser, keeps what the authorization server sent
//!   under a single-use completion code and sends the browser to the host's `oauth.return_url`
//!   ([`callback`]);
//! - `POST /v1/me/oauth/complete` (host JWT) exchanges the code and stores the tokens when the
//!   JWT's user is the flow's user, else 403 ([`completion`]).
//!
//! Without the last two checks, user B could start a flow, send the link to user A, and hold A's
//! account once A approved (no consent screen with one shared registered client).
//! `oauth.unverified_callback = true` restores the old callback that stores at once.

mod begin;
mod binding;
mod callback;
mod completion;
mod page;
mod rate;
mod recent;
mod starter;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tether::gateway::AppState;
use tether::gateway::auth::{AuthAccess, AuthUser, require_user};
use tether_core::{AttemptOutcome, ReconnectionManager, ServerName, UserId};
use tether_oauth::OAuthError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use rate::AuthorizeRate;
use recent::Recent;
pub use starter::FlowStarter;

/// How long a finished step is answered again, and how many are remembered.
const COMPLETED_TTL: Duration = Duration::from_secs(600);
const COMPLETED_MAX: usize = 10_000;

/// How the callback treats the browser that arrives there.
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    /// Where the browser goes after the callback: with a `completion_code` for the host to
    /// confirm (default), or with the outcome (unverified).
    pub return_url: Option<String>,
    /// Store at the callback without asking the host who finished the flow (unsafe).
    pub unverified: bool,
    /// `Secure` on cookies: `public_url` is https.
    pub secure_cookies: bool,
    /// Flow starts per user and minute through `…/authorize` (0: unlimited).
    pub authorize_per_minute: u32,
}

/// What a callback answered, for a reload in the same browser.
#[derive(Debug, Clone)]
struct CallbackAnswer {
    server: ServerName,
    completion_code: String,
    /// The browser's cookie digest: only the browser that was answered gets the code again.
    binding: String,
}

/// What a confirmation answered, for the host retrying it.
#[derive(Debug, Clone)]
struct CompletionAnswer {
    user: UserId,
    server: ServerName,
    connected: bool,
}

#[derive(Debug)]
pub struct OAuthRoutes {
    pub flows: Arc<FlowStarter>,
    pub manager: ReconnectionManager,
    policy: CallbackPolicy,
    /// Unverified callbacks that stored tokens: state → (user, server).
    completed: Recent<(UserId, ServerName)>,
    /// Callbacks handed to the host: state → answer.
    callbacks: Recent<CallbackAnswer>,
    /// Confirmations done: completion key → answer.
    completions: Recent<CompletionAnswer>,
    authorize_rate: AuthorizeRate,
}

impl OAuthRoutes {
    pub fn new(
        flows: Arc<FlowStarter>,
        manager: ReconnectionManager,
        policy: CallbackPolicy,
    ) -> Self {
        let authorize_rate = AuthorizeRate::per_minute(policy.authorize_per_minute);
        Self {
            flows,
            manager,
            policy,
            completed: Recent::new(COMPLETED_TTL, COMPLETED_MAX),
            callbacks: Recent::new(COMPLETED_TTL, COMPLETED_MAX),
            completions: Recent::new(COMPLETED_TTL, COMPLETED_MAX),
            authorize_rate,
        }
    }

    /// The routes and their part of the OpenAPI document.
    pub fn router(self: Arc<Self>, app: AppState) -> (Router, utoipa::openapi::OpenApi) {
        let with_user = OpenApiRouter::new()
            .routes(routes!(authorize))
            .routes(routes!(completion::complete))
            .layer(from_fn_with_state(app, require_user))
            .with_state(self.clone());
        OpenApiRouter::new()
            .routes(routes!(begin::begin))
            .routes(routes!(callback::callback))
            .with_state(self)
            .merge(with_user)
            .split_for_parts()
    }

    fn remember(&self, state: &str, user: &UserId, server: &ServerName) {
        self.completed
            .insert(state.to_owned(), (user.clone(), server.clone()));
    }

    fn completed(&self, state: &str) -> Option<(UserId, ServerName)> {
        self.completed.get(state)
    }

    /// A fresh authorization wipes the pair's failures and breaker, then connects now.
    async fn connect_authorized(&self, user: &UserId, server: &ServerName) -> AttemptOutcome {
        self.manager.authorized(user, server).await;
        self.manager
            .reconnect_server_outcome(user, server)
            .await
            .unwrap_or(AttemptOutcome::Cancelled)
    }
}

/// The flow-store key of a completion code: its digest, so a store dump does not hold codes.
fn completion_key(completion_code: &str) -> String {
    format!("completion:{}", binding::digest(completion_code))
}

/// The one error shape of these routes: `{"error": code, "message": text}`.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

fn oauth_status(error: &OAuthError) -> StatusCode {
    match error {
        OAuthError::Transient(_) | OAuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::UnknownState => StatusCode::BAD_REQUEST,
        OAuthError::NeedsAuthorization(_) | OAuthError::Refused(_) | OAuthError::Protocol(_) => {
            StatusCode::BAD_GATEWAY
        }
    }
}

fn oauth_code(error: &OAuthError) -> &'static str {
    match error {
        OAuthError::Transient(_) | OAuthError::Store(_) => "unavailable",
        OAuthError::UnknownState => "unknown_state",
        OAuthError::NeedsAuthorization(_) => "authorization_failed",
        OAuthError::Refused(_) => "refused_endpoint",
        OAuthError::Protocol(_) => "oauth_protocol_error",
    }
}

/// Starts an authorization of the user at the server: the link to send their browser to.
#[utoipa::path(post, path = "/v1/me/servers/{name}/authorize", tag = "oauth", security(("host_jwt" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 200, description = "`{authorization_url}`: Tether's /oauth/begin link", body = serde_json::Value),
        (status = 401, description = "No acceptable host token", body = tether::gateway::api::ErrorBody),
        (status = 404, description = "No such server for this user", body = tether::gateway::api::ErrorBody),
        (status = 409, description = "The server needs no authorization", body = tether::gateway::api::ErrorBody),
        (status = 429, description = "Too many authorizations started (Retry-After)", body = tether::gateway::api::ErrorBody),
    ))]
async fn authorize(
    State(routes): State<Arc<OAuthRoutes>>,
    AuthUser(user): AuthUser,
    AuthAccess(access): AuthAccess,
    Path(name): Path<String>,
) -> Response {
    if !access.permits(&ServerName::new(&name)) {
        return json_error(StatusCode::NOT_FOUND, "unknown_server", "no such server");
    }
    if let Err(wait) = routes.authorize_rate.check(&user) {
        let seconds = wait.as_secs().max(1);
        let mut response = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("too many authorizations started; retry in {seconds} s"),
        );
        if let Ok(value) = seconds.to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    match routes.flows.start(&user, &ServerName::new(&name)).await {
        Ok(url) => Json(json!({ "authorization_url": url })).into_response(),
        Err((status, code, message)) => json_error(status, code, &message),
    }
}
