//! Closing idle upstream sessions: a session (a stdio child included) costs the upstream and
//! this host for as long as it lives, so one unused for `reconnect.idle_session_timeout` is
//! closed; the next call reconnects on demand.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Inner;

/// How soon the sweeper looks again when no session is live.
const EMPTY_SWEEP: Duration = Duration::from_secs(60);

impl Inner {
    /// Starts the sweeper once, on the first connected session. It holds the manager weakly
    /// and is not a tracked task, so that `wait_idle` does not wait for it.
    pub(crate) fn ensure_idle_sweeper(self: &Arc<Self>) {
        if self.idle_sweeper.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let Some(wait) = Self::sweep(&weak).await else {
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Closes the idle sessions; answers how long to wait before the next sweep, or `None`
    /// when the manager is gone.
    async fn sweep(weak: &Weak<Self>) -> Option<Duration> {
        let inner = weak.upgrade()?;
        let timeout = inner.config.reconnect.idle_session_timeout;
        let now = inner.clock.now();
        for (pair, session) in inner.sessions.take_idle(now, timeout) {
            tracing::info!(%pair, "closing idle upstream session");
            session.close().await;
        }
        let next = inner
            .sessions
            .next_idle_check(timeout)
            .map_or(EMPTY_SWEEP, |at| inner.clock.now().until(at));
        // Never spin: at least one second between sweeps.
        Some(next.max(Duration::from_secs(1)))
    }
}
