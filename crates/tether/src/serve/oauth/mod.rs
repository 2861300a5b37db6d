//! The two OAuth routes of the gateway: `POST /v1/me/servers/{name}/authorize` (host JWT) starts
//! a flow and answers the URL to send the user to; `GET /oauth/callback` (the user's browser)
//! completes it, resets the pair's failure state and breaker, connects, caches the tools, then
//! redirects to the configured return URL or shows a small page.
//!
//! The callback is idempotent: a repeated callback for a flow that completed here answers as the
//! first did (browsers retry, users reload — LibreChat #15876). A forged, replayed-elsewhere or
//! expired `state` gets a 400 page and changes nothing.

mod callback;
mod page;
mod starter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tether::gateway::AppState;
use tether::gateway::auth::{AuthUser, require_user};
use tether_core::{ReconnectionManager, ServerName, UserId};
use tether_oauth::OAuthError;

pub use starter::FlowStarter;

/// How long a completed flow's callback is answered again, and how many are remembered.
const COMPLETED_TTL: Duration = Duration::from_secs(600);
const COMPLETED_MAX: usize = 10_000;

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
            .route("/oauth/callback", get(callback::callback))
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
