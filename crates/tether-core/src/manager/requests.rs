//! The rest of the MCP surface (resources, prompts, completion, logging) under the same rules
//! as `tools/call`: a pair that is not connected is connected on demand when nothing says to
//! wait, a lost session is re-initialized once, a failed transport hands the pair to the
//! reconnect loop, and a server that is down answers at once with an error that names it and
//! says when it will be retried, never a hang.

use std::sync::Arc;

use serde_json::Value;

use super::Inner;
use super::attempt::{AttemptKind, AttemptOutcome};
use crate::config::ServerConfig;
use crate::connector::{ConnectError, Session};
use crate::downstream::CallContext;
use crate::ids::PairKey;
use crate::redact::redact;
use crate::state::ConnectionState;
use crate::stub::unavailable_reason;

/// Why a request other than `tools/call` got no upstream result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The server cannot be asked now; the message names it and says why and when to retry.
    #[error("{message}")]
    Unavailable { message: String },
    /// The server answered with a JSON-RPC error, passed on as it is.
    #[error("{message}")]
    Refused { code: i32, message: String },
}

impl Inner {
    pub(crate) async fn request(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        method: &str,
        params: Option<Value>,
        context: &CallContext,
    ) -> Result<Value, RequestError> {
        let Some(session) = self.session_for_request(pair, server).await else {
            return Err(self.unavailable(pair).await);
        };
        self.sessions.touch(pair, self.clock.now());
        match session.request(method, params.clone(), context).await {
            Ok(value) => Ok(value),
            Err(ConnectError::SessionLost) => {
                let now = self.clock.now();
                let state = ConnectionState::Reconnecting { retry_at: None };
                if let Some(old) = self.sessions.detach(pair, state, now) {
                    old.close().await;
                }
                tracing::info!(%pair, "upstream lost the session; initializing a new one");
                if self
                    .attempt(pair, server, AttemptKind::Recovery { last: true })
                    .await
                    == AttemptOutcome::Connected
                    && let Some(session) = self.sessions.open_session(pair)
                {
                    return match session.request(method, params, context).await {
                        Ok(value) => Ok(value),
                        Err(error) => Err(self.request_failed(pair, server, session, error).await),
                    };
                }
                Err(self.unavailable(pair).await)
            }
            Err(error) => Err(self.request_failed(pair, server, session, error).await),
        }
    }

    /// Whether the pair's open session declared `capability`; `None` without an open session.
    pub(crate) fn offers(&self, pair: &PairKey, capability: &str) -> Option<bool> {
        self.sessions
            .open_session(pair)
            .map(|session| session.offers(capability))
    }

    async fn session_for_request(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
    ) -> Option<Arc<dyn Session>> {
        if let Some(session) = self.sessions.open_session(pair) {
            return Some(session);
        }
        if self.may_connect_on_demand(pair).await
            && self.attempt(pair, server, AttemptKind::Scheduled).await == AttemptOutcome::Connected
        {
            return self.sessions.open_session(pair);
        }
        None
    }

    async fn request_failed(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        session: Arc<dyn Session>,
        error: ConnectError,
    ) -> RequestError {
        match error {
            // The server's own text, redacted as in the stubs (it may quote what it was sent).
            ConnectError::Refused { code, message } => RequestError::Refused {
                code,
                message: redact(&message),
            },
            ConnectError::RateLimited { .. }
            | ConnectError::Protocol(_)
            | ConnectError::Unavailable(_) => RequestError::Unavailable {
                message: format!(
                    "The \"{}\" server could not answer: {}. Retry in a moment.",
                    server.name,
                    redact(&error.to_string())
                ),
            },
            ConnectError::NeedsAuthorization { .. }
            | ConnectError::Transport { .. }
            | ConnectError::SessionLost => {
                self.session_failed(pair, server, session, error).await;
                self.unavailable(pair).await
            }
        }
    }

    async fn unavailable(&self, pair: &PairKey) -> RequestError {
        let state = self.state_for_user(pair).await;
        RequestError::Unavailable {
            message: format!(
                "The \"{}\" server is temporarily unavailable: {}",
                pair.server,
                unavailable_reason(&pair.server, &state, self.clock.now())
            ),
        }
    }
}
