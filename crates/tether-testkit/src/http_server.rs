//! An rmcp Streamable HTTP server on loopback, stoppable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    discover_probes: Arc<AtomicU64>,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Requests that came as `server/discover` (by their `Mcp-Method` header, SEP-2243),
    /// answered or refused.
    pub fn discover_probes(&self) -> u64 {
        self.discover_probes.load(Ordering::Relaxed)
    }

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
    serve_with(handler, addr, Router::new(), None).await
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
    serve_with(tools, addr, stats, None).await
}

/// A switch that makes a server answer every request with `503 Service Unavailable` and
/// `Retry-After: 1` (an outage), counting the requests it refused.
#[derive(Debug, Clone, Default)]
pub struct Outage {
    down: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl Outage {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Requests answered 503 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

/// [`DemoTools`] like [`serve_streamable_http`], behind an [`Outage`] switch.
pub async fn serve_demo_with_outage(
    tools: DemoTools,
    addr: &str,
) -> std::io::Result<(RunningServer, Outage)> {
    let outage = Outage::default();
    let server = serve_with(tools, addr, Router::new(), Some(outage.clone())).await?;
    Ok((server, outage))
}

/// The outage switch's middleware: 503 + `Retry-After: 1` while down.
async fn outage_gate(
    axum::extract::State(outage): axum::extract::State<Outage>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if outage.down.load(Ordering::SeqCst) {
        outage.refused.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            "down for maintenance",
        )
            .into_response();
    }
    next.run(request).await
}

async fn count_discover_probes(
    axum::extract::State(probes): axum::extract::State<Arc<AtomicU64>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.headers().get("mcp-method");
    if method.is_some_and(|m| m.as_bytes() == b"server/discover") {
        probes.fetch_add(1, Ordering::Relaxed);
    }
    next.run(request).await
}

async fn serve_with<S>(
    handler: S,
    addr: &str,
    extra: Router,
    outage: Option<Outage>,
) -> std::io::Result<RunningServer>
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
    let router = match outage {
        Some(outage) => router.layer(axum::middleware::from_fn_with_state(outage, outage_gate)),
        None => router,
    };
    let discover_probes = Arc::new(AtomicU64::new(0));
    let router = router.layer(axum::middleware::from_fn_with_state(
        discover_probes.clone(),
        count_discover_probes,
    ));
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a response written in two parts (headers, then the SSE event) waits
    // for the client's delayed ACK: ~40 ms per request on loopback.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = crate::serving::serve_until_cancelled(listener, router, &ct);
    Ok(RunningServer {
        addr,
        url: format!("http://{addr}/mcp"),
        discover_probes,
        ct,
        task,
    })
}
