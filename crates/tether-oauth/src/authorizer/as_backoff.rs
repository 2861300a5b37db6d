//! Backoff per authorization server after a transient token-endpoint failure (5xx, 429,
//! network, timeout): callers whose tokens are still valid keep using them, and nobody asks
//! that server's token endpoint again until a jittered, growing delay has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Entry {
    failures: u32,
    until: Instant,
}

#[derive(Debug)]
pub(super) struct AsBackoff {
    min: Duration,
    max: Duration,
    /// By issuer key (the key registrations and token records carry).
    entries: Mutex<HashMap<String, Entry>>,
}

/// Between half and all of the nominal delay, so that replicas and pairs that failed together
/// do not come back together.
fn jitter_fraction() -> f64 {
    rand::random_range(0.5..=1.0)
}

fn nominal(min: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    min.saturating_mul(1 << doublings).min(max)
}

impl AsBackoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `issuer`'s token endpoint is not to be asked now.
    pub(super) fn blocked(&self, issuer: &str) -> bool {
        self.entries
            .lock()
            .map(|entries| {
                entries
                    .get(issuer)
                    .is_some_and(|e| e.until > Instant::now())
            })
            .unwrap_or(false)
    }

    /// Records a transient failure; returns how long `issuer` is left alone.
    pub(super) fn failed(&self, issuer: &str) -> Duration {
        let Ok(mut entries) = self.entries.lock() else {
            return Duration::ZERO;
        };
        let entry = entries.entry(issuer.to_owned()).or_insert(Entry {
            failures: 0,
            until: Instant::now(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let delay = nominal(self.min, self.max, entry.failures).mul_f64(jitter_fraction());
        entry.until = Instant::now() + delay;
        delay
    }

    pub(super) fn succeeded(&self, issuer: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(issuer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failed_server_is_left_alone_for_a_growing_bounded_delay() {
        let backoff = AsBackoff::new(Duration::from_secs(2), Duration::from_secs(60));
        assert!(!backoff.blocked("as"));
        let first = backoff.failed("as");
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
        assert!(backoff.blocked("as"));
        assert!(
            !backoff.blocked("other"),
            "only the failed server backs off"
        );
        tokio::time::sleep(first + Duration::from_millis(1)).await;
        assert!(!backoff.blocked("as"));

        let mut last = first;
        for _ in 0..10 {
            last = backoff.failed("as");
        }
        assert!(last >= Duration::from_secs(30) && last <= Duration::from_secs(60));
        backoff.succeeded("as");
        assert!(!backoff.blocked("as"), "a success ends the backoff");
    }
}
