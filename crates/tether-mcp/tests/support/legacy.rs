//! A legacy HTTP+SSE (2024-11-05) MCP server for tests: `GET /sse` opens a session whose
//! stream first names `POST /message?sessionId=<n>`, then carries the rmcp server's answers.
//! Each session is an rmcp server on an in-memory pipe (newline-delimited JSON-RPC).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use rmcp::{ServerHandler, ServiceExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::server::{TestServer, serve};

/// Bytes the in-memory pipe of one session buffers.
const PIPE_BYTES: usize = 1 << 20;

type Writer = Arc<tokio::sync::Mutex<WriteHalf<tokio::io::DuplexStream>>>;

/// What the test can do to the running server.
#[derive(Debug, Default)]
pub struct Control {
    /// Sent instead of the real endpoint when set (to test origin checks).
    pub endpoint_override: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, Writer>>,
    next_id: AtomicU64,
    /// Cancelled (and replaced) by [`Control::drop_streams`].
    streams: Mutex<CancellationToken>,
    pub posts: AtomicU64,
}

impl Control {
    /// Ends every open event stream and forgets the sessions, as a restarted server would.
    pub fn drop_streams(&self) {
        let token = std::mem::take(&mut *self.streams.lock().expect("control lock"));
        token.cancel();
        self.sessions.lock().expect("control lock").clear();
    }

    /// Forgets the sessions but keeps the streams open: POSTs get 404.
    pub fn forget_sessions(&self) {
        self.sessions.lock().expect("control lock").clear();
    }
}

#[derive(Clone)]
struct AppState<S> {
    handler: S,
    control: Arc<Control>,
    ct: CancellationToken,
}

/// The server's router (for wrapping it, e.g. behind a token gate) and its control.
pub fn legacy_router<S: ServerHandler + Clone + Send + Sync + 'static>(
    handler: S,
    ct: &CancellationToken,
) -> (Router, Arc<Control>) {
    let control = Arc::new(Control::default());
    let state = AppState {
        handler,
        control: control.clone(),
        ct: ct.clone(),
    };
    let router = Router::new()
        .route("/sse", get(open_stream::<S>))
        .route("/message", post(post_message::<S>))
        .with_state(state);
    (router, control)
}

/// Serves a legacy SSE server for `handler`; `server.url` is its `/sse` URL.
pub async fn start_legacy<S: ServerHandler + Clone + Send + Sync + 'static>(
    handler: S,
) -> (TestServer, Arc<Control>) {
    let ct = CancellationToken::new();
    let (router, control) = legacy_router(handler, &ct);
    (serve_legacy(router, ct).await, control)
}

/// Serves an already built legacy router; the returned server's `url` is its `/sse` URL.
pub async fn serve_legacy(router: Router, ct: CancellationToken) -> TestServer {
    let mut server = serve(router, ct).await;
    server.url = format!("http://{}/sse", server.addr);
    server
}

async fn open_stream<S: ServerHandler + Clone + Send + Sync + 'static>(
    State(state): State<AppState<S>>,
) -> Response {
    let control = &state.control;
    let id = control.next_id.fetch_add(1, Ordering::SeqCst).to_string();
    let (server_io, client_io) = tokio::io::duplex(PIPE_BYTES);
    let handler = state.handler.clone();
    let server_ct = state.ct.child_token();
    tokio::spawn(async move {
        if let Ok(running) = handler.serve_with_ct(server_io, server_ct).await {
            let _ = running.waiting().await;
        }
    });
    let (reader, writer) = tokio::io::split(client_io);
    control
        .sessions
        .lock()
        .expect("control lock")
        .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(writer)));
    let endpoint = control
        .endpoint_override
        .lock()
        .expect("control lock")
        .clone()
        .unwrap_or_else(|| format!("/message?sessionId={id}"));
    let first = futures::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(format!(
            ": hello\n\nevent: endpoint\ndata: {endpoint}\n\n"
        )))
    });
    // One JSON-RPC message per line from the rmcp server, one SSE `message` event each.
    let lines = futures::stream::unfold(BufReader::new(reader).lines(), |mut lines| async {
        match lines.next_line().await {
            Ok(Some(line)) => Some((
                Ok(Bytes::from(format!("event: message\ndata: {line}\n\n"))),
                lines,
            )),
            _ => None,
        }
    });
    let stop = control.streams.lock().expect("control lock").clone();
    let server_stop = state.ct.clone();
    let body = first.chain(lines).take_until(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = server_stop.cancelled() => {}
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn post_message<S: ServerHandler + Clone + Send + Sync + 'static>(
    State(state): State<AppState<S>>,
    request: Request,
) -> Response {
    let control = &state.control;
    control.posts.fetch_add(1, Ordering::SeqCst);
    let id = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sessionId=")))
        .map(str::to_owned);
    let writer = id.and_then(|id| {
        control
            .sessions
            .lock()
            .expect("control lock")
            .get(&id)
            .cloned()
    });
    let Some(writer) = writer else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let Ok(body) = axum::body::to_bytes(request.into_body(), PIPE_BYTES).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut writer = writer.lock().await;
    let mut line = body.to_vec();
    line.push(b'\n');
    if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() {
        return StatusCode::GONE.into_response();
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
