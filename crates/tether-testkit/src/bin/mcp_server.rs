//! `tether-testkit-mcp [ADDR]`: the demo MCP server as its own process, on Streamable HTTP at
//! `ADDR` (default `127.0.0.1:0`). Prints one JSON line `{"url": …, "pid": …}` when it listens,
//! then serves until killed or until its stdin closes (so it never outlives a test that died).
//! `GET /stats` answers the counters as JSON (`initialized`, `calls`, `initializing`,
//! `peak_initializing`). `TESTKIT_INIT_DELAY_MS=N` makes every `initialize` take N ms (a slow
//! handshake, so that a client's concurrency limit shows in `peak_initializing`).

use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let ip: std::net::SocketAddr = addr.parse()?;
    anyhow::ensure!(ip.ip().is_loopback(), "test peers listen on loopback only");
    let delay_ms = match std::env::var("TESTKIT_INIT_DELAY_MS") {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|e| anyhow::anyhow!("TESTKIT_INIT_DELAY_MS={value:?}: {e}"))?,
        Err(_) => 0,
    };
    let tools = tether_testkit::DemoTools::default()
        .with_init_delay(std::time::Duration::from_millis(delay_ms));
    let server = tether_testkit::serve_demo_with_stats(tools, &addr).await?;
    println!(
        "{}",
        serde_json::json!({"url": server.url, "pid": std::process::id()})
    );
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    // Returns 0 at EOF: the parent is gone or closed our stdin on purpose.
    while stdin.read(&mut buf).await.unwrap_or(0) > 0 {}
    server.stop().await;
    Ok(())
}
