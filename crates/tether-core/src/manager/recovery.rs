//! The in-session reconnect loop: a live session broke, so bring it back with exponential
//! backoff and full jitter, a bounded number of times, then leave it to the failed cooldown.

use std::sync::Arc;

use super::Inner;
use super::attempt::{AttemptKind, AttemptOutcome};
use crate::config::ServerConfig;
use crate::ids::PairKey;
use crate::state::ConnectionState;

impl Inner {
    /// Starts the loop for the pair unless one is running; returns at once.
    pub(crate) fn start_recovery(self: &Arc<Self>, pair: &PairKey, server: &Arc<ServerConfig>) {
        if self.recoveries.is_running(pair) {
            return;
        }
        let inner = self.clone();
        let (pair, server) = (pair.clone(), server.clone());
        self.tasks.spawn(async move {
            let looped = inner.clone();
            let (p, s) = (pair.clone(), server.clone());
            inner
                .recoveries
                .run(pair, &inner.tasks, move || async move {
                    looped.recover(p, s).await
                })
                .await;
        });
    }

    async fn recover(self: Arc<Self>, pair: PairKey, server: Arc<ServerConfig>) {
        let attempts = self.config.reconnect.in_session_attempts.max(1);
        for n in 0..attempts {
            let delay = self.backoff.delay(n);
            let now = self.clock.now();
            self.sessions.set_state(
                &pair,
                ConnectionState::Reconnecting {
                    retry_at: Some(now + delay),
                },
                now,
            );
            self.log_store(self.tracker.mark_active(&pair).await, &pair);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => return,
            }
            let last = n + 1 == attempts;
            match self
                .attempt(&pair, &server, AttemptKind::Recovery { last })
                .await
            {
                AttemptOutcome::Connected
                | AttemptOutcome::NeedsAuthorization { .. }
                | AttemptOutcome::Cancelled => return,
                AttemptOutcome::CircuitOpen { until } => {
                    if last {
                        return;
                    }
                    // Nothing can succeed before the breaker half-opens: wait for it rather
                    // than spending retries on refusals.
                    let wait = self.clock.now().until(until);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.shutdown.cancelled() => return,
                    }
                }
                AttemptOutcome::Failed { .. } => {}
            }
        }
    }
}
