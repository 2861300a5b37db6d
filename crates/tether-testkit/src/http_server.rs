//! An rmcp Streamable HTTP server on loopback, stoppable.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::DemoTools;

/// A server running in this process. Dropping it stops it.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// `http://<addr>/mcp`
    pub url: String,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops and waits (at most 5 s) for the connections to close.
    pub async fn stop(mut self) {
        self.ct.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

/// Serves `handler` at `/mcp` (and `GET /healthz`) on `addr` (use `127.0.0.1:0` for any port).
pub async fn serve_streamable_http<S>(handler: S, addr: &str) -> std::io::Result<RunningServer>
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    serve_with(handler, addr, Router::new()).await
}

/// [`DemoTools`] like [`serve_streamable_http`], plus its counters as JSON at `GET /stats`
/// (sessions initialized, calls, `initialize` requests in flight and their peak).
pub async fn serve_demo_with_stats(tools: DemoTools, addr: &str) -> std::io::Result<RunningServer> {
    let counters = tools.clone();
    let stats = Router::new().route(
        "/stats",
        get(move || {
            let counters = counters.clone();
            async move { axum::Json(counters.stats()) }
        }),
    );
    serve_with(tools, addr, stats).await
}

async fn serve_with<S>(handler: S, addr: &str, extra: Router) -> std::io::Result<RunningServer>
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    let ct = CancellationToken::new();
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(ct.child_token()),
    );
    let router = Router::new()
        .nest_service("/mcp", service)
        .route("/healthz", get(|| async { "ok" }))
        .merge(extra);
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a response written in two parts (headers, then the SSE event) waits
    // for the client's delayed ACK: ~40 ms per request on loopback.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shutdown = ct.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(RunningServer {
        addr,
        url: format!("http://{addr}/mcp"),
        ct,
        task,
    })
}
