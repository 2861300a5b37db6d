//! The reconnection tracker (SPEC §2): which pairs are reconnecting now and which failed
//! recently, with the failed cooldown by attempt count.

use std::sync::Arc;
use std::time::Duration;

use crate::config::ReconnectConfig;
use crate::error::StoreError;
use crate::ids::PairKey;
use crate::shared::{FailedEntry, SharedState, TrackerStats};
use crate::time::{Clock, Timestamp};

/// How long a failure record is remembered after the last failure: long enough for the longest
/// cooldown to be served and escalation to mean something, short enough that a user who comes
/// back tomorrow starts fresh.
const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone)]
pub struct ReconnectionTracker {
    shared: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    config: ReconnectConfig,
}

impl ReconnectionTracker {
    pub fn new(
        shared: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        config: ReconnectConfig,
    ) -> Self {
        Self {
            shared,
            clock,
            config,
        }
    }

    /// The cooldown after `attempts` consecutive failures: 5, 10, 20, then 30 min by default.
    pub fn cooldown(&self, attempts: u32) -> Duration {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let last = self.config.cooldowns.len().saturating_sub(1);
        self.config
            .cooldowns
            .get(index.min(last))
            .copied()
            .unwrap_or_default()
    }

    /// When the pair may be retried automatically, if it is still in its failed cooldown.
    pub async fn cooldown_until(&self, pair: &PairKey) -> Result<Option<Timestamp>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .shared
            .failure(pair, now)
            .await?
            .map(|f| self.retry_at(&f))
            .filter(|at| *at > now))
    }

    pub fn retry_at(&self, entry: &FailedEntry) -> Timestamp {
        entry.last_failure + self.cooldown(entry.attempts)
    }

    pub async fn failure(&self, pair: &PairKey) -> Result<Option<FailedEntry>, StoreError> {
        self.shared.failure(pair, self.clock.now()).await
    }

    /// Claims the pair for a reconnection unless someone (any replica) already has.
    pub async fn try_mark_active(&self, pair: &PairKey) -> Result<bool, StoreError> {
        self.shared
            .try_mark_active(pair, self.config.active_timeout, self.clock.now())
            .await
    }

    pub async fn mark_active(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.shared
            .mark_active(pair, self.config.active_timeout, self.clock.now())
            .await
    }

    /// Active entries older than the active timeout do not count, wherever they are read.
    pub async fn is_active(&self, pair: &PairKey) -> Result<bool, StoreError> {
        self.shared.is_active(pair, self.clock.now()).await
    }

    pub async fn clear_active(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.shared.clear_active(pair).await
    }

    pub async fn record_failure(
        &self,
        pair: &PairKey,
        error: &str,
    ) -> Result<FailedEntry, StoreError> {
        self.shared
            .record_failure(pair, error, FAILURE_MEMORY, self.clock.now())
            .await
    }

    /// Forgets both entries: after a success or a new authorization.
    pub async fn clear(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.shared.clear_active(pair).await?;
        self.shared.clear_failure(pair).await
    }

    pub async fn stats(&self) -> Result<TrackerStats, StoreError> {
        self.shared.tracker_stats(self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::InProcessState;
    use crate::time::TokioClock;

    fn tracker() -> ReconnectionTracker {
        ReconnectionTracker::new(
            Arc::new(InProcessState::new()),
            Arc::new(TokioClock::starting_at(Timestamp::from_millis(0))),
            ReconnectConfig::default(),
        )
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn cooldown_progresses_5_10_20_30_and_stays_capped() {
        let t = tracker();
        let pair = PairKey::new("u", "s");
        let mut seen = Vec::new();
        for _ in 0..6 {
            let entry = t
                .record_failure(&pair, "refused")
                .await
                .expect("in-process");
            let until = t.cooldown_until(&pair).await.expect("ok").expect("cooling");
            seen.push(entry.last_failure.until(until).as_secs() / 60);
        }
        assert_eq!(seen, [5, 10, 20, 30, 30, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_ends_by_itself_and_clear_resets_the_count() {
        let t = tracker();
        let pair = PairKey::new("u", "s");
        t.record_failure(&pair, "x").await.expect("ok");
        tokio::time::advance(5 * MIN - Duration::from_millis(1)).await;
        assert!(t.cooldown_until(&pair).await.expect("ok").is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(t.cooldown_until(&pair).await.expect("ok").is_none());
        // The record is still there: the next failure escalates.
        assert_eq!(t.record_failure(&pair, "x").await.expect("ok").attempts, 2);
        t.clear(&pair).await.expect("ok");
        assert_eq!(t.record_failure(&pair, "x").await.expect("ok").attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn active_entries_expire_after_the_timeout_without_any_status_call() {
        let t = tracker();
        let pair = PairKey::new("u", "s");
        assert!(t.try_mark_active(&pair).await.expect("ok"));
        assert!(!t.try_mark_active(&pair).await.expect("ok"), "held");
        tokio::time::advance(3 * MIN).await;
        // No stats or cleanup ran in between: the first read sees it expired.
        assert!(!t.is_active(&pair).await.expect("ok"));
        assert!(t.try_mark_active(&pair).await.expect("ok"));
    }

    #[tokio::test(start_paused = true)]
    async fn users_are_independent_and_stats_count_both_kinds() {
        let t = tracker();
        let a = PairKey::new("alice", "github");
        let b = PairKey::new("bob", "github");
        t.record_failure(&a, "x").await.expect("ok");
        t.mark_active(&b).await.expect("ok");
        assert!(t.cooldown_until(&b).await.expect("ok").is_none());
        assert!(!t.is_active(&a).await.expect("ok"));
        let stats = t.stats().await.expect("ok");
        assert_eq!((stats.active, stats.failed), (1, 1));
        tokio::time::advance(3 * MIN).await;
        assert_eq!(t.stats().await.expect("ok").active, 0);
    }
}
