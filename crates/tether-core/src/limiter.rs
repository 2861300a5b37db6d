//! Per-origin admission: at most N connection attempts in flight and R started per second per
//! upstream origin, whatever the number of users (SPEC §3). A login storm queues here instead of
//! flooding the upstream.
//!
//! Two layers. Locally, a fair (FIFO) semaphore per origin orders this replica's waiters by
//! arrival and lets each waiter give up at its own deadline or be cancelled by dropping its
//! future. Then the shared state grants a slot (the limit across replicas) and a start from the
//! rate. With the in-process state both agree, so the shared step never waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::AdmissionConfig;
use crate::ids::Origin;
use crate::rate::RateLimit;
use crate::shared::{SharedState, SlotLease};
use crate::sync::lock;
use crate::time::Clock;

/// How often a waiter re-asks the shared state for a slot held by another replica.
const SHARED_SLOT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("gave up waiting for a connection slot to {origin} after {waited:?}")]
    QueueTimeout { origin: Origin, waited: Duration },
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct AdmissionCounters {
    pub admitted: AtomicU64,
    /// Admissions that could not start at once (queued behind the in-flight limit or the rate).
    pub waited: AtomicU64,
    pub timed_out: AtomicU64,
}

#[derive(Debug)]
pub struct OriginLimiter {
    shared: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    config: AdmissionConfig,
    rate: Option<RateLimit>,
    local: Mutex<HashMap<Origin, Arc<Semaphore>>>,
    counters: AdmissionCounters,
}

/// The right to run one connection attempt to an origin. Give it back with
/// [`AdmissionPermit::release`]; dropping it releases too, in a background task.
#[derive(Debug)]
pub struct AdmissionPermit {
    origin: Origin,
    lease: Option<SlotLease>,
    shared: Arc<dyn SharedState>,
    _local: OwnedSemaphorePermit,
}

impl OriginLimiter {
    pub fn new(
        shared: Arc<dyn SharedState>,
        clock: Arc<dyn Clock>,
        config: AdmissionConfig,
    ) -> Self {
        let burst = config.burst.unwrap_or(config.per_second);
        let rate = RateLimit::new(config.per_second, burst);
        Self {
            shared,
            clock,
            config,
            rate,
            local: Mutex::new(HashMap::new()),
            counters: AdmissionCounters::default(),
        }
    }

    pub fn counters(&self) -> &AdmissionCounters {
        &self.counters
    }

    /// The default deadline for a waiter arriving now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.config.queue_timeout
    }

    /// Waits in line for the origin until `deadline`. Cancel by dropping the future: the
    /// waiter leaves the queue and takes nothing with it.
    pub async fn acquire(
        &self,
        origin: &Origin,
        deadline: Instant,
    ) -> Result<AdmissionPermit, AdmissionError> {
        let started = Instant::now();
        let semaphore = self.semaphore(origin);
        let timed_out = || {
            self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            AdmissionError::QueueTimeout {
                origin: origin.clone(),
                waited: started.elapsed(),
            }
        };
        let mut waited = false;
        let local = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                waited = true;
                match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; treat it like a timeout if it ever is.
                    Ok(Err(_)) | Err(_) => return Err(timed_out()),
                }
            }
        };
        let lease = loop {
            match self
                .shared
                .acquire_slot(
                    origin,
                    self.config.max_in_flight,
                    self.config.lease_ttl,
                    self.clock.now(),
                )
                .await
            {
                Ok(Some(lease)) => break Some(lease),
                Ok(None) => {
                    waited = true;
                    if Instant::now() + SHARED_SLOT_POLL > deadline {
                        return Err(timed_out());
                    }
                    tokio::time::sleep(SHARED_SLOT_POLL).await;
                }
                Err(error) => {
                    // Without the shared state the local semaphore still bounds this replica.
                    tracing::warn!(%origin, %error, "shared admission unavailable; admitting on local limit");
                    break None;
                }
            }
        };
        let permit = AdmissionPermit {
            origin: origin.clone(),
            lease,
            shared: self.shared.clone(),
            _local: local,
        };
        if let Some(limit) = &self.rate {
            loop {
                let now_us = self.clock.now().as_millis().saturating_mul(1000);
                match self.shared.take_rate(origin, limit, now_us).await {
                    Ok(None) => break,
                    Ok(Some(wait)) => {
                        waited = true;
                        if Instant::now() + wait > deadline {
                            permit.release().await;
                            return Err(timed_out());
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Err(error) => {
                        tracing::warn!(%origin, %error, "shared rate unavailable; not rate limiting");
                        break;
                    }
                }
            }
        }
        self.counters.admitted.fetch_add(1, Ordering::Relaxed);
        if waited {
            self.counters.waited.fetch_add(1, Ordering::Relaxed);
        }
        Ok(permit)
    }

    fn semaphore(&self, origin: &Origin) -> Arc<Semaphore> {
        let mut local = lock(&self.local);
        local
            .entry(origin.clone())
            .or_insert_with(|| {
                let permits = usize::try_from(self.config.max_in_flight).unwrap_or(usize::MAX);
                Arc::new(Semaphore::new(permits))
            })
            .clone()
    }
}

impl AdmissionPermit {
    pub async fn release(mut self) {
        if let Some(lease) = self.lease.take()
            && let Err(error) = self.shared.release_slot(&self.origin, lease).await
        {
            tracing::warn!(origin = %self.origin, %error, "could not release admission slot; it expires by itself");
        }
    }
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let shared = self.shared.clone();
        let origin = self.origin.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = shared.release_slot(&origin, lease).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::InProcessState;
    use crate::time::{Timestamp, TokioClock};

    fn limiter(max_in_flight: u32, per_second: u32) -> Arc<OriginLimiter> {
        Arc::new(OriginLimiter::new(
            Arc::new(InProcessState::new()),
            Arc::new(TokioClock::starting_at(Timestamp::from_millis(0))),
            AdmissionConfig {
                max_in_flight,
                per_second,
                ..AdmissionConfig::default()
            },
        ))
    }

    fn origin() -> Origin {
        Origin::from_url("https://up.example").expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_admitted_in_arrival_order() {
        let limiter = limiter(1, 0);
        let first = limiter
            .acquire(&origin(), limiter.deadline())
            .await
            .expect("free");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (limiter, order) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = limiter
                    .acquire(&origin(), limiter.deadline())
                    .await
                    .expect("admitted");
                order.lock().expect("not poisoned").push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
                permit.release().await;
            }));
            // Let each waiter queue before the next arrives.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        first.release().await;
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock().expect("not poisoned"), [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_at_its_own_deadline_and_a_cancelled_one_leaves_the_queue() {
        let limiter = limiter(1, 0);
        let held = limiter
            .acquire(&origin(), limiter.deadline())
            .await
            .expect("free");
        let short = Instant::now() + Duration::from_secs(2);
        let err = limiter
            .acquire(&origin(), short)
            .await
            .expect_err("times out");
        assert!(matches!(err, AdmissionError::QueueTimeout { .. }));
        assert!(err.to_string().contains("up.example"));

        // Cancelled by dropping: does not keep a place that would block later waiters.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(10),
            limiter.acquire(&origin(), limiter.deadline()),
        )
        .await;
        assert!(cancelled.is_err());
        held.release().await;
        let again = tokio::time::timeout(
            Duration::from_millis(1),
            limiter.acquire(&origin(), limiter.deadline()),
        )
        .await;
        assert!(again.is_ok(), "the cancelled waiter must not hold the slot");
        assert_eq!(limiter.counters().timed_out.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_by_the_rate() {
        let limiter = limiter(100, 10);
        let start = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..30 {
            permits.push(
                limiter
                    .acquire(&origin(), limiter.deadline())
                    .await
                    .expect("admitted"),
            );
        }
        // A burst of 10 at once, then one every 100 ms.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1_900) && elapsed <= Duration::from_millis(2_100),
            "{elapsed:?}"
        );
    }
}
