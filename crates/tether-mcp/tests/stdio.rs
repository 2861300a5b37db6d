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

/// Live processes whose command line carries `marker` (zombies, already dead, are left out).
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

/// The core closes idle upstream sessions (`reconnect.idle_session_timeout`); for a stdio
/// server that must end its child, or one process per (user, server) would live forever.
#[tokio::test]
async fn closing_a_stdio_session_ends_its_child_process() {
    let marker = format!("--tether-test-marker-{}", std::process::id());
    let connector = McpConnector::default();
    let config = TransportConfig::Stdio {
        command: stdio_server().to_string_lossy().into_owned(),
        args: vec![marker.clone()],
    };
    let session = connector.connect(request(config)).await.expect("connects");
    session.list_tools().await.expect("lists");
    let children = processes_with(&marker);
    assert_eq!(children.len(), 1, "one child for the session: {children:?}");

    session.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_with(&marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child {children:?} outlived its closed session by 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The TypeScript SDK v2's server of 2026-07-28 only, over stdio (`modern_server.mjs stdio`):
/// reached by `server/discover`, its calls carry their own metadata; an earlier revision's stdio
/// server (the rmcp example) is still reached with `initialize`.
#[tokio::test]
async fn a_2026_stdio_server_is_discovered_and_an_earlier_one_initialized() {
    let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let modern = TransportConfig::Stdio {
        command: "node".to_owned(),
        args: vec![
            peers
                .join("modern_server.mjs")
                .to_string_lossy()
                .into_owned(),
            "stdio".to_owned(),
        ],
    };
    let connector = McpConnector::default();
    let session = connector
        .connect(request(modern))
        .await
        .expect("connects (npm ci in crates/tether-mcp/tests/peers?)");
    let protocol = session.protocol().expect("a negotiated protocol");
    assert_eq!(protocol.version, "2026-07-28");
    let result = session
        .call_tool("add", json!({"a": 20, "b": 22}).as_object().cloned())
        .await
        .expect("calls");
    assert_eq!(result.text(), "42");
    session.close().await;

    let earlier = connector
        .connect(request(stdio(stdio_server())))
        .await
        .expect("connects");
    let protocol = earlier.protocol().expect("a negotiated protocol");
    assert_eq!(protocol.version, "2025-11-25");
    assert_eq!(protocol.wire, "session");
    earlier.close().await;
}

/// A server that answers nothing for longer than rmcp's `server/discover` probe waits (10 s: a
/// first `npx` start downloading its package) still connects on the first attempt. rmcp sends
/// `initialize` after the probe and then reads the probe's late answer as `initialize`'s; the
/// server is started again and initialized instead of failing the connect.
#[tokio::test]
async fn a_server_slower_to_start_than_the_discover_probe_connects_on_the_first_attempt() {
    let dir = std::env::temp_dir().join(format!(
        "tether-slow-stdio-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("creates the marker's directory");
    let marker = dir.join("started-once");
    // The first start sleeps past the probe's 10 s; a second starts at once.
    let script = format!(
        "if [ ! -e '{marker}' ]; then touch '{marker}'; sleep 12; fi; exec '{server}'",
        marker = marker.display(),
        server = stdio_server().display()
    );
    let mut slow = request(TransportConfig::Stdio {
        command: "sh".to_owned(),
        args: vec!["-c".to_owned(), script],
    });
    slow.timeout = std::time::Duration::from_secs(40);
    let connector = McpConnector::default();
    let session = connector
        .connect(slow)
        .await
        .expect("connects on the first attempt");
    assert!(marker.exists(), "the first start was the slow one");
    let protocol = session.protocol().expect("a negotiated protocol");
    assert_eq!(protocol.version, "2025-11-25");
    let tools = session.list_tools().await.expect("lists");
    assert!(!tools.is_empty());
    session.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
