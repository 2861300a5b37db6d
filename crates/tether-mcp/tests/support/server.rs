//! HTTP servers on 127.0.0.1:0 for tests: a real rmcp Streamable HTTP server, and tiny axum
//! routers that answer with fixed error statuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A running test server; stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub url: String,
    /// When set, every request that carries an `Mcp-Session-Id` is answered 404, as a server
    /// that restarted and forgot its sessions would.
    pub forget_sessions: Arc<AtomicBool>,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

/// Serves `handler` over rmcp's Streamable HTTP server (stateful sessions) at `/mcp`.
pub async fn start_mcp<S: ServerHandler + Clone + Send + Sync + 'static>(handler: S) -> TestServer {
    let ct = CancellationToken::new();
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(ct.child_token()),
    );
    let forget_sessions = Arc::new(AtomicBool::new(false));
    let flag = forget_sessions.clone();
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(
            move |req: Request<Body>, next: Next| {
                let flag = flag.clone();
                async move {
                    if flag.load(Ordering::SeqCst) && req.headers().contains_key("mcp-session-id") {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    next.run(req).await
                }
            },
        ));
    serve(router, ct, forget_sessions).await
}

/// Serves a router whose `/mcp` answers every request with `response()`.
pub async fn start_fixed(response: fn() -> Response) -> TestServer {
    let router = Router::new().route("/mcp", any(move || async move { response() }));
    serve(
        router,
        CancellationToken::new(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
}

async fn serve(
    router: Router,
    ct: CancellationToken,
    forget_sessions: Arc<AtomicBool>,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let shutdown = ct.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
    });
    TestServer {
        url: format!("http://{addr}/mcp"),
        forget_sessions,
        ct,
        task,
    }
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
