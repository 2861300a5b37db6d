//! The connector against a real, independent MCP implementation: the reference
//! `@modelcontextprotocol/server-everything` from npm (TypeScript SDK), pinned in
//! `tests/peers/package.json` / `package-lock.json`, over stdio, Streamable HTTP and the legacy
//! HTTP+SSE transport.
//!
//! Needs `npm ci` in `tests/peers` first (CI does it); without it these tests fail and say so.
//! The HTTP servers are started with `tests/peers/loopback.cjs` preloaded, which makes them
//! listen on 127.0.0.1 only (the package listens on every interface otherwise).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tether_core::{Connector, Session, TransportConfig};
use tether_mcp::McpConnector;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use support::{http, request, sse};

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
}

/// The package's entry point (`bin.mcp-server-everything` = `dist/index.js`; its first argument
/// picks the transport: `stdio`, `sse` or `streamableHttp`).
fn everything() -> PathBuf {
    let dir = peers_dir();
    let entry = dir
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("server-everything")
        .join("dist")
        .join("index.js");
    assert!(
        entry.exists(),
        "{} is missing: run `npm ci` in {} before these tests",
        entry.display(),
        dir.display()
    );
    entry
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Lists the tools, calls `echo` and checks its answer.
async fn exercise(session: &dyn Session) {
    let tools = session.list_tools().await.expect("lists");
    let echo = tools
        .iter()
        .find(|t| t.name == "echo")
        .expect("server-everything has an echo tool");
    assert!(echo.input_schema.get("properties").is_some());
    assert!(tools.len() > 5, "server-everything has many tools");
    let result = session
        .call_tool(
            "echo",
            json!({"message": "hello tether"}).as_object().cloned(),
        )
        .await
        .expect("calls echo");
    assert!(!result.is_error);
    assert_eq!(result.text(), "Echo: hello tether");
    session.close().await;
}

/// A running `server-everything` HTTP server on a loopback port; killed when dropped.
struct NodeServer {
    addr: SocketAddr,
    _child: Child,
}

async fn free_port() -> u16 {
    tether_testkit::services::free_port().await.expect("bind")
}

/// Starts `server-everything <mode>` on a free port (env `PORT`) and waits, bounded, until it
/// accepts connections.
async fn start_node(mode: &str) -> NodeServer {
    let entry = everything();
    let port = free_port().await;
    let mut child = Command::new("node")
        .arg("--require")
        .arg(peers_dir().join("loopback.cjs"))
        .arg(&entry)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts (is Node.js installed?)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Up to 15 s: node loads the SDK and express before it listens.
    for _ in 0..150 {
        if TcpStream::connect(addr).await.is_ok() {
            return NodeServer {
                addr,
                _child: child,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server-everything {mode} exited early ({status})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server-everything {mode} did not listen on {addr} within 15 s");
}

#[tokio::test]
async fn server_everything_over_stdio() {
    let transport = TransportConfig::Stdio {
        command: "node".to_owned(),
        args: vec![path_arg(&everything()), "stdio".to_owned()],
    };
    let session = McpConnector::default()
        .connect(request(transport))
        .await
        .expect("connects over stdio");
    exercise(session.as_ref()).await;
}

#[tokio::test]
async fn server_everything_over_streamable_http() {
    let server = start_node("streamableHttp").await;
    let url = format!("http://{}/mcp", server.addr);
    let session = McpConnector::default()
        .connect(request(http(&url)))
        .await
        .expect("connects over Streamable HTTP");
    exercise(session.as_ref()).await;
}

#[tokio::test]
async fn server_everything_over_legacy_sse() {
    let server = start_node("sse").await;
    let url = format!("http://{}/sse", server.addr);
    let session = McpConnector::default()
        .connect(request(sse(&url)))
        .await
        .expect("connects over legacy SSE");
    exercise(session.as_ref()).await;
}
