//! The legacy HTTP+SSE transport (MCP 2024-11-05) against an in-process legacy server on
//! 127.0.0.1, and its error mapping against fixed answers.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tether_core::{ConnectError, Connector, Session, TransportFailure};
use tether_mcp::McpConnector;
use tokio_util::sync::CancellationToken;

use support::auth::{Gate, ScriptedSource, require_token};
use support::legacy::{legacy_router, serve_legacy, start_legacy};
use support::server::{TestServer, closed_port_url};
use support::tools::{PagedTools, TOOL_NAMES};
use support::{request, sse};

async fn connect(url: &str) -> Result<Arc<dyn Session>, ConnectError> {
    McpConnector::default().connect(request(sse(url))).await
}

async fn echo(session: &Arc<dyn Session>) -> Result<String, ConnectError> {
    session
        .call_tool("echo", json!({"text": "hi"}).as_object().cloned())
        .await
        .map(|r| r.text())
}

/// A server whose `/sse` answers every request with `response()`.
async fn fixed(response: fn() -> Response) -> TestServer {
    let router = Router::new().route("/sse", get(move || async move { response() }));
    serve_legacy(router, CancellationToken::new()).await
}

#[tokio::test]
async fn lists_and_calls_over_legacy_sse() {
    let (server, control) = start_legacy(PagedTools).await;
    let session = connect(&server.url).await.expect("connects");
    assert!(session.is_open());
    let tools = session.list_tools().await.expect("lists");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TOOL_NAMES, "all three pages");
    let result = session
        .call_tool("add", json!({"a": 20, "b": 22}).as_object().cloned())
        .await
        .expect("calls");
    assert_eq!(result.text(), "42");
    // initialize, initialized, three tools/list pages, tools/call.
    assert!(control.posts.load(Ordering::SeqCst) >= 6);
    session.close().await;
    assert!(!session.is_open());
}

#[tokio::test]
async fn an_endpoint_on_another_origin_is_refused() {
    let (server, control) = start_legacy(PagedTools).await;
    // Same host, another port: another origin.
    let other = format!(
        "http://{}:{}/message?sessionId=0",
        server.addr.ip(),
        server.addr.port().wrapping_add(1)
    );
    *control.endpoint_override.lock().expect("lock") = Some(other);
    let err = connect(&server.url).await.expect_err("refused");
    assert_eq!(
        err,
        ConnectError::Protocol("the server named a message endpoint on another origin".to_owned())
    );
    assert_eq!(control.posts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tokens_are_sent_and_refreshed_over_legacy_sse() {
    let ct = CancellationToken::new();
    let gate = Gate::accepting("token-1");
    let (router, _control) = legacy_router(PagedTools, &ct);
    let server = serve_legacy(require_token(router, gate.clone()), ct).await;
    let source = ScriptedSource::with_token("token-1");
    let session = McpConnector::default()
        .with_bearer_source(source.clone())
        .connect(request(sse(&server.url)))
        .await
        .expect("connects");
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    assert_eq!(gate.rejected.load(Ordering::SeqCst), 0);

    gate.accept("token-2");
    source.refresh_to("token-2");
    assert_eq!(echo(&session).await.expect("retried after refresh"), "hi");
    assert_eq!(source.rejected_calls(), 1);

    gate.accept("token-3");
    let err = echo(&session).await.expect_err("no refresh left");
    assert!(
        matches!(err, ConnectError::NeedsAuthorization { .. }),
        "{err:?}"
    );
    assert_eq!(source.rejected_calls(), 2, "once per request");
    session.close().await;
}

#[tokio::test]
async fn a_dropped_stream_loses_the_session() {
    let (server, control) = start_legacy(PagedTools).await;
    let session = connect(&server.url).await.expect("connects");
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    control.drop_streams();
    // Bounded wait for rmcp's service to notice the end of the stream.
    for _ in 0..100 {
        if !session.is_open() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!session.is_open());
    assert_eq!(
        echo(&session).await.expect_err("gone"),
        ConnectError::SessionLost
    );
}

#[tokio::test]
async fn a_session_the_server_forgot_is_lost() {
    let (server, control) = start_legacy(PagedTools).await;
    let session = connect(&server.url).await.expect("connects");
    control.forget_sessions();
    assert_eq!(
        echo(&session).await.expect_err("404 on POST"),
        ConnectError::SessionLost
    );
    session.close().await;
}

#[tokio::test]
async fn http_failures_map_as_for_streamable_http() {
    let server = fixed(|| StatusCode::SERVICE_UNAVAILABLE.into_response()).await;
    match connect(&server.url).await.expect_err("503") {
        ConnectError::Transport { kind, .. } => {
            assert_eq!(kind, TransportFailure::ServerError(503))
        }
        other => panic!("expected ServerError(503), got {other:?}"),
    }

    let server = fixed(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            "slow down",
        )
            .into_response()
    })
    .await;
    assert_eq!(
        connect(&server.url).await.expect_err("429"),
        ConnectError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );

    for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
        let server = fixed(match status {
            StatusCode::UNAUTHORIZED => {
                || (StatusCode::UNAUTHORIZED, "token secret-token rejected").into_response()
            }
            _ => || (StatusCode::FORBIDDEN, "secret-body").into_response(),
        })
        .await;
        let err = connect(&server.url).await.expect_err("auth");
        assert!(
            matches!(err, ConnectError::NeedsAuthorization { .. }),
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("secret"));
    }

    let server = fixed(|| StatusCode::NOT_FOUND.into_response()).await;
    assert!(matches!(
        connect(&server.url).await.expect_err("404"),
        ConnectError::Protocol(_)
    ));

    let server = fixed(|| "<html>secret page</html>".into_response()).await;
    let err = connect(&server.url).await.expect_err("not an event stream");
    assert_eq!(
        err,
        ConnectError::Protocol("the server did not answer with an event stream".to_owned())
    );

    let url = closed_port_url().await.replace("/mcp", "/sse");
    match connect(&url).await.expect_err("refused") {
        ConnectError::Transport { kind, .. } => assert_eq!(kind, TransportFailure::Refused),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_an_endpoint_fails_the_connect() {
    let server = fixed(|| {
        (
            [("content-type", "text/event-stream")],
            ": ping\n\nevent: ping\ndata: 1\n\n",
        )
            .into_response()
    })
    .await;
    match connect(&server.url).await.expect_err("no endpoint") {
        ConnectError::Transport { kind, .. } => assert_eq!(kind, TransportFailure::Network),
        other => panic!("expected Transport(Network), got {other:?}"),
    }
}
