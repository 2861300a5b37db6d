//! Access tokens from a `BearerSource` on every Streamable HTTP request, against a server that
//! accepts exactly one token at a time and rotates it.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use tether_core::{ConnectError, Connector, Session};
use tether_mcp::{McpConnector, McpConnectorConfig};
use tokio_util::sync::CancellationToken;

use support::auth::{Gate, ScriptedSource, require_token};
use support::server::{TestServer, mcp_router, serve};
use support::tools::PagedTools;
use support::{http, request};

async fn gated_server(gate: &Arc<Gate>) -> TestServer {
    let ct = CancellationToken::new();
    serve(require_token(mcp_router(PagedTools, &ct), gate.clone()), ct).await
}

async fn connect(
    server: &TestServer,
    gate: &Gate,
    source: &Arc<ScriptedSource>,
) -> Arc<dyn Session> {
    // With the standalone event stream on, so that its GET (and its token) is covered too.
    let config = McpConnectorConfig {
        standalone_stream: true,
        ..McpConnectorConfig::default()
    };
    let session = McpConnector::new(config)
        .expect("valid config")
        .with_bearer_source(source.clone())
        .connect(request(http(&server.url)))
        .await
        .expect("connects with the token");
    gate.wait_for_stream().await;
    session
}

async fn echo(session: &Arc<dyn Session>) -> Result<String, ConnectError> {
    session
        .call_tool("echo", json!({"text": "hi"}).as_object().cloned())
        .await
        .map(|r| r.text())
}

#[tokio::test]
async fn every_request_carries_the_sources_token() {
    let gate = Gate::accepting("token-1");
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    let session = connect(&server, &gate, &source).await;
    assert_eq!(session.list_tools().await.expect("lists").len(), 5);
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    assert_eq!(gate.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(gate.anonymous.load(Ordering::SeqCst), 0);
    assert!(source.bearer_calls() >= 3, "asked per request");
    assert_eq!(source.rejected_calls(), 0);
    session.close().await;
}

#[tokio::test]
async fn by_default_no_standalone_event_stream_is_opened() {
    let gate = Gate::accepting("token-1");
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    let session = McpConnector::default()
        .with_bearer_source(source.clone())
        .connect(request(http(&server.url)))
        .await
        .expect("connects with the token");
    assert_eq!(session.list_tools().await.expect("lists").len(), 5);
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    // rmcp would have opened it right after `initialize`; give it time to (not) happen.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(gate.streams.load(Ordering::SeqCst), 0, "no GET was made");
    assert!(session.is_open());
    session.close().await;
}

#[tokio::test]
async fn a_token_refreshed_in_the_background_is_used_by_the_next_request() {
    let gate = Gate::accepting("token-1");
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    let session = connect(&server, &gate, &source).await;
    gate.accept("token-2");
    source.set_current("token-2");
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    assert_eq!(source.rejected_calls(), 0, "no 401, so no refresh");
    session.close().await;
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_the_request_retried() {
    for challenge in [true, false] {
        let gate = Gate::accepting("token-1");
        gate.challenge.store(challenge, Ordering::SeqCst);
        let server = gated_server(&gate).await;
        let source = ScriptedSource::with_token("token-1");
        let session = connect(&server, &gate, &source).await;

        // The server rotates; the session still sends token-1, gets 401, asks the source once.
        gate.accept("token-2");
        source.refresh_to("token-2");
        assert_eq!(
            echo(&session).await.expect("retried"),
            "hi",
            "challenge={challenge}"
        );
        assert_eq!(source.rejected_calls(), 1, "challenge={challenge}");

        // The refreshed token is the current one now: no further 401.
        let rejected = gate.rejected.load(Ordering::SeqCst);
        assert_eq!(echo(&session).await.expect("calls"), "hi");
        assert_eq!(gate.rejected.load(Ordering::SeqCst), rejected);
        assert_eq!(source.rejected_calls(), 1);
        session.close().await;
    }
}

#[tokio::test]
async fn a_refused_refresh_needs_authorization_without_leaking_anything() {
    let gate = Gate::accepting("token-1");
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    let session = connect(&server, &gate, &source).await;
    gate.accept("token-2");
    // No refreshed token: `rejected` answers NeedsAuthorization.
    let err = echo(&session).await.expect_err("needs the user");
    assert_eq!(
        err,
        ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        }
    );
    assert_eq!(source.rejected_calls(), 1, "asked once per request");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("token") && !text.contains("secret"),
        "{text}"
    );
    session.close().await;
}

#[tokio::test]
async fn a_refreshed_token_that_is_rejected_too_is_not_retried_again() {
    let gate = Gate::accepting("token-1");
    gate.challenge.store(false, Ordering::SeqCst);
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    let session = connect(&server, &gate, &source).await;
    gate.accept("token-3");
    source.refresh_to("token-2");
    let before = gate.rejected.load(Ordering::SeqCst);
    let err = echo(&session).await.expect_err("second 401 is the answer");
    assert!(
        matches!(err, ConnectError::NeedsAuthorization { .. }),
        "{err:?}"
    );
    assert_eq!(source.rejected_calls(), 1);
    assert_eq!(
        gate.rejected.load(Ordering::SeqCst) - before,
        2,
        "one try, one retry"
    );
    session.close().await;
}

#[tokio::test]
async fn connecting_with_a_stale_token_refreshes_during_initialize() {
    let gate = Gate::accepting("token-2");
    let server = gated_server(&gate).await;
    let source = ScriptedSource::with_token("token-1");
    source.refresh_to("token-2");
    let session = connect(&server, &gate, &source).await;
    assert_eq!(source.rejected_calls(), 1);
    assert_eq!(echo(&session).await.expect("calls"), "hi");
    session.close().await;
}

#[tokio::test]
async fn without_a_source_no_token_is_sent() {
    let gate = Gate::accepting("token-1");
    let server = gated_server(&gate).await;
    let err = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect_err("401");
    assert!(
        matches!(err, ConnectError::NeedsAuthorization { .. }),
        "{err:?}"
    );
    assert!(gate.anonymous.load(Ordering::SeqCst) >= 1);
}

/// The lean sessions (the default, without the standalone stream) send through the same
/// token-attaching client: a token rejected mid-session is refreshed once and the request
/// retried, and a stale token is refreshed during `initialize`.
#[tokio::test]
async fn lean_sessions_refresh_a_rejected_token_once() {
    for challenge in [true, false] {
        let gate = Gate::accepting("token-2");
        gate.challenge.store(challenge, Ordering::SeqCst);
        let server = gated_server(&gate).await;
        let source = ScriptedSource::with_token("token-1");
        source.refresh_to("token-2");
        let session = McpConnector::default()
            .with_bearer_source(source.clone())
            .connect(request(http(&server.url)))
            .await
            .expect("connects after one refresh");
        assert_eq!(source.rejected_calls(), 1, "challenge={challenge}");

        gate.accept("token-3");
        source.refresh_to("token-3");
        assert_eq!(echo(&session).await.expect("retried"), "hi");
        assert_eq!(source.rejected_calls(), 2, "challenge={challenge}");
        assert_eq!(gate.streams.load(Ordering::SeqCst), 0, "no GET was made");
        session.close().await;
    }
}
