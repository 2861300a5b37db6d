//! `@modelcontextprotocol/server-everything` over Streamable HTTP, on 127.0.0.1 and an ephemeral
//! port (tether-mcp's `tests/peers/loopback.cjs` narrows the server's own listen on every
//! interface and announces the port).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::everything_entry;

pub struct EverythingHttp {
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    _child: Child,
}

impl EverythingHttp {
    pub async fn start() -> Self {
        // The loopback preload of the peer tests, announcing the ephemeral port.
        let preload = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("tether-mcp")
            .join("tests")
            .join("peers")
            .join("loopback.cjs");
        let mut child = Command::new("node")
            .arg("--require")
            .arg(&preload)
            .arg(everything_entry())
            .arg("streamableHttp")
            .env("PORT", "0")
            .env("TETHER_ANNOUNCE_PORT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts (is Node.js 20+ installed?)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("TETHER_TEST_PORT=") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .expect("server-everything listens within 60 s")
        .expect("server-everything printed its port");
        // The rest of its output is not read; keep the pipe drained so it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            url: format!("http://127.0.0.1:{port}/mcp"),
            _child: child,
        }
    }
}
