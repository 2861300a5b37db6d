//! The TypeScript SDK v2's MCP server of the 2026-07-28 revision
//! (`crates/tether-mcp/tests/peers/modern_server.mjs`) as a child process on 127.0.0.1.
//! Needs `npm ci` in crates/tether-mcp/tests/peers.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The running peer; dropping it kills it.
#[derive(Debug)]
pub struct ModernPeer {
    /// Its MCP endpoint.
    pub url: String,
    _child: Child,
}

pub fn mcp_peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tether-mcp/tests/peers")
}

/// Starts it in `mode`: `modern` (2026-07-28 only), `dual` or `dual-stateless`.
pub async fn start(mode: &str) -> ModernPeer {
    let mut child = Command::new("node")
        .arg(mcp_peers_dir().join("modern_server.mjs"))
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        BufReader::new(stdout).lines().next_line().await
    })
    .await
    .expect("the peer listens within 30 s")
    .expect("reads its stdout")
    .expect("the peer printed its URL (npm ci in crates/tether-mcp/tests/peers?)");
    let url = serde_json::from_str::<Value>(&line).expect("JSON")["url"]
        .as_str()
        .expect("a url")
        .to_owned();
    ModernPeer { url, _child: child }
}
