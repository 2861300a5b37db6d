//! The unauthenticated probes (`/metrics`, `/readyz`) against a gateway process on a private
//! Redis: anyone can call them as often as they like, so they must not cost a walk over the
//! Redis keyspace per request. `INFO commandstats` of the private server counts what they cost.
//!
//! Two replicas on one private Redis report the same tracker gauges: the figures come from
//! indexes kept as events happen, not from a walk over the keys.
//!
//! Needs `redis-server` and `redis-cli` (the shared Redis runs on the same binaries) and
//! PostgreSQL on 127.0.0.1:5432 for the replicas' shared tokens.

mod support;

use std::time::Duration;

use tether_testkit::services::PrivateRedis;

use support::faulty::refusing_upstream;
use support::gateway_process::{GatewayProcess, Launch, TempDir, config_with};
use support::jwt;
use support::redis_stats::{command_calls, reset_stats};
use support::replicas::{Deployment, Pair, Ports};

const HITS: usize = 50;

async fn gateway_on(redis: &PrivateRedis, dir: &TempDir) -> GatewayProcess {
    let head = format!(
        "[storage]\nurl = \"sqlite://{}\"\n\n[state]\nurl = \"{}\"\nprefix = \"probes\"\n",
        dir.path.join("tether.db").display(),
        redis.url()
    );
    GatewayProcess::start(&Launch::new(&dir.path), &config_with(&head, "", "")).await
}

async fn hit(gateway: &GatewayProcess, path: &str) {
    for _ in 0..HITS {
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            gateway.http.get(gateway.url(path)).send(),
        )
        .await
        .expect("the probe answers within 10 s")
        .expect("the probe answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_pings_redis_and_never_scans() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let dir = TempDir::new("probes-ready");
    let gateway = gateway_on(&redis, &dir).await;
    reset_stats(&redis).await;

    hit(&gateway, "/readyz").await;

    assert_eq!(command_calls(&redis, "scan").await, 0, "SCAN for /readyz");
    assert!(
        command_calls(&redis, "ping").await >= HITS as u64,
        "each readiness check asks Redis whether it answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counts_tracker_entries_without_scanning_redis() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let dir = TempDir::new("probes-metrics");
    let gateway = gateway_on(&redis, &dir).await;
    reset_stats(&redis).await;

    hit(&gateway, "/metrics").await;

    assert_eq!(command_calls(&redis, "scan").await, 0, "SCAN for /metrics");
}

/// The value of `tether_sessions{state="…"}` in a Prometheus text.
fn sessions_gauge(metrics: &str, state: &str) -> Option<f64> {
    let prefix = format!("tether_sessions{{state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_report_the_shared_tracker_without_scanning_redis() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let postgres = tether_testkit::services::postgres_database("probes-replicas")
        .await
        .expect("a test database on the machine's PostgreSQL (127.0.0.1:5432)");
    let deployment = Deployment::on("probes", postgres, &redis.url());
    let (refusing_url, refusing) = refusing_upstream().await;
    let rest = format!(
        "[reconnect]\nstagger = \"0ms\"\ninclude_non_oauth = true\n\n[[servers]]\nname = \"refusing\"\nurl = \"{refusing_url}\"\n"
    );
    let ports = Ports::new().await;
    let replicas = Pair::start("probes", &deployment, &ports, &rest, &[]).await;
    let (one, two) = (&replicas.one, &replicas.two);

    // Replica 1 records a failure of alice's pair; replica 2 counts it without having seen it.
    let (status, body) = one
        .post(&jwt("alice"), "/v1/me/servers/refusing/reconnect")
        .await;
    assert_eq!(
        (status, &body["connected"]),
        (200, &serde_json::json!(false)),
        "{body}"
    );
    reset_stats(&redis).await;
    for replica in [one, two] {
        hit(replica, "/metrics").await;
        hit(replica, "/readyz").await;
        let failed = sessions_gauge(&replica.metrics().await, "failed");
        assert_eq!(failed, Some(1.0), "{}", replicas.logs());
    }

    assert_eq!(command_calls(&redis, "scan").await, 0, "SCAN for a probe");
    assert_eq!(command_calls(&redis, "keys").await, 0, "KEYS for a probe");
    assert!(
        command_calls(&redis, "ping").await >= 2 * HITS as u64,
        "each readiness check on each replica asks Redis whether it answers"
    );
    refusing.abort();
    replicas.one.kill().await;
    replicas.two.kill().await;
}
