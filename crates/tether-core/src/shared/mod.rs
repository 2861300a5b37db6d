//! State that several replicas must agree on: the reconnection tracker, circuit breakers and the
//! per-origin admission slots and rate.
//!
//! Every method is one atomic step on one key (set-if-absent with TTL, increment, transition
//! with a pure function from [`crate::breaker`] or [`crate::rate`]), so that a Redis backend can
//! implement each with one command or one script and the core never needs a distributed
//! transaction. `now` is passed in (from the core's clock) so that every backend judges expiry
//! by the same clock as the rules do.

mod in_process;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use in_process::InProcessState;

use crate::breaker::{BreakerEvent, BreakerRecord, BreakerVerdict};
use crate::config::BreakerConfig;
use crate::error::StoreError;
use crate::ids::{Origin, PairKey};
use crate::rate::RateLimit;
use crate::time::Timestamp;

/// A pair's failure record: how often in a row, when last, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedEntry {
    pub attempts: u32,
    pub last_failure: Timestamp,
    /// Safe to show (see [`crate::connector::ConnectError`]).
    pub last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TrackerStats {
    /// Pairs reconnecting now (unexpired active entries).
    pub active: usize,
    /// Pairs with a failure record.
    pub failed: usize,
}

/// Which breaker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BreakerKey {
    /// One user's relation to one server: auth and session failures.
    Pair(PairKey),
    /// One upstream origin for everyone: transport failures.
    Origin(Origin),
}

impl fmt::Display for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pair(p) => write!(f, "pair:{p}"),
            Self::Origin(o) => write!(f, "origin:{o}"),
        }
    }
}

/// A held admission slot; give it back with [`SharedState::release_slot`]. Expires on its own
/// after the lease TTL so that a crashed replica cannot keep an origin's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotLease(pub u64);

#[async_trait]
pub trait SharedState: Send + Sync + fmt::Debug + 'static {
    // === tracker ===

    /// Marks the pair active unless an unexpired active entry exists; true when this call set it.
    async fn try_mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Marks the pair active whatever was there (an explicit reconnect).
    async fn mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Whether an unexpired active entry exists; an expired one is dropped by this read.
    async fn is_active(&self, pair: &PairKey, now: Timestamp) -> Result<bool, StoreError>;
    async fn clear_active(&self, pair: &PairKey) -> Result<(), StoreError>;
    /// Adds one failure and returns the updated record; the record expires `ttl` after `now`.
    async fn record_failure(
        &self,
        pair: &PairKey,
        error: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<FailedEntry, StoreError>;
    async fn failure(
        &self,
        pair: &PairKey,
        now: Timestamp,
    ) -> Result<Option<FailedEntry>, StoreError>;
    async fn clear_failure(&self, pair: &PairKey) -> Result<(), StoreError>;
    async fn tracker_stats(&self, now: Timestamp) -> Result<TrackerStats, StoreError>;

    // === breakers ===

    /// The breaker's record, without changing it.
    async fn breaker(&self, key: &BreakerKey) -> Result<BreakerRecord, StoreError>;
    /// Applies one event with [`BreakerRecord::apply`] atomically and returns the verdict.
    async fn breaker_apply(
        &self,
        key: &BreakerKey,
        event: BreakerEvent,
        config: &BreakerConfig,
        now: Timestamp,
    ) -> Result<BreakerVerdict, StoreError>;
    async fn breaker_reset(&self, key: &BreakerKey) -> Result<(), StoreError>;

    // === admission ===

    /// Takes one of `max` in-flight slots of the origin, or `None` when all are held.
    async fn acquire_slot(
        &self,
        origin: &Origin,
        max: u32,
        lease_ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SlotLease>, StoreError>;
    async fn release_slot(&self, origin: &Origin, lease: SlotLease) -> Result<(), StoreError>;
    /// Takes one start from the origin's rate with [`crate::rate::gcra`]; `Some(wait)` when the
    /// caller must wait that long and ask again.
    async fn take_rate(
        &self,
        origin: &Origin,
        limit: &RateLimit,
        now_us: u64,
    ) -> Result<Option<Duration>, StoreError>;
}
