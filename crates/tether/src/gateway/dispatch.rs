//! The service each connection is served with: the body deadline on every request, then
//! `/mcp` straight to its endpoint and every other path through the router.
//!
//! Through the router, `/mcp` cost a path match and boxed services (a deadline layer, the
//! route, the endpoint), each cloned and its future boxed on every request; the endpoint's own
//! checks are plain functions. Dispatching the one hot path by its exact path applies the same
//! rules without that. The router keeps its `/mcp` route (the same endpoint) for hosts that
//! serve [`Gateway::router`](super::Gateway::router) themselves.

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
        let timeout = self.body_read_timeout;
        if request.uri().path() == MCP_PATH {
            let mcp = self.mcp.clone();
            return Box::pin(async move {
                Ok(body_deadline::within(timeout, request, |request| mcp.handle(request)).await)
            });
        }
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = body_deadline::within(timeout, request, |request| async move {
                // axum's `Router` is always ready and never fails (`Infallible`).
                router
                    .call(request)
                    .await
                    .unwrap_or_else(|never| match never {})
            })
            .await;
            Ok(response)
        })
    }
}
