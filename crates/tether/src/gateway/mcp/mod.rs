//! The per-user aggregated MCP endpoint, `/mcp`, over Streamable HTTP (POST, GET, DELETE).
//!
//! Owns the rmcp server (`StreamableHttpService` with a `LocalSessionManager` and the
//! [`handler`]), aggregated tool naming, the per-server tool filters, the body checks in front
//! of rmcp, the binding of MCP sessions to the user who created them, and the direct path that
//! answers plain `tools/call`s without rmcp's session worker (and a 2026-07-28 agent's plain
//! calls without rmcp's stateless road). Requests reach it only
//! through the host-JWT middleware.

mod call;
mod caller;
mod direct;
mod direct_calls;
mod direct_dispatch;
mod direct_modern;
mod direct_read;
mod direct_stream;
mod endpoint;
mod filter;
pub(crate) mod handler;
mod json_chunks;
mod jsonrpc;
mod log_threshold;
mod names;
mod origin;
mod sessions;

use std::sync::Arc;

use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub(crate) use endpoint::{MCP_PATH, McpEndpoint};
pub use filter::{ToolFilter, ToolPolicy};
pub use names::{ToolNaming, check_prefixes};
pub use origin::HostGuard;
pub use sessions::{SESSION_HEADER, SessionOwners};

use crate::gateway::config::McpConfig;
use crate::gateway::state::AppState;

/// rmcp's session manager, configured from `[gateway.mcp]`.
pub(crate) fn session_manager(config: &McpConfig) -> Arc<LocalSessionManager> {
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(config.session_idle_timeout);
    Arc::new(manager)
}

/// The `/mcp` endpoint and the router that serves it. `cancel` ends every MCP session and
/// stream (graceful shutdown: open SSE streams would otherwise keep the server from ever
/// finishing).
pub(crate) fn router(
    app: AppState,
    sessions: Arc<LocalSessionManager>,
    cancel: CancellationToken,
    hosts: Arc<HostGuard>,
) -> (Router, Arc<McpEndpoint>) {
    let config = app.mcp_config();
    let mut server_config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_cancellation_token(cancel);
    // Hosts and origins are checked in front of every route (`origin::guard_origin`), the
    // direct path included, which rmcp's own check would not see.
    server_config = server_config.disable_allowed_hosts();
    let handler_app = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(handler::AggregatedServer::new(handler_app.clone())),
        sessions,
        server_config,
    );
    let endpoint = Arc::new(McpEndpoint::new(app, hosts, service));
    let router = Router::new().route_service(MCP_PATH, endpoint::McpRoute(endpoint.clone()));
    (router, endpoint)
}
