//! Circuit breakers at two levels (SPEC §3): per (user, server) for that user's auth and session
//! failures, per upstream origin for transport failures. Failures open them, not cycles; one
//! user's failures never block another user's healthy pair.

mod record;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

pub use record::{
    BreakerEvent, BreakerPhase, BreakerRecord, BreakerVerdict, MIN_OPEN_PERIOD, open_period,
};

use crate::config::BreakerConfig;
use crate::connector::Blame;
use crate::error::StoreError;
use crate::ids::{Origin, PairKey};
use crate::shared::{BreakerKey, SharedState};
use crate::time::{Clock, Timestamp};

/// Permission from both breakers of an attempt; report its outcome with
/// [`CircuitBreakers::success`], [`CircuitBreakers::failure`] or [`CircuitBreakers::abandon`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPass {
    origin: BreakerKey,
    pair: BreakerKey,
    origin_probe: bool,
    pair_probe: bool,
}

/// Which breaker refused, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerRejection {
    pub blame: Blame,
    pub until: Timestamp,
}

#[derive(Debug)]
pub struct CircuitBreakers {
    shared: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    config: BreakerConfig,
    opens: AtomicU64,
    /// Woken when an origin's half-open probe ends here (success, failure, handed back), so
    /// that pairs held back by the origin look again at once instead of sleeping out a probe
    /// timeout. Replicas that did not run the probe still wake at the breaker's deadline.
    probe_ended: Notify,
}

impl CircuitBreakers {
    pub fn new(shared: Arc<dyn SharedState>, clock: Arc<dyn Clock>, config: BreakerConfig) -> Self {
        Self {
            shared,
            clock,
            config,
            opens: AtomicU64::new(0),
            probe_ended: Notify::new(),
        }
    }

    /// Asks the origin breaker, then the pair's. A probe granted by the first is handed back
    /// when the second refuses, so that a refused attempt never holds a half-open slot.
    ///
    /// Breakers fail open: when the shared state cannot answer, the attempt goes ahead (the
    /// admission limit still protects the upstream) and the error is logged.
    pub async fn admit(
        &self,
        origin: &Origin,
        pair: &PairKey,
    ) -> Result<BreakerPass, BreakerRejection> {
        let origin_key = BreakerKey::Origin(origin.clone());
        let pair_key = BreakerKey::Pair(pair.clone());
        let origin_probe = match self.apply(&origin_key, BreakerEvent::Admit).await {
            Some(BreakerVerdict::Reject { until }) => {
                return Err(BreakerRejection {
                    blame: Blame::Origin,
                    until,
                });
            }
            verdict => verdict == Some(BreakerVerdict::Probe),
        };
        let pair_probe = match self.apply(&pair_key, BreakerEvent::Admit).await {
            Some(BreakerVerdict::Reject { until }) => {
                if origin_probe {
                    self.apply(&origin_key, BreakerEvent::Abandon).await;
                }
                return Err(BreakerRejection {
                    blame: Blame::Pair,
                    until,
                });
            }
            verdict => verdict == Some(BreakerVerdict::Probe),
        };
        Ok(BreakerPass {
            origin: origin_key,
            pair: pair_key,
            origin_probe,
            pair_probe,
        })
    }

    /// Until when either breaker is open now, without taking a probe (for eligibility).
    pub async fn open_until(&self, origin: &Origin, pair: &PairKey) -> Option<Timestamp> {
        let now = self.clock.now();
        let mut until = None;
        for key in [
            BreakerKey::Origin(origin.clone()),
            BreakerKey::Pair(pair.clone()),
        ] {
            match self.shared.breaker(&key).await {
                Ok(record) => {
                    if let BreakerPhase::Open { until: t } = record.phase(now) {
                        until = until.max(Some(t));
                    }
                }
                Err(error) => tracing::warn!(breaker = %key, %error, "breaker state unavailable"),
            }
        }
        until
    }

    pub async fn success(&self, pass: &BreakerPass) {
        self.apply(&pass.origin, BreakerEvent::Success).await;
        self.apply(&pass.pair, BreakerEvent::Success).await;
        if pass.origin_probe {
            tracing::info!(breaker = %pass.origin, "origin probe succeeded; circuit closed");
            self.probe_ended.notify_waiters();
        }
    }

    /// Resolves when an origin probe run by this process ends. Create it before reading the
    /// breaker so that an end in between is not missed.
    pub fn probe_ended(&self) -> Notified<'_> {
        self.probe_ended.notified()
    }

    /// Until when the breakers would refuse an attempt of the pair now: the later deadline of an
    /// open breaker or of a running half-open probe; `None` when an attempt would go through.
    pub async fn holds_back(&self, origin: &Origin, pair: &PairKey) -> Option<Timestamp> {
        let now = self.clock.now();
        let mut until = None;
        for key in [
            BreakerKey::Origin(origin.clone()),
            BreakerKey::Pair(pair.clone()),
        ] {
            let record = match self.shared.breaker(&key).await {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(breaker = %key, %error, "breaker state unavailable");
                    continue;
                }
            };
            let held = match record.phase(now) {
                BreakerPhase::Closed => None,
                BreakerPhase::Open { until } => Some(until),
                BreakerPhase::HalfOpen => record.probe_until.filter(|t| now < *t),
            };
            until = until.max(held);
        }
        until
    }

    /// Counts the failure against the breaker `blame` names and hands back the other's probe.
    /// Returns until when the blamed breaker is open, if this failure opened it.
    pub async fn failure(
        &self,
        pass: &BreakerPass,
        blame: Blame,
        retry_after: Option<Duration>,
    ) -> Option<Timestamp> {
        let (blamed, probe, other, other_probe) = match blame {
            Blame::Origin => (&pass.origin, pass.origin_probe, &pass.pair, pass.pair_probe),
            Blame::Pair => (&pass.pair, pass.pair_probe, &pass.origin, pass.origin_probe),
            Blame::Nobody => {
                self.abandon(pass).await;
                return None;
            }
        };
        if other_probe {
            self.apply(other, BreakerEvent::Abandon).await;
        }
        let ends_origin_probe = pass.origin_probe;
        let event = if probe {
            BreakerEvent::ProbeFailure { retry_after }
        } else {
            BreakerEvent::Failure { retry_after }
        };
        let opened = match self.apply(blamed, event).await {
            Some(BreakerVerdict::Opened { until }) => {
                self.opens.fetch_add(1, Ordering::Relaxed);
                tracing::info!(breaker = %blamed, %until, "circuit breaker opened");
                Some(until)
            }
            _ => None,
        };
        if ends_origin_probe {
            self.probe_ended.notify_waiters();
        }
        opened
    }

    /// Whether the origin's breaker opened after this attempt was admitted, so that an attempt
    /// that waited in the admission queue does not knock on an origin known to be down. The
    /// probe itself is never held back.
    pub async fn origin_opened_since(&self, pass: &BreakerPass) -> Option<Timestamp> {
        if pass.origin_probe {
            return None;
        }
        match self.shared.breaker(&pass.origin).await {
            Ok(record) => match record.phase(self.clock.now()) {
                BreakerPhase::Open { until } => Some(until),
                BreakerPhase::HalfOpen | BreakerPhase::Closed => None,
            },
            Err(error) => {
                tracing::warn!(breaker = %pass.origin, %error, "breaker state unavailable");
                None
            }
        }
    }

    /// The attempt neither succeeded nor failed (rate limited, cancelled): free any probe.
    pub async fn abandon(&self, pass: &BreakerPass) {
        if pass.origin_probe {
            self.apply(&pass.origin, BreakerEvent::Abandon).await;
            self.probe_ended.notify_waiters();
        }
        if pass.pair_probe {
            self.apply(&pass.pair, BreakerEvent::Abandon).await;
        }
    }

    /// A new authorization by the user wipes the pair's breaker (LibreChat #13645). The origin's
    /// is left alone: it protects the upstream for everyone.
    pub async fn reset_pair(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.shared
            .breaker_reset(&BreakerKey::Pair(pair.clone()))
            .await
    }

    pub async fn record(&self, key: &BreakerKey) -> Result<BreakerRecord, StoreError> {
        self.shared.breaker(key).await
    }

    /// Breakers opened by this process since start.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    async fn apply(&self, key: &BreakerKey, event: BreakerEvent) -> Option<BreakerVerdict> {
        match self
            .shared
            .breaker_apply(key, event, &self.config, self.clock.now())
            .await
        {
            Ok(verdict) => Some(verdict),
            Err(error) => {
                tracing::warn!(breaker = %key, %error, "breaker state unavailable; failing open");
                None
            }
        }
    }
}
