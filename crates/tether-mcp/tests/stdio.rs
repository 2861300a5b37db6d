//! The connector against a stdio MCP server (this crate's `tether-mcp-test-stdio` example).

mod support;

use std::path::PathBuf;

use serde_json::json;
use tether_core::{Connector, TransportConfig, TransportFailure};
use tether_mcp::McpConnector;

use support::auth::ScriptedSource;
use support::tools::TOOL_NAMES;
use support::{failure_kind, request};

/// `cargo test` builds examples into `target/<profile>/examples/`, next to the `deps/`
/// directory that holds this test executable.
fn stdio_server() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(format!(
        "tether-mcp-test-stdio{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p tether-mcp` (which builds the examples) rather than a \
         single --test target",
        path.display()
    );
    path
}

fn stdio(command: PathBuf) -> TransportConfig {
    TransportConfig::Stdio {
        command: command.to_string_lossy().into_owned(),
        args: Vec::new(),
    }
}

#[tokio::test]
async fn lists_and_calls_over_stdio() {
    let connector = McpConnector::default();
    let session = connector
        .connect(request(stdio(stdio_server())))
        .await
        .expect("connects");
    assert!(session.is_open());

    let tools = session.list_tools().await.expect("lists");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TOOL_NAMES);

    let result = session
        .call_tool("add", json!({"a": 2, "b": 3}).as_object().cloned())
        .await
        .expect("calls");
    assert_eq!(result.text(), "5");

    session.close().await;
    assert!(!session.is_open());
    assert_eq!(connector.http_origins(), 0, "stdio uses no HTTP client");
}

#[tokio::test]
async fn stdio_servers_get_no_token() {
    let source = ScriptedSource::with_token("token-1");
    let connector = McpConnector::default().with_bearer_source(source.clone());
    let session = connector
        .connect(request(stdio(stdio_server())))
        .await
        .expect("connects");
    session.list_tools().await.expect("lists");
    session.close().await;
    assert_eq!(source.bearer_calls(), 0);
}

#[tokio::test]
async fn a_missing_command_is_a_transport_error() {
    let err = McpConnector::default()
        .connect(request(stdio(PathBuf::from(
            "/nonexistent/tether-mcp-no-such-server",
        ))))
        .await
        .expect_err("cannot start");
    assert_eq!(
        failure_kind(&err),
        Some(TransportFailure::Network),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_process_that_exits_at_once_fails_the_connect() {
    // `true` exits without answering initialize; the connect must fail, not hang.
    let err = McpConnector::default()
        .connect(request(stdio(PathBuf::from("true"))))
        .await
        .expect_err("no server");
    assert_eq!(
        failure_kind(&err),
        Some(TransportFailure::Network),
        "{err:?}"
    );
}
