//! The connector against real HTTP servers on 127.0.0.1.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use tether_core::{ConnectError, Connector, TransportFailure};
use tether_mcp::{MAX_TOOL_LIST_BYTES, MAX_TOOL_PAGES, MAX_TOOLS, McpConnector};

use support::server::{closed_port_url, start_fixed, start_mcp};
use support::tools::{EndlessPages, HugeTools, PagedTools, TOOL_NAMES, TooManyTools};
use support::{failure_kind, http, request};

async fn connect_err(url: &str) -> ConnectError {
    McpConnector::default()
        .connect(request(http(url)))
        .await
        .expect_err("connect should fail")
}

#[tokio::test]
async fn connects_lists_every_page_and_calls_tools() {
    let server = start_mcp(PagedTools).await;
    let connector = McpConnector::default();
    let session = connector
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    assert!(session.is_open());

    let tools = session.list_tools().await.expect("lists");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TOOL_NAMES, "all three pages, in order");
    let add = &tools[0];
    assert_eq!(add.description.as_deref(), Some("Adds two integers"));
    assert_eq!(add.extra.get("title"), Some(&json!("Add")));
    assert_eq!(add.input_schema.get("required"), Some(&json!(["a", "b"])));

    let args = json!({"a": 20, "b": 22});
    let result = session
        .call_tool("add", args.as_object().cloned())
        .await
        .expect("calls");
    assert!(!result.is_error);
    assert_eq!(result.text(), "42");
    assert_eq!(result.structured_content, Some(json!({"sum": 42})));

    let result = session
        .call_tool("echo", json!({"text": "hi"}).as_object().cloned())
        .await
        .expect("calls");
    assert_eq!(result.text(), "hi");

    // A tool-level error is a result, not a ConnectError.
    let result = session.call_tool("add", None).await.expect("calls");
    assert!(result.is_error);

    // An unknown tool is a JSON-RPC error, passed on with its code; the session stays usable.
    let err = session.call_tool("nope", None).await.expect_err("fails");
    assert!(
        matches!(err, ConnectError::Refused { code: -32602, .. }),
        "{err:?}"
    );
    assert!(session.is_open());

    session.close().await;
    assert!(!session.is_open());
    assert_eq!(
        session.list_tools().await.expect_err("closed"),
        ConnectError::SessionLost
    );
}

#[tokio::test]
async fn sessions_to_one_origin_share_one_http_client() {
    let a = start_mcp(PagedTools).await;
    let b = start_mcp(PagedTools).await;
    let connector = McpConnector::default();
    let s1 = connector.connect(request(http(&a.url))).await.expect("a");
    let s2 = connector
        .connect(request(http(&a.url)))
        .await
        .expect("a again");
    assert_eq!(connector.http_origins(), 1);
    let s3 = connector.connect(request(http(&b.url))).await.expect("b");
    assert_eq!(connector.http_origins(), 2);
    for s in [s1, s2, s3] {
        s.close().await;
    }
}

#[tokio::test]
async fn refused_connections_are_transport_refused() {
    let url = closed_port_url().await;
    match connect_err(&url).await {
        ConnectError::Transport { kind, .. } => assert_eq!(kind, TransportFailure::Refused),
        other => panic!("expected Transport(Refused), got {other:?}"),
    }
}

#[tokio::test]
async fn http_503_is_a_server_error() {
    let server =
        start_fixed(|| (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response())
            .await;
    match connect_err(&server.url).await {
        ConnectError::Transport { kind, .. } => {
            assert_eq!(kind, TransportFailure::ServerError(503));
        }
        other => panic!("expected Transport(ServerError(503)), got {other:?}"),
    }
}

#[tokio::test]
async fn http_401_with_a_challenge_needs_authorization_and_hides_the_header() {
    let server = start_fixed(|| {
        (
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                r#"Bearer realm="secret-realm", error="invalid_token""#,
            )],
            "token secret-token-value rejected",
        )
            .into_response()
    })
    .await;
    let err = connect_err(&server.url).await;
    assert_eq!(
        err,
        ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        }
    );
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[tokio::test]
async fn http_403_without_a_challenge_needs_authorization() {
    let server = start_fixed(|| (StatusCode::FORBIDDEN, "secret-body").into_response()).await;
    let err = connect_err(&server.url).await;
    assert!(
        matches!(err, ConnectError::NeedsAuthorization { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[tokio::test]
async fn http_429_is_rate_limited_with_retry_after() {
    let server = start_fixed(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            "slow down",
        )
            .into_response()
    })
    .await;
    assert_eq!(
        connect_err(&server.url).await,
        ConnectError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn http_404_without_a_session_is_a_protocol_error() {
    let server = start_fixed(|| StatusCode::NOT_FOUND.into_response()).await;
    let err = connect_err(&server.url).await;
    assert!(matches!(err, ConnectError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn http_404_for_a_known_session_is_session_lost() {
    let server = start_mcp(PagedTools).await;
    let session = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    session
        .list_tools()
        .await
        .expect("lists before the restart");
    server.forget_sessions.store(true, Ordering::SeqCst);
    assert_eq!(
        session.list_tools().await.expect_err("session is gone"),
        ConnectError::SessionLost
    );
    session.close().await;
}

#[tokio::test]
async fn endless_pagination_is_cut_at_the_page_limit() {
    let server = start_mcp(EndlessPages).await;
    let session = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    match session.list_tools().await {
        Err(ConnectError::Protocol(msg)) => {
            assert!(msg.contains(&MAX_TOOL_PAGES.to_string()), "{msg}");
        }
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    session.close().await;
}

#[tokio::test]
async fn too_many_tools_are_refused() {
    let server = start_mcp(TooManyTools).await;
    let session = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    match session.list_tools().await {
        Err(ConnectError::Protocol(msg)) => {
            assert!(msg.contains(&MAX_TOOLS.to_string()), "{msg}");
        }
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    session.close().await;
}

#[tokio::test]
async fn a_tool_list_over_the_byte_limit_is_refused() {
    let server = start_mcp(HugeTools).await;
    let session = McpConnector::default()
        .connect(request(http(&server.url)))
        .await
        .expect("connects");
    match session.list_tools().await {
        Err(ConnectError::Protocol(msg)) => {
            assert!(msg.contains(&MAX_TOOL_LIST_BYTES.to_string()), "{msg}");
        }
        other => panic!(
            "expected a Protocol error, got {} tools",
            other.map(|t| t.len()).unwrap_or_default()
        ),
    }
    session.close().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the TCP connection, never answers: only the connect timeout ends the attempt.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: the test makes one connection (two at most with a retry).
        for _ in 0..4 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    let mut req = request(http(&url));
    req.timeout = Duration::from_millis(300);
    let err = McpConnector::default()
        .connect(req)
        .await
        .expect_err("times out");
    assert_eq!(
        failure_kind(&err),
        Some(TransportFailure::Timeout),
        "{err:?}"
    );
}
