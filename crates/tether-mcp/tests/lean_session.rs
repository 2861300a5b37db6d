//! The lean Streamable HTTP session (the default, without the standalone event stream): it
//! owns no task, answers the server's requests on a response stream, cancels requests its
//! caller gave up on, and falls back to rmcp's client for servers that answer `initialize`
//! with a version that has no handshake.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tether_core::{Connector, Session, TransportFailure};
use tether_mcp::{McpConnector, McpConnectorConfig};
use tokio_util::sync::CancellationToken;

use support::server::{TestServer, serve, start_mcp};
use support::tools::PagedTools;
use support::{failure_kind, http, request};

const SESSIONS: usize = 50;

/// Opens `SESSIONS` sessions (each lists its tools once, as the gateway does) on a
/// current-thread runtime and returns how many tasks that runtime gained. The server runs on
/// its own runtime, so its per-session tasks are not counted.
fn tasks_gained_by_idle_sessions(config: McpConnectorConfig) -> usize {
    let server_runtime = tokio::runtime::Runtime::new().expect("server runtime");
    let server = server_runtime.block_on(start_mcp(PagedTools));
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let gained = client_runtime.block_on(async {
        let connector = McpConnector::new(config).expect("valid config");
        // Warm-up: the per-origin client and its pooled connection (one hyper task).
        let warm_up = connector
            .connect(request(http(&server.url)))
            .await
            .expect("connects");
        warm_up.list_tools().await.expect("lists");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let mut sessions = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let session = connector
                .connect(request(http(&server.url)))
                .await
                .expect("connects");
            session.list_tools().await.expect("lists");
            sessions.push(session);
        }
        // Let anything a session started in the background settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = metrics.num_alive_tasks();
        for session in sessions {
            session.close().await;
        }
        warm_up.close().await;
        after.saturating_sub(before)
    });
    drop(client_runtime);
    drop(server);
    gained
}

#[test]
fn idle_lean_sessions_hold_no_task() {
    let gained = tasks_gained_by_idle_sessions(McpConnectorConfig::default());
    // Sequential connects reuse the pooled connection; a couple of spare pool connections at
    // most, never one task per session.
    assert!(
        gained <= 3,
        "{SESSIONS} idle sessions added {gained} tasks to the client runtime"
    );
}

/// The control: the same measurement sees rmcp's client (service loop, transport worker and
/// the standalone stream's connection, per session), so the assertion above can fail.
#[test]
fn rmcp_sessions_hold_tasks_which_the_measurement_sees() {
    let config = McpConnectorConfig {
        standalone_stream: true,
        ..McpConnectorConfig::default()
    };
    let gained = tasks_gained_by_idle_sessions(config);
    assert!(
        gained >= 2 * SESSIONS,
        "{SESSIONS} rmcp sessions added only {gained} tasks"
    );
}

/// What the hand-written server below saw from the client.
#[derive(Debug, Default)]
struct Seen {
    initializes: usize,
    /// JSON-RPC responses and errors the client POSTed (answers to the server's requests).
    replies: Vec<Value>,
    /// Notification methods the client POSTed, with their params.
    notifications: Vec<(String, Value)>,
    /// `MCP-Protocol-Version` of every POST after `initialize`.
    versions: Vec<Option<String>>,
    /// The `protocolVersion` each `initialize` proposed.
    proposed: Vec<String>,
    /// `server/discover` probes (this server is of an earlier revision: it refuses them).
    discovers: usize,
    deletes: usize,
}

#[derive(Clone)]
struct App {
    seen: Arc<Mutex<Seen>>,
    /// The protocol version the server names in its `initialize` answer.
    version: &'static str,
    /// Answer `notifications/initialized` with 500.
    refuse_initialized: bool,
}

fn json_response(value: &Value) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("mcp-session-id", "s-1"),
        ],
        value.to_string(),
    )
        .into_response()
}

/// Waits (up to 5 s) until the client POSTed `n` replies.
async fn replies_reach(seen: &Mutex<Seen>, n: usize) -> usize {
    for _ in 0..500 {
        let count = seen.lock().expect("lock").replies.len();
        if count >= n {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen.lock().expect("lock").replies.len()
}

async fn on_post(State(app): State<App>, request: Request) -> Response {
    let version = request
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let id = message.get("id").cloned();
    if method.as_deref() == Some("server/discover") {
        // What a server of an earlier revision answers a request without a session.
        app.seen.lock().expect("lock").discovers += 1;
        return (StatusCode::BAD_REQUEST, "Bad Request: no valid session ID").into_response();
    }
    if method.as_deref() != Some("initialize") {
        app.seen.lock().expect("lock").versions.push(version);
    }
    match (method.as_deref(), id) {
        (Some("initialize"), Some(id)) => {
            let proposed = message["params"]["protocolVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut seen = app.seen.lock().expect("lock");
            seen.initializes += 1;
            seen.proposed.push(proposed);
            drop(seen);
            json_response(&json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": {
                    "protocolVersion": app.version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "lean-test", "version": "0"}
                }
            }))
        }
        (Some("notifications/initialized"), None) if app.refuse_initialized => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        (Some(method), None) => {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            app.seen
                .lock()
                .expect("lock")
                .notifications
                .push((method.to_owned(), params));
            StatusCode::ACCEPTED.into_response()
        }
        (None, Some(_)) => {
            app.seen.lock().expect("lock").replies.push(message);
            StatusCode::ACCEPTED.into_response()
        }
        (Some("tools/call"), Some(id)) => {
            let tool = message["params"]["name"].as_str().unwrap_or_default();
            if tool == "hang" {
                // Never answers: the client gives up and cancels.
                let body =
                    Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
                return (
                    [
                        ("content-type", "text/event-stream"),
                        ("mcp-session-id", "s-1"),
                    ],
                    body,
                )
                    .into_response();
            }
            // A ping, a sampling request and a notification before the answer; the answer
            // waits until the client has replied to both requests.
            let ping = json!({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"});
            let sampling = json!({
                "jsonrpc": "2.0",
                "id": 77,
                "method": "sampling/createMessage",
                "params": {"messages": [], "maxTokens": 1}
            });
            let progress = json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": "info", "data": "working"}
            });
            let seen = app.seen.clone();
            let head = format!("data: {ping}\n\ndata: {sampling}\n\ndata: {progress}\n\n");
            let stream = futures::stream::unfold(0u8, move |step| {
                let seen = seen.clone();
                let id = id.clone();
                let head = head.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, std::io::Error>(Bytes::from(head)), 1)),
                        1 => {
                            let replies = replies_reach(&seen, 2).await;
                            let text = format!("replies: {replies}");
                            let answer = json!({
                                "jsonrpc": "2.0",
                                "id": id,
                                "result": {"content": [{"type": "text", "text": text}]}
                            });
                            Some((Ok(Bytes::from(format!("data: {answer}\n\n"))), 2))
                        }
                        _ => None,
                    }
                }
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
        (_, Some(id)) => {
            json_response(&json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}}))
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn start(version: &'static str) -> (TestServer, Arc<Mutex<Seen>>) {
    start_with(version, false).await
}

async fn on_delete(State(app): State<App>) -> StatusCode {
    app.seen.lock().expect("lock").deletes += 1;
    StatusCode::OK
}

async fn start_with(
    version: &'static str,
    refuse_initialized: bool,
) -> (TestServer, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = App {
        seen: seen.clone(),
        version,
        refuse_initialized,
    };
    let router = Router::new()
        .route(
            "/mcp",
            post(on_post)
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                .delete(on_delete),
        )
        .with_state(app);
    (serve(router, CancellationToken::new()).await, seen)
}

#[tokio::test]
async fn a_session_whose_initialized_notification_fails_is_deleted() {
    let (server, seen) = start_with("2025-06-18", true).await;
    let connected = McpConnector::default()
        .connect(request(http(&server.url)))
        .await;
    assert!(connected.is_err(), "the handshake did not complete");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.initializes, 1);
    assert_eq!(seen.deletes, 1, "the half-opened session is ended");
}

#[tokio::test]
async fn server_requests_on_a_response_stream_are_answered() {
    let (server, seen) = start("2025-06-18").await;
    let connector = McpConnector::default();
    let session = connector
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    let result = session.call_tool("work", None).await.expect("calls");
    assert_eq!(result.text(), "replies: 2", "answered after both replies");
    {
        let seen = seen.lock().expect("lock");
        let ping = seen
            .replies
            .iter()
            .find(|r| r["id"] == "srv-ping")
            .expect("the ping was answered");
        assert_eq!(ping["result"], json!({}));
        let sampling = seen
            .replies
            .iter()
            .find(|r| r["id"] == 77)
            .expect("the sampling request was answered");
        assert_eq!(sampling["error"]["code"], -32601, "method not found");
        assert_eq!(seen.initializes, 1);
        assert_eq!(
            seen.discovers, 1,
            "asked server/discover first, then fell back"
        );
        assert_eq!(
            seen.proposed,
            ["2025-11-25"],
            "initialize never proposes a version without initialize"
        );
        assert_eq!(seen.notifications[0].0, "notifications/initialized");
        assert!(
            seen.versions
                .iter()
                .all(|v| v.as_deref() == Some("2025-06-18")),
            "every later request names the negotiated version: {:?}",
            seen.versions
        );
    }
    session.close().await;
    assert!(!session.is_open());
    // Reconnecting goes straight to `initialize`: the server's revision is remembered.
    let again = connector
        .connect(request(http(&server.url)))
        .await
        .expect("connects again");
    assert_eq!(seen.lock().expect("lock").discovers, 1, "not asked again");
    assert_eq!(seen.lock().expect("lock").initializes, 2);
    again.close().await;
}

#[tokio::test]
async fn an_abandoned_call_is_cancelled() {
    let (server, seen) = start("2025-06-18").await;
    let config = McpConnectorConfig {
        call_timeout: Duration::from_millis(300),
        ..McpConnectorConfig::default()
    };
    let session = McpConnector::new(config)
        .expect("valid config")
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    let err = session
        .call_tool("hang", None)
        .await
        .expect_err("times out");
    assert_eq!(
        failure_kind(&err),
        Some(TransportFailure::Timeout),
        "{err:?}"
    );
    let mut cancelled = None;
    for _ in 0..200 {
        cancelled = seen
            .lock()
            .expect("lock")
            .notifications
            .iter()
            .find(|(method, _)| method == "notifications/cancelled")
            .map(|(_, params)| params.clone());
        if cancelled.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = cancelled.expect("notifications/cancelled was sent");
    // `initialize` had id 0; the call was the session's first request.
    assert_eq!(cancelled["requestId"], 1);
    assert!(session.is_open(), "a timeout does not end the session");
    session.close().await;
}

#[tokio::test]
async fn a_server_naming_a_version_without_initialize_gets_rmcps_client() {
    let (server, seen) = start("2026-07-28").await;
    let session: Arc<dyn Session> = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect("connects through rmcp's client");
    assert!(session.list_tools().await.expect("lists").is_empty());
    assert_eq!(
        seen.lock().expect("lock").initializes,
        2,
        "the lean handshake, then rmcp's"
    );
    session.close().await;
}
