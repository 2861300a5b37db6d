//! rmcp's `StreamableHttpService` behind one `Arc`, so that cloning it is a reference count.
//!
//! axum clones a route's service for every request (the `gate` middleware in front of it
//! once more), and rmcp's service clones its whole configuration, whose cancellation token
//! takes a lock shared by every request on both the clone and the drop (the drop alone was
//! 0.8 % of the gateway's CPU per tool call in a profile at concurrency 16), spent even on the
//! calls the direct path answers without rmcp.

use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::future::BoxFuture;
use http_body::Body;
use http_body_util::combinators::BoxBody;
use rmcp::ServerHandler;
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::SessionManager;

pub(crate) struct Shared<S, M>(Arc<StreamableHttpService<S, M>>);

impl<S, M> Shared<S, M> {
    pub(crate) fn new(service: StreamableHttpService<S, M>) -> Self {
        Self(Arc::new(service))
    }
}

impl<S, M> Clone for Shared<S, M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<B, S, M> tower_service::Service<axum::http::Request<B>> for Shared<S, M>
where
    B: Body + Send + 'static,
    B::Error: Display,
    S: ServerHandler + Send + 'static,
    M: SessionManager,
{
    type Response = axum::http::Response<BoxBody<Bytes, Infallible>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // rmcp's service is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
