//! The MCP server the host's agents talk to: one `tools/list` over all of the user's servers
//! (stubs included) and `tools/call` routed to the right upstream through the core; resources,
//! templates, prompts, completion and logging federated the same way (one module each).
//!
//! The user is taken from each request (the JWT middleware put a `UserId` into the HTTP request
//! extensions, which rmcp hands over as `http::request::Parts` in the request context), never
//! from the session alone; a session is additionally bound to the user who initialized it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig,
};
// Logging is deprecated by SEP-2577 (2026-07-28) but still spoken by earlier revisions.
#[allow(deprecated)]
use rmcp::model::{SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use tether_core::{AgentInput, ServerName, UserId};

use super::caller::Caller;
use crate::gateway::ServerAccess;
use crate::gateway::state::AppState;

mod changes;
mod completion;
mod elicitation;
mod logging;
mod prompts;
pub(crate) mod questions;
mod relay;
mod resources;
pub(crate) mod surface;
mod tools;
mod uris;

use tools::to_rmcp_result;

#[derive(Debug, Clone)]
pub(crate) struct AggregatedServer {
    app: AppState,
    /// The user who initialized this session (rmcp builds one handler per session).
    bound: Arc<OnceLock<UserId>>,
    /// Resources this session subscribed to, by their aggregated URIs.
    subscriptions: Arc<Mutex<HashSet<String>>>,
    /// URL elicitations handed out for servers that need an authorization, by server: the
    /// agent is told `notifications/elicitation/complete` once the server connects.
    authorizations: Arc<Mutex<HashMap<ServerName, String>>>,
    /// rmcp's id of this session, known from the agent's `notifications/initialized` on.
    session: Arc<OnceLock<String>>,
}

impl AggregatedServer {
    pub(crate) fn new(app: AppState) -> Self {
        Self {
            app,
            bound: Arc::new(OnceLock::new()),
            subscriptions: Arc::default(),
            authorizations: Arc::default(),
            session: Arc::default(),
        }
    }

    /// The level this session's agent set, below which its servers' messages are dropped.
    #[allow(
        deprecated,
        reason = "logging (SEP-2577) is still spoken by earlier revisions"
    )]
    fn log_threshold(&self) -> Option<rmcp::model::LoggingLevel> {
        let session = self.session.get()?;
        self.app.session_owners().log_level(session)
    }

    /// The request's user and the servers they may use (their token's groups).
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
        let user = self.user(context)?;
        let access = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<ServerAccess>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("the request is not authenticated", None))?;
        Ok(Caller { access, user })
    }

    fn user(&self, context: &RequestContext<RoleServer>) -> Result<UserId, McpError> {
        let user = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<UserId>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("the request is not authenticated", None))?;
        // The session middleware already refuses foreign session ids; this is the second
        // lock on the same door, in case a request reaches a session another way.
        if let Some(bound) = self.bound.get()
            && bound != &user
        {
            tracing::warn!(%user, "MCP session used by a user who did not initialize it");
            return Err(McpError::invalid_request("session not found", None));
        }
        Ok(user)
    }
}

impl ServerHandler for AggregatedServer {
    #[allow(
        deprecated,
        reason = "logging is still offered to agents of earlier revisions"
    )]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_completions()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("tether", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Tools, prompts and resources of your connected MCP servers. Tools and prompts \
                 are named {server}{separator}{name} unless a server is configured with another \
                 prefix; resource URIs are tether://{server}/{the server's URI}. A tool whose \
                 server is unavailable answers with an error saying why and when to retry.",
        )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let user = self.caller(&context)?;
        // First initialize binds; rmcp allows one initialize per session anyway.
        let _ = self.bound.set(user.user);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Some(id) = session_of(&context.extensions) {
            let _ = self.session.set(id);
        }
        self.follow_list_changes(&context);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let user = self.caller(&context)?;
        let policy = self.app.policy();
        let tools = self
            .tools_of(&user)
            .await
            .iter()
            .filter(|t| user.access.permits(&t.server) && policy.permits(&t.server, &t.tool.name))
            .filter_map(|t| self.to_rmcp_tool(&user, t))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let user = self.caller(&context)?;
        let (call_context, messages) = relay::call_context(&context, self.log_threshold());
        if call_context.input.is_some() {
            return self
                .call_for_2026_agent(user, request, call_context, messages, context)
                .await;
        }
        let call = super::call::call_tool(
            &self.app,
            &user,
            &request.name,
            request.arguments,
            &call_context,
        );
        // A cancelled call is dropped, which cancels its upstream request.
        let work = async {
            tokio::select! {
                result = call => Some(result),
                () = context.ct.cancelled() => None,
            }
        };
        let Some(result) = relay::relay(work, messages, &context).await else {
            return Err(McpError::invalid_request("the call was cancelled", None));
        };
        self.answer_call(&user, &request.name, result, &context)
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let user = self.caller(&context)?;
        self.resources(&user, cursor(request.as_ref())).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let user = self.caller(&context)?;
        self.resource_templates(&user, cursor(request.as_ref()))
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let user = self.caller(&context)?;
        let (call, messages) = relay::call_context(&context, self.log_threshold());
        relay::relay(self.read(&user, request, &call), messages, &context).await
    }

    #[allow(
        deprecated,
        reason = "subscriptions of the revisions before 2026-07-28"
    )]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let user = self.caller(&context)?;
        self.subscribe_to(&user, &request.uri, true).await
    }

    #[allow(
        deprecated,
        reason = "subscriptions of the revisions before 2026-07-28"
    )]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let user = self.caller(&context)?;
        self.subscribe_to(&user, &request.uri, false).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let user = self.caller(&context)?;
        self.prompts(&user, cursor(request.as_ref())).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let user = self.caller(&context)?;
        let (call, messages) = relay::call_context(&context, self.log_threshold());
        relay::relay(self.prompt(&user, request, &call), messages, &context).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let user = self.caller(&context)?;
        self.completion(&user, request).await
    }

    #[allow(
        deprecated,
        reason = "logging is still offered to agents of earlier revisions"
    )]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let user = self.caller(&context)?;
        let owners = self.app.session_owners();
        let upstream_level = session_of(&context.extensions)
            .and_then(|session| owners.set_log_level(&session, request.level))
            .unwrap_or(request.level);
        self.set_upstream_level(&user, upstream_level).await
    }
}

/// The `Mcp-Session-Id` of the HTTP request a message came in.
fn session_of(extensions: &rmcp::model::Extensions) -> Option<String> {
    extensions
        .get::<Parts>()?
        .headers
        .get(crate::gateway::mcp::SESSION_HEADER)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// `resources/read` for the direct path, which answers without a session's handler: the result
/// as JSON, with the agent's URIs, asked through the core like every request.
pub(crate) async fn read_resource_json(
    app: &AppState,
    user: &Caller,
    request: ReadResourceRequestParams,
    call: &tether_core::CallContext,
) -> Result<Value, McpError> {
    AggregatedServer::new(app.clone())
        .read_json(user, request, call)
        .await
}

fn cursor(request: Option<&PaginatedRequestParams>) -> Option<&str> {
    request.and_then(|r| r.cursor.as_deref())
}

impl AggregatedServer {
    /// A call of an agent of 2026-07-28, which answers questions by retrying (SEP-2322): an
    /// upstream's own input-required result passes through, and a question an upstream of
    /// the session revisions sends during the call parks the call until the retry answers it.
    async fn call_for_2026_agent(
        &self,
        user: Caller,
        request: CallToolRequestParams,
        mut call_context: tether_core::CallContext,
        messages: tokio::sync::mpsc::Receiver<relay::ToAgent>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let questions = self.app.parked_calls();
        let step = match request.request_state.as_deref() {
            Some(state) if questions::is_ours(state) => {
                let responses = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| serde_json::to_value(r).ok());
                questions.resume(&user, state, responses, &context).await?
            }
            _ => {
                // The agent's retry for an upstream that asked by result: its answers go there.
                call_context.input = Some(AgentInput {
                    responses: request
                        .input_responses
                        .as_ref()
                        .and_then(|r| serde_json::to_value(r).ok()),
                    request_state: request.request_state.clone(),
                });
                let (app, who, name) = (self.app.clone(), user.clone(), request.name.to_string());
                let arguments = request.arguments.clone();
                // Its own task: a call whose upstream asks something outlives this request.
                let task = tokio::spawn(async move {
                    super::call::call_tool(&app, &who, &name, arguments, &call_context).await
                });
                let driven = questions.drive(&user, task, messages, &context);
                tokio::select! {
                    step = driven => step,
                    () = context.ct.cancelled() => {
                        return Err(McpError::invalid_request("the call was cancelled", None));
                    }
                }
            }
        };
        match step {
            questions::Step::Asks(asked) => Ok(CallToolResponse::InputRequired(asked)),
            questions::Step::Done(result) => {
                self.answer_call(&user, &request.name, result, &context)
                    .await
            }
        }
    }

    /// A finished call as the agent gets it.
    async fn answer_call(
        &self,
        user: &Caller,
        name: &str,
        result: Result<tether_core::ToolResult, super::call::UnknownTool>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let result = result.map_err(|unknown| McpError::invalid_params(unknown.message(), None))?;
        if surface::is_input_required(&result.extra) {
            return Ok(CallToolResponse::InputRequired(surface::questions(
                result.extra,
            )?));
        }
        if result.is_error
            && let Some(error) = self.authorization_elicitation(user, name, context).await
        {
            return Err(error);
        }
        let converted = to_rmcp_result(result).map_err(|_| {
            McpError::internal_error("the upstream result could not be converted", None)
        })?;
        Ok(CallToolResponse::Complete(converted))
    }
}
