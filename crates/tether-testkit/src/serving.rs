//! Serving a test peer's router until its token is cancelled: the one way every peer of this
//! crate runs its HTTP side.

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Serves `router` on `listener` in a task of its own, shutting down gracefully once `ct` is
/// cancelled.
pub(crate) fn serve_until_cancelled<L>(
    listener: L,
    router: Router,
    ct: &CancellationToken,
) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let shutdown = ct.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    })
}
