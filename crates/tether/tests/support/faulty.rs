//! Upstreams that fail on purpose, on 127.0.0.1: one whose failures are the origin's (it drops
//! every connection) and one whose failures are the pair's own (it answers HTTP 400).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;

use super::gateway_process::count_and_close;

/// Accepts connections and closes them at once, counting them: a dead upstream, watched.
pub async fn dead_upstream() -> (String, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (count, task) = count_and_close(listener);
    (format!("http://{addr}/mcp"), count, task)
}

/// An upstream that answers every request with HTTP 400: a failure of the pair itself (not of
/// the origin's transport), which earns the pair a cooldown.
pub async fn refusing_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}/mcp"), task)
}
