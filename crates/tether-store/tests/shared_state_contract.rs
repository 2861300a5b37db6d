//! One behavioural contract for every SharedState backend, run against the in-process default
//! and against a real Redis (127.0.0.1:6379, a fresh key prefix per test).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tether_core::breaker::{BreakerEvent, BreakerVerdict};
use tether_core::config::BreakerConfig;
use tether_core::rate::RateLimit;
use tether_core::shared::BreakerKey;
use tether_core::{Clock, InProcessState, Origin, PairKey, SharedState, SystemClock};
use tether_store::shared::{RedisState, RedisStateConfig};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn now() -> tether_core::Timestamp {
    SystemClock.now()
}

fn prefix(test: &str) -> String {
    format!("tether-test:{test}:{}", rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) ^ u64::from(std::process::id()) << 32
}

async fn redis(test: &str) -> Arc<dyn SharedState> {
    Arc::new(
        RedisState::connect(RedisStateConfig::new(REDIS_URL, prefix(test)))
            .await
            .expect("Redis must run on 127.0.0.1:6379 (.ci/run starts it)"),
    )
}

fn in_process() -> Arc<dyn SharedState> {
    Arc::new(InProcessState::new())
}

/// Runs one contract case against both backends.
macro_rules! contract {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_process() {
                super::$case(super::in_process()).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$case(super::redis(stringify!($name)).await).await;
            }
        }
    };
}

contract!(active_entries, active_entries_are_claimed_once_and_expire);
contract!(failures, failures_count_up_and_clear);
contract!(breakers, breakers_transition_and_vanish_when_pristine);
contract!(stats, counts_follow_claims_clears_and_expiry);
contract!(breaker_updates, concurrent_breaker_updates_are_never_lost);
contract!(slots, slots_are_bounded_released_and_expire);
contract!(slot_races, concurrent_slot_requests_never_exceed_the_limit);
contract!(rate, the_rate_admits_a_burst_then_asks_to_wait);

async fn active_entries_are_claimed_once_and_expire(state: Arc<dyn SharedState>) {
    let pair = PairKey::new("user:with:colons", "github");
    let other = PairKey::new("user", "with:colons:github");
    let ttl = Duration::from_millis(300);
    assert!(state.try_mark_active(&pair, ttl, now()).await.expect("ok"));
    assert!(!state.try_mark_active(&pair, ttl, now()).await.expect("ok"));
    assert!(state.is_active(&pair, now()).await.expect("ok"));
    assert!(
        !state.is_active(&other, now()).await.expect("ok"),
        "keys must not collide"
    );
    state.clear_active(&pair).await.expect("ok");
    assert!(!state.is_active(&pair, now()).await.expect("ok"));
    assert!(state.try_mark_active(&pair, ttl, now()).await.expect("ok"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!state.is_active(&pair, now()).await.expect("ok"), "expired");
    state.mark_active(&pair, ttl, now()).await.expect("ok");
    assert_eq!(state.tracker_stats(now()).await.expect("ok").active, 1);
}

async fn counts_follow_claims_clears_and_expiry(state: Arc<dyn SharedState>) {
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(60);
    let (a, b, c) = (
        PairKey::new("a", "s"),
        PairKey::new("b", "s"),
        PairKey::new("c", "s"),
    );
    assert!(state.try_mark_active(&a, short, now()).await.expect("ok"));
    assert!(!state.try_mark_active(&a, long, now()).await.expect("ok"));
    state.mark_active(&b, long, now()).await.expect("ok");
    state.mark_active(&c, long, now()).await.expect("ok");
    state.clear_active(&c).await.expect("ok");
    state
        .record_failure(&a, "refused", short, now())
        .await
        .expect("ok");
    state
        .record_failure(&b, "refused", long, now())
        .await
        .expect("ok");
    let stats = state.tracker_stats(now()).await.expect("ok");
    assert_eq!((stats.active, stats.failed), (2, 2));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let stats = state.tracker_stats(now()).await.expect("ok");
    assert_eq!(
        (stats.active, stats.failed),
        (1, 1),
        "expired entries are not counted"
    );
}

async fn failures_count_up_and_clear(state: Arc<dyn SharedState>) {
    let pair = PairKey::new("u", "s");
    let ttl = Duration::from_secs(60);
    let t = now();
    assert_eq!(state.failure(&pair, t).await.expect("ok"), None);
    let first = state
        .record_failure(&pair, "refused", ttl, t)
        .await
        .expect("ok");
    assert_eq!(first.attempts, 1);
    let second = state
        .record_failure(&pair, "timed out", ttl, t)
        .await
        .expect("ok");
    assert_eq!(second.attempts, 2);
    let read = state.failure(&pair, t).await.expect("ok").expect("present");
    assert_eq!(read, second);
    assert_eq!(read.last_error, "timed out");
    assert_eq!(read.last_failure, t);
    assert_eq!(state.tracker_stats(t).await.expect("ok").failed, 1);
    state.clear_failure(&pair).await.expect("ok");
    assert_eq!(state.failure(&pair, t).await.expect("ok"), None);
    assert_eq!(state.tracker_stats(t).await.expect("ok").failed, 0);
}

async fn breakers_transition_and_vanish_when_pristine(state: Arc<dyn SharedState>) {
    let config = BreakerConfig::default();
    let key = BreakerKey::Origin(Origin::from_url("https://up.example").expect("origin"));
    let t = now();
    for _ in 0..4 {
        assert_eq!(
            state
                .breaker_apply(
                    &key,
                    BreakerEvent::Failure { retry_after: None },
                    &config,
                    t
                )
                .await
                .expect("ok"),
            BreakerVerdict::Recorded
        );
    }
    let until = t + config.open_base;
    assert_eq!(
        state
            .breaker_apply(
                &key,
                BreakerEvent::Failure { retry_after: None },
                &config,
                t
            )
            .await
            .expect("ok"),
        BreakerVerdict::Opened { until }
    );
    assert_eq!(
        state
            .breaker_apply(&key, BreakerEvent::Admit, &config, t)
            .await
            .expect("ok"),
        BreakerVerdict::Reject { until }
    );
    assert_eq!(
        state
            .breaker_apply(&key, BreakerEvent::Admit, &config, until)
            .await
            .expect("ok"),
        BreakerVerdict::Probe
    );
    assert!(matches!(
        state
            .breaker_apply(&key, BreakerEvent::Admit, &config, until)
            .await
            .expect("ok"),
        BreakerVerdict::Reject { .. }
    ));
    state
        .breaker_apply(&key, BreakerEvent::Success, &config, until)
        .await
        .expect("ok");
    assert!(state.breaker(&key).await.expect("ok").is_pristine());
    state
        .breaker_apply(
            &key,
            BreakerEvent::Failure { retry_after: None },
            &config,
            until,
        )
        .await
        .expect("ok");
    state.breaker_reset(&key).await.expect("ok");
    assert!(state.breaker(&key).await.expect("ok").is_pristine());
}

async fn concurrent_breaker_updates_are_never_lost(state: Arc<dyn SharedState>) {
    let config = BreakerConfig {
        failure_threshold: 1_000,
        ..BreakerConfig::default()
    };
    let key = BreakerKey::Pair(PairKey::new("u", "s"));
    let t = now();
    let results = join_all((0..100).map(|_| {
        let (state, key, config) = (state.clone(), key.clone(), config.clone());
        tokio::spawn(async move {
            state
                .breaker_apply(
                    &key,
                    BreakerEvent::Failure { retry_after: None },
                    &config,
                    t,
                )
                .await
        })
    }))
    .await;
    for r in results {
        r.expect("join").expect("applied");
    }
    assert_eq!(
        state.breaker(&key).await.expect("ok").consecutive_failures,
        100
    );
}

async fn slots_are_bounded_released_and_expire(state: Arc<dyn SharedState>) {
    let origin = Origin::from_url("https://up.example").expect("origin");
    let ttl = Duration::from_secs(30);
    let t = now();
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(
            state
                .acquire_slot(&origin, 3, ttl, t)
                .await
                .expect("ok")
                .expect("free"),
        );
    }
    assert_eq!(
        state.acquire_slot(&origin, 3, ttl, t).await.expect("ok"),
        None
    );
    state
        .release_slot(&origin, leases.pop().expect("lease"))
        .await
        .expect("ok");
    assert!(
        state
            .acquire_slot(&origin, 3, ttl, t)
            .await
            .expect("ok")
            .is_some()
    );
    // Holders that vanish: their leases expire and the slots come back.
    let later = t + ttl + Duration::from_millis(1);
    assert!(
        state
            .acquire_slot(&origin, 3, ttl, later)
            .await
            .expect("ok")
            .is_some()
    );
}

async fn concurrent_slot_requests_never_exceed_the_limit(state: Arc<dyn SharedState>) {
    let origin = Origin::from_url("https://up.example").expect("origin");
    let t = now();
    let granted = join_all((0..50).map(|_| {
        let (state, origin) = (state.clone(), origin.clone());
        tokio::spawn(async move {
            state
                .acquire_slot(&origin, 8, Duration::from_secs(30), t)
                .await
        })
    }))
    .await
    .into_iter()
    .filter(|r| matches!(r, Ok(Ok(Some(_)))))
    .count();
    assert_eq!(granted, 8);
}

async fn the_rate_admits_a_burst_then_asks_to_wait(state: Arc<dyn SharedState>) {
    let origin = Origin::from_url("https://up.example").expect("origin");
    let limit = RateLimit::new(10, 2).expect("limited");
    let t = now().as_millis() * 1000;
    assert_eq!(state.take_rate(&origin, &limit, t).await.expect("ok"), None);
    assert_eq!(state.take_rate(&origin, &limit, t).await.expect("ok"), None);
    assert_eq!(
        state.take_rate(&origin, &limit, t).await.expect("ok"),
        Some(Duration::from_millis(100))
    );
    assert_eq!(
        state
            .take_rate(&origin, &limit, t + 100_000)
            .await
            .expect("ok"),
        None
    );
}
