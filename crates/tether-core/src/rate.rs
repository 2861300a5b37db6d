//! Attempts per second per origin, as a GCRA (generic cell rate algorithm): one timestamp per
//! key, updated in one step, which is what a shared backend can do atomically.

use std::time::Duration;

/// A rate of `per_second` with bursts of `burst`, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Time between two attempts at the steady rate.
    pub interval_us: u64,
    /// How far ahead of the steady schedule a burst may run.
    pub tolerance_us: u64,
}

impl RateLimit {
    /// `None` when `per_second` is 0 (no rate limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        if per_second == 0 {
            return None;
        }
        let interval_us = 1_000_000 / u64::from(per_second).max(1);
        let interval_us = interval_us.max(1);
        let tolerance_us = interval_us.saturating_mul(u64::from(burst.max(1)) - 1);
        Some(Self {
            interval_us,
            tolerance_us,
        })
    }
}

/// Decides one attempt: `Ok(new theoretical arrival time)` to go ahead (store it), or `Err(wait)`.
pub fn gcra(tat_us: Option<u64>, now_us: u64, limit: &RateLimit) -> Result<u64, Duration> {
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let allowed_at = tat.saturating_sub(limit.tolerance_us);
    if now_us < allowed_at {
        Err(Duration::from_micros(allowed_at - now_us))
    } else {
        Ok(tat.saturating_add(limit.interval_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_steady_rate_applies() {
        let limit = RateLimit::new(10, 3).expect("limited");
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, &limit).expect("burst passes"));
        }
        let wait = gcra(tat, 0, &limit).expect_err("fourth waits");
        assert_eq!(wait, Duration::from_millis(100));
        assert!(gcra(tat, 100_000, &limit).is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimit::new(0, 5).is_none());
    }

    #[test]
    fn over_a_second_of_time_at_most_rate_plus_burst_pass() {
        let limit = RateLimit::new(20, 20).expect("limited");
        let mut tat = None;
        let mut passed = 0;
        for ms in 0..1000u64 {
            for _ in 0..5 {
                if let Ok(next) = gcra(tat, ms * 1000, &limit) {
                    tat = Some(next);
                    passed += 1;
                }
            }
        }
        assert!((20..=40).contains(&passed), "passed {passed}");
    }
}
