//! Resumption of a broken Streamable HTTP response stream (SEP-1699): the session resumes
//! with `GET` + `Last-Event-ID` after the server's `retry` delay; we bound how often. Run
//! against both clients: the lean session (default) and rmcp's (standalone stream on).
//!
//! The server here is a minimal hand-written Streamable HTTP endpoint, because the point is to
//! break a response stream at a chosen place: `tools/call` answers with an SSE stream that
//! carries only a priming event (`id` + `retry`) and then ends or breaks; the answer itself is
//! only available through the resumed `GET`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};
use tether_core::{ConnectError, Connector, TransportFailure};
use tether_mcp::{McpConnector, McpConnectorConfig};
use tokio_util::sync::CancellationToken;

use support::server::{TestServer, serve};
use support::{failure_kind, http, request};

/// The server's `retry` field, in milliseconds.
const SERVER_RETRY_MS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// The response stream ends cleanly after the priming event.
    End,
    /// The connection is cut after the priming event.
    Reset,
    /// As `End`, and every resumption attempt is refused with 503.
    EndAndRefuseResumption,
}

#[derive(Debug, Default)]
struct Seen {
    call_id: Option<Value>,
    stream_broken_at: Option<Instant>,
    /// `Last-Event-ID` of every resumption GET, with its arrival time.
    resumptions: Vec<(String, Instant)>,
}

#[derive(Clone)]
struct App {
    mode: Break,
    seen: Arc<Mutex<Seen>>,
}

fn json_response(value: Value) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("mcp-session-id", "s-1"),
        ],
        value.to_string(),
    )
        .into_response()
}

fn event_stream(chunks: Vec<Result<String, std::io::Error>>, delay_error: bool) -> Response {
    let stream = futures::stream::iter(chunks).then(move |chunk| async move {
        if chunk.is_err() && delay_error {
            // Let the priming event reach the client before the connection is cut.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        chunk.map(Bytes::from)
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "s-1"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn on_post(State(app): State<App>, request: Request) -> Response {
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = message.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    match message.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            // The newest version with an `initialize` handshake, as a server following the
            // spec answers a client that asks for a later one.
            json_response(json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "resume-test", "version": "0"}
                }
            }))
        }
        Some("tools/call") => {
            {
                let mut seen = app.seen.lock().expect("lock");
                seen.call_id = Some(id);
                seen.stream_broken_at = Some(Instant::now());
            }
            let priming = format!("id: ev-1\nretry: {SERVER_RETRY_MS}\ndata: \n\n");
            match app.mode {
                Break::End | Break::EndAndRefuseResumption => {
                    event_stream(vec![Ok(priming)], false)
                }
                Break::Reset => {
                    event_stream(vec![Ok(priming), Err(std::io::Error::other("cut"))], true)
                }
            }
        }
        _ => json_response(json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}})),
    }
}

async fn on_get(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(last) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        // No standalone stream: rmcp skips it on 405.
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let call_id = {
        let mut seen = app.seen.lock().expect("lock");
        seen.resumptions.push((last, Instant::now()));
        seen.call_id.clone()
    };
    if app.mode == Break::EndAndRefuseResumption {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let answer = json!({
        "jsonrpc": "2.0",
        "id": call_id,
        "result": {"content": [{"type": "text", "text": "resumed"}]}
    });
    event_stream(vec![Ok(format!("id: ev-2\ndata: {answer}\n\n"))], false)
}

async fn start(mode: Break) -> (TestServer, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = App {
        mode,
        seen: seen.clone(),
    };
    let router = Router::new()
        .route(
            "/mcp",
            post(on_post)
                .get(on_get)
                .delete(|| async { StatusCode::OK }),
        )
        .with_state(app);
    (serve(router, CancellationToken::new()).await, seen)
}

async fn call_once(url: &str, config: McpConnectorConfig) -> Result<String, ConnectError> {
    let connector = McpConnector::new(config).expect("valid config");
    let session = connector
        .connect(request(http(url)))
        .await
        .expect("connects");
    let result = session.call_tool("echo", None).await.map(|r| r.text());
    session.close().await;
    result
}

/// Both clients: the lean session, and rmcp's (with the standalone stream, which this server
/// refuses with 405).
const CLIENTS: [bool; 2] = [false, true];

fn config(standalone_stream: bool) -> McpConnectorConfig {
    McpConnectorConfig {
        standalone_stream,
        ..McpConnectorConfig::default()
    }
}

#[tokio::test]
async fn a_stream_that_ends_mid_response_is_resumed_with_last_event_id_after_retry() {
    for standalone in CLIENTS {
        let (server, seen) = start(Break::End).await;
        let text = call_once(&server.url, config(standalone))
            .await
            .expect("the answer comes through the resumed stream");
        assert_eq!(text, "resumed");
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.resumptions.len(), 1, "standalone={standalone}");
        let (last_event_id, at) = &seen.resumptions[0];
        assert_eq!(last_event_id, "ev-1");
        let waited = at.duration_since(seen.stream_broken_at.expect("the call was made"));
        assert!(
            waited >= Duration::from_millis(SERVER_RETRY_MS - 20),
            "resumed after {waited:?}, before the server's retry of {SERVER_RETRY_MS} ms \
             (standalone={standalone})"
        );
    }
}

#[tokio::test]
async fn a_connection_cut_mid_response_is_resumed_with_last_event_id() {
    for standalone in CLIENTS {
        let (server, seen) = start(Break::Reset).await;
        let text = call_once(&server.url, config(standalone))
            .await
            .expect("the answer comes through the resumed stream");
        assert_eq!(text, "resumed");
        let seen = seen.lock().expect("lock");
        let ids: Vec<&str> = seen.resumptions.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["ev-1"], "standalone={standalone}");
    }
}

#[tokio::test]
async fn resumption_gives_up_after_the_configured_attempts() {
    for standalone in CLIENTS {
        let (server, seen) = start(Break::EndAndRefuseResumption).await;
        let config = McpConnectorConfig {
            sse_resume_attempts: 2,
            sse_resume_delay: Duration::from_millis(50),
            ..config(standalone)
        };
        let started = Instant::now();
        let err = call_once(&server.url, config)
            .await
            .expect_err("no answer without resumption");
        // Not SessionLost: the session goes on, only this request's stream is gone (and the
        // core must not re-run a call the server may have run).
        match err {
            ConnectError::Transport { kind, .. } => assert_eq!(kind, TransportFailure::Network),
            other => panic!("expected Transport(Network), got {other:?} (standalone={standalone})"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        let seen = seen.lock().expect("lock");
        let ids: Vec<&str> = seen.resumptions.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["ev-1", "ev-1"],
            "exactly the configured two attempts (standalone={standalone})"
        );
    }
}

#[tokio::test]
async fn zero_attempts_never_resume() {
    let (server, seen) = start(Break::End).await;
    let config = McpConnectorConfig {
        sse_resume_attempts: 0,
        ..config(false)
    };
    let err = call_once(&server.url, config)
        .await
        .expect_err("no answer without resumption");
    assert_eq!(
        failure_kind(&err),
        Some(TransportFailure::Network),
        "{err:?}"
    );
    assert!(seen.lock().expect("lock").resumptions.is_empty());
}
