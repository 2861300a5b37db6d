//! The TypeScript SDK v2's MCP server of the 2026-07-28 revision
//! (`crates/tether-mcp/tests/peers/modern_server.mjs`) as a child process on 127.0.0.1, for the
//! tests of both ends of the new wire. Needs `npm ci` in crates/tether-mcp/tests/peers.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The running peer; it exits when its stdin closes, and dropping this kills it.
#[derive(Debug)]
pub struct ModernPeer {
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    _stdin: ChildStdin,
    _child: Child,
}

/// Where the npm test peers of tether-mcp live.
pub fn mcp_peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tether-mcp/tests/peers")
}

impl ModernPeer {
    /// Starts it over HTTP in `mode`: `modern` (2026-07-28 only), `dual` or `dual-stateless`.
    pub async fn start(mode: &str) -> Self {
        let mut child = Command::new("node")
            .arg(mcp_peers_dir().join("modern_server.mjs"))
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts (is Node.js installed?)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            BufReader::new(stdout).lines().next_line().await
        })
        .await
        .expect("the peer listens within 30 s")
        .expect("reads its stdout")
        .expect("the peer printed its URL (npm ci in crates/tether-mcp/tests/peers?)");
        let announced: Value = serde_json::from_str(&line).expect("a JSON line");
        let url = announced["url"].as_str().expect("a url").to_owned();
        let base = url.trim_end_matches("/mcp").to_owned();
        Self {
            url,
            base,
            _stdin: stdin,
            _child: child,
        }
    }

    /// Its `GET /stats`: JSON-RPC messages received by method, `initialize`s, POSTs.
    pub async fn stats(&self) -> Value {
        let body = reqwest::get(format!("{}/stats", self.base))
            .await
            .expect("stats answer")
            .bytes()
            .await
            .expect("stats body");
        serde_json::from_slice(&body).expect("stats JSON")
    }
}
