//! Degradation (SPEC §8): when the shared state (Redis) cannot answer, a replica falls back to
//! its own in-process state instead of failing, says so once, and returns to the shared state
//! when it answers again.
//!
//! While degraded, replicas disagree (each has its own tracker, breakers and admission count),
//! which is what LibreChat does all the time; it is the lesser evil next to an outage. Entries
//! written locally are not copied back: they expire on their own (active timeout, lease TTL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tether_core::breaker::{BreakerEvent, BreakerRecord, BreakerVerdict};
use tether_core::config::BreakerConfig;
use tether_core::rate::RateLimit;
use tether_core::shared::{BreakerKey, FailedEntry, SlotLease, TrackerStats};
use tether_core::{InProcessState, Origin, PairKey, SharedState, StoreError, Timestamp};
use tokio::time::Instant;

/// How often a degraded replica asks the shared state again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct FallbackState {
    shared: Arc<dyn SharedState>,
    local: InProcessState,
    degraded: AtomicBool,
    /// Milliseconds since `epoch` of the last time the shared state was tried while degraded.
    last_probe_ms: AtomicU64,
    epoch: Instant,
    /// Times this replica fell back, for metrics.
    fallbacks: AtomicU64,
}

impl FallbackState {
    pub fn new(shared: Arc<dyn SharedState>) -> Self {
        Self {
            shared,
            local: InProcessState::new(),
            degraded: AtomicBool::new(false),
            last_probe_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Whether this replica is working on its own state now.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// While degraded, one caller per probe period tries the shared state again.
    fn should_try_shared(&self) -> bool {
        if !self.is_degraded() {
            return true;
        }
        let now = self.now_ms();
        let last = self.last_probe_ms.load(Ordering::Relaxed);
        let due =
            now.saturating_sub(last) >= u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX);
        due && self
            .last_probe_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    fn on_shared_ok(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "shared state answers again: this replica shares tracker, breakers and limits again"
            );
        }
    }

    fn on_shared_error(&self, error: &StoreError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.last_probe_ms.store(self.now_ms(), Ordering::Relaxed);
            tracing::warn!(%error, "shared state unavailable: this replica continues on its own state until it is back");
        }
    }
}

/// Tries the shared state when due; on an outage (not on corrupt data) uses the local state.
macro_rules! with_fallback {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        if $self.should_try_shared() {
            match $self.shared.$method($($arg),*).await {
                Ok(value) => {
                    $self.on_shared_ok();
                    return Ok(value);
                }
                Err(error @ StoreError::Unavailable(_)) => $self.on_shared_error(&error),
                Err(other) => return Err(other),
            }
        }
        $self.local.$method($($arg),*).await
    }};
}

#[async_trait]
impl SharedState for FallbackState {
    async fn try_mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_fallback!(self, try_mark_active(pair, ttl, now))
    }

    async fn mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        with_fallback!(self, mark_active(pair, ttl, now))
    }

    async fn is_active(&self, pair: &PairKey, now: Timestamp) -> Result<bool, StoreError> {
        with_fallback!(self, is_active(pair, now))
    }

    async fn clear_active(&self, pair: &PairKey) -> Result<(), StoreError> {
        with_fallback!(self, clear_active(pair))
    }

    async fn record_failure(
        &self,
        pair: &PairKey,
        error: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<FailedEntry, StoreError> {
        with_fallback!(self, record_failure(pair, error, ttl, now))
    }

    async fn failure(
        &self,
        pair: &PairKey,
        now: Timestamp,
    ) -> Result<Option<FailedEntry>, StoreError> {
        with_fallback!(self, failure(pair, now))
    }

    async fn clear_failure(&self, pair: &PairKey) -> Result<(), StoreError> {
        with_fallback!(self, clear_failure(pair))
    }

    async fn tracker_stats(&self, now: Timestamp) -> Result<TrackerStats, StoreError> {
        with_fallback!(self, tracker_stats(now))
    }

    async fn breaker(&self, key: &BreakerKey) -> Result<BreakerRecord, StoreError> {
        with_fallback!(self, breaker(key))
    }

    async fn breaker_apply(
        &self,
        key: &BreakerKey,
        event: BreakerEvent,
        config: &BreakerConfig,
        now: Timestamp,
    ) -> Result<BreakerVerdict, StoreError> {
        with_fallback!(self, breaker_apply(key, event, config, now))
    }

    async fn breaker_reset(&self, key: &BreakerKey) -> Result<(), StoreError> {
        with_fallback!(self, breaker_reset(key))
    }

    async fn acquire_slot(
        &self,
        origin: &Origin,
        max: u32,
        lease_ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SlotLease>, StoreError> {
        with_fallback!(self, acquire_slot(origin, max, lease_ttl, now))
    }

    async fn release_slot(&self, origin: &Origin, lease: SlotLease) -> Result<(), StoreError> {
        // A lease may come from either side: give it back to both (a no-op where unknown).
        let shared = self.shared.release_slot(origin, lease).await;
        let local = self.local.release_slot(origin, lease).await;
        shared.or(local)
    }

    async fn take_rate(
        &self,
        origin: &Origin,
        limit: &RateLimit,
        now_us: u64,
    ) -> Result<Option<Duration>, StoreError> {
        with_fallback!(self, take_rate(origin, limit, now_us))
    }
}
