//! The in-session reconnect loop: a live session broke, so bring it back with exponential
//! backoff and full jitter, a bounded number of times, then leave it to the failed cooldown.

use std::sync::Arc;
use std::time::Duration;

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
        // After waiting out a breaker the pair goes at once: the wait ended with its own jitter.
        let mut released = false;
        for n in 0..attempts {
            let delay = if released {
                Duration::ZERO
            } else {
                self.backoff.delay(n)
            };
            released = false;
            let now = self.clock.now();
            self.sessions.set_state(
                &pair,
                ConnectionState::Reconnecting {
                    retry_at: Some(now + delay),
                },
                now,
            );
            self.log_store(self.tracker.mark_active(&pair).await, &pair);
            if !self.back_off(delay, &pair, &server).await {
                return;
            }
            let last = n + 1 == attempts;
            match self
                .attempt(&pair, &server, AttemptKind::Recovery { last })
                .await
            {
                AttemptOutcome::Connected
                | AttemptOutcome::NeedsAuthorization { .. }
                | AttemptOutcome::Cancelled => return,
                AttemptOutcome::CircuitOpen { .. } => {
                    if last {
                        return;
                    }
                    // Nothing can succeed before the breaker lets an attempt through: wait for
                    // it rather than spending retries on refusals.
                    if !self.wait_out_breakers(&pair, &server).await {
                        return;
                    }
                    released = true;
                }
                AttemptOutcome::Failed { .. } => {}
            }
        }
    }

    /// Sleeps out the backoff `delay`, unless a probe of the origin ends here with the breakers
    /// letting the pair through: the origin is back, and the pair should not sit out a backoff
    /// grown during the outage. False on shutdown.
    async fn back_off(&self, delay: Duration, pair: &PairKey, server: &ServerConfig) -> bool {
        let deadline = tokio::time::Instant::now() + delay;
        let origin = server.origin();
        for _ in 0..MAX_WAKES {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                () = self.breakers.probe_ended() => {
                    if self.breakers.holds_back(&origin, pair).await.is_none() {
                        return self.stagger_release().await;
                    }
                }
                () = self.shutdown.cancelled() => return false,
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Released pairs start within one backoff base of each other, so they reach the origin's
    /// admission limit spread out rather than in one burst. False on shutdown.
    async fn stagger_release(&self) -> bool {
        tokio::select! {
            () = tokio::time::sleep(self.backoff.delay(0)) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Waits until the breakers would let the pair's attempt through: an open period's end, or
    /// at once when a probe of the origin ends here (a probe that succeeded releases every pair
    /// it held back), then staggers the release. False on shutdown.
    async fn wait_out_breakers(&self, pair: &PairKey, server: &ServerConfig) -> bool {
        let origin = server.origin();
        // Each round ends the wait or follows the breaker to a new deadline; a bounded number
        // of probe ends is enough to see the outcome of any one outage.
        for _ in 0..MAX_WAKES {
            let probe_ended = self.breakers.probe_ended();
            tokio::pin!(probe_ended);
            probe_ended.as_mut().enable();
            let Some(until) = self.breakers.holds_back(&origin, pair).await else {
                break;
            };
            tokio::select! {
                () = tokio::time::sleep(self.clock.now().until(until)) => break,
                () = &mut probe_ended => {}
                () = self.shutdown.cancelled() => return false,
            }
        }
        self.stagger_release().await
    }
}

/// How many ended probes one wait follows before it attempts anyway (the breaker refuses again
/// if it must).
const MAX_WAKES: usize = 64;
