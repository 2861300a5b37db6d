//! Tools as the host's model sees them: listed from live sessions or, while a server is down,
//! from the last good list; calls routed upstream or answered by a stub that says why.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Inner;
use super::attempt::{AttemptKind, AttemptOutcome};
use crate::config::ServerConfig;
use crate::connector::{ConnectError, Session};
use crate::downstream::CallContext;
use crate::ids::{PairKey, ServerName};
use crate::redact::redact;
use crate::state::ConnectionState;
use crate::stub::unavailable_result;
use crate::tool::{Tool, ToolResult};

/// A tool of one of the user's servers.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedTool {
    pub server: ServerName,
    pub tool: Tool,
    /// False for a stub: listed from the cache while the server is unavailable.
    pub available: bool,
}

impl Inner {
    pub(crate) async fn list_tools(&self, user: &crate::ids::UserId) -> Vec<ListedTool> {
        let mut listed = Vec::new();
        let registry = self.registry();
        for server in registry.iter() {
            let pair = PairKey::new(user.clone(), server.name.clone());
            if let Some(tools) = self.sessions.live_tools(&pair) {
                listed.extend(tools.iter().map(|tool| ListedTool {
                    server: server.name.clone(),
                    tool: tool.clone(),
                    available: true,
                }));
                continue;
            }
            match self.tool_cache.load(&pair).await {
                Ok(Some(cached)) => {
                    listed.extend(cached.tools.iter().cloned().map(|tool| ListedTool {
                        server: server.name.clone(),
                        tool,
                        available: false,
                    }))
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%pair, %error, "tool cache unavailable"),
            }
        }
        listed
    }

    /// Whether the pair's known list (live, else cached) has `tool`, looking at that one list
    /// in place; `None` when no list is known or it is empty.
    pub(crate) async fn lists_tool(&self, pair: &PairKey, tool: &str) -> Option<bool> {
        let tools = match self.sessions.live_tools(pair) {
            Some(tools) => tools,
            None => match self.tool_cache.load(pair).await {
                Ok(Some(cached)) => cached.tools,
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(%pair, %error, "tool cache unavailable");
                    return None;
                }
            },
        };
        (!tools.is_empty()).then(|| tools.iter().any(|t| t.name == tool))
    }

    pub(crate) async fn call_tool(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> ToolResult {
        if let Some(session) = self.sessions.open_session(pair) {
            self.sessions.touch(pair, self.clock.now());
            return match session.call_tool_in(tool, arguments.clone(), context).await {
                Ok(result) => result,
                Err(error) => {
                    self.after_call_failure(pair, server, session, tool, arguments, context, error)
                        .await
                }
            };
        }
        if self.may_connect_on_demand(pair).await
            && self.attempt(pair, server, AttemptKind::Scheduled).await == AttemptOutcome::Connected
            && let Some(result) = self.call_once(pair, server, tool, arguments, context).await
        {
            return result;
        }
        self.stub(pair, tool).await
    }

    /// One call on the pair's session, right after (re)connecting: failures are answered,
    /// never retried. `None` when there is no open session after all.
    async fn call_once(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> Option<ToolResult> {
        let session = self.sessions.open_session(pair)?;
        Some(match session.call_tool_in(tool, arguments, context).await {
            Ok(result) => result,
            Err(error) => {
                self.call_error_result(pair, server, session, tool, error)
                    .await
            }
        })
    }

    /// A lost session is re-initialized and the call retried once; any other failure is
    /// answered at once and, for transport failures, the reconnect loop takes over.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call's parts, passed on as they are"
    )]
    async fn after_call_failure(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        session: Arc<dyn Session>,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
        error: ConnectError,
    ) -> ToolResult {
        if error != ConnectError::SessionLost {
            return self
                .call_error_result(pair, server, session, tool, error)
                .await;
        }
        let now = self.clock.now();
        if let Some(old) =
            self.sessions
                .detach(pair, ConnectionState::Reconnecting { retry_at: None }, now)
        {
            old.close().await;
        }
        tracing::info!(%pair, "upstream lost the session; initializing a new one");
        if self
            .attempt(pair, server, AttemptKind::Recovery { last: true })
            .await
            == AttemptOutcome::Connected
            && let Some(result) = self.call_once(pair, server, tool, arguments, context).await
        {
            return result;
        }
        self.stub(pair, tool).await
    }

    async fn call_error_result(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        session: Arc<dyn Session>,
        tool: &str,
        error: ConnectError,
    ) -> ToolResult {
        match error {
            ConnectError::RateLimited { .. }
            | ConnectError::Protocol(_)
            | ConnectError::Refused { .. } => {
                // The session is fine; the upstream refused this one call.
                ToolResult::error_text(format!(
                    "The \"{}\" server refused the call to \"{tool}\": {}",
                    server.name,
                    redact(&error.to_string())
                ))
            }
            ConnectError::Unavailable(_) => {
                // The session is fine and the upstream was not asked: only this call failed.
                ToolResult::error_text(format!(
                    "The call to \"{tool}\" of the \"{}\" server could not be made: {}. Retry in a moment.",
                    server.name,
                    redact(&error.to_string())
                ))
            }
            ConnectError::NeedsAuthorization { .. }
            | ConnectError::Transport { .. }
            | ConnectError::SessionLost => {
                self.session_failed(pair, server, session, error).await;
                self.stub(pair, tool).await
            }
        }
    }

    /// The session can no longer serve the pair: it needs a new authorization (the connector
    /// already tried its one refresh, the user must act), or its transport failed and the
    /// reconnect loop takes over. Other errors leave the session as it is.
    pub(crate) async fn session_failed(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        session: Arc<dyn Session>,
        error: ConnectError,
    ) {
        let now = self.clock.now();
        match error {
            ConnectError::NeedsAuthorization {
                authorization_url,
                scope,
            } => {
                let state = ConnectionState::NeedsAuthorization {
                    authorization_url,
                    scope,
                };
                if let Some(old) = self.sessions.detach(pair, state, now) {
                    old.close().await;
                }
                self.log_store(
                    self.tracker
                        .record_failure(pair, "authorization is needed")
                        .await,
                    pair,
                );
            }
            ConnectError::Transport { .. } | ConnectError::SessionLost => {
                let state = ConnectionState::Reconnecting { retry_at: None };
                if let Some(old) = self.sessions.detach(pair, state, now) {
                    old.close().await;
                }
                drop(session);
                self.start_recovery(pair, server);
                // Let the loop publish its first retry time before a stub reads it.
                tokio::task::yield_now().await;
            }
            ConnectError::RateLimited { .. }
            | ConnectError::Protocol(_)
            | ConnectError::Refused { .. }
            | ConnectError::Unavailable(_) => {}
        }
    }

    /// A pair that is not connected is connected on the spot only when nothing says to wait:
    /// not needing authorization, not in its failed cooldown, not reconnecting elsewhere.
    pub(crate) async fn may_connect_on_demand(&self, pair: &PairKey) -> bool {
        if self.attempts.is_running(pair) {
            return true;
        }
        if let Some(view) = self.sessions.view(pair)
            && matches!(
                view.state,
                ConnectionState::NeedsAuthorization { .. } | ConnectionState::Reconnecting { .. }
            )
        {
            return false;
        }
        matches!(self.tracker.cooldown_until(pair).await, Ok(None))
            && matches!(self.tracker.is_active(pair).await, Ok(false))
    }

    async fn stub(&self, pair: &PairKey, tool: &str) -> ToolResult {
        let state = self.state_for_user(pair).await;
        unavailable_result(&pair.server, tool, &state, self.clock.now())
    }

    /// The pair's state as the user is told it: with an authorization link where one is due.
    pub(crate) async fn state_for_user(&self, pair: &PairKey) -> ConnectionState {
        let (mut state, _) = self.state_of(pair).await;
        if let ConnectionState::NeedsAuthorization {
            authorization_url: url @ None,
            ..
        } = &mut state
            && let Some(links) = &self.links
        {
            *url = links.authorization_url(pair).await;
        }
        state
    }
}
