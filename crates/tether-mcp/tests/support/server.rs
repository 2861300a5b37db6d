//! HTTP servers on 127.0.0.1 for tests: a real rmcp Streamable HTTP server, and tiny axum
//! routers that answer with fixed error statuses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long [`TestServer::stop`] waits for open connections to close before it aborts.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running test server; stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub url: String,
    pub addr: SocketAddr,
    /// When set, every request that carries an `Mcp-Session-Id` is answered 404, as a server
    /// that restarted and forgot its sessions would.
    pub forget_sessions: Arc<AtomicBool>,
    /// How many requests were answered 404 (by the MCP server: an unknown session id).
    pub not_found: Arc<AtomicUsize>,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

impl TestServer {
    /// Stops accepting, ends the MCP sessions and waits (bounded) until every connection is
    /// closed, so that the port can be bound again and no pooled client connection still
    /// reaches this server.
    pub async fn stop(mut self) {
        self.ct.cancel();
        let _ = tokio::time::timeout(STOP_TIMEOUT, &mut self.task).await;
    }
}

/// The router of an rmcp Streamable HTTP server (stateful sessions) for `handler` at `/mcp`;
/// its sessions end when `ct` is cancelled.
pub fn mcp_router<S: ServerHandler + Clone + Send + Sync + 'static>(
    handler: S,
    ct: &CancellationToken,
) -> Router {
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(ct.child_token()),
    );
    Router::new().nest_service("/mcp", service)
}

/// Serves `handler` over rmcp's Streamable HTTP server at `/mcp` on a free port.
pub async fn start_mcp<S: ServerHandler + Clone + Send + Sync + 'static>(handler: S) -> TestServer {
    start_mcp_at(handler, "127.0.0.1:0").await
}

/// [`start_mcp`] on a given address (to restart a server on the port it had).
pub async fn start_mcp_at<S: ServerHandler + Clone + Send + Sync + 'static>(
    handler: S,
    addr: &str,
) -> TestServer {
    let ct = CancellationToken::new();
    let forget_sessions = Arc::new(AtomicBool::new(false));
    let not_found = Arc::new(AtomicUsize::new(0));
    let flag = forget_sessions.clone();
    let counter = not_found.clone();
    let router = mcp_router(handler, &ct).layer(middleware::from_fn(
        move |req: Request<Body>, next: Next| {
            let flag = flag.clone();
            let counter = counter.clone();
            async move {
                if flag.load(Ordering::SeqCst) && req.headers().contains_key("mcp-session-id") {
                    return StatusCode::NOT_FOUND.into_response();
                }
                let response = next.run(req).await;
                if response.status() == StatusCode::NOT_FOUND {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                response
            }
        },
    ));
    let mut server = serve_at(router, ct, forget_sessions, addr).await;
    server.not_found = not_found;
    server
}

/// Serves a router whose `/mcp` answers every request with `response()`.
pub async fn start_fixed(response: fn() -> Response) -> TestServer {
    let router = Router::new().route("/mcp", any(move || async move { response() }));
    serve(router, CancellationToken::new()).await
}

/// Serves `router` on a free port until `ct` is cancelled (or the server dropped).
pub async fn serve(router: Router, ct: CancellationToken) -> TestServer {
    serve_at(router, ct, Arc::new(AtomicBool::new(false)), "127.0.0.1:0").await
}

async fn serve_at(
    router: Router,
    ct: CancellationToken,
    forget_sessions: Arc<AtomicBool>,
    addr: &str,
) -> TestServer {
    let listener = bind(addr).await;
    let addr = listener.local_addr().expect("local address");
    let shutdown = ct.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
    });
    TestServer {
        url: format!("http://{addr}/mcp"),
        addr,
        forget_sessions,
        not_found: Arc::new(AtomicUsize::new(0)),
        ct,
        task,
    }
}

/// Binds `addr`; a just-released port can take a moment to become free again, so a fixed port
/// is retried a bounded number of times.
async fn bind(addr: &str) -> TcpListener {
    let mut last_error = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not bind {addr}: {last_error:?}");
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/mcp")
}
