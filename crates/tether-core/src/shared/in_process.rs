//! The embedded default: shared state that is shared by the tasks of one process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{BreakerKey, FailedEntry, SharedState, SlotLease, TrackerStats};
use crate::breaker::{BreakerEvent, BreakerRecord, BreakerVerdict};
use crate::config::BreakerConfig;
use crate::error::StoreError;
use crate::ids::{Origin, PairKey};
use crate::rate::{RateLimit, gcra};
use crate::sync::lock;
use crate::time::Timestamp;

/// Each map behind its own lock: the critical sections are a few map operations long, and
/// keeping concepts apart keeps a tracker scan from stalling admissions.
#[derive(Debug, Default)]
pub struct InProcessState {
    active: Mutex<HashMap<PairKey, Timestamp>>,
    failed: Mutex<HashMap<PairKey, (FailedEntry, Timestamp)>>,
    breakers: Mutex<HashMap<BreakerKey, BreakerRecord>>,
    slots: Mutex<HashMap<Origin, HashMap<u64, Timestamp>>>,
    rates: Mutex<HashMap<Origin, u64>>,
    next_lease: AtomicU64,
}

impl InProcessState {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SharedState for InProcessState {
    async fn try_mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut active = lock(&self.active);
        match active.get(pair) {
            Some(expires) if *expires > now => Ok(false),
            _ => {
                active.insert(pair.clone(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        lock(&self.active).insert(pair.clone(), now + ttl);
        Ok(())
    }

    async fn is_active(&self, pair: &PairKey, now: Timestamp) -> Result<bool, StoreError> {
        let mut active = lock(&self.active);
        match active.get(pair) {
            Some(expires) if *expires > now => Ok(true),
            Some(_) => {
                active.remove(pair);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    async fn clear_active(&self, pair: &PairKey) -> Result<(), StoreError> {
        lock(&self.active).remove(pair);
        Ok(())
    }

    async fn record_failure(
        &self,
        pair: &PairKey,
        error: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<FailedEntry, StoreError> {
        let mut failed = lock(&self.failed);
        let attempts = match failed.get(pair) {
            Some((entry, expires)) if *expires > now => entry.attempts.saturating_add(1),
            _ => 1,
        };
        let entry = FailedEntry {
            attempts,
            last_failure: now,
            last_error: error.to_owned(),
        };
        failed.insert(pair.clone(), (entry.clone(), now + ttl));
        Ok(entry)
    }

    async fn failure(
        &self,
        pair: &PairKey,
        now: Timestamp,
    ) -> Result<Option<FailedEntry>, StoreError> {
        let mut failed = lock(&self.failed);
        match failed.get(pair) {
            Some((entry, expires)) if *expires > now => Ok(Some(entry.clone())),
            Some(_) => {
                failed.remove(pair);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn clear_failure(&self, pair: &PairKey) -> Result<(), StoreError> {
        lock(&self.failed).remove(pair);
        Ok(())
    }

    async fn tracker_stats(&self, now: Timestamp) -> Result<TrackerStats, StoreError> {
        let active = {
            let mut map = lock(&self.active);
            map.retain(|_, expires| *expires > now);
            map.len()
        };
        let failed = {
            let mut map = lock(&self.failed);
            map.retain(|_, (_, expires)| *expires > now);
            map.len()
        };
        Ok(TrackerStats { active, failed })
    }

    async fn breaker(&self, key: &BreakerKey) -> Result<BreakerRecord, StoreError> {
        Ok(lock(&self.breakers).get(key).copied().unwrap_or_default())
    }

    async fn breaker_apply(
        &self,
        key: &BreakerKey,
        event: BreakerEvent,
        config: &BreakerConfig,
        now: Timestamp,
    ) -> Result<BreakerVerdict, StoreError> {
        let mut breakers = lock(&self.breakers);
        let record = breakers.get(key).copied().unwrap_or_default();
        let (next, verdict) = record.apply(event, now, config);
        if next.is_pristine() {
            breakers.remove(key);
        } else if next != record {
            breakers.insert(key.clone(), next);
        }
        Ok(verdict)
    }

    async fn breaker_reset(&self, key: &BreakerKey) -> Result<(), StoreError> {
        lock(&self.breakers).remove(key);
        Ok(())
    }

    async fn acquire_slot(
        &self,
        origin: &Origin,
        max: u32,
        lease_ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SlotLease>, StoreError> {
        let mut slots = lock(&self.slots);
        let held = slots.entry(origin.clone()).or_default();
        held.retain(|_, expires| *expires > now);
        if held.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Ok(None);
        }
        let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        held.insert(id, now + lease_ttl);
        Ok(Some(SlotLease(id)))
    }

    async fn release_slot(&self, origin: &Origin, lease: SlotLease) -> Result<(), StoreError> {
        let mut slots = lock(&self.slots);
        if let Some(held) = slots.get_mut(origin) {
            held.remove(&lease.0);
            if held.is_empty() {
                slots.remove(origin);
            }
        }
        Ok(())
    }

    async fn take_rate(
        &self,
        origin: &Origin,
        limit: &RateLimit,
        now_us: u64,
    ) -> Result<Option<Duration>, StoreError> {
        let mut rates = lock(&self.rates);
        match gcra(rates.get(origin).copied(), now_us, limit) {
            Ok(tat) => {
                rates.insert(origin.clone(), tat);
                Ok(None)
            }
            Err(wait) => Ok(Some(wait)),
        }
    }
}
