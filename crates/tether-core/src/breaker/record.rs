//! The breaker state machine as pure functions over a small record, so that the in-process
//! state and Redis apply exactly the same transitions atomically on one key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::BreakerConfig;
use crate::time::Timestamp;

/// Everything a breaker remembers. The default record is a closed breaker with no failures.
///
/// The phase is derived, not stored: no `open_until` → closed; `now < open_until` → open;
/// otherwise half-open, with `probe_until` marking a probe in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BreakerRecord {
    pub consecutive_failures: u32,
    /// How many times the breaker opened since it was last closed by a success.
    pub opens: u32,
    pub open_until: Option<Timestamp>,
    pub probe_until: Option<Timestamp>,
}

/// What happened, reported to a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerEvent {
    /// May an attempt go ahead?
    Admit,
    Success,
    /// An attempt admitted while the breaker was closed failed; `retry_after` is the server's
    /// own word on when to come back, if it gave one.
    Failure {
        retry_after: Option<Duration>,
    },
    /// The half-open probe failed.
    ProbeFailure {
        retry_after: Option<Duration>,
    },
    /// A probe admitted here did not run (another gate refused it): let someone else probe.
    Abandon,
}

/// The breaker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerVerdict {
    /// Closed: go ahead.
    Pass,
    /// Half-open: go ahead as the single probe and report back.
    Probe,
    /// Open (or half-open with a probe running): do not attempt before `until`.
    Reject { until: Timestamp },
    /// A failure opened (or re-opened) the breaker.
    Opened { until: Timestamp },
    /// The event was recorded; the phase did not change to open.
    Recorded,
}

/// Open, half-open or closed, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerPhase {
    Closed,
    Open { until: Timestamp },
    HalfOpen,
}

impl BreakerRecord {
    pub fn phase(&self, now: Timestamp) -> BreakerPhase {
        match self.open_until {
            None => BreakerPhase::Closed,
            Some(until) if now < until => BreakerPhase::Open { until },
            Some(_) => BreakerPhase::HalfOpen,
        }
    }

    /// Whether the record says nothing a fresh record would not: the backend may delete it.
    pub fn is_pristine(&self) -> bool {
        *self == Self::default()
    }

    /// The one transition function. Returns the new record and the verdict.
    pub fn apply(
        self,
        event: BreakerEvent,
        now: Timestamp,
        config: &BreakerConfig,
    ) -> (Self, BreakerVerdict) {
        match event {
            BreakerEvent::Admit => self.admit(now, config),
            BreakerEvent::Success => (Self::default(), BreakerVerdict::Recorded),
            BreakerEvent::Failure { retry_after } => self.fail(now, config, false, retry_after),
            BreakerEvent::ProbeFailure { retry_after } => self.fail(now, config, true, retry_after),
            BreakerEvent::Abandon => (
                Self {
                    probe_until: None,
                    ..self
                },
                BreakerVerdict::Recorded,
            ),
        }
    }

    fn admit(self, now: Timestamp, config: &BreakerConfig) -> (Self, BreakerVerdict) {
        match self.phase(now) {
            BreakerPhase::Closed => (self, BreakerVerdict::Pass),
            BreakerPhase::Open { until } => (self, BreakerVerdict::Reject { until }),
            BreakerPhase::HalfOpen => match self.probe_until {
                Some(until) if now < until => (self, BreakerVerdict::Reject { until }),
                _ => (
                    Self {
                        probe_until: Some(now + config.probe_timeout),
                        ..self
                    },
                    BreakerVerdict::Probe,
                ),
            },
        }
    }

    fn fail(
        self,
        now: Timestamp,
        config: &BreakerConfig,
        probe: bool,
        retry_after: Option<Duration>,
    ) -> (Self, BreakerVerdict) {
        let consecutive_failures = self.consecutive_failures.saturating_add(1);
        // Only the probe's failure re-opens an open or half-open breaker for longer. Stragglers
        // that were admitted before it opened report the same outage again: were they to
        // re-open it, one short outage seen by many users would escalate the open period to
        // its cap and hold every user back for minutes after the origin is back.
        if self.open_until.is_some() && !probe {
            return (
                Self {
                    consecutive_failures,
                    ..self
                },
                BreakerVerdict::Recorded,
            );
        }
        if probe || consecutive_failures >= config.failure_threshold {
            // A server that says when it will be back is believed (within the cap): after a
            // short outage its `Retry-After: 1` brings the probe a second later, not after the
            // breaker's own 30 s guess. One probe per period is all the origin sees.
            let period = match retry_after {
                Some(asked) => asked.clamp(MIN_OPEN_PERIOD, config.open_cap),
                None => open_period(self.opens, config),
            };
            let until = now + period;
            let next = Self {
                consecutive_failures,
                opens: self.opens.saturating_add(1),
                open_until: Some(until),
                probe_until: None,
            };
            (next, BreakerVerdict::Opened { until })
        } else {
            (
                Self {
                    consecutive_failures,
                    ..self
                },
                BreakerVerdict::Recorded,
            )
        }
    }
}

/// The shortest open period, whatever `Retry-After` says: `0` must not make the breaker useless.
pub const MIN_OPEN_PERIOD: Duration = Duration::from_secs(1);

/// The open period after `opens` earlier opens: base × 2^opens, capped.
pub fn open_period(opens: u32, config: &BreakerConfig) -> Duration {
    let factor = 2u32.saturating_pow(opens.min(31));
    config
        .open_base
        .checked_mul(factor)
        .map_or(config.open_cap, |d| d.min(config.open_cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig::default()
    }

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let mut r = BreakerRecord::default();
        for i in 1..5 {
            let (next, v) = r.apply(BreakerEvent::Failure { retry_after: None }, t(i), &cfg());
            assert_eq!(v, BreakerVerdict::Recorded);
            r = next;
        }
        let (r, v) = r.apply(BreakerEvent::Failure { retry_after: None }, t(5), &cfg());
        assert_eq!(v, BreakerVerdict::Opened { until: t(35) });
        assert_eq!(r.phase(t(20)), BreakerPhase::Open { until: t(35) });
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let mut r = BreakerRecord::default();
        for _ in 0..4 {
            r = r
                .apply(BreakerEvent::Failure { retry_after: None }, t(1), &cfg())
                .0;
        }
        r = r.apply(BreakerEvent::Success, t(2), &cfg()).0;
        assert!(r.is_pristine());
        let (_, v) = r.apply(BreakerEvent::Failure { retry_after: None }, t(3), &cfg());
        assert_eq!(v, BreakerVerdict::Recorded);
    }

    #[test]
    fn half_open_admits_exactly_one_probe_until_it_times_out() {
        let r = BreakerRecord {
            consecutive_failures: 5,
            opens: 1,
            open_until: Some(t(30)),
            probe_until: None,
        };
        assert_eq!(
            r.apply(BreakerEvent::Admit, t(29), &cfg()).1,
            BreakerVerdict::Reject { until: t(30) }
        );
        let (r, v) = r.apply(BreakerEvent::Admit, t(30), &cfg());
        assert_eq!(v, BreakerVerdict::Probe);
        let (r, v) = r.apply(BreakerEvent::Admit, t(31), &cfg());
        assert_eq!(v, BreakerVerdict::Reject { until: t(90) });
        // The prober vanished: after the probe timeout someone else may probe.
        assert_eq!(
            r.apply(BreakerEvent::Admit, t(90), &cfg()).1,
            BreakerVerdict::Probe
        );
        // An abandoned probe frees the slot at once.
        let (r, _) = r.apply(BreakerEvent::Abandon, t(32), &cfg());
        assert_eq!(
            r.apply(BreakerEvent::Admit, t(32), &cfg()).1,
            BreakerVerdict::Probe
        );
    }

    #[test]
    fn stragglers_failing_while_open_do_not_extend_it_but_a_failed_probe_does() {
        let (mut r, _) = BreakerRecord::default().apply(
            BreakerEvent::Failure { retry_after: None },
            t(0),
            &cfg(),
        );
        for _ in 0..4 {
            r = r
                .apply(BreakerEvent::Failure { retry_after: None }, t(1), &cfg())
                .0;
        }
        assert_eq!(r.phase(t(2)), BreakerPhase::Open { until: t(31) });
        for s in 2..40 {
            let (next, v) = r.apply(BreakerEvent::Failure { retry_after: None }, t(s), &cfg());
            assert_eq!(v, BreakerVerdict::Recorded, "straggler at {s} s");
            r = next;
        }
        assert_eq!(r.opens, 1);
        let (r, v) = r.apply(BreakerEvent::Admit, t(40), &cfg());
        assert_eq!(v, BreakerVerdict::Probe);
        let (_, v) = r.apply(
            BreakerEvent::ProbeFailure { retry_after: None },
            t(41),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(101) });
    }

    #[test]
    fn a_retry_after_sets_the_open_period_within_bounds() {
        let secs = |d: u64| Some(Duration::from_secs(d));
        let mut r = BreakerRecord::default();
        for _ in 0..4 {
            r = r
                .apply(
                    BreakerEvent::Failure {
                        retry_after: secs(1),
                    },
                    t(0),
                    &cfg(),
                )
                .0;
        }
        let (r, v) = r.apply(
            BreakerEvent::Failure {
                retry_after: secs(1),
            },
            t(1),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(2) });
        let (r, v) = r.apply(BreakerEvent::Admit, t(2), &cfg());
        assert_eq!(v, BreakerVerdict::Probe);
        // The probe fails and the server still says 1 s: not doubled, the server knows best.
        let (r, v) = r.apply(
            BreakerEvent::ProbeFailure {
                retry_after: secs(1),
            },
            t(3),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(4) });
        // Zero is raised to the floor, a day is cut to the cap.
        let (_, v) = r.apply(
            BreakerEvent::ProbeFailure {
                retry_after: secs(0),
            },
            t(4),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(5) });
        let (_, v) = r.apply(
            BreakerEvent::ProbeFailure {
                retry_after: secs(86_400),
            },
            t(4),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(304) });
        // Without one, the exponential period resumes from the opens counted so far.
        let (_, v) = r.apply(
            BreakerEvent::ProbeFailure { retry_after: None },
            t(4),
            &cfg(),
        );
        assert_eq!(v, BreakerVerdict::Opened { until: t(124) });
    }

    #[test]
    fn open_period_doubles_per_reopen_up_to_the_cap() {
        let periods: Vec<u64> = (0..6).map(|n| open_period(n, &cfg()).as_secs()).collect();
        assert_eq!(periods, [30, 60, 120, 240, 300, 300]);
        assert_eq!(open_period(u32::MAX, &cfg()).as_secs(), 300);
    }
}
