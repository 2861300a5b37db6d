//! Tools as the agent sees them: every server's tools under aggregated names (stubs included
//! while a server is down), and the core's call result in rmcp's shape.

use futures::future::join_all;
use rmcp::model::{CallToolResult, Tool};
use serde_json::Value;
use tether_core::{ConnectionState, ListedTool, ServerName, ToolResult};

use super::AggregatedServer;
use crate::gateway::mcp::caller::Caller;

impl AggregatedServer {
    /// The user's tools, after connecting (once, concurrently, through the core's limits) the
    /// servers that have never been connected for the user: with neither a live session nor a
    /// cached list they would otherwise be missing from the model's view altogether. Servers in
    /// any other state (failed, circuit open, needs authorization) are not retried here.
    pub(super) async fn tools_of(&self, user: &Caller) -> Vec<ListedTool> {
        let manager = self.app.manager();
        let listed = manager.list_tools(user).await;
        let mut never_connected: Vec<ServerName> = Vec::new();
        for server in manager.servers().filter(|s| user.access.permits(&s.name)) {
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

    /// Connects (once, concurrently, through the core's limits) the user's servers that have
    /// no session and are in no state that says to wait: resources and prompts are listed from
    /// live sessions only.
    pub(super) async fn connect_never_connected(&self, user: &Caller) {
        let manager = self.app.manager();
        let mut idle: Vec<ServerName> = Vec::new();
        for server in manager.servers().filter(|s| user.access.permits(&s.name)) {
            if manager.state(user, &server.name).await == ConnectionState::Disconnected {
                idle.push(server.name.clone());
            }
        }
        join_all(
            idle.iter()
                .map(|server| manager.reconnect_server_outcome(user, server)),
        )
        .await;
    }

    pub(super) fn to_rmcp_tool(&self, user: &Caller, listed: &ListedTool) -> Option<Tool> {
        let naming = self.app.naming();
        let servers = self.app.manager().server_list();
        let names = user.sees(&servers);
        if !naming.round_trips(&listed.server, &listed.tool.name, names) {
            // The unprefixed server's tool would be read as another server's.
            tracing::debug!(server = %listed.server, tool = %listed.tool.name, "tool name claimed by another server's prefix; not listed");
            return None;
        }
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

/// The core's result as rmcp's, moving its JSON values rather than serializing the whole result
/// into a fresh tree first (what `to_value(&result)` would do): the content blocks are already
/// `Value`s, and they can be large.
pub(super) fn to_rmcp_result(result: ToolResult) -> Result<CallToolResult, serde_json::Error> {
    let ToolResult {
        content,
        structured_content,
        is_error,
        extra,
    } = result;
    // The core's own fields win over same-named leftovers, as in its serialized form.
    let mut object = extra;
    super::surface::without_protocol_meta(&mut object);
    object.insert("content".to_owned(), Value::Array(content));
    if let Some(structured) = structured_content {
        object.insert("structuredContent".to_owned(), structured);
    }
    if is_error {
        object.insert("isError".to_owned(), Value::Bool(true));
    }
    // Required by 2026-07-28; rmcp drops it for agents of earlier revisions.
    object.insert(
        "resultType".to_owned(),
        Value::String("complete".to_owned()),
    );
    serde_json::from_value(Value::Object(object))
}
