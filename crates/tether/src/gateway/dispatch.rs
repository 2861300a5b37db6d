//! The service each connection is served with: `/mcp` straight to its endpoint, every other
//! path through the router.
//!
//! The router reaches `/mcp` through a path match and three boxed services (the body deadline
//! layer, the route, the endpoint), each cloned and its future boxed on every request; the
//! endpoint's own checks are plain functions. Dispatching the one hot path by its exact path
//! applies the same rules (the body deadline, then [`McpEndpoint::handle`]) without that. The
//! router keeps its `/mcp` route (the same endpoint) for hosts that serve
//! [`Gateway::router`](super::Gateway::router) themselves.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use tower_service::Service as _;

use super::body_deadline;
use super::mcp::{MCP_PATH, McpEndpoint};

#[derive(Clone)]
pub(crate) struct Dispatch {
    router: Router,
    mcp: Arc<McpEndpoint>,
    body_read_timeout: Duration,
}

impl Dispatch {
    /// `router` must already carry the body deadline layer for its own routes.
    pub(crate) fn new(router: Router, mcp: Arc<McpEndpoint>, body_read_timeout: Duration) -> Self {
        Self {
            router,
            mcp,
            body_read_timeout,
        }
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let request: Request = request.map(Body::new);
        if request.uri().path() == MCP_PATH {
            let mcp = self.mcp.clone();
            let timeout = self.body_read_timeout;
            return Box::pin(async move {
                Ok(body_deadline::within(timeout, request, |request| mcp.handle(request)).await)
            });
        }
        // The router is always ready: axum's `Router` answers `poll_ready` with `Ready`.
        Box::pin(self.router.clone().call(request))
    }
}
