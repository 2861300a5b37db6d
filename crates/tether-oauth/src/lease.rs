//! Holding a [`RefreshLock`]: acquisition with a bounded wait, and release that also happens
//! when the holder is dropped (a cancelled request must not keep a pair locked until expiry).

use std::sync::Arc;
use std::time::Duration;

use oauth2::CsrfToken;
use tether_core::{PairKey, StoreError};
use tokio::time::Instant;
use tracing::debug;

use crate::store::RefreshLock;

/// Polling interval bounds while someone else refreshes: short enough that waiters pick up the
/// new token soon after it is saved, long enough not to hammer a shared store.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Lease {
    lock: Arc<dyn RefreshLock>,
    pair: PairKey,
    owner: String,
    released: bool,
}

impl Lease {
    /// Waits up to `max_wait` for the lease. `Ok(None)`: still held by someone else.
    pub async fn acquire(
        lock: Arc<dyn RefreshLock>,
        pair: &PairKey,
        ttl: Duration,
        max_wait: Duration,
    ) -> Result<Option<Self>, StoreError> {
        // 128 random bits, the same generator oauth2 uses for `state`.
        let owner = CsrfToken::new_random().secret().clone();
        let deadline = Instant::now() + max_wait;
        let mut pause = POLL_MIN;
        loop {
            if lock.try_acquire(pair, &owner, ttl).await? {
                return Ok(Some(Self {
                    lock,
                    pair: pair.clone(),
                    owner,
                    released: false,
                }));
            }
            if Instant::now() + pause > deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    pub async fn still_held(&self) -> Result<bool, StoreError> {
        self.lock.still_held(&self.pair, &self.owner).await
    }

    pub async fn release(mut self) -> Result<(), StoreError> {
        self.released = true;
        self.lock.release(&self.pair, &self.owner).await.map(|_| ())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to release on: the lease expires by itself.
            return;
        };
        let lock = self.lock.clone();
        let pair = self.pair.clone();
        let owner = std::mem::take(&mut self.owner);
        runtime.spawn(async move {
            if let Err(error) = lock.release(&pair, &owner).await {
                debug!(%pair, %error, "releasing a dropped refresh lease failed; it will expire");
            }
        });
    }
}
