//! Redis stopped mid-run: the replica keeps serving on its own state, says so, and shares again
//! once Redis is back. Runs its own `redis-server` on a free loopback port, so stopping it
//! disturbs no other test.

use std::sync::Arc;
use std::time::Duration;

use tether_core::{Clock, PairKey, SharedState, SystemClock};
use tether_store::shared::{FallbackState, RedisState, RedisStateConfig};
use tether_testkit::services::PrivateRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_degrades_to_its_own_state_and_comes_back() {
    let mut redis = PrivateRedis::start().await.expect("a private redis-server");
    let mut config = RedisStateConfig::new(redis.url(), "outage");
    config.response_timeout = Duration::from_millis(500);
    config.connection_timeout = Duration::from_millis(500);
    let shared: Arc<dyn SharedState> =
        Arc::new(RedisState::connect(config).await.expect("connects"));
    let state = FallbackState::new(shared.clone());
    let ttl = Duration::from_secs(60);
    let a = PairKey::new("alice", "github");

    assert!(
        state
            .try_mark_active(&a, ttl, SystemClock.now())
            .await
            .expect("shared")
    );
    assert!(
        shared
            .is_active(&a, SystemClock.now())
            .await
            .expect("in Redis"),
        "written to Redis"
    );
    assert!(!state.is_degraded());

    redis.stop().await;
    // Serving continues: every call answers, from the replica's own state.
    let b = PairKey::new("bob", "github");
    let started = tokio::time::Instant::now();
    assert!(
        state
            .try_mark_active(&b, ttl, SystemClock.now())
            .await
            .expect("falls back")
    );
    assert!(state.is_degraded());
    assert_eq!(state.fallbacks(), 1);
    for _ in 0..50 {
        assert!(state.is_active(&b, SystemClock.now()).await.expect("local"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "degraded calls do not wait on Redis each time"
    );

    redis.start_again().await.expect("redis-server restarts");
    // Within a probe period (5 s) the replica tries Redis again and shares once more.
    let mut back = false;
    for _ in 0..80 {
        let c = PairKey::new("carol", "github");
        state
            .try_mark_active(&c, ttl, SystemClock.now())
            .await
            .expect("answers");
        if !state.is_degraded() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "shared again after Redis came back");
    let d = PairKey::new("dave", "github");
    assert!(
        state
            .try_mark_active(&d, ttl, SystemClock.now())
            .await
            .expect("shared")
    );
    assert!(
        shared
            .is_active(&d, SystemClock.now())
            .await
            .expect("in Redis")
    );
    redis.stop().await;
}
