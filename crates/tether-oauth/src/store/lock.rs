//! Single flight for refreshes per (user, server).
//!
//! Two refreshes with one refresh token destroy the token family at servers with reuse
//! detection (LibreChat #14583), so load → refresh → save runs under a lease that every replica
//! honours. The lease expires so that a crashed holder cannot block a pair forever; the holder
//! checks [`RefreshLock::still_held`] before saving so that it never overwrites the result of a
//! refresh that started after its lease ran out.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tether_core::{Clock, PairKey, StoreError, SystemClock, Timestamp};
use tokio::sync::Mutex;

#[async_trait]
pub trait RefreshLock: Send + Sync + fmt::Debug + 'static {
    /// Takes the lease for `pair` as `owner` if it is free or expired; `false` if someone else
    /// holds it.
    async fn try_acquire(
        &self,
        pair: &PairKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease back, only if `owner` still holds it. Returns whether it did.
    async fn release(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError>;

    /// Whether `owner` holds an unexpired lease on `pair`.
    async fn still_held(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone)]
pub struct MemoryRefreshLock {
    leases: Arc<Mutex<HashMap<PairKey, (String, Timestamp)>>>,
    /// Decides which leases expired.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryRefreshLock {
    fn default() -> Self {
        Self {
            leases: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryRefreshLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Expires leases by `clock` (tests: `TokioClock`, on paused time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl RefreshLock for MemoryRefreshLock {
    async fn try_acquire(
        &self,
        pair: &PairKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut leases = self.leases.lock().await;
        match leases.get(pair) {
            Some((holder, expires_at)) if *expires_at > now && holder != owner => Ok(false),
            _ => {
                leases.insert(pair.clone(), (owner.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().await;
        if leases.get(pair).is_some_and(|(holder, _)| holder == owner) {
            leases.remove(pair);
            return Ok(true);
        }
        Ok(false)
    }

    async fn still_held(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self
            .leases
            .lock()
            .await
            .get(pair)
            .is_some_and(|(holder, expires_at)| holder == owner && *expires_at > now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_owner_releases_and_an_expired_lease_can_be_taken_over() {
        let lock = MemoryRefreshLock::new();
        let pair = PairKey::new("u", "s");
        let ttl = Duration::from_secs(60);
        assert!(lock.try_acquire(&pair, "a", ttl).await.expect("acquire"));
        assert!(!lock.try_acquire(&pair, "b", ttl).await.expect("acquire"));
        assert!(!lock.release(&pair, "b").await.expect("release"));
        assert!(lock.still_held(&pair, "a").await.expect("held"));
        assert!(lock.release(&pair, "a").await.expect("release"));
        assert!(!lock.still_held(&pair, "a").await.expect("held"));

        assert!(
            lock.try_acquire(&pair, "a", Duration::ZERO)
                .await
                .expect("acquire")
        );
        assert!(
            lock.try_acquire(&pair, "b", ttl)
                .await
                .expect("expired lease is free")
        );
        assert!(!lock.still_held(&pair, "a").await.expect("held"));
    }
}
