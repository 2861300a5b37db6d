//! The MCP server the host's agents talk to: one `tools/list` over all of the user's servers
//! (stubs included) and `tools/call` routed to the right upstream through the core.
//!
//! The user is taken from each request (the JWT middleware put a `UserId` into the HTTP request
//! extensions, which rmcp hands over as `http::request::Parts` in the request context), never
//! from the session alone; a session is additionally bound to the user who initialized it.

use std::sync::{Arc, OnceLock};

use axum::http::request::Parts;
use futures::future::join_all;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use tether_core::{ConnectionState, ListedTool, ServerName, ToolResult, UserId};

use crate::gateway::state::AppState;

#[derive(Debug, Clone)]
pub(crate) struct AggregatedServer {
    app: AppState,
    /// The user who initialized this session (rmcp builds one handler per session).
    bound: Arc<OnceLock<UserId>>,
}

impl AggregatedServer {
    pub(crate) fn new(app: AppState) -> Self {
        Self {
            app,
            bound: Arc::new(OnceLock::new()),
        }
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

    /// The user's tools, after connecting (once, concurrently, through the core's limits) the
    /// servers that have never been connected for the user: with neither a live session nor a
    /// cached list they would otherwise be missing from the model's view altogether. Servers in
    /// any other state (failed, circuit open, needs authorization) are not retried here.
    async fn tools_of(&self, user: &UserId) -> Vec<ListedTool> {
        let manager = self.app.manager();
        let listed = manager.list_tools(user).await;
        let mut never_connected: Vec<ServerName> = Vec::new();
        for server in manager.servers() {
            if listed.iter().any(|t| t.server == server.name) {
                continue;
            }
            if manager.state(user, &server.name).await == ConnectionState::Disconnected {
                never_connected.push(server.name.clone());
            }
        }
        if never_connected.is_empty() {
            return listed;
        }
        join_all(
            never_connected
                .iter()
                .map(|server| manager.reconnect_server_outcome(user, server)),
        )
        .await;
        manager.list_tools(user).await
    }

    fn to_rmcp_tool(&self, listed: &ListedTool) -> Option<Tool> {
        let mut json = serde_json::to_value(&listed.tool).ok()?;
        let name = self.app.naming().join(&listed.server, &listed.tool.name);
        if let Some(object) = json.as_object_mut() {
            object.insert("name".to_owned(), Value::String(name));
        }
        match serde_json::from_value(json) {
            Ok(tool) => Some(tool),
            Err(error) => {
                // Skip one odd tool rather than failing the whole list.
                tracing::warn!(server = %listed.server, error = ?error.classify(), "tool not listable");
                None
            }
        }
    }
}

impl ServerHandler for AggregatedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tether", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of your connected MCP servers, named {server}{separator}{tool}. A tool \
                 whose server is unavailable answers with an error saying why and when to retry.",
            )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let user = self.user(&context)?;
        // First initialize binds; rmcp allows one initialize per session anyway.
        let _ = self.bound.set(user);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let user = self.user(&context)?;
        let policy = self.app.policy();
        let tools = self
            .tools_of(&user)
            .await
            .iter()
            .filter(|t| policy.permits(&t.server, &t.tool.name))
            .filter_map(|t| self.to_rmcp_tool(t))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let user = self.user(&context)?;
        let call = super::call::call_tool(&self.app, &user, &request.name, request.arguments);
        let result = tokio::select! {
            result = call => result,
            () = context.ct.cancelled() => {
                return Err(McpError::invalid_request("the call was cancelled", None));
            }
        };
        let result = result.map_err(|unknown| McpError::invalid_params(unknown.message(), None))?;
        let converted = to_rmcp_result(result).map_err(|_| {
            McpError::internal_error("the upstream result could not be converted", None)
        })?;
        Ok(CallToolResponse::Complete(converted))
    }
}

/// The core's result as rmcp's, moving its JSON values rather than serializing the whole result
/// into a fresh tree first (what `to_value(&result)` would do): the content blocks are already
/// `Value`s, and they can be large.
fn to_rmcp_result(result: ToolResult) -> Result<CallToolResult, serde_json::Error> {
    let ToolResult {
        content,
        structured_content,
        is_error,
        extra,
    } = result;
    // The core's own fields win over same-named leftovers, as in its serialized form.
    let mut object = extra;
    object.insert("content".to_owned(), Value::Array(content));
    if let Some(structured) = structured_content {
        object.insert("structuredContent".to_owned(), structured);
    }
    if is_error {
        object.insert("isError".to_owned(), Value::Bool(true));
    }
    serde_json::from_value(Value::Object(object))
}
