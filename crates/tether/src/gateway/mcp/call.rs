//! One `tools/call` of a user, whichever way it arrived (rmcp's session worker or the
//! [direct](super::direct) path): the aggregated name resolved to a server and its tool, the
//! tool policy, the call through the core, and the call metrics.

use std::time::Instant;

use serde_json::{Map, Value};
use tether_core::{CallContext, ToolResult};

use super::caller::Caller;
use crate::gateway::metrics::CallOutcome;
use crate::gateway::state::AppState;

/// Client-supplied names are quoted in errors only up to this length.
const MAX_QUOTED_NAME: usize = 128;

/// A call that was not made: no configured server has the tool, or the policy hides it. The
/// caller's mistake, answered as a JSON-RPC "invalid params" error with [`Self::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownTool(String);

impl UnknownTool {
    fn new(name: &str) -> Self {
        Self(name.chars().take(MAX_QUOTED_NAME).collect())
    }

    pub(crate) fn message(&self) -> String {
        format!("unknown tool {:?}", self.0)
    }
}

/// Calls the aggregated tool `name` for `user`. Upstream failures are answers (stubs with
/// `isError`), not errors: the model is told why and when to retry. A server the user may not
/// use is as unknown as one that does not exist.
pub(crate) async fn call_tool(
    app: &AppState,
    user: &Caller,
    name: &str,
    arguments: Option<Map<String, Value>>,
    context: &CallContext,
) -> Result<ToolResult, UnknownTool> {
    let manager = app.manager();
    let servers = manager.server_list();
    let (server, tool) = app
        .naming()
        .split(name, user.sees(&servers))
        .ok_or_else(|| UnknownTool::new(name))?;
    if !user.access.permits(&server) || !app.policy().permits(&server, tool) {
        return Err(UnknownTool::new(name));
    }
    // A tool the server is known not to have is the caller's mistake; with nothing known yet
    // (never connected) the upstream decides. Only that server's list is looked at, in place:
    // this runs on every call.
    if manager.lists_tool(user, &server, tool).await == Some(false) {
        return Err(UnknownTool::new(name));
    }
    let started = Instant::now();
    let result = manager
        .call_tool_in(user, &server, tool, arguments, context)
        .await
        .map_err(|_| UnknownTool::new(name))?;
    let outcome = if result.is_error {
        CallOutcome::Error
    } else {
        CallOutcome::Ok
    };
    let elapsed = started.elapsed();
    app.metrics().tool_call(&server, outcome, elapsed);
    tracing::info!(
        %user,
        %server,
        tool,
        outcome = outcome.as_str(),
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "tool call"
    );
    Ok(result)
}
