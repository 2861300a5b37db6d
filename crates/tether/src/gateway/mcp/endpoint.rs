//! `/mcp` as one service: [`McpEndpoint::handle`] runs every check in front of rmcp, in order
//! (Host and Origin, authenticate, the session's owner, then the body, which the direct path
//! may answer), then rmcp's Streamable HTTP service.
//!
//! Plain async functions nested in one another, not axum layers: each layer boxes the
//! request's future and clones the inner service on every request. The endpoint is served
//! twice over from one value: as the router's `/mcp` route ([`McpRoute`]) and by the listener
//! straight from the connection, past the router (`gateway::dispatch`).
//!
//! rmcp's service is held once behind the endpoint's `Arc`: cloning it copies its
//! configuration, whose cancellation token takes a lock shared by every request on both the
//! clone and the drop (the drop alone was 0.8 % of the gateway's CPU per tool call at
//! concurrency 16), spent even on the calls the direct path answers without rmcp.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::handler::AggregatedServer;
use super::origin::{self, HostGuard};
use super::{jsonrpc, sessions};
use crate::gateway::auth::authenticated;
use crate::gateway::state::AppState;

/// The path the endpoint answers on.
pub(crate) const MCP_PATH: &str = "/mcp";

pub(crate) struct McpEndpoint {
    app: AppState,
    hosts: Arc<HostGuard>,
    rmcp: StreamableHttpService<AggregatedServer, LocalSessionManager>,
}

impl McpEndpoint {
    pub(crate) fn new(
        app: AppState,
        hosts: Arc<HostGuard>,
        rmcp: StreamableHttpService<AggregatedServer, LocalSessionManager>,
    ) -> Self {
        Self { app, hosts, rmcp }
    }

    /// The answer to one request on `/mcp`.
    pub(crate) async fn handle(&self, request: Request) -> Response {
        let app = &self.app;
        origin::guard_origin(&self.hosts, request, |request| {
            authenticated(app, request, |request| {
                sessions::guard_sessions(app, request, |request| {
                    jsonrpc::check_body(app, request, |request| async move {
                        // Boxed: rmcp's future is twice the size of the direct path's, and
                        // every request's future, built on the stack and moved into its box
                        // by the listener, would carry that size through each layer above.
                        Box::pin(self.rmcp.handle(request)).await.map(Body::new)
                    })
                })
            })
        })
        .await
    }
}

// rmcp's service prints its whole configuration; the endpoint is named only.
impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint").finish_non_exhaustive()
    }
}

/// The endpoint as the router's `/mcp` service.
#[derive(Clone)]
pub(crate) struct McpRoute(pub(crate) Arc<McpEndpoint>);

impl tower_service::Service<Request> for McpRoute {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // rmcp's service and the checks in front of it are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let endpoint = self.0.clone();
        Box::pin(async move { Ok(endpoint.handle(request).await) })
    }
}
