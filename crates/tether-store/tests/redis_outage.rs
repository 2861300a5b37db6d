//! Redis stopped mid-run: the replica keeps serving on its own state, says so, and shares again
//! once Redis is back. Runs its own `redis-server` on a free loopback port, so stopping it
//! disturbs no other test.

use std::sync::Arc;
use std::time::Duration;

use tether_core::{Clock, PairKey, SharedState, SystemClock};
use tether_store::shared::{FallbackState, RedisState, RedisStateConfig};
use tokio::process::{Child, Command};

struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (it runs the shared Redis too)");
        let redis = Self { child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not start within 5 s");
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_degrades_to_its_own_state_and_comes_back() {
    let port = free_port().await;
    let redis = PrivateRedis::start(port).await;
    let mut config = RedisStateConfig::new(format!("redis://127.0.0.1:{port}"), "outage");
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

    let redis = PrivateRedis::start(port).await;
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
