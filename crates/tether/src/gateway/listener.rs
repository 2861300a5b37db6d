//! Serving the gateway ([`Dispatch`]: `/mcp` and the router) on a TCP listener with the bounds
//! `axum::serve` does not set: a header read timeout (a client trickling its headers —
//! slowloris — or idling on a keep-alive connection is cut off), a cap on connections served
//! at once (past it new connections wait in the listen backlog; those being served are
//! unaffected), and graceful shutdown (idle connections close at once, requests in flight
//! finish).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::config::HttpConfig;
use super::dispatch::Dispatch;

/// The pause after a failed `accept` (out of file descriptors, mostly): retrying at once would
/// spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `service` until `shutdown` resolves, then lets every connection finish.
pub(crate) async fn serve(
    listener: TcpListener,
    service: Dispatch,
    config: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let max =
        u32::try_from(config.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    // A permit per connection served; all of them back means every connection has ended.
    let slots = Arc::new(Semaphore::new(max as usize));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Without TCP_NODELAY a response written in two parts waits ~40 ms for the client's
        // delayed ACK (Nagle): every tool call through the gateway paid it.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = http1
            .serve_connection(TokioIo::new(tcp), service.clone())
            .with_upgrades();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    stop.cancel();
    let _ = slots.acquire_many(max).await;
}
