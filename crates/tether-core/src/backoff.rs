//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and
//! Jitter"): the delay is uniform in [0, min(cap, base × 2^attempt)], which spreads a crowd of
//! retries over the whole window instead of synchronising them.

use std::time::Duration;

use crate::config::BackoffConfig;

#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self { config }
    }

    /// The upper bound of the window for the `attempt`-th retry (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.config
            .base
            .checked_mul(factor)
            .map_or(self.config.cap, |d| d.min(self.config.cap))
    }

    /// The delay for `attempt` given a uniform sample `unit` in [0, 1).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }

    /// The wait after a 429/503: the server's `Retry-After` (clamped to `max`) plus up to one base
    /// of jitter, so that clients told the same instant do not return in lockstep. Without a
    /// `Retry-After`, the ordinary backoff for `attempt`.
    pub fn after_rate_limit(
        &self,
        retry_after: Option<Duration>,
        max: Duration,
        attempt: u32,
    ) -> Duration {
        match retry_after {
            Some(d) => d.min(max) + self.config.base.mul_f64(rand::random::<f64>()),
            None => self.delay(attempt).min(max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_base_to_cap() {
        let b = Backoff::new(BackoffConfig::default());
        let secs: Vec<u64> = (0..8).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.delay_with(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, 0.5), Duration::from_secs(4));
        assert_eq!(b.delay_with(3, 7.0), Duration::from_secs(8));
        for _ in 0..200 {
            assert!(b.delay(10) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let b = Backoff::new(BackoffConfig::default());
        let max = Duration::from_secs(300);
        let d = b.after_rate_limit(Some(Duration::from_secs(7)), max, 0);
        assert!(
            d >= Duration::from_secs(7) && d <= Duration::from_secs(8),
            "{d:?}"
        );
        let d = b.after_rate_limit(Some(Duration::from_secs(86_400)), max, 0);
        assert!(d >= max && d <= max + Duration::from_secs(1), "{d:?}");
        assert!(b.after_rate_limit(None, max, 2) <= Duration::from_secs(4));
    }
}
